"""``cs231n-course check NOTEBOOK``: run your notebook as the grader would, visible tests only.

For students and self-paced learners. The notebook runs in a fresh kernel with the student
edition of the library and the grading budget (CS231N_GRADING=1); test cells are taken from the
released version when the course has one (edits to them are undone and reported). A test passes
when its cell runs without error (its visible asserts hold). Prints per part (section) the visible
test points earned / available and the points of hidden tests and written answers that only the
grader judges, the total the same way, and one ``next:`` line naming the first failing exercise;
the exit code is 0 when every visible test passes, 1 when anything fails, 2 when the notebook
cannot be read. A notebook below the course's ``submitted/`` folder is read, and its folder
copied, without following links (grading.safe_files), as the grader does.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePath

import nbformat

from grading.config import CourseConfig
from grading.execute import EVENT_KEY, run_notebook
from grading.judge import cell_error
from grading.kernels import kernel_factory
from grading.restore import is_test, load_notebook_text, nbg, restore
from grading.safe_files import copy_files, read_file
from grading.student_edition import build_student_edition


@dataclass
class Verdict:
    """What ``check`` says about one graded cell: a visible test's in-kernel verdict, or the
    points of a hidden test or written answer that only the grader judges."""
    section: str
    grade_id: str
    points: float
    max_points: float
    problem: str | None
    hidden: bool = False  # nothing visible to run: graded by the instructor only
    answer: bool = False  # a written answer, graded by hand
    exercise: str | None = None  # the solution cell above it: "f, g (solution cell id)"


def _has_code(source: str) -> bool:
    """Whether a test cell has anything to run besides its docstring and comments."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return True
    return any(not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body)


def _library(cfg: CourseConfig, scratch: Path) -> Path:
    """The course's student library edition, or a fresh one in ``scratch``."""
    if cfg.student_library_dir.is_dir():
        return cfg.student_library_dir
    for package in cfg.library:
        build_student_edition(package, scratch)
    return scratch


