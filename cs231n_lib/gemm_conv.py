"""The matrix-multiply path of the fast convolution: im2col as contiguous runs, in cache-sized
blocks of images.

The textbook im2col (``im2col.py``) copies every receptive field into a matrix X_col of
C*HH*WW rows and N*H_out*W_out columns, 49 copies of the input for a 7 x 7 filter: hundreds of
MB that the matrix multiply then streams back from memory, and a copy whose inner loops are
only W_out elements long. Two changes make it cheap:

* **Runs.** Each image is kept padded (``pad`` zeros on every side), and for a stride S >= 2 split
  into S x S *phase planes*: padded pixel (r, c) goes to plane (r % S, c % S) at (r // S, c // S);
  every plane is R = ceil((W + 2 * pad) / S) pixels wide. Output pixel (h, w) of filter tap
  (i, j) then reads plane ((i*d) % S, (j*d) % S) at (h + (i*d) // S, w + (j*d) // S) (d: the
  dilation), so if the output is computed R columns wide instead of W_out, the row of X_col for
  tap (c, i, j) is ONE contiguous run of H_out * R pixels of a plane. The R - W_out extra
  columns of every output row are garbage (they wrap around into the next row) and are dropped;
  their share of the work is (R - W_out) / W_out, e.g. 6/32 for a 7 x 7 "same" layer on 32 x 32
  images. Taps of the same phase lie a fixed number of plane rows and columns apart, so all the
  runs of a phase are one strided view: building X_col is one numpy copy per phase pair (one in
  all for stride 1), whatever the filter size.
* **Blocks.** X_col is built for a few images at a time (``BLOCK_BYTES``), side by side as one
  (K + 1, images * L) matrix (one multiply for the block, the bias as a row of ones), multiplied
  while it is still in the core's cache, and dropped: it is never kept. The backward pass
  builds it again for dw, in larger blocks (``BACKWARD_BLOCK_BYTES``): cheaper than keeping
  hundreds of MB, which the next layers would evict from the cache anyway. The input gradient
  is, where it pays (many input channels), one stride-1 convolution of dout per phase pair,
  written straight into that phase's pixels (``conv_dx``); otherwise its columns w_row.T @ D
  are added back as contiguous runs of the same planes (col2im), the garbage columns carrying
  zeros.

A plane has one spare row at its bottom, so that no run of a tap leaves its plane (the last
output row's run reaches (j*d) // S pixels past its row). Every function here works on one
slice of the batch; ``fast_layers`` splits the batch across threads (``parallel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cs231n_lib import conv_dx, scratch
from cs231n_lib.conv_phases import phase_groups, phase_span
from cs231n_lib.layers import relu_grad_into

# Bytes of X_col built at a time: about half of a core's L2 cache (the rest holds the block's
# output and the filters). Measured with bench/conv.py and bench/layers.py.
BLOCK_BYTES = 1 << 20
# The backward pass's blocks (this path's and the window path's): larger, since each block's
# dW is a product with the block's columns as its long inner dimension (and a small output
# that stays in the cache), and each block repeats a dozen numpy calls. Measured against
# BLOCK_BYTES (2 threads, 64 images, interleaved; first layers 3 x 3 to 7 x 7 on 3 channels at
# stride 1 and 2, inner layers 1 x 1 to 7 x 7 on 16 to 64 channels, float32 and float64):
# backward with dx 0.62-1.03 of the time at 8 MiB (0.66-1.02 at 4 MiB, 0.59-0.96 at 16 MiB),
# without dx 0.71-1.07; the forward pass, whose product has the filters as its short
# dimension, gained nothing (stride-1 gemm layers 1.06-1.14 at 2 to 4 MiB).
BACKWARD_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class Plan:
    """Where everything lives for one convolution geometry (validated by the caller). The
    derived sizes are computed once per plan: the per-block loops read them often."""

    C: int
    H: int
    W: int
    HH: int
    WW: int
    stride: int
    pad: int
    dilation: int
    H_out: int
    W_out: int

    @cached_property
    def K(self) -> int:
        """Rows of X_col: one per filter tap (c, i, j)."""
        return self.C * self.HH * self.WW

    @cached_property
    def R(self) -> int:
        """Plane width, and the width the output is computed at (W_out real columns first)."""
        return -(-(self.W + 2 * self.pad) // self.stride)

    @cached_property
    def plane(self) -> int:
        """Pixels of one phase plane: its rows plus a spare row."""
        return (-(-(self.H + 2 * self.pad) // self.stride) + 1) * self.R

    @cached_property
    def channel(self) -> int:
        """Pixels of one channel: its S * S phase planes."""
        return self.stride * self.stride * self.plane

    @cached_property
    def image(self) -> int:
        """Pixels of one image's planes."""
        return self.C * self.channel

    @cached_property
    def rows(self) -> int:
        """Rows of a phase plane, the spare row included."""
        return self.plane // self.R

    @cached_property
    def L(self) -> int:
        """Columns of X_col per image: the output computed R columns wide."""
        return self.H_out * self.R

    @cached_property
    def groups(self):
        """The taps grouped by phase pair: [(first pixel of the group's first run in a channel,
        (rows of taps i, plane rows between them), (columns of taps j, plane columns between
        them))], where rows and columns are slices of range(HH) and range(WW)."""
        rows = phase_groups(self.HH, self.dilation, self.stride)
        cols = phase_groups(self.WW, self.dilation, self.stride)
        S, R = self.stride, self.R
        return [((a * S + b) * self.plane + r0 * R + c0, (taps_i, dr * R), (taps_j, dc))
                for a, taps_i, r0, dr in rows for b, taps_j, c0, dc in cols]

    @cached_property
    def phases(self):
        """The phase pairs (a, b) some tap reads."""
        return [(a, b) for a, *_ in phase_groups(self.HH, self.dilation, self.stride)
                for b, *_ in phase_groups(self.WW, self.dilation, self.stride)]

    @cached_property
    def dx(self):
        """The phases of the input gradient (``conv_dx.DxPlan``)."""
        return conv_dx.DxPlan.of(self)

    def block(self, n: int, itemsize: int, backward: bool = False) -> int:
        """Images per block: X_col of a block holds about ``BLOCK_BYTES`` (the backward pass:
        ``BACKWARD_BLOCK_BYTES``)."""
        return images_per_block(n, (self.K + 1) * self.L * itemsize, backward)


