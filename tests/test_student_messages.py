"""What a student reads while working (issue 14, items 3-5): a passing test cell ends with one
clear line, a record shows nothing, an unsolved exercise names the function to write, hidden-test
placeholders are silent, and ``cs231n-course check`` reports per part what is checked now and
what only the grader judges, with one ``next:`` line.

The kernel tests run the first two parts of the released 01_convolution (the course's own
release, leak scan included) and the fixture course's half-solved 01_basics.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import notebook_utils as nbu
import pytest

from cs231n_grading.config import load_config
from cs231n_grading.release import release
from cs231n_grading.restore import nbg
from cs231n_grading.samples import fill, write_submission
from cs231n_grading.selfcheck import Verdict, check, report
from cs231n_grading.solution_stubs import (
    NameSolutionStubs,
    generate_assignment_preprocessors,
    name_stubs,
)
from cs231n_grading.student_edition import stub_source
from cs231n_lib.checks import RECORD_MIME, pass_message

FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
NB01 = "01_convolution"
SOLVED = "conv_param_counts"
FRIENDLY = re.compile(r"^not implemented yet: write your code in (\w+) \(notebook (\w+), "
                      r"part (\d+)\)$")


def _gid(cell) -> str | None:
    return nbg(cell).get("grade_id")


def _texts(cell) -> list[str]:
    """Every text a front end could show for a cell's outputs."""
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text", ""))
        out += [str(v) for k, v in o.get("data", {}).items() if k.startswith("text/")]
        out += [o.get("evalue", "")]
    return out


@pytest.fixture(scope="module")
def run01(tmp_path_factory):
    """Parts 1-2 of the released 01_convolution, part 1 solved, run in a real kernel with the
    student library (part 2 left as released)."""
    course = tmp_path_factory.mktemp("course") / "course"
    cfg = load_config(course_dir=course)
    if NameSolutionStubs not in list(cfg.nbgrader.GenerateAssignment.get("preprocessors", [])):
        # registered by grading/nbgrader_config.py (see test_course_config_names_the_stubs)
        cfg.nbgrader.GenerateAssignment.preprocessors = generate_assignment_preprocessors()
    with nbu.kernel_env(None):
        release(cfg, [NB01], log=lambda *_: None)  # leak scan included
    folder = course / "release" / NB01
    released = nbformat.read(folder / f"{NB01}.ipynb", as_version=4)
    source = nbu.read(NB01)
    nb = fill(released, nbformat.v4.new_notebook(cells=[
        c for c in source.cells if _gid(c) == SOLVED]))
    part3 = next(k for k, c in enumerate(nb.cells) if c.source.startswith("## 3."))
    nb.cells = nb.cells[:part3]
    nbu.execute(nb, folder, allow_errors=True, timeout=120, pythonpath=cfg.student_library_dir)
    return released, nb


@pytest.mark.slow
def test_passing_test_cell_ends_with_the_pass_line(run01):
    _, nb = run01
    cell = next(c for c in nb.cells if _gid(c) == "test_conv_param_counts")
    assert nbu.error_of(cell) is None
    last = [o for o in cell.outputs if o.output_type == "stream"][-1]
    assert last.text.rstrip("\n").splitlines()[-1] == pass_message("test_conv_param_counts")
    assert "hidden tests will also run when graded" in last.text


@pytest.mark.slow
def test_unsolved_exercise_names_its_function_notebook_and_part(run01):
    _, nb = run01
    failing = [c for c in nb.cells if nbu.role(c) == "tests" and nbu.error_of(c)]
    assert failing, "part 2 is unsolved: its test cells must fail"
    for cell in failing:
        ename, evalue = nbu.error_of(cell)
        assert ename == "NotImplementedError"
        assert FRIENDLY.match(evalue).groups() == ("conv_forward_naive", NB01, "2"), evalue
        assert not any(pass_message(_gid(cell)) in t for t in _texts(cell))


