"""Write grading outcomes into nbgrader's gradebook (parent process only)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from cs231n_grading.outcome import is_graded
from cs231n_grading.safe_files import RefusedFile, submission_root
from cs231n_grading.timestamps import read_timestamp


def create_gradebook(url: str) -> bool:
    """Create nbgrader's gradebook at ``url`` unless it has tables already; True if it did.

    nbgrader creating a gradebook itself runs the ``alembic`` command, found on PATH, to learn
    the schema revision. Here that revision comes from alembic's API (the head of nbgrader's
    migration scripts), so no command runs and PATH need not change. Call this before nbgrader
    touches a new course (``release``); ``open_gradebook`` calls it.
    """
    from alembic.script import ScriptDirectory
    from nbgrader.api import Base
    from nbgrader.dbutil import ALEMBIC_DIR
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        if inspect(engine).get_table_names():
            return False
        Base.metadata.create_all(bind=engine)
        head = ScriptDirectory(ALEMBIC_DIR).get_current_head()
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE alembic_version "
                              "(version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                         {"v": head})
    finally:
        engine.dispose()
    return True


def open_gradebook(url: str) -> Gradebook:
    """nbgrader's Gradebook at ``url``, created first if new (use as a context manager or
    close it)."""
    create_gradebook(url)
    return Gradebook(url)


def _timestamp(folder: Path) -> str | None:
    """The submission time nbgrader wrote in ``timestamp.txt``, if there is a valid one.

    Read without following links below ``submitted/`` and checked the way nbgrader parses it
    (timestamps.read_timestamp): a bad, linked or unreadable file means no timestamp, never an
    error.
    """
    try:
        return read_timestamp(*submission_root(folder))[0]
    except RefusedFile:
        return None


def ensure_submission(gb: Gradebook, assignment: str, student: str, folder: Path):
    """The gradebook's submission of ``student`` (created, with all its grades, if new)."""
    gb.update_or_create_student(student)
    try:
        return gb.find_submission(assignment, student)
    except MissingEntry:
        stamp = _timestamp(folder)
        with warnings.catch_warnings():  # nbgrader builds the rows before adding them
            warnings.simplefilter("ignore")
            return gb.add_submission(assignment, student,
                                     **({"timestamp": stamp} if stamp else {}))


def write_result(gb: Gradebook, result: dict, folder: Path) -> None:
    """Set auto scores of one notebook; a 'not graded' notebook is flagged for a human.

    The points of a test come from ``result`` (the judge's verdict, computed by the worker);
    they are stored only here: the status store keeps the verdict without points.
    """
    ensure_submission(gb, result["assignment"], result["student"], folder)
    nb = gb.find_submission_notebook(result["notebook"], result["assignment"], result["student"])
    graded = is_graded(result["status"])
    tests = {t["grade_id"]: t for t in result["tests"]}
    for grade in nb.grades:
        if graded and grade.name in tests:
            grade.auto_score = tests[grade.name]["points"]
            grade.needs_manual_grade = grade.manual_score is not None
        else:  # written answers, and every cell of a notebook we could not grade
            grade.auto_score = None
            grade.needs_manual_grade = True
    nb.flagged = not graded
    gb.db.commit()


@dataclass(frozen=True)
class CellScore:
    """One grade cell's points as the gradebook holds them."""

    score: float | None  # manual score if set, else auto score; None: nobody scored it yet
    max_score: float
    manual: bool  # the instructor entered or overrode this score (formgrader)


@dataclass(frozen=True)
class NotebookScores:
    """A submitted notebook's points from the gradebook (the only score store)."""

    tests: dict[str, CellScore]  # autograded (code) cells by grade id
    written: dict[str, CellScore]  # manually graded answers (markdown) by grade id

    @property
    def test_score(self) -> float:
        """Points of the test cells (instructor overrides included)."""
        return sum(c.score or 0.0 for c in self.tests.values())

    @property
    def max_test_score(self) -> float:
        """Maximum points of the test cells."""
        return sum(c.max_score for c in self.tests.values())

    @property
    def score(self) -> float:
        """Total points: tests plus written answers graded so far."""
        return self.test_score + sum(c.score or 0.0 for c in self.written.values())

    @property
    def max_score(self) -> float:
        """Maximum total points."""
        return self.max_test_score + sum(c.max_score for c in self.written.values())

    @property
    def ungraded_answers(self) -> list[str]:
        """Grade ids of written answers nobody has graded yet."""
        return [gid for gid, c in self.written.items() if c.score is None]

    @property
    def overridden(self) -> list[str]:
        """Grade ids of test cells whose autograded score the instructor replaced."""
        return [gid for gid, c in self.tests.items() if c.manual]

    @property
    def all_manual(self) -> bool:
        """Whether the instructor scored every cell by hand (e.g. a notebook we could not
        grade): then the notebook has a score although the grader gave none."""
        cells = [*self.tests.values(), *self.written.values()]
        return bool(cells) and all(c.manual for c in cells)


def _cell_score(grade) -> CellScore:
    """CellScore of an nbgrader Grade (``grade.score`` is 0 when neither score is set)."""
    scored = grade.manual_score is not None or grade.auto_score is not None
    return CellScore(float(grade.score) if scored else None, float(grade.max_score or 0.0),
                     grade.manual_score is not None)


def notebook_scores(gb: Gradebook, student: str, assignment: str,
                    notebook: str) -> NotebookScores | None:
    """The gradebook's points of one submitted notebook, or None when it has no entry."""
    try:
        sub = gb.find_submission_notebook(notebook, assignment, student)
    except MissingEntry:
        return None
    tests, written = {}, {}
    for grade in sub.grades:
        (tests if grade.cell_type == "code" else written)[grade.name] = _cell_score(grade)
    return NotebookScores(tests, written)


def graded_score(result: dict | None, scores: NotebookScores | None) -> float | None:
    """A notebook's total from the gradebook; None ("no score", never 0) when it was not
    submitted, has no gradebook entry, or could not be graded and was not graded by hand."""
    if result is None or scores is None:
        return None
    if not is_graded(result["status"]) and not scores.all_manual:
        return None
    return scores.score


def attach_scores(url: str, results: list[dict]) -> list[dict]:
    """``results`` (status store rows) with points read from the gradebook at ``url``:
    ``score``/``max_score`` of the test cells (None for a notebook without a score) and
    ``points``/``max_points`` on each test verdict. For callers that want one dict per notebook
    (``autograde``'s return value); nothing here is stored."""
    with open_gradebook(url) as gb:
        for r in results:
            scores = notebook_scores(gb, r["student"], r["assignment"], r["notebook"])
            tests = scores.tests if scores else {}
            has_score = graded_score(r, scores) is not None
            r["score"] = scores.test_score if has_score else None
            r["max_score"] = scores.max_test_score if scores else None
            for t in r["tests"]:
                cell = tests.get(t["grade_id"])
                t["points"] = (cell.score or 0.0) if cell and has_score else None
                t["max_points"] = cell.max_score if cell else None
    return results
