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


def test_machine_line_names_the_processor_the_cpus_and_the_l2_cache(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Fake  CPU 9000\nflags\t: fpu\n"
                    "processor\t: 1\nmodel name\t: Fake  CPU 9000\n")
    code = ("import conv, json, os\n"
            f"print(json.dumps([conv.machine({str(info)!r}), conv.machine('/nonexistent'), "
            "len(os.sched_getaffinity(0)), conv.parallel.l2_cache_bytes(0)]))")
    import json

    named, unnamed, cpus, l2 = json.loads(run_in_bench(code, {}))
    assert named.startswith(f"CPU: Fake CPU 9000, {cpus} CPUs for this process")
    assert unnamed.startswith(f"CPU: unknown model, {cpus} CPUs")
    if l2:
        assert named.endswith(f", L2 {l2 / 2**20:g} MiB per core")
    else:
        assert named.endswith("CPUs for this process")


# (x_shape, w_shape, conv_param): pads that reach 0 to 3 taps into the padding, strides 1 to 3,
# a dilation, odd and even sizes, non-square images and filters
FLOP_CASES = [
    ((2, 3, 15, 15), (4, 3, 7, 7), {"stride": 2, "pad": 3}),
    ((1, 2, 15, 15), (3, 2, 3, 3), {"stride": 2, "pad": 1}),
    ((2, 2, 8, 8), (3, 2, 3, 3), {"stride": 1, "pad": 1}),
    ((1, 3, 9, 9), (2, 3, 3, 3), {"stride": 1, "pad": 2, "dilation": 2}),
    ((1, 1, 7, 10), (2, 1, 3, 5), {"stride": 1, "pad": 0}),
    ((1, 2, 11, 11), (2, 2, 4, 4), {"stride": 3, "pad": 1}),
    ((1, 1, 6, 6), (1, 1, 1, 1), {"stride": 1, "pad": 0}),
]


def test_conv_flops_count_the_multiply_adds_on_the_image_not_on_its_padding():
    import json

    import numpy as np

    from cs231n_lib import layers

    out = run_in_bench(
        "import json, conv\n"
        f"cases = {FLOP_CASES!r}\n"
        "print(json.dumps([conv.conv_flops(x, w, p) for x, w, p in cases]))\n", {})
    flops = json.loads(out)
    for (x_shape, w_shape, param), counted in zip(FLOP_CASES, flops, strict=True):
        # Oracle: convolving ones with ones gives each output the number of its taps that read
        # the image (C per filter position on it); the sum over outputs counts every pair once.
        ones, _ = layers.conv_forward_naive(np.ones(x_shape), np.ones(w_shape),
                                            np.zeros(w_shape[0]), param)
        assert counted == 2 * ones.sum(), (x_shape, w_shape, param)
        nominal = 2 * ones.size * np.prod(w_shape[1:])
        reaches_padding = param["pad"] > 0
        assert (counted < nominal) == reaches_padding, (x_shape, w_shape, param)
