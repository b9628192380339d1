"""The benchmarks' command lines (bench/argtypes.py): a count or size they cannot use is refused
with argparse's usage error naming the value, before anything runs, instead of being taken as
the default (``--rounds 0`` ran 15 rounds) or failing deep inside a run (``--rounds -1``:
"min() arg is an empty sequence"; ``--size 6``: a pooling layer's ValueError)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
_spec = importlib.util.spec_from_file_location("bench_argtypes", BENCH / "argtypes.py")
argtypes = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(argtypes)


@pytest.mark.parametrize("text, value", [("1", 1), ("15", 15), (" 7", 7)])
def test_positive_int_takes_whole_numbers_from_1(text, value):
    assert argtypes.positive_int(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1.5", "two", ""])
def test_positive_int_refuses_naming_the_value(text):
    with pytest.raises(argparse.ArgumentTypeError, match=f"{text!r} is not an integer >= 1"):
        argtypes.positive_int(text)


def test_multiple_of_takes_multiples_and_refuses_the_rest_naming_them():
    size = argtypes.multiple_of(4)
    assert [size(t) for t in ("4", "8", "28")] == [4, 8, 28]
    with pytest.raises(argparse.ArgumentTypeError, match="'6' is not a multiple of 4"):
        size("6")
    with pytest.raises(argparse.ArgumentTypeError, match="'0' is not an integer >= 1"):
        size("0")


@pytest.mark.parametrize("script, args, shown", [
    ("train_step.py", ["--rounds", "0"], "argument --rounds: '0' is not an integer >= 1"),
    ("train_step.py", ["--batch", "0"], "argument --batch: '0' is not an integer >= 1"),
    ("train_step.py", ["--size", "6"], "argument --size: '6' is not a multiple of 4"),
    ("layers.py", ["--rounds", "-1"], "argument --rounds: '-1' is not an integer >= 1"),
    ("grading.py", ["--students", "0"], "argument --students: '0' is not an integer >= 1"),
    ("grading.py", ["--jobs", "0"], "argument --jobs: '0' is not an integer >= 1"),
    ("grading_dask.py", ["--workers", "1", "0"],
     "argument --workers: '0' is not an integer >= 1"),
])
def test_each_benchmark_refuses_a_bad_count_before_running(script, args, shown):
    done = subprocess.run([sys.executable, script, *args], cwd=BENCH, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert shown in done.stderr
    assert done.stderr.startswith("usage: ")
    assert "Traceback" not in done.stderr and "interleaved" not in done.stdout
