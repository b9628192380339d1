"""cs231n_lib.heap: freed memory kept for the next training step (glibc's malloc thresholds).

The allocator's settings belong to the whole process, so what they change is measured in fresh
subprocesses: page faults (``ru_minflt``) of a loop that frees and allocates again what a
training step does, and the resident memory before and after ``release_freed_memory``.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import textwrap

import numpy as np

from cs231n_lib import heap
from cs231n_lib.solver import Solver

# A "step": three 1.5 MB arrays alive at once, then all freed; repeated. With glibc's own
# thresholds (trim: twice the largest block freed, 3 MB) the 4.5 MB freed at the top of the heap
# goes back to the system after every round, and the next round faults its pages in again.
STEP_LOOP = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from cs231n_lib import heap

    def faults_per_round(rounds=40):
        for _ in range(5):
            arrays = [np.ones(375_000, np.float32) for _ in range(3)]
            del arrays
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(rounds):
            arrays = [np.ones(375_000, np.float32) for _ in range(3)]
            del arrays
        return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / rounds

    before = faults_per_round()
    kept = heap.keep_freed_memory()
    print(json.dumps({"before": before, "kept": kept, "after": faults_per_round(),
                      "again": heap.keep_freed_memory()}))
""")

# Resident memory while 200 MB freed in 1 MB blocks is kept, and after it is released.
RELEASE = textwrap.dedent("""
    import json, os
    import numpy as np
    from cs231n_lib import heap

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    heap.keep_freed_memory()
    base = rss()
    arrays = [np.ones(250_000, np.float32) for _ in range(200)]
    grown = rss()
    del arrays
    kept = rss()
    released = heap.release_freed_memory()
    print(json.dumps({"base": base, "grown": grown, "kept": kept, "after": rss(),
                      "released": released}))
""")

GLIBC = platform.libc_ver()[0] == "glibc"


def run_json(code):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(proc.stdout)


def test_this_machine_has_glibc():
    """The project's machines (Debian) run glibc: the tests below check its settings."""
    assert GLIBC, f"expected glibc, platform.libc_ver() says {platform.libc_ver()}"


def test_kept_memory_ends_the_page_faults_of_each_step():
    r = run_json(STEP_LOOP)
    assert r["kept"] is True and r["again"] is True
    assert r["before"] > 500, r  # ~700 here: most of the three arrays' 1,100 pages, every round
    assert r["after"] < 5, r


def test_release_gives_kept_memory_back():
    r = run_json(RELEASE)
    mb = 1 << 20
    assert r["grown"] - r["base"] > 150 * mb, r
    assert r["kept"] - r["base"] > 150 * mb, r  # freed, but kept by the process
    assert r["released"] is True
    assert r["after"] - r["base"] < 20 * mb, r


def test_without_glibc_nothing_is_set(monkeypatch):
    monkeypatch.setattr(heap.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setitem(heap._state, "kept", False)

    def no_cdll(*args):
        raise AssertionError("the C library must not be loaded where it is not glibc")

    monkeypatch.setattr(heap.ctypes, "CDLL", no_cdll)
    assert heap.keep_freed_memory() is False
    assert heap.release_freed_memory() is False


def test_rejected_setting_is_reported(monkeypatch):
    """mallopt returns 0 for a value it refuses: then keep_freed_memory says False and tries
    again next time."""
    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 0 if param == heap.M_MMAP_THRESHOLD else 1

    monkeypatch.setattr(heap, "_libc", lambda: FakeLibc())
    monkeypatch.setitem(heap._state, "kept", False)
    assert heap.keep_freed_memory() is False
    assert heap.keep_freed_memory() is False
    assert calls == [(heap.M_MMAP_THRESHOLD, heap.MMAP_MAX),
                     (heap.M_TRIM_THRESHOLD, heap.TRIM_THRESHOLD)] * 2


class TinyModel:
    def __init__(self):
        self.params = {"W": np.zeros((4, 3))}

    def loss(self, X, y=None):
        scores = X @ self.params["W"]
        if y is None:
            return scores
        return float(scores.sum()), {"W": X.T @ np.ones_like(scores)}


def test_solver_keeps_memory_while_training_and_releases_it_at_the_end(monkeypatch):
    events = []
    monkeypatch.setattr(heap, "keep_freed_memory", lambda: events.append("keep"))
    monkeypatch.setattr(heap, "release_freed_memory", lambda: events.append("release"))
    X, y = np.ones((6, 4)), np.zeros(6, dtype=int)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    Solver(TinyModel(), data, batch_size=2, num_epochs=1, verbose=False).train()
    assert events == ["keep"] * 3 + ["release"], events
