"""Benchmark: grading throughput of ``cs231n-course autograde`` side by side with nbgrader's own.

Run ``python bench/grading.py`` (``make bench-grading``). In a scratch folder (``--course-dir``,
default a temporary one, removed afterwards) it releases the course, writes the demo's sample
class (cs231n_grading.class_demo: alice correct, carol half done, dave correct with warnings, bob
untouched, erin a cut-in-half file) scaled to ``--students`` students by copies (alice01,
carol01, dave01, bob01, erin01, alice02, ...), and grades the same submitted notebooks

1. with ``cs231n-course autograde --jobs J`` (sandboxed when bubblewrap works here) in a fresh
   course: *cold*, the reference runs of the release included;
2. with the same command again, ``--force``: *warm*, every notebook re-graded, the reference
   records read from ``<course>/reference`` (the run must start no reference run: checked);
3. with nbgrader's ``nbgrader autograde "*"`` (unsandboxed, nbgrader's own executor, the course's
   nbgrader config plus ``Execute.timeout`` = the longest cell timeout). nbgrader grades one
   notebook at a time per process and its gradebook is one SQLite file, which concurrent
   nbgrader processes would fight over ("database is locked"). So it gets the same J cores this
   way: the students are dealt round-robin into J groups, each group is a course folder of its
   own (its students' submissions, a copy of the gradebook as release left it, ``source`` linked
   to the same source notebooks) and one ``nbgrader autograde`` process per group runs, all J at
   once. The students are copies, so the groups hold the same work;
4. with plain nbclient (what ``jupyter nbconvert --execute`` runs), J processes at a time, on
   one copy of each distinct notebook the graders executed (the restored notebook, hidden tests
   included, of the first student of each kind): the baseline execution time of that notebook.

Every kernel gets the same environment: the student edition of the library first on
PYTHONPATH, the course's kernel ``env`` (``CS231N_GRADING=1``), ``$CS231N_DATA_DIR``, and
cores / J threads for BLAS and the library (what ``autograde`` gives each of its J kernels).

Measured per grader: the total wall time of the command(s); the wall time per notebook (ours:
the worker's ``duration`` in ``grading_status.db``, from reading the submission to writing the
executed notebook; nbgrader: from its pre-convert hook to its post-convert hook, gradebook writes
included), median and 90th percentile over the notebooks both graded (erin's invalid files
excluded); the core-seconds, CPU time of the command and all its descendants, sandboxed kernels
included (a cgroup v1 ``cpuacct`` group per run where the machine has one, else
``getrusage(RUSAGE_CHILDREN)`` with this process a child subreaper, which misses what a
sandbox's namespace init reaps; the JSON keeps both); and the overhead beyond executing the
notebook: a notebook's wall time minus the baseline time of the same notebook. And each
command's fixed costs: *start-up*, from the command's start to the first notebook's (ours: its
save time in ``grading_status.db`` minus the worker's duration, after the reference runs in a
cold run; nbgrader: the first pre-convert hook), and *tail*, from the last notebook's end to
the command's exit.
``--profile`` (on by default) then grades one correct notebook per assignment in this process
with timers around each step (read, restore, workdir copy, sandbox start, cells, shutdown,
judge, rules, sanitise, writing the executed notebook, the gradebook write the parent does),
next to the same steps of the plain baseline.

The cache of reference records is checked too: their files after the warm run are the files of
the cold run (same keys, untouched), and a released source notebook changed by one byte changes
its key (the next ``autograde`` re-runs just that reference; the check restores the byte).

``--quick`` is the smoke size: the fixture course (tests/fixtures/course_small), its first
assignment, 2 students. Prints a table; ``--json PATH`` writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
import argtypes  # noqa: E402

from cs231n_grading.class_demo import CLASS  # noqa: E402
from cs231n_grading.config import CourseConfig, default_config, load_config  # noqa: E402
from cs231n_grading.kernels import kernel_env, thread_env  # noqa: E402
from cs231n_grading.samples import write_submission  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUICK_COURSE = ROOT / "tests" / "fixtures" / "course_small" / "nbgrader_config.py"
ORDER = ("alice", "carol", "dave", "bob", "erin")  # copies are dealt in this order
BROKEN = "broken"  # the kind neither grader can read (left out of the per-notebook figures)
PR_SET_CHILD_SUBREAPER = 36


# ----------------------------------------------------------------------------- measuring

def become_subreaper() -> bool:
    """Make this process adopt orphaned descendants (Linux), so their CPU time is counted."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans(timeout: float = 30.0) -> int:
    """Wait for adopted descendants to exit (their usage joins RUSAGE_CHILDREN); how many."""
    reaped, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        else:
            time.sleep(0.05)
    return reaped


