"""Pure vectorisation helpers: zero padding, sliding windows, im2col and col2im.

Taught in notebook 01_convolution ("Vectorised convolution"). A convolution is a sliding window
plus a multiply-and-sum; ``window_view`` is that window as a zero-copy strided view, ``im2col``
copies every window into one column of a matrix so the whole layer becomes a single matrix
multiply, and ``col2im`` is its adjoint: it adds each column back onto the pixels it came from.

Layouts (fixed letters as in the layers): x is (N, C, H, W); a window view is
(N, C, HH, WW, H_out, W_out); ``im2col`` returns X_col of shape (C * HH * WW, N * H_out * W_out)
whose rows are ordered (c, i, j) -- the order of ``w.reshape(F, -1)`` -- and whose columns are
ordered (n, h_out, w_out).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cs231n_lib.exercise import exercise
from cs231n_lib.shapes import check_int, output_size


def pad_hw(x: np.ndarray, pad: int, out: np.ndarray | None = None) -> np.ndarray:
    """``x`` with ``pad`` zeros on each side of its last two axes: a new array, or ``out``
    (of the padded shape) filled in and returned."""
    pad = check_int(pad, "pad", 0)
    *lead, H, W = x.shape
    shape = (*lead, H + 2 * pad, W + 2 * pad)
    if out is None:
        out = np.empty(shape, dtype=x.dtype)
    elif out.shape != shape:
        raise ValueError(f"out has shape {out.shape}; padding {x.shape} by {pad} needs {shape}")
    if pad:  # zero the border only: the interior is overwritten just below
        out[..., :pad, :] = 0
        out[..., H + pad:, :] = 0
        out[..., pad:H + pad, :pad] = 0
        out[..., pad:H + pad, W + pad:] = 0
    out[..., pad:H + pad, pad:W + pad] = x
    return out


def window_view(x: np.ndarray, HH: int, WW: int, stride: int = 1, dilation: int = 1,
                writeable: bool = False) -> np.ndarray:
    """Strided view of every HH x WW window of an (already padded) x; no data is copied.

    Inputs:
    - x: Array of shape (N, C, H, W).
    - HH, WW: Window height and width (taps).
    - stride: Step between neighbouring windows.
    - dilation: Step between the taps of one window (1 = contiguous window).
    - writeable: Return a writeable view (for scatter-adds into x; entries alias each other
      across windows, so only write one (i, j) tap plane at a time).

    Returns:
    - view: Shape (N, C, HH, WW, H_out, W_out) with
      ``view[n, c, i, j, h, w] = x[n, c, h * stride + i * dilation, w * stride + j * dilation]``.
    """
    N, C, H, W = x.shape
    H_out = output_size(H, HH, stride, 0, dilation, axis="H")  # validates: windows tile x
    W_out = output_size(W, WW, stride, 0, dilation, axis="W")
    sN, sC, sH, sW = x.strides  # bytes between neighbours along each axis of x
    # One step along h moves `stride` rows of x, one step along i moves `dilation` rows, etc.
    return as_strided(x, (N, C, HH, WW, H_out, W_out),
                      (sN, sC, sH * dilation, sW * dilation, sH * stride, sW * stride),
                      writeable=writeable)


@exercise("01_convolution", "Vectorised convolution: im2col")
def im2col(x: np.ndarray, HH: int, WW: int, stride: int = 1, pad: int = 0,
           dilation: int = 1) -> np.ndarray:
    """Copy every receptive field of x into one column of a matrix.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - HH, WW: Filter height and width.
    - stride, pad, dilation: As in conv_param (pad is zero padding per side).

    Returns:
    - X_col: Array of shape (C * HH * WW, N * H_out * W_out); rows ordered (c, i, j), columns
      ordered (n, h_out, w_out). For one 227 x 227 x 3 image and 11 x 11 filters at stride 4
      this is 363 x 3025.
    """
    N, C, _, _ = x.shape
    win = window_view(pad_hw(x, pad), HH, WW, stride, dilation)  # (N, C, HH, WW, H_out, W_out)
    H_out, W_out = win.shape[4:]
    # (C, HH, WW, N, H_out, W_out): the reshape below is where the copy happens
    return win.transpose(1, 2, 3, 0, 4, 5).reshape(C * HH * WW, N * H_out * W_out)


@exercise("01_convolution", "Vectorised convolution: col2im")
def col2im(X_col: np.ndarray, x_shape, HH: int, WW: int, stride: int = 1, pad: int = 0,
           dilation: int = 1) -> np.ndarray:
    """Adjoint of ``im2col``: add every column back onto the input pixels it was copied from.

    Pixels that belong to several receptive fields receive the sum of their entries; this is
    exactly the gradient dx when X_col holds the gradient of the columns.

    Inputs:
    - X_col: Array of shape (C * HH * WW, N * H_out * W_out) laid out as ``im2col`` returns it.
    - x_shape: (N, C, H, W) of the unpadded input.
    - HH, WW, stride, pad, dilation: As passed to ``im2col``.

    Returns:
    - x: Array of shape (N, C, H, W) and X_col's dtype.
    """
    N, C, H, W = x_shape
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=X_col.dtype)
    win = window_view(xp, HH, WW, stride, dilation, writeable=True)
    H_out, W_out = win.shape[4:]
    cols = X_col.reshape(C, HH, WW, N, H_out, W_out).transpose(3, 0, 1, 2, 4, 5)
    for i in range(HH):
        for j in range(WW):
            # one tap plane touches each padded pixel at most once, so += cannot lose updates
            win[:, :, i, j] += cols[:, :, i, j]
    return xp[:, :, pad:pad + H, pad:pad + W].copy()
