"""Tests for cs231n_lib/planes.py: col2im through phase planes equals the textbook col2im for
every geometry it applies to, and the fast convolution's backward pass uses it there."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

from cs231n_lib import fast_layers, planes
from cs231n_lib.im2col import col2im
from cs231n_lib.shapes import conv_geometry


def geometries():
    """Every (H, W, HH, WW, stride, pad, dilation) of a small grid that ``applies`` accepts
    and whose windows tile the padded input: odd and even sizes, square and not, taps that
    overflow the plane width and taps that do not, pad 0 to 2 (so overflowing pixels land in
    the padding as well as in the image)."""
    grid = itertools.product([5, 8, 9], [5, 6, 9, 10], [1, 2, 3, 4], [1, 2, 3, 4], [2, 3],
                             [0, 1, 2], [1, 2])
    for H, W, HH, WW, S, P, d in grid:
        if not planes.applies(S, d, WW):
            continue
        try:
            conv_geometry((1, 1, H, W), (1, 1, HH, WW), {"stride": S, "pad": P, "dilation": d})
        except ValueError:  # windows do not tile this input
            continue
        yield H, W, HH, WW, S, P, d


def test_the_grid_covers_overflow_and_plain_geometries():
    overflowing = [g for g in geometries() if (g[3] - 1) * g[6] >= g[4]]
    assert len(overflowing) > 20
    assert len(list(geometries())) - len(overflowing) > 20


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_add_columns_equals_col2im(dtype):
    rng = np.random.default_rng(0)
    N, C = 2, 3
    checked = 0
    for H, W, HH, WW, S, P, d in geometries():
        *_, H_out, W_out = conv_geometry((N, C, H, W), (1, C, HH, WW),
                                         {"stride": S, "pad": P, "dilation": d})
        dX = rng.standard_normal((N, C * HH * WW, H_out, W_out)).astype(dtype)
        # col2im takes X_col (C*HH*WW, N*H_out*W_out): columns ordered (n, h_out, w_out)
        expected = col2im(dX.transpose(1, 0, 2, 3).reshape(C * HH * WW, -1), (N, C, H, W),
                          HH, WW, S, P, d)
        out = np.full((N, C, H, W), np.nan, dtype=dtype)  # every pixel must be written
        layout = planes.Layout(N, C, H, W, HH, WW, S, P, d, H_out, W_out)
        planes.add_columns(dX.copy(), layout, out)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        assert_allclose(out, expected, rtol=tol, atol=tol,
                        err_msg=f"H, W, HH, WW, stride, pad, dilation = {H, W, HH, WW, S, P, d}")
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("stride, dilation, WW, expected", [
    (1, 1, 3, False),  # stride 1: no strided adds to save
    (2, 1, 3, True),  # the CS231n notebook's layer
    (2, 1, 1, True),
    (2, 2, 3, False),  # taps 4 apart at stride 2: two columns overflow
    (3, 1, 5, True),
    (4, 1, 11, False),  # AlexNet's conv1
])
def test_applies(stride, dilation, WW, expected):
    assert planes.applies(stride, dilation, WW) is expected


def test_the_fast_backward_pass_uses_the_planes_for_strided_layers(monkeypatch):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((4, 3, 9, 9)), rng.standard_normal((2, 3, 3, 3)), np.zeros(2)
    calls = []
    add_columns = planes.add_columns
    monkeypatch.setattr(planes, "add_columns",
                        lambda *args: calls.append(args[1]) or add_columns(*args))
    for conv_param, used in (({"stride": 2, "pad": 1}, True), ({"stride": 1, "pad": 1}, False)):
        calls.clear()
        out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
        fast_layers.conv_backward_fast(np.ones_like(out), cache)
        assert bool(calls) is used, conv_param
