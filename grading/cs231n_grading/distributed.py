"""Grade on a Dask distributed cluster: ``cs231n-course autograde --scheduler ADDRESS|local:N``.

The second backend beside ``autograde.run_pool``, with the same interface: grading tasks in, each
result handed to ``on_result`` in the instructor's process as it arrives (which alone writes the
gradebook and the status store), the same progress bar. Reference runs stay on the instructor's
machine (one per source notebook, cached in ``<course>/reference``); only submissions go out.

A worker does not share the instructor's disk, so everything a task reads travels as data
(checksummed ``bundles.Bundle`` s, unpacked into the worker's local directory):

- once per worker, in the :class:`GraderPlugin` (a Dask ``WorkerPlugin``): the student edition of
  the library and the course's data folder;
- once per worker per notebook (a Dask task its grading tasks depend on, recomputed if the worker
  holding it dies): the released source snapshot, the student version and the files given to
  students;
- with each task (:class:`RemoteJob`): the submission folder read here without following links,
  its reference record, its key. The executed (autograded) notebook comes back as bytes.

At start the plugin checks each worker (``worker_checks``: bubblewrap works, same
``cs231n-course`` version and grader code as the instructor's); the run refuses to start while a
connected worker fails the check, and a worker that joins later and fails it answers every task
``not graded: <reason>``; no worker ever grades unsandboxed unless the instructor ran with
``--no-sandbox``.

Faults: a worker that dies mid-task has its task rerun elsewhere by Dask; a notebook whose workers
die more than ``distributed.scheduler.allowed-failures`` times (the scheduler's setting, default
3) ends ``not graded``; a lost scheduler stops the run with :class:`SchedulerLost` (results stored
so far are kept, a rerun resumes).
"""

from __future__ import annotations

import dataclasses
import gc
import os
import socket
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed, get_worker
from distributed.scheduler import KilledWorker
from tqdm import tqdm

from cs231n_grading.bundles import Bundle, folder_entries, notebook_bundle, submission_bundle
from cs231n_grading.tasks import GradingTask
from cs231n_grading.worker import grade_submission
from cs231n_grading.worker_checks import grader_fingerprint, worker_problem

PLUGIN_NAME = "cs231n-grader"
WORKER_WAIT_SECONDS = 60.0  # how long a run waits for a first worker to join the scheduler
CONNECT_SECONDS = 20.0  # how long connecting to a scheduler may take
POLL_SECONDS = 1.0  # how often the dispatcher looks at the number of worker threads
MAX_CANCELS = 2  # a task the cluster cancels (scheduler still there) is submitted again this often
# Tasks submitted per worker thread: one, so that a worker holds only the notebook it grades
# (its death makes only that one suspect) and memory stays bounded everywhere; the next task is
# sent as soon as a result arrives, before that result is stored.
IN_FLIGHT_PER_THREAD = 1

# Scheduler settings of local:N clusters (document them for a cluster of your own)
SCHEDULER_SETTINGS = {"distributed.scheduler.worker-saturation": 1.0}


class SchedulerLost(RuntimeError):
    """The connection to the Dask scheduler broke during a run."""


# --- what runs on a worker ---------------------------------------------------------------------

class GraderPlugin(WorkerPlugin):
    """Prepares each worker for grading: checks it, unpacks the library and data once.

    Registered by the instructor's run; Dask sends it to every worker, including those that
    join (or are restarted) later. ``problem`` holds why the worker must not grade.
    """

    name = PLUGIN_NAME

    def __init__(self, *, sandbox: bool, memory_mb: int, library: Bundle, data: Bundle | None,
                 version: str, code: str):
        self.sandbox, self.memory_mb, self.library, self.data = sandbox, memory_mb, library, data
        self.version, self.code = version, code
        self.problem: str | None = "not set up"
        self.base: Path | None = None
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def setup(self, worker) -> None:
        """Check this worker; unpack the library and data into its local directory."""
        self.base = Path(worker.local_directory) / "cs231n"
        self.problem = worker_problem(sandbox=self.sandbox, version=self.version,
                                      code=self.code, memory_mb=self.memory_mb)
        if self.problem is None:
            try:
                self.unpacked(self.library)
                if self.data is not None:
                    self.unpacked(self.data)
            except (OSError, ValueError) as err:
                self.problem = f"cannot unpack the course files: {err}"
        if self.problem:
            worker.log_event(PLUGIN_NAME, {"worker": worker.address, "problem": self.problem})

    def teardown(self, worker) -> None:
        """Let a closing worker process exit at once.

        The grading stack it imported (nbclient, jupyter_client, IPython, numpy: some 600
        modules, Dask's besides) makes the final garbage collections take seconds on a busy
        machine, past the 4 s after which Dask's nanny kills a closing worker. So what is
        garbage now is collected, and what is still alive is left out of later collections
        (gc.freeze; reference counting still frees it): the process ends, or, when another run
        replaces the plugin, goes on with its imports held for good.
        """
        gc.collect()
        gc.freeze()

    def unpacked(self, bundle: Bundle) -> Path:
        """Folder holding ``bundle``'s files on this worker (unpacked on first use)."""
        dest = self.base / bundle.sha256[:24]
        with self._lock:
            if not dest.is_dir():
                tmp = self.base / f"tmp-{uuid.uuid4().hex}"
                bundle.unpack(tmp)
                tmp.rename(dest)
        return dest

    def library_dir(self) -> Path:
        """The student library on this worker."""
        return self.unpacked(self.library)

    def data_dir(self) -> Path | None:
        """The course data folder on this worker, if the course has one."""
        return self.unpacked(self.data) if self.data is not None else None


