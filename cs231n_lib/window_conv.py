"""The fast convolution's path for filters with few taps: 1 x 1 filters, and any filter whose
C * HH * WW taps are at most ``MAX_TAPS`` (a first layer's 3 x 3 or 5 x 5 filters on 1 to 3
channels, a 2 x 2 stride-2 downsampling on a few channels); and the forward pass of every
strided convolution the gemm path would take (``forward_applies``).

Their im2col matrix has few rows, so what costs is not its copy but everything around the
matrix multiply. This path copies each image's receptive fields exactly (rows (c, i, j),
columns (h_out, w_out): the textbook ``im2col`` of one image, taken from the strided window
view of the padded input) and multiplies image by image, ``W_row @ X[n]``, which writes the
image's output straight into ``out[n]`` in NCHW order. Against the runs layout of
``gemm_conv`` (whose rows are long contiguous runs, which pays when rows are many), it skips
the phase split of a strided input, the garbage columns, the copy of the output out of the wide
matrix and, in the backward pass, the copy of dout into one: dW is the sum over images of
``dout[n] @ X[n].T``, and dx adds ``w.T @ dout[n]`` back tap by tap into the padded gradient
(col2im). Measured single-threaded in float32 (bench/layers.py's first layers, notebook 6's
networks): forward 0.22-0.78x the runs layout's time, dw 0.11-0.87x, up to MAX_TAPS; beyond it
the short rows of the copies make it slower.

A 1 x 1 convolution at stride 1 without padding needs no copy at all: each image (C, H * W)
is its own columns, the bias is added in a pass of its own over the output, and the input's
gradient is ``w.T @ dout[n]`` written straight into dx (``_pointwise``, on enough channels).

Columns are built for a block of images at a time (about ``gemm_conv.BLOCK_BYTES``, in the
backward pass ``gemm_conv.BACKWARD_BLOCK_BYTES``) and dropped: the cache keeps no columns, and
the backward pass builds them again. Every function here works on one slice of the batch;
``fast_layers`` splits the batch across threads.
"""

from __future__ import annotations

import numpy as np

from cs231n_lib import gemm_conv, scratch
from cs231n_lib.im2col import pad_hw, window_view
from cs231n_lib.layers import relu_grad_into, relu_into

# Filters with at most this many taps C * HH * WW take this path (1 x 1 filters whatever C).
# Measured against the runs layout (float32, single thread): faster up to 32 taps in every
# pass, even at 64 (2 x 2 on 16 channels: forward 0.78x, dw 0.87x, with dx 1.13x), slower
# from 72 (3 x 3 on 8 channels, with dx: 1.12x) and 75 (5 x 5 on 3 channels: 1.06-1.17x).
MAX_TAPS = 64
# 1 x 1 convolutions (stride 1, no padding) skip the columns' copy (``_pointwise``) on at least
# POINTWISE_MIN_CHANNELS input channels and at most POINTWISE_MAX_GROWTH filters per channel.
# Measured (2 threads, 64 images, interleaved against the copy): C -> F = 16 -> 16, 32 -> 32,
# 64 -> 64, 256 -> 64, 512 -> 128: forward 0.69-0.97 of the time, backward 0.67-0.94 (float32
# and float64); 8 -> 16 forward 0.79-1.14, backward 0.66-1.02; with four filters per channel
# or more (8 -> 64, 16 -> 64, 64 -> 256) the bias's pass over the output costs more: forward
# 0.95-1.59; on 3 and 4 channels 0.90-1.13.
POINTWISE_MIN_CHANNELS = 8
POINTWISE_MAX_GROWTH = 2


def applies(w_shape) -> bool:
    """True when this path computes a convolution with filters of shape ``w_shape`` fastest."""
    _, C, HH, WW = w_shape
    return HH * WW == 1 or C * HH * WW <= MAX_TAPS


