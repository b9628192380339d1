"""``cs231n-course autograde``: grade every submission in parallel worker processes.

The parent discovers submissions in nbgrader's ``submitted/<student>/<assignment>/`` layout,
makes sure the reference records are up to date, hands one task per notebook to a process pool,
and alone writes the gradebook and the status store as results come back (tqdm bar). A task whose
key (submission hash, reference key, timeouts) matches a stored ``graded`` outcome is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path

from tqdm import tqdm

from cs231n_grading.config import CourseConfig
from cs231n_grading.editions import BestOfEditions, edition_tasks
from cs231n_grading.gradebook import attach_scores, open_gradebook, write_result
from cs231n_grading.kernels import check_sandbox
from cs231n_grading.outcome import is_graded
from cs231n_grading.safe_files import RefusedFile, read_file, submission_root
from cs231n_grading.startup import worker_context
from cs231n_grading.status import StatusStore
from cs231n_grading.tasks import GradingTask, KernelSettings, ReferenceTask, with_threads
from cs231n_grading.timestamps import read_timestamp
from cs231n_grading.worker import grade_submission, not_graded_result, run_reference


def _hash(*parts: bytes) -> str:
    """Short hex digest of several byte strings."""
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:24]


def library_hash(cfg: CourseConfig) -> bytes:
    """Hash of every file of the student library edition (part of the reference key)."""
    h = hashlib.sha256()
    for p in sorted(cfg.student_library_dir.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(cfg.student_library_dir)).encode() + p.read_bytes())
    return h.digest()


def require_release(cfg: CourseConfig, assignments: list[str]) -> None:
    """Raise ValueError unless ``assignments`` and the student library are released."""
    for a in assignments:
        if not (cfg.course_dir / "release" / a).is_dir():
            raise ValueError(f"assignment {a!r} has no release in {cfg.course_dir}; run "
                             "`cs231n-course release` first")
    if not cfg.student_library_dir.is_dir():
        raise ValueError(f"no student library in {cfg.student_library_dir}; run release first")


def reference_tasks(cfg: CourseConfig, assignments: list[str]) -> dict[Path, ReferenceTask]:
    """{cache path: task} for every source notebook of ``assignments``."""
    lib = library_hash(cfg)
    tasks = {}
    for a in assignments:
        settings = KernelSettings.for_assignment(cfg, a)
        for src in cfg.graded_notebooks(a):
            source_dir = cfg.assignments_dir / a
            what = json.dumps([settings.key_text(), str(src), str(source_dir)])
            tasks[cfg.course_dir / "reference" / a / f"{src.stem}.json"] = ReferenceTask(
                settings=settings, source=src, source_dir=source_dir,
                executed_path=cfg.course_dir / "reference" / a / src.name,
                key=_hash(src.read_bytes(), lib, what.encode()))
    return tasks


def load_references(cfg: CourseConfig, assignments: list[str], jobs: int, *, log=print,
                    strict: bool = True) -> dict[tuple[str, str], dict]:
    """Reference records per (assignment, notebook stem), re-run only when their key changed."""
    tasks = reference_tasks(cfg, assignments)
    refs, todo = {}, {}
    for path, task in tasks.items():
        cached = json.loads(path.read_text()) if path.is_file() else None
        if cached and cached.get("key") == task.key:
            refs[path] = cached
        else:
            todo[path] = task
    if todo:
        results = run_pool(run_reference, list(todo.values()), jobs, desc="reference runs")
        for path, res in zip(todo, results, strict=True):
            if "error" in res and "cells" not in res:
                raise RuntimeError(f"reference run of {todo[path].source} failed: "
                                   f"{res['error']}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(res))
            refs[path] = res
    out = {}
    for path, ref in refs.items():
        problems = ref["errors"] + ref["events"]
        if problems and strict:
            raise RuntimeError(f"the source notebook {ref['notebook']} does not run cleanly "
                               f"with the student library: {problems[:3]}; run "
                               "`cs231n-course verify` for details")
        if problems:
            log(f"warning: source notebook {ref['notebook']}: {problems[:3]}")
        out[(path.parent.name, path.stem)] = ref
    return out


def _safe(fn, task):
    """Run ``fn(task)`` in the worker; exceptions come back as {'error': ...}."""
    try:
        return fn(task)
    except Exception as err:  # noqa: BLE001
        return {"error": f"{type(err).__name__}: {err}"}


def _context():
    """The worker pools' multiprocessing context (cs231n_grading.startup.worker_context)."""
    return worker_context()


