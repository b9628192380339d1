"""How much work a notebook's training and timing cells may do.

The grader and ``cs231n-course check`` set the environment variable ``CS231N_GRADING=1``; a
notebook then runs its experiments with a small budget (fewer samples, epochs, repeats) so that a
whole notebook, hidden tests included, executes in well under a minute on 2 cores. Tests on
training outcomes use thresholds that hold under the graded budget, so they hold a fortiori under
the full one.

Usage in a notebook::

    from cs231n_lib.budget import budget
    num_train = budget(full=5000, graded=1000)
"""

from __future__ import annotations

import os

GRADING_ENV = "CS231N_GRADING"


def grading_mode() -> bool:
    """True when the notebook runs under the grader (env ``CS231N_GRADING=1``)."""
    value = os.environ.get(GRADING_ENV, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{GRADING_ENV}={value!r} must be '0' or '1'")
    return value == "1"


def budget(full, graded):
    """Return ``graded`` in grading mode, else ``full`` (sample sizes, epochs, repeats...).

    Raises ValueError when the graded budget is larger than the full one: the graded run must be
    the cheaper one, otherwise its thresholds would not carry over to a student's full run.
    """
    if graded > full:
        raise ValueError(f"graded budget {graded!r} must not exceed the full budget {full!r}")
    return graded if grading_mode() else full


def training_budget(full_seconds: float, graded_seconds: float) -> float:
    """Seconds a training cell may run: ``graded_seconds`` in grading mode, else ``full_seconds``.

    Raises ValueError for a non-positive time.
    """
    for name, value in (("full_seconds", full_seconds), ("graded_seconds", graded_seconds)):
        if not value > 0:
            raise ValueError(f"{name}={value!r} must be > 0")
    return float(budget(full_seconds, graded_seconds))
