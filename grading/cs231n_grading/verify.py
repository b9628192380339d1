"""``cs231n-course verify``: before a release, check every assignment grades as intended.

For each source notebook: (1) the solutions score full marks when judged against themselves and
the notebook runs cleanly with the student edition of the library; (2) the student version
(release) runs to the end and scores 0 on every autograded part. Prints a table; returns the
number of notebooks that fail. ``--lang zh`` (or ``all``) checks the Chinese editions the same
way, from their own translated source notebooks; with ``all``, each Chinese source must also
record the same values as the English one in every test cell (the same hidden tests grade both).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

from cs231n_grading.autograde import load_references, run_pool
from cs231n_grading.config import CourseConfig
from cs231n_grading.editions import TAMPERING, edition_name, languages
from cs231n_grading.judge import judge_cell
from cs231n_grading.kernels import check_sandbox
from cs231n_grading.outcome import is_graded
from cs231n_grading.release import release
from cs231n_grading.tasks import GradingTask, KernelSettings, ReferenceTask
from cs231n_grading.worker import grade_submission, run_reference


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
           log=print, lang: str = "en") -> int:
    """Verify ``assignments`` (default all) in the editions ``lang`` names ("en", "zh" or
    "all") in a throw-away course; returns the failures."""
    scratch = Path(tempfile.mkdtemp(prefix="cs231n-verify-"))
    try:  # a throw-away course: verify never touches the real gradebook or release
        return _verify(dataclasses.replace(cfg, course_dir=scratch / "course"), assignments,
                       jobs=jobs, log=log, lang=lang)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def edition_references(cfg: CourseConfig, assignments: list[str], lang: str,
                       jobs: int) -> dict[tuple[str, str], dict]:
    """Reference records of the ``lang`` edition's source notebooks (solutions and hidden
    tests, as released in ``released_source/``), per (assignment, notebook stem)."""
    keys, tasks = [], []
    for a in assignments:
        for src in cfg.graded_notebooks(a):
            edition = src.with_name(edition_name(src.stem, lang))
            keys.append((a, src.stem))
            tasks.append(ReferenceTask(settings=KernelSettings.for_assignment(cfg, a),
                                       source=edition, source_dir=cfg.assignments_dir / a))
    results = run_pool(run_reference, tasks, jobs, desc=f"reference runs ({lang})")
    for task, res in zip(tasks, results, strict=True):
        if "cells" not in res:
            raise RuntimeError(f"reference run of {task.source} failed: {res.get('error')}")
    return dict(zip(keys, results, strict=True))


def same_records(ref: dict, english: dict) -> list[str]:
    """Problems of an edition whose test records differ from the English edition's (the same
    hidden tests must record the same values)."""
    out = []
    for gid, c in english["cells"].items():
        mine = ref["cells"].get(gid)
        r = judge_cell(gid, c["points"], c["records"], mine["records"] if mine else [])
        if not r.passed or (mine and mine["points"] != c["points"]):
            out.append(f"{gid} differs from the English edition: {r.message}")
    return out


def _verify(cfg: CourseConfig, assignments, *, jobs, log, lang="en") -> int:
    """The checks of ``verify`` in the course directory of ``cfg``."""
    assignments = assignments or cfg.assignments()
    log(check_sandbox(cfg.sandbox, cfg.memory_mb))
    jobs = jobs or os.cpu_count() or 1
    langs = languages(lang)
    release(cfg, assignments, log=lambda *_: None, lang=lang)
    refs = {}
    if "en" in langs:
        refs["en"] = load_references(cfg, assignments, jobs, log=lambda *_: None, strict=False)
    for other in langs:
        if other != "en":
            refs[other] = edition_references(cfg, assignments, other, jobs)
    tasks, editions = [], []
    for edition, by_key in refs.items():
        for (a, stem), ref in sorted(by_key.items()):
            name = edition_name(stem, edition)
            rel = cfg.course_dir / "release" / a / name
            editions.append((edition, ref))
            tasks.append(GradingTask(
                settings=KernelSettings.for_assignment(cfg, a), student="(student version)",
                assignment=a, notebook=stem, submission=rel,
                source=cfg.course_dir / "released_source" / a / name,
                release=rel, release_dir=rel.parent, reference=ref))
    student = run_pool(grade_submission, tasks, jobs, desc="student versions")
    failures = 0
    head = f"{'notebook':<28} {'solutions':>11} {'student version':>16}  verdict"
    lines = [head, "-" * len(head)]
    for task, res, (edition, ref) in zip(tasks, student, editions, strict=True):
        score, total, problems = self_score(ref)
        if edition != "en" and "en" in refs:
            problems += same_records(ref, refs["en"][(task.assignment, task.notebook)])
        if "status" not in res:
            problems.append(f"student version: {res.get('error')}")
            got = float("nan")
        else:
            got = res["score"]
            if not is_graded(res["status"]):
                problems.append(f"student version {res['status']}")
            problems += [f"student version: {n}" for n in res["notes"]
                         if not n.startswith(TAMPERING)]
            if got != 0:
                passed = [t["grade_id"] for t in res["tests"] if t["passed"]]
                problems.append(f"student version scores {got:g} (passes {passed})")
        if score != total or total == 0:
            problems.append(f"solutions score {score:g} of {total:g}")
        failures += bool(problems)
        label = Path(edition_name(task.notebook, edition)).stem
        lines.append(f"{label:<28} {score:>5g} / {total:<3g} {got:>9g} / {total:<4g}"
                     f"  {'OK' if not problems else 'FAIL'}")
        lines += [f"    - {p}" for p in problems]
    log("\n".join(lines))
    log(f"\n{len(tasks) - failures} of {len(tasks)} notebook(s) verified"
        + (f"; {failures} FAILED" if failures else ""))
    return failures
