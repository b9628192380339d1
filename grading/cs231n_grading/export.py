"""``cs231n-course export``: CSV and printed table of scores, max scores and statuses.

Scores come only from nbgrader's gradebook (so manual grades and overrides entered in the
formgrader count); statuses and notes come from the status store. A notebook that could not be
graded has an empty score and its reason, never a silent 0.
"""

from __future__ import annotations

import csv
from pathlib import Path

from cs231n_grading.config import CourseConfig
from cs231n_grading.gradebook import graded_score, notebook_scores, open_gradebook
from cs231n_grading.outcome import GRADED_TEXT, is_graded
from cs231n_grading.status import StatusStore, status_line

CSV_NAME = "grades_with_status.csv"  # nbgrader export writes grades.csv
INCOMPLETE = "incomplete: "  # a total over parts not all graded
COLUMNS = ("student", "assignment", "notebook", "score", "max_score", "status")


def notebook_row(gb, student: str, assignment: str, src: Path, result: dict | None) -> dict:
    """The row of one notebook: its gradebook score ("" when it has none) and its status."""
    scores = notebook_scores(gb, student, assignment, src.stem)
    score = graded_score(result, scores)
    if result is None:
        status = "not submitted"
    else:
        status = status_line(result)
        if scores is None:
            status += "; no gradebook entry"
        elif score is not None and not is_graded(result["status"]):
            status += "; graded by hand"
        elif score is not None and scores.ungraded_answers:
            status += "; written answers need a manual grade"
    return {"student": student, "assignment": assignment, "notebook": src.stem,
            "score": "" if score is None else score,
            "max_score": gb.find_notebook(src.stem, assignment).max_score, "status": status}


def _incomplete(states: list[str]) -> str:
    """``graded`` if every state is, else ``incomplete: <first other state>``.

    A state is a notebook's status text, ``not submitted``, or a total's own state."""
    worst = next((s for s in states if s != GRADED_TEXT), GRADED_TEXT)
    return (worst if worst == GRADED_TEXT or worst.startswith(INCOMPLETE)
            else f"{INCOMPLETE}{worst}")


def _total(student: str, assignment: str, parts: list[dict]) -> dict:
    """Total row over ``parts``; a total over nothing scored is no score at all, never a 0."""
    scored = [p["score"] for p in parts if p["score"] != ""]
    return {"student": student, "assignment": assignment, "notebook": "(total)",
            "score": sum(scored) if scored else "",
            "max_score": sum(p["max_score"] for p in parts),
            "status": _incomplete([p["state"] for p in parts])}


def rows(cfg: CourseConfig) -> list[dict]:
    """A row per student x assignment x notebook, a total row per student (and per assignment
    when it has several notebooks)."""
    assignments = cfg.released()
    store = StatusStore(cfg.course_dir)
    results = {(r["student"], r["assignment"], r["notebook"]): r for r in store.query()}
    store.close()
    out = []
    with open_gradebook(cfg.gradebook_url) as gb:
        for student in sorted({k[0] for k in results}):
            grand = []
            for a in assignments:
                parts = []
                for src in cfg.graded_notebooks(a):
                    r = results.get((student, a, src.stem))
                    parts.append(notebook_row(gb, student, a, src, r)
                                 | {"state": r["status"] if r else "not submitted"})
                total = _total(student, a, parts)
                out += parts + ([total] if len(parts) > 1 else [])
                grand.append(total | {"state": total["status"]})
            out.append(_total(student, "(all)", grand))
    return [{k: r[k] for k in COLUMNS} for r in out]  # the "state" helper key dropped


def write_csv(table: list[dict], path: Path) -> Path:
    """Write ``table`` as CSV to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    return path


def format_table(table: list[dict], width: int = 70) -> str:
    """Fixed-width text table (status cut to ``width`` characters)."""
    head = f"{'student':<10} {'assignment':<18} {'notebook':<18} {'score':>7} {'max':>5}  status"
    lines = [head, "-" * len(head)]
    for r in table:
        score = "" if r["score"] == "" else f"{float(r['score']):.1f}"
        status = r["status"] if len(r["status"]) <= width else r["status"][:width - 3] + "..."
        lines.append(f"{r['student']:<10} {r['assignment']:<18} {r['notebook']:<18} "
                     f"{score:>7} {float(r['max_score']):>5.1f}  {status}")
    return "\n".join(lines)


def export(cfg: CourseConfig, path: Path | None = None, log=print) -> Path:
    """Write the CSV (default ``<course>/grades_with_status.csv``) and print the table."""
    table = rows(cfg)
    out = write_csv(table, path or cfg.course_dir / CSV_NAME)
    log(format_table(table))
    log(f"\nCSV: {out}")
    return out