def forward_applies(w_shape, stride: int, dilation: int) -> bool:
    """True when this path computes the forward pass fastest: where ``applies``, and for a
    strided convolution (undilated) whatever its taps, whose backward pass stays on the gemm
    path (neither keeps anything for the backward pass, so the two passes may differ). At a
    stride of 2 or more the runs layout's phase split and garbage columns (6-27% of them on
    the layers measured) cost more than these exact columns. Measured (forward with ReLU, 2
    threads, 3x3, 5x5 and 7x7 filters on 3 to 128 channels, 15 to 31 pixels): float32 0.64-1.00x
    the gemm path's time (one case of 18 1.06x), float64 0.67-0.91x. At stride 1 it is mixed
    (0.89-1.13x), and the runs layout is kept."""
    return applies(w_shape) or (stride > 1 and dilation == 1)


def _block(n: int, K: int, L: int, itemsize: int, backward: bool = False) -> int:
    """Images per block: the columns (K + 1, L) of each image, about ``BLOCK_BYTES`` in all
    (the backward pass: ``BACKWARD_BLOCK_BYTES``)."""
    return gemm_conv.images_per_block(n, (K + 1) * L * itemsize, backward)


def _windows(x, plan):
    """The window view (n, C, HH, WW, H_out, W_out) of x padded (in a scratch buffer)."""
    pad = plan.pad
    if pad:
        n, C, H, W = x.shape
        x = pad_hw(x, pad, out=scratch.array("conv.padded", (n, C, H + 2 * pad, W + 2 * pad),
                                             x.dtype))
    return window_view(x, plan.HH, plan.WW, plan.stride, plan.dilation)


def _columns(win, role: str):
    """Each image's receptive fields of the window view ``win`` (m, C, HH, WW, H_out, W_out) in
    a scratch buffer (m, K + 1, H_out * W_out), as ``w.reshape(F, -1)`` orders the taps, then
    a row of ones (the bias)."""
    m, C, HH, WW, H_out, W_out = win.shape
    K = C * HH * WW
    X = scratch.array(role, (m, K + 1, H_out * W_out), win.dtype)
    X[:, :K].reshape(win.shape)[...] = win
    X[:, K] = 1
    return X


def forward(x, W_row, plan, out, relu=False):
    """Convolution of x (n, C, H, W) into ``out`` (n, F, H_out, W_out). W_row (F, K + 1): the
    filters as rows and the bias as a last column; plan: the convolution's geometry
    (``gemm_conv.Plan``, shared with the gemm path). relu: write max(output, 0) instead."""
    n, F = x.shape[0], W_row.shape[0]
    K, L = plan.K, plan.H_out * plan.W_out
    pointwise = _pointwise(plan, F)
    win = None if pointwise else _windows(x, plan)
    step = _block(n, K, L, x.dtype.itemsize)
    for first in range(0, n, step):
        m = min(step, n - first)
        Y = out[first:first + m].reshape(m, F, L)
        if pointwise:  # the images are their own columns: the bias in a pass of its own
            np.matmul(W_row[:, :K], x[first:first + m].reshape(m, K, L), out=Y)
            Y += W_row[:, K:]
        else:
            np.matmul(W_row, _columns(win[first:first + m], "conv.cols"), out=Y)
        if relu:
            relu_into(Y, Y)


