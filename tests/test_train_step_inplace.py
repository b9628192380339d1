"""The training step's economies (issue 17) change no number: update rules without temporary
arrays or float64 upcasts, the ReLU backward in a gradient the network owns, the L2 term
skipped at reg=0, and layers before the first parameter skipped when nobody needs dX."""

from __future__ import annotations

import numpy as np
import pytest

from cs231n_lib import architectures as arch
from cs231n_lib import fast_layers, layer_utils, optim
from cs231n_lib.classifiers.convnet import ConvNet, grouped_conv_backward, grouped_conv_forward
from cs231n_lib.classifiers.regularization import add_l2
from cs231n_lib.layers import relu_backward, relu_forward


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_float32_stays_float32_with_numpy_float64_hyperparameters(name):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    config = {"learning_rate": np.float64(1e-2)}
    for _ in range(2):  # the second call also reads the state
        dw = rng.standard_normal((4, 3)).astype(np.float32)
        w, config = optim.UPDATE_RULES[name](w, dw, config)
        assert w.dtype == np.float32
        for key, value in config.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32, key


@pytest.mark.parametrize("name", ["sgd_momentum", "adagrad", "rmsprop", "adam"])
def test_state_is_replaced_not_overwritten(name):
    """The old state arrays (which a caller, or a checkpoint, may hold) keep their values."""
    rng = np.random.default_rng(1)
    w, dw = rng.standard_normal(5), rng.standard_normal(5)
    _, config = optim.UPDATE_RULES[name](w, dw, {})
    old = {k: v for k, v in config.items() if isinstance(v, np.ndarray)}
    saved = {k: v.copy() for k, v in old.items()}
    _, config = optim.UPDATE_RULES[name](w, 2 * dw, config)
    for key, value in old.items():
        assert config[key] is not value
        np.testing.assert_array_equal(value, saved[key])
        assert not np.array_equal(config[key], saved[key])


def test_relu_backward_inplace_writes_relu_backward_into_dout():
    rng = np.random.default_rng(2)
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x[0, 0] = 0.0  # the kink passes no gradient
    expected = relu_backward(dout, x)
    assert layer_utils.relu_backward_inplace(dout, x) is dout
    np.testing.assert_array_equal(dout, expected)
    with pytest.raises(ValueError, match="shape"):
        layer_utils.relu_backward_inplace(dout, x[:, :2])
    wide = layer_utils.relu_backward_inplace(dout, x.astype(np.float32))  # x's dtype, as
    assert wide.dtype == np.float32 and wide is not dout                 # relu_backward's


@pytest.mark.parametrize("need_dx", [True, False])
def test_conv_relu_pool_backward_is_its_parts_and_leaves_dout_alone(need_dx):
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), np.ones(4)
    conv_param, pool_param = {"stride": 1, "pad": 1}, {"pool_height": 2, "pool_width": 2,
                                                       "stride": 2}
    out, cache = layer_utils.conv_relu_pool_forward(x, w, b, conv_param, pool_param)
    dout = rng.standard_normal(out.shape)
    before = dout.copy()
    got = layer_utils.conv_relu_pool_backward(dout, cache, need_dx=need_dx)
    np.testing.assert_array_equal(dout, before)
    s, conv_cache = fast_layers.conv_forward_fast(x, w, b, conv_param)  # the three layers
    r, relu_cache = relu_forward(s)
    pooled, pool_cache = fast_layers.max_pool_forward_fast(r, pool_param)
    # (the fused layer computes a first layer at the pooling's resolution, s2d_conv: the same
    # sums in another order)
    np.testing.assert_allclose(out, pooled, rtol=1e-13, atol=1e-14)
    da = relu_backward(fast_layers.max_pool_backward_fast(dout, pool_cache), relu_cache)
    expected = fast_layers.conv_backward_fast(da, conv_cache, need_dx=need_dx)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            np.testing.assert_allclose(g, e, rtol=1e-13, atol=1e-14)


def test_add_l2_skips_everything_at_reg_zero_and_adds_the_term_otherwise():
    params = {"W1": np.array([1.0, -2.0]), "b1": np.array([5.0])}
    grads = {"W1": np.array([0.5, 0.5]), "b1": np.array([1.0])}
    same = grads["W1"]
    assert add_l2(0.0, params, grads, ["W1"]) == 0.0
    assert grads["W1"] is same
    np.testing.assert_array_equal(grads["W1"], [0.5, 0.5])
    assert add_l2(0.1, params, grads, ["W1"]) == pytest.approx(0.5 * 0.1 * 5.0)
    np.testing.assert_allclose(grads["W1"], [0.6, 0.3])
    np.testing.assert_array_equal(grads["b1"], [1.0])  # biases are not regularised


def _grads_of(model, X, y):
    scores, caches = model.forward(X, "train")
    dscores = np.random.default_rng(9).standard_normal(scores.shape)
    return scores, caches, dscores


def test_convnet_without_dx_skips_layers_before_the_first_parameter():
    """A spec starting with Flatten (notebook 6's deep MLP): no dX, the same gradients."""
    spec = arch.Spec("mlp", (1, 4, 4), (arch.Flatten(), arch.FC(6), arch.ReLU(), arch.FC(3)))
    model = ConvNet(spec, dtype=np.float64, seed=0)
    X = np.random.default_rng(4).standard_normal((5, 1, 4, 4))
    _, caches, dscores = _grads_of(model, X, None)
    dX, full = model.backward(dscores, caches)
    skipped, grads = model.backward(dscores, caches, need_dx=False)
    assert dX.shape == X.shape and skipped is None
    assert set(grads) == set(full)
    for key, value in full.items():
        np.testing.assert_array_equal(grads[key], value)


def test_convnet_backward_never_overwrites_the_callers_gradient():
    """Flatten's dX is a view of the caller's dscores: the ReLU before it must not run in it."""
    spec = arch.Spec("tail", (2, 3, 3), (arch.Conv(4, 3), arch.ReLU(), arch.Flatten()))
    model = ConvNet(spec, dtype=np.float64, seed=0)
    X = np.random.default_rng(5).standard_normal((3, 2, 3, 3))
    _, caches, dscores = _grads_of(model, X, None)
    before = dscores.copy()
    model.backward(dscores, caches)
    np.testing.assert_array_equal(dscores, before)


def test_grouped_conv_backward_with_one_group_is_the_fast_layer():
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)), np.ones(4)
    out, cache = grouped_conv_forward(x, w, b, {"stride": 1, "pad": 1})
    dout = rng.standard_normal(out.shape)
    got = grouped_conv_backward(dout, cache)
    expected = fast_layers.conv_backward_fast(dout, cache[0])
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("bn", [False, True])
def test_affine_sandwiches_skip_dx_with_the_same_weight_gradients(bn):
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    if bn:
        forward, backward = layer_utils.affine_bn_relu_forward, layer_utils.affine_bn_relu_backward
        out, cache = forward(x, w, b, np.ones(5), np.zeros(5), {"mode": "train"})
    else:
        forward, backward = layer_utils.affine_relu_forward, layer_utils.affine_relu_backward
        out, cache = forward(x, w, b)
    dout = rng.standard_normal(out.shape)
    full = backward(dout, cache)
    skipped = backward(dout, cache, need_dx=False)
    assert full[0].shape == x.shape and skipped[0] is None
    for g, g2 in zip(full[1:], skipped[1:], strict=True):
        np.testing.assert_array_equal(g2, g)
    with pytest.raises(ValueError, match="dout"):
        layer_utils.affine_weight_grads(dout[:, :2], cache[0])
