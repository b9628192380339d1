"""Keep the memory a training step frees for the next step, instead of handing it back to the
operating system and taking it again, one page fault per 4 KiB page.

A training step allocates its activations, caches and gradients as fresh arrays (the layers'
outputs: the CS231n contract returns new arrays), frees them when the step ends, and allocates
the same sizes again in the next step. glibc's malloc serves a block larger than its mmap
threshold with a fresh mapping, and gives the top of its heap back to the system once more than
its trim threshold is free there. Both thresholds follow the largest block freed so far (the
trim threshold is twice the mmap threshold), so with activations of 1-16 MB a step frees more
than the threshold at its end and the next step maps the pages again: measured on this
project's 2-core VM, 580 page faults per step for notebook 6's ``all_conv_net`` (6.9 ms a step,
5.0 ms without them) and 1,275 for ``ThreeLayerConvNet`` 64/3/256 (65 ms, 50 ms without).

``keep_freed_memory`` (called by every ``Solver`` step) raises both thresholds for the process,
as torch's and the GPU libraries' caching allocators keep their blocks: blocks up to
``MMAP_MAX`` come from the heap, and freed memory stays with the process for the next step.
What stays is at most the peak of a step, which the process had anyway. ``release_freed_memory``
(called when ``Solver.train`` returns) gives the free memory back, thresholds unchanged.

Only glibc has these settings (``mallopt``); elsewhere (macOS, musl) both functions do nothing
and return False.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2): bigger blocks
# are always mapped afresh.
MMAP_MAX = 32 << 20
# Free memory the top of the heap may hold before malloc gives it back: far more than a training
# step of the course frees (bench/train_step.py's largest, ThreeLayerConvNet 64/3/256 at batch
# 128, peaks 38 MiB above where it starts; tracemalloc).
TRIM_THRESHOLD = 1 << 30

_state = {"kept": False}


def _libc():
    """The C library as a ctypes handle when it is glibc, else None."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def keep_freed_memory() -> bool:
    """Raise malloc's mmap and trim thresholds for this process (once; later calls return at
    once): freed blocks up to ``MMAP_MAX`` are kept for reuse. True when the thresholds are set
    (glibc), False where the C library has no such settings."""
    if _state["kept"]:
        return True
    libc = _libc()
    if libc is None:
        return False
    # mmap threshold first: setting either one stops glibc adjusting them itself
    ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_MAX) == 1
    ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    _state["kept"] = ok
    return ok


def release_freed_memory() -> bool:
    """Give the free memory of every malloc arena back to the system (glibc's ``malloc_trim``),
    e.g. when training ends. True when glibc released some."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
