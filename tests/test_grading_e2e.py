"""End-to-end grading of the small fixture course: release, autograde, resume, feedback, export,
check and verify, with the expected score and status of every student."""

import csv
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_output

from cs231n_grading.autograde import autograde
from cs231n_grading.cli import main
from cs231n_grading.config import load_config
from cs231n_grading.export import export, rows
from cs231n_grading.feedback import feedback
from cs231n_grading.gradebook import attach_scores
from cs231n_grading.leakscan import hidden_test_lines, scan_release
from cs231n_grading.release import release
from cs231n_grading.restore import nbg
from cs231n_grading.samples import fill, write_submission
from cs231n_grading.status import StatusStore
from cs231n_lib.checks import RECORD_MIME, encode_value

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"


def _edit(course, student, fn):
    """Write a correct 01_basics submission for ``student`` after ``fn(nb)`` edits it."""
    src = FIXTURE / "assignments" / A / f"{A}.ipynb"
    nb = fill(nbformat.read(course / "release" / A / f"{A}.ipynb", 4), nbformat.read(src, 4))
    fn(nb)
    folder = course / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{A}.ipynb")


def _cell(nb, gid):
    return next(c for c in nb.cells if nbg(c).get("grade_id") == gid)


def tamper(nb):
    nb.cells.remove(_cell(nb, "test_add"))
    _cell(nb, "test_relu").source = 'record("relu_small", np.array([0.0, 0.0, 2.5]))'


def kill_kernel(nb):
    _cell(nb, "relu_impl").source = "def relu(x):\n    import os\n    os._exit(1)"


def loop_forever(nb):
    _cell(nb, "add_impl").source = "def add(a, b):\n    while True:\n        pass"


def fake_cell_and_reference_library(nb):
    _cell(nb, "relu_impl").source = "from fixturelib.ops import relu  # the library's answer"
    nb.cells.insert(3, new_code_cell("print('free points')", metadata={"nbgrader": {
        "schema_version": 3, "grade": True, "solution": False, "locked": True,
        "grade_id": "bonus", "points": 100}}))


def forged_records(nb):
    cell = _cell(nb, "add_impl")
    forged = {RECORD_MIME: {"id": "add_ints", "kind": "equal", "value": 5}}
    cell.source = ("from IPython.display import display\n\ndef add(a, b):\n"
                   f"    display({forged!r}, raw=True)\n    return a - b")
    cell.outputs = [new_output("display_data", data={RECORD_MIME: {
        "id": "add_hidden_squares", "kind": "close", "value": encode_value(1.0)}})]


# student -> (how the submission is made, expected 01_basics autograded score, status start)
CLASS = {
    "alice": ("correct", 3, "graded"),
    "bob": ("untouched", 0, "graded"),
    "carol": ("partial", 2, "graded"),
    "dave": ("warnings", 3, "graded"),
    "erin": ("broken", None, "not graded: 01_basics.ipynb: invalid JSON"),
    "frank": (tamper, 3, "graded"),
    "grace": (kill_kernel, 1, "graded"),
    "heidi": (loop_forever, 2, "graded"),
    "ivan": ("missing", None, "not graded: missing notebook 01_basics.ipynb"),
    "judy": (fake_cell_and_reference_library, 1, "graded"),
    "kate": (forged_records, 2, "graded"),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course_dir = tmp_path_factory.mktemp("course") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course_dir)
    release(cfg, log=lambda *_: None)
    sources = {a: cfg.source_notebooks(a) for a in cfg.assignments()}
    for student, (kind, _, _) in CLASS.items():
        if kind == "missing":
            (course_dir / "submitted" / student / A).mkdir(parents=True)
        elif callable(kind):
            _edit(course_dir, student, kind)
        else:
            write_submission(course_dir, student, A, kind, sources[A])
    for student, kind in (("alice", "correct"), ("bob", "untouched")):
        write_submission(course_dir, student, "02_loops", kind, sources["02_loops"])
    results = autograde(cfg, jobs=2, log=lambda *_: None)
    return cfg, results


