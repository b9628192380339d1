"""The input gradient of the gemm path's convolution as stride-1 convolutions of dout, one per
phase of the input: no col2im.

The textbook input gradient is col2im: dX = w_row.T @ D, then every column added back onto the
pixels its window read. For a filter of many taps that is many small strided adds (7 x 7 on 64
channels at stride 2: 49 adds of a few thousand numbers per block of images, each a numpy call;
measured single-threaded, half the time of the whole dx). Read the other way round, each input
pixel's gradient is a sum over the taps that read it: along an axis of stride S, the pixels of
one *phase* (padded index mod S) are read by the taps t with (t * dilation) mod S equal to it
(``conv_phases``), at output positions a fixed step apart. So the gradient of the
pixels of one phase pair is a stride-1 correlation of dout with those taps, flipped and
transposed (F input channels, C outputs): im2col of the padded dout (contiguous runs, as the
forward pass builds its columns) and one matrix multiply, whose result is written straight into
the phase's pixels of dx. The phases cover every pixel once: nothing is added, and the pixels
of a phase no tap reads get zeros. The products have the multiply-adds of w_row.T @ D (plus
garbage columns, as in the forward pass).

When it pays (``applies``): the products have C rows (the input's channels), so with few input
channels against many filters they are skinny and their columns (F rows per tap) outnumber
col2im's (C per tap). Measured with bench/layers.py's and notebook-sized inner layers (float32,
2 threads, backward with dx, against col2im): C >= F: 0.68-0.93x the time (7 x 7 at stride 2 on
64 channels: 41.2 -> 32.5 ms for 64 images); C = F / 2: 0.93-0.98x; C = F / 4: 1.01-1.21x; a
first layer's 3 channels against 32 filters: 1.25-2.75x. Filters whose taps span less than a
stride (2 x 2 at stride 2) read each pixel once, so col2im is one copy per tap: 0.91-1.05x.

Everything here works on one slice of the batch (``gemm_conv.backward`` calls it per block).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cs231n_lib import scratch
from cs231n_lib.conv_phases import phase_groups, phase_span


def applies(plan, F: int) -> bool:
    """Whether the input gradient of the convolution of ``plan`` with F filters is computed
    here rather than by col2im (see the module docstring)."""
    d, S = plan.dilation, plan.stride
    overlapping = (plan.HH - 1) * d >= S or (plan.WW - 1) * d >= S
    return overlapping and 2 * plan.C >= F


@dataclass(frozen=True)
class AxisPhase:
    """The pixels of one phase along one axis and the taps that read them: pixel ``first + S *
    u`` (u < count) gets, from tap ``taps[nk - 1 - k]``, dout at output index ``start + u +
    k * step``, for k < nk (``taps``: a slice of the filter's taps; None: no tap reads this
    phase, whose gradient is 0)."""

    first: int
    count: int
    taps: slice | None
    nk: int
    start: int
    step: int


def axis_phases(taps: int, dilation: int, stride: int, pad: int, size: int):
    """The S phases of an axis of ``size`` pixels (``AxisPhase``, by phase; those with no pixel
    left out)."""
    groups = {phase: (group, q0, dq) for phase, group, q0, dq in
              phase_groups(taps, dilation, stride)}
    phases = []
    for phase in range(stride):
        first, plane_first, count = phase_span(phase, size, stride, pad)
        if count == 0:
            continue
        if phase not in groups:
            phases.append(AxisPhase(first, count, None, 0, 0, 0))
            continue
        group, q0, dq = groups[phase]
        nk = len(range(taps)[group])
        # tap k of the group reads plane index h + q0 + k * dq for output h: pixel u's output
        # for the group's last tap is plane_first + u - q0 - (nk - 1) * dq
        phases.append(AxisPhase(first, count, group, nk, plane_first - q0 - (nk - 1) * dq, dq))
    return phases


def _pads(phases, out_size: int):
    """Zeros dout needs before and after its outputs along an axis so that every phase's reads
    stay inside: (before, after)."""
    reads = [(p.start, p.start + p.count - 1 + (p.nk - 1) * p.step) for p in phases if p.nk]
    before = max([0] + [-lo for lo, _ in reads])
    after = max([0] + [hi - (out_size - 1) for _, hi in reads])
    return before, after


@dataclass(frozen=True)
class DxPlan:
    """The phases of a convolution's input gradient (built from a ``gemm_conv.Plan``)."""

    stride: int
    rows: tuple  # AxisPhase of each phase along H, then along W
    cols: tuple
    top: int  # zeros before dout's first row and column
    left: int
    Hd: int  # rows of the padded dout, a spare row included
    Wd: int  # its width, and the width each phase's output is computed at

    @classmethod
    def of(cls, plan) -> DxPlan:
        rows = tuple(axis_phases(plan.HH, plan.dilation, plan.stride, plan.pad, plan.H))
        cols = tuple(axis_phases(plan.WW, plan.dilation, plan.stride, plan.pad, plan.W))
        top, bottom = _pads(rows, plan.H_out)
        left, right = _pads(cols, plan.W_out)
        return cls(plan.stride, rows, cols, top, left, plan.H_out + top + bottom + 1,
                   plan.W_out + left + right)

    @cached_property
    def pairs(self):
        """The phase pairs some tap reads, (rows phase, cols phase); the others get zeros."""
        return [(a, b) for a in self.rows for b in self.cols if a.nk and b.nk]


