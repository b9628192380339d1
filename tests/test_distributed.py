"""Grading on Dask distributed (cs231n_grading.distributed), on loopback only.

The fixture course is graded once with the local process pool (the baseline); then on a
LocalCluster of 2 worker processes, and on a ``dask scheduler`` with two ``dask worker``
processes started here, each from a fresh copy of the released course: every run must give the
baseline's gradebook and statuses. Workers are killed with SIGKILL mid-task (the notebook is
graded once, elsewhere), a submission whose workers always die ends ``not graded``, a lost
scheduler stops the run (a rerun resumes), a worker without bubblewrap makes the run refuse.
Everything started here is stopped here.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from distributed import Client, LocalCluster
from nbgrader.api import Gradebook

from cs231n_grading import autograde as autograde_module
from cs231n_grading import distributed as dist
from cs231n_grading import worker_checks
from cs231n_grading.autograde import autograde
from cs231n_grading.bundles import Bundle
from cs231n_grading.config import load_config
from cs231n_grading.release import release
from cs231n_grading.samples import write_submission
from cs231n_grading.status import StatusStore
from cs231n_grading.tasks import KernelSettings

FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A, B = "01_basics", "02_loops"
DASK = Path(sys.executable).with_name("dask")
QUIET = {"log": lambda *_: None}
START_SECONDS = 60


def _quiet(*_):
    pass


# --- scheduler addresses (quick; the bundles are tests/test_bundles.py's) -----------------

@pytest.mark.parametrize("text", ["local:0", "local:x", "host:8786", ""])
def test_bad_scheduler_is_a_value_error(text):
    with pytest.raises(ValueError, match="--scheduler"):
        dist.parse_scheduler(text)


def test_good_scheduler_texts():
    assert dist.parse_scheduler("local:3") == 3
    assert dist.parse_scheduler("tls://10.0.0.1:8786") == "tls://10.0.0.1:8786"


# --- the class ---------------------------------------------------------------------------------

def _class(course: Path, cfg) -> None:
    """Submissions: right, empty, half, broken, missing, a linked notebook, a linked student
    folder, stray files (link, pipe, data), both assignments for some."""
    sources = {a: cfg.source_notebooks(a) for a in cfg.assignments()}
    for student, kind in (("alice", "correct"), ("bob", "untouched"), ("carol", "partial"),
                          ("erin", "broken"), ("zoe", "correct")):
        write_submission(course, student, A, kind, sources[A])
    for student, kind in (("alice", "correct"), ("bob", "untouched")):
        write_submission(course, student, B, kind, sources[B])
    (course / "submitted" / "ivan" / A).mkdir(parents=True)
    mallory = course / "submitted" / "mallory" / A
    mallory.mkdir(parents=True)
    (mallory / f"{A}.ipynb").symlink_to(course / "released_source" / A / f"{A}.ipynb")
    (course / "submitted" / "oscar").symlink_to(course / "submitted" / "alice")
    zoe = course / "submitted" / "zoe" / A
    (zoe / "secret.txt").symlink_to("/etc/passwd")
    os.mkfifo(zoe / "pipe")
    (zoe / "data.csv").write_text("1,2\n")


def _snapshot(course: Path) -> tuple[dict, dict]:
    """(gradebook: (student, notebook, cell) -> (auto score, needs manual, flagged),
    status store: (student, assignment, notebook) -> (status, notes, verdicts))."""
    cells = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for a in (A, B):
            for sub in gb.assignment_submissions(a):
                for nb in sub.notebooks:
                    for g in nb.grades:
                        cells[(sub.student.id, nb.name, g.name)] = (
                            g.auto_score, g.needs_manual_grade, nb.flagged)
    store = StatusStore(course)
    try:
        rows = {(r["student"], r["assignment"], r["notebook"]):
                (r["status"], r["notes"], r["tests"]) for r in store.query()}
    finally:
        store.close()
    return cells, rows


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """(released course to copy, the local pool's gradebook and statuses)."""
    root = tmp_path_factory.mktemp("dist")
    course = root / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course)
    release(cfg, log=_quiet)
    _class(course, cfg)
    template = root / "template"
    _copy_course(course, template)
    autograde(cfg, jobs=2, **QUIET)  # also fills the reference cache, copied below
    shutil.copytree(course / "reference", template / "reference")
    return template, _snapshot(course)


