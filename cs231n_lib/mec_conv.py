"""MEC convolutions (the input lowered along W only, then one small matrix multiply per output
row): the forward pass of every gemm-path layer whose rows' products are small, into NCHW
memory (``forward_nchw``); channels last, the forward pass of the fused convolution - ReLU - max
pooling of a first layer with large filters on few channels (``forward``: a 7 x 7 or 5 x 5
convolution of RGB images); and the weight gradient of gemm-path layers (``backward_weights``).

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

``forward`` writes the output channels last, (n, H_out, W_out, F), which the fused pooling
pools in that layout, copying out only the pooled quarter (``fast_pool.PooledBlocks``).
``forward_nchw`` computes each row's product the other way round, Wm.T (F, K) @ A[h].T (K,
W_out), and writes it straight into the (F, W_out) plane of output row h of an NCHW output:
no copy of the output either. There the fused pooling is slower (its taps, every other pixel of
an NCHW row, are strided: 1.05-1.30 of ``forward``'s time with the pooling), but for a layer
that returns its output it replaces the gemm path's forward pass (and the window path's, which
computes a strided gemm-path layer's): 0.37-0.95 of the time (2 threads, 64 images; 3 x 3 to
9 x 9 first layers on 3 channels at stride 1 and 2, 3 x 3 and 5 x 5 inner layers on 16 and 64
channels at stride 2; both dtypes), most gained where im2col copies most (9 x 9 0.37-0.50,
7 x 7 0.47-0.60), least on 5 x 5 filters at stride 2 on 3 channels (0.84-1.09). Where a row's
product is large it is slower: OpenBLAS runs such products at a fraction of the small ones'
rate (measured), so they are cut into pieces along K (``MAX_ROW_PRODUCT``), where the pieces
stay deep enough.

The backward pass of both is the gemm path's (``gemm_conv.backward``; without dx, under 2x2/2
windows, ``s2d_conv``'s), whose dW ``backward_weights`` computes from L where its products are
deep enough (``MIN_PRODUCT_DEPTH``): the receptive fields of output row h of all the images
are one strided matrix of L, so dW is H_out products with the gradient of that row, the columns
of im2col never built (the gemm path computes dx alone then). The same convolution, rounded
differently.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cs231n_lib import scratch
from cs231n_lib.im2col import pad_hw
from cs231n_lib.layers import relu_grad_into, relu_into

# Filters at least MIN_WIDTH wide whose rows C * WW are at most MAX_ROW long take this path (in
# the fused pooling, for filters the gemm path would compute): 5 x 5 to 9 x 9 on 1 to 6
# channels. Measured against the fused gemm path, one thread, float32: 0.69-0.92 of its time
# (7 x 7 on 3 and 4 channels 0.69-0.70, at stride 2 0.77; 5 x 5 on 3 and 6 channels 0.78-0.82;
# 9 x 9 on 1 channel 0.71); 3 x 3 filters on 8 channels at stride 2 were 1.04, and the inner
# layers of 64 channels slower still (long rows: few rows of L per product).
MIN_WIDTH = 5
MAX_ROW = 32
# ``forward_nchw`` keeps each product at most MAX_ROW_PRODUCT multiply-adds, whatever the
# dtype: a row's product F * K * W_out (K = C * HH * WW) larger than that is cut along K into
# pieces of whole filter rows, added up, each at least MIN_PIECE_DEPTH deep; a layer whose
# pieces would be shallower does not take it. Measured against the path it replaces (one and
# two threads, 2 to 64 images): unsplit products of 18K to 819K took 0.27-0.95 of the time (3 x
# 3 to 9 x 9 filters on 3 to 64 channels, rows of 4 to 96 pixels; one of 1.03 in float64),
# unsplit ones of 1.05M to 3.2M 1.06-2.6; cut into 2 or 3 pieces of 576 to 1,568 (128 -> 128
# channels 3 x 3, 64 -> 64 and 64 -> 128 channels 5 x 5 and 7 x 7, 256 -> 256 3 x 3, all at
# stride 2) 0.47-0.81, but into pieces of 74 (7 x 7 on 3 channels over rows of 112 pixels)
# 0.85-1.22 and of 182 (11 x 11 at stride 4 over 55) 1.29-1.45.
MAX_ROW_PRODUCT = 1_000_000
MIN_PIECE_DEPTH = 256
# ``backward_weights`` computes dW where its products, one per output row, have at least
# MIN_PRODUCT_DEPTH columns (n * W_out: a thread's images side by side); it replaces the gemm
# path's columns and product (the gemm path then computes dx alone). Measured (2 threads,
# interleaved, float32 and float64): products of 256 to 2,048 columns took 0.59-0.95 of the
# time without dx (3 x 3 to 9 x 9 first layers, 3 x 3 to 7 x 7 inner layers at stride 2 on 16
# to 128 channels, 5 x 5 on 8 channels at stride 1), 0.73-0.99 with dx, one case of 1.01-1.06
# (float32, 8 channels); 224 columns (7 x 7 at stride 2 over 112 pixels, 2 images a thread)
# 1.07-1.17, 64 (256 channels over 4 pixels) 1.02-1.15: each product writes a whole dW (F, K)
# that the H_out products then add up. Not where col2im computes dx (``fast_layers``): its
# product shares the gemm path's gradient matrix with dW's, and MEC's dW took 0.91-1.21 of the
# time there (first layers of 3 channels and 32 filters with dx).
MIN_PRODUCT_DEPTH = 256
# forward_nchw lowers a thread's images in blocks of at most this much of L: larger blocks,
# fewer stacked products, ran faster (a 1 MiB block took 1.1-1.4 of the time of an unsplit
# slice of 32 images, 4 MiB 1.0-1.1), so this bounds the scratch memory only.
BLOCK_BYTES = 16 << 20


def applies(w_shape, dilation: int) -> bool:
    """True when this path computes the (fused) forward pass of filters ``w_shape`` fastest."""
    _, C, _, WW = w_shape
    return dilation == 1 and WW >= MIN_WIDTH and C * WW <= MAX_ROW


def filters(w):
    """The filters as one matrix Wm (HH * WW * C, F), rows ordered (i, j, c) as L's runs."""
    F, C, HH, WW = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(HH * WW * C, F))


