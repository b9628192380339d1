"""Start-up cost of the grading commands: third-party work deferred, workers prepared early.

Every ``cs231n-course autograde`` pays a fixed cost before its first notebook runs and after
its last. What of it is not the grader's work is cut here:

- ``defer_rfc3987_syntax``: importing ``nbformat`` (which the course config's nbgrader, the
  gradebook and every worker need) imports ``jsonschema``, whose format checkers import
  ``rfc3987_syntax``, which compiles some 40 Lark parsers at import time (about 1 s of CPU in
  each process; python-jsonschema/jsonschema#1428). Only its ``iri``/``iri-reference`` format
  checks use them, which nothing in the grader runs: nbformat validates without a format
  checker. A stand-in module defers that import until the first call of one of its
  functions, which then behaves exactly as before.
- ``start_worker_server``: the ``forkserver`` that worker processes are forked from imports the
  workers' modules (``WORKER_MODULES``) once. Started by the first pool it does that while the
  parent waits for its first worker; started at the beginning of the command
  (``cli.main``) it does it while the parent loads the course config, on another core. The
  workers import no nbgrader at all (``cs231n_grading.timestamps``): about 0.5 s less to import.
- ``skip_exit_collection``: at exit the interpreter garbage-collects every object still alive
  (the whole of nbgrader, SQLAlchemy, nbconvert, ...), about 0.5 s of CPU that frees memory
  the operating system is about to take back anyway.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
import threading
import types
from multiprocessing import get_all_start_methods, get_context

# Imported once by the fork server, not by every worker: the grading worker and what its first
# task would otherwise import in each worker (the sandbox's kernel manager, the rules' IPython
# input transformer).
WORKER_MODULES = ["cs231n_grading.worker", "cs231n_grading.sandbox",
                  "IPython.core.inputtransformer2"]

RFC3987_SYNTAX = "rfc3987_syntax"
RFC3987_FUNCTIONS = ("is_valid_syntax",)  # what ``jsonschema._format`` imports from it


def worker_context():
    """The multiprocessing context of the worker pools: ``forkserver`` where it exists (workers
    are not forked from this process, whose threads (tqdm, nbgrader, zmq) would leave locks
    held in the child), else ``spawn``. Workers import the task function by name."""
    if "forkserver" in get_all_start_methods():
        ctx = get_context("forkserver")
        ctx.set_forkserver_preload(WORKER_MODULES)
        return ctx
    return get_context("spawn")


def start_worker_server() -> bool:
    """Start the fork server now (it imports ``WORKER_MODULES`` in the background) so that the
    first worker pool finds it ready; whether it runs. False where there is no fork server
    (pools ``spawn`` workers) or it cannot start now (the first pool tries again and reports).

    Call it before this process changes ``os.environ`` or ``sys.path`` for its workers: the
    server, and every worker forked from it, keep what they were when it started."""
    ctx = worker_context()
    if ctx.get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except OSError:
        return False
    return True


def skip_exit_collection() -> None:
    """Leave the objects alive now out of every later garbage collection (``gc.freeze``), the
    ones the interpreter runs at exit included; call it when a command is done and the
    process about to exit. Nothing is lost: files, databases and the gradebook are closed by
    the code that opened them, ``atexit`` handlers and ``weakref.finalize`` callbacks still
    run, and buffered output is still flushed. (``gc.unfreeze`` undoes it.)"""
    gc.freeze()


def _deferred_module(name: str, spec, functions: tuple[str, ...]) -> types.ModuleType:
    """A module object standing for package ``name`` (found at ``spec``) whose ``__init__`` runs
    on the first call of one of ``functions`` or the first look-up of any other attribute; the
    real code then fills this same module, so later look-ups find the real objects."""
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()  # re-entrant: the package's own code may look itself up
    loaded = []

    def load() -> types.ModuleType:
        with lock:
            if not loaded:
                loaded.append(True)
                try:
                    spec.loader.exec_module(module)  # replaces the stand-in functions below
                except BaseException:
                    loaded.clear()  # the next use tries again, as a failed import would
                    raise
        return module

    def stand_in(fname):
        def call(*args, **kwargs):
            return getattr(load(), fname)(*args, **kwargs)

        call.__name__ = call.__qualname__ = fname
        call.__doc__ = f"Runs {name}.{fname}, importing {name} first (deferred import)."
        return call

    def __getattr__(attr):  # PEP 562: only for names the module does not have (yet)
        try:
            return load().__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    for fname in functions:
        setattr(module, fname, stand_in(fname))
    module.__getattr__ = __getattr__
    return module


def defer_import(name: str, functions: tuple[str, ...], modules: dict | None = None) -> bool:
    """Put a deferred stand-in for the installed top-level package ``name`` in ``modules`` (default
    ``sys.modules``): its code runs on the first call of one of ``functions`` or the first
    look-up of another attribute (``_deferred_module``). Nothing is done, and False returned,
    when ``name`` is imported already or not installed."""
    modules = sys.modules if modules is None else modules
    if name in modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    modules[name] = _deferred_module(name, spec, functions)
    return True


def defer_rfc3987_syntax() -> bool:
    """Defer ``rfc3987_syntax``'s parser compilation until an IRI is checked (see the module
    docstring); whether the stand-in was put in place."""
    return defer_import(RFC3987_SYNTAX, RFC3987_FUNCTIONS)
