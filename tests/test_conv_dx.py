"""Tests for cs231n_lib/conv_dx.py: a convolution's input gradient as one stride-1 convolution
of dout per phase pair (the gemm path's, where ``applies``), each computed from im2col runs or
MEC's way (``by_rows``), and cs231n_lib/conv_phases.py."""

from __future__ import annotations

import numpy as np
import pytest
from layer_cases import conv_geometries
from numpy.testing import assert_allclose

from cs231n_lib import conv_dx, fast_layers, fast_pool, gemm_conv, layers
from cs231n_lib.conv_phases import phase_span
from cs231n_lib.shapes import conv_geometry

# strides 1 to 3, dilations 1 to 3, filters from 1 x 1 to 5 x 4, pads from none to more than
# the filter reaches
GEOMETRIES = list(conv_geometries([7, 8], [6, 11], [1, 2, 3, 5], [1, 3, 4], [1, 2, 3], [0, 1, 3],
                                  [1, 2, 3]))


def _plan(x_shape, w_shape, S, P, d):
    geometry = conv_geometry(x_shape, w_shape, {"stride": S, "pad": P, "dilation": d})
    return fast_layers._plan(x_shape, w_shape, S, P, d, *geometry[3:])


def test_the_grid_has_phases_no_tap_reads_and_pads_beyond_the_filter():
    unread = [g for g in GEOMETRIES
              if any(not p.nk for p in conv_dx.axis_phases(g[2], g[6], g[4], g[5], g[0]))]
    assert unread  # e.g. 1 x 1 filters at stride 2, dilation 2 at stride 2
    assert any(P > (HH - 1) * d for _, _, HH, _, _, P, d in GEOMETRIES)
    assert len(GEOMETRIES) > 300


@pytest.mark.parametrize("size, taps, S, P, d", [(7, 3, 2, 1, 1), (8, 1, 2, 0, 1),
                                                 (11, 4, 3, 3, 2), (6, 5, 1, 0, 1),
                                                 (8, 3, 2, 2, 2)])
def test_the_phases_hold_every_pixel_once_and_their_taps_read_it(size, taps, S, P, d):
    pixels = []
    for phase in conv_dx.axis_phases(taps, d, S, P, size):
        mine = list(range(phase.first, size, S))
        assert len(mine) == phase.count
        pixels += mine
        for u, y in enumerate(mine):
            # the taps that read padded pixel y + P: t * d == y + P - o * S for an output o
            reading = sorted(t for t in range(taps) if (y + P - t * d) % S == 0)
            assert sorted(range(taps)[phase.taps] if phase.nk else []) == reading
            for k in range(phase.nk):  # tap taps[nk - 1 - k], from output start + u + k * step
                t = range(taps)[phase.taps][phase.nk - 1 - k]
                assert (phase.start + u + k * phase.step) * S + t * d == y + P
    assert sorted(pixels) == list(range(size))
    assert [p.first for p in conv_dx.axis_phases(taps, d, S, P, size)] == \
        [phase_span(a, size, S, P)[0] for a in range(S) if phase_span(a, size, S, P)[2]]


def _methods():
    """(geometry, "runs" or "rows") for every geometry, "rows" where ``rows_possible``."""
    for g in GEOMETRIES:
        H, W, HH, WW, S, P, d = g
        yield g, "runs"
        if conv_dx.rows_possible(_plan((1, 3, H, W), (4, 3, HH, WW), S, P, d).dx):
            yield g, "rows"


METHODS = list(_methods())


def test_both_methods_cover_many_geometries():
    rows = [g for g, method in METHODS if method == "rows"]
    assert len(rows) > 100 and {g[4] for g in rows} == {1, 2, 3}
    assert any(g[6] > 1 for g in rows)  # dilated, where every phase has one tap


@pytest.mark.parametrize("g, method", METHODS)
def test_the_gradient_by_phases_is_the_naive_one_and_writes_every_pixel(g, method,
                                                                         monkeypatch):
    monkeypatch.setattr(conv_dx, "by_rows", lambda dx_plan, C, F: method == "rows")
    H, W, HH, WW, S, P, d = g
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, H, W)), rng.standard_normal((4, 3, HH, WW))
    out, cache = layers.conv_forward_naive(x, w, np.zeros(4), {"stride": S, "pad": P,
                                                                "dilation": d})
    dout = rng.standard_normal(out.shape)
    plan = _plan(x.shape, w.shape, S, P, d)
    dx_plan = conv_dx.DxPlan.of(plan)
    filters = conv_dx.filters(w, dx_plan)
    assert filters.by_rows == (method == "rows")
    dpad, inner = conv_dx.padded_dout(2, 4, plan, dx_plan, np.float64, filters.by_rows)
    dpad.fill(np.nan)  # the pads must be written as zeros
    dpad, inner = conv_dx.padded_dout(2, 4, plan, dx_plan, np.float64, filters.by_rows)
    inner[...] = dout
    dx = np.full(x.shape, np.nan)  # every pixel must be written
    conv_dx.input_gradient(dpad, filters, dx_plan, dx)
    assert_allclose(dx, layers.conv_backward_naive(dout, cache)[0], rtol=1e-10, atol=1e-12)


def test_no_phase_pair_is_not_computed_by_rows():
    """1 x 1 filters at stride 2 over one pixel that only the padding's phase holds: no tap
    reads it, no phase pair is computed, and the rule says so without failing."""
    plan = _plan((1, 3, 1, 1), (4, 3, 1, 1), 2, 1, 1)
    assert plan.dx.pairs == [] and conv_dx.rows_possible(plan.dx)
    assert conv_dx.by_rows(plan.dx, 3, 4) is False
    assert conv_dx.filters(np.ones((4, 3, 1, 1)), plan.dx).mats == []