def backward(x, dout, w_row, plan, dx, relu_out=None):
    """Gradients of the convolution of x (n, C, H, W) for upstream dout (n, F, H_out, W_out):
    returns dW_row (F, K + 1) (dw as rows, db in the last column) and, unless dx is None,
    writes the input gradient into dx. w_row: the filters as rows (F, K); plan as in
    ``forward``. relu_out: the output of a ``forward(..., relu=True)``; dout is then the
    gradient of the ReLU's output, and passes where relu_out > 0."""
    n, F, H_out, W_out = dout.shape
    dtype, pad = dout.dtype, plan.pad
    K, L = plan.K, H_out * W_out
    pointwise = _pointwise(plan, F)
    win = None if pointwise else _windows(x.astype(dtype, copy=False), plan)
    dwin, disjoint = None, _disjoint(plan)
    if dx is not None and not pointwise:  # dx's padded buffer, seen through the same windows
        _, C, H, W = x.shape  # (written tap by tap)
        dpad = dx if not pad else scratch.array("conv.dpadded", (n, C, H + 2 * pad, W + 2 * pad),
                                                dtype)
        if not (disjoint and _tiling(plan)):  # pixels no tap writes are zeros
            dpad.fill(0)
        dwin = window_view(dpad, plan.HH, plan.WW, plan.stride, plan.dilation, writeable=True)
    dW_row = np.zeros((F, K + 1), dtype)
    step = _block(n, K, L, dtype.itemsize, backward=True)
    for first in range(0, n, step):
        m = min(step, n - first)
        D = dout[first:first + m].reshape(m, F, L)
        if relu_out is not None:
            D = relu_grad_into(D, relu_out[first:first + m].reshape(m, F, L),
                               scratch.array("conv.drelu", D.shape, dtype))
        if pointwise:
            X = x[first:first + m].reshape(m, K, L).astype(dtype, copy=False)
            per_image = np.matmul(D, X.transpose(0, 2, 1),
                                  out=scratch.array("conv.dW", (m, F, K), dtype))
            dW_row[:, :K] += per_image.sum(axis=0)
            dW_row[:, K] += D.sum(axis=(0, 2))
            if dx is not None:  # each pixel's gradient straight into dx
                np.matmul(w_row.T, D, out=dx[first:first + m].reshape(m, K, L))
            continue
        X = _columns(win[first:first + m], "conv.cols")
        per_image = np.matmul(D, X.transpose(0, 2, 1),
                              out=scratch.array("conv.dW", (m, F, K + 1), dtype))
        dW_row += per_image.sum(axis=0)
        if dwin is not None:
            dX = np.matmul(w_row.T, D, out=scratch.array("conv.dX", (m, K, L), dtype))
            add_taps(dX.reshape(m, *win.shape[1:]), dwin[first:first + m], disjoint)
    if dx is not None and pad:
        dx[...] = dpad[:, :, pad:pad + x.shape[2], pad:pad + x.shape[3]]
    return dW_row


def _pointwise(plan, F: int) -> bool:
    """Whether each image (C, H * W) is its own columns (1 x 1 filters, stride 1, no padding:
    every output pixel reads the one input pixel under it) and the copy into them is skipped,
    the bias then added in a pass of its own over the output: where that pass costs less than
    the copy, on ``POINTWISE_MIN_CHANNELS`` input channels or more and at most
    ``POINTWISE_MAX_GROWTH`` times as many filters."""
    return (plan.HH == plan.WW == plan.stride == 1 and plan.pad == 0
            and POINTWISE_MIN_CHANNELS <= plan.C and F <= POINTWISE_MAX_GROWTH * plan.C)


def _disjoint(plan) -> bool:
    """Whether no two taps of any windows reach the same pixel: the taps of a window span less
    than one stride along each axis (1 x 1 filters; 2 x 2 at stride 2, as in a learned
    downsampling)."""
    d, S = plan.dilation, plan.stride
    return (plan.HH - 1) * d < S and (plan.WW - 1) * d < S


def _tiling(plan) -> bool:
    """Whether the windows' taps reach every pixel of the unpadded input (no padding, no gap
    between taps or between windows): with ``_disjoint``, every pixel exactly once."""
    d, S = plan.dilation, plan.stride
    return (plan.pad == 0 and (d == 1 or (plan.HH == 1 and plan.WW == 1))
            and plan.HH == S and plan.WW == S
            and plan.H == plan.H_out * S and plan.W == plan.W_out * S)


def add_taps(taps, windows, disjoint=False):
    """col2im: add the columns ``taps`` (m, C, HH, WW, H_out, W_out) onto the pixels they were
    copied from, through ``windows``, the writeable window view of the padded gradient. One tap
    (i, j) at a time: a tap's windows do not overlap, so its += loses nothing. ``disjoint``
    (``_disjoint``): no two taps share a pixel either, so each tap is copied, not added."""
    for i in range(taps.shape[2]):
        for j in range(taps.shape[3]):
            if disjoint:
                windows[:, :, i, j] = taps[:, :, i, j]
            else:
                windows[:, :, i, j] += taps[:, :, i, j]