def _exercise(cell) -> str:
    """``f, g (solution cell id)`` for a solution cell defining functions f and g."""
    try:
        names = [s.name for s in ast.parse(cell.source).body
                 if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    except SyntaxError:
        names = []
    gid = nbg(cell).get("grade_id")
    return f"{', '.join(names)} (solution cell {gid})" if names else f"solution cell {gid}"


def _heading(cell, section: str) -> str:
    """The section after a markdown cell: its last ``#`` or ``##`` heading, else unchanged."""
    heads = [ln.lstrip("#").strip() for ln in cell.source.splitlines()
             if re.match(r"#{1,2} ", ln)]
    return heads[-1] if heads else section


def verdicts(nb) -> list[Verdict]:
    """Verdicts of an executed notebook's graded cells, with their section titles: visible test
    cells judged in the kernel, hidden-only test cells and written answers left to the grader."""
    out, section, exercise = [], "(start)", None
    for cell in nb.cells:
        m = nbg(cell)
        pts = float(m.get("points", 0) or 0)
        if cell.cell_type == "markdown" and m.get("grade") and m.get("solution"):
            out.append(Verdict(section, m.get("grade_id", "?"), 0.0, pts, None, answer=True))
        elif cell.cell_type == "markdown":
            section = _heading(cell, section)
        elif m.get("solution"):
            exercise = _exercise(cell)
        elif is_test(cell):
            if not _has_code(cell.source):
                out.append(Verdict(section, m["grade_id"], 0.0, pts, None, hidden=True))
                continue
            event = cell.metadata.get(EVENT_KEY, {}).get("event")
            problem = event or cell_error(cell)
            if problem is None and cell.execution_count is None:
                problem = "not run"
            out.append(Verdict(section, m["grade_id"], 0.0 if problem else pts, pts, problem,
                               exercise=exercise))
    return out


def _pts(x: float) -> str:
    """``1 point`` / ``3 points``."""
    return f"{x:g} point" + ("" if x == 1 else "s")


def _summary(part: list[Verdict]) -> str:
    """``visible tests E / A; hidden tests H points and written answers W points are judged
    when graded`` for a list of verdicts (the later clauses only when there is something)."""
    visible = [v for v in part if not (v.hidden or v.answer)]
    text = (f"visible tests {sum(v.points for v in visible):g} / "
            f"{sum(v.max_points for v in visible):g}")
    later = [f"{what} {_pts(total)}" for what, total in (
        ("hidden tests", sum(v.max_points for v in part if v.hidden)),
        ("written answers", sum(v.max_points for v in part if v.answer))) if total]
    if later:
        verb = "are" if len(later) > 1 or not later[0].endswith(" 1 point") else "is"
        text += f"; {' and '.join(later)} {verb} judged when graded"
    return text


def _next_step(results: list[Verdict]) -> str:
    """The ``next:`` line: the first failing exercise, or what is left when nothing fails."""
    failed = next((v for v in results if v.problem), None)
    if failed is None:
        return ("next: every visible test passes; submit (hidden tests and written answers are "
                "judged when graded)")
    what = failed.exercise or "the code above it"
    return (f"next: {what}, in part \"{failed.section}\", fails {failed.grade_id}; fix it, "
            "then rerun that test cell")


def report(results: list[Verdict], notes: list[str]) -> str:
    """Text report: per part its cells and points, the total, the next step, notes."""
    lines, current = [], None
    for v in results:
        if v.section != current:
            current = v.section
            lines.append(f"{current}: {_summary([r for r in results if r.section == current])}")
        if v.hidden:
            lines.append(f"  ---- {v.grade_id} ({_pts(v.max_points)}): hidden test, run by "
                         "the grader only")
        elif v.answer:
            lines.append(f"  ---- {v.grade_id} ({_pts(v.max_points)}): written answer, graded "
                         "by hand")
        else:
            mark = "ok  " if v.problem is None else "FAIL"
            lines.append(f"  {mark} {v.grade_id} ({_pts(v.max_points)})"
                         + (f": {v.problem}" if v.problem else ""))
    total = sum(v.max_points for v in results)
    lines.append(f"Total: {_summary(results)} (notebook: {_pts(total)})")
    lines.append(_next_step(results))
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def _submitted(cfg: CourseConfig, notebook: Path) -> tuple[Path, PurePath] | None:
    """(``submitted/``, ``student/assignment/name.ipynb``) when ``notebook`` lies in the course's
    ``submitted/`` folder in nbgrader's layout (decided lexically, nothing resolved), else None."""
    root = Path(os.path.abspath(cfg.course_dir / "submitted"))
    try:
        rel = PurePath(os.path.abspath(notebook)).relative_to(root)
    except ValueError:
        return None
    return (root, rel) if len(rel.parts) == 3 else None


def _read(cfg: CourseConfig, notebook: Path) -> bytes:
    """The notebook's bytes; below ``submitted/`` read without following any link."""
    where = _submitted(cfg, notebook)
    if where is None:
        return notebook.read_bytes()
    return read_file(*where, max_bytes=cfg.max_notebook_bytes)


def _copy_folder(cfg: CourseConfig, notebook: Path, work: Path) -> list[str]:
    """Copy the notebook's folder (regular files only, no link followed) into ``work``;
    returns notes on the entries left out."""
    where = _submitted(cfg, notebook)
    root, rel = (where[0], where[1].parent) if where else (notebook.absolute().parent, ".")
    skipped = copy_files(root, rel, work, skip=lambda name: name.endswith(".ipynb")
                         or name == ".ipynb_checkpoints")
    return [f"not copied: {s} (only regular files are)" for s in skipped]


def check(cfg: CourseConfig, notebook: Path, log=print) -> int:
    """Run the check; returns the exit code."""
    notebook = Path(notebook)
    try:
        submission = load_notebook_text(_read(cfg, notebook))
    except (OSError, ValueError) as err:  # InvalidSubmission, RefusedFile are ValueErrors
        log(f"cannot check {notebook}: {err}")
        return 2
    release = cfg.course_dir / "release" / notebook.stem / notebook.name
    if release.is_file():
        given = nbformat.read(release, as_version=4)
        restored = restore(submission, given, given)
        nb, notes = restored.nb, restored.notes
    else:
        nb, notes = restore(submission, submission).nb, []
    if not any(is_test(c) for c in nb.cells):
        log(f"{notebook} has no test cells to check")
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="cs231n-check-"))
    try:
        lib = _library(cfg, scratch / "lib")
        work = scratch / "work"
        notes += _copy_folder(cfg, notebook, work)
        a = notebook.stem
        make_km = kernel_factory(sandbox=False, workdir=work, library_dir=lib, env=cfg.env,
                                 notebook_timeout=cfg.notebook_timeout_for(a),
                                 data_dir=cfg.data_dir)
        run = run_notebook(nb, make_km,
                           cwd=str(work), cell_timeout=cfg.cell_timeout_for(a),
                           notebook_timeout=cfg.notebook_timeout_for(a),
                           max_output_bytes=cfg.max_output_bytes,
                           max_notebook_output_bytes=cfg.max_notebook_output_bytes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results = verdicts(nb)
    log(report(results, notes + run.events))
    return 0 if run.finished and all(v.problem is None for v in results) else 1
