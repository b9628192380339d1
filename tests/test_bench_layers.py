"""Smoke test of bench/layers.py on its tiny ``--quick`` sizes (not of speed: the benchmark
prints that). Run in a subprocess, since importing the benchmark fixes thread counts in
``os.environ``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
# Runs the benchmark as a script, with torch made unimportable when asked.
RUNNER = ("import runpy, sys\n"
          "if sys.argv.pop(1) == 'no-torch':\n"
          "    sys.modules['torch'] = None\n"
          "runpy.run_path('layers.py', run_name='__main__')\n")
DTYPES = ("float32", "float64")
CELLS = 8  # dtype, pass, ours ms, torch ms, ratio, range, ours %GEMM, torch %GEMM
# Every layer the issue lists: conv k x k at stride 1 and 2 plus a dilated 3x3, on a first and
# an inner layer; max and average pooling 2x2/2 and 3x3/2; affine; ReLU; batch norm; softmax.
CONVS = [f"conv {k}x{k}/s{s} {where}" for where in ("first", "inner")
         for k in (1, 3, 5, 7) for s in (1, 2)]
CONVS += [f"conv 3x3/s1 d2 {where}" for where in ("first", "inner")]
OTHERS = [f"{kind} pool {k}x{k}/2" for kind in ("max", "avg") for k in (2, 3)]
OTHERS += ["affine", "relu", "spatial batchnorm train", "softmax loss"]


def run_quick(torch_mode: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", RUNNER, torch_mode, "--quick", *args],
                          cwd=BENCH, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def table(out: str) -> dict[tuple[str, str, str], list[str]]:
    """{(layer, dtype, pass): [ours ms, torch ms, ratio, range, ours %GEMM, torch %GEMM]}."""
    lines = out.split("\nlayer", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    rows = {}
    for line in lines:
        words = line.split("  > ")[0].split()  # drop the "> 1.5x" flag
        name, (dtype, part, *cells) = " ".join(words[:-CELLS]), words[-CELLS:]
        rows[name, dtype, part] = cells
    return rows


def check_every_layer(rows):
    """Each layer of the issue in both dtypes, forward and backward (softmax: together)."""
    for dtype in DTYPES:
        for prefix in CONVS + OTHERS:
            parts = {part for (name, dt, part) in rows if dt == dtype and name.startswith(prefix)}
            want = {"fwd+bwd"} if prefix == "softmax loss" else {"fwd", "bwd"}
            assert parts == want, (prefix, dtype, parts)
    assert len(rows) == len(DTYPES) * (2 * (len(CONVS) + len(OTHERS)) - 1)


def test_every_layer_row_with_our_times_without_torch():
    out = run_quick("no-torch")
    assert "torch not installed" in out
    rows = table(out)
    check_every_layer(rows)
    for (name, _, _), (ours, torch_ms, ratio, spread, ours_gemm, torch_gemm) in rows.items():
        assert float(ours) > 0
        assert torch_ms == ratio == spread == torch_gemm == "-"
        uses_gemm = name.startswith(("conv", "affine"))
        assert (ours_gemm != "-") == uses_gemm, name  # a GEMM share where a GEMM runs


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_ratio_column_against_torch():
    out = run_quick("torch")
    rows = table(out)
    check_every_layer(rows)
    for key, (ours, torch_ms, ratio, spread, _, torch_gemm) in rows.items():
        assert float(torch_ms) > 0, key
        # the ratio is rounded to 2 decimals and the times to 3 (in ms)
        assert float(ratio) == pytest.approx(float(ours) / float(torch_ms), rel=0.1, abs=0.02)
        low, high = map(float, spread.split("-"))
        assert low == pytest.approx(high, abs=0.011), key  # one round: one ratio
        assert low - 0.011 <= float(ratio) <= high + 0.011, key
        assert (torch_gemm != "-") == key[0].startswith(("conv", "affine"))


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_the_range_holds_the_ratio_and_the_rows_over_the_target_are_counted():
    """Over 3 rounds the ratio of the medians lies between the lowest and the highest ratio of
    one round (ours >= lowest * torch's time round by round, so for the medians too; likewise
    the highest); the summary lists exactly the rows over 1.5x, each over it in 1 to 3 rounds."""
    out = run_quick("torch", "--rounds", "3", "--filter", "^relu|^conv 3x3/s1 first")
    rows = table(out)
    assert len(rows) == 8
    over = set()
    for (name, dtype, part), (_, _, ratio, spread, _, _) in rows.items():
        low, high = map(float, spread.split("-"))
        assert low - 0.011 <= float(ratio) <= high + 0.011, (name, dtype, part)
        if float(ratio) > 1.5:
            over.add(f"{name} {dtype} {part}")
    listed = {}
    if over:
        for line in out.split("Rows over 1.5x torch", 1)[1].splitlines()[1:]:
            if not line.startswith("  "):
                break
            key, rest = line.strip().split(": ", 1)
            listed[key] = int(rest.split("over in ", 1)[1].split(" of 3 rounds")[0])
    assert set(listed) == over
    assert all(1 <= k <= 3 for k in listed.values()), listed


def test_dtype_and_filter_pick_rows():
    rows = table(run_quick("no-torch", "--dtype", "float64", "--filter", "^relu|^affine"))
    assert {(name.split()[0], dtype) for name, dtype, _ in rows} == {
        ("relu", "float64"), ("affine", "float64")}
