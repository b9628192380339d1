"""Split a layer's batch across threads, so that the copies and small matrix products of a fast
layer use every core instead of one.

numpy runs its copies and elementwise operations on one core and releases the GIL while doing
so; OpenBLAS spreads each matrix product over its threads, but the skinny products of a
convolution leave them waiting on each other. Giving each Python thread its own slice of the
batch, with BLAS held to one thread inside (two threads each calling two-thread BLAS fight over
two cores), runs the whole pipeline side by side. Each slice is independent work on its own
images, so the results are the same as one thread's up to the order of the final sums over
slices (float rounding). Measured with ``bench/conv.py``.

A training step (``Solver``) holds BLAS to one thread from start to end (``blas_held``), so that no
product between two regions wakes OpenBLAS's own pool (whose threads spin on the cores the regions
need); so does every region whose products could wake that pool, a serial one included (``Batch``),
so that layers called directly, outside a training step, run as they do in one. What threads cannot
speed up, measured on this project's 2-core machine: a pass over memory (one core already uses the
memory bandwidth; hence the layers' work in cache-sized blocks and chunks), and numpy calls on
small arrays, which hold the GIL (two threads making them take longer than one; hence
``MIN_WORK``). Nor work of less than about half a millisecond on a virtual machine such as this
project's, whose guest kernel halts an idle CPU at once (``guest_halt_poll_ns`` 0 in
``/sys/module/haltpoll/parameters``): a thread that waits - the worker between two regions, a thread
waiting for the GIL - takes about 50 us to run again. Measured: a region's worker starts its slice
52 us after the hand-off, and two 0.13 ms matrix products took 0.24 ms on two threads against 0.26
ms on one. A worker that spins instead of waiting (in glibc's ``pthread_spin_lock`` through ctypes,
the GIL released) started at once (0.16 ms for those two products), but since the waits for the
GIL remain, it took 0.93-1.03 of the time of bench/train_step.py's steps and 0.80-1.05 of
bench/layers.py's float32 layers (ABBA in one process): not adopted, for a few percent at the
price of a core kept busy between regions. A whole network per thread on half of the
minibatch was tried for the training step: no faster than a split per layer, slower for small
networks.

How many threads: ``set_num_threads(n)``, else the environment variable CS231N_NUM_THREADS,
else the CPUs this process may run on. One thread (the caller's, same results) whenever the
batch has one image, the work is too small to pay for the hand-off (``MIN_WORK``), another
thread is already inside a parallel region (nested calls, or the user's own threads), or a
thread cannot be started (a sandbox's process limit): a parallel region never fails for lack of
threads.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, nullcontext

ENV_VAR = "CS231N_NUM_THREADS"
# Multiply-adds a slice must have at least: smaller ones cost more in hand-offs (~40 us a
# region) and numpy's per-call overheads than they gain. Measured on whole training steps
# (bench/train_step.py's networks, in one process against the previous setting): 2M with one
# slice per thread ran 3-11% faster than 8M with two (notebook 6's networks, whose layers have
# 10-40M multiply-adds, and ThreeLayerConvNet 32/7/100), the same on the larger networks; 1M
# was no better than 2M.
MIN_WORK = 1 << 21
# One pass of numpy over an array element costs about as much as this many multiply-adds in a
# matrix product (memory-bound vs compute-bound): the work of an elementwise layer (pooling,
# ReLU) for ``batch_slices`` is PASS_WORK * elements * passes.
PASS_WORK = 16
# Slices per thread. More, smaller slices would balance the threads better (they take them
# from a queue, so one that is slowed down takes fewer), but each slice repeats a layer's fixed
# per-call work (padding, planes, block set-up), and the layers already work in cache-sized
# blocks and chunks inside a slice: one per thread measured fastest (see MIN_WORK).
SLICES_PER_THREAD = 1
# OpenBLAS runs a product of at most this many multiply-adds on one thread (its
# GEMM_MULTITHREAD_THRESHOLD, 4, times 65536): a serial region with no more work than this makes
# no product that wakes BLAS's threads, and holding them to one would only cost time (~8 us a
# region: 35-55% more for a gradient check's loss call on a tiny network).
BLAS_ONE_THREAD_WORK = 4 * 65536

# Where Linux describes the first CPU's caches: one index*/ folder per cache, with its level,
# type and size ("2048K").
CACHE_SYSFS = "/sys/devices/system/cpu/cpu0/cache"


def l2_cache_bytes(default: int = 1 << 20) -> int:
    """The size in bytes of one core's level-2 cache (data or unified), as Linux's sysfs gives
    it; ``default`` where the system does not say (another OS, a container hiding sysfs)."""
    try:
        entries = os.listdir(CACHE_SYSFS)
    except OSError:
        return default
    for entry in sorted(entries):
        folder = os.path.join(CACHE_SYSFS, entry)
        try:
            with open(os.path.join(folder, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(folder, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(folder, "size")) as f:
                size = f.read().strip()
        except OSError:
            continue
        if level == "2" and kind in ("Data", "Unified"):
            units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
            number, unit = (size[:-1], units[size[-1]]) if size[-1:] in units else (size, 1)
            if number.isdigit() and int(number) > 0:
                return int(number) * unit
    return default


_state = threading.local()  # .inside: this thread is running a slice of a parallel region
_lock = threading.Lock()  # one parallel region at a time (the BLAS thread limit is global)
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_threads_failed = False
_requested: int | None = None
_blas = None  # threadpoolctl controller, made on first use
_blas_modules = 0  # len(sys.modules) when it was made
_held = 0  # how many ``blas_held`` blocks are open (any thread)
_held_lock = threading.Lock()
_held_limit = None  # the threadpoolctl limit the outermost ``blas_held`` block entered


def get_num_threads() -> int:
    """The number of threads a parallel region may use (at least 1)."""
    if _requested is not None:
        return _requested
    value = os.environ.get(ENV_VAR)
    if value:
        return _parse_threads(value, f"{ENV_VAR}={value!r}")
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads from now on (1: everything in the caller's thread); None goes back to
    the default (CS231N_NUM_THREADS, else the CPUs available)."""
    global _requested
    _requested = None if n is None else _parse_threads(n, f"n={n!r}")


