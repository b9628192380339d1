"""``autograde`` end to end on a class with linked submissions, a bad timestamp and a result
that cannot be saved: every student gets a status, honest ones are graded, no link is followed.

Fixture course tests/fixtures/course_small, assignment 01_basics (3 points), unsandboxed (what is
tested here happens on the host, before and after the kernels).
"""

import os
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

import cs231n_grading.autograde
from cs231n_grading.autograde import autograde
from cs231n_grading.config import load_config
from cs231n_grading.release import release
from cs231n_grading.samples import write_submission
from cs231n_grading.status import StatusStore

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"
NB = f"{A}.ipynb"
HONEST = ("honest_a", "honest_z")
SAVE_FAILS = "saveless"


def _class(course: Path, source: Path) -> None:
    """Write the class: honest students, a bad timestamp, links of every kind."""
    for student in (*HONEST, "badstamp", "linky", SAVE_FAILS):
        write_submission(course, student, A, "correct", [source])
    (course / "submitted" / "badstamp" / A / "timestamp.txt").write_text("not a date")
    linkstamp = course / "submitted" / "linkstamp" / A  # a link, not a bad date: not graded
    write_submission(course, "linkstamp", A, "correct", [source])
    (linkstamp / "timestamp.txt").unlink()
    (linkstamp / "timestamp.txt").symlink_to("../../honest_a/01_basics/timestamp.txt")
    linky = course / "submitted" / "linky" / A
    (linky / "secret").symlink_to(course / "gradebook.db")  # not copied for the kernel
    os.mkfifo(linky / "pipe")
    # the attack of issue 13: nothing written, the instructor's solution linked in
    mallory = course / "submitted" / "mallory" / A
    mallory.mkdir(parents=True)
    (mallory / NB).symlink_to(f"../../../released_source/{A}/{NB}")
    (course / "submitted" / "trudy").symlink_to("../released_source")  # the student folder
    (course / "submitted" / "oscar").mkdir()
    (course / "submitted" / "oscar" / A).symlink_to(f"../../released_source/{A}")
    assert (mallory / NB).read_text() == (course / "released_source" / A / NB).read_text()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = tmp_path_factory.mktemp("robust") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course, sandbox=False)
    release(cfg, [A], log=lambda *_: None)
    _class(course, FIXTURE / "assignments" / A / NB)
    real_write = cs231n_grading.autograde.write_result

    def write_result(gb, result, folder):
        if result["student"] == SAVE_FAILS:
            raise RuntimeError("disk full")
        real_write(gb, result, folder)

    logged = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cs231n_grading.autograde, "write_result", write_result)
        results = autograde(cfg, A, jobs=2, log=logged.append)
    store = StatusStore(course)
    try:
        stored = {r["student"]: r for r in store.query(assignment=A)}
    finally:
        store.close()
    return {"cfg": cfg, "results": {r["student"]: r for r in results}, "stored": stored,
            "logged": logged}


STUDENTS = {*HONEST, "badstamp", "linky", SAVE_FAILS, "mallory", "trudy", "oscar", "linkstamp"}


def test_every_student_gets_a_stored_status(graded):
    assert set(graded["results"]) == STUDENTS
    assert set(graded["stored"]) == STUDENTS
    for student, r in graded["stored"].items():
        assert r["status"] == graded["results"][student]["status"], student


def test_honest_students_are_graded_in_full(graded):
    for student in (*HONEST, "badstamp", "linky"):
        r = graded["results"][student]
        assert r["status"] == "graded" and r["score"] == 3, (student, r)
    assert graded["results"]["honest_a"]["notes"] == []


@pytest.mark.parametrize(("student", "reason"), [
    ("mallory", f"{NB} is a symbolic link"),
    ("trudy", "folder trudy is a symbolic link"),
    ("oscar", f"folder oscar/{A} is a symbolic link"),
    ("linkstamp", "timestamp.txt is a symbolic link"),
])
def test_linked_submissions_are_not_graded_and_score_nothing(graded, student, reason):
    r = graded["results"][student]
    assert r["status"] == f"not graded: {reason}", r["status"]
    assert r["score"] is None and r["tests"] == []  # no score, never a silent 0
    with Gradebook(graded["cfg"].gradebook_url) as gb:
        nb = gb.find_submission_notebook(A, A, student)
        assert nb.flagged
        assert all(g.auto_score is None and g.manual_score is None for g in nb.grades)


def test_a_bad_timestamp_is_a_note_and_no_submission_time(graded):
    r = graded["results"]["badstamp"]
    assert any(n.startswith("submission time not recorded: timestamp.txt holds 'not a date'")
               for n in r["notes"]), r["notes"]
    with Gradebook(graded["cfg"].gradebook_url) as gb:
        assert gb.find_submission(A, "badstamp").timestamp is None
        assert gb.find_submission(A, "honest_a").timestamp is not None


def test_links_and_pipes_in_a_submission_folder_are_not_copied(graded):
    notes = graded["results"]["linky"]["notes"]
    assert "not copied for grading: secret is a symbolic link (only regular files are)" in notes
    assert any("pipe is a named pipe" in n for n in notes), notes


def test_a_result_that_cannot_be_saved_costs_only_its_notebook(graded):
    r = graded["stored"][SAVE_FAILS]
    assert r["status"] == "not graded: result could not be saved (RuntimeError: disk full)"
    assert any(SAVE_FAILS in line and "disk full" in line for line in graded["logged"])
    with Gradebook(graded["cfg"].gradebook_url) as gb:
        for student in HONEST:
            assert gb.find_submission_notebook(A, A, student).score == 3
