"""Batch normalisation (train and test modes, running averages, spatial variant), inverted
dropout, and the ValueErrors of bn_param, dropout_param and the losses."""

import numpy as np
import pytest

from cs231n_lib import layers


@pytest.fixture
def rng():
    return np.random.default_rng(231)


# --------------------------------------------------------------------------- batch normalisation
def test_batchnorm_train_output_has_zero_mean_unit_std(rng):
    x = rng.normal(5.0, 3.0, (200, 4)) * np.array([1.0, 0.1, 10.0, 2.0])
    out, _ = layers.batchnorm_forward(x, np.ones(4), np.zeros(4), {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), 1, rtol=1e-4)  # eps=1e-5 shrinks it slightly


def test_batchnorm_gamma_and_beta_set_std_and_mean(rng):
    x = rng.normal(5.0, 3.0, (100, 3))
    gamma, beta = np.array([2.0, 0.5, 3.0]), np.array([-1.0, 0.0, 4.0])
    out, _ = layers.batchnorm_forward(x, gamma, beta, {"mode": "train"})
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-12)
    np.testing.assert_allclose(out.std(axis=0), gamma, rtol=1e-4)


def test_batchnorm_running_averages_follow_the_momentum_rule(rng):
    x1, x2 = rng.normal(2.0, 3.0, (20, 3)), rng.normal(-1.0, 0.5, (20, 3))
    bn_param = {"mode": "train", "momentum": 0.8}
    layers.batchnorm_forward(x1, np.ones(3), np.zeros(3), bn_param)
    mean1 = 0.8 * 0.0 + 0.2 * x1.mean(axis=0)  # defaults: running_mean 0, running_var 1
    var1 = 0.8 * 1.0 + 0.2 * x1.var(axis=0)
    np.testing.assert_allclose(bn_param["running_mean"], mean1, rtol=1e-12)
    np.testing.assert_allclose(bn_param["running_var"], var1, rtol=1e-12)
    held = bn_param["running_mean"]
    held_copy = held.copy()
    layers.batchnorm_forward(x2, np.ones(3), np.zeros(3), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], 0.8 * mean1 + 0.2 * x2.mean(axis=0))
    np.testing.assert_allclose(bn_param["running_var"], 0.8 * var1 + 0.2 * x2.var(axis=0))
    np.testing.assert_array_equal(held, held_copy)  # new arrays, not an in-place update


def test_batchnorm_running_averages_converge_to_the_population(rng):
    mean, std = np.array([3.0, -2.0]), np.array([2.0, 0.5])
    bn_param = {"mode": "train"}
    for _ in range(200):
        x = mean + std * rng.standard_normal((100, 2))
        layers.batchnorm_forward(x, np.ones(2), np.zeros(2), bn_param)
    np.testing.assert_allclose(bn_param["running_mean"], mean, atol=0.05)
    np.testing.assert_allclose(bn_param["running_var"], std**2, rtol=0.1)


def test_batchnorm_test_mode_uses_running_averages_and_leaves_them(rng):
    x = rng.standard_normal((5, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    bn_param = {"mode": "test", "running_mean": rm, "running_var": rv, "eps": 1e-3}
    out, _ = layers.batchnorm_forward(x, gamma, beta, bn_param)
    np.testing.assert_allclose(out, gamma * (x - rm) / np.sqrt(rv + 1e-3) + beta, rtol=1e-12)
    assert bn_param["running_mean"] is rm and bn_param["running_var"] is rv


def test_batchnorm_float32_data_stays_float32_with_float64_running_averages(rng):
    """A model that created its running averages with np.zeros (float64) still gets float32."""
    x = rng.standard_normal((5, 3)).astype(np.float32)
    gamma, beta = np.ones(3, np.float32), np.zeros(3, np.float32)
    bn_param = {"mode": "test", "running_mean": np.zeros(3), "running_var": np.ones(3)}
    out, cache = layers.batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = layers.batchnorm_backward(np.ones_like(x), cache)
    assert out.dtype == dx.dtype == dgamma.dtype == dbeta.dtype == np.float32


def test_spatial_batchnorm_is_batchnorm_over_pixels(rng):
    x = rng.normal(1.0, 2.0, (2, 3, 4, 5))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    dout = rng.standard_normal(x.shape)
    p_spatial, p_flat = {"mode": "train"}, {"mode": "train"}
    out, cache = layers.spatial_batchnorm_forward(x, gamma, beta, p_spatial)
    dx, dgamma, dbeta = layers.spatial_batchnorm_backward(dout, cache)

    rows = x.transpose(0, 2, 3, 1).reshape(-1, 3)  # (N*H*W, C)
    out_rows, cache_rows = layers.batchnorm_forward(rows, gamma, beta, p_flat)
    dout_rows = dout.transpose(0, 2, 3, 1).reshape(-1, 3)
    dx_rows, dgamma_rows, dbeta_rows = layers.batchnorm_backward(dout_rows, cache_rows)

    def back(r):
        return r.reshape(2, 4, 5, 3).transpose(0, 3, 1, 2)

    np.testing.assert_allclose(out, back(out_rows), rtol=1e-12)
    np.testing.assert_allclose(dx, back(dx_rows), rtol=1e-12)
    np.testing.assert_allclose(dgamma, dgamma_rows, rtol=1e-12)
    np.testing.assert_allclose(dbeta, dbeta_rows, rtol=1e-12)
    np.testing.assert_allclose(p_spatial["running_mean"], p_flat["running_mean"], rtol=1e-12)
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), beta, atol=1e-12)


