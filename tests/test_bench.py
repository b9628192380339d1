"""Smoke tests of bench/conv.py's own machinery (not of speed: that is what the benchmark
prints). Run in a subprocess, since importing the benchmark fixes thread counts in
``os.environ``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_in_bench(code: str, env_updates: dict, drop=()) -> str:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates)
    done = subprocess.run([sys.executable, "-c", code], cwd=BENCH, env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout


def test_timed_warms_up_for_at_least_warmup_seconds_then_times_each_call():
    # A fake clock that only the calls advance: each call takes the next of STEPS seconds.
    out = run_in_bench(
        "import time, conv\n"
        "conv.WARMUP = 1.0\n"
        "now = [0.0]\n"
        "time.perf_counter = lambda: now[0]\n"
        "STEPS = [0.5, 0.5, 0.375, 0.125, 0.25]\n"
        "starts = []\n"
        "def fn():\n"
        "    starts.append(now[0])\n"
        "    now[0] += STEPS[len(starts) - 1]\n"
        "best, faults = conv.timed(fn, 3)\n"
        "print(len(starts), starts[2], best)\n", {})
    n, first_timed, best = out.split()
    assert int(n) == 2 + 3  # untimed calls until WARMUP seconds have passed, then 3 timed ones
    assert float(first_timed) == 1.0  # the timed calls start only after WARMUP seconds
    assert float(best) == 0.125  # the fastest of the timed calls, not of the warm-up ones


def _numpy_blas() -> str:
    """Name of the BLAS numpy was built with (e.g. scipy-openblas, accelerate, mkl)."""
    import numpy as np

    return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]


@pytest.mark.skipif("openblas" not in _numpy_blas(),
                    reason=f"numpy uses {_numpy_blas()}, not OpenBLAS: the benchmark's kernel "
                           "line and OPENBLAS_CORETYPE apply to OpenBLAS only")
def test_blas_line_names_numpys_kernel_and_any_pin():
    code = "import conv\nprint(conv.blas_kernel())"
    pinned = run_in_bench(code, {"OPENBLAS_CORETYPE": "Haswell"})
    assert pinned.startswith("numpy's BLAS: openblas")
    assert ", kernel " in pinned and "(pinned by OPENBLAS_CORETYPE=Haswell" in pinned
    free = run_in_bench(code, {}, drop=("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    assert free.startswith("numpy's BLAS: openblas") and "pinned" not in free
