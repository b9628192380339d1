"""Naive convolution: numerical gradients, the adjoint identity, scipy as an independent oracle,
the CS231n notes' numpy walk-through, and the error messages for invalid settings."""

import numpy as np
import pytest
from layer_cases import check_gradients
from scipy.signal import correlate

from cs231n_lib.layers import conv_backward_naive, conv_forward_naive

# (x shape, w shape, conv_param): strides, pads, dilations, non-square and 1x1 filters
CASES = {
    "3x3 s1 p1": ((2, 3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": 1}),
    "3x3 s2 p1": ((2, 3, 5, 5), (3, 3, 3, 3), {"stride": 2, "pad": 1}),
    "defaults": ((1, 2, 4, 4), (2, 2, 3, 3), {}),
    "5x3 non-square": ((1, 2, 7, 6), (3, 2, 5, 3), {}),
    "2x4 s2 p1 non-square": ((2, 2, 6, 8), (2, 2, 2, 4), {"stride": 2, "pad": 1}),
    "1x1": ((2, 4, 3, 3), (5, 4, 1, 1), {}),
    "1x1 s2 p1": ((1, 2, 5, 5), (2, 2, 1, 1), {"stride": 2, "pad": 1}),
    "3x3 dilation 2": ((1, 2, 7, 7), (2, 2, 3, 3), {"dilation": 2}),
    "3x3 dilation 2 s2 p2": ((2, 2, 7, 7), (2, 2, 3, 3), {"stride": 2, "pad": 2, "dilation": 2}),
    "2x3 dilation 3 s3 p1 H!=W": ((1, 2, 5, 8), (2, 2, 2, 3), {"stride": 3, "pad": 1,
                                                                "dilation": 3}),
    "filter covers input": ((2, 3, 4, 4), (3, 3, 4, 4), {}),
}


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def _random_inputs(rng, x_shape, w_shape):
    return (rng.standard_normal(x_shape), rng.standard_normal(w_shape),
            rng.standard_normal(w_shape[0]))


def scipy_conv(x, w, b, stride=1, pad=0, dilation=1):
    """Oracle: per (n, f), scipy's 2-D valid cross-correlation of each channel, summed over
    channels; np.pad for padding, a zero-inserted kernel for dilation, slicing for the stride."""
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    F, C, HH, WW = w.shape
    kernel = np.zeros((F, C, dilation * (HH - 1) + 1, dilation * (WW - 1) + 1))
    kernel[:, :, ::dilation, ::dilation] = w
    out = []
    for n in range(x.shape[0]):
        maps = []
        for f in range(F):
            full = sum(correlate(x_pad[n, c], kernel[f, c], mode="valid", method="direct")
                       for c in range(C))
            maps.append(full[::stride, ::stride] + b[f])
        out.append(maps)
    return np.array(out)


@pytest.mark.parametrize("x_shape, w_shape, param", CASES.values(), ids=CASES.keys())
def test_conv_backward_matches_numerical_gradient(x_shape, w_shape, param, rng):
    check_gradients(lambda x, w, b: conv_forward_naive(x, w, b, param), conv_backward_naive,
                    _random_inputs(rng, x_shape, w_shape), rng)


@pytest.mark.parametrize("x_shape, w_shape, param", CASES.values(), ids=CASES.keys())
def test_conv_backward_is_the_adjoint_of_forward(x_shape, w_shape, param, rng):
    x, w, _ = _random_inputs(rng, x_shape, w_shape)
    _assert_adjoint(x, w, param, rng)


def _assert_adjoint(x, w, param, rng):
    """<conv(x, w), y> = <x, conv^T_w(y)> = <w, conv^T_x(y)>, and db sums y."""
    out, cache = conv_forward_naive(x, w, np.zeros(w.shape[0]), param)
    y = rng.standard_normal(out.shape)
    dx, dw, db = conv_backward_naive(y, cache)
    inner = np.sum(out * y)
    assert abs(inner - np.sum(x * dx)) <= 1e-12 * np.sum(np.abs(out * y))
    assert abs(inner - np.sum(w * dw)) <= 1e-12 * np.sum(np.abs(out * y))
    np.testing.assert_allclose(db, y.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, param", CASES.values(), ids=CASES.keys())
def test_conv_forward_matches_scipy(x_shape, w_shape, param, rng):
    x, w, b = _random_inputs(rng, x_shape, w_shape)
    out, _ = conv_forward_naive(x, w, b, param)
    expected = scipy_conv(x, w, b, **param)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def _random_geometry(rng):
    """A random valid convolution: the input size is chosen so the stride tiles it exactly."""
    HH, WW = rng.integers(1, 5, size=2)
    stride, pad, dilation = rng.integers(1, 4), rng.integers(0, 3), rng.integers(1, 3)
    sizes = []
    for field in (HH, WW):
        eff = dilation * (field - 1) + 1
        k_min = max(0, -(-(1 - eff + 2 * pad) // stride))  # smallest k giving a size >= 1
        sizes.append(eff - 2 * pad + stride * (k_min + rng.integers(0, 3)))  # H + 2P = eff + S*k
    N, C, F = rng.integers(1, 3), rng.integers(1, 4), rng.integers(1, 4)
    param = {"stride": int(stride), "pad": int(pad), "dilation": int(dilation)}
    return (N, C, *sizes), (F, C, HH, WW), param


@pytest.mark.parametrize("seed", range(20))
def test_conv_matches_scipy_and_adjoint_on_random_geometry(seed):
    rng = np.random.default_rng(seed)
    x_shape, w_shape, param = _random_geometry(rng)
    x, w, b = _random_inputs(rng, x_shape, w_shape)
    out, _ = conv_forward_naive(x, w, b, param)
    np.testing.assert_allclose(out, scipy_conv(x, w, b, **param), rtol=1e-10, atol=1e-12)
    _assert_adjoint(x, w, param, rng)


def test_cs231n_notes_numpy_walkthrough(rng):
    """The notes: X (11, 11, 4), F=5, S=2, no pad -> a 4x4 output with
    V[0,0,0] = np.sum(X[:5,:5,:] * W0) + b0, V[1,0,0] = np.sum(X[2:7,:5,:] * W0) + b0, ...,
    V[0,0,1] = np.sum(X[:5,:5,:] * W1) + b1. Here in NCHW: x[0, c, h, w] = X[h, w, c]."""
    X = rng.standard_normal((11, 11, 4))
    W0, W1 = rng.standard_normal((5, 5, 4)), rng.standard_normal((5, 5, 4))
    b0, b1 = rng.standard_normal(2)
    x = X.transpose(2, 0, 1)[None]  # (1, 4, 11, 11)
    w = np.stack([W0, W1]).transpose(0, 3, 1, 2)  # (2, 4, 5, 5)
    out, _ = conv_forward_naive(x, w, np.array([b0, b1]), {"stride": 2, "pad": 0})
    assert out.shape == (1, 2, 4, 4)
    V = out[0].transpose(1, 2, 0)  # back to the notes' layout V[x, y, depth]
    assert np.isclose(V[0, 0, 0], np.sum(X[:5, :5, :] * W0) + b0, rtol=1e-12)
    assert np.isclose(V[1, 0, 0], np.sum(X[2:7, :5, :] * W0) + b0, rtol=1e-12)
    assert np.isclose(V[2, 0, 0], np.sum(X[4:9, :5, :] * W0) + b0, rtol=1e-12)
    assert np.isclose(V[3, 0, 0], np.sum(X[6:11, :5, :] * W0) + b0, rtol=1e-12)
    assert np.isclose(V[0, 0, 1], np.sum(X[:5, :5, :] * W1) + b1, rtol=1e-12)
    assert np.isclose(V[3, 2, 1], np.sum(X[6:11, 4:9, :] * W1) + b1, rtol=1e-12)


def test_conv_single_filter_picks_out_a_pixel():
    """A 3x3 filter with one 1 at the centre, pad 1, stride 1, copies the input channel."""
    x = np.arange(2 * 5 * 5, dtype=float).reshape(1, 2, 5, 5)
    w = np.zeros((1, 2, 3, 3))
    w[0, 1, 1, 1] = 1.0
    out, _ = conv_forward_naive(x, w, np.zeros(1), {"pad": 1})
    np.testing.assert_array_equal(out[0, 0], x[0, 1])


BAD = {
    "non-integer output 4.5": ((1, 1, 10, 10), (1, 1, 3, 3), {"stride": 2}, r"4\.5"),
    "negative pad": ((1, 1, 5, 5), (1, 1, 3, 3), {"pad": -1}, r"pad=-1"),
    "stride 0": ((1, 1, 5, 5), (1, 1, 3, 3), {"stride": 0}, r"stride=0"),
    "fractional stride": ((1, 1, 5, 5), (1, 1, 3, 3), {"stride": 1.5}, r"stride=1\.5"),
    "dilation 0": ((1, 1, 5, 5), (1, 1, 3, 3), {"dilation": 0}, r"dilation=0"),
    "filter larger than padded input": ((1, 1, 4, 4), (1, 1, 7, 7), {"pad": 1},
                                        r"filter size 7 .* = 6"),
    "dilated filter too large": ((1, 1, 4, 4), (1, 1, 3, 3), {"dilation": 2},
                                 r"filter size 5 .* = 4"),
    "channel mismatch": ((1, 3, 5, 5), (2, 2, 3, 3), {}, r"C=3.*C=2"),
    "unknown key": ((1, 1, 5, 5), (1, 1, 3, 3), {"strides": 1}, r"'strides'"),
    "x not 4-D": ((3, 5, 5), (1, 3, 3, 3), {}, r"\(3, 5, 5\)"),
}


@pytest.mark.parametrize("x_shape, w_shape, param, match", BAD.values(), ids=BAD.keys())
def test_conv_forward_rejects_invalid_settings(x_shape, w_shape, param, match):
    with pytest.raises(ValueError, match=match):
        conv_forward_naive(np.zeros(x_shape), np.zeros(w_shape), np.zeros(w_shape[0]), param)


def test_conv_rejects_bad_bias_and_upstream_shapes():
    x, w = np.zeros((1, 2, 5, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"b must have shape \(3,\), got \(2,\)"):
        conv_forward_naive(x, w, np.zeros(2), {})
    _, cache = conv_forward_naive(x, w, np.zeros(3), {})
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 3, 3, 3\), got \(1, 3, 5"):
        conv_backward_naive(np.zeros((1, 3, 5, 5)), cache)