def _copy_course(src: Path, dst: Path) -> None:
    """Copy a course folder: links kept (absolute ones into ``src`` pointed into ``dst``),
    named pipes made anew."""
    shutil.copytree(src, dst, symlinks=True,
                    ignore=lambda d, names: [n for n in names if (Path(d) / n).is_fifo()])
    for path in sorted((src / "submitted").rglob("*")):
        copy = dst / path.relative_to(src)
        if path.is_fifo() and not path.is_symlink():
            os.mkfifo(copy)
        elif path.is_symlink() and os.readlink(path).startswith(str(src)):
            copy.unlink()
            copy.symlink_to(dst / Path(os.readlink(path)).relative_to(src))


def _fresh(baseline, tmp_path):
    """A config on a fresh copy of the released, ungraded course."""
    course = tmp_path / "course"
    _copy_course(baseline[0], course)
    return load_config(FIXTURE / "nbgrader_config.py", course_dir=course)


def _count_writes(monkeypatch) -> list:
    """Record (student, notebook) of every gradebook write of autograde."""
    writes = []
    real = autograde_module.write_result

    def counting(gb, result, folder):
        writes.append((result["student"], result["assignment"], result["notebook"]))
        return real(gb, result, folder)

    monkeypatch.setattr(autograde_module, "write_result", counting)
    return writes


def test_baseline_is_a_real_class(baseline):
    _, (cells, rows) = baseline
    assert rows[("alice", A, A)][0] == "graded" and rows[("erin", A, A)][0].startswith(
        "not graded: 01_basics.ipynb: invalid JSON")
    assert rows[("mallory", A, A)][0] == "not graded: 01_basics.ipynb is a symbolic link"
    assert rows[("oscar", B, B)][0] == "not graded: folder oscar is a symbolic link"
    assert any("secret.txt is a symbolic link" in n for n in rows[("zoe", A, A)][1])
    assert cells[("alice", A, "test_add")][0] == 1 and cells[("bob", A, "test_add")][0] == 0


@pytest.mark.slow
def test_local_cluster_gives_the_local_pools_gradebook_and_resumes(baseline, tmp_path,
                                                                    monkeypatch):
    cfg = _fresh(baseline, tmp_path)
    writes = _count_writes(monkeypatch)
    results = autograde(cfg, scheduler="local:2", **QUIET)
    assert _snapshot(cfg.course_dir) == baseline[1]
    assert sorted(writes) == sorted(set(writes)) and len(writes) == len(baseline[1][1])
    executed = nbformat.read(cfg.course_dir / "autograded" / "alice" / A / f"{A}.ipynb", 4)
    assert "grading budget: 1" in executed.cells[1].outputs[0].text  # written back here
    assert {r["score"] for r in results if r["student"] == "alice"} == {3}
    logs = []
    autograde(cfg, scheduler="local:2", log=logs.append)  # nothing to do: no cluster started
    graded = sum(1 for s, _, _ in baseline[1][1].values() if s == "graded")
    assert f"skipping {graded} notebook(s) already graded and unchanged" in logs
    assert len(writes) == len(baseline[1][1]) + len(baseline[1][1]) - graded


