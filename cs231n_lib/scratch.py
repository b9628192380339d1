"""Scratch memory the fast layers reuse from call to call for their temporaries.

A new numpy array of a few MB is fresh memory: the operating system maps and zeroes each of its
pages the first time it is touched, and glibc hands large freed blocks back to the system, so a
fast convolution that allocates tens of MB of temporaries per call pays for those page faults
every call - on a virtual machine more than for the arithmetic (``bench/conv.py`` counts them).
Here each thread keeps one buffer per *role* (a name the caller picks), grown to the largest
size asked for and reused by every later call, as a GPU library keeps its workspace. (Not
to be confused with what a layer's cache keeps for its backward pass: that is fresh memory.)

Rules for callers: an array from ``array`` is garbage on entry and is overwritten by the next
call for the same role in the same thread, so it must never be returned or kept (outputs,
caches and gradients are fresh arrays); two arrays alive at once need two roles.

The buffers stay allocated between calls (``held_bytes``); ``release`` frees them, e.g. before a
memory measurement, which otherwise sees them as memory still in use.
"""

from __future__ import annotations

import math
import threading

import numpy as np

# (thread id, role) -> (flat uint8 buffer, offset of its first 64-byte boundary)
_buffers: dict[tuple[int, str], tuple[np.ndarray, int]] = {}
_lock = threading.Lock()
ALIGN = 64  # bytes: start every array on a cache line


def array(role: str, shape, dtype) -> np.ndarray:
    """An uninitialised C-contiguous array of ``shape`` and ``dtype`` in this thread's buffer for
    ``role`` (grown when too small). Valid until the next ``array`` call for ``role`` in this
    thread; ``release`` drops the buffers but not arrays still referenced."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    nbytes = math.prod(shape) * dtype.itemsize
    key = (threading.get_ident(), role)
    held = _buffers.get(key)
    if held is None or held[0].size < nbytes + ALIGN:
        buf = np.empty(nbytes + ALIGN, dtype=np.uint8)
        held = buf, -buf.ctypes.data % ALIGN  # the buffer and its first cache-line offset
        with _lock:
            _buffers[key] = held
            _forget_finished_threads()
    return np.ndarray(shape, dtype, *held)


def _forget_finished_threads() -> None:
    """Drop the buffers of threads that have ended (called with the lock held)."""
    alive = {t.ident for t in threading.enumerate()}
    for key in [k for k in _buffers if k[0] not in alive]:
        del _buffers[key]


def held_bytes() -> int:
    """Bytes the scratch buffers of all threads hold."""
    with _lock:
        return sum(buf.nbytes for buf, _ in _buffers.values())


def release() -> None:
    """Free every thread's scratch buffers (the next calls allocate them again)."""
    with _lock:
        _buffers.clear()
