"""``cs231n-course export``: CSV and printed table of scores, max scores and statuses.

Scores come from nbgrader's gradebook (so manual grades entered in the formgrader count);
statuses come from the status store. A notebook that could not be graded has an empty score and
its reason, never a silent 0.
"""

from __future__ import annotations

import csv
from pathlib import Path

from nbgrader.api import MissingEntry

from grading.config import CourseConfig
from grading.gradebook import open_gradebook
from grading.status import StatusStore, status_line
from grading.worker import GRADED

CSV_NAME = "grades_with_status.csv"  # nbgrader export writes grades.csv
COLUMNS = ("student", "assignment", "notebook", "score", "max_score", "status")


def rows(cfg: CourseConfig) -> list[dict]:
    """A row per student x assignment x notebook, a total row per student (and per assignment
    when it has several notebooks)."""
    assignments = cfg.released()
    store = StatusStore(cfg.course_dir)
    results = {(r["student"], r["assignment"], r["notebook"]): r for r in store.query()}
    store.close()
    students = sorted({k[0] for k in results})
    out = []
    with open_gradebook(cfg.gradebook_url) as gb:
        for student in students:
            grand = []
            for a in assignments:
                total, total_max, statuses = 0.0, 0.0, []
                for src in cfg.graded_notebooks(a):
                    r = results.get((student, a, src.stem))
                    max_score = gb.find_notebook(src.stem, a).max_score
                    score = ""
                    if r is None:
                        status = "not submitted"
                    else:
                        status = status_line(r)
                        if r["status"] == GRADED:
                            try:
                                sub = gb.find_submission_notebook(src.stem, a, student)
                                score = sub.score
                                if sub.needs_manual_grade:
                                    status += "; written answers need a manual grade"
                            except MissingEntry:
                                score = r["score"]
                            total += score
                    statuses.append(r["status"] if r else status)
                    total_max += max_score
                    out.append({"student": student, "assignment": a, "notebook": src.stem,
                                "score": score, "max_score": max_score, "status": status})
                worst = next((s for s in statuses if s != GRADED), GRADED)
                status = GRADED if worst == GRADED else f"incomplete: {worst}"
                # a total over nothing graded is no score at all, never a 0
                any_graded = GRADED in statuses
                if len(statuses) > 1:
                    out.append({"student": student, "assignment": a, "notebook": "(total)",
                                "score": total if any_graded else "", "max_score": total_max,
                                "status": status})
                grand.append((total, total_max, status, any_graded))
            worst = next((s for _, _, s, _ in grand if s != GRADED), GRADED)
            any_graded = any(g[3] for g in grand)
            out.append({"student": student, "assignment": "(all)", "notebook": "(total)",
                        "score": sum(g[0] for g in grand) if any_graded else "",
                        "max_score": sum(g[1] for g in grand), "status": worst})
    return out


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