def _plugin_problem(dask_worker) -> str | None:
    """The GraderPlugin's verdict on ``dask_worker`` (run there by Client.run)."""
    plugin = dask_worker.plugins.get(PLUGIN_NAME)
    return "the grader plugin is not installed" if plugin is None else plugin.problem


def _machine(dask_worker) -> tuple[str, int, int]:
    """(host name, CPUs, worker threads) of ``dask_worker`` (run there by Client.run)."""
    return socket.gethostname(), os.cpu_count() or 1, dask_worker.state.nthreads


@dataclass(frozen=True)
class RemoteJob:
    """One grading task as sent to a worker: the task (its paths are the instructor's, not
    read there), the submission folder and the kernel's share of the worker's CPUs."""

    task: GradingTask
    submission: Bundle
    threads: int


def _value(bundle: Bundle) -> Bundle:
    """Identity: makes a bundle a Dask task result, recomputed wherever it is lost."""
    return bundle


def grade_remote(job: RemoteJob, notebook: Bundle) -> dict:
    """Grade one submission on a Dask worker (worker.grade_submission on local copies).

    Returns the result as data; ``autograded_notebook`` holds the executed notebook's bytes
    for the instructor to write. ``{'error': ...}`` when the worker may not grade.
    """
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN_NAME)
    problem = _plugin_problem(worker)
    if problem:
        return {"error": f"worker {worker.address} refused to grade: {problem}"}
    t = job.task
    try:
        given = plugin.unpacked(notebook)
        with tempfile.TemporaryDirectory(prefix="cs231n-remote-") as tmp:
            submitted = job.submission.unpack(Path(tmp) / "submitted")
            out = Path(tmp) / "autograded.ipynb"
            settings = dataclasses.replace(t.settings, library_dir=plugin.library_dir(),
                                           data_dir=plugin.data_dir(), threads=job.threads)
            local = dataclasses.replace(
                t, settings=settings, source=given / "source.ipynb",
                release=given / "release.ipynb", release_dir=given / "given",
                submission=submitted / t.student / t.assignment / Path(t.submission).name,
                autograded=out if t.autograded is not None else None)
            result = grade_submission(local)
            if out.is_file():
                result["autograded_notebook"] = out.read_bytes()
    except Exception as err:  # noqa: BLE001 - comes back as 'not graded', like run_pool's
        return {"error": f"{type(err).__name__}: {err}"}
    return result


# --- the instructor's side ---------------------------------------------------------------------

def parse_scheduler(text: str) -> int | str:
    """N of ``local:N`` (N >= 1), or a scheduler address such as ``tcp://host:8786``;
    ValueError for anything else."""
    if text.startswith("local:"):
        n = text.removeprefix("local:")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--scheduler {text!r}: local:N needs a number of workers N >= 1")
        return int(n)
    if "://" not in text:
        raise ValueError(f"--scheduler {text!r} is neither local:N nor a scheduler address "
                         "such as tcp://host:8786 (or tls://host:8786)")
    return text


@contextmanager
def connect(scheduler: str):
    """A Dask Client of ``scheduler`` (``local:N``: a LocalCluster of N worker processes with
    one thread each, started here and stopped on exit); RuntimeError when unreachable."""
    target = parse_scheduler(scheduler)
    if isinstance(target, int):
        # memory_limit=0: the sandbox caps each kernel; the worker process itself is small.
        # SCHEDULER_SETTINGS: few notebooks wait on a worker, since each one waiting on a
        # worker that dies counts a try against allowed-failures.
        with dask.config.set(SCHEDULER_SETTINGS), \
                LocalCluster(n_workers=target, threads_per_worker=1, processes=True,
                             host="127.0.0.1", dashboard_address="127.0.0.1:0",
                             memory_limit=0) as cluster, \
                Client(cluster) as client:
            yield client
        return
    try:
        client = Client(target, timeout=CONNECT_SECONDS)
    except OSError as err:
        raise RuntimeError(f"cannot reach the Dask scheduler at {target}: {err}") from err
    with client:
        yield client