def _parse_threads(value, shown: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{shown}: the number of threads must be an integer >= 1") from None
    if isinstance(value, bool) or n < 1 or (not isinstance(value, str) and n != value):
        raise ValueError(f"{shown}: the number of threads must be an integer >= 1")
    return n


def batch_slices(n: int, work: float) -> list[slice]:
    """Split a batch of ``n`` images into contiguous slices of near-equal size,
    ``SLICES_PER_THREAD`` per thread, and at most one per ``MIN_WORK`` multiply-adds of
    ``work`` (the layer's whole batch)."""
    return split(n, max(1, min(SLICES_PER_THREAD * get_num_threads(), n, int(work // MIN_WORK))))


def split(n: int, k: int) -> list[slice]:
    """range(n) cut into k contiguous slices of near-equal size (some empty when k > n)."""
    bounds = [n * i // k for i in range(k + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]


class Batch:
    """A parallel region over the slices of a batch::

        with Batch.over(N, work) as batch:   # Batch(batch_slices(N, work), work)
            U = prepare(w)                   # BLAS runs on one thread in here when parallel
            parts = batch.map(part)          # [part(s) for s in slices], side by side

    Inside a region BLAS is held to one thread from start to end (``blas_held``), so that no
    BLAS call of the region wakes OpenBLAS's own thread pool: its idle threads keep spinning on
    the cores for about 0.1 s after each multi-threaded call (measured: a 7 ms convolution took
    13 ms next to them). The region is serial (``map`` runs in the caller's thread) when there
    is one slice or no thread to be had (see the module docstring). A serial region holds BLAS
    to one thread too: its batch was not split because its work is too small to pay for a
    second thread, which goes for BLAS's threads as well, and those would then spin through the
    larger layers that follow (measured: ``ThreeLayerConvNet`` 32/3/500's loss and gradients,
    called directly, took 60 ms against 33 in a training step, the products of its last affine
    layer's backward pass waking them; 33 ms since); except when it covers a single image,
    whose products only BLAS's threads can spread over the cores, or when its ``work`` (the
    multiply-adds of the whole region, as for ``batch_slices``; not given: unknown, infinite)
    is too small for any of its products to wake them (``BLAS_ONE_THREAD_WORK``). A nested
    region, or one in a ``serial`` block, leaves BLAS as it is."""

    def __init__(self, slices: list[slice], work: float = math.inf):
        self.slices = list(slices)
        self.work = work  # multiply-adds of the whole region (as for ``batch_slices``)
        self._workers = 0
        self._pool = None
        self._limit = None

    @classmethod
    def over(cls, n: int, work: float) -> Batch:
        """The region of a batch of n items (images, rows, columns...) that takes ``work``
        multiply-adds in all: split by ``batch_slices``, given the same work."""
        return cls(batch_slices(n, work), work)

    def __enter__(self) -> Batch:
        if getattr(_state, "inside", False):  # nested, or in a ``serial`` block
            return self
        if len(self.slices) >= 2 and _lock.acquire(blocking=False):  # (else another thread's
            self._workers = min(get_num_threads(), len(self.slices)) - 1  # region is running)
            self._pool = _get_pool(self._workers) if self._workers else None
            if self._pool is None:
                _lock.release()
        if self._pool is not None or (self.work > BLAS_ONE_THREAD_WORK
                                       and not _one_item(self.slices)):
            self._limit = blas_held()
            self._limit.__enter__()
        return self

    @property
    def threads(self) -> int:
        """The threads this region runs on (1 when it is serial): as many as a library that
        brings its own threads (scipy.fft's ``workers``) may use for work of the region done
        outside ``map``."""
        return self._workers + 1 if self._pool is not None else 1

    def __exit__(self, *exc) -> None:
        try:
            if self._limit is not None:
                self._limit.__exit__(*exc)
        finally:
            if self._pool is not None:
                self._pool = None
                _lock.release()

    def map(self, fn, *per_slice) -> list:
        """``[fn(s, *items) for s, *items in zip(self.slices, *per_slice)]`` (``per_slice``:
        sequences with one item per slice); in parallel threads when the region is parallel,
        the caller's thread taking slices from the queue too."""
        calls = [(s, *items) for s, *items in zip(self.slices, *per_slice, strict=True)]
        if self._pool is None:
            return [fn(*args) for args in calls]
        todo = iter(range(len(calls)))  # a queue: every thread takes the next slice
        results = [None] * len(calls)

        def work():
            try:
                for k in todo:  # next() on a shared iterator is atomic under the GIL
                    results[k] = _run_inside(fn, calls[k])
            except BaseException:  # an error or Ctrl-C: the other threads take no new slice
                for _ in todo:
                    pass
                raise

        futures = []
        try:
            try:
                for _ in range(min(self._workers, len(calls) - 1)):
                    futures.append(self._pool.submit(work))
            except RuntimeError:  # "can't start new thread": do the rest here
                _give_up_threads()
            work()
        finally:  # no thread may outlive the region or write into the caller's arrays later
            wait(futures)
        for f in futures:
            f.result()  # re-raises a thread's error
        return results


def _one_item(slices: list[slice]) -> bool:
    """Whether a region's slices cover a single image (or everything, ``Ellipsis``: a 0-d
    array): then BLAS's own threads are the only way its products can use several cores."""
    return all(s is Ellipsis or s.stop - s.start <= 1 for s in slices)


def _run_inside(fn, args):
    _state.inside = True
    try:
        return fn(*args)
    finally:
        _state.inside = False


def _get_pool(workers: int) -> ThreadPoolExecutor | None:
    global _pool, _pool_size
    if _threads_failed:
        return None
    if _pool is None or _pool_size < workers:
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="cs231n"), workers
    return _pool


def _give_up_threads() -> None:
    """No thread could be started (process limit): run everything in one thread from now on."""
    global _threads_failed
    _threads_failed = True


def _blas_limit():
    """Hold BLAS to one thread (restored on exit): every BLAS library loaded, numpy's and any
    that a module imported since brought along (scipy.linalg has its own OpenBLAS). The
    threadpoolctl controller that finds them (0.5 ms) is made again when sys.modules grew."""
    global _blas, _blas_modules
    try:
        if _blas is None or len(sys.modules) != _blas_modules:
            from threadpoolctl import ThreadpoolController

            _blas, _blas_modules = ThreadpoolController(), len(sys.modules)
        return _blas.limit(limits=1, user_api="blas")
    except Exception:  # noqa: BLE001 - no controllable BLAS: run with whatever it does
        return nullcontext()


@contextmanager
def serial():
    """Run every parallel region opened in this block (by this thread) in this thread, as
    nested regions run: for measurements that must not depend on the cores, such as the
    memory a pass holds (``memory_measure.traced_call``), which the threads' hand-offs would
    otherwise blur by a few KiB of bookkeeping, differently from run to run. Other threads'
    regions are unaffected."""
    before = getattr(_state, "inside", False)
    _state.inside = True
    try:
        yield
    finally:
        _state.inside = before


@contextmanager
def blas_held():
    """Hold BLAS to one thread for a stretch of work made of many layers, such as a training
    step (``Solver``): every matrix product runs in the thread that asks for it, the library's
    parallel regions inside run their threads without setting and restoring BLAS's limit
    each, and no product between them wakes OpenBLAS's own thread pool. Its idle threads spin
    on the cores for about 0.1 s after every multi-threaded product, on the cores the regions'
    threads need (measured: a training step of notebook 6's networks used 2.6 times the CPU
    time of its work). Layers that would rather use both cores for a product (``affine``)
    split it over a parallel region themselves. Blocks nest, from any thread."""
    global _held, _held_limit
    with _held_lock:
        if _held == 0:
            _held_limit = _blas_limit()
            _held_limit.__enter__()
        _held += 1
    try:
        yield
    finally:
        with _held_lock:
            _held -= 1
            if _held == 0:
                limit, _held_limit = _held_limit, None
                limit.__exit__(None, None, None)


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: start from scratch."""
    global _pool, _pool_size, _lock, _held, _held_lock, _held_limit
    _pool, _pool_size, _lock = None, 0, threading.Lock()
    _held, _held_lock, _held_limit = 0, threading.Lock(), None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
