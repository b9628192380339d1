"""The course notebooks: metadata, clean committed form, sync with course_src/, and execution.

Slow tests execute every notebook with a real kernel (nbclient), in grading mode
(CS231N_GRADING=1) and against the student edition of the library, in which the library's copies
of the exercises raise NotImplementedError:

* the source notebook (reference solutions + hidden tests) passes every test cell, each test cell
  records its values (the run's time is printed, not asserted: benchmarks measure time);
* the nbgrader student version has no solution code and no hidden test, executes to the end, and
  every test cell fails with NotImplementedError, also with the hidden tests restored (as the
  grader runs it): a score of 0 on every code part.
"""

from __future__ import annotations

from collections import Counter

import nbformat
import notebook_utils as nbu
import pytest

NAMES = nbu.notebook_names()


def test_course_has_the_first_notebooks():
    assert NAMES[:3] == ["01_convolution", "02_padding_stride", "03_pooling"]


@pytest.fixture(scope="module")
def student_lib(tmp_path_factory):
    return nbu.student_library(tmp_path_factory.mktemp("student_lib"))


@pytest.mark.parametrize("name", NAMES)
def test_metadata_is_valid_nbgrader_v3(name):
    assert nbu.metadata_problems(nbu.read(name)) == []


@pytest.mark.parametrize("corrupt, message", [
    (lambda m: m.update(extra=1), "keys"),
    (lambda m: m.pop("points"), "does not have points"),
    (lambda m: m.update(grade_id="test conv"), "bad grade_id"),
    (lambda m: m.update(schema_version=2), "schema_version"),
])
def test_metadata_check_catches_corruption(corrupt, message):
    nb = nbu.read(NAMES[0])
    graded = next(c for c in nb.cells if nbu.role(c) == "tests")
    corrupt(graded.metadata["nbgrader"])
    assert any(message in p for p in nbu.metadata_problems(nb))


def test_metadata_check_catches_duplicate_ids():
    nb = nbu.read(NAMES[0])
    nb.cells[2].metadata["nbgrader"]["grade_id"] = nb.cells[1].metadata["nbgrader"]["grade_id"]
    assert any("Duplicate grade id" in p for p in nbu.metadata_problems(nb))


@pytest.mark.parametrize("name", NAMES)
def test_points_add_up_to_stated_total(name):
    nb = nbu.read(name)
    points = nbu.points(nb)
    assert points, "no graded cell"
    assert sum(points.values()) == nbu.stated_total(nb)
    parts = nbu.part_points(nb)
    assert parts, "no '## N. ... (P points)' part headings"
    for number, stated, counted in parts:
        assert stated == counted, f"part {number} states {stated} points, its cells give {counted}"
    assert [p[0] for p in parts] == [str(k) for k in range(1, len(parts) + 1)]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_clean(name):
    assert nbu.is_clean(nbu.read(name)) == []


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_source(name):
    build = nbu.load_build()
    source = nbu.COURSE_SRC / f"{name}.py"
    expected = build.notebook_text(build.build_notebook(source))
    assert nbu.notebook_path(name).read_text(encoding="utf-8") == expected, (
        f"{nbu.notebook_path(name)} is out of sync: run python course_src/build.py")


@pytest.mark.parametrize("name", NAMES)
def test_every_solution_has_a_test_and_hidden_tests_exist(name):
    nb = nbu.read(name)
    roles = Counter(nbu.role(c) for c in nb.cells)
    assert roles["solution"] >= 1 and roles["tests"] >= 1
    assert roles["answer"] >= 1, "at least one manually graded written answer"
    hidden = [c for c in nb.cells if "### BEGIN HIDDEN TESTS" in c.source]
    assert hidden and all(nbu.role(c) == "tests" for c in hidden)


@pytest.mark.parametrize("name", NAMES)
def test_written_questions_survive_release(name):
    # nbgrader replaces a whole answer cell by "YOUR ANSWER HERE": the question must be in the
    # read-only markdown cell before it.
    cells = nbu.read(name).cells
    for k, cell in enumerate(cells):
        if nbu.role(cell) == "answer":
            before = cells[k - 1]
            assert before.cell_type == "markdown" and nbu.role(before) == "readonly", (
                f"answer cell {cell.metadata['nbgrader']['grade_id']} needs a question before it")


