"""Benchmark: a class graded on Dask distributed (``autograde --scheduler local:N``).

Run ``python bench/grading_dask.py``. In a temporary course folder it releases a course (default:
the fixture course tests/fixtures/course_small; ``--course`` another nbgrader_config.py), writes
``--students`` submissions of every assignment (correct, half done, untouched and correct with
warnings, in turn), runs the reference runs once, then grades the whole class with ``--force``:

- for each N of ``--workers``: ``autograde --scheduler local:N`` (a LocalCluster of N worker
  processes, one thread each), timing the whole command (*class*), the cluster's start with
  the worker checks and library shipping (*start*), the dispatch of the notebooks until the
  last result is stored (*dispatch*) and the cluster's shutdown (*stop*);
- for the same N, unless ``--no-pool``: ``autograde --jobs N`` (the local process pool), for
  comparison.

*Overhead per task* is what a notebook costs beyond its grading on the worker: dispatch time x
N / notebooks, minus the mean grading time the workers measured (the ``duration`` of each
result: reading the submission to writing the executed notebook). It covers reading and
shipping the submission, Dask's scheduling, unpacking on the worker, sending the executed
notebook back and the instructor's gradebook and status writes. Kernels run sandboxed when
bubblewrap works here (unless ``--no-sandbox``). Prints a table; ``--json PATH`` writes every
figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import argtypes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "course_small" / "nbgrader_config.py"
KINDS = ("correct", "partial", "untouched", "warnings")
COLUMNS = (("class_seconds", 8), ("start_seconds", 8), ("dispatch_seconds", 10),
           ("stop_seconds", 7), ("mean_grading_seconds", 12), ("overhead_per_task_seconds", 13))


def make_class(config: Path, course_dir: Path, students: int, sandbox: bool):
    """Release the course in ``course_dir`` and write ``students`` submissions of every
    assignment; returns the course config (sandboxed if ``sandbox`` and bubblewrap works)."""
    from cs231n_grading.autograde import load_references
    from cs231n_grading.config import load_config
    from cs231n_grading.release import release
    from cs231n_grading.samples import write_submission
    from cs231n_grading.sandbox_argv import sandbox_available

    cfg = load_config(config, course_dir=course_dir,
                      sandbox=sandbox and sandbox_available()[0])
    release(cfg, log=lambda *_: None)
    for a in cfg.released():
        for i in range(students):
            write_submission(course_dir, f"s{i:03d}", a, KINDS[i % len(KINDS)],
                             cfg.source_notebooks(a))
    load_references(cfg, cfg.released(), 2, log=lambda *_: None)
    return cfg


def timed_phases():
    """Wrap cs231n_grading.distributed's connect, prepare_workers and dispatch to record when
    the cluster is ready, how long dispatch takes and how long the cluster takes to stop;
    returns the dict they fill."""
    from cs231n_grading import distributed as dist

    marks: dict[str, float] = {}
    connect, prepare, dispatch = dist.connect, dist.prepare_workers, dist.dispatch

    @contextmanager
    def timed_connect(scheduler):
        with connect(scheduler) as client:
            yield client
            marks["closing"] = time.perf_counter()
        marks["stop"] = time.perf_counter() - marks["closing"]

    def timed_prepare(client, cfg):
        out = prepare(client, cfg)
        marks["ready"] = time.perf_counter()
        return out

    def timed_dispatch(*args, **kw):
        t0 = time.perf_counter()
        try:
            return dispatch(*args, **kw)
        finally:
            marks["dispatch"] = time.perf_counter() - t0

    dist.connect, dist.prepare_workers, dist.dispatch = timed_connect, timed_prepare, timed_dispatch
    return marks


def grade(cfg, *, scheduler: str | None, jobs: int, marks: dict) -> dict:
    """Grade the whole class once (``--force``); the figures of that run."""
    from cs231n_grading.autograde import autograde

    marks.clear()
    t0 = time.perf_counter()
    results = autograde(cfg, jobs=jobs, scheduler=scheduler, force=True, log=lambda *_: None)
    total = time.perf_counter() - t0
    durations = [r["duration"] for r in results if r.get("duration")]
    out = {"backend": scheduler or f"pool:{jobs}", "workers": jobs, "notebooks": len(results),
           "graded": sum(r["status"] == "graded" for r in results),
           "class_seconds": total, "mean_grading_seconds": statistics.fmean(durations)}
    if scheduler:
        out["start_seconds"] = marks["ready"] - t0
        out["dispatch_seconds"] = marks["dispatch"]
        out["stop_seconds"] = marks["stop"]
        out["overhead_per_task_seconds"] = (marks["dispatch"] * jobs / len(results)
                                            - out["mean_grading_seconds"])
    return out


def table(rows: list[dict]) -> str:
    """The figures as a text table."""
    head = (f"{'backend':<10} {'notebooks':>9} {'class s':>8} {'start s':>8} {'dispatch s':>10} "
            f"{'stop s':>7} {'grading s/nb':>12} {'overhead s/nb':>13}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = [f"{r[k]:>{w}.2f}" if k in r else f"{'-':>{w}}" for k, w in COLUMNS]
        lines.append(f"{r['backend']:<10} {r['notebooks']:>9} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--course", type=Path, default=FIXTURE, help="nbgrader_config.py of a course")
    p.add_argument("--students", type=argtypes.positive_int, default=8)
    p.add_argument("--workers", type=argtypes.positive_int, nargs="+", default=[1, 2])
    p.add_argument("--no-pool", dest="pool", action="store_false",
                   help="skip the local process pool runs")
    p.add_argument("--no-sandbox", dest="sandbox", action="store_false",
                   help="kernels without bubblewrap (the smoke test's quicker run)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    marks = timed_phases()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-dask-") as tmp:
        cfg = make_class(args.course, Path(tmp) / "course", args.students, args.sandbox)
        for n in args.workers:
            rows.append(grade(cfg, scheduler=f"local:{n}", jobs=n, marks=marks))
            if args.pool:
                rows.append(grade(cfg, scheduler=None, jobs=n, marks=marks))
    print(f"{args.students} students, sandbox {'on' if cfg.sandbox else 'off'}, "
          f"course {args.course}")
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps({"students": args.students, "sandbox": cfg.sandbox,
                                         "runs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
