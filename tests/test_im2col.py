"""Tests for cs231n_lib/im2col.py: window views, im2col shapes and values, col2im adjointness."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cs231n_lib.im2col import col2im, im2col, pad_hw, window_view

# (x shape, HH, WW, stride, pad, dilation)
GEOMETRIES = {
    "3x3 s1 p1": ((2, 3, 5, 5), 3, 3, 1, 1, 1),
    "3x3 s2 p1": ((2, 2, 7, 7), 3, 3, 2, 1, 1),
    "2x4 s1 p0 non-square": ((1, 2, 5, 6), 2, 4, 1, 0, 1),
    "3x3 dilation 2": ((2, 2, 7, 7), 3, 3, 1, 1, 2),
    "1x1 s2": ((2, 3, 5, 5), 1, 1, 2, 0, 1),
    "5x3 s3 p2 H != W": ((1, 2, 7, 11), 5, 3, 3, 2, 1),
}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_alexnet_conv1_column_matrix_is_363_by_3025(rng):
    """One 227 x 227 x 3 image, 11 x 11 filters at stride 4: X_col is [363 x 3025]."""
    x = rng.standard_normal((1, 3, 227, 227)).astype(np.float32)
    X_col = im2col(x, 11, 11, stride=4)
    assert X_col.shape == (363, 3025)
    assert X_col.dtype == np.float32
    # column 0 is the top-left receptive field, flattened in (c, i, j) order like w.reshape(F, -1)
    assert_array_equal(X_col[:, 0], x[0, :, :11, :11].ravel())
    # the last column is the bottom-right field: rows and columns 4 * 54 ... 4 * 54 + 10
    assert_array_equal(X_col[:, -1], x[0, :, 216:227, 216:227].ravel())


@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_im2col_columns_are_the_receptive_fields(geometry, rng):
    """Every column equals the dilated, strided window of the padded input it stands for."""
    shape, HH, WW, stride, pad, dilation = geometry
    x = rng.standard_normal(shape)
    X_col = im2col(x, HH, WW, stride, pad, dilation)
    N, C, H, W = shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out = (H + 2 * pad - dilation * (HH - 1) - 1) // stride + 1
    W_out = (W + 2 * pad - dilation * (WW - 1) - 1) // stride + 1
    assert X_col.shape == (C * HH * WW, N * H_out * W_out)
    for n in range(N):
        for h in range(H_out):
            for w in range(W_out):
                field = xp[n, :, h * stride:h * stride + dilation * (HH - 1) + 1:dilation,
                           w * stride:w * stride + dilation * (WW - 1) + 1:dilation]
                assert_array_equal(X_col[:, (n * H_out + h) * W_out + w], field.ravel())


@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_col2im_is_the_adjoint_of_im2col(geometry, rng):
    """<im2col(x), Y> == <x, col2im(Y)> for random x and Y."""
    shape, HH, WW, stride, pad, dilation = geometry
    x = rng.standard_normal(shape)
    X_col = im2col(x, HH, WW, stride, pad, dilation)
    Y = rng.standard_normal(X_col.shape)
    back = col2im(Y, shape, HH, WW, stride, pad, dilation)
    assert back.shape == shape
    assert_allclose(np.vdot(X_col, Y), np.vdot(x, back), rtol=1e-12)


def test_col2im_of_ones_counts_the_windows_covering_each_pixel():
    """3x3 windows at stride 1, pad 1 on a 4x4 image: corners are in 4 windows, inner pixels
    in 9, edge pixels in 6."""
    X_col = np.ones((9, 16))
    counts = col2im(X_col, (1, 1, 4, 4), 3, 3, stride=1, pad=1)[0, 0]
    expected = np.array([[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])
    assert_array_equal(counts, expected)


def test_window_view_is_a_view_with_the_documented_indexing(rng):
    x = rng.standard_normal((2, 3, 9, 9))
    win = window_view(x, 3, 2, stride=2, dilation=2)
    assert win.shape == (2, 3, 3, 2, 3, 4)
    assert np.shares_memory(win, x)
    n, c, i, j, h, w = 1, 2, 2, 1, 2, 1
    assert win[n, c, i, j, h, w] == x[n, c, h * 2 + i * 2, w * 2 + j * 2]
    assert not win.flags.writeable


def test_pad_hw_pads_only_the_spatial_axes_and_copies(rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    xp = pad_hw(x, 2)
    assert xp.shape == (2, 3, 8, 9) and xp.dtype == np.float32
    assert_array_equal(xp[:, :, 2:6, 2:7], x)
    assert not xp[:, :, :2].any() and not xp[:, :, :, -2:].any()
    assert not np.shares_memory(xp, x)


def test_im2col_and_col2im_keep_the_dtype_and_do_not_mutate(rng):
    x = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    x_before = x.copy()
    X_col = im2col(x, 3, 3, 1, 1)
    assert X_col.dtype == np.float32
    assert_array_equal(x, x_before)
    Y = rng.standard_normal(X_col.shape).astype(np.float32)
    Y_before = Y.copy()
    assert col2im(Y, x.shape, 3, 3, 1, 1).dtype == np.float32
    assert_array_equal(Y, Y_before)


@pytest.mark.parametrize("call, match", [
    (lambda x: im2col(x, 3, 3, stride=2, pad=0), "stride=2 does not tile"),
    (lambda x: im2col(x, 7, 3, stride=1, pad=0), "larger than the padded input"),
    (lambda x: window_view(x, 3, 3, stride=0), "stride=0 must be >= 1"),
    (lambda x: pad_hw(x, -1), "pad=-1 must be >= 0"),
])
def test_invalid_geometry_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(np.zeros((1, 1, 6, 6)))


def test_pad_hw_into_a_given_array_matches_np_pad(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    out = np.full((2, 3, 8, 9), np.nan)  # garbage in: every entry must be written
    got = pad_hw(x, 2, out=out)
    assert got is out
    np.testing.assert_array_equal(got, np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)]))
    np.testing.assert_array_equal(pad_hw(x, 0, out=np.empty_like(x)), x)
    with pytest.raises(ValueError, match=r"out has shape \(2, 3, 8, 8\).*needs \(2, 3, 8, 9\)"):
        pad_hw(x, 2, out=np.empty((2, 3, 8, 8)))
