"""The faster non-convolution layers (issue #17) against independent oracles: pooling in
cache-sized chunks split across threads, max pooling's argmax cache and scatter, average
pooling's backward pass as the adjoint of its forward pass, ReLU's zeros operand, batch
normalisation's BLAS sums and chunked passes, the one-exp softmax loss. Small arrays, with
``layers.CHUNK_BYTES`` shrunk so that every slice is cut into several chunks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cs231n_lib import fast_layers, fast_pool, layers, parallel, scratch
from cs231n_lib.im2col import window_view

POOL_PARAMS = {
    "2x2 s2 tiled": (8, 8, {"pool_height": 2, "pool_width": 2, "stride": 2}),
    "3x3 s2 overlapping": (7, 9, {"pool_height": 3, "pool_width": 3, "stride": 2}),
    "3x3 s1 overlapping": (5, 6, {"pool_height": 3, "pool_width": 3, "stride": 1}),
    "2x3 s1 non-square": (5, 6, {"pool_height": 2, "pool_width": 3, "stride": 1}),
    "2x2 s3 gaps": (8, 8, {"pool_height": 2, "pool_width": 2, "stride": 3}),
    "1x1 s1": (3, 3, {"pool_height": 1, "pool_width": 1, "stride": 1}),
    "3x3 s3 tiled": (9, 6, {"pool_height": 3, "pool_width": 3, "stride": 3}),
    "2x3 s2 non-square": (8, 9, {"pool_height": 2, "pool_width": 3, "stride": 2}),
}


@pytest.fixture
def rng():
    return np.random.default_rng(17)


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def dtype(request):
    return request.param


@pytest.fixture
def chunked(monkeypatch):
    """Two threads, every slice of 5 images cut into chunks of one or two images."""
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    monkeypatch.setattr(layers, "CHUNK_BYTES", 1)
    parallel.set_num_threads(2)
    yield
    parallel.set_num_threads(None)


def _tol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


# --------------------------------------------------------------------------- pooling
def _first_max_index(x, pool_param):
    """Oracle for the argmax cache: np.argmax (first maximum) of every flattened window,
    turned into an index into x.ravel()."""
    ph, pw, stride = (pool_param[k] for k in ("pool_height", "pool_width", "stride"))
    N, C, H, W = x.shape
    win = window_view(x, ph, pw, stride)  # (N, C, ph, pw, H_out, W_out)
    H_out, W_out = win.shape[4:]
    k = win.reshape(N, C, ph * pw, H_out, W_out).argmax(axis=2)
    rows = stride * np.arange(H_out)[:, None] + k // pw
    cols = stride * np.arange(W_out) + k % pw
    planes = np.arange(N * C).reshape(N, C, 1, 1)
    return (planes * H + rows) * W + cols


@pytest.mark.parametrize("case", POOL_PARAMS.values(), ids=POOL_PARAMS.keys())
def test_max_pool_caches_the_flat_index_of_each_first_maximum(case, dtype, rng, chunked):
    H, W, pool_param = case
    x = rng.integers(0, 3, (5, 2, H, W)).astype(dtype)  # many ties
    out, (_, _, argmax) = fast_layers.max_pool_forward_fast(x, pool_param)
    assert argmax.dtype == np.intp and argmax.shape == out.shape
    assert_array_equal(argmax, _first_max_index(x, pool_param))
    assert_array_equal(x.ravel()[argmax], out)


@pytest.mark.parametrize("case", POOL_PARAMS.values(), ids=POOL_PARAMS.keys())
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_in_chunks_and_threads_matches_naive(case, kind, dtype, rng, chunked):
    H, W, pool_param = case
    forward = getattr(fast_layers, f"{kind}_pool_forward_fast")
    backward = getattr(fast_layers, f"{kind}_pool_backward_fast")
    naive_forward = getattr(layers, f"{kind}_pool_forward_naive")
    naive_backward = getattr(layers, f"{kind}_pool_backward_naive")
    x = rng.integers(0, 3, (5, 2, H, W)).astype(dtype) + 0.25 * rng.standard_normal((5, 2, H, W))
    x = x.astype(dtype)
    out, cache = forward(x, pool_param)
    naive_out, naive_cache = naive_forward(x, pool_param)
    assert_allclose(out, naive_out, rtol=_tol(dtype))
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = backward(dout, cache)
    assert dx.dtype == dtype
    assert_allclose(dx, naive_backward(dout, naive_cache), rtol=_tol(dtype), atol=_tol(dtype))


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_of_a_non_contiguous_x_matches_naive(kind, rng, chunked):
    """x a transposed view: argmax indexes x.ravel() (C order), the flattened chunks copy."""
    x = rng.standard_normal((7, 9, 2, 5)).transpose(3, 2, 0, 1)  # (5, 2, 7, 9)
    pool_param = POOL_PARAMS["3x3 s2 overlapping"][2]
    out, cache = getattr(fast_layers, f"{kind}_pool_forward_fast")(x, pool_param)
    naive_out, naive_cache = getattr(layers, f"{kind}_pool_forward_naive")(x, pool_param)
    assert_allclose(out, naive_out, rtol=1e-12)
    dout = rng.standard_normal(out.shape)
    assert_allclose(getattr(fast_layers, f"{kind}_pool_backward_fast")(dout, cache),
                    getattr(layers, f"{kind}_pool_backward_naive")(dout, naive_cache),
                    rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fresh_bytes", [0, 1 << 40], ids=["np.zeros", "filled in chunks"])
@pytest.mark.parametrize("case", ["2x2 s3 gaps", "3x3 s2 overlapping"])
def test_max_pool_backward_zeroes_every_pixel_either_way(case, fresh_bytes, rng, chunked,
                                                         monkeypatch):
    """dx starts as zeros, from np.zeros (batches of fresh memory) or from each chunk's fill
    (smaller ones): pixels no window picks (here the gaps) are 0 both ways."""
    monkeypatch.setattr(fast_pool, "FRESH_BYTES", fresh_bytes)
    H, W, pool_param = POOL_PARAMS[case]
    x = rng.standard_normal((5, 2, H, W))
    out, cache = fast_layers.max_pool_forward_fast(x, pool_param)
    dout = rng.standard_normal(out.shape)
    for _ in range(2):  # the second call gets recycled memory
        dx = fast_layers.max_pool_backward_fast(dout, cache)
        naive = layers.max_pool_backward_naive(dout, (x, pool_param))
        assert_allclose(dx, naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", POOL_PARAMS.values(), ids=POOL_PARAMS.keys())
def test_avg_pool_backward_is_the_adjoint_of_the_forward_pass(case, rng):
    """<forward(x), dout> == <x, backward(dout)>: every pixel, including those no window
    covers (gaps) and those several windows share, gets exactly its share."""
    H, W, pool_param = case
    x = rng.standard_normal((2, 3, H, W))
    out, cache = fast_layers.avg_pool_forward_fast(x, pool_param)
    dout = rng.standard_normal(out.shape)
    dx = fast_layers.avg_pool_backward_fast(dout, cache)
    assert np.vdot(out, dout) == pytest.approx(np.vdot(x, dx), rel=1e-12)


@pytest.mark.parametrize("name", POOL_PARAMS)
def test_strided_avg_pool_sums_rows_first_with_the_same_rounding(name, dtype, chunked,
                                                                 monkeypatch):
    """At a stride of 2 or more average pooling takes ``_strided_mean`` and its transpose, at
    stride 1 not; both passes are bit for bit those of the shifted sums over every pixel (the
    same adds in the same order), windows tiling the input, overlapping or with gaps between
    them, on a non-contiguous x too, and dx has no pixel left unwritten."""
    H, W, pool_param = POOL_PARAMS[name]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((5, W, 3, H)).astype(dtype).transpose(0, 2, 3, 1)  # (5, 3, H, W)
    calls = []
    real = fast_pool._strided_mean
    monkeypatch.setattr(fast_pool, "_strided_mean", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(fast_pool, "np", _EmptyIsNaN(np))  # fresh arrays full of NaN,
    scratch_array = scratch.array  # and the scratch buffers too

    def nan_scratch(*args):
        a = scratch_array(*args)
        a.fill(np.nan)
        return a

    monkeypatch.setattr(scratch, "array", nan_scratch)
    out, cache = fast_layers.avg_pool_forward_fast(x, pool_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = fast_layers.avg_pool_backward_fast(dout, cache)
    assert bool(calls) is (pool_param["stride"] >= 2)
    monkeypatch.setattr(fast_pool, "ROWS_FIRST_MIN_STRIDE", 10**6)
    out_shifted, cache = fast_layers.avg_pool_forward_fast(x, pool_param)
    assert_array_equal(out, out_shifted)
    assert_array_equal(dx, fast_layers.avg_pool_backward_fast(dout, cache))
    assert out.dtype == dx.dtype == dtype
    naive_out, naive_cache = layers.avg_pool_forward_naive(x, pool_param)
    assert_allclose(out, naive_out, rtol=_tol(dtype), atol=_tol(dtype))
    assert_allclose(dx, layers.avg_pool_backward_naive(dout, naive_cache), rtol=_tol(dtype),
                    atol=_tol(dtype))


class _EmptyIsNaN:
    """numpy, but ``empty`` fills its arrays with NaN (fresh memory often comes zeroed, which
    would hide a pixel no pass writes)."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    def empty(self, *args, **kwargs):
        a = self._module.empty(*args, **kwargs)
        a.fill(np.nan)
        return a


