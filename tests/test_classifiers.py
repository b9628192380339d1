"""ThreeLayerConvNet and FullyConnectedNet: initial loss, gradients, overfitting, arguments."""

import math

import numpy as np
import pytest

from cs231n_lib.classifiers.cnn import ThreeLayerConvNet
from cs231n_lib.classifiers.fc_net import FullyConnectedNet
from cs231n_lib.data.synthetic import make_shapes
from cs231n_lib.gradient_check import eval_numerical_gradient, rel_error
from cs231n_lib.solver import Solver


def max_grad_error(model, X, y):
    """Largest relative error between analytic and numerical gradients over all parameters."""
    _, grads = model.loss(X, y)
    errors = {}
    for name, param in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], param, h=1e-6)
        errors[name] = rel_error(num, grads[name])
    return errors


# --------------------------------------------------------------------------- ThreeLayerConvNet
def small_cnn(**kwargs):
    opts = {"input_dim": (3, 8, 8), "num_filters": 3, "filter_size": 3, "hidden_dim": 7,
            "dtype": np.float64, "seed": 0, **kwargs}
    return ThreeLayerConvNet(**opts)


def test_cnn_parameter_shapes():
    model = ThreeLayerConvNet(seed=0)
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"W1": (32, 3, 7, 7), "b1": (32,), "W2": (32 * 16 * 16, 100),
                      "b2": (100,), "W3": (100, 10), "b3": (10,)}
    assert all(v.dtype == np.float32 for v in model.params.values())
    assert model.conv_param == {"stride": 1, "pad": 3}


def test_cnn_initial_loss_is_log_num_classes():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((20, 3, 8, 8)), rng.integers(10, size=20)
    loss, _ = small_cnn(weight_scale=1e-3).loss(X, y)
    assert loss == pytest.approx(math.log(10), abs=1e-3)
    reg_loss, _ = small_cnn(weight_scale=1e-3, reg=1e4).loss(X, y)
    assert reg_loss > loss + 1e-3, "regularisation adds 0.5 * reg * sum(W**2)"


@pytest.mark.parametrize("reg", [0.0, 0.7])
def test_cnn_gradients_match_numerical(reg):
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((2, 3, 8, 8)), rng.integers(10, size=2)
    model = small_cnn(weight_scale=1e-1, reg=reg)
    errors = max_grad_error(model, X, y)
    assert max(errors.values()) < 1e-6, errors


def test_cnn_scores_and_dtype():
    model = small_cnn(dtype=np.float32)
    X = np.random.default_rng(3).standard_normal((5, 3, 8, 8))  # float64 in, cast to float32
    scores = model.loss(X)
    assert scores.shape == (5, 10) and scores.dtype == np.float32
    loss, grads = model.loss(X, np.arange(5))
    assert isinstance(loss, float)
    assert {k: g.dtype for k, g in grads.items()} == {k: np.float32 for k in model.params}
    np.testing.assert_array_equal(small_cnn().params["W1"], small_cnn().params["W1"])


@pytest.mark.parametrize("seed", [0, 1])
def test_cnn_overfits_small_data(seed):
    X, y = make_shapes(50, num_classes=4, channels=1, size=16, seed=seed)
    X = X.astype(np.float32)
    X = (X - X.mean()) / X.std()
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    model = ThreeLayerConvNet(input_dim=(1, 16, 16), num_filters=8, filter_size=3,
                              hidden_dim=50, num_classes=4, weight_scale=1e-1, seed=seed)
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-2},
                    batch_size=10, num_epochs=15, num_train_samples=None, verbose=False,
                    seed=seed)
    solver.train()
    assert solver.train_acc_history[-1] == 1.0
    assert solver.loss_history[-1] < 0.1 < solver.loss_history[0]


@pytest.mark.parametrize("kwargs, match", [
    ({"input_dim": (3, 7, 8)}, "H=7"),
    ({"filter_size": 4}, "F=4"),
    ({"input_dim": (3, 8)}, "input_dim"),
    ({"num_filters": 0}, "num_filters"),
    ({"reg": -1.0}, "reg"),
    ({"dtype": np.int32}, "dtype"),
])
def test_cnn_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_cnn(**kwargs)


# --------------------------------------------------------------------------- FullyConnectedNet
@pytest.mark.parametrize("normalization", [None, "batchnorm"])
@pytest.mark.parametrize("keep", [1, 0.5], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("reg", [0.0, 3.14])
def test_fc_gradients_match_numerical(normalization, keep, reg):
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((3, 5)), rng.integers(4, size=3)
    model = FullyConnectedNet([6, 5], input_dim=5, num_classes=4, dropout_keep_ratio=keep,
                              normalization=normalization, reg=reg, weight_scale=5e-1,
                              dtype=np.float64, seed=0)
    errors = max_grad_error(model, X, y)
    expected_keys = {"W1", "b1", "W2", "b2", "W3", "b3"}
    if normalization:
        expected_keys |= {"gamma1", "beta1", "gamma2", "beta2"}
        # a bias followed by batchnorm cannot change the loss: its gradient is 0 (up to
        # rounding), where a relative error means nothing
        _, grads = model.loss(X, y)
        for b in ("b1", "b2"):
            np.testing.assert_allclose(grads[b], 0, atol=1e-12)
            del errors[b]
        expected_keys -= {"b1", "b2"}
    assert set(errors) == expected_keys
    assert max(errors.values()) < 1e-5, errors


def test_fc_initial_loss_and_test_mode():
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((50, 3, 4, 4)), rng.integers(10, size=50)
    model = FullyConnectedNet([20, 30], input_dim=48, normalization="batchnorm",
                              dropout_keep_ratio=0.5, weight_scale=1e-3, dtype=np.float64,
                              seed=0)
    loss, _ = model.loss(X, y)
    assert loss == pytest.approx(math.log(10), abs=2e-2)
    assert [bn["mode"] for bn in model.bn_params] == ["train", "train"]
    assert "running_mean" in model.bn_params[0]
    scores = model.loss(X)
    assert scores.shape == (50, 10)
    assert model.dropout_param["mode"] == "test"
    np.testing.assert_array_equal(scores, model.loss(X)), "test mode is deterministic"


@pytest.mark.parametrize("kwargs, match", [
    ({"normalization": "layernorm"}, "layernorm"),
    ({"dropout_keep_ratio": 0}, "dropout_keep_ratio"),
    ({"hidden_dims": [10, -1]}, "hidden"),
])
def test_fc_bad_arguments(kwargs, match):
    opts = {"hidden_dims": [10], "input_dim": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        FullyConnectedNet(**opts)
