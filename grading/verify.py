"""``cs231n-course verify``: before a release, check every assignment grades as intended.

For each source notebook: (1) the solutions score full marks when judged against themselves and
the notebook runs cleanly with the student edition of the library; (2) the student version
(release) runs to the end and scores 0 on every autograded part. Prints a table; returns the
number of notebooks that fail.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from grading.autograde import load_references, run_pool
from grading.config import CourseConfig
from grading.judge import judge_cell
from grading.kernels import check_sandbox
from grading.outcome import is_graded
from grading.release import release
from grading.tasks import GradingTask, KernelSettings
from grading.worker import grade_submission


def self_score(ref: dict) -> tuple[float, float, list[str]]:
    """Score of the reference judged against its own records, its max, and its problems."""
    score, problems = 0.0, list(ref["errors"]) + list(ref["events"])
    total = sum(c["points"] for c in ref["cells"].values())
    for gid, c in ref["cells"].items():
        r = judge_cell(gid, c["points"], c["records"], c["records"], error=c["error"],
                       event=c["event"])
        score += r.points
        if not r.passed:
            problems.append(f"{gid}: {r.message}")
        elif c["error"]:
            problems.append(f"{gid}: the test cell raised {c['error']}")
    return score, total, problems


def verify(cfg: CourseConfig, assignments: list[str] | None = None, *, jobs: int | None = None,
           log=print) -> int:
    """Verify ``assignments`` (default all) in a throw-away course; returns the failures."""
    scratch = Path(tempfile.mkdtemp(prefix="cs231n-verify-"))
    try:  # a throw-away course: verify never touches the real gradebook or release
        return _verify(dataclasses.replace(cfg, course_dir=scratch / "course"), assignments,
                       jobs=jobs, log=log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _verify(cfg: CourseConfig, assignments, *, jobs, log) -> int:
    """The checks of ``verify`` in the course directory of ``cfg``."""
    assignments = assignments or cfg.assignments()
    check_sandbox(cfg.sandbox)
    jobs = jobs or os.cpu_count() or 1
    release(cfg, assignments, log=lambda *_: None)
    refs = load_references(cfg, assignments, jobs, log=lambda *_: None, strict=False)
    tasks = []
    for (a, stem), ref in sorted(refs.items()):
        rel = cfg.course_dir / "release" / a / f"{stem}.ipynb"
        tasks.append(GradingTask(
            settings=KernelSettings.for_assignment(cfg, a), student="(student version)",
            assignment=a, notebook=stem, submission=rel,
            source=cfg.course_dir / "released_source" / a / f"{stem}.ipynb",
            release=rel, release_dir=rel.parent, reference=ref))
    student = run_pool(grade_submission, tasks, jobs, desc="student versions")
    failures = 0
    head = f"{'notebook':<28} {'solutions':>11} {'student version':>16}  verdict"
    lines = [head, "-" * len(head)]
    for task, res in zip(tasks, student, strict=True):
        ref = refs[(task.assignment, task.notebook)]
        score, total, problems = self_score(ref)
        if "status" not in res:
            problems.append(f"student version: {res.get('error')}")
            got = float("nan")
        else:
            got = res["score"]
            if not is_graded(res["status"]):
                problems.append(f"student version {res['status']}")
            problems += [f"student version: {n}" for n in res["notes"]
                         if not n.startswith("tampering")]
            if got != 0:
                passed = [t["grade_id"] for t in res["tests"] if t["passed"]]
                problems.append(f"student version scores {got:g} (passes {passed})")
        if score != total or total == 0:
            problems.append(f"solutions score {score:g} of {total:g}")
        failures += bool(problems)
        lines.append(f"{task.notebook:<28} {score:>5g} / {total:<3g} {got:>9g} / {total:<4g}"
                     f"  {'OK' if not problems else 'FAIL'}")
        lines += [f"    - {p}" for p in problems]
    log("\n".join(lines))
    log(f"\n{len(tasks) - failures} of {len(tasks)} notebook(s) verified"
        + (f"; {failures} FAILED" if failures else ""))
    return failures