def test_max_pool_backward_adds_the_gradients_of_windows_sharing_a_maximum():
    """3x3/2 on a 5x5 image whose maximum is the centre pixel, shared by all four windows."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0
    pool_param = {"pool_height": 3, "pool_width": 3, "stride": 2}
    _, cache = fast_layers.max_pool_forward_fast(x, pool_param)
    dx = fast_layers.max_pool_backward_fast(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((5, 5))
    expected[2, 2] = 10.0
    assert_array_equal(dx[0, 0], expected)


def test_max_pool_backward_of_float64_dout_keeps_float32_x(rng):
    x = rng.standard_normal((2, 2, 4, 4)).astype(np.float32)
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = fast_layers.max_pool_forward_fast(x, pool_param)
    dout = rng.standard_normal(out.shape)
    dx = fast_layers.max_pool_backward_fast(dout, cache)
    naive = layers.max_pool_backward_naive(dout, layers.max_pool_forward_naive(x, pool_param)[1])
    assert dx.dtype == np.float32
    assert_allclose(dx, naive, rtol=1e-6)


# --------------------------------------------------------------------------- ReLU
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (4, 3, 2, 2)], ids=str)
def test_relu_of_any_shape_matches_the_definition(shape, dtype, rng):
    x = np.asarray(rng.standard_normal(shape)).astype(dtype)
    out, cache = layers.relu_forward(x)
    assert out.dtype == dtype and out.shape == x.shape
    assert_array_equal(out, np.where(x > 0, x, 0))
    dout = np.asarray(rng.standard_normal(shape)).astype(dtype)
    assert_array_equal(layers.relu_backward(dout, cache), np.where(x > 0, dout, 0))


@pytest.mark.parametrize("shape, zeros", [((64, 64, 32, 32), (64, 32, 32)),
                                          ((1, 64, 224, 224), (224, 224)),
                                          ((2, 100_000), (100_000,)), ((7,), ())], ids=str)
def test_relu_zeros_operand_is_at_most_one_example_and_small(shape, zeros):
    """One example's zeros broadcast over the batch; a single huge image gets fewer axes (no
    array of x's size), a huge last axis all of it."""
    assert layers._zeros_operand(np.empty(shape, np.float32)).shape == zeros


