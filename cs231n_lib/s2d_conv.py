"""Convolution - ReLU - 2 x 2 max pooling of a first layer computed at the pooling's resolution
(space-to-depth), for ``fast_layers.conv_relu_pool_forward_fast`` and its backward pass.

A 2 x 2 max pooling (stride 2) keeps the largest of four convolution outputs of each window,
pixels (2h + a, 2w + b) for a, b in {0, 1}. At stride 1, output pixel (2h + a, 2w + b) reads the
padded input from row 2h + a, column 2w + b: so all four pixels of window (h, w) read one
(HH + 1) x (WW + 1) patch at (2h, 2w), each through the filter shifted by (a, b) inside that
patch (zeros around it). Stacked, the four shifted copies of the F filters are 4F filters of
(HH + 1) x (WW + 1) taps (``filters``), and the layer is ONE convolution of them at stride 2:
its output channel (a, b, f) at (h, w) is the layer's output f at (2h + a, 2w + b). The four
taps of every pooling window are then four whole planes of the output: the pooling is three
elementwise maxima over planes (``fast_pool.PooledBlocks.forward_taps``), with no strided pass
over the convolution's output and no copy of it.

It costs (HH + 1)(WW + 1) / (HH * WW) times the multiply-adds (1.31x for 7 x 7 filters, 1.44x
for 5 x 5, 1.78x for 3 x 3), which the shape of the work pays back on a first layer: the product
has 4F rows instead of F (OpenBLAS runs a product of 32 rows far below its peak), a quarter of
the columns, and its columns are (HH + 1)(WW + 1) / 4 copies of the input instead of HH * WW.
The backward pass (weights and bias only: a first layer's input needs no gradient) is as
simple: the gradient of each pooled pixel, where it passed the ReLU, goes to the plane of its
window's first maximum (four elementwise products with that plane's mask, instead of a scatter
onto a zeroed full-size gradient), one product per chunk gives the gradient of the stacked
filters, and the gradient of a filter is the sum of its four shifted copies'
(``filters_adjoint``).

Which layers it takes, and the times measured against the paths it replaces: at
``FORWARD_MAX_TAPS`` below. Every function here works on one chunk of the batch;
``fast_layers`` splits the batch across threads and chunks (``parallel``,
``fast_pool.PooledBlocks.chunk``).
"""

from __future__ import annotations

import numpy as np

from cs231n_lib import scratch
from cs231n_lib.im2col import pad_hw, window_view
from cs231n_lib.layers import relu_grad_into

# The pooling this path computes: 2 x 2 windows at stride 2 (S x S windows at stride S would
# cost (HH + S - 1)(WW + S - 1) / (HH * WW) the multiply-adds).
S = 2
# Which layers take this path: measured with two threads (the library's default) on batches
# of 50 to 128 images, interleaved against the fused paths it replaces (time ratios; float32 and
# float64 alike within about 0.1):
# - the forward pass, filters of at most FORWARD_MAX_TAPS taps C * HH * WW: 3 x 3 on 1 to 4
#   channels 0.80-0.91 of the window path's time, 5 x 5 on 1 to 3 channels 0.76-1.01, 7 x 7 on
#   one channel 0.73-0.79 of MEC's; beyond it 1.02-1.12 (7 x 7 on 2 and 3 channels, 5 x 5 on 4
#   and 6, 3 x 3 on 6), 9 x 9 on 3 channels 0.99-1.02;
# - the backward pass without dx, filters of at least 3 x 3 and at most BACKWARD_MAX_TAPS taps:
#   3 x 3 on 1 to 6 channels 0.79-0.99 of the window path's time, 5 x 5 on 1 to 6 channels
#   0.76-0.86 and 7 x 7 on 3 channels 0.71-0.74 of the gemm path's, 9 x 9 on one channel
#   0.64-0.68. (On one thread the gain is smaller: 3 x 3 breaks even.)
FORWARD_MAX_TAPS = 75
BACKWARD_MAX_TAPS = 150


def forward_applies(w_shape, stride: int, dilation: int, pool_geometry) -> bool:
    """True when this path computes the forward pass of a convolution of filters ``w_shape``
    (at ``stride`` and ``dilation``), ReLU and the max pooling of ``pool_geometry``
    (``shapes.pool_geometry``'s tuple)."""
    _, C, HH, WW = w_shape
    return _computes(stride, dilation, pool_geometry) and C * HH * WW <= FORWARD_MAX_TAPS


def backward_applies(w_shape, stride: int, dilation: int, pool_geometry) -> bool:
    """True when this path computes the backward pass (without the input's gradient) of such a
    layer."""
    _, C, HH, WW = w_shape
    return (_computes(stride, dilation, pool_geometry) and min(HH, WW) >= 3
            and C * HH * WW <= BACKWARD_MAX_TAPS)