def test_spatial_batchnorm_test_mode_scales_each_channel(rng):
    """Test mode on (N, C, H, W) with W == C: gamma and beta must follow the channel axis."""
    x = rng.standard_normal((2, 3, 4, 3))
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    bn_param = {"mode": "test", "running_mean": rm, "running_var": rv}
    out, cache = layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    c = (1, 3, 1, 1)
    x_hat = (x - rm.reshape(c)) / np.sqrt(rv.reshape(c) + 1e-5)
    np.testing.assert_allclose(out, gamma.reshape(c) * x_hat + beta.reshape(c), rtol=1e-12)
    dx, _, _ = layers.spatial_batchnorm_backward(np.ones_like(x), cache)
    np.testing.assert_allclose(dx, np.broadcast_to((gamma / np.sqrt(rv + 1e-5)).reshape(c),
                                                   x.shape), rtol=1e-12)


# --------------------------------------------------------------------------- dropout
def test_dropout_train_keeps_about_p_and_preserves_the_mean(rng):
    x = np.ones((500, 200))
    for p in (0.3, 0.8):
        out, _ = layers.dropout_forward(x, {"p": p, "mode": "train", "seed": 7})
        kept = out != 0
        assert abs(kept.mean() - p) < 0.01  # std of the fraction is below 0.0015
        np.testing.assert_allclose(out[kept], 1 / p)
        assert abs(out.mean() - 1.0) < 0.03


def test_dropout_backward_uses_the_forward_mask(rng):
    x = rng.standard_normal((6, 7)) + 10  # never 0, so kept units are visible in out
    out, cache = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 1})
    dout = rng.standard_normal(x.shape)
    dx = layers.dropout_backward(dout, cache)
    kept = out != 0
    np.testing.assert_allclose(dx[kept], dout[kept] / 0.5)
    assert np.all(dx[~kept] == 0) and 0 < kept.sum() < kept.size


def test_dropout_test_mode_is_the_identity(rng):
    x = rng.standard_normal((4, 5))
    out, cache = layers.dropout_forward(x, {"p": 0.3, "mode": "test"})
    np.testing.assert_array_equal(out, x)
    assert out is not x
    dout = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(layers.dropout_backward(dout, cache), dout)


def test_dropout_keep_probability_one_keeps_everything(rng):
    x = rng.standard_normal((4, 5))
    out, _ = layers.dropout_forward(x, {"p": 1.0, "mode": "train"})
    np.testing.assert_array_equal(out, x)


def test_dropout_seed_is_reproducible(rng):
    x = rng.standard_normal((30, 30))
    a, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 3})
    b, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 3})
    c, _ = layers.dropout_forward(x, {"p": 0.5, "mode": "train", "seed": 4})
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


# --------------------------------------------------------------------------- invalid settings
def _bn(bn_param, x_shape=(4, 3)):
    return lambda: layers.batchnorm_forward(np.zeros(x_shape), np.ones(3), np.zeros(3), bn_param)


def _dropout(dropout_param):
    return lambda: layers.dropout_forward(np.zeros((2, 3)), dropout_param)


def _loss(loss_fn, y, x_shape=(3, 10)):
    return lambda: loss_fn(np.zeros(x_shape), y)


BAD = {
    "bn unknown key": (_bn({"mode": "train", "momentun": 0.9}), r"'momentun'"),
    "bn bad mode": (_bn({"mode": "eval"}), r"mode='eval'"),
    "bn missing mode": (_bn({}), r"missing.*mode"),
    "bn momentum": (_bn({"mode": "train", "momentum": 1.5}), r"momentum=1\.5"),
    "bn eps": (_bn({"mode": "train", "eps": 0}), r"eps=0"),
    "bn x 3-D": (_bn({"mode": "train"}, (4, 3, 2)), r"\(4, 3, 2\)"),
    "bn running_mean shape": (_bn({"mode": "test", "running_mean": np.zeros(2)}),
                              r"running_mean must have shape \(3,\), got \(2,\)"),
    "bn gamma shape": (lambda: layers.batchnorm_forward(
        np.zeros((4, 3)), np.ones(2), np.zeros(3), {"mode": "train"}), r"gamma.*\(2,\)"),
    "spatial bn x 2-D": (lambda: layers.spatial_batchnorm_forward(
        np.zeros((4, 3)), np.ones(3), np.zeros(3), {"mode": "train"}), r"\(4, 3\)"),
    "dropout unknown key": (_dropout({"p": 0.5, "mode": "train", "keep_prob": 0.5}),
                            r"'keep_prob'"),
    "dropout bad mode": (_dropout({"p": 0.5, "mode": "training"}), r"mode='training'"),
    "dropout p=0": (_dropout({"p": 0, "mode": "train"}), r"p=0 "),
    "dropout p=1.5": (_dropout({"p": 1.5, "mode": "train"}), r"p=1\.5"),
    "dropout p=True": (_dropout({"p": True, "mode": "train"}), r"p=True"),
    "dropout seed": (_dropout({"p": 0.5, "mode": "train", "seed": -1}), r"seed=-1"),
    "dropout missing p": (_dropout({"mode": "train"}), r"missing.*'p'"),
    "softmax label 10 of 10": (_loss(layers.softmax_loss, [1, 10, 2]), r"y\[1\]=10"),
    "svm negative label": (_loss(layers.svm_loss, [0, 1, -1]), r"y\[2\]=-1"),
    "float labels": (_loss(layers.softmax_loss, np.array([0.0, 1.0, 2.0])), r"float64"),
    "labels length": (_loss(layers.svm_loss, [0, 1]), r"\(3,\).*\(2,\)"),
    "scores 1-D": (_loss(layers.softmax_loss, [0, 1, 2], (3,)), r"\(3,\)"),
}


@pytest.mark.parametrize("call, match", BAD.values(), ids=BAD.keys())
def test_invalid_settings_raise_value_error_naming_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()