def test_release_is_clean_and_stubs_the_library(course):
    cfg, _ = course
    sources = [nb for a in cfg.assignments() for nb in cfg.source_notebooks(a)]
    assert scan_release([cfg.course_dir / "release", cfg.student_library_dir], sources) == []
    ops = (cfg.student_library_dir / "fixturelib" / "ops.py").read_text()
    assert "np.maximum" not in ops and "01_basics, section 1. ReLU" in ops
    assert "return np.asarray(x) ** 2" in ops  # given code kept
    # the scan fails on a leak: put the source notebook into the release
    leak = cfg.course_dir / "release" / A / "copy_of_source.ipynb"
    shutil.copy(sources[0], leak)
    try:
        problems = scan_release([cfg.course_dir / "release"], sources)
    finally:
        leak.unlink()
    assert any("BEGIN HIDDEN TESTS" in p for p in problems)
    assert any("hidden test block" in p for p in problems)


def test_every_student_gets_the_expected_score_and_status(course):
    cfg, results = course
    by = {(r["student"], r["assignment"]): r for r in results}
    for student, (_, score, status) in CLASS.items():
        r = by[(student, A)]
        assert r["status"].startswith(status), (student, r["status"])
        if score is not None:
            assert r["score"] == score, (student, r["tests"])
        assert r["max_score"] == 3
    assert by[("alice", "02_loops")]["score"] == 3 and by[("bob", "02_loops")]["score"] == 0


def test_notes_explain_tampering_kernel_death_and_timeouts(course):
    _, results = course
    notes = {r["student"]: " | ".join(r["notes"]) for r in results if r["assignment"] == A}
    assert "test cell test_add was deleted" in notes["frank"]
    assert "test cell test_relu was edited" in notes["frank"]
    assert "kernel died" in notes["grace"] and "test_relu" in notes["grace"]
    assert "timed out after 3 s" in notes["heidi"] and "test_add" in notes["heidi"]
    assert "extra cell bonus" in notes["judy"]
    assert notes["alice"] == "" and notes["dave"] == ""  # warnings/stderr are not penalised
    kate = next(r for r in results if r["student"] == "kate" and r["assignment"] == A)
    add = next(t for t in kate["tests"] if t["grade_id"] == "test_add")
    assert "recorded 2 times" in add["message"]
    judy = next(r for r in results if r["student"] == "judy" and r["assignment"] == A)
    relu = next(t for t in judy["tests"] if t["grade_id"] == "test_relu")
    assert "NotImplementedError" in relu["message"]  # student edition, not the reference


