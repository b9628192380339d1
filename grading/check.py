"""``cs231n-course check NOTEBOOK``: run your notebook as the grader would, visible tests only.

For students and self-paced learners. The notebook runs in a fresh kernel with the student
edition of the library and the grading budget (CS231N_GRADING=1); test cells are taken from the
released version when the course has one (edits to them are undone and reported). A test passes
when its cell runs without error (its visible asserts hold). Prints a score per part (section)
and what failed; the exit code is 1 when anything fails, 2 when the notebook cannot be read.
"""

from __future__ import annotations

import ast
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from grading.config import CourseConfig
from grading.execute import EVENT_KEY, run_notebook
from grading.judge import cell_error
from grading.kernels import kernel_factory
from grading.restore import InvalidSubmission, is_test, load_notebook_text, restore
from grading.student_edition import build_student_edition


@dataclass
class Verdict:
    """In-kernel verdict of one visible test cell."""
    section: str
    grade_id: str
    points: float
    max_points: float
    problem: str | None
    hidden: bool = False  # nothing visible to run: graded by the instructor only


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


def verdicts(nb) -> list[Verdict]:
    """In-kernel verdict of each test cell of an executed notebook, with its section title."""
    out, section = [], "(start)"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heads = [ln.lstrip("#").strip() for ln in cell.source.splitlines()
                     if ln.startswith("#")]
            section = heads[-1] if heads else section
        elif is_test(cell):
            m = cell.metadata["nbgrader"]
            event = cell.metadata.get(EVENT_KEY, {}).get("event")
            problem = event or cell_error(cell)
            if problem is None and cell.execution_count is None:
                problem = "not run"
            pts = float(m.get("points", 0) or 0)
            if not _has_code(cell.source):
                out.append(Verdict(section, m["grade_id"], 0.0, 0.0, None, hidden=True))
                continue
            out.append(Verdict(section, m["grade_id"], 0.0 if problem else pts, pts, problem))
    return out


def report(results: list[Verdict], notes: list[str]) -> str:
    """Text report: score per section, failures, total, notes."""
    lines, current = [], None
    for v in results:
        if v.section != current:
            current = v.section
            part = [r for r in results if r.section == current]
            lines.append(f"{current}: {sum(r.points for r in part):g} / "
                         f"{sum(r.max_points for r in part):g}")
        if v.hidden:
            lines.append(f"  ---- {v.grade_id}: hidden test, run by the grader only")
            continue
        mark = "ok  " if v.problem is None else "FAIL"
        lines.append(f"  {mark} {v.grade_id} ({v.max_points:g} pt)"
                     + (f": {v.problem}" if v.problem else ""))
    total = sum(v.points for v in results)
    lines.append(f"Total (visible tests): {total:g} / {sum(v.max_points for v in results):g}")
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


def check(cfg: CourseConfig, notebook: Path, log=print) -> int:
    """Run the check; returns the exit code."""
    notebook = Path(notebook)
    try:
        submission = load_notebook_text(notebook.read_bytes())
    except (OSError, InvalidSubmission) as err:
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
        shutil.copytree(notebook.resolve().parent, work, symlinks=True,
                        ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
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