def course_bundles(cfg) -> tuple[Bundle, Bundle | None]:
    """(student library, data folder or None) of a course, as sent to every worker."""
    library = Bundle.of(folder_entries(cfg.student_library_dir))
    data = (Bundle.of(folder_entries(cfg.data_dir))
            if cfg.data_dir is not None and Path(cfg.data_dir).is_dir() else None)
    return library, data


def prepare_workers(client: Client, cfg) -> int:
    """Register the GraderPlugin, wait for a worker, and refuse to start (RuntimeError naming
    each worker and its reason) while a connected worker may not grade. Returns each kernel's
    thread share: the fewest CPUs per worker thread over the workers' machines."""
    version, code = grader_fingerprint()
    library, data = course_bundles(cfg)
    client.register_plugin(GraderPlugin(sandbox=cfg.sandbox, memory_mb=cfg.memory_mb,
                                        library=library, data=data, version=version,
                                        code=code), name=PLUGIN_NAME)
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_SECONDS)
    except TimeoutError as err:
        raise RuntimeError(f"no Dask worker joined the scheduler {client.scheduler.address} "
                           f"within {WORKER_WAIT_SECONDS:.0f} s; start some with `dask worker "
                           f"{client.scheduler.address}`") from err
    problems = {w: p for w, p in client.run(_plugin_problem).items() if p}
    if problems:
        lines = "; ".join(f"{w}: {p}" for w, p in sorted(problems.items()))
        raise RuntimeError(f"{len(problems)} Dask worker(s) cannot grade, nothing was sent: "
                           f"{lines}")
    threads: dict[str, int] = {}
    cpus: dict[str, int] = {}
    for host, ncpu, nthreads in client.run(_machine).values():
        threads[host] = threads.get(host, 0) + nthreads
        cpus[host] = ncpu
    return max(1, min(cpus[h] // threads[h] for h in threads))


def _failure(err: BaseException) -> str:
    """The 'not graded' reason of a task that raised on the cluster."""
    if isinstance(err, KilledWorker):
        return (f"the grading worker died on each of {err.allowed_failures + 1} tries "
                "(Dask's distributed.scheduler.allowed-failures)")
    return f"grading task failed on the cluster ({type(err).__name__}: {err})"


def _cancel_reason(fut) -> str:
    """Why Dask cancelled ``fut``, as it says."""
    try:
        fut.exception(timeout=1)
    except Exception as err:  # noqa: BLE001 - FutureCancelledError, with its reason
        return f"{type(err).__name__}: {err}"
    return "no reason given"


def _store_autograded(task: GradingTask, result: dict) -> dict:
    """Write the executed notebook a worker sent back where a local worker writes it."""
    data = result.pop("autograded_notebook", None)
    if data is None or task.autograded is None:
        return result
    try:
        out = Path(task.autograded)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except OSError as err:
        return {"error": f"autograded notebook could not be written ({err})"}
    return result


class _Dispatcher:
    """Submits tasks a window at a time and hands each result over once."""

    def __init__(self, client: Client, tasks: list[GradingTask], threads: int, collect):
        self.client, self.tasks, self.threads, self.collect = client, tasks, threads, collect
        self.address = client.scheduler.address
        self.run_id = uuid.uuid4().hex[:8]
        self.notebooks: dict[tuple, object] = {}  # notebook files -> their bundle's future
        self.index: dict[str, int] = {}  # task key -> task index
        self.next = 0
        self.retry: list[int] = []  # tasks the cluster cancelled, to submit again
        self.cancels: dict[int, int] = {}
        self.done: set[int] = set()
        self.window = IN_FLIGHT_PER_THREAD
        self.window_at = 0.0

    def _window(self) -> int:
        """Tasks kept submitted: IN_FLIGHT_PER_THREAD per worker thread now connected."""
        now = time.monotonic()
        if now - self.window_at > POLL_SECONDS:
            self.window = IN_FLIGHT_PER_THREAD * max(1, sum(self.client.nthreads().values()))
            self.window_at = now
        return self.window

    def submit(self, pending: as_completed) -> None:
        """Submit tasks until the window is full or none is left."""
        while (self.retry or self.next < len(self.tasks)) and len(self.index) < self._window():
            if self.retry:
                i = self.retry.pop()
            else:
                i, self.next = self.next, self.next + 1
            t = self.tasks[i]
            nb = (str(t.source), str(t.release), str(t.release_dir))  # one per edition
            if nb not in self.notebooks or self.notebooks[nb].status in ("cancelled", "error"):
                self.notebooks[nb] = self.client.submit(
                    _value, notebook_bundle(t), pure=False,
                    key=f"cs231n-notebook-{len(self.notebooks)}-{self.run_id}")
            job = RemoteJob(task=t, submission=submission_bundle(
                Path(t.submission).parent, Path(t.submission).name,
                t.settings.max_notebook_bytes), threads=self.threads)
            fut = self.client.submit(
                grade_remote, job, self.notebooks[nb], pure=False,
                key=f"cs231n-grade-{t.student}-{t.assignment}-{t.notebook}-{i}-{self.run_id}-"
                    f"{self.cancels.get(i, 0)}")
            self.index[fut.key] = i
            pending.add(fut)

    def finish(self, i: int, fut) -> None:
        """Hand over the result of ``fut``, task ``i``'s (once per task)."""
        if fut.status == "finished":
            res = _store_autograded(self.tasks[i], fut.result())
        elif fut.status == "error":
            res = {"error": _failure(fut.exception())}
        elif self.client.status != "running":  # cancelled: the scheduler went away
            raise SchedulerLost(self.lost_message())
        else:  # cancelled by the cluster (e.g. the task was lost with a worker): again, bounded
            self.cancels[i] = self.cancels.get(i, 0) + 1
            fut.release()
            if self.cancels[i] <= MAX_CANCELS:
                self.retry.append(i)
                return
            res = {"error": f"the cluster cancelled the grading task {MAX_CANCELS + 1} times "
                            f"({_cancel_reason(fut)})"}
        fut.release()
        if i not in self.done:
            self.done.add(i)
            self.collect(i, res)

    def lost_message(self) -> str:
        """What SchedulerLost says."""
        left = len(self.tasks) - len(self.done)
        return (f"lost the Dask scheduler {self.address}: {left} notebook(s) "
                "not graded in this run; results already stored are kept, and running "
                "autograde again resumes from them")

    def run(self) -> None:
        """Submit and collect until every task has its result."""
        pending = as_completed(with_results=False)
        self.submit(pending)
        while len(self.done) < len(self.tasks):
            batch = pending.next_batch(block=False)
            if not batch:
                if self.client.status not in ("running", "connecting"):
                    raise SchedulerLost(self.lost_message())
                self.submit(pending)  # cancelled tasks, or workers that joined
                time.sleep(0.05)
                continue
            arrived = [(self.index.pop(fut.key), fut) for fut in batch]
            self.submit(pending)  # keep the workers busy while results are stored
            for i, fut in arrived:
                self.finish(i, fut)


def _report_refusal(event) -> None:
    """Tell the instructor about a worker that joined during the run and may not grade (its
    tasks come back ``not graded``)."""
    _, msg = event
    tqdm.write(f"warning: Dask worker {msg.get('worker')} cannot grade: {msg.get('problem')}")


def dispatch(client: Client, tasks: list[GradingTask], threads: int, collect) -> None:
    """Grade ``tasks`` on ``client``'s prepared workers (prepare_workers), kernels with
    ``threads`` threads; ``collect(i, result)`` runs here once per task as results arrive.
    SchedulerLost when the scheduler goes away."""
    dispatcher = _Dispatcher(client, tasks, threads, collect)
    try:
        dispatcher.run()
    except (OSError, TimeoutError) as err:  # a call to the scheduler failed (CommClosedError...)
        raise SchedulerLost(f"{dispatcher.lost_message()} ({type(err).__name__}: {err})") from err


def run_dask(scheduler: str, cfg, tasks: list[GradingTask], *, desc: str,
             on_result=None) -> list[dict]:
    """Grade ``tasks`` on the Dask cluster ``scheduler`` (``local:N`` or an address) with a
    progress bar; results in task order. ``on_result(i, result)`` runs in this process as each
    result arrives (as with ``autograde.run_pool``). RuntimeError when the cluster cannot grade,
    SchedulerLost when the scheduler goes away mid-run."""
    results: list[dict | None] = [None] * len(tasks)
    if not tasks:
        return results
    with connect(scheduler) as client:
        threads = prepare_workers(client, cfg)
        client.subscribe_topic(PLUGIN_NAME, _report_refusal)
        with tqdm(total=len(tasks), desc=desc, unit="nb", dynamic_ncols=True) as bar:
            def collect(i, res):
                results[i] = res
                if on_result:
                    on_result(i, res)
                bar.update(1)

            dispatch(client, tasks, threads, collect)
    return results