def test_grading_environment_and_gradebook(course):
    cfg, _ = course
    executed = nbformat.read(cfg.course_dir / "autograded" / "alice" / A / f"{A}.ipynb", 4)
    assert "grading budget: 1" in executed.cells[1].outputs[0].text
    # kernels graded side by side (jobs=2) share the CPUs: BLAS and the library's threads
    share = max(1, (os.cpu_count() or 1) // 2)
    assert f"threads: {share} {share}" in executed.cells[1].outputs[0].text
    from nbgrader.api import Gradebook
    with Gradebook(cfg.gradebook_url) as gb:
        assert gb.find_submission_notebook(A, A, "alice").score == 3
        assert gb.find_submission_notebook(A, A, "frank").score == 3
        erin = gb.find_submission_notebook(A, A, "erin")
        assert erin.flagged and erin.needs_manual_grade


def test_resume_skips_unchanged_work_and_regrades_changed(course):
    cfg, _ = course
    again = autograde(cfg, jobs=2, log=lambda *_: None)
    assert all(r["status"] in ("graded",) or r["student"] in ("erin", "ivan") for r in again)
    store = StatusStore(cfg.course_dir)
    before = {(r["student"], r["assignment"]): r["graded_at"] for r in store.query()}
    store.close()
    write_submission(cfg.course_dir, "bob", A, "correct", cfg.source_notebooks(A))
    autograde(cfg, A, jobs=2, log=lambda *_: None)
    store = StatusStore(cfg.course_dir)
    after = {(r["student"], r["assignment"]): r for r in store.query()}
    store.close()
    changed = {k for k, r in after.items() if r["graded_at"] != before[k]}
    assert changed == {("bob", A), ("erin", A), ("ivan", A)}  # not graded ones are retried
    assert "score" not in after[("bob", A)]  # the status store holds no points
    assert attach_scores(cfg.gradebook_url, [after[("bob", A)]])[0]["score"] == 3  # gradebook


def test_feedback_shows_results_but_no_hidden_test_source(course):
    cfg, _ = course
    pages = feedback(cfg, log=lambda *_: None)
    assert len(pages) == len(StatusStore(cfg.course_dir).query())
    src = FIXTURE / "assignments" / A / f"{A}.ipynb"
    hidden = hidden_test_lines("\n".join(c.source for c in nbformat.read(src, 4).cells))
    assert hidden
    for page in pages:  # as a browser shows it: tags (syntax highlighting) gone, unescaped
        text = html.unescape(re.sub(r"<[^>]+>", "", page.read_text()))
        for line in hidden:
            assert line not in text, (page, line)
    carol = (cfg.course_dir / "feedback" / "carol" / A / f"{A}.html").read_text()
    assert "hidden tests: not shown" in carol and "test_add" in carol and "not recorded" in carol
    erin = (cfg.course_dir / "feedback" / "erin" / A / f"{A}.html").read_text()
    assert "not graded: 01_basics.ipynb: invalid JSON" in erin


def test_export_csv_has_scores_statuses_and_totals(course, capsys):
    cfg, _ = course
    path = export(cfg, cfg.course_dir / "grades_with_status.csv")
    table = {(r["student"], r["assignment"], r["notebook"]): r
             for r in csv.DictReader(path.open())}
    assert float(table[("alice", A, A)]["score"]) == 3
    assert float(table[("alice", A, A)]["max_score"]) == 4  # + the written answer
    assert table[("erin", A, A)]["score"] == ""
    assert table[("erin", A, A)]["status"].startswith("not graded: 01_basics.ipynb")
    assert table[("carol", "02_loops", "02_loops")]["status"] == "not submitted"
    assert float(table[("alice", "(all)", "(total)")]["score"]) == 6
    # nothing of erin's could be graded: her total is no score, not a 0
    assert table[("erin", "(all)", "(total)")]["score"] == ""
    assert table[("erin", "(all)", "(total)")]["status"].startswith("incomplete: not graded")
    assert "written answers need a manual grade" in table[("alice", A, A)]["status"]
    assert "not graded" in capsys.readouterr().out
    assert len(rows(cfg)) == len(table)


def test_check_scores_visible_tests_and_sets_exit_code(course, capsys):
    cfg, _ = course
    args = ["--course", str(FIXTURE), "--course-dir", str(cfg.course_dir), "check"]
    carol = cfg.course_dir / "submitted" / "carol" / A / f"{A}.ipynb"
    assert main(args + [str(carol)]) == 1
    out = capsys.readouterr().out
    assert "1. ReLU (3 points): visible tests 2 / 2; written answers 1 point" in out
    assert "FAIL test_add" in out and "Total: visible tests 2 / 3;" in out
    assert "next: add (solution cell add_impl)" in out
    alice = cfg.course_dir / "submitted" / "alice" / A / f"{A}.ipynb"
    assert main(args + [str(alice)]) == 0
    out = capsys.readouterr().out
    assert "Total: visible tests 3 / 3" in out and "next: every visible test passes" in out
    erin = cfg.course_dir / "submitted" / "erin" / A / f"{A}.ipynb"
    assert main(args + [str(erin)]) == 2


def test_verify_passes_on_fixture_and_fails_on_a_broken_source(tmp_path, capsys):
    assert main(["--course", str(FIXTURE), "verify", "02_loops"]) == 0
    assert "02_loops" in capsys.readouterr().out
    broken = tmp_path / "course_src"
    shutil.copytree(FIXTURE, broken, ignore=shutil.ignore_patterns("course", "__pycache__"))
    (broken / "nbgrader_config.py").write_text(
        (broken / "nbgrader_config.py").read_text().replace(
            '"../../../cs231n_lib"', repr(str(FIXTURE.parents[2] / "cs231n_lib"))))
    path = broken / "assignments" / "02_loops" / "02_loops.ipynb"
    nb = nbformat.read(path, 4)
    # a test that does not call the student's code gives its points away
    _cell(nb, "test_total_bound").source = 'record("total_halves", 5.0, kind="at_least", bound=4)'
    _cell(nb, "test_total").source = "assert True  # records nothing: cannot be judged"
    nbformat.write(nb, path)
    assert main(["--course", str(broken), "verify", "02_loops"]) == 1
    out = capsys.readouterr().out
    assert "student version scores 1" in out and "no reference records" in out and "FAIL" in out


def test_python_dash_m_grading_runs():
    out = subprocess.run([sys.executable, "-m", "cs231n_grading", "--help"], capture_output=True,
                         text=True, check=True)
    assert "autograde" in out.stdout and "verify" in out.stdout


def test_sandboxed_grading_hides_the_course_from_student_code(tmp_path):
    """With the sandbox on, a submission cannot read the source notebook (unsandboxed it can)."""
    from cs231n_grading.sandbox import sandbox_available

    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=tmp_path / "c", sandbox=True)
    release(cfg, [A], log=lambda *_: None)
    source = FIXTURE / "assignments" / A / f"{A}.ipynb"
    write_submission(cfg.course_dir, "alice", A, "correct", [source])

    def peek(nb):
        _cell(nb, "relu_impl").source = (
            f"def relu(x):\n    open({str(source)!r}).read()\n    return np.maximum(0, x)")

    _edit(cfg.course_dir, "mallory", peek)
    ok, why = sandbox_available()
    if not ok:  # no bubblewrap here: the grader must refuse, not silently run unsandboxed
        with pytest.raises(RuntimeError, match="sandbox is unavailable"):
            autograde(cfg, A, jobs=2, log=lambda *_: None)
        return
    by = {r["student"]: r for r in autograde(cfg, A, jobs=2, log=lambda *_: None)}
    assert by["alice"]["score"] == 3
    relu = next(t for t in by["mallory"]["tests"] if t["grade_id"] == "test_relu")
    assert by["mallory"]["score"] == 1 and "FileNotFoundError" in relu["message"]