@pytest.mark.slow
def test_released_stubs_name_every_exercise(run01):
    released, _ = run01
    for cell in released.cells:
        if nbu.role(cell) == "solution" and cell.cell_type == "code":
            raises = [n for n in ast.walk(ast.parse(cell.source)) if isinstance(n, ast.Raise)]
            assert raises and all(FRIENDLY.match(n.exc.args[0].value) for n in raises), (
                _gid(cell), cell.source)


@pytest.mark.slow
def test_records_show_no_text(run01):
    _, nb = run01
    records = [o for c in nb.cells for o in c.get("outputs", [])
               if RECORD_MIME in o.get("data", {})]
    assert records, "the solved part records its values"
    nbformat.validate(nb)  # a record without text/plain is a valid output
    assert all(set(o["data"]) == {RECORD_MIME} for o in records)
    assert not any("[recorded" in t for c in nb.cells for t in _texts(c))


@pytest.mark.slow
def test_hidden_test_placeholders_are_silent(run01):
    released, nb = run01
    placeholders = [c for c in nb.cells if nbu.role(c) == "tests" and not nbu.strip_docstring(
        c.source)]
    assert len(placeholders) == 2  # parts 1 and 2 each end with one
    for cell in placeholders:
        assert cell.execution_count is not None and cell.outputs == [], _gid(cell)


def test_every_built_placeholder_is_a_comment_and_every_visible_test_ends_with_its_line():
    build = nbu.load_build()
    for name in nbu.notebook_names():
        for cell in nbu.read(name).cells:
            if nbu.role(cell) != "tests":
                continue
            gid = _gid(cell)
            visible = re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source,
                             flags=re.S)
            if build._runs_visible_tests(cell.source, gid):
                assert cell.source.endswith(f'print("{pass_message(gid)}")'), gid
            else:
                assert not visible.strip().startswith('"""'), gid
                assert all(ln.startswith("#") for ln in visible.splitlines() if ln.strip()), gid


def test_build_finishes_test_cells():
    build = nbu.load_build()
    hidden = '"""Random cases (hidden tests)."""\n### BEGIN HIDDEN TESTS\nrecord("a", f(1))\n' \
             '### END HIDDEN TESTS'
    assert build._finish_test_cell(hidden, "t_h", "x").startswith(
        "# Random cases (hidden tests).\n### BEGIN HIDDEN TESTS")
    mixed = '"""Visible and hidden."""\nassert_value("f", f(1), 2)\n' + hidden.split("\n", 1)[1]
    assert build._finish_test_cell(mixed, "t_m", "x") == (
        mixed + f'\nprint("{pass_message("t_m")}")')
    with pytest.raises(ValueError, match="t_bad"):
        build._finish_test_cell('"""doc"""\nf(', "t_bad", "course.py:3")


def test_name_stubs_uses_the_enclosing_function():
    cell = ('def outer(x):\n    """Doc."""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
            '\n    return y\n\n\ndef other():\n    raise NotImplementedError()\n')
    out = name_stubs(cell, "02_padding_stride", "3")
    assert ('    raise NotImplementedError("not implemented yet: write your code in outer '
            '(notebook 02_padding_stride, part 3)")') in out
    assert "write your code in other (notebook 02_padding_stride, part 3)" in out
    assert "raise NotImplementedError()" not in out


def test_student_edition_stub_says_where_to_write():
    new, _ = stub_source('from x import exercise\n\n\n@exercise("01_convolution", "2. Forward")'
                         '\ndef conv(x):\n    """Doc."""\n    return x\n')
    ns = {"__name__": "lib"}
    exec(compile(new.replace("from x import exercise", "exercise = lambda *a: (lambda f: f)"),
                 "<lib>", "exec"), ns)  # noqa: S102 - our own test source
    with pytest.raises(NotImplementedError, match=r"^not implemented yet: write your code in "
                       r"conv \(notebook 01_convolution, section 2\. Forward\)"):
        ns["conv"](1)