def run_pool(fn, tasks: list, jobs: int, *, desc: str, on_result=None) -> list[dict]:
    """``fn`` over ``tasks`` in ``jobs`` processes with a progress bar; results in task order.

    A task whose worker process dies is retried alone in a fresh process; if that dies too its
    result is ``{'error': 'grading worker crashed'}``. ``on_result(i, result)`` runs in this
    process as each result arrives.
    """
    if not tasks:  # nothing to do (e.g. a rerun with everything graded): start no processes
        return []
    results: list[dict | None] = [None] * len(tasks)
    workers = max(1, min(jobs, len(tasks)))
    # each kernel gets its share of the CPUs (not part of a task's key: results do not depend on
    # it beyond rounding, and a reference run must not be redone because jobs changed)
    share = max(1, (os.cpu_count() or 1) // workers)
    tasks = [with_threads(t, share) for t in tasks]
    ctx = _context()

    def collect(idx, res):
        results[idx] = res
        if on_result:
            on_result(idx, res)
        bar.update(1)

    crashed = []
    with tqdm(total=len(tasks), desc=desc, unit="nb", dynamic_ncols=True) as bar:
        if tasks:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            try:
                futures = {pool.submit(_safe, fn, t): i for i, t in enumerate(tasks)}
                for fut in as_completed(futures):
                    try:
                        collect(futures[fut], fut.result())
                    except BrokenProcessPool:
                        crashed.append(futures[fut])
            except BaseException:  # Ctrl-C or a failing on_result: start nothing new
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown()
        for idx in sorted(crashed):  # one at a time: find the task that kills its worker
            try:
                with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as solo:
                    collect(idx, solo.submit(_safe, fn, tasks[idx]).result())
            except BrokenProcessPool:
                collect(idx, {"error": "grading worker crashed"})
    return results


def discover(cfg: CourseConfig, assignments: list[str], students: list[str] | None):
    """(student, assignment, folder) for every submission folder present.

    Links are not followed but listed: a student folder that is a symbolic link yields every
    assignment of ``assignments`` (nothing inside it is looked at), and an assignment entry that
    is a link, or not a folder, is listed too; grading then refuses them with a status.
    """
    root = cfg.course_dir / "submitted"
    found = []
    if not root.is_dir():
        return found
    for sdir in sorted(p for p in root.iterdir() if p.is_symlink() or p.is_dir()):
        if students and sdir.name not in students:
            continue
        for a in assignments:
            if sdir.is_symlink() or os.path.lexists(sdir / a):
                found.append((sdir.name, a, sdir / a))
    return found


def _submission_bytes(path: Path, limit: int) -> bytes:
    """What the resume key hashes of a submitted notebook: its bytes, read without following
    links (safe_files.read_file), or why they cannot be read."""
    try:
        root, rel = submission_root(path.parent)
        return read_file(root, rel / path.name, max_bytes=limit)
    except (RefusedFile, OSError) as err:
        return f"<not read: {type(err).__name__}: {err}>".encode()


def _timestamp_problem(folder: Path) -> str | None:
    """Why the submission time in ``folder`` is not used, if it is not (safe_files)."""
    try:
        return read_timestamp(*submission_root(folder))[1]
    except RefusedFile as err:  # a link: the worker made the notebook 'not graded'
        return str(err)


def _failed(reason: str) -> dict:
    """The result of a notebook that could not be graded or saved."""
    return not_graded_result(reason) | {"score": 0.0, "max_score": 0.0, "duration": 0.0}


class _Saver:
    """Persists each result the moment it arrives (status store, then gradebook).

    A failure while saving one result makes that notebook ``not graded: <reason>`` (stored as
    far as possible) and never stops the run. The gradebook at ``url`` is opened when the first
    result arrives, not before the first notebook starts (it is not needed earlier); one that
    cannot be opened stops the run there, with nothing saved. ``close()`` when done.
    """

    def __init__(self, store: StatusStore, url: str, tasks: list[GradingTask], log):
        self.store, self.url, self.tasks, self.log = store, url, tasks, log
        self.gb = None
        self.saved: dict[int, dict] = {}

    def close(self) -> None:
        """Close the gradebook if it was opened."""
        if self.gb is not None:
            self.gb.close()

    def __call__(self, i: int, res: dict) -> None:
        """on_result of run_pool for task ``i``."""
        if self.gb is None:  # outside the per-result guard below: no gradebook, no run
            self.gb = open_gradebook(self.url)
        t = self.tasks[i]
        if "status" not in res:  # the worker itself failed
            res = _failed(res.get("error", "unknown grader failure"))
        res.update(student=t.student, assignment=t.assignment, notebook=t.notebook, key=t.key)
        folder = Path(t.submission).parent
        try:
            problem = _timestamp_problem(folder)
            if problem:
                res["notes"] = [*res.get("notes", []), f"submission time not recorded: {problem}"]
            self._write(res, folder)
        except Exception as err:  # noqa: BLE001 - one result must not stop the class
            res = _failed(f"result could not be saved ({type(err).__name__}: {err})") | {
                k: res[k] for k in ("student", "assignment", "notebook", "key", "max_score")
                if k in res}
            try:
                self._write(res, folder)
            except Exception as again:  # noqa: BLE001
                self.log(f"error: could not store the result of {t.student}/"
                         f"{t.notebook}: {type(again).__name__}: {again}")
        self.saved[i] = res

    def _write(self, res: dict, folder: Path) -> None:
        """Store ``res`` and write it to the gradebook; the gradebook is rolled back on error."""
        self.store.put(res)
        try:
            write_result(self.gb, res, folder)
        except BaseException:
            self.gb.db.rollback()
            raise


def grading_task(cfg: CourseConfig, settings: KernelSettings, student: str, assignment: str,
                 folder: Path, src: Path, ref: dict) -> GradingTask:
    """The task of grading ``student``'s copy (in ``folder``) of source notebook ``src``; its key
    hashes the submitted bytes, the reference and the timeouts."""
    release_dir = cfg.course_dir / "release" / assignment
    sub = folder / src.name
    key = _hash(_submission_bytes(sub, settings.max_notebook_bytes), ref["key"].encode(),
                str(settings.cell_timeout).encode(), str(settings.notebook_timeout).encode())
    return GradingTask(settings=settings, student=student, assignment=assignment,
                       notebook=src.stem, submission=sub, source=src,
                       release=release_dir / src.name, release_dir=release_dir, reference=ref,
                       autograded=cfg.course_dir / "autograded" / student / assignment / src.name,
                       key=key)


def _cluster_backend(scheduler: str):
    """``cs231n_grading.distributed.run_dask``, once ``scheduler`` is known to be well formed
    (ValueError) and Dask installed (RuntimeError)."""
    try:
        from cs231n_grading import distributed
    except ModuleNotFoundError as err:
        raise RuntimeError(f"--scheduler needs Dask distributed ({err}): pip install "
                           "'cs231n-course[cluster]'") from err
    distributed.parse_scheduler(scheduler)
    return distributed.run_dask


def autograde(cfg: CourseConfig, assignment: str | None = None, *, students=None,
              jobs: int | None = None, force: bool = False, log=print,
              scheduler: str | None = None) -> list[dict]:
    """Grade submissions; returns this run's results as saved (skipped ones from the store).

    Each result is stored as it arrives, so an interruption loses only the notebooks still
    being graded; a result that cannot be saved is stored as ``not graded`` and the run goes on.
    ``scheduler`` (``local:N`` or a Dask scheduler address) grades on a Dask cluster
    (cs231n_grading.distributed) instead of local worker processes; reference runs stay local.
    """
    run_cluster = _cluster_backend(scheduler) if scheduler else None
    assignments = [assignment] if assignment else cfg.released()
    require_release(cfg, assignments)
    log(check_sandbox(cfg.sandbox, cfg.memory_mb))
    jobs = jobs or os.cpu_count() or 1
    refs = load_references(cfg, assignments, jobs, log=log)
    store = StatusStore(cfg.course_dir)
    tasks, done = [], []
    for student, a, folder in discover(cfg, assignments, students):
        settings = KernelSettings.for_assignment(cfg, a)
        for src in cfg.graded_notebooks(a):
            group = edition_tasks(cfg, folder, src, partial(
                grading_task, cfg, settings, student, a, folder, ref=refs[(a, src.stem)]))
            old = store.get(student, a, src.stem)
            if not force and old and old["key"] == group[0].key and is_graded(old["status"]):
                done.append(old)
            else:
                tasks.extend(group)  # English and/or Chinese edition (cs231n_grading.editions)
    if done:
        log(f"skipping {len(done)} notebook(s) already graded and unchanged")
    save = _Saver(store, cfg.gradebook_url, tasks, log)
    try:
        if run_cluster:
            run_cluster(scheduler, cfg, tasks, desc="autograde",
                        on_result=BestOfEditions(tasks, save))
        else:
            run_pool(grade_submission, tasks, jobs, desc="autograde",
                     on_result=BestOfEditions(tasks, save))
    finally:
        save.close()
        store.close()
    # points come from the gradebook, the one score store (manual grades included)
    return attach_scores(cfg.gradebook_url, done + [save.saved[i] for i in sorted(save.saved)])
