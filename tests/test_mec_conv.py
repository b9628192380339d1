"""Tests for cs231n_lib/mec_conv.py: the channels-last forward pass of the fused convolution -
ReLU - max pooling for large filters on few channels (over a grid of geometries, in the
pooling's phase order, which filters take it), the NCHW forward pass of gemm-path layers
(``forward_nchw``: the grid, blocks, pieces of large products, which layers take it) and their
weight gradient (``backward_weights``: the grid, blocks, which layers and slices take it, and
the gemm path computing dx alone beside it)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cs231n_lib import conv_dx, fast_layers, gemm_conv, layers, mec_conv, parallel
from cs231n_lib.shapes import conv_geometry


def _geometries():
    """(C, H, W, HH, WW, stride, pad) of small convolutions the conv rule accepts."""
    for C, H, W, HH, WW, S, P in itertools.product([1, 3], [7, 10], [8, 11], [1, 3, 5],
                                                  [2, 5, 7], [1, 2, 3], [0, 1, 3]):
        try:
            conv_geometry((1, C, H, W), (1, C, HH, WW), {"stride": S, "pad": P})
        except ValueError:
            continue
        yield C, H, W, HH, WW, S, P


GEOMETRIES = list(_geometries())


def test_the_grid_is_large_and_varied():
    assert len(GEOMETRIES) > 100
    assert {g[5] for g in GEOMETRIES} == {1, 2, 3} and {g[6] for g in GEOMETRIES} == {0, 1, 3}


@pytest.mark.parametrize("g", GEOMETRIES)
def test_forward_is_the_convolution_channels_last(g):
    C, H, W, HH, WW, S, P = g
    rng = np.random.default_rng(sum(g))
    x = rng.standard_normal((3, C, H, W))
    w = rng.standard_normal((4, C, HH, WW))
    b = rng.standard_normal(4)
    expected, _ = fast_layers.conv_forward_fast(x, w, b, {"stride": S, "pad": P})
    plan = gemm_conv.Plan(C, H, W, HH, WW, S, P, 1, *expected.shape[2:])
    y = np.full((3, *expected.shape[2:], 4), np.nan)
    mec_conv.forward(x, mec_conv.filters(w), b, plan, y)
    assert_allclose(y.transpose(0, 3, 1, 2), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("phases, W", [(2, 8), (3, 9), (4, 8)])
def test_forward_orders_the_columns_by_phase_when_asked(phases, W):
    """phases=p: output column w at (w % p) * (W_out / p) + w // p of each row."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 3, 7, W)), rng.standard_normal((4, 3, 5, 5)), np.ones(4)
    plan = gemm_conv.Plan(3, 7, W, 5, 5, 1, 2, 1, 7, W)
    natural, phased = np.full((2, 7, W, 4), np.nan), np.full((2, 7, W, 4), np.nan)
    mec_conv.forward(x, mec_conv.filters(w), b, plan, natural)
    mec_conv.forward(x, mec_conv.filters(w), b, plan, phased, phases)
    order = [w_ for p in range(phases) for w_ in range(p, W, phases)]
    assert_array_equal(phased, natural[:, :, order])


def test_forward_without_a_bias_leaves_it_to_the_caller():
    """b=None: the convolution alone (the fused pooling adds the bias to the pooled output)."""
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 7, 7)), np.ones(4)
    expected, _ = fast_layers.conv_forward_fast(x, w, 0 * b, {"pad": 3})
    plan = gemm_conv.Plan(3, 9, 8, 7, 7, 1, 3, 1, *expected.shape[2:])
    y = np.full((2, *expected.shape[2:], 4), np.nan)
    mec_conv.forward(x, mec_conv.filters(w), None, plan, y)
    assert_allclose(y.transpose(0, 3, 1, 2), expected, rtol=1e-12, atol=1e-12)


