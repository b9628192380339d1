"""One score store: points live only in nbgrader's gradebook.

The status store keeps statuses, notes, keys and the judge's verdicts (no points); export, the
feedback pages and autograde's returned results read points from the gradebook, so a grade
entered in the formgrader (nbgrader's API: ``Grade.manual_score``) shows everywhere. A notebook
that could not be graded has no score (never a 0) until an instructor grades it by hand.
"""

import csv
import html
import re
import sqlite3
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from cs231n_grading.autograde import autograde
from cs231n_grading.config import load_config
from cs231n_grading.export import export
from cs231n_grading.feedback import feedback
from cs231n_grading.gradebook import attach_scores
from cs231n_grading.release import release
from cs231n_grading.samples import write_submission
from cs231n_grading.status import StatusStore

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"  # test_relu 2, test_add 1, written answer relu_why 1
CLASS = {"alice": "correct", "carol": "partial", "erin": "broken"}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course_dir = tmp_path_factory.mktemp("scores") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course_dir)
    release(cfg, [A], log=lambda *_: None)
    for student, kind in CLASS.items():
        write_submission(course_dir, student, A, kind, cfg.source_notebooks(A))
    autograde(cfg, A, jobs=2, log=lambda *_: None)
    return cfg


def _shown(page: Path) -> str:
    """A feedback page's text as a browser shows it."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page.read_text())))


def _csv(cfg) -> dict:
    path = export(cfg, log=lambda *_: None)
    return {(r["student"], r["notebook"]): r for r in csv.DictReader(path.open())}


def _set_manual(cfg, student: str, grade_id: str, score: float) -> None:
    """Enter a grade as the formgrader does: ``manual_score`` on the cell's Grade."""
    with Gradebook(cfg.gradebook_url) as gb:
        grade = gb.find_grade(grade_id, A, A, student)
        grade.manual_score = score
        grade.needs_manual_grade = False
        gb.db.commit()


def test_status_store_holds_no_points(course):
    db = sqlite3.connect(course.course_dir / "grading_status.db")
    try:
        columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
    finally:
        db.close()
    assert not columns & {"score", "max_score"}, columns
    store = StatusStore(course.course_dir)
    try:
        rows = store.query(assignment=A)
    finally:
        store.close()
    assert {r["student"] for r in rows} == set(CLASS)
    for r in rows:
        assert "score" not in r and "max_score" not in r
        assert all(set(t) == {"grade_id", "passed", "message"} for t in r["tests"]), r["tests"]


def test_an_old_status_store_loses_its_score_columns(tmp_path):
    db = sqlite3.connect(tmp_path / "grading_status.db")
    db.execute("CREATE TABLE results (student TEXT, assignment TEXT, notebook TEXT, status TEXT, "
               "notes TEXT, tests TEXT, score REAL, max_score REAL, key TEXT, duration REAL, "
               "graded_at REAL, PRIMARY KEY (student, assignment, notebook))")
    tests = '[{"grade_id": "t", "points": 2.0, "max_points": 2.0, "passed": true, "message": ""}]'
    db.execute("INSERT INTO results VALUES ('s', 'a', 'n', 'graded', '[]', ?, 2.0, 2.0, 'k', 1.0,"
               " 5.0)", (tests,))
    db.commit()
    db.close()
    store = StatusStore(tmp_path)
    try:
        old = store.get("s", "a", "n")
        store.put({"student": "s2", "assignment": "a", "notebook": "n", "status": "graded",
                   "notes": [], "tests": [], "key": "k2", "duration": 1.0, "score": 9.0})
        assert old["key"] == "k" and old["status"] == "graded" and "score" not in old
        assert old["tests"] == [{"grade_id": "t", "passed": True, "message": ""}]
        assert store.get("s2", "a", "n")["key"] == "k2"
        with pytest.raises(ValueError, match="unknown status column"):
            store.query(score=2.0)
    finally:
        store.close()


def test_scores_come_from_the_gradebook_and_not_graded_is_no_score(course):
    table = _csv(course)
    assert float(table[("alice", A)]["score"]) == 3 and float(table[("carol", A)]["score"]) == 2
    assert table[("erin", A)]["score"] == ""  # not graded: no score, not a 0
    assert table[("erin", A)]["status"].startswith("not graded: ")
    store = StatusStore(course.course_dir)
    try:
        results = attach_scores(course.gradebook_url, store.query(assignment=A))
    finally:
        store.close()
    by = {r["student"]: r for r in results}
    assert by["alice"]["score"] == 3 and by["carol"]["score"] == 2
    assert by["erin"]["score"] is None and by["erin"]["max_score"] == 3
    relu = next(t for t in by["alice"]["tests"] if t["grade_id"] == "test_relu")
    assert relu["points"] == 2 and relu["max_points"] == 2
    feedback(course, A, students=["erin"], log=lambda *_: None)
    erin = _shown(course.course_dir / "feedback" / "erin" / A / f"{A}.html")
    assert "Total: not graded / 4" in erin and "0 / 4" not in erin


def test_manual_grades_show_in_export_and_regenerated_feedback(course):
    """A written answer graded and a failed test overridden in the formgrader (nbgrader's API)
    change the totals of export and of the feedback pages; the status store is untouched."""
    store = StatusStore(course.course_dir)
    before = store.query(assignment=A)
    store.close()
    _set_manual(course, "alice", "relu_why", 1.0)  # written answer: 3 + 1
    _set_manual(course, "carol", "test_add", 1.0)  # override of a failed autograded test
    table = _csv(course)
    assert float(table[("alice", A)]["score"]) == 4
    assert float(table[("carol", A)]["score"]) == 3
    assert float(table[("alice", "(total)")]["score"]) == 4
    assert "need a manual grade" not in table[("alice", A)]["status"]
    assert "need a manual grade" in table[("carol", A)]["status"]  # her answer is ungraded
    pages = feedback(course, A, log=lambda *_: None)
    assert len(pages) == len(CLASS)
    alice = _shown(course.course_dir / "feedback" / "alice" / A / f"{A}.html")
    assert "Total: 4 / 4" in alice and "relu_why 1 / 1 written answer graded by" in alice
    carol = _shown(course.course_dir / "feedback" / "carol" / A / f"{A}.html")
    assert "Autograded score: 3 / 3 (includes scores set by the instructor)" in carol
    assert "test_add 1 / 1 failed; score set by the instructor" in carol
    assert "Total: 3 / 4; written answers not graded yet" in carol
    store = StatusStore(course.course_dir)
    try:
        assert store.query(assignment=A) == before
    finally:
        store.close()


def test_a_not_graded_notebook_graded_by_hand_gets_its_score(course):
    for gid, score in (("test_relu", 2.0), ("test_add", 0.0), ("relu_why", 1.0)):
        _set_manual(course, "erin", gid, score)
    row = _csv(course)[("erin", A)]
    assert float(row["score"]) == 3 and "graded by hand" in row["status"]
    feedback(course, A, students=["erin"], log=lambda *_: None)
    erin = _shown(course.course_dir / "feedback" / "erin" / A / f"{A}.html")
    assert "Total: 3 / 4" in erin