def images_per_block(n: int, image_bytes: int, backward: bool = False) -> int:
    """How many of n images a block takes when each brings ``image_bytes`` of columns: about
    ``BLOCK_BYTES`` in all (the backward pass: ``BACKWARD_BLOCK_BYTES``), at least one image.
    (The window path's blocks too.)"""
    block_bytes = BACKWARD_BLOCK_BYTES if backward else BLOCK_BYTES
    return max(1, min(n, block_bytes // image_bytes))


def _planes_view(buf, plan: Plan, n: int):
    """The first n images of a flat planes buffer as (n, C, S, S, rows, R)."""
    S = plan.stride
    return buf[:n * plan.image].reshape(n, plan.C, S, S, plan.rows, plan.R)


def to_planes(x, plan: Plan, role: str):
    """x (n, C, H, W) padded and split into phase planes, in this thread's scratch buffer for
    ``role``: a flat array of n * ``plan.image`` pixels."""
    n = x.shape[0]
    buf = scratch.array(role, (n * plan.image,), x.dtype)
    buf.fill(0)
    planes = _planes_view(buf, plan, n)
    S = plan.stride
    for a, b in plan.phases:  # planes no tap reads stay zero (e.g. 1 x 1 filters at stride 2)
        y0, r0, ny = phase_span(a, plan.H, S, plan.pad)
        x0, c0, nx = phase_span(b, plan.W, S, plan.pad)
        planes[:, :, a, b, r0:r0 + ny, c0:c0 + nx] = x[:, :, y0::S, x0::S]
    return buf


def from_planes(buf, plan: Plan, out):
    """The inverse of ``to_planes`` for a gradient: the pixels of the planes that are input
    pixels (not padding) into ``out`` (n, C, H, W)."""
    planes = _planes_view(buf, plan, out.shape[0])
    S = plan.stride
    for a in range(S):
        y0, r0, ny = phase_span(a, plan.H, S, plan.pad)
        for b in range(S):
            x0, c0, nx = phase_span(b, plan.W, S, plan.pad)
            out[:, :, y0::S, x0::S] = planes[:, :, a, b, r0:r0 + ny, c0:c0 + nx]


def _runs(buf, plan: Plan, first: int, n: int, offset: int, taps_i, taps_j):
    """View of the planes buffer (n, C, taps along H, taps along W, L): for images first..,
    every channel, and the taps of one phase group, the run of L pixels each reads."""
    (_, di), (_, dj) = taps_i, taps_j
    ci, cj = len(range(plan.HH)[taps_i[0]]), len(range(plan.WW)[taps_j[0]])
    item = buf.itemsize
    strides = (plan.image * item, plan.channel * item, di * item, dj * item, item)
    return np.ndarray((n, plan.C, ci, cj, plan.L), buf.dtype, buf,
                      (first * plan.image + offset) * item, strides)


def columns(buf, plan: Plan, first: int, n: int, X):
    """X_col of images first..first+n-1 of a planes buffer into X (K + 1, n, L): rows (c, i, j)
    as ``w.reshape(F, -1)`` orders them, then a row of ones (the bias); the n images side by
    side, so that one matrix multiply covers them all."""
    taps = X[:plan.K].reshape(plan.C, plan.HH, plan.WW, n, plan.L)
    for offset, taps_i, taps_j in plan.groups:
        runs = _runs(buf, plan, first, n, offset, taps_i, taps_j)  # (n, C, ci, cj, L)
        taps[:, taps_i[0], taps_j[0]] = runs.transpose(1, 2, 3, 0, 4)
    X[plan.K] = 1


def add_columns(dX, plan: Plan, buf, first: int):
    """col2im on runs: add the columns dX (K, n, L) of images first.. back onto the planes
    buffer (its runs overlap from tap to tap, so one tap at a time; a tap's own runs do not)."""
    n = dX.shape[1]
    taps = dX.reshape(plan.C, plan.HH, plan.WW, n, plan.L)
    for offset, taps_i, taps_j in plan.groups:
        runs = _runs(buf, plan, first, n, offset, taps_i, taps_j)
        rows, cols = range(plan.HH)[taps_i[0]], range(plan.WW)[taps_j[0]]
        for u, i in enumerate(rows):
            for v, j in enumerate(cols):
                runs[:, :, u, v] += taps[:, i, j].transpose(1, 0, 2)


def _wide(Y, plan: Plan):
    """A block's output or gradient Y (F, n, L) as (n, F, H_out, R) (a view)."""
    return Y.reshape(Y.shape[0], -1, plan.H_out, plan.R).transpose(1, 0, 2, 3)


def forward(x, W_row, plan: Plan, out, relu=False):
    """Convolution of x (n, C, H, W) into ``out`` (n, F, H_out, W_out); W_row (F, K + 1) holds
    the filters as rows and the bias as a last column. relu: write max(output, 0) instead."""
    n, F = x.shape[0], W_row.shape[0]
    buf = to_planes(x, plan, "conv.planes")
    step = plan.block(n, x.dtype.itemsize)
    for first in range(0, n, step):
        m = min(step, n - first)
        X = scratch.array("conv.cols", (plan.K + 1, m * plan.L), x.dtype)
        columns(buf, plan, first, m, X.reshape(plan.K + 1, m, plan.L))
        Y = np.matmul(W_row, X, out=scratch.array("conv.out", (F, m * plan.L), x.dtype))
        real = _wide(Y, plan)[..., :plan.W_out]  # the garbage columns dropped
        if relu:
            np.maximum(real, 0, out=out[first:first + m])
        else:
            out[first:first + m] = real


def dx_filters(w_row, plan: Plan):
    """The filters ``conv_dx`` multiplies dout by for the input gradient of this convolution
    (w_row: (F, K)), or None where col2im computes it (``conv_dx.applies``). The same for every
    slice and chunk of a batch: ``fast_layers`` makes them once per backward pass."""
    F = w_row.shape[0]
    if not conv_dx.applies(plan, F):
        return None
    return conv_dx.filters(w_row.reshape(F, plan.C, plan.HH, plan.WW), plan.dx)


def backward(x, dout, w_row, plan: Plan, dx, relu_out=None, w_pairs=None, weights=True):
    """Gradients of the convolution of x (n, C, H, W) for upstream dout (n, F, H_out, W_out):
    returns dW_row (F, K + 1) (dw as rows, db in the last column) and, unless dx is None,
    writes the input gradient into dx. w_row: the filters as rows (F, K). relu_out: the
    output of a ``forward(..., relu=True)``; dout is then the gradient of the ReLU's output,
    and passes where relu_out > 0. The input gradient: ``conv_dx`` (stride-1 convolutions of
    dout, one per phase) where it pays (``conv_dx.applies``), else col2im of w_row.T @ D;
    w_pairs: ``dx_filters(w_row, plan)`` when the caller has made them (else made here).
    weights=False: dx only (the caller computes dW another way); returns None."""
    n, F = dout.shape[:2]
    dtype = dout.dtype
    buf = to_planes(x.astype(dtype, copy=False), plan, "conv.planes") if weights else None
    if dx is not None and w_pairs is None:
        w_pairs = dx_filters(w_row, plan)
    by_phases = dx is not None and w_pairs is not None
    dbuf = None
    if dx is not None and not by_phases:
        dbuf = scratch.array("conv.dplanes", (n * plan.image,), dtype)
        dbuf.fill(0)
    dW_col = np.zeros((plan.K + 1, F), dtype) if weights else None  # dW_row transposed
    step = plan.block(n, dtype.itemsize, backward=True)
    for first in range(0, n, step):
        m = min(step, n - first)
        block = slice(first, first + m)
        D = scratch.array("conv.dout", (F, m * plan.L), dtype)
        wide = _wide(D, plan)
        gated = wide[..., :plan.W_out]  # where dout goes (as the ReLU passes it)
        if by_phases:
            dpad, gated = conv_dx.padded_dout(m, F, plan, plan.dx, dtype, w_pairs.by_rows)
        if relu_out is None:
            gated[...] = dout[block]
        else:
            relu_grad_into(dout[block], relu_out[block], gated)
        if weights or not by_phases:  # D is dW's, or col2im's
            if by_phases:
                wide[..., :plan.W_out] = gated
            wide[..., plan.W_out:] = 0  # the garbage columns pass no gradient
        if weights:
            X = scratch.array("conv.cols", (plan.K + 1, m * plan.L), dtype)
            columns(buf, plan, first, m, X.reshape(plan.K + 1, m, plan.L))
            # X @ D.T, not D @ X.T: OpenBLAS runs this orientation about 1.4x faster here
            dW_col += np.matmul(X, D.T, out=scratch.array("conv.dW", (plan.K + 1, F), dtype))
        if by_phases:
            conv_dx.input_gradient(dpad, w_pairs, plan.dx, dx[block])
        elif dbuf is not None:
            dX = np.matmul(w_row.T, D, out=scratch.array("conv.dX", (plan.K, m * plan.L), dtype))
            add_columns(dX.reshape(plan.K, m, plan.L), plan, dbuf, first)
    if dbuf is not None:
        from_planes(dbuf, plan, dx)
    return None if dW_col is None else dW_col.T