def child_cpu() -> float:
    """User + system seconds of every descendant reaped so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1 CPU accounting, where mounted
_groups = itertools.count()


@contextlib.contextmanager
def cpu_group():
    """A fresh cgroup v1 ``cpuacct`` group (or None where this machine has none or refuses):
    its ``cpuacct.usage`` counts every process that starts inside, however it ends; the
    sandbox moves kernels into memory and pids groups only, so they stay counted here."""
    group = CPUACCT / f"bench-grading-{os.getpid()}-{next(_groups)}"
    try:
        group.mkdir()
    except OSError:
        yield None
        return
    try:
        yield group
    finally:
        for _ in range(100):  # empty once every process in it has exited
            with contextlib.suppress(OSError):
                group.rmdir()
                break
            time.sleep(0.1)


def run_measured(commands: list[tuple[list[str], Path, dict]], log,
                 logs: Path | None = None) -> dict:
    """Start every (argv, cwd, env) at once, wait for all; wall seconds, core-seconds, codes
    and each command's stderr (the caller checks the codes: nbgrader fails on erin's files).

    Core-seconds: the cpuacct group's usage where there is one (``core_source`` says which),
    else user + system time from ``getrusage(RUSAGE_CHILDREN)``, which counts only processes
    whose every ancestor up to this one waited for them (a sandboxed kernel's namespace init
    may not be: then it undercounts; both figures are kept)."""
    with cpu_group() as group:
        def enter():  # in the child before exec: its whole tree is accounted to the group
            (group / "cgroup.procs").write_text(str(os.getpid()))

        cpu0, t0, started = child_cpu(), time.monotonic(), time.time()
        procs = []
        for argv, cwd, env in commands:
            err = tempfile.TemporaryFile()
            procs.append((subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                           stderr=err, preexec_fn=enter if group else None),
                          err))
        codes, errs = [], []
        for proc, err in procs:
            codes.append(proc.wait())
            err.seek(0)
            errs.append(err.read().decode(errors="replace"))
            err.close()
        wall, ended = time.monotonic() - t0, time.time()
        reap_orphans()
        rusage = child_cpu() - cpu0
        cgroup = int((group / "cpuacct.usage").read_text()) / 1e9 if group else None
    for i, ((argv, _, _), code, text) in enumerate(zip(commands, codes, errs, strict=True)):
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            (logs / f"{i}.stderr.txt").write_text(text, encoding="utf-8")
        if code:
            log(f"   note: {' '.join(argv[:4])} ... exited {code}: "
                f"{text.strip().splitlines()[-1:] or ''}")
    cpu = rusage if cgroup is None else cgroup
    log(f"   ({wall:.1f} s wall, {cpu:.1f} core-s; getrusage says {rusage:.1f})")
    return {"wall_s": wall, "started": started, "ended": ended, "core_s": cpu,
            "core_s_rusage": rusage,
            "core_source": "rusage" if cgroup is None else "cpuacct", "returncodes": codes,
            "stderr": errs}


def summary(values: list[float]) -> dict:
    """Median and 90th percentile (None for no values)."""
    if not values:
        return {"median": None, "p90": None, "n": 0}
    xs = sorted(values)
    p90 = xs[0] if len(xs) == 1 else statistics.quantiles(xs, n=10, method="inclusive")[-1]
    return {"median": statistics.median(xs), "p90": p90, "n": len(xs)}


# ----------------------------------------------------------------------------- the class

def class_list(n: int) -> dict[str, str]:
    """{student: kind} for ``n`` students, copies of the demo class in ORDER."""
    if n < 1:
        raise ValueError(f"--students must be at least 1, got {n}")
    return {f"{ORDER[i % len(ORDER)]}{i // len(ORDER) + 1:02d}": CLASS[ORDER[i % len(ORDER)]]
            for i in range(n)}


def write_class(cfg: CourseConfig, students: dict[str, str], assignments: list[str]) -> None:
    """Each kind's submission written once (samples.write_submission), the rest copied."""
    first: dict[str, str] = {}
    root = cfg.course_dir / "submitted"
    for student, kind in students.items():
        for a in assignments:
            if kind in first:
                shutil.copytree(root / first[kind] / a, root / student / a)
            else:
                write_submission(cfg.course_dir, student, a, kind, cfg.graded_notebooks(a))
        first.setdefault(kind, student)


def kernel_environment(cfg: CourseConfig, threads: int) -> dict:
    """The environment nbgrader's processes and the baseline give their kernels: what our
    kernels get (kernels.kernel_env: student library first on PYTHONPATH, the course env)."""
    extra = dict(cfg.env) | thread_env(threads)
    if cfg.data_dir is not None and cfg.data_dir.is_dir():
        extra["CS231N_DATA_DIR"] = str(cfg.data_dir)
    return kernel_env(cfg.student_library_dir, extra)


# ----------------------------------------------------------------------------- our grader

