"""The real course: its release is clean and every library exercise is stubbed (no execution)."""

import ast

import pytest

from cs231n_grading.config import load_config
from cs231n_grading.leakscan import scan_release
from cs231n_grading.release import release
from cs231n_grading.student_edition import find_exercises

pytestmark = pytest.mark.slow


def test_real_release_has_no_reference_solutions(tmp_path):
    cfg = load_config(course_dir=tmp_path / "course", sandbox=False)
    assignments = cfg.assignments()
    assert assignments, f"no assignments in {cfg.assignments_dir}"
    release(cfg, log=lambda *_: None)  # raises LeakError on any leak
    sources = [nb for a in assignments for nb in cfg.source_notebooks(a)]
    roots = [cfg.course_dir / "release", cfg.student_library_dir]
    editions = {p: cfg.student_library_dir / p.name for p in cfg.library}
    assert scan_release(roots, sources, editions) == []
    stubs = 0
    for py in cfg.student_library_dir.rglob("*.py"):
        for ex in find_exercises(py.read_text(), py):
            body = [s for s in ex.node.body if not (isinstance(s, ast.Expr)
                                                   and isinstance(s.value, ast.Constant))]
            assert len(body) == 1 and isinstance(body[0], ast.Raise), (py, ex.qualname)
            assert ex.notebook in assignments, (py, ex.qualname, ex.notebook)
            stubs += 1
    assert stubs > 0