def test_forward_reads_a_strided_input():
    """x a view with steps (the pad-0 path reads it without a copy)."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 3, 14, 16))
    x = base[::2, :, ::2, ::2]  # (2, 3, 7, 8)
    w, b = rng.standard_normal((5, 3, 5, 5)), rng.standard_normal(5)
    expected, _ = fast_layers.conv_forward_fast(np.ascontiguousarray(x), w, b, {"pad": 0})
    plan = gemm_conv.Plan(3, 7, 8, 5, 5, 1, 0, 1, *expected.shape[2:])
    y = np.empty((2, *expected.shape[2:], 5))
    mec_conv.forward(x, mec_conv.filters(w), b, plan, y)
    assert_allclose(y.transpose(0, 3, 1, 2), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w_shape, dilation, takes", [
    ((32, 3, 7, 7), 1, True), ((32, 3, 5, 5), 1, True), ((16, 1, 9, 9), 1, True),
    ((32, 6, 5, 5), 1, True), ((32, 4, 7, 7), 1, True),
    ((32, 7, 5, 5), 1, False),   # rows of 35 numbers
    ((32, 8, 3, 3), 1, False),   # narrow filters
    ((32, 3, 7, 7), 2, False),   # dilated
    ((64, 64, 5, 5), 1, False),  # an inner layer
])
def test_which_filters_take_the_path(w_shape, dilation, takes):
    assert mec_conv.applies(w_shape, dilation) == takes


@pytest.mark.parametrize("C, K, window, used", [
    (3, 7, 2, True), (3, 5, 3, True), (8, 5, 2, False), (3, 3, 2, False),
    (3, 5, 2, False),  # 2x2/2 windows after 5 x 5 filters on 3 channels: s2d_conv's
])
def test_the_fused_layer_uses_it_for_those_filters_only(C, K, window, used, monkeypatch):
    calls = []
    real = mec_conv.forward
    monkeypatch.setattr(mec_conv, "forward", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, C, 8, 8) if window == 2 else (3, C, 9, 9)).astype(np.float32)
    w = rng.standard_normal((6, C, K, K)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    pool = {"pool_height": window, "pool_width": window, "stride": 2}
    out, _ = fast_layers.conv_relu_pool_forward_fast(x, w, b, {"pad": K // 2}, pool)
    assert bool(calls) == used
    s, _ = fast_layers.conv_forward_fast(x, w, b, {"pad": K // 2}, relu=True)
    expected, _ = fast_layers.max_pool_forward_fast(s, pool)
    assert out.dtype == np.float32
    assert_allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    fast_layers.conv_forward_fast(x, w, b, {"pad": K // 2})  # the plain layer never uses it
    assert len(calls) == used


# ------------------------------------------------------------------ forward_nchw (any gemm layer)
@pytest.mark.parametrize("g", GEOMETRIES)
def test_forward_nchw_is_the_convolution(g):
    """Into NCHW memory (filled with NaN first: every pixel is written), with the bias, and
    with the ReLU on every other geometry."""
    C, H, W, HH, WW, S, P = g
    relu = sum(g) % 2 == 0
    rng = np.random.default_rng(sum(g))
    x = rng.standard_normal((3, C, H, W))
    w = rng.standard_normal((4, C, HH, WW))
    b = rng.standard_normal(4)
    expected, _ = layers.conv_forward_naive(x, w, b, {"stride": S, "pad": P})
    if relu:
        expected = np.maximum(expected, 0)
    plan = gemm_conv.Plan(C, H, W, HH, WW, S, P, 1, *expected.shape[2:])
    out = np.full(expected.shape, np.nan)
    mec_conv.forward_nchw(x, mec_conv.filters(w), b, plan, out, relu)
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pieces, bound", [(2, 4 * 147 * 5 - 1), (3, 4 * 49 * 5),
                                           (4, 4 * 49 * 5 - 1), (7, 4 * 21 * 5)])
def test_forward_nchw_adds_up_pieces_of_a_large_product(pieces, bound, monkeypatch):
    """Each row's product cut into runs of whole filter rows (of 7), added up: the same
    convolution (NaN first in the output memory)."""
    monkeypatch.setattr(mec_conv, "MAX_ROW_PRODUCT", bound)
    monkeypatch.setattr(mec_conv, "MIN_PIECE_DEPTH", 1)
    rng = np.random.default_rng(9)
    x, w, b = rng.standard_normal((3, 3, 9, 9)), rng.standard_normal((4, 3, 7, 7)), np.ones(4)
    plan = gemm_conv.Plan(3, 9, 9, 7, 7, 2, 3, 1, 5, 5)
    assert mec_conv._pieces(w.shape, plan.W_out) == pieces
    products = []
    real = np.matmul
    monkeypatch.setattr(mec_conv.np, "matmul", lambda a, *r, **k: products.append(a.shape[1])
                        or real(a, *r, **k))
    out = np.full((3, 4, 5, 5), np.nan)
    mec_conv.forward_nchw(x, mec_conv.filters(w), b, plan, out)
    monkeypatch.setattr(mec_conv.np, "matmul", real)
    assert len(products) == pieces and sum(products) == 147 and all(k % 21 == 0 for k in products)
    expected, _ = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 3})
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("images", [1, 2, 3])
def test_forward_nchw_in_blocks_of_any_size(images, monkeypatch):
    """Blocks of 1 and 2 images (a short last one) and all 3 give the same output."""
    rng = np.random.default_rng(4)
    x, w, b = rng.standard_normal((3, 3, 9, 9)), rng.standard_normal((5, 3, 5, 5)), np.ones(5)
    plan = gemm_conv.Plan(3, 9, 9, 5, 5, 2, 2, 1, 5, 5)
    lowered_per_image = plan.W_out * (9 + 4) * 5 * 3 * 8  # (W_out, H_pad, WW, C) float64
    monkeypatch.setattr(mec_conv, "BLOCK_BYTES", images * lowered_per_image)
    blocks = []
    real = mec_conv._lower
    monkeypatch.setattr(mec_conv, "_lower", lambda x, plan: blocks.append(len(x)) or real(
        x, plan))
    out = np.full((3, 5, 5, 5), np.nan)
    mec_conv.forward_nchw(x, mec_conv.filters(w), b, plan, out)
    assert blocks == [images] * (3 // images) + [3 % images] * (3 % images > 0)
    expected, _ = layers.conv_forward_naive(x, w, b, {"stride": 2, "pad": 2})
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("w_shape, W_out, dilation, takes", [
    ((32, 3, 7, 7), 32, 1, True), ((8, 64, 3, 3), 8, 1, True),
    ((64, 64, 5, 5), 8, 1, True),    # 819,200 multiply-adds per row: one product
    ((64, 3, 7, 7), 64, 1, True),    # 602,112
    ((64, 64, 7, 7), 8, 1, True),    # 1,605,632: two pieces of 1,568 (K 3,136)
    ((128, 128, 3, 3), 8, 1, True),  # 1,179,648: two pieces of 576
    ((64, 3, 7, 7), 112, 1, False),  # 1,053,696: two pieces of 73, too shallow
    ((96, 3, 11, 11), 55, 1, False),  # 1,916,640: two pieces of 181
    ((256, 512, 3, 3), 8, 1, False),  # 9.4M: 10 pieces, more than the 3 filter rows
    ((8, 3, 5, 5), 8, 2, False),     # dilated
])
def test_which_layers_take_forward_nchw(w_shape, W_out, dilation, takes):
    assert mec_conv.nchw_applies(w_shape, W_out, dilation) == takes


# (x shape, w shape, conv_param, pool or None, whether forward_nchw computes the forward pass)
LAYERS = [
    ((2, 3, 9, 9), (4, 3, 7, 7), {"pad": 3}, None, True),  # gemm path (147 taps)
    ((2, 8, 9, 9), (4, 8, 3, 3), {"stride": 2, "pad": 1}, None, True),  # strided gemm path
    ((2, 3, 9, 9), (4, 3, 3, 3), {"pad": 1}, None, False),  # window path (few taps)
    ((2, 8, 9, 9), (4, 8, 3, 3), {"pad": 1}, None, False),  # winograd
    ((2, 16, 9, 9), (16, 16, 5, 5), {"pad": 2}, None, False),  # fft
    ((2, 3, 9, 9), (4, 3, 5, 5), {"pad": 4, "dilation": 2}, None, False),  # dilated gemm
    ((2, 64, 9, 9), (64, 64, 7, 7), {"stride": 2, "pad": 3}, None, True),  # in 2 pieces
    ((2, 3, 40, 40), (256, 3, 7, 7), {"pad": 3}, None, False),  # 2 pieces of 73: shallow
    ((2, 8, 8, 8), (4, 8, 5, 5), {"pad": 2}, 2, True),  # fused pooling, NCHW
    ((2, 3, 8, 8), (4, 3, 7, 7), {"pad": 3}, 2, False),  # fused pooling, channels last
]


@pytest.mark.parametrize("x_shape, w_shape, param, pool, used", LAYERS)
def test_the_fast_layers_use_forward_nchw_for_those_gemm_layers_only(x_shape, w_shape, param,
                                                                     pool, used, monkeypatch):
    calls = []
    real = mec_conv.forward_nchw
    monkeypatch.setattr(mec_conv, "forward_nchw", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(6)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), np.ones(w_shape[0])
    ref, ref_cache = layers.conv_forward_naive(x, w, b, param)
    if pool is None:
        out, cache = fast_layers.conv_forward_fast(x, w, b, param)
    else:
        pool_param = {"pool_height": pool, "pool_width": pool, "stride": pool}
        out, (cache, _) = fast_layers.conv_relu_pool_forward_fast(x, w, b, param, pool_param)
        ref = layers.max_pool_forward_naive(np.maximum(ref, 0), pool_param)[0]
    assert bool(calls) == used
    assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    if used:  # the backward pass is the gemm path's
        assert cache[4] == "gemm"


# ------------------------------------------------------------------ backward_weights (dW)
@pytest.mark.parametrize("g", GEOMETRIES[::2])
def test_backward_weights_is_the_weight_gradient(g):
    """dw and db as the naive layer's, with dout gated by a ReLU's output on every other
    geometry (``relu_out``)."""
    C, H, W, HH, WW, S, P = g
    relu = sum(g) % 2 == 0
    rng = np.random.default_rng(sum(g) + 1)
    x = rng.standard_normal((3, C, H, W))
    w = rng.standard_normal((4, C, HH, WW))
    param = {"stride": S, "pad": P}
    out, cache = layers.conv_forward_naive(x, w, rng.standard_normal(4), param)
    dout = rng.standard_normal(out.shape)
    relu_out = np.maximum(out, 0) if relu else None
    _, dw, db = layers.conv_backward_naive(dout * (out > 0) if relu else dout, cache)
    plan = gemm_conv.Plan(C, H, W, HH, WW, S, P, 1, *out.shape[2:])
    dW_row = mec_conv.backward_weights(x, dout, plan, relu_out)
    assert dW_row.shape == (4, C * HH * WW + 1)
    assert_allclose(dW_row[:, :-1].reshape(w.shape), dw, rtol=1e-10, atol=1e-12)
    assert_allclose(dW_row[:, -1], db, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("images", [1, 2, 5])
def test_backward_weights_in_blocks_of_any_size(images, monkeypatch):
    """Blocks of 1 and 2 images (a short last one) and all 5 give the same gradients."""
    rng = np.random.default_rng(10)
    x, w = rng.standard_normal((5, 3, 9, 9)), rng.standard_normal((4, 3, 5, 5))
    out, cache = layers.conv_forward_naive(x, w, np.zeros(4), {"stride": 2, "pad": 2})
    dout = rng.standard_normal(out.shape)
    plan = gemm_conv.Plan(3, 9, 9, 5, 5, 2, 2, 1, 5, 5)
    monkeypatch.setattr(mec_conv, "BLOCK_BYTES", images * 5 * 13 * 5 * 3 * 8)  # L per image
    blocks = []
    real = mec_conv._lower
    monkeypatch.setattr(mec_conv, "_lower", lambda x, plan: blocks.append(len(x)) or real(
        x, plan))
    dW_row = mec_conv.backward_weights(x, dout, plan)
    assert blocks == [images] * (5 // images) + [5 % images] * (5 % images > 0)
    _, dw, db = layers.conv_backward_naive(dout, cache)
    assert_allclose(dW_row[:, :-1].reshape(w.shape), dw, rtol=1e-10, atol=1e-12)
    assert_allclose(dW_row[:, -1], db, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dx_method", ["phases", "col2im"])
def test_the_gemm_backward_computes_dx_alone_when_asked(dx_method, monkeypatch):
    """``gemm_conv.backward(..., weights=False)``: the same dx, no columns, no dW."""
    monkeypatch.setattr(conv_dx, "applies", lambda plan, F: dx_method == "phases")
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal((3, 6, 11, 11)), rng.standard_normal((5, 6, 3, 3))
    plan = gemm_conv.Plan(6, 11, 11, 3, 3, 2, 1, 1, 6, 6)
    dout = rng.standard_normal((3, 5, 6, 6))
    relu_out = np.maximum(rng.standard_normal(dout.shape), 0)
    w_row = w.reshape(5, -1)
    dx_both, dx_alone = np.full(x.shape, np.nan), np.full(x.shape, np.nan)
    dW_row = gemm_conv.backward(x, dout, w_row, plan, dx_both, relu_out)
    built = []
    monkeypatch.setattr(gemm_conv, "columns", lambda *a: built.append(1))
    assert gemm_conv.backward(x, dout, w_row, plan, dx_alone, relu_out, weights=False) is None
    assert built == []
    assert_array_equal(dx_alone, dx_both)
    _, cache = layers.conv_forward_naive(x, w, np.zeros(5), {"stride": 2, "pad": 1})
    dx, dw, _ = layers.conv_backward_naive(dout * (relu_out > 0), cache)
    assert_allclose(dx_alone, dx, rtol=1e-10, atol=1e-12)
    assert_allclose(dW_row[:, :-1].reshape(w.shape), dw, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n, W_out, dilation, takes", [
    (32, 8, 1, True), (8, 32, 1, True), (64, 16, 1, True),
    (2, 112, 1, False),  # 224 columns per product
    (16, 4, 1, False),   # 64
    (32, 8, 2, False),   # dilated
])
def test_which_slices_take_backward_weights(n, W_out, dilation, takes):
    assert mec_conv.backward_applies(n, W_out, dilation) == takes


# (x shape, w shape, conv_param, pool or None, whether backward_weights computes dW without
# dx and with it)
BACKWARD_LAYERS = [
    ((4, 3, 9, 9), (4, 3, 7, 7), {"pad": 3}, None, (True, True)),  # gemm path, dx by phases
    ((4, 3, 9, 9), (16, 3, 7, 7), {"pad": 3}, None, (True, False)),  # dx by col2im (F > 4C)
    ((4, 8, 9, 9), (4, 8, 3, 3), {"stride": 2, "pad": 1}, None, (True, True)),  # strided
    ((4, 3, 9, 9), (4, 3, 3, 3), {"pad": 1}, None, (False, False)),  # window path
    ((4, 8, 9, 9), (4, 8, 3, 3), {"pad": 1}, None, (False, False)),  # winograd
    ((4, 3, 9, 9), (4, 3, 5, 5), {"pad": 4, "dilation": 2}, None, (False, False)),  # dilated
    ((4, 8, 8, 8), (4, 8, 5, 5), {"pad": 2}, 2, (True, True)),  # fused pooling (no s2d)
]


@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("x_shape, w_shape, param, pool, used", BACKWARD_LAYERS)
def test_the_fast_layers_use_backward_weights_for_those_gemm_layers_only(
        x_shape, w_shape, param, pool, used, need_dx, monkeypatch):
    """With the depth rule met by slices of 2 images (2 threads), the backward pass's dW is
    ``backward_weights``' on the gemm path only, unless col2im computes dx (``conv_dx.applies``
    is false), and every gradient is the naive layer's."""
    monkeypatch.setattr(mec_conv, "MIN_PRODUCT_DEPTH", 2)
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    calls = []
    real = mec_conv.backward_weights
    monkeypatch.setattr(mec_conv, "backward_weights",
                        lambda *a: calls.append(len(a[0])) or real(*a))
    rng = np.random.default_rng(8)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), np.ones(w_shape[0])
    ref, ref_cache = layers.conv_forward_naive(x, w, b, param)
    parallel.set_num_threads(2)
    try:
        if pool is None:
            out, cache = fast_layers.conv_forward_fast(x, w, b, param)
            dout = rng.standard_normal(out.shape)
            grads = fast_layers.conv_backward_fast(dout, cache, need_dx=need_dx)
            d_ref = dout
        else:
            pool_param = {"pool_height": pool, "pool_width": pool, "stride": pool}
            out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, b, param, pool_param)
            dout = rng.standard_normal(out.shape)
            grads = fast_layers.conv_relu_pool_backward_fast(dout, cache, need_dx=need_dx)
            a = np.maximum(ref, 0)
            _, pool_cache = layers.max_pool_forward_naive(a, pool_param)
            d_ref = layers.max_pool_backward_naive(dout, pool_cache) * (ref > 0)
    finally:
        parallel.set_num_threads(None)
    assert calls == ([2, 2] if used[need_dx] else [])
    want = layers.conv_backward_naive(d_ref, ref_cache)
    for got, expected in zip(grads, want, strict=True):
        if got is None:
            assert not need_dx
        else:
            assert_allclose(got, expected, rtol=1e-10, atol=1e-10)
