"""Tests for cs231n_lib/fast_layers.py (and winograd.py): the fast layers agree with the naive
ones and with an independent oracle (scipy.signal.correlate2d) for every path, geometry and
dtype; the backward passes are adjoints of the forward passes."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.signal import correlate2d

from cs231n_lib import fast_layers, layers, parallel, winograd
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error

CONV_IMPLS = {
    "fast": (fast_layers.conv_forward_fast, fast_layers.conv_backward_fast),
    "im2col": (fast_layers.conv_forward_im2col, fast_layers.conv_backward_im2col),
}

# id -> (x shape, w shape, conv_param, path the fast layer must take)
CONV_CASES = {
    "3x3 s1 p1 C=16 (winograd)": ((2, 16, 8, 8), (4, 16, 3, 3), {"stride": 1, "pad": 1},
                                  "winograd"),
    "3x3 s1 p1 ragged tiles (winograd)": ((2, 16, 7, 9), (3, 16, 3, 3), {"pad": 1}, "winograd"),
    "3x3 s1 p1 ragged tile rows only (winograd)": ((2, 8, 14, 8), (3, 8, 3, 3), {"pad": 1},
                                                   "winograd"),
    "3x3 s1 p0 (winograd)": ((1, 17, 6, 11), (2, 17, 3, 3), {}, "winograd"),
    "3x3 s1 p2 (winograd)": ((2, 16, 5, 5), (3, 16, 3, 3), {"pad": 2}, "winograd"),
    "3x3 s1 p1 F > C (winograd)": ((2, 8, 8, 8), (16, 8, 3, 3), {"pad": 1}, "winograd"),
    "3x3 s1 p1 C=3 (window)": ((2, 3, 8, 8), (4, 3, 3, 3), {"stride": 1, "pad": 1}, "window"),
    "notebook 3x3 s2 p1 (window)": ((3, 3, 9, 9), (5, 3, 3, 3), {"stride": 2, "pad": 1},
                                    "window"),
    "3x3 s2 p0 (window)": ((2, 3, 9, 11), (4, 3, 3, 3), {"stride": 2, "pad": 0}, "window"),
    "2x2 s2 dilation 3 (window)": ((1, 2, 10, 10), (2, 2, 2, 2),
                                   {"stride": 2, "pad": 1, "dilation": 3}, "window"),
    "non-square 3x5 s1 p1 (window)": ((2, 2, 6, 7), (3, 2, 3, 5), {"stride": 1, "pad": 1},
                                      "window"),
    "non-square 4x2 s2 p0 (window)": ((2, 3, 8, 6), (3, 3, 4, 2), {"stride": 2, "pad": 0},
                                      "window"),
    "dilation 2 (window)": ((2, 2, 9, 9), (3, 2, 3, 3), {"pad": 1, "dilation": 2}, "window"),
    "1x1 s1 (window)": ((2, 5, 4, 4), (3, 5, 1, 1), {}, "window"),
    "1x1 s2 p1 (window)": ((2, 3, 5, 5), (4, 3, 1, 1), {"stride": 2, "pad": 1}, "window"),
    "1x1 s1 C=70 (window: one tap)": ((2, 70, 3, 4), (3, 70, 1, 1), {}, "window"),
    "5x5 s3 p2 H != W (window)": ((2, 2, 7, 10), (3, 2, 5, 5), {"stride": 3, "pad": 2},
                                  "window"),
    "filter = input (window)": ((2, 3, 4, 4), (5, 3, 4, 4), {}, "window"),
    "2x2 s2 C=16 (window: 64 taps)": ((2, 16, 6, 6), (8, 16, 2, 2), {"stride": 2}, "window"),
    "3x3 s2 p1 C=8 (gemm: 72 taps)": ((3, 8, 9, 9), (5, 8, 3, 3), {"stride": 2, "pad": 1},
                                      "gemm"),
    "3x3 s2 p0 C=8 (gemm)": ((2, 8, 9, 11), (4, 8, 3, 3), {"stride": 2, "pad": 0}, "gemm"),
    "non-square 3x5 s1 p1 C=5 (gemm)": ((2, 5, 6, 7), (3, 5, 3, 5), {"stride": 1, "pad": 1},
                                        "gemm"),
    "non-square 4x2 s2 p0 C=9 (gemm)": ((2, 9, 8, 6), (3, 9, 4, 2), {"stride": 2, "pad": 0},
                                        "gemm"),
    "dilation 2 C=8 (gemm)": ((2, 8, 9, 9), (3, 8, 3, 3), {"pad": 1, "dilation": 2}, "gemm"),
    "2x2 s2 dilation 3 C=17 (gemm)": ((1, 17, 10, 10), (2, 17, 2, 2),
                                      {"stride": 2, "pad": 1, "dilation": 3}, "gemm"),
    "5x5 s3 p2 H != W C=3 (gemm)": ((2, 3, 7, 10), (3, 3, 5, 5), {"stride": 3, "pad": 2},
                                    "gemm"),
    "filter = input C=5 (gemm)": ((2, 5, 4, 4), (5, 5, 4, 4), {}, "gemm"),
    "3x3 dilation 2 C=16": ((1, 16, 8, 8), (2, 16, 3, 3), {"pad": 2, "dilation": 2}, "gemm"),
    "3x3 dilation 2 C=32 (winograd, phases)": ((2, 32, 8, 8), (3, 32, 3, 3),
                                               {"pad": 2, "dilation": 2}, "winograd"),
    "3x3 dilation 2 C=32 ragged phases (winograd)": ((2, 32, 15, 15), (3, 32, 3, 3),
                                                     {"pad": 2, "dilation": 2}, "winograd"),
    "3x3 dilation 3 C=32 (winograd, phases)": ((1, 32, 24, 24), (2, 32, 3, 3),
                                               {"pad": 3, "dilation": 3}, "winograd"),
    "5x5 s1 p2 C=16 (fft)": ((2, 16, 7, 9), (16, 16, 5, 5), {"pad": 2}, "fft"),
    "7x7 s1 p0 F=17 (fft)": ((2, 16, 9, 8), (17, 16, 7, 7), {}, "fft"),
    "5x5 dilation 2 pad 5 (fft)": ((1, 16, 6, 6), (16, 16, 5, 5), {"pad": 5, "dilation": 2},
                                   "fft"),
    "5x5 s1 C=8 (gemm: too few channels)": ((2, 8, 6, 6), (16, 8, 5, 5), {"pad": 2}, "gemm"),
    "7x7 s2 p3 C=16 (gemm: strided)": ((2, 16, 15, 13), (16, 16, 7, 7), {"stride": 2, "pad": 3},
                                       "gemm"),
}

# id -> (x shape, pool_param)
POOL_CASES = {
    "2x2 s2 tiled": ((2, 3, 8, 8), {"pool_height": 2, "pool_width": 2, "stride": 2}),
    "3x3 s2 on 7x7 overlapping": ((2, 3, 7, 7), {"pool_height": 3, "pool_width": 3,
                                                 "stride": 2}),
    "3x3 s1 overlapping": ((1, 2, 5, 6), {"pool_height": 3, "pool_width": 3, "stride": 1}),
    "2x3 s1 non-square": ((2, 2, 5, 6), {"pool_height": 2, "pool_width": 3, "stride": 1}),
    "3x3 s3 on 9x9": ((1, 2, 9, 9), {"pool_height": 3, "pool_width": 3, "stride": 3}),
    "2x2 s3 gaps": ((1, 2, 8, 8), {"pool_height": 2, "pool_width": 2, "stride": 3}),
    "1x1 s1": ((2, 2, 3, 3), {"pool_height": 1, "pool_width": 1, "stride": 1}),
}
POOLS = {
    "max": (fast_layers.max_pool_forward_fast, fast_layers.max_pool_backward_fast,
            layers.max_pool_forward_naive, layers.max_pool_backward_naive),
    "avg": (fast_layers.avg_pool_forward_fast, fast_layers.avg_pool_backward_fast,
            layers.avg_pool_forward_naive, layers.avg_pool_backward_naive),
}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


def assert_close(actual, expected, dtype):
    """float64 to 1e-10, float32 to 1e-4 relative; atol scaled to the data because entries
    near zero come out of sums of opposite-signed terms."""
    assert actual.dtype == dtype, f"dtype {actual.dtype} != {dtype}"
    tol = 1e-10 if dtype == np.float64 else 1e-4
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def conv_inputs(rng, x_shape, w_shape, dtype):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b


def scipy_conv(x, w, b, conv_param):
    """Independent oracle: per (image, filter, channel) 2-D correlation with a dilated kernel,
    subsampled by the stride."""
    s, p, d = (conv_param.get(k, v) for k, v in (("stride", 1), ("pad", 0), ("dilation", 1)))
    F, C, HH, WW = w.shape
    wd = np.zeros((F, C, d * (HH - 1) + 1, d * (WW - 1) + 1))
    wd[:, :, ::d, ::d] = w  # taps d pixels apart, zeros in between
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p, p), (p, p)))
    return np.stack([
        np.stack([sum(correlate2d(xp[n, c], wd[f, c], mode="valid")[::s, ::s] for c in range(C))
                  + b[f] for f in range(F)])
        for n in range(x.shape[0])])


@pytest.mark.parametrize("impl", CONV_IMPLS)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_matches_naive_and_scipy(case, impl, dtype, rng):
    x_shape, w_shape, conv_param, _ = case
    forward, backward = CONV_IMPLS[impl]
    x, w, b = conv_inputs(rng, x_shape, w_shape, dtype)
    out, cache = forward(x, w, b, conv_param)
    naive_out, naive_cache = layers.conv_forward_naive(x, w, b, conv_param)
    assert_close(out, naive_out, dtype)
    assert_close(out, scipy_conv(x, w, b, conv_param).astype(dtype), dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    grads = backward(dout, cache)
    naive_grads = layers.conv_backward_naive(dout, naive_cache)
    assert len(grads) == 3
    for grad, naive_grad in zip(grads, naive_grads, strict=True):
        assert_close(grad, naive_grad, dtype)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_fast_split_across_threads_matches_naive(case, dtype, rng, monkeypatch):
    """The batch split over 2 threads (3 images: one slice each, the third slice taken from the
    queue by whichever thread is free first), forward and backward."""
    x_shape, w_shape, conv_param, _ = case
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    monkeypatch.setattr(parallel, "SLICES_PER_THREAD", 2)
    parallel.set_num_threads(2)
    try:
        x, w, b = conv_inputs(rng, (3, *x_shape[1:]), w_shape, dtype)
        out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
        assert cache[5][1] == [slice(0, 1), slice(1, 2), slice(2, 3)]  # 2 per thread, <= N
        naive_out, naive_cache = layers.conv_forward_naive(x, w, b, conv_param)
        assert_close(out, naive_out, dtype)
        dout = rng.standard_normal(out.shape).astype(dtype)
        for got, want in zip(fast_layers.conv_backward_fast(dout, cache),
                             layers.conv_backward_naive(dout, naive_cache), strict=True):
            assert_close(got, want, dtype)
    finally:
        parallel.set_num_threads(None)


@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_fast_takes_the_expected_path(case, rng):
    x_shape, w_shape, conv_param, path = case
    _, cache = fast_layers.conv_forward_fast(*conv_inputs(rng, x_shape, w_shape, np.float64),
                                             conv_param)
    assert cache[4] == path


@pytest.mark.parametrize("impl", CONV_IMPLS)
@pytest.mark.parametrize("case", CONV_CASES.values(), ids=CONV_CASES.keys())
def test_conv_backward_is_the_adjoint(case, impl, rng):
    """With b = 0, conv is linear in x and in w: <conv(x), y> = <x, dx(y)> = <w, dw(y)>."""
    x_shape, w_shape, conv_param, _ = case
    forward, backward = CONV_IMPLS[impl]
    x, w, _ = conv_inputs(rng, x_shape, w_shape, np.float64)
    out, cache = forward(x, w, np.zeros(w_shape[0]), conv_param)
    y = rng.standard_normal(out.shape)
    dx, dw, db = backward(y, cache)
    assert_allclose(np.vdot(out, y), np.vdot(x, dx), rtol=1e-10)
    assert_allclose(np.vdot(out, y), np.vdot(w, dw), rtol=1e-10)
    assert_allclose(db, y.sum(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("impl", CONV_IMPLS)
def test_conv_gradients_match_centred_differences(impl, rng):
    forward, backward = CONV_IMPLS[impl]
    x, w, b = conv_inputs(rng, (2, 16, 5, 6), (2, 16, 3, 3), np.float64)  # winograd for "fast"
    conv_param = {"stride": 1, "pad": 1}
    out, cache = forward(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = backward(dout, cache)
    # conv is linear in each input, so centred differences are exact for any step; a large step
    # keeps the forward's rounding (divided by 2h) far below the tolerance
    h = 1e-2
    assert rel_error(dx, eval_numerical_gradient_array(
        lambda v: forward(v, w, b, conv_param)[0], x.copy(), dout, h=h)) < 1e-8
    assert rel_error(dw, eval_numerical_gradient_array(
        lambda v: forward(x, v, b, conv_param)[0], w.copy(), dout, h=h)) < 1e-8
    assert rel_error(db, eval_numerical_gradient_array(
        lambda v: forward(x, w, v, conv_param)[0], b.copy(), dout, h=h)) < 1e-8


@pytest.mark.parametrize("impl", CONV_IMPLS)
@pytest.mark.parametrize("w_shape", [(4, 16, 3, 3), (4, 3, 5, 3)], ids=["winograd", "gemm"])
def test_conv_does_not_mutate_inputs_and_keeps_dtypes(impl, w_shape, dtype, rng):
    forward, backward = CONV_IMPLS[impl]
    x, w, b = conv_inputs(rng, (2, w_shape[1], 6, 6), w_shape, dtype)
    conv_param = {"stride": 1, "pad": 1}
    param_before = dict(conv_param)
    before = [a.copy() for a in (x, w, b)]
    out, cache = forward(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dout_before = dout.copy()
    grads = backward(dout, cache)
    for a, a_before in zip((x, w, b, dout), before + [dout_before], strict=True):
        assert_array_equal(a, a_before)
    assert conv_param == param_before
    assert out.dtype == dtype and out.flags.c_contiguous
    assert [g.dtype for g in grads] == [dtype] * 3
    assert [g.shape for g in grads] == [x.shape, w.shape, b.shape]


@pytest.mark.parametrize("impl", CONV_IMPLS)
@pytest.mark.parametrize("x_shape, w_shape, conv_param, match", [
    ((1, 3, 6, 6), (2, 3, 3, 3), {"stride": 2}, "stride=2 does not tile"),
    ((1, 3, 6, 6), (2, 3, 3, 3), {"strides": 1}, "unknown key"),
    ((1, 3, 6, 6), (2, 4, 3, 3), {}, "channel mismatch"),
    ((1, 3, 6, 6), (2, 3, 3, 3), {"pad": -1}, "pad=-1"),
    ((1, 3, 6, 6), (2, 3, 3, 3), {"dilation": 0}, "dilation=0"),
    ((3, 6, 6), (2, 3, 3, 3), {}, "must be 4-D"),
])
def test_conv_invalid_settings_raise_value_error(impl, x_shape, w_shape, conv_param, match):
    forward, _ = CONV_IMPLS[impl]
    with pytest.raises(ValueError, match=match):
        forward(np.zeros(x_shape), np.zeros(w_shape), np.zeros(w_shape[0]), conv_param)


@pytest.mark.parametrize("impl", CONV_IMPLS)
def test_conv_wrong_bias_and_dout_shapes_raise_value_error(impl, rng):
    forward, backward = CONV_IMPLS[impl]
    x, w, b = conv_inputs(rng, (1, 16, 4, 4), (2, 16, 3, 3), np.float64)
    with pytest.raises(ValueError, match="b must have shape"):
        forward(x, w, np.zeros(3), {"pad": 1})
    out, cache = forward(x, w, b, {"pad": 1})
    with pytest.raises(ValueError, match="dout must have shape"):
        backward(np.zeros((1, 2, 3, 3)), cache)


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_pool_matches_naive(case, kind, dtype, rng):
    x_shape, pool_param = case
    forward, backward, naive_forward, naive_backward = POOLS[kind]
    x = rng.standard_normal(x_shape).astype(dtype)
    x_before = x.copy()
    out, cache = forward(x, pool_param)
    naive_out, naive_cache = naive_forward(x, pool_param)
    assert_close(out, naive_out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = backward(dout, cache)
    assert_close(dx, naive_backward(dout, naive_cache), dtype)
    assert_array_equal(x, x_before)


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool_split_across_threads_matches_naive(case, dtype, rng, monkeypatch):
    """3 images over 2 threads, values with ties: same output and gradient as the naive layer."""
    x_shape, pool_param = case
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    parallel.set_num_threads(2)
    try:
        x = rng.integers(0, 3, (3, *x_shape[1:])).astype(dtype)
        out, cache = fast_layers.max_pool_forward_fast(x, pool_param)
        naive_out, naive_cache = layers.max_pool_forward_naive(x, pool_param)
        assert_array_equal(out, naive_out)
        dout = rng.standard_normal(out.shape).astype(dtype)
        assert_close(fast_layers.max_pool_backward_fast(dout, cache),
                     layers.max_pool_backward_naive(dout, naive_cache), dtype)
    finally:
        parallel.set_num_threads(None)


@pytest.mark.parametrize("case", POOL_CASES.values(), ids=POOL_CASES.keys())
def test_max_pool_ties_go_to_the_first_maximum(case, rng):
    """Many ties (values in {0, 1, 2}): gradient placement must equal the naive layer's,
    which gives each window's gradient to its first maximum in row-major order."""
    x_shape, pool_param = case
    x = rng.integers(0, 3, size=x_shape).astype(np.float64)
    out, cache = fast_layers.max_pool_forward_fast(x, pool_param)
    dout = rng.standard_normal(out.shape)
    dx = fast_layers.max_pool_backward_fast(dout, cache)
    naive_dx = layers.max_pool_backward_naive(dout, layers.max_pool_forward_naive(x, pool_param)[1])
    assert_allclose(dx, naive_dx, rtol=1e-12, atol=1e-12)


