"""Solver: training loop, reproducibility, checkpoints, time budget, argument checks."""

import time

import numpy as np
import pytest

from cs231n_lib import optim
from cs231n_lib.classifiers.fc_net import FullyConnectedNet
from cs231n_lib.solver import Solver


class Softmax:
    """A linear softmax classifier: the smallest model meeting the Solver's contract."""

    def __init__(self, D=5, C=3, seed=0, delay=0.0):
        rng = np.random.default_rng(seed)
        self.params = {"W": 1e-2 * rng.standard_normal((D, C)), "b": np.zeros(C)}
        self.delay = delay

    def loss(self, X, y=None):
        time.sleep(self.delay)
        scores = X @ self.params["W"] + self.params["b"]
        if y is None:
            return scores
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        N = len(X)
        loss = -np.mean(np.log(p[np.arange(N), y]))
        p[np.arange(N), y] -= 1
        return loss, {"W": X.T @ p / N, "b": p.sum(axis=0) / N}


def blobs(N, D=5, C=3, seed=0):
    """Three well separated Gaussian blobs (same centres for every seed)."""
    centres = 3 * np.random.default_rng(123).standard_normal((C, D))
    rng = np.random.default_rng(seed)
    y = rng.integers(C, size=N)
    return centres[y] + rng.standard_normal((N, D)), y


@pytest.fixture
def data():
    X_train, y_train = blobs(200, seed=1)
    X_val, y_val = blobs(50, seed=2)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val,
            "X_test": X_val, "class_names": ["a", "b", "c"]}


def make(data, **kwargs):
    opts = {"update_rule": "sgd_momentum", "optim_config": {"learning_rate": 0.05},
            "num_epochs": 3, "batch_size": 20, "verbose": False, "seed": 0, **kwargs}
    return Solver(Softmax(), data, **opts)