@pytest.mark.parametrize("source, message", [
    ("# %% solution: f\ndef f():\n    pass\n", "BEGIN/END SOLUTION"),
    ("# %% tests: t\nassert True\n", r"needs '\(N points\)'"),
    ("# %%\nx = 1\n# %% tests: t (1 point)\n### BEGIN HIDDEN TESTS\n", "hidden-test markers"),
    ("# %% [markdown] answer: a (2 points)\n# text\n# %% answer: a (1 point)\nx\n",
     "answer cells are markdown"),
    ("# %% tests: t (1 point)\nx\n# %% tests: t (1 point)\ny\n", "duplicate grade id"),
    ("# %% [markdown]\nnot a comment\n", "must start with '# '"),
    ("# %% solutions: f\n", "malformed cell header"),
])
def test_build_rejects_malformed_sources(source, message):
    with pytest.raises(ValueError, match=message):
        nbu.load_build().parse_cells(source)


def test_build_moves_questions_out_of_answer_cells():
    cells = nbu.load_build().parse_cells(
        "# %% [markdown] answer: q (2 points)\n# Why?\n#\n# **Reference answer.** Because.\n")
    assert [(c.cell_type, nbu.role(c), c.source) for c in cells] == [
        ("markdown", "readonly", "Why?"), ("markdown", "answer", "**Reference answer.** Because.")]


def test_build_writes_exact_metadata():
    cells = nbu.load_build().parse_cells(
        "# %% [markdown]\n# Title\n#\n# text\n"
        "# %% solution: f\ndef f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n"
        "# %% tests: test_f (2 points)\nassert f() == 1\n"
        "# %% [markdown] answer: q (1 point)\n# An answer.\n")
    metas = [c.metadata["nbgrader"] for c in cells]
    assert [c.cell_type for c in cells] == ["markdown", "code", "code", "markdown"]
    assert cells[0].source == "Title\n\ntext"
    assert metas[0] == {"grade": False, "grade_id": "readonly_01", "locked": True,
                        "schema_version": 3, "solution": False}
    assert metas[1] == {"grade": False, "grade_id": "f", "locked": False, "schema_version": 3,
                        "solution": True}
    assert metas[2] == {"grade": True, "grade_id": "test_f", "locked": True, "points": 2,
                        "schema_version": 3, "solution": False}
    assert metas[3] == {"grade": True, "grade_id": "q", "locked": False, "points": 1,
                        "schema_version": 3, "solution": True}
    assert [c["id"] for c in cells] == ["readonly_01", "f", "test_f", "q"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NAMES)
def test_source_notebook_passes_all_tests(name, student_lib):
    nb = nbu.read(name)
    seconds = nbu.execute(nb, nbu.notebook_path(name).parent, allow_errors=True,
                          pythonpath=student_lib)
    # the time is reported, not asserted: a shared machine makes any bound flaky
    print(f"\n{name}: source notebook executed in {seconds:.1f} s")
    failures = [(c.metadata["nbgrader"]["grade_id"], nbu.error_of(c)) for c in nb.cells
                if c.cell_type == "code" and nbu.error_of(c)]
    assert failures == []
    ids = []
    for cell in nb.cells:
        if nbu.role(cell) != "tests":
            continue
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        recs = nbu.records(cell)
        assert recs, f"test cell {grade_id} records nothing"
        assert [r for r in recs if r.get("error") or r.get("value") is None] == []
        assert nbu.stderr_of(cell) == "", f"{grade_id} writes to stderr"
        ids += [r["id"] for r in recs]
    assert len(ids) == len(set(ids)), f"duplicate record ids: {Counter(ids).most_common(3)}"


def _assert_all_tests_fail(nb, label):
    for cell in nb.cells:
        if nbu.role(cell) != "tests":
            continue
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        if not nbu.strip_docstring(cell.source):
            continue  # only hidden tests: nothing runs in the student's view
        error = nbu.error_of(cell)
        assert error is not None and error[0] == "NotImplementedError", (
            f"{label}: test cell {grade_id} should fail with NotImplementedError, got {error}")
        assert nbu.records(cell) == [], f"{label}: {grade_id} recorded a value"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", NAMES)
def test_student_version_scores_zero(name, student_lib, tmp_path):
    source = nbu.read(name)
    student = nbu.release(name, tmp_path / "course")
    text = nbformat.writes(student)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "Reference answer"):
        assert marker not in text, f"student version contains {marker!r}"
    for cell in student.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            assert "raise NotImplementedError()" in cell.source
    workdir = tmp_path / "course" / "release" / name
    nbu.execute(student, workdir, allow_errors=True, pythonpath=student_lib)
    _assert_all_tests_fail(student, "student version")

    # As the grader runs a submission: the instructor's test cells (hidden tests included).
    graded = nbu.release(name, tmp_path / "course2")
    tests = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
             if nbu.role(c) == "tests"}
    for cell in graded.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in tests:
            cell.source = tests[grade_id]
    nbu.execute(graded, workdir, allow_errors=True, pythonpath=student_lib)
    _assert_all_tests_fail(graded, "with hidden tests")
