"""The demo's training function on a small budget (the full demo is `make demo`, not a test)."""

import numpy as np

from cs231n_lib import train_demo


def small_data(n_train=300, n_val=100):
    data = train_demo.prepare_data("fashion_small", num_training=n_train)
    data["X_val"], data["y_val"] = data["X_val"][:n_val], data["y_val"][:n_val]
    data["X_test"], data["y_test"] = data["X_test"][:n_val], data["y_test"][:n_val]
    return data


def test_prepare_data_scales_pixels():
    data = small_data()
    assert data["X_train"].shape == (300, 1, 28, 28)
    assert data["X_train"].dtype == np.float32
    assert 0.1 < float(np.abs(data["X_train"]).max()) <= 1.0


def test_training_function_learns_within_a_small_budget():
    solver, test_acc, seconds = train_demo.train_small_convnet(epochs=5, seed=0,
                                                               data=small_data(), verbose=False)
    losses = solver.loss_history
    assert len(losses) == 5 * (300 // train_demo.TRAINING["batch_size"])
    assert np.mean(losses[-3:]) < 0.8 * losses[0], "the loss falls"
    assert test_acc > 0.3, "well above chance (0.1) on 10 classes"
    # the accuracy is the returned model's on the test split, and the time covers the training
    data = small_data()
    assert solver.check_accuracy(data["X_test"], data["y_test"]) == test_acc
    assert seconds >= solver.train_seconds > 0


def test_time_budget_is_passed_on():
    solver, _, _ = train_demo.train_small_convnet(epochs=50, seed=0, data=small_data(),
                                                  time_budget=0.5, verbose=False)
    assert solver.stopped_early
    assert solver.epoch < 50


def test_main_prints_accuracy_and_time(monkeypatch, capsys):
    data = small_data()
    monkeypatch.setattr(train_demo, "prepare_data", lambda dataset: data)
    assert train_demo.main(["--epochs", "1", "--quiet", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy: " in out and " s (process CPU time " in out
    assert "300 training" in out