def test_relu_of_a_transposed_view_in_threads(rng, chunked):
    x = rng.standard_normal((6, 5, 4)).transpose(2, 0, 1)  # not contiguous
    out, _ = layers.relu_forward(x)
    assert_array_equal(out, np.maximum(x, 0))


# --------------------------------------------------------------------------- batch norm
def _bn_oracle(x, gamma, beta, dout, eps=1e-5):
    """Spatial batch norm in float64 from its definition (and the compact backward form)."""
    x, dout = x.astype(np.float64), dout.astype(np.float64)
    axes, c = (0, 2, 3), (1, -1, 1, 1)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    x_hat = (x - mean.reshape(c)) / np.sqrt(var.reshape(c) + eps)
    out = gamma.reshape(c) * x_hat + beta.reshape(c)
    g = dout * gamma.reshape(c)
    dx = (g - g.mean(axis=axes, keepdims=True)
          - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)) / np.sqrt(var.reshape(c) + eps)
    return out, dx, (dout * x_hat).sum(axis=axes), dout.sum(axis=axes), mean, var


@pytest.mark.parametrize("offset", [0.0, 1000.0], ids=["centred", "offset 1000"])
def test_spatial_batchnorm_in_chunks_and_threads_matches_the_definition(offset, dtype, rng,
                                                                      chunked):
    """5 images in chunks of one over two threads; data far from 0 (mean 1000, std 1) loses
    no precision in float32: the variance is summed from x - mean, not from x**2."""
    x = (offset + rng.standard_normal((5, 3, 4, 6))).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, 3).astype(dtype), rng.standard_normal(3).astype(dtype)
    dout = rng.standard_normal(x.shape).astype(dtype)
    bn_param = {"mode": "train", "momentum": 0.5}
    out, cache = layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta = layers.spatial_batchnorm_backward(dout, cache)
    o_out, o_dx, o_dgamma, o_dbeta, mean, var = _bn_oracle(x, gamma, beta, dout)
    tol = 1e-9 if dtype == np.float64 else 2e-3
    assert out.dtype == dx.dtype == dgamma.dtype == dtype
    assert_allclose(out, o_out, rtol=tol, atol=tol)
    assert_allclose(dx, o_dx, rtol=tol, atol=tol * np.abs(o_dx).max())
    assert_allclose(dgamma, o_dgamma, rtol=tol, atol=tol * np.abs(o_dgamma).max())
    assert_allclose(dbeta, o_dbeta, rtol=tol, atol=tol * np.abs(o_dbeta).max())
    assert_allclose(bn_param["running_mean"], 0.5 * mean, rtol=tol)
    assert_allclose(bn_param["running_var"], 0.5 + 0.5 * var, rtol=tol)