@pytest.mark.parametrize("C, F, HH, S, d, W_out, expected", [
    (8, 16, 5, 1, 1, 28, True),  # stride 1: one phase of 25 taps
    (64, 64, 5, 2, 1, 8, True),  # 6.25 taps per phase pair
    (64, 64, 4, 2, 1, 8, True),  # 4
    (64, 64, 3, 2, 1, 8, False),  # 2.25
    (64, 64, 5, 3, 1, 8, False),  # 2.8
    (64, 64, 3, 1, 2, 8, False),  # dilated (phases of steps 2)
    (128, 128, 7, 2, 1, 8, False),  # 2.1M multiply-adds per row
])
def test_which_layers_take_the_gradient_by_rows(C, F, HH, S, d, W_out, expected):
    P = d * (HH - 1) // 2
    H = S * (W_out - 1) + d * (HH - 1) + 1 - 2 * P
    plan = _plan((1, C, H, H), (F, C, HH, HH), S, P, d)
    assert plan.W_out == W_out
    assert conv_dx.by_rows(plan.dx, C, F) is expected


@pytest.mark.parametrize("C, F, HH, S, d, expected", [
    (64, 64, 3, 2, 1, True),  # bench/layers.py's inner layers
    (32, 64, 5, 2, 1, True),  # C = F / 2
    (16, 64, 3, 2, 1, False),  # few channels against many filters: col2im
    (16, 64, 5, 2, 1, True),  # C = F / 4, by rows (6.25 taps per phase pair)
    (8, 64, 5, 2, 1, False),  # C = F / 8
    (3, 32, 7, 2, 1, False),  # a first layer
    (64, 64, 2, 2, 1, False),  # 2 x 2 at stride 2: each pixel read once
    (64, 64, 1, 2, 1, False),  # 1 x 1
    (64, 64, 3, 1, 2, True)])  # dilated
def test_applies_to_overlapping_filters_on_many_channels(C, F, HH, S, d, expected):
    P = d * (HH - 1) // 2 if S == 1 else 0
    H = 16 if S == 1 else 2 * 7 + d * (HH - 1) - 2 * P + 1
    assert conv_dx.applies(_plan((1, C, H, H), (F, C, HH, HH), S, P, d), F) is expected


@pytest.mark.parametrize("C, F, expected", [(64, 64, "phases"), (16, 64, "col2im")])
def test_the_gemm_path_takes_the_method_applies_picks(C, F, expected, monkeypatch):
    calls = []
    original = conv_dx.input_gradient
    monkeypatch.setattr(conv_dx, "input_gradient",
                        lambda *a: calls.append("phases") or original(*a))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, C, 9, 9)).astype(np.float32)
    w = rng.standard_normal((F, C, 3, 3)).astype(np.float32)
    out, cache = fast_layers.conv_forward_fast(x, w, np.zeros(F, np.float32),
                                               {"stride": 2, "pad": 1})
    assert cache[4] == "gemm"
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = fast_layers.conv_backward_fast(dout, cache)[0]
    assert (calls[:1] or ["col2im"]) == [expected]
    _, ref_cache = layers.conv_forward_naive(x.astype(float), w.astype(float), np.zeros(F),
                                             {"stride": 2, "pad": 1})
    assert_allclose(dx, layers.conv_backward_naive(dout.astype(float), ref_cache)[0],
                    rtol=1e-4, atol=1e-4)
    assert fast_layers.conv_backward_fast(dout, cache, need_dx=False)[0] is None
    assert len(calls) <= 1  # need_dx=False computes no input gradient


def test_gemm_backward_without_dx_skips_the_phases(monkeypatch):
    monkeypatch.setattr(conv_dx, "input_gradient", lambda *a: pytest.fail("dx computed"))
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 8, 9, 9)), rng.standard_normal((8, 8, 3, 3))
    plan = _plan(x.shape, w.shape, 2, 1, 1)
    dout = rng.standard_normal((2, 8, 5, 5))
    assert gemm_conv.backward(x, dout, w.reshape(8, -1), plan, None).shape == (8, 73)


def test_the_filters_are_made_once_per_backward_pass_whatever_the_chunks(monkeypatch):
    """A pooled convolution's backward pass runs chunk by chunk; the phases' filters are the
    same for all chunks and slices, so they are made once."""
    monkeypatch.setattr(fast_pool, "CHUNK_BYTES", 1)  # one image per chunk
    made = []
    original = conv_dx.filters
    monkeypatch.setattr(conv_dx, "filters", lambda *a: made.append(1) or original(*a))
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((6, 8, 10, 10)), rng.standard_normal((4, 8, 5, 5))
    param, pool = {"pad": 2}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, np.zeros(4), param, pool)
    assert cache[0][4] == "gemm" and cache[1].chunk == 1
    dx = fast_layers.conv_relu_pool_backward_fast(np.ones_like(out), cache)[0]
    assert made == [1]
    s, conv_cache = layers.conv_forward_naive(x, w, np.zeros(4), param)
    r, relu_cache = layers.relu_forward(s)
    _, pool_cache = layers.max_pool_forward_naive(r, pool)
    ds = layers.relu_backward(layers.max_pool_backward_naive(np.ones_like(out), pool_cache),
                              relu_cache)
    assert_allclose(dx, layers.conv_backward_naive(ds, conv_cache)[0], rtol=1e-10, atol=1e-12)
