"""Helpers for tests/test_notebooks.py: build, validate, release and execute course notebooks."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
COURSE_SRC = ROOT / "course_src"
RECORD_MIME = "application/vnd.cs231n.record+json"
NBGRADER_KEYS = {"grade", "grade_id", "locked", "schema_version", "solution"}
TOTAL = re.compile(r"\*\*Total: (\d+) points\*\*")
PART = re.compile(r"^## (\d+)\. .*\((\d+) points?\)\s*$", re.MULTILINE)


def load_build():
    """The ``course_src/build.py`` module (course_src is not an installed package)."""
    spec = importlib.util.spec_from_file_location("course_build", COURSE_SRC / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notebook_names() -> list[str]:
    """``NN_name`` of every notebook source in course_src/."""
    return [p.stem for p in load_build().sources()]


def notebook_path(name: str) -> Path:
    return ASSIGNMENTS / name / f"{name}.ipynb"


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(notebook_path(name), as_version=4)


def role(cell) -> str:
    """'solution', 'tests', 'answer' or 'readonly' from a cell's nbgrader metadata."""
    meta = cell.metadata["nbgrader"]
    if meta["grade"] and meta["solution"]:
        return "answer"
    if meta["grade"]:
        return "tests"
    return "solution" if meta["solution"] else "readonly"


def metadata_problems(nb) -> list[str]:
    """Everything wrong with a source notebook's nbgrader metadata (empty list: valid)."""
    from nbgrader.nbgraderformat import ValidationError
    from nbgrader.nbgraderformat.common import SchemaTooNewError, SchemaTooOldError
    from nbgrader.nbgraderformat.v3 import MetadataValidatorV3

    problems = []
    try:
        MetadataValidatorV3().validate_nb(nb)
    except (ValidationError, SchemaTooOldError, SchemaTooNewError) as err:
        problems.append(f"nbgrader validator: {err}")
    ids = []
    for k, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            problems.append(f"cell {k} has no nbgrader metadata")
            continue
        expected = NBGRADER_KEYS | ({"points"} if meta.get("grade") else set())
        if set(meta) != expected:
            problems.append(f"cell {k}: keys {sorted(meta)} != {sorted(expected)}")
        if meta.get("schema_version") != 3:
            problems.append(f"cell {k}: schema_version {meta.get('schema_version')} != 3")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(meta.get("grade_id", ""))):
            problems.append(f"cell {k}: bad grade_id {meta.get('grade_id')!r}")
        ids.append(meta.get("grade_id"))
        if cell.get("id") != meta.get("grade_id"):
            problems.append(f"cell {k}: cell id {cell.get('id')!r} != grade_id")
        kind = role(cell)
        if kind == "tests" and (cell.cell_type != "code" or not meta["locked"]):
            problems.append(f"cell {k}: a test cell must be locked code")
        if kind == "answer" and cell.cell_type != "markdown":
            problems.append(f"cell {k}: a written answer must be markdown")
        if kind == "readonly" and not meta["locked"]:
            problems.append(f"cell {k}: a read-only cell must be locked")
        if kind == "solution" and "### BEGIN SOLUTION" not in cell.source:
            problems.append(f"cell {k}: solution cell without a solution region")
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate grade ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    return problems


def points(nb) -> dict[str, float]:
    """grade_id -> points of every graded cell."""
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in nb.cells if c.metadata["nbgrader"]["grade"]}


def stated_total(nb) -> int:
    """The total stated in the first cell (``**Total: N points**``)."""
    found = TOTAL.findall(nb.cells[0].source)
    if len(found) != 1:
        raise AssertionError(f"first cell must state '**Total: N points**' once, found {found}")
    return int(found[0])


def part_points(nb) -> list[tuple[str, int, float]]:
    """(part number, stated points, points of its graded cells) for every '## N. ... (P points)'
    heading; a part runs to the next such heading."""
    parts, current = [], None
    for cell in nb.cells:
        match = PART.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            current = [match[1], int(match[2]), 0]
            parts.append(current)
        if cell.metadata["nbgrader"]["grade"]:
            if current is None:
                raise AssertionError("graded cell before the first part heading")
            current[2] += cell.metadata["nbgrader"]["points"]
    return [tuple(p) for p in parts]