def _computes(stride, dilation, pool_geometry):
    """Whether this path computes a convolution at ``stride`` and ``dilation`` followed by the
    max pooling of ``pool_geometry``: stride 1, no dilation, S x S windows at stride S."""
    ph, pw, pool_stride = pool_geometry[:3]
    return stride == 1 and dilation == 1 and ph == pw == pool_stride == S


def filters(w, b):
    """The stacked filters as rows, Ws (S * S * F, C * (HH + S - 1) * (WW + S - 1) + 1): row
    (a, b, f) is filter f shifted by (a, b) inside the (HH + S - 1) x (WW + S - 1) frame, then
    its bias (the columns end with a row of ones)."""
    F, C, HH, WW = w.shape
    Ws = np.zeros((S, S, F, C * (HH + S - 1) * (WW + S - 1) + 1), w.dtype)
    frames = Ws[..., :-1].reshape(S, S, F, C, HH + S - 1, WW + S - 1)
    for a in range(S):
        for c in range(S):
            frames[a, c, :, :, a:a + HH, c:c + WW] = w
    Ws[..., -1] = b
    return Ws.reshape(S * S * F, -1)


def filters_adjoint(dWs, w_shape):
    """(dw, db) from the gradient dWs (K + 1, S * S * F) of the stacked filters (transposed, as
    ``backward`` returns it): the adjoint of ``filters``."""
    F, C, HH, WW = w_shape
    frames = dWs[:-1].T.reshape(S, S, F, C, HH + S - 1, WW + S - 1)
    dw = np.zeros(w_shape, dWs.dtype)
    for a in range(S):
        for c in range(S):
            dw += frames[a, c, :, :, a:a + HH, c:c + WW]
    return dw, dWs[-1].reshape(S * S, F).sum(axis=0)


def _columns(x, w_shape, pad):
    """The stride-S columns of the padded x (m, C, H, W) for the stacked filters, in a scratch
    buffer (K + 1, m * Hq * Wq), rows (c, i, j) then a row of ones, columns (image, h, w); and
    (Hq, Wq), the pooled output's size."""
    m, C, H, W = x.shape
    _, _, HH, WW = w_shape
    if pad:
        x = pad_hw(x, pad, out=scratch.array("s2d.padded", (m, C, H + 2 * pad, W + 2 * pad),
                                             x.dtype))
    win = window_view(x, HH + S - 1, WW + S - 1, S)  # (m, C, KH, KW, Hq, Wq)
    Hq, Wq = win.shape[-2:]
    K = C * (HH + S - 1) * (WW + S - 1)
    X = scratch.array("s2d.cols", (K + 1, m * Hq * Wq), x.dtype)
    np.copyto(X[:K].reshape(win.shape[1:4] + (m, Hq, Wq)), win.transpose(1, 2, 3, 0, 4, 5))
    X[K] = 1
    return X, (Hq, Wq)


def forward(x, Ws, w_shape, pad, pooled, start):
    """Convolution of x (m, C, H, W), images start.. of the batch, with ``filters(w, b)`` Ws,
    ReLU and pooling into ``pooled`` (``fast_pool.PooledBlocks``)."""
    F, m = w_shape[0], x.shape[0]
    X, (Hq, Wq) = _columns(x, w_shape, pad)
    Y = np.matmul(Ws, X, out=scratch.array("s2d.out", (S * S * F, X.shape[1]), x.dtype))
    planes = Y.reshape(S * S, F, m, Hq, Wq).transpose(0, 2, 1, 3, 4)  # (tap, image, f, h, w)
    pooled.forward_taps(start, list(planes))


def backward(x, dout, out, tap, w_shape, pad):
    """The gradient dWs (K + 1, S * S * F) of the stacked filters, for images x (m, C, H, W) of
    the batch: dout, out and tap are those images' gradient of the pooled output, pooled
    output and first-maximum taps (``fast_pool.PooledBlocks``)."""
    F, m = w_shape[0], x.shape[0]
    X, (Hq, Wq) = _columns(x, w_shape, pad)
    g = relu_grad_into(dout.transpose(1, 0, 2, 3), out.transpose(1, 0, 2, 3),
                       scratch.array("s2d.grad", (F, m, Hq, Wq), dout.dtype))
    dY = scratch.array("s2d.dout", (S * S, F, m, Hq, Wq), dout.dtype)
    taps = tap.transpose(1, 0, 2, 3)
    for k in range(S * S):
        np.equal(taps, k, out=dY[k])  # 1 where tap k holds the window's first maximum, else 0
        dY[k] *= g
    return X @ dY.reshape(S * S * F, -1).T