def test_run_notebook_caps_output_keeps_records_and_enforces_the_notebook_limit(tmp_path):
    from cs231n_grading.execute import run_notebook
    from cs231n_grading.judge import cell_records
    from cs231n_grading.kernels import make_kernel_manager

    lib = tmp_path / "lib"
    shutil.copytree(FIXTURE.parents[2] / "cs231n_lib", lib / "cs231n_lib")
    flood = ("from cs231n_lib.checks import record\nfor i in range(3000):\n"
             "    print('x' * 1000)\nrecord('after_flood', 1, kind='equal')")
    nb = nbformat.v4.new_notebook(cells=[new_code_cell(flood), new_code_cell(
        "import time\ntime.sleep(30)"), new_code_cell("1 + 1", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1,
            "schema_version": 3}})])
    run = run_notebook(nb, lambda: make_kernel_manager(tmp_path, library_dir=lib),
                       cwd=str(tmp_path), cell_timeout=60, notebook_timeout=8,
                       max_output_bytes=100_000)
    text = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert len(text) < 200_000 and "dropped by the grader" in text
    assert [r["id"] for r in cell_records(nb.cells[0])] == ["after_flood"]
    assert not run.finished and "notebook time limit (8 s)" in run.stop_reason
    assert "not run" in nb.cells[2].metadata["cs231n_grading"]["event"]


def test_demo_on_the_fixture_course_ends_with_where_everything_is(tmp_path, capsys):
    course_dir = tmp_path / "demo"
    assert main(["--course", str(FIXTURE), "--course-dir", str(course_dir), "demo",
                 "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "Open next:" in out and str(course_dir / "grades_with_status.csv") in out
    table = list(csv.DictReader((course_dir / "grades_with_status.csv").open()))
    status = {(r["student"], r["notebook"]): r["status"] for r in table}
    assert status[("dave", A)].startswith("graded")  # warnings cost nothing
    assert status[("erin", A)].startswith("not graded: 01_basics.ipynb: invalid JSON")
    assert "tampering" not in " ".join(status.values())  # honest work raises no flags
    assert len(list((course_dir / "feedback").rglob("*.html"))) == 10
    # both editions released, so `make lab` shows the Chinese one beside the English
    assert (course_dir / "release" / A / f"{A}.ipynb").is_file()
    assert (course_dir / "release" / A / f"{A}.zh.ipynb").is_file()


def test_local_kernels_leave_no_socket_folders_even_when_they_die(tmp_path, monkeypatch):
    import tempfile

    from cs231n_grading.execute import run_notebook
    from cs231n_grading.kernels import make_kernel_manager

    lib = tmp_path / "lib"
    shutil.copytree(FIXTURE.parents[2] / "cs231n_lib", lib / "cs231n_lib")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # where mkdtemp makes the folders
    nb = nbformat.v4.new_notebook(cells=[
        new_code_cell("import os\nos._exit(1)"),  # the kernel dies: a restart, a new manager
        new_code_cell("1 + 1", metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1,
            "schema_version": 3}})])
    run = run_notebook(nb, lambda: make_kernel_manager(tmp_path, library_dir=lib),
                       cwd=str(tmp_path), cell_timeout=60, notebook_timeout=120)
    assert any("kernel died" in e for e in run.events)
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "2"  # the second kernel ran it
    assert sorted(p.name for p in tmp.iterdir()) == []