def test_max_pool_tie_example_by_hand():
    """A 2x2 window of equal values sends its whole gradient to the top-left pixel."""
    x = np.ones((1, 1, 2, 2))
    out, cache = fast_layers.max_pool_forward_fast(
        x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    dx = fast_layers.max_pool_backward_fast(np.full((1, 1, 1, 1), 5.0), cache)
    assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("kind", POOLS)
def test_pool_gradients_match_centred_differences(kind, rng):
    forward, backward, _, _ = POOLS[kind]
    pool_param = {"pool_height": 3, "pool_width": 3, "stride": 2}
    x = rng.permutation(2 * 2 * 7 * 7).reshape(2, 2, 7, 7) * 0.1  # distinct: no ties
    out, cache = forward(x, pool_param)
    dout = rng.standard_normal(out.shape)
    numeric = eval_numerical_gradient_array(lambda v: forward(v, pool_param)[0], x.copy(), dout)
    assert rel_error(backward(dout, cache), numeric) < 1e-8


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("x_shape, pool_param, match", [
    ((1, 1, 7, 7), {"pool_height": 2, "pool_width": 2, "stride": 2}, "does not tile"),
    ((1, 1, 4, 4), {"pool_height": 2, "pool_width": 2}, "missing required key"),
    ((1, 1, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2, "pad": 0}, "unknown key"),
    ((1, 1, 4, 4), {"pool_height": 5, "pool_width": 2, "stride": 1}, "larger than"),
])
def test_pool_invalid_settings_raise_value_error(kind, x_shape, pool_param, match):
    forward = POOLS[kind][0]
    with pytest.raises(ValueError, match=match):
        forward(np.zeros(x_shape), pool_param)


def test_winograd_tile_identity_is_a_correlation(rng):
    """F(4, 3) in 1-D: AT @ ((G @ g) * (BT @ d)) equals the 3-tap correlation of a 6-tile."""
    d, g = rng.standard_normal(6), rng.standard_normal(3)
    expected = np.correlate(d, g, mode="valid")  # y[t] = sum_k g[k] d[t + k], 4 outputs
    assert_allclose(winograd.AT @ ((winograd.G @ g) * (winograd.BT @ d)), expected, rtol=1e-12)


def test_winograd_bias_position_reaches_every_output_once():
    """The forward adds b at tile position BIAS_AT of the transform domain: AT e AT^T must be
    all ones there, so each of the 16 outputs of a tile gets b exactly once."""
    e = np.zeros((winograd.ALPHA, winograd.ALPHA))
    e.flat[winograd.BIAS_AT] = 1.0
    assert_array_equal(winograd.AT @ e @ winograd.AT.T, np.ones((winograd.M, winograd.M)))


def test_winograd_applies_to_3x3_stride_1_and_dilated_where_the_phases_fill_tiles():
    assert winograd.applies((8, 32, 3, 3), stride=1, dilation=1)
    assert not winograd.applies((8, 32, 3, 3), stride=2, dilation=1)
    assert not winograd.applies((8, 32, 3, 5), stride=1, dilation=1)
    assert not winograd.applies((8, winograd.MIN_CHANNELS - 1, 3, 3), stride=1, dilation=1)
    assert winograd.applies((8, 32, 3, 3), 1, 2, (16, 16))  # phases of 8 x 8: whole tiles
    assert winograd.applies((8, 32, 3, 3), 1, 2, (15, 15))  # 8 and 7: 16/15 each way
    assert not winograd.applies((8, 32, 3, 3), 1, 2, (14, 14))  # 7 and 7: 8/7 each way
    assert not winograd.applies((8, 32, 3, 3), 1, 3, (16, 16))  # 6, 5, 5 in 8-pixel tiles
    assert winograd.applies((8, 32, 3, 3), 1, 3, (24, 24))
    assert not winograd.applies((8, winograd.MIN_CHANNELS_DILATED - 1, 3, 3), 1, 2, (16, 16))
    assert not winograd.applies((8, 32, 3, 3), stride=1, dilation=2)  # size unknown


@pytest.mark.parametrize("C, hw, pad, d", [(8, 9, 2, 2), (8, 8, 1, 2), (4, 5, 3, 3), (4, 3, 2, 3),
                                           (4, 1, 2, 2), (4, 12, 4, 4)])
@pytest.mark.parametrize("need_dx", [True, False])
def test_dilated_winograd_is_the_naive_convolution_and_writes_every_pixel(C, hw, pad, d,
                                                                          need_dx):
    """Every geometry, including tiny images whose phases no output reads (their pixels'
    gradient is 0), called directly (``applies`` sends only some to this path)."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, C, hw, hw)), rng.standard_normal((3, C, 3, 3)), np.ones(3)
    param = {"pad": pad, "dilation": d}
    ref, ref_cache = layers.conv_forward_naive(x, w, b, param)
    U = winograd.filters(w)
    out = np.full(ref.shape, np.nan)
    Vs = winograd.conv_forward_dilated(x, U, b, pad, d, out)
    assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(ref.shape)
    dx_ref, dw_ref, db_ref = layers.conv_backward_naive(dout, ref_cache)
    dx = np.full(x.shape, np.nan) if need_dx else None
    dU, db = winograd.conv_backward_dilated(dout, U, Vs, pad, d, dx, x.shape)
    assert_allclose(winograd.filters_adjoint(dU), dw_ref, rtol=1e-10, atol=1e-10)
    assert_allclose(db, db_ref, rtol=1e-10, atol=1e-10)
    if need_dx:
        assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("w_shape", [(3, 16, 3, 3), (3, 2, 3, 2)], ids=["winograd", "gemm"])
def test_conv_accepts_non_contiguous_arrays(w_shape, rng):
    """Views (here: Fortran order and a transposed dout) give the same results as copies."""
    x, w, b = conv_inputs(rng, (2, w_shape[1], 6, 6), w_shape, np.float64)
    out, cache = fast_layers.conv_forward_fast(x, w, b, {"pad": 1})
    dout = rng.standard_normal(out.shape[::-1]).T  # a transposed, non-contiguous view
    expected = fast_layers.conv_backward_fast(np.ascontiguousarray(dout), cache)
    out_f, cache_f = fast_layers.conv_forward_fast(np.asfortranarray(x), np.asfortranarray(w), b,
                                                   {"pad": 1})
    assert_allclose(out_f, out, rtol=1e-12, atol=1e-12)
    for grad, grad_expected in zip(fast_layers.conv_backward_fast(dout, cache_f), expected,
                                   strict=True):
        assert_allclose(grad, grad_expected, rtol=1e-12, atol=1e-12)


POOL_2x2 = {"pool_height": 2, "pool_width": 2, "stride": 2}


def pool_2x2_run(kind, rng):
    """Forward a random (2, 3, 4, 6) input through a 2x2/2 pool; returns
    (forward, backward, x, out, cache, dout)."""
    forward, backward, _, _ = POOLS[kind]
    x = rng.standard_normal((2, 3, 4, 6))
    out, cache = forward(x, POOL_2x2)
    return forward, backward, x, out, cache, rng.standard_normal(out.shape)


@pytest.mark.parametrize("kind", POOLS)
def test_pool_accepts_non_contiguous_arrays(kind, rng):
    forward, backward, x, out, cache, dout = pool_2x2_run(kind, rng)
    out_f, cache_f = forward(np.asfortranarray(x), POOL_2x2)
    assert_array_equal(out_f, out)
    assert_array_equal(backward(dout.T.copy().T, cache_f), backward(dout, cache))


@pytest.mark.parametrize("w_shape", [(3, 16, 3, 3), (3, 2, 3, 2)], ids=["winograd", "gemm"])
def test_fast_conv_works_when_the_im2col_exercises_are_stubbed(w_shape, rng, monkeypatch):
    """In the student edition im2col and col2im raise NotImplementedError; the default fast
    path must not need them."""

    def stub(*args, **kwargs):
        raise NotImplementedError("exercise stub")

    for name in ("im2col", "col2im"):
        monkeypatch.setattr(fast_layers, name, stub)
        monkeypatch.setattr(f"cs231n_lib.im2col.{name}", stub)
    x, w, b = conv_inputs(rng, (2, w_shape[1], 6, 6), w_shape, np.float64)
    out, cache = fast_layers.conv_forward_fast(x, w, b, {"pad": 1})
    grads = fast_layers.conv_backward_fast(np.ones_like(out), cache)
    assert [g.shape for g in grads] == [x.shape, w.shape, b.shape]
    assert_close(out, layers.conv_forward_naive(x, w, b, {"pad": 1})[0], np.float64)
    with pytest.raises(NotImplementedError):
        fast_layers.conv_forward_im2col(x, w, b, {"pad": 1})


@pytest.mark.parametrize("kind", POOLS)
def test_pool_backward_ignores_changes_to_the_returned_output(kind, rng):
    """The caller owns the forward's output; editing it in place must not change dx."""
    _, backward, _, out, cache, dout = pool_2x2_run(kind, rng)
    expected = backward(dout, cache)
    out *= -1.0
    assert_array_equal(backward(dout, cache), expected)


@pytest.mark.parametrize("impl", CONV_IMPLS)
@pytest.mark.parametrize("channels, size", [(3, 3), (16, 3), (16, 5)],
                         ids=["gemm", "winograd", "fft"])
def test_conv_of_an_empty_batch_is_empty(impl, channels, size):
    """N = 0 (e.g. the last, empty slice of a data loader) gives empty outputs and dx, zero dw
    and db, like the naive layer."""
    forward, backward = CONV_IMPLS[impl]
    x, w, b = np.zeros((0, channels, 8, 8)), np.ones((16, channels, size, size)), np.ones(16)
    out, cache = forward(x, w, b, {"pad": size // 2})
    assert out.shape == (0, 16, 8, 8)
    dx, dw, db = backward(np.zeros(out.shape), cache)
    assert dx.shape == x.shape
    assert_array_equal(dw, np.zeros_like(w))
    assert_array_equal(db, np.zeros_like(b))


@pytest.mark.parametrize("kind", POOLS)
def test_pool_of_an_empty_batch_is_empty(kind):
    forward, backward, _, _ = POOLS[kind]
    out, cache = forward(np.zeros((0, 2, 4, 4)), {"pool_height": 2, "pool_width": 2, "stride": 2})
    assert out.shape == (0, 2, 2, 2)
    assert backward(np.zeros(out.shape), cache).shape == (0, 2, 4, 4)


@pytest.mark.parametrize("hw", [4, 5, 9])  # one tile (whose tile view is contiguous), more
def test_a_winograd_cache_survives_the_next_winograd_layer(hw):
    """The transformed tiles a forward pass keeps must be its own memory: with one image of
    one tile, they once were the thread's scratch buffer, which the next layer's forward pass
    overwrote (wrong dw, silently)."""
    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((1, 8, hw, hw)), rng.standard_normal((8, 8, 3, 3)), np.zeros(8)
    out, cache = fast_layers.conv_forward_fast(x, w, b, {"pad": 1})
    assert cache[4] == "winograd"
    expected = fast_layers.conv_backward_fast(np.ones_like(out), cache)
    fast_layers.conv_forward_fast(rng.standard_normal(x.shape), w, b, {"pad": 1})  # next layer
    for got, want in zip(fast_layers.conv_backward_fast(np.ones_like(out), cache), expected,
                         strict=True):
        assert_array_equal(got, want)
    _, ref_cache = layers.conv_forward_naive(x, w, b, {"pad": 1})
    assert_allclose(expected[1], layers.conv_backward_naive(np.ones_like(out), ref_cache)[1],
                    rtol=1e-10, atol=1e-12)