def test_batchnorm_caches_its_input_not_a_normalised_copy(rng):
    """The cache holds x itself and the statistics; the backward pass recomputes x_hat."""
    x = rng.standard_normal((4, 3, 2, 2))
    _, cache = layers.spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train"})
    assert cache[0] is x
    assert all(np.shape(a) == (3,) for a in cache[1:5])


def test_batchnorm_test_mode_gradients_use_the_running_averages(rng):
    x = rng.standard_normal((6, 3, 2, 2)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    bn_param = {"mode": "test", "running_mean": rm, "running_var": rv}
    _, cache = layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)
    dout = rng.standard_normal(x.shape).astype(np.float32)
    dx, dgamma, dbeta = layers.spatial_batchnorm_backward(dout, cache)
    c = (1, 3, 1, 1)
    inv_std = 1 / np.sqrt(rv + 1e-5)
    x_hat = (x - rm.reshape(c)) * inv_std.reshape(c)
    assert dx.dtype == np.float32
    assert_allclose(dx, dout * (gamma * inv_std).reshape(c), rtol=1e-5)
    assert_allclose(dgamma, (dout * x_hat).sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert_allclose(dbeta, dout.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_batchnorm_sums_over_every_axis_but_the_features(rng):
    for shape in [(6, 4), (3, 4, 5), (2, 4, 3, 5)]:
        a, b = rng.standard_normal(shape), rng.standard_normal(shape)
        axes = tuple(i for i in range(len(shape)) if i != 1)
        assert_allclose(layers._feature_sum(a), a.sum(axis=axes), rtol=1e-12)
        assert_allclose(layers._feature_sum(a, b), (a * b).sum(axis=axes), rtol=1e-12)


def test_per_feature_layout_follows_axis_1(rng):
    x = np.empty((2, 3, 4, 5))
    v = np.array([1.0, 2.0, 3.0])
    laid = layers._per_feature(v, x)
    assert laid.shape == (3, 4, 5) and laid.flags.c_contiguous
    assert_array_equal(laid, np.broadcast_to(v[:, None, None], (3, 4, 5)))
    assert np.shares_memory(layers._per_feature(v, np.empty((2, 3))), v)  # (N, D): no copy


# --------------------------------------------------------------------------- softmax loss
def _softmax_oracle(x, y):
    x = x.astype(np.float64)
    log_probs = x - x.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    dx = np.exp(log_probs)
    dx[np.arange(len(y)), y] -= 1
    return -log_probs[np.arange(len(y)), y].mean(), dx / len(y)


@pytest.mark.parametrize("classes", [10, 1000])
def test_softmax_loss_matches_log_softmax(classes, dtype, rng):
    x = (5 * rng.standard_normal((16, classes))).astype(dtype)
    y = rng.integers(0, classes, 16)
    loss, dx = layers.softmax_loss(x, y)
    o_loss, o_dx = _softmax_oracle(x, y)
    assert dx.dtype == dtype and isinstance(loss, float)
    assert loss == pytest.approx(o_loss, rel=_tol(dtype))
    assert_allclose(dx, o_dx, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=_tol(dtype))


def test_softmax_loss_of_huge_and_integer_scores(rng):
    x = np.array([[1000.0, 0.0, -1000.0], [3e38, 3e38, 0.0]], dtype=np.float32)
    loss, dx = layers.softmax_loss(x, np.array([0, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(dx))
    assert loss == pytest.approx((0.0 + 3e38 + np.log(2.0)) / 2, rel=1e-6)
    loss, dx = layers.softmax_loss(np.array([[2, 0], [0, 0]]), np.array([0, 1]))
    assert dx.dtype == np.float64
    assert loss == pytest.approx(_softmax_oracle(np.array([[2, 0], [0, 0]]), [0, 1])[0])


@pytest.mark.parametrize("split_bytes, fresh_bytes, split", [
    (1, 10**12, True),  # large enough: one unchunked slice per thread
    (10**12, 10**12, False),  # too small: chunks in one thread
    (1, 1, False)])  # dx is fresh memory: one thread
def test_overlapping_max_pool_backward_splits_its_scatter_only_when_it_pays(
        monkeypatch, split_bytes, fresh_bytes, split):
    """The scatter of overlapping windows (np.add.at, which holds the GIL) runs as one slice per
    thread, each zeroing its own images' pixels, above ``SPLIT_SCATTER_BYTES`` and when dx is
    not fresh memory; else in chunks on one thread. The same gradient either way."""
    H, W, pool_param = POOL_PARAMS["3x3 s2 overlapping"]
    x = np.random.default_rng(4).standard_normal((6, 3, H, W))
    x[:, :, 2, 2] = 9.0  # a maximum shared by the windows around it: their gradients add up
    out, cache = fast_layers.max_pool_forward_fast(x, pool_param)
    dout = np.random.default_rng(5).standard_normal(out.shape)
    want = layers.max_pool_backward_naive(dout, (x, pool_param))
    monkeypatch.setattr(fast_pool, "SPLIT_SCATTER_BYTES", split_bytes)
    monkeypatch.setattr(fast_pool, "FRESH_BYTES", fresh_bytes)
    monkeypatch.setattr(layers, "CHUNK_BYTES", 1)  # chunks of one image where it chunks
    monkeypatch.setattr(parallel, "MIN_WORK", 1)  # (a small batch may split)
    calls = []
    real = fast_pool._scatter
    monkeypatch.setattr(fast_pool, "_scatter", lambda flat, index, *a: (
        calls.append((threading.get_ident(), index.shape[0])), time.sleep(0.05),
        real(flat, index, *a))[2])  # (the sleep: each thread takes a slice)
    parallel.set_num_threads(2)
    try:
        dx = fast_layers.max_pool_backward_fast(dout, cache)
    finally:
        parallel.set_num_threads(None)
    assert_allclose(dx, want, rtol=1e-12, atol=1e-12)
    if split:
        assert sorted(n for _, n in calls) == [3, 3] and len({t for t, _ in calls}) == 2
    else:
        assert [n for _, n in calls] == [1] * 6 and len({t for t, _ in calls}) == 1
