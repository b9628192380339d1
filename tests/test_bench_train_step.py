"""Smoke test of bench/train_step.py on a tiny size (not of speed: the benchmark prints that).
Run in a subprocess, since importing the benchmark fixes thread counts in ``os.environ``."""

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
          "runpy.run_path('train_step.py', run_name='__main__')\n")
LABEL_WIDTH = 34  # the first column of the table: network and update rule
# the issue's three ThreeLayerConvNet configurations, then notebook 6's networks
LABELS = ["3-layer 32/7/100 sgd", "3-layer 32/3/500 sgd", "3-layer 64/3/256 sgd",
          "nb6 train_convnet 16/5/100 adam", "nb6 ConvNet small_pool_net adam",
          "nb6 ConvNet all_conv_net adam"]


def run_quick(torch_mode: str, *options: str) -> str:
    done = subprocess.run([sys.executable, "-c", RUNNER, torch_mode, "--quick", *options],
                          cwd=BENCH, capture_output=True, text=True, timeout=300, check=True)
    return done.stdout


def table_rows(out: str) -> dict[str, list[str]]:
    """The cells of the table's rows by label, one row per network."""
    return {line[:LABEL_WIDTH].strip(): line[LABEL_WIDTH:].split()
            for line in out.splitlines() if line[:LABEL_WIDTH].strip() in LABELS}


def test_prints_one_row_per_network_without_torch_on_one_thread():
    out = run_quick("no-torch", "--single-thread")
    assert "torch not installed" in out
    assert "1 thread" in out and "CPU time" in out
    assert "images 4x4" in out
    rows = table_rows(out)
    assert list(rows) == LABELS
    for batch, ours_ms, torch_ms, ratio, spread, rate, loss_ours, loss_torch, err in rows.values():
        assert int(batch) == 4
        assert float(ours_ms) > 0 and float(rate) > 0
        assert torch_ms == ratio == spread == loss_torch == err == "-"
        assert 0 < float(loss_ours) < 10


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_twins_compute_the_same_loss_and_gradients_and_a_ratio():
    out = run_quick("torch", "--rounds", "2")  # (the ratio of 2 medians: between the rounds')
    assert "2 BLAS threads, wall time" in out
    rows = table_rows(out)
    assert list(rows) == LABELS
    assert "split = ours with Solver(..., processes=2)" in out
    for cells in rows.values():
        # (a split that is not on adds "(split off: ...)" after its range: 14+ cells)
        assert len(cells) == 12, cells
        (_, ours_ms, torch_ms, ratio, spread, _, loss_ours, loss_torch, err, split_ms,
         split_ratio, split_spread) = cells
        assert float(ratio) == pytest.approx(float(ours_ms) / float(torch_ms), rel=0.05, abs=0.01)
        for r, s in ((ratio, spread), (split_ratio, split_spread)):  # the ratio in its range
            low, high = map(float, s.split("-"))
            assert low - 0.011 <= float(r) <= high + 0.011, cells
        assert float(loss_ours) == pytest.approx(float(loss_torch), abs=1e-3)  # same network
        assert float(err) < 1e-10  # the same gradients (compared in float64)
        assert float(split_ratio) == pytest.approx(float(split_ms) / float(torch_ms), rel=0.05,
                                                   abs=0.01)