def cli(cfg: CourseConfig, *args: str, sandbox: bool) -> list[str]:
    """``cs231n-course`` argv for this course and course directory."""
    flags = ["--CourseGrading.sandbox=True"] if sandbox else ["--no-sandbox"]
    return [sys.executable, "-m", "cs231n_grading", "--course", str(cfg.config_file),
            "--course-dir", str(cfg.course_dir), *flags, *args]


def our_durations(cfg: CourseConfig) -> dict[tuple[str, str, str], tuple[str, float]]:
    """{(student, assignment, notebook): (status, worker seconds)} from grading_status.db."""
    import sqlite3

    db = sqlite3.connect(cfg.course_dir / "grading_status.db")
    try:
        rows = db.execute("SELECT student, assignment, notebook, status, duration FROM results")
        return {(s, a, n): (st, d) for s, a, n, st, d in rows}
    finally:
        db.close()


def our_window(cfg: CourseConfig, since: float) -> tuple[float, float] | None:
    """(when the first notebook's grading started, when the last result was saved), seconds
    since the epoch, over the grading_status.db rows saved since ``since`` (a row's start: its
    save time minus the worker's duration); None for no row."""
    import sqlite3

    db = sqlite3.connect(cfg.course_dir / "grading_status.db")
    try:
        rows = db.execute("SELECT MIN(graded_at - duration), MAX(graded_at) FROM results "
                          "WHERE graded_at >= ?", (since,)).fetchone()
    finally:
        db.close()
    return None if rows[0] is None else (rows[0], rows[1])


def reference_state(cfg: CourseConfig) -> dict[str, tuple[int, str, float]]:
    """{reference record: (mtime_ns, key, duration of its run)}."""
    out = {}
    for p in sorted((cfg.course_dir / "reference").glob("*/*.json")):
        rec = json.loads(p.read_text())
        out[str(p.relative_to(cfg.course_dir))] = (p.stat().st_mtime_ns, rec["key"],
                                                   rec.get("duration", 0.0))
    return out


def key_follows_source(cfg: CourseConfig, assignments: list[str]) -> bool:
    """Whether changing one byte of a released source notebook changes that notebook's reference
    key, and only that one (the byte is put back)."""
    from cs231n_grading.autograde import reference_tasks

    before = {p: t.key for p, t in reference_tasks(cfg, assignments).items()}
    src = cfg.graded_notebooks(assignments[0])[0]
    data = src.read_bytes()
    try:
        src.write_bytes(data.replace(b'"cells": [', b'"cells":  [', 1))
        after = {p: t.key for p, t in reference_tasks(cfg, assignments).items()}
    finally:
        src.write_bytes(data)
    changed = [p for p in before if before[p] != after[p]]
    return len(changed) == 1 and changed[0].stem == src.stem


# ----------------------------------------------------------------------------- nbgrader

HOOKS = '''
import json as _json
import time as _time


def _hook(event):
    def hook(**kw):
        with open({hooks!r}, "a", encoding="utf-8") as f:
            f.write(_json.dumps({{"event": event, "t": _time.time(),
                                 "notebooks": [str(n) for n in kw.get("notebooks") or []]}})
                    + "\\n")
    return hook


c.BaseConverter.pre_convert_hook = _hook("pre")
c.BaseConverter.post_convert_hook = _hook("post")
'''


def nbgrader_group(cfg: CourseConfig, gradebook: Path, folder: Path, students: list[str],
                   kernel_path: str) -> Path:
    """A course folder for one nbgrader process: ``students``' submissions, a copy of the
    gradebook as release left it, ``source`` linked to the source notebooks, and an
    nbgrader_config.py like release writes (the course config, this root and gradebook) plus
    timing hooks, nbgrader's cell timeout set to the course's longest, and ``kernel_path`` (the
    student library) put on the PYTHONPATH its kernels inherit only after the course config
    has loaded (nbgrader itself must import the real library, as cs231n-course does)."""
    folder.mkdir(parents=True)
    shutil.copy2(gradebook, folder / "gradebook.db")
    (folder / "source").symlink_to(cfg.assignments_dir, target_is_directory=True)
    for s in students:
        shutil.copytree(cfg.course_dir / "submitted" / s, folder / "submitted" / s)
    timeout = max([cfg.cell_timeout, *(t.get("cell", 0) for t in cfg.timeouts.values())])
    (folder / "nbgrader_config.py").write_text(
        '"""Written by bench/grading.py: the course config, this root, timing hooks."""\n'
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(cfg.config_file)!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(folder)!r}\n"
        f"c.CourseDirectory.db_url = {'sqlite:///' + str(folder / 'gradebook.db')!r}\n"
        'c.CourseDirectory.source_directory = "source"\n'
        "c.Autograde.create_student = True\n"
        f"c.Execute.timeout = {int(timeout)}\n"
        "import os  # noqa: E402\n"
        f"os.environ['PYTHONPATH'] = {kernel_path!r}\n"
        + HOOKS.format(hooks=str(folder / "hooks.jsonl")), encoding="utf-8")
    return folder