def test_course_config_names_the_stubs():
    """The course's nbgrader config runs NameSolutionStubs right after ClearSolutions."""
    from nbgrader.preprocessors import ClearSolutions

    pre = list(load_config().nbgrader.GenerateAssignment.get("preprocessors", []))
    assert NameSolutionStubs in pre and pre.index(NameSolutionStubs) == pre.index(
        ClearSolutions) + 1, "add to grading/nbgrader_config.py: c.GenerateAssignment." \
        "preprocessors = generate_assignment_preprocessors()"


def test_report_totals_against_the_notebook():
    """The issue's case: 2 of 21 visible points, 16 hidden, 3 written; the notebook's 40."""
    part1 = "1. Neurons (5 points)"
    results = [Verdict(part1, "test_counts", 2, 2, None, exercise="counts (solution cell c)"),
               Verdict(part1, "test_counts_hidden", 0, 1, None, hidden=True),
               Verdict(part1, "q_sharing", 0, 2, None, answer=True),
               Verdict("2. Forward (35 points)", "test_fwd", 0, 19, "NotImplementedError: x",
                       exercise="fwd (solution cell fwd)"),
               Verdict("2. Forward (35 points)", "test_fwd_hidden", 0, 15, None, hidden=True),
               Verdict("2. Forward (35 points)", "q_fwd", 0, 1, None, answer=True)]
    lines = report(results, []).splitlines()
    assert lines[0] == (f"{part1}: visible tests 2 / 2; hidden tests 1 point and written "
                        "answers 2 points are judged when graded")
    assert ("Total: visible tests 2 / 21; hidden tests 16 points and written answers 3 points "
            "are judged when graded (notebook: 40 points)") in lines
    assert lines[-1] == ('next: fwd (solution cell fwd), in part "2. Forward (35 points)", '
                         "fails test_fwd; fix it, then rerun that test cell")
    assert sum(ln.startswith("next:") for ln in lines) == 1


@pytest.fixture(scope="module")
def fixture_course(tmp_path_factory):
    """The fixture course released into a scratch course directory."""
    course = tmp_path_factory.mktemp("fixture") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course)
    with nbu.kernel_env(None):
        release(cfg, log=lambda *_: None)
    return cfg


@pytest.mark.slow
def test_check_on_a_half_solved_notebook(fixture_course):
    cfg = fixture_course
    path = write_submission(cfg.course_dir, "half", "01_basics", "partial",
                            cfg.source_notebooks("01_basics")) / "01_basics.ipynb"
    lines = []
    assert check(cfg, path, log=lines.append) == 1
    out = lines[0].splitlines()
    assert out[0] == ("1. ReLU (3 points): visible tests 2 / 2; written answers 1 point is "
                      "judged when graded")
    assert out[1] == "  ok   test_relu (2 points)"
    assert out[2] == "  ---- relu_why (1 point): written answer, graded by hand"
    assert out[3] == "2. Add (1 point): visible tests 0 / 1"
    assert out[4].startswith("  FAIL test_add (1 point): NotImplementedError")
    assert out[5] == ("Total: visible tests 2 / 3; written answers 1 point is judged when "
                      "graded (notebook: 4 points)")
    assert out[6] == ('next: add (solution cell add_impl), in part "2. Add (1 point)", fails '
                      "test_add; fix it, then rerun that test cell")


@pytest.mark.slow
def test_check_follows_no_link_below_submitted(fixture_course, tmp_path):
    cfg = fixture_course
    folder = cfg.course_dir / "submitted" / "mallory" / "01_basics"
    folder.mkdir(parents=True)
    target = cfg.course_dir / "released_source" / "01_basics" / "01_basics.ipynb"
    (folder / "01_basics.ipynb").symlink_to(target)
    lines = []
    assert check(cfg, folder / "01_basics.ipynb", log=lines.append) == 2
    assert "is a symbolic link" in lines[0]