def is_clean(nb) -> list[str]:
    """Problems that make a committed notebook unclean (outputs, execution counts)."""
    problems = []
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"cell {k} has outputs or an execution count")
    return problems


def student_library(dest: Path) -> Path:
    """Build the student edition of cs231n_lib (exercise bodies stubbed, as graded and student
    runs import it) under ``dest``; return the folder to put first on PYTHONPATH."""
    from cs231n_grading.student_edition import build_student_edition

    dest.mkdir(parents=True, exist_ok=True)
    stubbed = build_student_edition(ROOT / "cs231n_lib", dest)
    if not stubbed:
        raise AssertionError("the student edition stubbed no exercise")
    return dest


@contextmanager
def kernel_env(pythonpath: Path | None, grading: bool = True):
    """Environment for a kernel started inside the block (kernels inherit os.environ)."""
    saved = dict(os.environ)
    os.environ["CS231N_GRADING"] = "1" if grading else "0"
    os.environ["MPLBACKEND"] = "Agg"  # as the grader runs kernels
    bindir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` to create a gradebook
    os.environ["PATH"] = bindir + os.pathsep + saved.get("PATH", "")
    os.environ["CS231N_DATA_DIR"] = str(ROOT / "datasets")  # a student edition lives elsewhere
    if pythonpath is not None:
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [str(pythonpath)] + [p for p in saved.get("PYTHONPATH", "").split(os.pathsep) if p])
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def execute(nb, cwd: Path, *, allow_errors: bool, timeout: int = 600, pythonpath=None):
    """Execute ``nb`` in place with a real kernel; return the wall-clock seconds it took."""
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            allow_errors=allow_errors, resources={"metadata": {"path": str(cwd)}})
    with kernel_env(pythonpath):
        start = time.perf_counter()
        client.execute()
        return time.perf_counter() - start


def error_of(cell) -> tuple[str, str] | None:
    """(ename, evalue) of a code cell's error output, or None."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out["ename"], out["evalue"]
    return None


def stderr_of(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stderr")


def records(cell) -> list[dict]:
    """The cs231n record payloads a cell displayed."""
    return [o["data"][RECORD_MIME] for o in cell.get("outputs", [])
            if o.get("output_type") == "display_data" and RECORD_MIME in o.get("data", {})]


def release(name: str, course: Path) -> nbformat.NotebookNode:
    """The student version made by nbgrader's generate_assignment in a scratch course."""
    import shutil

    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    source = course / "source" / name
    source.mkdir(parents=True, exist_ok=True)
    shutil.copy(notebook_path(name), source / f"{name}.ipynb")
    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = "test-course"
    config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    with kernel_env(None):
        result = NbGraderAPI(config=config).generate_assignment(name, force=True)
    if not result["success"]:
        raise AssertionError(f"generate_assignment failed: {result['error']}\n{result['log']}")
    return nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)


def strip_docstring(source: str) -> str:
    """A test cell's code without its one-line docstring and comments."""
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if lines and lines[0].startswith('"""'):
        lines = lines[1:]
    return "\n".join(lines)


if __name__ == "__main__":  # quick manual run: python tests/notebook_utils.py 01_convolution
    import tempfile

    for arg in sys.argv[1:]:
        nb = read(arg)
        with tempfile.TemporaryDirectory() as tmp:
            lib = student_library(Path(tmp) / "lib")
            seconds = execute(nb, notebook_path(arg).parent, allow_errors=True, pythonpath=lib)
        for k, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and (error_of(cell) or stderr_of(cell)):
                print(f"cell {k} ({cell.metadata['nbgrader']['grade_id']}): {error_of(cell)} "
                      f"{stderr_of(cell)[:500]}")
        print(f"{arg}: {seconds:.1f} s")
