"""Grading outcomes next to the gradebook: ``<course>/grading_status.db`` (SQLite).

One row per (student, assignment, notebook): status (``graded`` or ``not graded: <reason>``),
notes (tampering, timeouts, kernel deaths), per-test verdicts, scores, and the key (submission
and reference hashes) that lets a re-run skip unchanged, already graded work.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS results (
    student TEXT, assignment TEXT, notebook TEXT, status TEXT, notes TEXT, tests TEXT,
    score REAL, max_score REAL, key TEXT, duration REAL, graded_at REAL,
    PRIMARY KEY (student, assignment, notebook))"""
FIELDS = ("student", "assignment", "notebook", "status", "notes", "tests", "score", "max_score",
          "key", "duration", "graded_at")


class StatusStore:
    """Small SQLite table of grading outcomes (written by the parent process only)."""

    def __init__(self, course_dir: Path):
        self.path = Path(course_dir) / "grading_status.db"
        self.db = sqlite3.connect(self.path)
        self.db.execute(SCHEMA)

    def put(self, result: dict) -> None:
        """Insert or replace the outcome of one notebook."""
        row = dict(result, notes=json.dumps(result.get("notes", [])),
                   tests=json.dumps(result.get("tests", [])), graded_at=time.time())
        self.db.execute(f"INSERT OR REPLACE INTO results VALUES ({','.join('?' * len(FIELDS))})",
                        [row.get(f) for f in FIELDS])
        self.db.commit()

    def get(self, student: str, assignment: str, notebook: str) -> dict | None:
        """The stored outcome of one notebook, or None."""
        rows = self.query(student=student, assignment=assignment, notebook=notebook)
        return rows[0] if rows else None

    def query(self, **where) -> list[dict]:
        """Stored outcomes matching ``where`` (column=value), sorted."""
        sql = "SELECT * FROM results"
        if where:
            sql += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        cur = self.db.execute(sql + " ORDER BY student, assignment, notebook",
                              list(where.values()))
        out = []
        for row in cur.fetchall():
            d = dict(zip(FIELDS, row, strict=True))
            d["notes"], d["tests"] = json.loads(d["notes"]), json.loads(d["tests"])
            out.append(d)
        return out

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()


def status_line(result: dict) -> str:
    """Status plus notes, e.g. ``graded (tampering: test cell x was edited (restored))``."""
    notes = [n for n in result.get("notes", []) if "\n" not in n]
    return result["status"] + (f" ({'; '.join(notes)})" if notes else "")
