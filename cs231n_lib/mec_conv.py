"""A channels-last forward pass for the fused convolution - ReLU - max pooling of a first layer
with large filters on few channels (a 7 x 7 or 5 x 5 convolution of RGB images): the input
lowered along W only, then one small matrix multiply per output row.

This is MEC (Cho and Brand, "MEC: Memory-efficient Convolution for Deep Neural Network", 2017).
Im2col copies every receptive field: HH * WW copies of the input (49 for 7 x 7). MEC copies
each image's padded rows WW times only, into L (W_out, H_pad, WW, C): L[w, r, j, c] is pixel
(c, r, w * stride + j). The receptive field of output pixel (h, w) is then ONE contiguous run
of L, rows h * stride to h * stride + HH - 1 of L[w], laid out (i, j, c) as the filters'
matrix ``Wm`` (HH * WW * C, F) expects; and the output pixels of an output row h, one per w,
are runs a fixed distance apart. So a whole output row is one matrix multiply (W_out, K) @
(K, F) on a strided view of L, with no copy, and numpy runs all rows of all images in one
stacked ``matmul`` call: OpenBLAS's small-matrix kernels ran it at 155 GFLOP/s per core
(float32, 7 x 7 on 3 channels, this project's machine), against ~106 for the gemm path's one
large product, which also computes the garbage columns of its runs layout. The input is padded
channels last first, so that each row r of L[w] is one run of WW * C pixels of it: against
lowering the NCHW input, whose runs are WW long, the forward pass takes 0.77-0.90 of the time in
float32 and 0.87-1.02 in float64 (5 x 5 and 7 x 7 filters on 3 and 6 channels, one thread).

The output comes channels-last, (n, H_out, W_out, F): no use to a layer that must return NCHW
(copying it there took back what the product saved), but the fused pooling pools it in that
layout and copies out only the pooled quarter (``fast_pool.PooledBlocks``). The backward pass
is the gemm path's (``gemm_conv.backward``; without dx, under 2x2/2 windows, ``s2d_conv``'s): the
same convolution, rounded differently.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cs231n_lib import scratch
from cs231n_lib.im2col import pad_hw

# Filters at least MIN_WIDTH wide whose rows C * WW are at most MAX_ROW long take this path (in
# the fused pooling, for filters the gemm path would compute): 5 x 5 to 9 x 9 on 1 to 6
# channels. Measured against the fused gemm path, one thread, float32: 0.69-0.92 of its time
# (7 x 7 on 3 and 4 channels 0.69-0.70, at stride 2 0.77; 5 x 5 on 3 and 6 channels 0.78-0.82;
# 9 x 9 on 1 channel 0.71); 3 x 3 filters on 8 channels at stride 2 were 1.04, and the inner
# layers of 64 channels slower still (long rows: few rows of L per product).
MIN_WIDTH = 5
MAX_ROW = 32


def applies(w_shape, dilation: int) -> bool:
    """True when this path computes the (fused) forward pass of filters ``w_shape`` fastest."""
    _, C, _, WW = w_shape
    return dilation == 1 and WW >= MIN_WIDTH and C * WW <= MAX_ROW


def filters(w):
    """The filters as one matrix Wm (HH * WW * C, F), rows ordered (i, j, c) as L's runs."""
    F, C, HH, WW = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(HH * WW * C, F))


def forward(x, Wm, b, plan, y):
    """Convolution of x (n, C, H, W) into y (n, H_out, W_out, F), channels last, plus the bias b
    (F,), or None: no bias (the fused pooling adds it to the pooled output, a quarter of the
    pass). Wm: ``filters(w)``; plan: the convolution's geometry (``gemm_conv.Plan``; dilation 1).
    """
    n, C, H, W = x.shape
    S, P, HH, WW = plan.stride, plan.pad, plan.HH, plan.WW
    Hp, Wp = H + 2 * P, W + 2 * P
    xp = scratch.array("mec.padded", (n, Hp, Wp, C), x.dtype)  # channels last
    pad_hw(x, P, out=xp.transpose(0, 3, 1, 2))
    sn, sh, sw, sc = xp.strides
    L = scratch.array("mec.lowered", (n, plan.W_out, Hp, WW, C), x.dtype)
    np.copyto(L, as_strided(xp, L.shape, (sn, S * sw, sh, sw, sc)))  # L[w, r, j, c]
    item = L.itemsize
    K = HH * WW * C
    A = as_strided(L, (n, plan.H_out, plan.W_out, K),  # A[h, w] = run of rows h*S.. of L[w]
                   (L.strides[0], S * WW * C * item, Hp * WW * C * item, item))
    np.matmul(A, Wm, out=y)
    if b is not None:
        y += b