def nchw_applies(w_shape, W_out: int, dilation: int) -> bool:
    """True when ``forward_nchw`` computes the forward pass of a gemm-path convolution (the
    caller asks for that path's layers only) with filters ``w_shape`` and output rows of W_out
    pixels fastest."""
    return dilation == 1 and _pieces(w_shape, W_out) > 0


def _pieces(w_shape, W_out: int) -> int:
    """How many pieces along K (runs of whole filter rows) ``forward_nchw`` cuts each output
    row's product into (``MAX_ROW_PRODUCT``), or 0 where they would be shallower than
    ``MIN_PIECE_DEPTH``."""
    F, C, HH, WW = w_shape
    K = C * HH * WW
    pieces = -(-F * K * W_out // MAX_ROW_PRODUCT)
    return pieces if pieces == 1 or (pieces <= HH and K // pieces >= MIN_PIECE_DEPTH) else 0


def backward_applies(n: int, W_out: int, dilation: int) -> bool:
    """True when ``backward_weights`` computes dW of a gemm-path convolution fastest for a
    slice of n images with output rows of W_out pixels: where its products are deep enough
    (``MIN_PRODUCT_DEPTH``)."""
    return dilation == 1 and n * W_out >= MIN_PRODUCT_DEPTH


def lower(xp, count: int, taps: int, stride: int, role: str, phases: int = 1):
    """MEC's lowering of a channels-last padded array xp (n, rows, cols, C) along its columns:
    L (n, count, rows, taps, C) in scratch ``role``, L[v, r, j] = xp[r, v * stride + j], so that
    ``taps`` neighbouring columns of every row are one run of L. phases > 1 (a divisor of
    count): L's v in the order (v mod phases, v div phases) instead."""
    n, rows, _, C = xp.shape
    sn, sh, sw, sc = xp.strides
    L = scratch.array(role, (n, count, rows, taps, C), xp.dtype)
    shape = (n, phases, count // phases, rows, taps, C)  # L[(v % p, v // p), r, j, c]
    np.copyto(L.reshape(shape), as_strided(xp, shape, (sn, stride * sw, phases * stride * sw,
                                                       sh, sw, sc)))
    return L


def fields(L, count: int, taps: int, stride: int):
    """The receptive fields A (n, count, L.shape[1], taps * run) of a lowered L (``lower``, or a
    view of it from a later row; run: a row's taps * C numbers): A[h, v] is the run of ``taps``
    rows h * stride.. of L[v] (a strided view)."""
    s_image, s_column, s_row, _, s_item = L.strides
    return as_strided(L, (L.shape[0], count, L.shape[1], taps * L.shape[3] * L.shape[4]),
                      (s_image, stride * s_row, s_column, s_item))


def _lower(x, plan, phases=1):
    """L (n, W_out, H_pad, WW, C) of x (n, C, H, W): x padded channels last (in scratch), then
    ``lower``."""
    n, C, H, W = x.shape
    P = plan.pad
    xp = scratch.array("mec.padded", (n, H + 2 * P, W + 2 * P, C), x.dtype)  # channels last
    pad_hw(x, P, out=xp.transpose(0, 3, 1, 2))
    return lower(xp, plan.W_out, plan.WW, plan.stride, "mec.lowered", phases)


def _fields(L, plan):
    """The receptive fields A (n, H_out, W_out, K) of ``_lower``'s L."""
    return fields(L, plan.H_out, plan.HH, plan.stride)


def _blocks(n: int, plan, C: int, itemsize: int):
    """Slices of n images, each lowering at most about ``BLOCK_BYTES`` of L (one image at
    least)."""
    image = plan.W_out * (plan.H + 2 * plan.pad) * plan.WW * C * itemsize
    step = max(1, min(n, BLOCK_BYTES // image))
    return [slice(first, min(n, first + step)) for first in range(0, n, step)]


def forward(x, Wm, b, plan, y, phases=1):
    """Convolution of x (n, C, H, W) into y (n, H_out, W_out, F), channels last, plus the bias b
    (F,), or None: no bias (the fused pooling adds it to the pooled output, a quarter of the
    pass). Wm: ``filters(w)``; plan: the convolution's geometry (``gemm_conv.Plan``; dilation 1).
    phases > 1 (a divisor of W_out): each output row's columns in the order (w mod phases,
    w div phases), for pooling windows phases wide at stride phases
    (``fast_pool.PooledBlocks.forward_phased``: each of their taps is then whole runs of y).
    """
    np.matmul(_fields(_lower(x, plan, phases), plan), Wm, out=y)
    if b is not None:
        y += b


def forward_nchw(x, Wm, b, plan, out, relu=False):
    """Convolution of x (n, C, H, W) into ``out`` (n, F, H_out, W_out) plus the bias b (F,):
    each output row is the product Wm.T (F, K) @ A[h].T (K, W_out), written straight into
    out's (F, W_out) plane of that row (a large one as the sum of products over runs of the
    filters' rows, ``_pieces``). A few images at a time (``BLOCK_BYTES`` of L). relu: write
    max(output, 0) instead."""
    n, C = x.shape[:2]
    F = Wm.shape[1]
    pieces = _pieces((F, C, plan.HH, plan.WW), plan.W_out)
    row = plan.WW * C  # a filter row's numbers in K
    bounds = [row * round(i * plan.HH / pieces) for i in range(pieces + 1)]
    for part in _blocks(n, plan, C, x.dtype.itemsize):
        y = out[part]
        fields = _fields(_lower(x[part], plan), plan).transpose(0, 1, 3, 2)  # (m, H_out, K, W)
        rows = y.transpose(0, 2, 1, 3)  # (m, H_out, F, W_out)
        np.matmul(Wm[:bounds[1]].T, fields[:, :, :bounds[1]], out=rows)
        for k0, k1 in zip(bounds[1:-1], bounds[2:], strict=True):
            rows += np.matmul(Wm[k0:k1].T, fields[:, :, k0:k1],
                              out=scratch.array("mec.piece", rows.shape, y.dtype))
        y += b[:, None, None]
        if relu:
            relu_into(y, y)


def backward_weights(x, dout, plan, relu_out=None):
    """dW_row (F, C * HH * WW + 1) of the convolution of x (n, C, H, W) for upstream dout (n, F,
    H_out, W_out): dw as rows ordered as ``w.reshape(F, -1)``, then db; relu_out as in
    ``gemm_conv.backward``. The receptive fields of the images' output row h, all images side
    by side, are one strided matrix of L ((n * W_out, K): L's image step is W_out of its pixel
    steps), so dW is a sum of H_out products D_h (F, n * W_out) @ A_h, D_h the gradient of that
    row (copied into (H_out, F, n, W_out)). A few images at a time (``BLOCK_BYTES`` of L)."""
    n, C = x.shape[:2]
    F = dout.shape[1]
    HH, WW, H_out, W_out = plan.HH, plan.WW, plan.H_out, plan.W_out
    K = HH * WW * C
    sums = np.zeros((F, K), dout.dtype)  # dW, its columns ordered (i, j, c)
    dW_row = np.empty((F, K + 1), dout.dtype)
    dW_row[:, K] = 0
    for part in _blocks(n, plan, C, dout.itemsize):
        m = part.stop - part.start
        D = scratch.array("mec.dout", (H_out, F, m, W_out), dout.dtype)
        if relu_out is None:
            np.copyto(D, dout[part].transpose(2, 1, 0, 3))
        else:
            relu_grad_into(dout[part].transpose(2, 1, 0, 3), relu_out[part].transpose(2, 1, 0, 3),
                           D)
        # row h's fields of all m images as one matrix: L's image step is W_out column steps
        rows = _fields(_lower(x[part].astype(dout.dtype, copy=False), plan), plan).transpose(
            1, 0, 2, 3).reshape(H_out, m * W_out, K)
        parts = np.matmul(D.reshape(H_out, F, m * W_out), rows,
                          out=scratch.array("mec.dW", (H_out, F, K), dout.dtype))
        sums += parts.sum(axis=0)
        dW_row[:, K] += D.sum(axis=(0, 2, 3))
    dW_row[:, :K].reshape(F, C, HH, WW)[...] = sums.reshape(F, HH, WW, C).transpose(0, 3, 1, 2)
    return dW_row