def test_training_reduces_loss_and_tracks_best(data):
    solver = make(data, lr_decay=0.5).train()
    assert len(solver.loss_history) == 3 * (200 // 20)
    assert np.mean(solver.loss_history[-5:]) < 0.5 * solver.loss_history[0]
    # one check after the first step, then one per epoch (the last step ends epoch 3)
    assert len(solver.train_acc_history) == len(solver.val_acc_history) == 4
    assert solver.best_val_acc == max(solver.val_acc_history) > 0.9
    assert solver.epoch == 3 and not solver.stopped_early
    for k, v in solver.best_params.items():
        np.testing.assert_array_equal(solver.model.params[k], v)
    assert solver.optim_configs["W"]["learning_rate"] == pytest.approx(0.05 * 0.5**3)


def test_throughput_counts_only_gradient_steps(data, monkeypatch):
    """images_per_second = images through gradient steps / seconds in them: accuracy checks
    (made slow here) do not lower it, and a fresh solver reports 0."""
    assert make(data).images_per_second == 0.0
    solver = make(data)
    record = solver._record_accuracy

    def slow_check():
        time.sleep(0.05)
        return record()
    monkeypatch.setattr(solver, "_record_accuracy", slow_check)
    solver.train()
    assert solver.images_seen == 3 * (200 // 20) * 20
    assert 0 < solver.step_seconds < solver.train_seconds - 4 * 0.05
    assert solver.images_per_second == pytest.approx(solver.images_seen / solver.step_seconds)


def test_same_seed_same_run_different_seed_different_run(data):
    a, b, c = make(data).train(), make(data).train(), make(data, seed=1).train()
    assert a.loss_history == b.loss_history
    assert a.loss_history != c.loss_history


def test_checkpoint_round_trip_and_identical_resume(data, tmp_path):
    name = str(tmp_path / "ckpt" / "run")
    full = make(data, update_rule="adam", optim_config={"learning_rate": 0.02},
                checkpoint_name=name).train()
    path = f"{name}_epoch_1.npz"
    resumed = Solver.load_checkpoint(path, Softmax(seed=99), data)
    assert resumed.epoch == 1
    assert len(resumed.loss_history) == 10
    assert resumed.loss_history == full.loss_history[:10]
    assert resumed.optim_configs["W"]["t"] == 10
    assert resumed.update_rule is optim.adam

    # save again: same arrays and metadata
    again = resumed.save_checkpoint(tmp_path / "again.npz")
    with np.load(path) as f1, np.load(again) as f2:
        assert sorted(f1.files) == sorted(f2.files)
        for key in f1.files:
            np.testing.assert_array_equal(f1[key], f2[key])

    resumed.train()
    assert resumed.loss_history == full.loss_history
    assert resumed.val_acc_history == full.val_acc_history
    assert resumed.train_acc_history == full.train_acc_history
    for k in full.model.params:
        np.testing.assert_array_equal(resumed.model.params[k], full.model.params[k])


def test_load_checkpoint_can_extend_training(data, tmp_path):
    solver = make(data, num_epochs=1).train()
    path = solver.save_checkpoint(tmp_path / "one.npz")
    longer = Solver.load_checkpoint(path, Softmax(), data, num_epochs=2).train()
    assert longer.epoch == 2
    assert len(longer.loss_history) == 20


def test_load_checkpoint_into_wrong_model_rejected(data, tmp_path):
    path = make(data, num_epochs=1).train().save_checkpoint(tmp_path / "c.npz")
    with pytest.raises(ValueError, match="parameters"):
        Solver.load_checkpoint(path, Softmax(D=5, C=4), data)


def test_time_budget_stops_cleanly(data):
    solver = Solver(Softmax(delay=0.01), data, num_epochs=100, batch_size=20, verbose=False,
                    seed=0, time_budget=0.1)
    solver.train()
    assert solver.stopped_early
    assert 1 <= len(solver.loss_history) < 100 * 10
    assert solver.train_seconds >= 0.1
    # a final accuracy check is recorded at the stopping point
    assert len(solver.val_acc_history) == 2
    assert solver.best_params


@pytest.mark.parametrize("kwargs, word", [
    ({"learning_rate": 1e-3}, "learning_rate"),
    ({"update_rule": "nesterov"}, "nesterov"),
    ({"update_rule": 3}, "update_rule"),
    ({"optim_config": {"lr": 1e-3}}, "lr"),
    ({"batch_size": 0}, "batch_size"),
    ({"lr_decay": -0.5}, "lr_decay"),
    ({"time_budget": "1m"}, "time_budget"),
])
def test_bad_arguments_rejected(data, kwargs, word):
    with pytest.raises(ValueError, match=word):
        Solver(Softmax(), data, **kwargs)


def test_missing_data_rejected(data):
    del data["y_val"]
    with pytest.raises(ValueError, match="y_val"):
        Solver(Softmax(), data)


def test_callable_update_rule_and_verbose_output(data, capsys):
    calls = []

    def halve_step(w, dw, config=None):
        calls.append(1)
        return w - 0.5 * dw, config

    solver = Solver(Softmax(), data, update_rule=halve_step, num_epochs=1, batch_size=50,
                    print_every=2, verbose=True, seed=0).train()
    out = capsys.readouterr().out
    assert "(Iteration 1 / 4)" in out and "(Iteration 3 / 4)" in out
    assert "(Iteration 2 / 4)" not in out
    assert "(Epoch 1 / 1)" in out
    assert len(calls) == 1 + 4 * 2  # the constructor's dry run, then 2 parameters x 4 steps
    assert len(solver.loss_history) == 4


def test_check_accuracy(data):
    solver = make(data)
    model = solver.model
    y_pred = np.argmax(model.loss(data["X_val"]), axis=1)
    expected = np.mean(y_pred == data["y_val"])
    assert solver.check_accuracy(data["X_val"], data["y_val"], batch_size=7) == expected
    sub = solver.check_accuracy(data["X_val"], data["y_val"], num_samples=10)
    assert sub in {k / 10 for k in range(11)}


def test_checkpoint_keeps_batchnorm_running_averages(data, tmp_path):
    def net():
        return FullyConnectedNet([8], input_dim=5, num_classes=3, normalization="batchnorm",
                                 dtype=np.float64, seed=0)

    solver = Solver(net(), data, num_epochs=1, verbose=False, seed=0).train()
    path = solver.save_checkpoint(tmp_path / "bn.npz")
    fresh = net()
    Solver.load_checkpoint(path, fresh, data)
    saved = solver.model.bn_params[0]
    assert not np.allclose(saved["running_mean"], 0)
    np.testing.assert_array_equal(fresh.bn_params[0]["running_mean"], saved["running_mean"])
    np.testing.assert_array_equal(fresh.bn_params[0]["running_var"], saved["running_var"])
