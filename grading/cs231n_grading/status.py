"""Grading outcomes next to the gradebook: ``<course>/grading_status.db`` (SQLite).

One row per (student, assignment, notebook): status (``graded`` or ``not graded: <reason>``),
notes (tampering, timeouts, kernel deaths), the judge's verdict on each test cell (grade id,
passed, message, in the language of the graded edition), that edition (``lang``: "en" or
"zh"), the key (submission and reference hashes) that lets a re-run skip unchanged, already
graded work, and the grading time. No scores: points live only in nbgrader's gradebook
(``cs231n_grading.gradebook.notebook_scores``), where the formgrader's manual grades and
overrides are.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from cs231n_grading.outcome import Status

SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    student TEXT, assignment TEXT, notebook TEXT, status TEXT, notes TEXT, tests TEXT,
    key TEXT, duration REAL, graded_at REAL, lang TEXT,
    PRIMARY KEY (student, assignment, notebook))"""
FIELDS = ("student", "assignment", "notebook", "status", "notes", "tests", "key", "duration",
          "graded_at", "lang")
VERDICT_FIELDS = ("grade_id", "passed", "message")  # what is kept of each test's result
OLD_SCORE_COLUMNS = ("score", "max_score")  # stored by earlier versions; dropped on open


def verdicts(tests: list[dict]) -> list[dict]:
    """The judge's verdicts of ``tests`` without points (the gradebook holds those)."""
    return [{k: t.get(k) for k in VERDICT_FIELDS} for t in tests]


class StatusStore:
    """Small SQLite table of grading outcomes (written by the parent process only)."""

    def __init__(self, course_dir: Path):
        self.path = Path(course_dir) / "grading_status.db"
        self.db = sqlite3.connect(self.path)
        self.db.execute(SCHEMA)
        self._drop_old_score_columns()
        self._add_lang_column()

    def _add_lang_column(self) -> None:
        """Add the ``lang`` column (the graded edition: "en" or "zh") to an older store."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(results)")}
        if "lang" not in columns:
            self.db.execute("ALTER TABLE results ADD COLUMN lang TEXT")
            self.db.commit()

    def _drop_old_score_columns(self) -> None:
        """Remove the score columns a store written by an earlier version still has."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(results)")}
        for col in OLD_SCORE_COLUMNS:
            if col in columns:
                self.db.execute(f"ALTER TABLE results DROP COLUMN {col}")
        self.db.commit()

    def put(self, result: dict) -> None:
        """Insert or replace the outcome of one notebook (scores in ``result`` are ignored);
        ValueError when its status is not a grading status (cs231n_grading.outcome)."""
        Status.parse(result["status"])
        row = dict(result, notes=json.dumps(result.get("notes", [])),
                   tests=json.dumps(verdicts(result.get("tests", []))), graded_at=time.time())
        self.db.execute(f"INSERT OR REPLACE INTO results ({','.join(FIELDS)}) "
                        f"VALUES ({','.join('?' * len(FIELDS))})", [row.get(f) for f in FIELDS])
        self.db.commit()

    def get(self, student: str, assignment: str, notebook: str) -> dict | None:
        """The stored outcome of one notebook, or None."""
        rows = self.query(student=student, assignment=assignment, notebook=notebook)
        return rows[0] if rows else None

    def query(self, **where) -> list[dict]:
        """Stored outcomes matching ``where`` (column=value), sorted."""
        unknown = set(where) - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown status column(s) {sorted(unknown)}; known: {FIELDS}")
        sql = f"SELECT {','.join(FIELDS)} FROM results"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        cur = self.db.execute(sql + " ORDER BY student, assignment, notebook",
                              list(where.values()))
        out = []
        for row in cur.fetchall():
            d = dict(zip(FIELDS, row, strict=True))
            d["notes"], d["tests"] = json.loads(d["notes"]), verdicts(json.loads(d["tests"]))
            d["lang"] = d["lang"] or "en"  # stored before the Chinese edition existed
            out.append(d)
        return out

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()


def status_line(result: dict) -> str:
    """Status plus notes, e.g. ``graded (tampering: test cell x was edited (restored))``."""
    notes = [n for n in result.get("notes", []) if "\n" not in n]
    return result["status"] + (f" ({'; '.join(notes)})" if notes else "")