def filters(w, dx_plan: DxPlan):
    """The filters of each phase pair as rows (C, F * nk_rows * nk_cols), flipped so that their
    columns pair with ``_columns``' rows: [one per ``dx_plan.pairs``]."""
    C = w.shape[1]
    return [np.ascontiguousarray(w[:, :, a.taps, b.taps][:, :, ::-1, ::-1]
                                 .transpose(1, 0, 2, 3)).reshape(C, -1)
            for a, b in dx_plan.pairs]


def padded_dout(m: int, F: int, plan, dx_plan: DxPlan, dtype):
    """A scratch buffer for the padded dout of m images, (m, F, Hd, Wd), zeros around; returns
    (the buffer, the view of its interior, (m, F, H_out, W_out), to write dout into)."""
    buf = scratch.array("conv.dpad", (m, F, dx_plan.Hd, dx_plan.Wd), dtype)
    top, left = dx_plan.top, dx_plan.left
    buf[:, :, :top] = 0
    buf[:, :, top + plan.H_out:] = 0
    buf[:, :, top:top + plan.H_out, :left] = 0
    buf[:, :, top:top + plan.H_out, left + plan.W_out:] = 0
    return buf, buf[:, :, top:top + plan.H_out, left:left + plan.W_out]


def _columns(dpad, dx_plan: DxPlan, a: AxisPhase, b: AxisPhase):
    """Columns of phase pair (a, b) from the padded dout: (F * nk_a * nk_b, m, count_a * Wd),
    in scratch; rows (f, k_a, k_b), the image's outputs side by side, Wd wide."""
    m, F, _, Wd = dpad.shape
    L = a.count * Wd
    item = dpad.itemsize
    offset = (dx_plan.top + a.start) * Wd + dx_plan.left + b.start
    runs = np.ndarray((m, F, a.nk, b.nk, L), dpad.dtype, dpad,
                      offset * item, (dpad.strides[0], dpad.strides[1], a.step * Wd * item,
                                      b.step * item, item))
    X = scratch.array("conv.dcols", (F, a.nk, b.nk, m, L), dpad.dtype)
    X[...] = runs.transpose(1, 2, 3, 0, 4)
    return X.reshape(F * a.nk * b.nk, m * L)


def input_gradient(dpad, w_pairs, dx_plan: DxPlan, dx):
    """dx (m, C, H, W) of the block of images whose padded dout is ``dpad`` (``padded_dout``):
    for every phase pair, its pixels; w_pairs: ``filters(w, dx_plan)``."""
    m, C = dx.shape[:2]
    S, Wd = dx_plan.stride, dx_plan.Wd
    for (a, b), W_rows in zip(dx_plan.pairs, w_pairs, strict=True):
        Y = np.matmul(W_rows, _columns(dpad, dx_plan, a, b),
                      out=scratch.array("conv.dY", (C, m * a.count * Wd), dx.dtype))
        real = Y.reshape(C, m, a.count, Wd)[..., :b.count]  # the garbage columns dropped
        dx[:, :, a.first::S, b.first::S] = real.transpose(1, 0, 2, 3)
    for a in dx_plan.rows:  # the phases no tap reads
        for b in dx_plan.cols:
            if not (a.nk and b.nk):
                dx[:, :, a.first::S, b.first::S] = 0
