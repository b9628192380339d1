"""Smoke tests of bench/conv.py's own machinery (not of speed: that is what the benchmark
prints). Run in a subprocess, since importing the benchmark fixes thread counts in
``os.environ``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run_in_bench(code: str, env_updates: dict, drop=()) -> str:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_updates)
    done = subprocess.run([sys.executable, "-c", code], cwd=BENCH, env=env, capture_output=True,
                          text=True, timeout=120, check=True)
    return done.stdout


def test_timed_warms_up_for_at_least_warmup_seconds_then_times_each_call():
    out = run_in_bench(
        "import time, conv\n"
        "conv.WARMUP = 0.05\n"
        "calls = []\n"
        "def fn():\n"
        "    calls.append(time.perf_counter())\n"
        "    time.sleep(0.002)\n"
        "best, faults = conv.timed(fn, 3)\n"
        "print(len(calls), calls[-3] - calls[0], best)\n", {})
    n, warm, best = out.split()
    assert int(n) >= 3 + 5  # untimed calls first, then the 3 timed ones
    assert float(warm) >= 0.05  # the timed calls start only after WARMUP seconds
    assert 0.002 <= float(best) < 0.05


def test_blas_line_names_numpys_kernel_and_any_pin():
    code = "import conv\nprint(conv.blas_kernel())"
    pinned = run_in_bench(code, {"OPENBLAS_CORETYPE": "Haswell"})
    assert pinned.startswith("numpy's BLAS: openblas")
    assert ", kernel " in pinned and "(pinned by OPENBLAS_CORETYPE=Haswell" in pinned
    free = run_in_bench(code, {}, drop=("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"))
    assert free.startswith("numpy's BLAS: openblas") and "pinned" not in free