def _hook_events(groups: list[Path]) -> list[list[dict]]:
    """Each group's hook events (hooks.jsonl, in order; [] where nbgrader wrote none)."""
    out = []
    for g in groups:
        path = g / "hooks.jsonl"
        out.append([json.loads(x) for x in path.read_text().splitlines()]
                   if path.is_file() else [])
    return out


def nbgrader_spans(groups: list[Path]) -> dict[tuple[str, str, str], float]:
    """{(student, assignment, notebook): seconds from pre- to post-convert hook} (a submission
    nbgrader failed on has no post hook and no entry)."""
    out = {}
    for events in _hook_events(groups):
        started = {}
        for e in events:
            key = tuple(e["notebooks"])
            if e["event"] == "pre":
                started[key] = e["t"]
            elif key in started and len(key) == 1:
                nb = Path(key[0])
                out[(nb.parent.parent.name, nb.parent.name, nb.stem)] = e["t"] - started.pop(key)
    return out


def nbgrader_window(groups: list[Path]) -> tuple[float, float] | None:
    """(first pre-convert hook, last hook of any kind) over all groups, seconds since the
    epoch; None for no hook."""
    events = [e for group in _hook_events(groups) for e in group]
    starts = [e["t"] for e in events if e["event"] == "pre"]
    return (min(starts), max(e["t"] for e in events)) if starts else None


def gradebook_points(url: str, students: list[str], cfg: CourseConfig,
                     assignments: list[str]) -> dict[tuple[str, str, str], float]:
    """{(student, assignment, notebook): points of its test cells} in the gradebook at ``url``
    (0 for a notebook without an entry)."""
    from cs231n_grading.gradebook import notebook_scores, open_gradebook

    points = {}
    with open_gradebook(url) as gb:
        for s in students:
            for a in assignments:
                for src in cfg.graded_notebooks(a):
                    scores = notebook_scores(gb, s, a, src.stem)
                    points[(s, a, src.stem)] = scores.test_score if scores else 0.0
    return points


def compare_scores(students: dict[str, str], ours: dict, theirs: dict,
                   both: set) -> dict[str, dict]:
    """Per student: the test points each gradebook gives over the notebooks ``both`` graders
    graded, whether they agree, and the notebooks one of them could not grade."""
    out = {}
    for s, kind in students.items():
        mine = [k for k in ours if k[0] == s]
        shared = [k for k in mine if k in both]
        a, b = sum(ours[k] for k in shared), sum(theirs[k] for k in shared)
        out[s] = {"kind": kind, "ours": a, "nbgrader": b, "agree": abs(a - b) < 1e-9,
                  "notebooks_compared": len(shared),
                  "not_graded_by_both": ["/".join(k[1:]) for k in mine if k not in both]}
    return out


# ----------------------------------------------------------------------------- baseline

