"""Smoke test of bench/train_step.py on a tiny size (not of speed: the benchmark prints that).
Run in a subprocess, since importing the benchmark fixes thread counts in ``os.environ``."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
TINY = ["--batch", "2", "--size", "4", "--rounds", "1"]
# Runs the benchmark as a script, with torch made unimportable when asked.
RUNNER = ("import runpy, sys\n"
          "if sys.argv.pop(1) == 'no-torch':\n"
          "    sys.modules['torch'] = None\n"
          "runpy.run_path('train_step.py', run_name='__main__')\n")


def run_tiny(torch_mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", RUNNER, torch_mode, *TINY], cwd=BENCH,
                          capture_output=True, text=True, timeout=300, check=True)
    return done.stdout


def table_rows(out: str) -> list[list[str]]:
    """The cells of the table's rows, one per configuration."""
    return [line.split(")", 1)[1].split() for line in out.splitlines() if line.startswith("(")]


def test_prints_one_row_per_config_without_torch():
    out = run_tiny("no-torch")
    assert "torch not installed" in out
    assert "batch of 2 images 3x4x4" in out
    rows = table_rows(out)
    assert len(rows) == 3  # the three configurations
    for ours_ms, torch_ms, ratio, rate, loss_ours, loss_torch in rows:
        assert float(ours_ms) > 0 and float(rate) > 0
        assert torch_ms == ratio == loss_torch == "-"
        assert 0 < float(loss_ours) < 10


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_twin_computes_the_same_loss_and_a_ratio():
    out = run_tiny("torch")
    rows = table_rows(out)
    assert len(rows) == 3
    for ours_ms, torch_ms, ratio, _, loss_ours, loss_torch in rows:
        assert float(ratio) == pytest.approx(float(ours_ms) / float(torch_ms), rel=0.05, abs=0.01)
        assert float(loss_ours) == pytest.approx(float(loss_torch), abs=1e-3)  # same network
