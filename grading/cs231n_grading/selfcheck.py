"""``cs231n-course check NOTEBOOK``: run your notebook as the grader would, visible tests only.

For students and self-paced learners. The notebook runs in a fresh kernel with the student
edition of the library and the grading budget (CS231N_GRADING=1); test cells are taken from the
released version when the course has one (edits to them are undone and reported). A test passes
when its cell runs without error (its visible asserts hold). Prints per part (section) the visible
test points earned / available and the points of hidden tests and written answers that only the
grader judges, the total the same way, and one ``next:`` line naming the first failing exercise;
the exit code is 0 when every visible test passes, 1 when anything fails, 2 when the notebook
cannot be read. A notebook below the course's ``submitted/`` folder is read, and its folder
copied, without following links (cs231n_grading.safe_files), as the grader does.
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

from cs231n_grading.config import CourseConfig
from cs231n_grading.editions import edition_language, edition_stem
from cs231n_grading.execute import EVENT_KEY, run_notebook
from cs231n_grading.judge import cell_error
from cs231n_grading.kernels import kernel_factory
from cs231n_grading.locale import tr
from cs231n_grading.restore import is_test, load_notebook_text, nbg, restore
from cs231n_grading.safe_files import copy_files, read_file
from cs231n_grading.student_edition import build_student_edition
from cs231n_lib.i18n import using_language


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
    if not names:
        return tr("solution cell {id}", id=gid)
    return tr("{names} (solution cell {id})", names=", ".join(names), id=gid)


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
                problem = tr("not run")
            out.append(Verdict(section, m["grade_id"], 0.0 if problem else pts, pts, problem,
                               exercise=exercise))
    return out


def _pts(x: float) -> str:
    """``1 point`` / ``3 points`` (in the current language)."""
    return tr("{n} point", n=f"{x:g}") if x == 1 else tr("{n} points", n=f"{x:g}")


def _summary(part: list[Verdict]) -> str:
    """``visible tests E / A; hidden tests H points and written answers W points are judged
    when graded`` for a list of verdicts (the later clauses only when there is something)."""
    visible = [v for v in part if not (v.hidden or v.answer)]
    text = tr("visible tests {got} / {total}", got=f"{sum(v.points for v in visible):g}",
              total=f"{sum(v.max_points for v in visible):g}")
    hidden = sum(v.max_points for v in part if v.hidden)
    answers = sum(v.max_points for v in part if v.answer)
    later = ([tr("hidden tests {points}", points=_pts(hidden))] if hidden else []) + (
        [tr("written answers {points}", points=_pts(answers))] if answers else [])
    if later:
        one = len(later) == 1 and (hidden or answers) == 1
        text += (tr("; {what} is judged when graded", what=later[0]) if one else
                 tr("; {what} are judged when graded", what=tr(" and ").join(later)))
    return text


def _next_step(results: list[Verdict]) -> str:
    """The ``next:`` line: the first failing exercise, or what is left when nothing fails."""
    failed = next((v for v in results if v.problem), None)
    if failed is None:
        return tr("next: every visible test passes; submit (hidden tests and written answers "
                  "are judged when graded)")
    return tr("next: {what}, in part \"{part}\", fails {test}; fix it, then rerun that test "
              "cell", what=failed.exercise or tr("the code above it"), part=failed.section,
              test=failed.grade_id)


def report(results: list[Verdict], notes: list[str], lang: str | None = None) -> str:
    """Text report: per part its cells and points, the total, the next step, notes; in
    ``lang`` (default: the current language)."""
    with using_language(lang):
        return _report(results, notes)


def _report(results: list[Verdict], notes: list[str]) -> str:
    """``report`` in the current language."""
    lines, current = [], None
    for v in results:
        if v.section != current:
            current = v.section
            lines.append(f"{current}: {_summary([r for r in results if r.section == current])}")
        if v.hidden:
            lines.append("  ---- " + tr("{test} ({points}): hidden test, run by the grader only",
                                        test=v.grade_id, points=_pts(v.max_points)))
        elif v.answer:
            lines.append("  ---- " + tr("{test} ({points}): written answer, graded by hand",
                                        test=v.grade_id, points=_pts(v.max_points)))
        else:
            ok, fail = tr("ok"), tr("FAIL")  # padded to one width, so the test ids line up
            mark = (ok if v.problem is None else fail).ljust(max(len(ok), len(fail)))
            lines.append(f"  {mark} {v.grade_id} ({_pts(v.max_points)})"
                         + (f": {v.problem}" if v.problem else ""))
    total = sum(v.max_points for v in results)
    lines.append(tr("Total: {summary} (notebook: {points})", summary=_summary(results),
                    points=_pts(total)))
    lines.append(_next_step(results))
    lines += [tr("note: {note}", note=n) for n in notes]
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
    return [tr("not copied: {name} (only regular files are)", name=s) for s in skipped]


def check(cfg: CourseConfig, notebook: Path, log=print) -> int:
    """Run the check; returns the exit code."""
    notebook = Path(notebook)
    lang = edition_language(notebook)
    with using_language(lang):  # the edition's language (Chinese for NN_name.zh.ipynb)
        return _check(cfg, notebook, log)


def _check(cfg: CourseConfig, notebook: Path, log) -> int:
    """``check`` in the current language."""
    try:
        submission = load_notebook_text(_read(cfg, notebook))
    except (OSError, ValueError) as err:  # InvalidSubmission, RefusedFile are ValueErrors
        log(tr("cannot check {notebook}: {error}", notebook=notebook, error=err))
        return 2
    a = edition_stem(notebook.stem)  # NN_name.zh.ipynb belongs to assignment NN_name
    release = cfg.course_dir / "release" / a / notebook.name
    if release.is_file():
        given = nbformat.read(release, as_version=4)
        restored = restore(submission, given, given)
        nb, notes = restored.nb, restored.notes
    else:
        nb, notes = restore(submission, submission).nb, []
    if not any(is_test(c) for c in nb.cells):
        log(tr("{notebook} has no test cells to check", notebook=notebook))
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="cs231n-check-"))
    try:
        lib = _library(cfg, scratch / "lib")
        work = scratch / "work"
        notes += _copy_folder(cfg, notebook, work)
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
