"""Write grading outcomes into nbgrader's gradebook (parent process only)."""

from __future__ import annotations

import warnings
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from grading.worker import GRADED


def open_gradebook(url: str) -> Gradebook:
    """nbgrader's Gradebook at ``url`` (use as a context manager or close it)."""
    return Gradebook(url)


def _timestamp(folder: Path) -> str | None:
    """The submission time nbgrader wrote in ``timestamp.txt``, if any."""
    stamp = folder / "timestamp.txt"
    return stamp.read_text().strip() or None if stamp.is_file() else None


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
    """Set auto scores of one notebook; a 'not graded' notebook is flagged for a human."""
    ensure_submission(gb, result["assignment"], result["student"], folder)
    nb = gb.find_submission_notebook(result["notebook"], result["assignment"], result["student"])
    graded = result["status"] == GRADED
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
