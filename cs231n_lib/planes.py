"""col2im for strided convolutions with contiguous adds: the padded gradient as phase planes.

``col2im`` adds each tap's (H_out, W_out) plane of gradients onto the padded input at stride
S, i.e. into every S-th pixel: numpy's strided add does that in runs of W_out elements with
no vector instructions, and for the small W_out of a strided layer (16 for the CS231n
notebook's layer) it is the slowest step of the backward pass. Here the padded gradient is
kept instead as S * S *phase planes*: padded pixel (r, c) lives in plane (r % S, c % S) at
(r // S, c // S), and every plane row holds exactly W_out pixels. A tap's H_out * W_out
gradients then land on ONE contiguous run of its plane (row h + 1 of the tap starts where row
h ends), so each tap is one contiguous add per (image, channel), and the planes are
interleaved into dx once at the end. The price: a plane is a little wider than W_out
(``overflow`` columns), and a tap's last pixels that fall there are moved to a separate small
array first.

Used by the fast convolution's backward pass when S >= 2 and at most one output column per
tap overflows (``applies``): e.g. 3 x 3 filters at stride 2, as in the CS231n notebook's layer,
1 x 1 filters at stride 2, or 5 x 5 filters at stride 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cs231n_lib import scratch


def applies(stride: int, dilation: int, WW: int) -> bool:
    """Whether the phase planes pay off: stride >= 2 and every tap overflows by at most one
    output column (``(WW - 1) * dilation < 2 * stride``)."""
    return stride >= 2 and (WW - 1) * dilation < 2 * stride


@dataclass(frozen=True)
class Layout:
    """Geometry of the phase planes of a padded batch (validated by the caller)."""

    N: int
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

    @property
    def rows(self) -> int:
        """Rows per plane, plus a spare row that the last run of a tap may reach into."""
        return -(-(self.H + 2 * self.pad) // self.stride) + 1

    @property
    def overflow(self) -> int:
        """Plane columns past W_out, kept in the overflow array."""
        return max(0, -(-(self.W + 2 * self.pad) // self.stride) - self.W_out)

    def tap(self, i: int, j: int):
        """Tap (i, j)'s plane (p, q), its first row and column in it, and the first output
        column whose pixel falls in the overflow array (W_out when none does)."""
        S = self.stride
        di, dj = i * self.dilation, j * self.dilation
        return di % S, dj % S, di // S, dj // S, self.W_out - dj // S

    def phase(self, p: int, size: int):
        """Input pixels along one axis in phase p (padded index = p mod S), for an axis of
        ``size`` pixels: (first pixel, first plane index, count)."""
        first = (p - self.pad) % self.stride
        count = max(0, -(-(size - first) // self.stride))
        return first, (first + self.pad) // self.stride, count


def add_columns(dX, layout: Layout, out):
    """col2im: add every column of dX (N, C*HH*WW, H_out, W_out; overwritten) back onto its
    receptive field; the result, unpadded, goes to ``out`` (N, C, H, W)."""
    L = layout
    N, C, S, rows, W_out = L.N, L.C, L.stride, L.rows, L.W_out
    dtype = dX.dtype
    planes = scratch.array("planes", (N, C, S, S, rows, W_out), dtype)
    spill = scratch.array("planes.overflow", (N, C, S, S, rows, L.overflow), dtype)
    planes.fill(0)
    spill.fill(0)
    taps = dX.reshape(N, C, L.HH, L.WW, L.H_out, W_out)
    run_shape, run_strides = (N, C, L.H_out * W_out), planes.strides[:2] + (dtype.itemsize,)
    for i in range(L.HH):
        for j in range(L.WW):
            p, q, row, col, first = L.tap(i, j)
            tap = taps[:, :, i, j]
            if first < W_out:  # move the pixels past the plane's width to the overflow array
                spill[:, :, p, q, row:row + L.H_out, :W_out - first] += tap[..., first:]
                tap[..., first:] = 0
            start = ((p * S + q) * rows + row) * W_out + col  # planes is C-contiguous
            # (N, C, H_out*W_out) view of the run, contiguous per (n, c)
            run = np.ndarray(run_shape, dtype, planes, start * dtype.itemsize, run_strides)
            run += tap.reshape(N, C, -1)  # one tap never aliases itself
    for p in range(S):
        y0, a0, ny = L.phase(p, L.H)
        for q in range(S):
            x0, b0, nx = L.phase(q, L.W)
            inside = min(nx, max(0, W_out - b0))  # input columns held by the plane itself
            dst = out[:, :, y0::S, x0::S]
            dst[..., :inside] = planes[:, :, p, q, a0:a0 + ny, b0:b0 + inside]
            if inside < nx:
                lo = b0 + inside - W_out
                dst[..., inside:] = spill[:, :, p, q, a0:a0 + ny, lo:lo + nx - inside]