# --- a scheduler and workers as separate processes ---------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process group started here: SIGTERM, then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@contextmanager
def dask_processes(tmp_path: Path, workers: int = 2, scheduler_env: dict | None = None):
    """``dask scheduler`` and ``workers`` ``dask worker`` processes on loopback; yields
    (address, Client)."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = []
    base = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION="1.0")
    try:
        procs.append(subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
             "--no-dashboard"], env=base | (scheduler_env or {}), start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for i in range(workers):
            procs.append(subprocess.Popen(
                [str(DASK), "worker", address, "--nthreads", "1", "--host", "127.0.0.1",
                 "--no-dashboard", "--memory-limit", "0",
                 "--local-directory", str(tmp_path / f"w{i}")],
                start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=START_SECONDS) as client:
            client.wait_for_workers(workers, timeout=START_SECONDS)
            yield address, client
    finally:
        for p in reversed(procs):
            _stop(p)


class Killer(threading.Thread):
    """Kills (SIGKILL) the worker process grading a task of ``student`` each time one is
    seen, at most ``times`` times; ``kills`` counts them."""

    def __init__(self, client: Client, student: str, times: int):
        super().__init__(daemon=True)
        self.client, self.student, self.times = client, student, times
        self.kills, self.stop = 0, threading.Event()

    def run(self):
        deadline = time.monotonic() + 120
        killed = set()  # addresses of killed workers (a restarted one gets a new address)
        while self.kills < self.times and not self.stop.is_set() \
                and time.monotonic() < deadline:
            busy = [w for w, keys in self.client.processing().items() if w not in killed
                    and any(f"cs231n-grade-{self.student}-" in str(k) for k in keys)]
            if busy:  # the scheduler gives a worker one task at a time: it is running
                try:
                    pid = self.client.run(os.getpid, workers=busy[:1])[busy[0]]
                except (KeyError, OSError, TimeoutError):
                    continue
                os.kill(pid, signal.SIGKILL)
                killed.add(busy[0])
                self.kills += 1
            time.sleep(0.05)  # soon enough to catch the retry (a notebook takes ~1 s)


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """A ``dask scheduler`` (allowed-failures 1) and two ``dask worker`` processes."""
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    with dask_processes(tmp_path_factory.mktemp("workers"), scheduler_env=env) as cluster:
        yield cluster


@pytest.mark.slow
def test_worker_processes_grade_like_the_local_pool_despite_a_kill(baseline, processes,
                                                                   tmp_path, monkeypatch):
    cfg = _fresh(baseline, tmp_path)
    writes = _count_writes(monkeypatch)
    address, client = processes
    killer = Killer(client, "alice", times=1)
    killer.start()
    try:
        autograde(cfg, scheduler=address, **QUIET)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.kills == 1  # alice's worker died mid-task: she was graded elsewhere
    assert _snapshot(cfg.course_dir) == baseline[1]
    assert sorted(writes) == sorted(set(writes)) and len(writes) == len(baseline[1][1])


@pytest.mark.slow
def test_submission_that_kills_every_worker_ends_not_graded(baseline, processes, tmp_path):
    cfg = _fresh(baseline, tmp_path)
    address, client = processes
    client.wait_for_workers(2, timeout=START_SECONDS)  # restarted after the last test's kill
    killer = Killer(client, "carol", times=5)
    killer.start()
    try:  # carol alone: a notebook waiting on a worker that dies counts that try too
        autograde(cfg, scheduler=address, students=["carol"], **QUIET)
    finally:
        killer.stop.set()
        killer.join()
    assert killer.kills == 2  # allowed-failures 1: two tries, then no more
    _, rows = _snapshot(cfg.course_dir)
    assert rows[("carol", A, A)][0] == ("not graded: the grading worker died on each of 2 "
                                         "tries (Dask's distributed.scheduler.allowed-failures)")
    assert set(rows) == {("carol", A, A)}  # stored once, and nothing else touched


def _stored(course: Path, status: str = "graded") -> int:
    """Rows of ``status`` in the status store (read while autograde writes it)."""
    path = course / "grading_status.db"
    if not path.is_file():
        return 0
    db = sqlite3.connect(path, timeout=5)
    try:
        return db.execute("SELECT COUNT(*) FROM results WHERE status = ?",
                          (status,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


@pytest.mark.slow
def test_lost_scheduler_stops_the_run_and_a_rerun_resumes(baseline, tmp_path, monkeypatch):
    cfg = _fresh(baseline, tmp_path)
    monkeypatch.setattr(dist, "CONNECT_SECONDS", 5.0)  # how long the client tries to reconnect
    with dask_processes(tmp_path, workers=1) as (address, client):
        pid = client.run_on_scheduler(os.getpid)

        def kill_scheduler_after_a_graded_notebook():
            deadline = time.monotonic() + 120
            while _stored(cfg.course_dir) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_scheduler_after_a_graded_notebook, daemon=True)
        killer.start()
        with pytest.raises(dist.SchedulerLost, match="lost the Dask scheduler") as err:
            autograde(cfg, scheduler=address, **QUIET)
        killer.join()
    assert "running autograde again resumes" in str(err.value)
    kept = _stored(cfg.course_dir)
    assert 1 <= kept < len(baseline[1][1])
    logs = []
    autograde(cfg, jobs=2, log=logs.append)  # any backend resumes: here the process pool
    assert f"skipping {kept} notebook(s) already graded and unchanged" in logs
    assert _snapshot(cfg.course_dir) == baseline[1]


@pytest.mark.slow
def test_worker_without_bubblewrap_refuses_and_nothing_is_graded(baseline, tmp_path):
    plain = _fresh(baseline, tmp_path)
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=plain.course_dir, sandbox=True)
    ref = json.loads((cfg.course_dir / "reference" / A / f"{A}.json").read_text())
    task = autograde_module.grading_task(
        cfg, KernelSettings.for_assignment(cfg, A), "alice", A,
        cfg.course_dir / "submitted" / "alice" / A, cfg.graded_notebooks(A)[0], ref)
    arrived = []
    no_bwrap = {"PATH": str(tmp_path / "empty")}  # every tool but Python gone, bwrap too
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address="127.0.0.1:0", memory_limit=0,
                      env=no_bwrap) as cluster:
        with pytest.raises(RuntimeError, match="bubblewrap is not installed") as err:
            dist.run_dask(cluster.scheduler_address, cfg, [task], desc="autograde",
                          on_result=lambda i, res: arrived.append(res))
        assert "1 Dask worker(s) cannot grade, nothing was sent" in str(err.value)
        assert list(cluster.workers.values())[0].worker_address in str(err.value)
        # a worker that joins later and fails the check answers 'not graded: <reason>'
        with Client(cluster) as client:
            job = dist.RemoteJob(task=task, submission=Bundle.of([]), threads=1)
            answer = client.submit(dist.grade_remote, job, None, pure=False).result()
    assert "refused to grade" in answer["error"] and "bubblewrap" in answer["error"]
    assert arrived == []


def test_worker_with_another_version_refuses():
    version, code = worker_checks.grader_fingerprint()
    problem = worker_checks.worker_problem
    assert problem(sandbox=False, version=version, code=code) is None
    assert "the instructor 0.0.1" in problem(sandbox=False, version="0.0.1", code=code)
    assert "grading code differs" in problem(sandbox=False, version=version, code="0" * 64)
    names = {p.name for p in worker_checks.grader_files()}  # what the digest covers
    assert {"worker.py", "judge.py", "rules.py", "sandbox_launcher.py", "distributed.py",
            "bundles.py", "worker_checks.py"} <= names
    assert not names & {"feedback.py", "release.py", "cli.py", "autograde.py"}


@pytest.mark.slow
def test_benchmark_smoke(tmp_path):
    """bench/grading_dask.py at its smallest size (its figures are not checked: not a test)."""
    out = tmp_path / "bench.json"
    bench = Path(__file__).resolve().parents[1] / "bench" / "grading_dask.py"
    done = subprocess.run([sys.executable, str(bench), "--students", "1", "--workers", "1",
                           "--no-pool", "--no-sandbox", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=True)
    assert "overhead s/nb" in done.stdout
    run = json.loads(out.read_text())["runs"][0]
    assert run["backend"] == "local:1" and run["notebooks"] == 2 and run["graded"] == 2
    assert run["start_seconds"] > 0 and run["dispatch_seconds"] > 0