def _iso(stamp: str) -> float:
    """Seconds since the epoch of an nbclient timing stamp."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def cell_seconds(nb) -> float:
    """Sum over code cells of the kernel's busy time (nbclient's timing metadata)."""
    total = 0.0
    for cell in nb.cells:
        ex = cell.get("metadata", {}).get("execution", {})
        if cell.cell_type == "code" and "iopub.status.busy" in ex and "shell.execute_reply" in ex:
            total += _iso(ex["shell.execute_reply"]) - _iso(ex["iopub.status.busy"])
    return total


def plain_execution(job: tuple[str, str, dict, int]) -> dict:
    """Execute a notebook with plain nbclient (as ``jupyter nbconvert --execute`` does) in a
    copy of the files given to students; wall seconds, kernel start, cells, shutdown."""
    from nbclient import NotebookClient

    nb_path, given, env, timeout = job
    marks: dict[str, float] = {}

    class Timed(NotebookClient):
        """NotebookClient noting when the kernel is up and when cleanup starts and ends."""

        async def async_start_new_kernel_client(self):
            out = await super().async_start_new_kernel_client()
            marks["ready"] = time.monotonic()
            return out

        async def _async_cleanup_kernel(self):
            marks["cleanup"] = time.monotonic()
            await super()._async_cleanup_kernel()

    nb = nbformat.read(nb_path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    work = Path(tempfile.mkdtemp(prefix="bench-plain-"))
    try:
        shutil.copytree(given, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.ipynb"))
        client = Timed(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(work)}})
        t0 = time.monotonic()
        client.execute(env=env, stderr=subprocess.DEVNULL)  # kernel chatter, as ours drops it
        t1 = time.monotonic()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"wall": t1 - t0, "kernel start": marks["ready"] - t0, "cells": cell_seconds(nb),
            "shutdown": t1 - marks.get("cleanup", t1)}


def baseline(cfg: CourseConfig, students: dict[str, str], assignments: list[str], jobs: int,
             env: dict) -> dict[tuple[str, str, str], dict]:
    """{(kind, assignment, notebook): plain_execution of that kind's restored notebook}, the
    notebooks run ``jobs`` at a time."""
    firsts = {}
    for s, kind in students.items():
        firsts.setdefault(kind, s)
    timeout = int(max([cfg.cell_timeout, *(t.get("cell", 0) for t in cfg.timeouts.values())]))
    jobs_in, keys = [], []
    for kind, s in firsts.items():
        for a in assignments:
            for src in cfg.graded_notebooks(a):
                nb = cfg.course_dir / "autograded" / s / a / src.name
                if kind != BROKEN and nb.is_file():
                    keys.append((kind, a, src.stem))
                    jobs_in.append((str(nb), str(cfg.course_dir / "release" / a), env, timeout))
    # fork: this process has started no thread, and a forked worker starts at once
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
        results = list(pool.map(plain_execution, jobs_in))
    return dict(zip(keys, results, strict=True))


# ----------------------------------------------------------------------------- profile

@contextlib.contextmanager
def timers(times: dict[str, float], targets: list[tuple[object, str, str]]):
    """Wrap each ``owner.attr`` so that its calls add their seconds to ``times[label]``."""
    undo = []
    for owner, attr, label in targets:
        own = attr in vars(owner)
        original = getattr(owner, attr)

        def timed(*a, _f=original, _label=label, **k):
            t0 = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                times[_label] = times.get(_label, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)
        undo.append((owner, attr, original if own else None))
    try:
        yield times
    finally:
        for owner, attr, original in reversed(undo):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def profile(cfg: CourseConfig, student: str, assignments: list[str], jobs: int,
            scratch: Path) -> list[dict]:
    """Grade ``student``'s notebooks in this process with a timer on each step; one dict of
    seconds per notebook (the gradebook write is timed on a copy of the gradebook)."""
    from cs231n_grading import worker
    from cs231n_grading.autograde import grading_task, load_references
    from cs231n_grading.execute import CappedClient
    from cs231n_grading.gradebook import open_gradebook, write_result
    from cs231n_grading.tasks import KernelSettings, with_threads

    share = max(1, (os.cpu_count() or 1) // max(1, jobs))
    refs = load_references(cfg, assignments, jobs, log=lambda *_: None)
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cfg.course_dir / "gradebook.db", scratch / "gradebook.db")
    # first calls build caches (schema validators, parsers) that a pool worker builds once
    # for all its notebooks: made here, untimed, so that the timings are a worker's steady state
    src0 = cfg.graded_notebooks(assignments[0])[0]
    sub0 = worker.load_notebook_text(
        (cfg.course_dir / "submitted" / student / assignments[0] / src0.name).read_bytes())
    source0 = nbformat.read(src0, as_version=4)
    worker.check_rules([], sub0, source0)
    worker.sanitize_notebook(worker.restore(sub0, source0).nb)
    out = []
    for a in assignments:
        settings = KernelSettings.for_assignment(cfg, a)
        folder = cfg.course_dir / "submitted" / student / a
        for src in cfg.graded_notebooks(a):
            task = grading_task(cfg, settings, student, a, folder, src, refs[(a, src.stem)])
            task = with_threads(task, share)
            times: dict[str, float] = {}
            targets = [(worker, "_read_submission", "read"), (worker, "load_notebook_text",
                                                              "parse"),
                       (worker, "restore", "restore"), (worker, "_workdir", "workdir copy"),
                       (CappedClient, "start_new_kernel", "kernel start"),
                       (CappedClient, "start_new_kernel_client", "kernel start"),
                       (CappedClient, "execute_cell", "cells"),
                       (CappedClient, "_cleanup_kernel", "shutdown"),
                       (worker, "judge_notebook", "judge"), (worker, "check_rules", "rules"),
                       (worker, "sanitize_notebook", "sanitize"),
                       (worker.nbformat, "write", "write notebook")]
            with timers(times, targets):
                t0 = time.perf_counter()
                result = worker.grade_submission(task)
                times["total (worker)"] = time.perf_counter() - t0
            times["other (worker)"] = times["total (worker)"] - sum(
                v for k, v in times.items() if k != "total (worker)")
            t0 = time.perf_counter()
            with open_gradebook(f"sqlite:///{scratch / 'gradebook.db'}") as gb:
                write_result(gb, result, folder)
            times["gradebook write (parent)"] = time.perf_counter() - t0
            out.append({"assignment": a, "notebook": src.stem, "status": result["status"],
                        "seconds": times})
    return out


# ----------------------------------------------------------------------------- the run

def run(args, log=print) -> dict:
    """The whole benchmark; returns everything measured (what --json writes)."""
    course = Path(args.course) if args.course else (QUICK_COURSE if args.quick
                                                    else default_config())
    root = Path(args.course_dir).resolve()
    cfg = load_config(course, course_dir=root / "ours")
    available = cfg.assignments()
    assignments = args.assignments or (available[:1] if args.quick else available)
    unknown = sorted(set(assignments) - set(available))
    if unknown:
        raise ValueError(f"--assignments {unknown}: not in {cfg.assignments_dir} "
                         f"(there: {available})")
    jobs = args.jobs or os.cpu_count() or 1
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, got {jobs}")
    students = class_list(args.students)
    from cs231n_grading.sandbox_argv import sandbox_available

    sandbox, why = sandbox_available()
    if not sandbox:
        log(f"note: {why}: our grader runs WITHOUT the sandbox in this benchmark")
    cfg = dataclasses.replace(cfg, sandbox=sandbox)  # the setting the CLI runs get: same keys
    subreaper = become_subreaper()
    share = max(1, (os.cpu_count() or 1) // jobs)
    info = {"course": str(cfg.config_file), "assignments": assignments, "students": len(students),
            "jobs": jobs, "cores": os.cpu_count(), "sandbox": sandbox, "threads_per_kernel": share,
            "subreaper": subreaper, "load_before": os.getloadavg()}
    log(f"course {cfg.config_file}, {len(assignments)} assignment(s), {len(students)} students, "
        f"{jobs} jobs on {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, work in {root}")

    log("== release")
    rel = run_measured([(cli(cfg, "release", *assignments, sandbox=sandbox), ROOT, None)], log)
    if rel["returncodes"] != [0]:
        raise RuntimeError(f"release failed:\n{rel['stderr'][0][-3000:]}")
    write_class(cfg, students, assignments)
    kenv = kernel_environment(cfg, share)
    names = list(students)
    nbgrader_env = {k: v for k, v in kenv.items() if k != "PYTHONPATH"}
    groups = [nbgrader_group(cfg, cfg.course_dir / "gradebook.db", root / "nbgrader" / f"g{k}",
                             names[k::jobs], kenv["PYTHONPATH"])
              for k in range(min(jobs, len(names)))]
    runs = {}

    log("== ours, cold (reference runs + grading)")
    runs["ours_cold"] = run_measured([(cli(cfg, "autograde", "--jobs", str(jobs),
                                           sandbox=sandbox), ROOT, None)], log,
                                     root / "logs" / "ours_cold")
    cold_refs, cold_nb = reference_state(cfg), our_durations(cfg)
    windows = {"ours_cold": our_window(cfg, runs["ours_cold"]["started"])}
    log("== ours, warm (--force: every notebook again, references cached)")
    runs["ours_warm"] = run_measured([(cli(cfg, "autograde", "--jobs", str(jobs), "--force",
                                           sandbox=sandbox), ROOT, None)], log,
                                     root / "logs" / "ours_warm")
    warm_refs, warm_nb = reference_state(cfg), our_durations(cfg)
    windows["ours_warm"] = our_window(cfg, runs["ours_warm"]["started"])
    nbgrader = str(Path(sys.executable).with_name("nbgrader"))
    log(f"== nbgrader autograde, {len(groups)} processes at once")
    runs["nbgrader"] = run_measured([([nbgrader, "autograde", "*"], g, nbgrader_env)
                                     for g in groups], log, root / "logs" / "nbgrader")
    for text in runs["nbgrader"]["stderr"]:
        if "Exception while loading config file" in text:
            raise RuntimeError("nbgrader could not load the benchmark's config:\n"
                               + text[text.index("Exception while loading"):][:3000])
    nbg_nb = nbgrader_spans(groups)
    windows["nbgrader"] = nbgrader_window(groups)
    log(f"== plain nbclient execution of each distinct notebook, {jobs} at a time")
    t0 = time.monotonic()
    base = baseline(cfg, students, assignments, jobs, kenv)
    runs["baseline"] = {"wall_s": time.monotonic() - t0}
    log(f"   ({runs['baseline']['wall_s']:.1f} s)")

    reference = {
        "runs_cold": len(cold_refs),
        "seconds_cold": sum(v[2] for v in cold_refs.values()),
        "started_in_cold_run": "reference runs" in runs["ours_cold"]["stderr"][0],
        "started_in_warm_run": "reference runs" in runs["ours_warm"]["stderr"][0],
        "files_untouched_by_warm_run": cold_refs == warm_refs,
        "key_changes_with_source": key_follows_source(cfg, assignments),
    }
    out = {"config": info, "reference": reference, "runs": {}, "scores": {}}
    kind_of = students.get
    for name, per_nb in (("ours_cold", cold_nb), ("ours_warm", warm_nb)):
        graded = {k: d for k, (st, d) in per_nb.items() if st.startswith("graded")
                  and kind_of(k[0]) != BROKEN}
        out["runs"][name] = figures(runs[name], graded, base, kind_of, windows[name])
    out["runs"]["nbgrader"] = figures(runs["nbgrader"], nbg_nb, base, kind_of,
                                      windows["nbgrader"])
    out["runs"]["baseline"] = {
        "wall_s": None, "wall_s_distinct": runs["baseline"]["wall_s"], "notebooks": len(base),
        "core_s": None,
        "per_notebook": summary([b["wall"] for b in base.values()]),
        "overhead": summary([0.0] * len(base)),
        "phases": {k: statistics.median(b[k] for b in base.values())
                   for k in ("kernel start", "cells", "shutdown")} if base else {}}
    ours = gradebook_points(cfg.gradebook_url, names, cfg, assignments)
    theirs = {}
    for g in groups:
        theirs |= gradebook_points(f"sqlite:///{g / 'gradebook.db'}",
                                   [s for s in names if (g / "submitted" / s).is_dir()],
                                   cfg, assignments)
    both = {k for k, (st, _) in warm_nb.items() if st.startswith("graded")} & set(nbg_nb)
    out["scores"] = compare_scores(students, ours, theirs, both)
    out["nbgrader_failed"] = sorted("/".join(k) for k in ours
                                    if k not in nbg_nb and kind_of(k[0]) != BROKEN)
    if args.profile:
        log("== profile: one correct notebook per assignment, graded in this process")
        first = next(s for s, k in students.items() if k == "correct")
        out["profile"] = profile(cfg, first, assignments, jobs, root / "profile")
    out["targets"] = targets(out["runs"])
    info["load_after"] = os.getloadavg()
    return out


def figures(run_: dict, per_nb: dict, base: dict, kind_of,
            window: tuple[float, float] | None = None) -> dict:
    """A run's totals and per-notebook wall and overhead (wall minus the baseline of the same
    kind's notebook) over the notebooks in ``per_nb``; with ``window`` (first notebook's start,
    last notebook's end) also its fixed costs: ``startup_s`` from the command's start to the
    first notebook's (reference runs included when the run made them), ``tail_s`` from the
    last notebook's end to the command's exit."""
    over = [d - base[(kind_of(s), a, n)]["wall"] for (s, a, n), d in per_nb.items()
            if (kind_of(s), a, n) in base]
    n = len(per_nb)
    return {"wall_s": run_["wall_s"], "core_s": run_["core_s"], "notebooks": n,
            "core_s_rusage": run_["core_s_rusage"], "core_source": run_["core_source"],
            "core_s_per_notebook": run_["core_s"] / n if n else None,
            "returncodes": run_["returncodes"],
            "startup_s": window[0] - run_["started"] if window else None,
            "tail_s": run_["ended"] - window[1] if window else None,
            "per_notebook": summary(list(per_nb.values())), "overhead": summary(over)}


def targets(runs: dict) -> dict:
    """The issue's ratios: our overhead per notebook over nbgrader's (target <= 1.2) and our
    class time over nbgrader's, warm and cold (target <= 1.0)."""
    def ratio(a, b):
        return a / b if a is not None and b else None

    ours, theirs = runs["ours_warm"], runs["nbgrader"]
    return {"overhead_ratio_median": ratio(ours["overhead"]["median"],
                                           theirs["overhead"]["median"]),
            "class_time_ratio_warm": ratio(ours["wall_s"], theirs["wall_s"]),
            "class_time_ratio_cold": ratio(runs["ours_cold"]["wall_s"], theirs["wall_s"]),
            "core_s_ratio_warm": ratio(ours["core_s"], theirs["core_s"])}


# ----------------------------------------------------------------------------- output


def targets_line(runs: dict, t: dict) -> str:
    """The issue's targets, the overhead ratio beside the two overheads it divides (the class
    times are in the table above): the overhead per notebook is a difference (a notebook's
    time minus plain execution's of the same notebook), which is below 0 for a grader that is
    faster than plain nbclient (ours: the sandbox's kernel stops in a fraction of nbclient's
    shutdown), and a ratio with a negative side says nothing alone."""
    ours, theirs = runs["ours_warm"]["overhead"]["median"], runs["nbgrader"]["overhead"]["median"]
    faster = (" (below 0: faster than plain execution)"
              if ours is not None and ours < 0 else "")
    return (f"targets: overhead per notebook (median, warm) ours {_f(ours)} s{faster}, "
            f"nbgrader {_f(theirs)} s: ours/nbgrader {_f(t['overhead_ratio_median'])} "
            f"(<= 1.2); class time ours/nbgrader warm {_f(t['class_time_ratio_warm'])} cold "
            f"{_f(t['class_time_ratio_cold'])} (<= 1.0), core-s warm "
            f"{_f(t['core_s_ratio_warm'])}")


ROWS = (("ours_cold", "cs231n-course autograde, cold"),
        ("ours_warm", "cs231n-course autograde, warm"),
        ("nbgrader", "nbgrader autograde"),
        ("baseline", "plain nbclient execution"))


def _f(x, fmt=".2f") -> str:
    return "-" if x is None else format(x, fmt)


def table(out: dict) -> str:
    """The readable report of ``out``."""
    c = out["config"]
    lines = [f"Grading throughput: {c['students']} students x {len(c['assignments'])} "
             f"assignment(s), {c['jobs']} jobs on {c['cores']} cores, "
             f"{c['threads_per_kernel']} thread(s) per kernel, our sandbox "
             f"{'on' if c['sandbox'] else 'OFF'}; load {c['load_before'][0]:.2f} before, "
             f"{c['load_after'][0]:.2f} after; core-s from "
             f"{out['runs']['nbgrader'].get('core_source')}",
             f"{'grader':<31}{'notebooks':>10}{'class s':>9}{'core-s':>9}{'core-s/nb':>10}"
             f"{'nb med s':>9}{'nb p90 s':>9}{'ovh med s':>10}{'ovh p90 s':>10}"
             f"{'start s':>9}{'tail s':>8}"]
    for key, label in ROWS:
        r = out["runs"][key]
        lines.append(f"{label:<31}{r['notebooks']:>10}{_f(r['wall_s'], '.1f'):>9}"
                     f"{_f(r['core_s'], '.1f'):>9}{_f(r.get('core_s_per_notebook')):>10}"
                     f"{_f(r['per_notebook']['median']):>9}{_f(r['per_notebook']['p90']):>9}"
                     f"{_f(r['overhead']['median']):>10}{_f(r['overhead']['p90']):>10}"
                     f"{_f(r.get('startup_s')):>9}{_f(r.get('tail_s')):>8}")
    ref = out["reference"]
    lines.append(f"reference runs: {ref['runs_cold']} in the cold run ({ref['seconds_cold']:.1f} "
                 f"s of worker time); warm run started any: {ref['started_in_warm_run']}; "
                 f"records untouched by it: {ref['files_untouched_by_warm_run']}; key changes "
                 f"when the released source changes: {ref['key_changes_with_source']}")
    lines.append(targets_line(out["runs"], out["targets"]))
    disagree = {s: v for s, v in out["scores"].items() if not v["agree"]}
    lines.append(f"test points per student (notebooks both graded): ours and nbgrader agree "
                 f"for {len(out['scores']) - len(disagree)} of {len(out['scores'])}"
                 + "".join(f"; {s} ({v['kind']}): ours {v['ours']:g}, nbgrader "
                           f"{v['nbgrader']:g}" for s, v in disagree.items()))
    if out["nbgrader_failed"]:
        lines.append("nbgrader failed on (readable, honest notebooks; its stderr is in the "
                     f"work folder's logs/): {', '.join(out['nbgrader_failed'])}")
    if out.get("profile"):
        lines.append("profile (s, one correct notebook per assignment; plain execution's "
                     "phases: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                            out["runs"]["baseline"]["phases"].items()) + ")")
        steps = list(out["profile"][0]["seconds"])
        lines.append(f"{'step':<27}" + "".join(f"{p['assignment'][:12]:>13}"
                                                for p in out["profile"]))
        for step in steps:
            lines.append(f"{step:<27}" + "".join(f"{p['seconds'].get(step, 0.0):>13.3f}"
                                                  for p in out["profile"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: parse, run in a scratch folder, print the table, write --json."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--course", help="course config (default: the course; --quick: the fixture)")
    p.add_argument("--course-dir", help="work folder (default: a temporary one, removed)")
    p.add_argument("--students", type=argtypes.positive_int,
                   help="class size (default 20; --quick: 2)")
    p.add_argument("--assignments", nargs="+", help="subset (default all; --quick: the first)")
    p.add_argument("--jobs", type=argtypes.positive_int,
                   help="worker processes (default: number of cores)")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--quick", action="store_true", help="smoke size: fixture course, 2 students")
    p.add_argument("--no-profile", dest="profile", action="store_false")
    args = p.parse_args(argv)
    args.students = args.students or (2 if args.quick else 20)
    keep = args.course_dir is not None
    if keep:
        folder = Path(args.course_dir)
        if folder.exists() and any(folder.iterdir()):
            raise SystemExit(f"--course-dir {folder} is not empty; give a new or empty folder")
    else:
        args.course_dir = tempfile.mkdtemp(prefix="bench-grading-")
    try:
        out = run(args)
    finally:
        if not keep:
            shutil.rmtree(args.course_dir, ignore_errors=True)
    for r in out["runs"].values():
        r.pop("stderr", None)
    print(table(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
