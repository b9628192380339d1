"""cs231n_lib.split_step and Solver(processes=2): a step's batch split with a worker process.

The split must give the whole batch's loss and gradients (float64: to rounding), start and
stop a real worker process (``python -m cs231n_lib.split_step``) and free its shared memory,
and lose nothing when the worker cannot help: not startable, dead, failing or too slow.
"""

from __future__ import annotations

import os
import sys
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from cs231n_lib import architectures as arch
from cs231n_lib import split_step
from cs231n_lib.classifiers.cnn import ThreeLayerConvNet
from cs231n_lib.classifiers.convnet import ConvNet
from cs231n_lib.classifiers.fc_net import FullyConnectedNet
from cs231n_lib.solver import Solver

SHAPE = (2, 8, 8)  # (C, H, W) of the tiny images


def three_layer(reg=0.1):
    return ThreeLayerConvNet(input_dim=SHAPE, num_filters=4, filter_size=3, hidden_dim=10,
                             num_classes=3, weight_scale=0.1, reg=reg, dtype=np.float64, seed=0)


def batch(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *SHAPE)), rng.integers(0, 3, n)


def started(model, n, **kwargs):
    split = split_step.SplitStep(model, (n // 2, *SHAPE), np.float64, np.int64, **kwargs)
    assert split.wait_ready() == "on", split.status
    return split


def assert_same_step(split, model, X, y, rtol=1e-12):
    loss, grads = split.loss(X, y)
    whole_loss, whole = model.loss(X, y)
    assert_allclose(loss, whole_loss, rtol=rtol)
    assert grads.keys() == whole.keys()
    for k in whole:
        assert_allclose(grads[k], whole[k], rtol=rtol, atol=1e-15, err_msg=k)


# ------------------------------------------------------------------------ which models split
def test_which_models_split():
    assert split_step.why_not(three_layer()) is None
    assert split_step.why_not(ConvNet(arch.small_pool_net((1, 8, 8), classes=3, width=4))) is None
    assert split_step.why_not(ConvNet(arch.all_conv_net((1, 8, 8), classes=3, width=4))) is None
    bn = arch.Spec("bn", (1, 8, 8), (arch.Conv(4, 3, pad=1), arch.BatchNorm(), arch.ReLU(),
                                     arch.Flatten(), arch.FC(3)))
    assert "batch" in split_step.why_not(ConvNet(bn))
    assert split_step.why_not(FullyConnectedNet([5], input_dim=4, num_classes=3)) is None
    assert "dropout" in split_step.why_not(
        FullyConnectedNet([5], input_dim=4, num_classes=3, dropout_keep_ratio=0.5))
    assert "batch" in split_step.why_not(
        FullyConnectedNet([5], input_dim=4, num_classes=3, normalization="batchnorm"))
    assert "not one of the library's" in split_step.why_not(object())


# ------------------------------------------------------------------------------ same numbers
@pytest.mark.parametrize("n", [8, 7, 2])
def test_split_step_is_the_whole_batch_step(n):
    model = three_layer()
    split = started(model, 8)
    try:
        X, y = batch(n)
        assert_same_step(split, model, X, y)
        # the worker sees the parameters of every step, not the ones it was started with
        model.params = {k: v * 1.5 for k, v in model.params.items()}
        assert_same_step(split, model, *batch(n, seed=1))
        assert split.status == "on"
    finally:
        split.close()


def test_split_step_of_a_convnet():
    model = ConvNet(arch.small_pool_net((2, 8, 8), classes=3, width=4), reg=0.05,
                    dtype=np.float64, seed=0)
    split = started(model, 6)
    try:
        assert_same_step(split, model, *batch(6))
    finally:
        split.close()


def test_one_example_and_oversized_batches_run_whole():
    model = three_layer()
    split = started(model, 4)
    try:
        assert_same_step(split, model, *batch(1), rtol=0)  # no half for the worker
        assert_same_step(split, model, *batch(12), rtol=0)  # half larger than the buffers
        assert split.status == "on"
    finally:
        split.close()


# ---------------------------------------------------------------------------- the process
def test_close_ends_the_worker_and_frees_shared_memory():
    split = started(three_layer(), 4)
    process, names = split._process, split._shared.spec[1]
    split.close()
    assert process.wait(5) == 0
    for name in names:
        with pytest.raises(FileNotFoundError):
            shared_memory.SharedMemory(name)
    assert split.status == "off: closed"
    model = three_layer()
    assert_same_step(split, model, *batch(4), rtol=0)  # a closed split runs the step whole


def test_a_dead_worker_loses_no_step():
    model = three_layer()
    split = started(model, 8)
    split._process.kill()
    split._process.wait(5)
    assert_same_step(split, model, *batch(8))
    assert split.status.startswith("off: "), split.status
    assert "worker" in split.status
    assert_same_step(split, model, *batch(8, seed=2), rtol=0)  # and the next, whole


def test_a_worker_that_cannot_start_leaves_training_unsplit(monkeypatch):
    def no_process(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(split_step.subprocess, "Popen", no_process)
    model = three_layer()
    split = split_step.SplitStep(model, (4, *SHAPE), np.float64, np.int64)
    assert split.status == ("off: no worker process could be started: OSError: Resource "
                            "temporarily unavailable")
    assert_same_step(split, model, *batch(8), rtol=0)


def test_a_model_that_does_not_split_runs_whole():
    model = FullyConnectedNet([5], input_dim=4, num_classes=3, dropout_keep_ratio=0.5,
                              dtype=np.float64, seed=0)
    split = split_step.SplitStep(model, (4, 4), np.float64, np.int64)
    assert split.status.startswith("off: ") and split._process is None
    X = np.random.default_rng(0).standard_normal((8, 4))
    loss, _ = split.loss(X, np.zeros(8, dtype=int))
    assert np.isfinite(loss)


class WorkerOnly(ThreeLayerConvNet):
    """Fails (or stalls) in the worker process only: ``trainer`` is the trainer's pid."""

    trainer = None
    stall = 0.0

    def loss(self, X, y=None):
        if os.getpid() != self.trainer:
            if self.stall:
                time.sleep(self.stall)
            else:
                raise RuntimeError("boom in the worker")
        return super().loss(X, y)


def worker_only(monkeypatch, stall=0.0):
    """A WorkerOnly model, which the worker can unpickle only if it imports from this process's
    sys.path (this folder is on it, put there by pytest, not on the environment's PYTHONPATH)."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    assert str(Path(__file__).parent) in sys.path
    monkeypatch.setattr(split_step, "why_not", lambda model: None)
    model = WorkerOnly(input_dim=SHAPE, num_filters=4, filter_size=3, hidden_dim=10,
                       num_classes=3, weight_scale=0.1, dtype=np.float64, seed=0)
    model.trainer, model.stall = os.getpid(), stall
    return model


def test_a_failing_worker_step_is_computed_here(monkeypatch):
    model = worker_only(monkeypatch)
    split = started(model, 8)
    X, y = batch(8)
    loss, grads = split.loss(X, y)
    assert split.status == "off: the worker's step failed: RuntimeError: boom in the worker"
    whole_loss, whole = ThreeLayerConvNet.loss(model, X, y)
    assert_allclose(loss, whole_loss, rtol=1e-12)
    for k in whole:
        assert_allclose(grads[k], whole[k], rtol=1e-12, atol=1e-15)
    assert split._process.wait(5) is not None  # stopped


def test_a_stalled_worker_is_given_up(monkeypatch):
    monkeypatch.setattr(split_step, "REPLY_TIMEOUT", 0.3)
    model = worker_only(monkeypatch, stall=30.0)
    split = started(model, 8)
    start = time.monotonic()
    loss, _ = split.loss(*batch(8))
    assert time.monotonic() - start < 10
    assert split.status == "off: the worker did not answer within 0.3 s"
    assert_allclose(loss, ThreeLayerConvNet.loss(model, *batch(8))[0], rtol=1e-12)


def test_an_interrupted_step_stops_the_split(monkeypatch):
    """An interrupt in the trainer's half leaves the worker's reply unread: the split stops,
    so that no later step takes it for its own."""
    model = three_layer()
    split = started(model, 8)
    process = split._process
    real_loss = ThreeLayerConvNet.loss

    def interrupted(self, X, y=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(ThreeLayerConvNet, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        split.loss(*batch(8))
    monkeypatch.setattr(ThreeLayerConvNet, "loss", real_loss)
    assert split.status == "off: a step was interrupted"
    assert process.wait(5) is not None
    assert_same_step(split, model, *batch(8), rtol=0)


def test_a_worker_never_ready_is_given_up(monkeypatch):
    monkeypatch.setattr(split_step, "READY_TIMEOUT", 0.0)
    model = three_layer()
    split = split_step.SplitStep(model, (4, *SHAPE), np.float64, np.int64)
    process = split._process
    assert_same_step(split, model, *batch(8), rtol=0)
    assert split.status == "off: the worker was not ready after 0 s" or split.status == "on"
    if split.status != "on":  # (a worker can be ready before the first look)
        assert process.wait(5) is not None
    split.close()


# --------------------------------------------------------------------------------- Solver
def solver_data(n=24):
    X, y = batch(n)
    return {"X_train": X, "y_train": y, "X_val": X[:6], "y_val": y[:6]}


def test_solver_with_two_processes_trains_as_with_one():
    runs = {}
    for processes in (1, 2):
        solver = Solver(three_layer(), solver_data(), update_rule="adam", batch_size=8,
                        num_epochs=2, seed=0, verbose=False, processes=processes)
        assert solver.start_split(wait=True) == ("on" if processes == 2 else "off: processes=1")
        solver.train()
        assert solver.split_status == ("stopped (was: on)" if processes == 2
                                       else "off: processes=1")
        runs[processes] = solver
    assert_allclose(runs[2].loss_history, runs[1].loss_history, rtol=1e-10)
    for k, v in runs[1].model.params.items():
        assert_allclose(runs[2].model.params[k], v, rtol=1e-8, atol=1e-12)


def test_solver_reports_the_split_and_stops_its_worker(capsys):
    solver = Solver(three_layer(), solver_data(), batch_size=8, num_epochs=1, seed=0,
                    processes=2)
    solver.start_split(wait=True)
    process = solver._split._process
    solver.train()
    assert "steps split with a worker process: on" in capsys.readouterr().out
    assert process.wait(5) == 0 and solver._split is None


def test_solver_with_a_model_that_does_not_split_says_why():
    model = FullyConnectedNet([5], input_dim=int(np.prod(SHAPE)), num_classes=3,
                              normalization="batchnorm", dtype=np.float64, seed=0)
    solver = Solver(model, solver_data(), batch_size=8, num_epochs=1, seed=0, verbose=False,
                    processes=2)
    assert solver.split_status == "not started"
    solver.train()
    assert solver.split_status == ("stopped (was: off: its batch normalisation or dropout "
                                   "depends on the whole batch)")
    assert len(solver.loss_history) == 3


def test_solver_checks_processes():
    for bad in (0, 3, 1.5):
        with pytest.raises(ValueError, match="processes"):
            Solver(three_layer(), solver_data(), processes=bad)
    solver = Solver(three_layer(), solver_data(), processes=2)
    assert solver._settings()["processes"] == 2
