"""cs231n_lib.budget: the graded run is the cheap one, selected by CS231N_GRADING."""

import pytest

from cs231n_lib.budget import budget, grading_mode, training_budget


@pytest.mark.parametrize("value, expected", [("1", True), ("0", False), ("", False)])
def test_grading_mode_reads_env(monkeypatch, value, expected):
    monkeypatch.setenv("CS231N_GRADING", value)
    assert grading_mode() is expected


def test_grading_mode_defaults_to_full(monkeypatch):
    monkeypatch.delenv("CS231N_GRADING", raising=False)
    assert grading_mode() is False
    assert budget(full=5000, graded=500) == 5000


def test_grading_mode_rejects_other_values(monkeypatch):
    monkeypatch.setenv("CS231N_GRADING", "yes")
    with pytest.raises(ValueError, match="CS231N_GRADING='yes'"):
        grading_mode()


def test_budget_selects_graded(monkeypatch):
    monkeypatch.setenv("CS231N_GRADING", "1")
    assert budget(full=5000, graded=500) == 500
    assert training_budget(30.0, 5.0) == 5.0


def test_budget_rejects_graded_above_full(monkeypatch):
    monkeypatch.setenv("CS231N_GRADING", "0")
    with pytest.raises(ValueError, match="must not exceed"):
        budget(full=10, graded=20)
    with pytest.raises(ValueError, match="graded_seconds=0"):
        training_budget(10, 0)
