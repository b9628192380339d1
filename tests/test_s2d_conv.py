"""Tests for cs231n_lib/s2d_conv.py (a first layer's convolution - ReLU - 2x2/2 max pooling
computed at the pooling's resolution): the stacked filters and their adjoint, both passes over
a grid of geometries against the three layers run one after the other, ties and non-positive
windows, chunks and threads, which layers take it, and that the fused layer uses it for exactly
those."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from test_conv_relu_pool import _check as check_fused
from test_conv_relu_pool import _three_layers

from cs231n_lib import fast_layers, fast_pool, parallel, s2d_conv

POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _spy(monkeypatch):
    """Count the calls of s2d_conv's two passes."""
    calls = {"forward": 0, "backward": 0}
    for name in calls:
        real = getattr(s2d_conv, name)

        def counted(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(s2d_conv, name, counted)
    return calls


def _check(x, w, b, pad, rng, rtol=1e-12):
    """The fused layer (need_dx=False) against the three layers (test_conv_relu_pool's check);
    returns its cache."""
    return check_fused(x, w, b, {"stride": 1, "pad": pad}, POOL, rng, need_dx=False, rtol=rtol,
                       exact=False)


def _layer(rng, n, C, F, HH, WW, H, W, dtype=np.float64):
    return (rng.standard_normal((n, C, H, W)).astype(dtype),
            rng.standard_normal((F, C, HH, WW)).astype(dtype),
            rng.standard_normal(F).astype(dtype))


def test_filters_adjoint_is_the_transpose_of_filters():
    """<filters(w, b), G> = <w, dw> + <b, db> for (dw, db) = filters_adjoint(G.T)."""
    rng = np.random.default_rng(0)
    for F, C, HH, WW in [(4, 3, 3, 3), (2, 1, 5, 7), (3, 2, 7, 7)]:
        w, b = rng.standard_normal((F, C, HH, WW)), rng.standard_normal(F)
        Ws = s2d_conv.filters(w, b)
        assert Ws.shape == (4 * F, C * (HH + 1) * (WW + 1) + 1)
        G = rng.standard_normal(Ws.shape)
        dw, db = s2d_conv.filters_adjoint(G.T, w.shape)
        assert (dw.shape, db.shape) == (w.shape, b.shape)
        assert np.vdot(Ws, G) == pytest.approx(np.vdot(w, dw) + np.vdot(b, db), rel=1e-12)


def test_filters_are_the_filter_shifted_in_its_frame():
    w = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    Ws = s2d_conv.filters(w, np.array([7.0]))
    frames = Ws[:, :-1].reshape(4, 3, 3)
    assert_array_equal(frames[0], [[1, 2, 0], [3, 4, 0], [0, 0, 0]])  # (a, b) = (0, 0)
    assert_array_equal(frames[1], [[0, 1, 2], [0, 3, 4], [0, 0, 0]])  # (0, 1)
    assert_array_equal(frames[2], [[0, 0, 0], [1, 2, 0], [3, 4, 0]])  # (1, 0)
    assert_array_equal(frames[3], [[0, 0, 0], [0, 1, 2], [0, 3, 4]])  # (1, 1)
    assert_array_equal(Ws[:, -1], 7.0)


def _forward_grid():
    """(n, C, F, HH, WW, H, W, pad): layers whose forward pass s2d_conv computes."""
    for C, (HH, WW), pad, n in itertools.product([1, 2, 3], [(3, 3), (5, 5), (3, 5), (1, 3)],
                                                 [0, 1, 2], [1, 3]):
        H, W = 8 + HH - 1 - 2 * pad, 6 + WW - 1 - 2 * pad  # a conv output of 8 x 6
        if min(H, W) >= 1:
            yield n, C, 3, HH, WW, H, W, pad


def _backward_grid():
    """(n, C, F, HH, WW, H, W, pad): layers whose backward pass s2d_conv computes."""
    for C, (HH, WW), pad in itertools.product([1, 2], [(3, 3), (5, 5), (7, 7), (9, 9), (5, 7)],
                                              [0, 1, 3]):
        H, W = 6 + HH - 1 - 2 * pad, 4 + WW - 1 - 2 * pad  # a conv output of 6 x 4
        if min(H, W) >= 1 and C * HH * WW <= s2d_conv.BACKWARD_MAX_TAPS:  # (9x9 on 2: 162)
            yield 2, C, 4, HH, WW, H, W, pad


FORWARD_GRID = list(_forward_grid())
BACKWARD_GRID = list(_backward_grid())


def test_the_grids_are_large_and_covered_by_the_rules():
    assert len(FORWARD_GRID) >= 60 and len(BACKWARD_GRID) >= 20
    geometry = (2, 2, 2)
    assert all(s2d_conv.forward_applies((F, C, HH, WW), 1, 1, geometry)
               for _, C, F, HH, WW, *_ in FORWARD_GRID)
    assert all(s2d_conv.backward_applies((F, C, HH, WW), 1, 1, geometry)
               for _, C, F, HH, WW, *_ in BACKWARD_GRID)


@pytest.mark.parametrize("g, which", [(g, "forward") for g in FORWARD_GRID]
                         + [(g, "backward") for g in BACKWARD_GRID])
def test_each_pass_is_the_three_layers(g, which, monkeypatch):
    n, C, F, HH, WW, H, W, pad = g
    rng = np.random.default_rng(sum(g))
    calls = _spy(monkeypatch)
    _check(*_layer(rng, n, C, F, HH, WW, H, W), pad, rng)
    assert calls[which] >= 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_passes_keep_the_dtype(dtype, monkeypatch):
    rng = np.random.default_rng(1)
    calls = _spy(monkeypatch)
    _check(*_layer(rng, 4, 2, 5, 5, 5, 12, 12, dtype), 2, rng,
           rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert calls["forward"] >= 1 and calls["backward"] >= 1


def test_reads_a_strided_input_without_padding(monkeypatch):
    rng = np.random.default_rng(2)
    base, w, b = _layer(rng, 6, 2, 3, 5, 5, 26, 22)
    x = base[::2, :, 1::2, ::2][:, :, :12, :10]  # (3, 2, 12, 10): a conv output of 8 x 6
    assert not x.flags.c_contiguous
    calls = _spy(monkeypatch)
    _check(x, w, b, 0, rng)
    assert calls == {"forward": 1, "backward": 1}


@pytest.mark.parametrize("bias, gets_gradient", [(2.0, True), (0.0, False), (-1.0, False)])
def test_ties_and_nonpositive_windows_send_the_gradient_where_the_three_layers_do(
        bias, gets_gradient, monkeypatch):
    """Zero filters make every output pixel the bias: every window a tie, whose gradient goes
    to its first pixel when positive; at 0 and below the ReLU passes none."""
    rng = np.random.default_rng(3)
    x, w, b = _layer(rng, 3, 2, 4, 5, 5, 8, 8)
    w[:] = 0
    b[:] = bias
    calls = _spy(monkeypatch)
    out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, b, {"pad": 2}, POOL)
    assert_array_equal(out, max(bias, 0.0))
    assert_array_equal(cache[1].tap, 0)  # every window's first pixel
    dout = np.ones_like(out)
    _, dw, db = fast_layers.conv_relu_pool_backward_fast(dout, cache, need_dx=False)
    assert_array_equal(db, dout[:, 0].sum() if gets_gradient else 0.0)
    assert calls == {"forward": 1, "backward": 1}
    expected_dw = _three_layers(x, w, b, {"pad": 2}, POOL, dout, need_dx=False)[1][1]
    assert_allclose(dw, expected_dw, rtol=1e-12, atol=1e-12)
    assert np.any(dw != 0) == gets_gradient


@pytest.mark.parametrize("chunk", [1, 2])
def test_chunks_and_threads_change_no_number(chunk, monkeypatch):
    """Two threads and chunks of one or two images (some ragged) against the three layers."""
    rng = np.random.default_rng(4)
    x, w, b = _layer(rng, 7, 3, 4, 5, 5, 8, 8)
    image_bytes = w.shape[0] * 8 * 8 * x.itemsize
    monkeypatch.setattr(fast_pool, "CHUNK_BYTES", chunk * image_bytes)
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    calls = _spy(monkeypatch)
    parallel.set_num_threads(2)
    try:
        cache = _check(x, w, b, 2, rng)
    finally:
        parallel.set_num_threads(None)
    slices = cache[0][5][1]
    assert cache[1].chunk == chunk and len(slices) == 2
    expected = sum(-(-(s.stop - s.start) // chunk) for s in slices)  # one call per chunk
    assert calls == {"forward": expected, "backward": expected}


@pytest.mark.parametrize("w_shape, stride, dilation, geometry, forward, backward", [
    ((32, 3, 3, 3), 1, 1, (2, 2, 2), True, True),    # 3 x 3 on 1 to 8 channels: both
    ((8, 1, 3, 3), 1, 1, (2, 2, 2), True, True),
    ((32, 8, 3, 3), 1, 1, (2, 2, 2), True, True),    # (Winograd's: the fused layer keeps it)
    ((32, 9, 3, 3), 1, 1, (2, 2, 2), False, True),   # 81 taps: backward only
    ((16, 1, 5, 5), 1, 1, (2, 2, 2), True, True),    # 5 x 5 on 1 to 3 channels: both
    ((32, 3, 5, 5), 1, 1, (2, 2, 2), True, True),
    ((32, 4, 5, 5), 1, 1, (2, 2, 2), False, True),   # 100 taps: backward only
    ((32, 6, 5, 5), 1, 1, (2, 2, 2), False, True),   # 150 taps
    ((32, 7, 5, 5), 1, 1, (2, 2, 2), False, False),  # 175 taps
    ((32, 1, 7, 7), 1, 1, (2, 2, 2), True, True),
    ((32, 3, 7, 7), 1, 1, (2, 2, 2), False, True),   # 147 taps: MEC's forward, this backward
    ((32, 1, 9, 9), 1, 1, (2, 2, 2), False, True),
    ((32, 2, 9, 9), 1, 1, (2, 2, 2), False, False),  # 162 taps
    ((32, 3, 1, 3), 1, 1, (2, 2, 2), True, False),   # narrower than 3: forward only
    ((32, 3, 2, 2), 1, 1, (2, 2, 2), True, False),
    ((32, 3, 5, 5), 2, 1, (2, 2, 2), False, False),  # strided
    ((32, 3, 5, 5), 1, 2, (2, 2, 2), False, False),  # dilated
    ((32, 3, 5, 5), 1, 1, (3, 3, 2), False, False),  # overlapping windows
    ((32, 3, 5, 5), 1, 1, (2, 2, 1), False, False),
    ((32, 3, 5, 5), 1, 1, (3, 3, 3), False, False),  # 3x3/3 windows
    ((32, 3, 5, 5), 1, 1, (2, 3, 2), False, False),
])
def test_which_layers_take_the_path(w_shape, stride, dilation, geometry, forward, backward):
    assert s2d_conv.forward_applies(w_shape, stride, dilation, geometry) == forward
    assert s2d_conv.backward_applies(w_shape, stride, dilation, geometry) == backward


@pytest.mark.parametrize("C, K, pool, need_dx, forward, backward", [
    (3, 3, 2, False, True, True),    # ThreeLayerConvNet 32/3/500's first layer
    (3, 7, 2, False, False, True),   # 32/7/100's: MEC forward, this backward
    (1, 5, 2, False, True, True),    # notebook 6's
    (1, 5, 2, True, True, False),    # with dx: the window path's backward pass
    (8, 3, 2, False, False, False),  # Winograd's (it keeps its transforms for the backward)
    (3, 5, 3, False, False, False),  # 3x3/2 windows
])
def test_the_fused_layer_uses_it_for_those_layers_only(C, K, pool, need_dx, forward, backward,
                                                       monkeypatch):
    rng = np.random.default_rng(5)
    size = 8 if pool == 2 else 9
    x, w, b = _layer(rng, 3, C, 4, K, K, size, size, np.float32)
    calls = _spy(monkeypatch)
    pool_param = {"pool_height": pool, "pool_width": pool, "stride": 2}
    out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, b, {"pad": K // 2}, pool_param)
    fast_layers.conv_relu_pool_backward_fast(np.ones_like(out), cache, need_dx=need_dx)
    assert calls == {"forward": int(forward), "backward": int(backward)}
    fast_layers.conv_forward_fast(x, w, b, {"pad": K // 2})  # the plain layer never uses it
    assert calls == {"forward": int(forward), "backward": int(backward)}
