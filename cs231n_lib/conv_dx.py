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

Where the phases have several taps each (``by_rows``), each phase pair's correlation is
computed as ``mec_conv`` computes a convolution instead: dout padded channels last and lowered
along W for the pair's columns, so that every pixel's taps are one run of it, and one small
product per row of the phase's pixels, with no garbage columns (0.09-0.33 of the runs' time
at stride 1, 0.45-0.92 with 4 to 12 taps per phase pair at stride 2).

When it pays (``applies``): the products have C rows (the input's channels), so with few input
channels against many filters they are skinny and their columns (F rows per tap) outnumber
col2im's (C per tap). Measured with bench/layers.py's and notebook-sized inner layers (float32,
2 threads, backward with dx, against col2im): C >= F: 0.68-0.93x the time (7 x 7 at stride 2 on
64 channels: 41.2 -> 32.5 ms for 64 images); C = F / 2: 0.93-0.98x; C = F / 4: 1.01-1.21x; a
first layer's 3 channels against 32 filters: 1.25-2.75x. Filters whose taps span less than a
stride (2 x 2 at stride 2) read each pixel once, so col2im is one copy per tap: 0.91-1.05x.
Where the phases are computed by rows (``by_rows``, MEC's way, below), down to C = F / 4:
the backward pass with dx 0.59-0.95x col2im's time (5 x 5 and 7 x 7 at stride 1 and 2 on 4
to 16 channels, 2 threads, both dtypes; 4 x 4 at stride 2 on 16 channels 0.86-1.15), but on a
first layer's 3 channels against 32 filters 0.87-1.17x, hence C >= F / 4.

Everything here works on one slice of the batch (``gemm_conv.backward`` calls it per block).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from cs231n_lib import mec_conv, scratch
from cs231n_lib.conv_phases import phase_groups, phase_span

# ``by_rows``: at least this many taps per phase pair on average (HH * WW / S**2). Measured
# against the im2col runs (one thread, 32 images, float32 and float64): stride 1 (one phase,
# 5 x 5 and 7 x 7 on 6 to 12 channels) 0.09-0.33 of the time; 6.25 taps (5 x 5 at stride 2 on
# 16 and 64 channels) 0.66-0.92, 12.25 (7 x 7) 0.69-0.86, 9 (6 x 6) 0.45-0.67, 4 (4 x 4)
# 0.71-0.83; but 2.25 (3 x 3 at stride 2) 0.90-1.32 and 1 to 2.8 (3 x 3 and 5 x 5 at stride 3)
# 0.94-1.11.
MIN_TAPS_PER_PHASE = 4


def applies(plan, F: int) -> bool:
    """Whether the input gradient of the convolution of ``plan`` with F filters is computed
    here rather than by col2im (see the module docstring)."""
    d, S = plan.dilation, plan.stride
    overlapping = (plan.HH - 1) * d >= S or (plan.WW - 1) * d >= S
    return overlapping and (2 * plan.C >= F or (4 * plan.C >= F and by_rows(plan.dx, plan.C, F)))


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


def rows_possible(dx_plan: DxPlan) -> bool:
    """Whether ``_by_rows`` can compute every phase pair: each pixel's taps consecutive
    outputs of dout (undilated: every phase's step is 1)."""
    return all(p.nk <= 1 or p.step == 1 for p in dx_plan.rows + dx_plan.cols)


def by_rows(dx_plan: DxPlan, C: int, F: int) -> bool:
    """Whether each phase pair's correlation is computed MEC's way (``_by_rows``) rather than
    as im2col runs (``_columns``): where it can, with at least ``MIN_TAPS_PER_PHASE`` taps per
    phase pair on average (HH * WW / S**2), and rows' products of at most
    ``mec_conv.MAX_ROW_PRODUCT`` multiply-adds."""
    taps = sum(a.nk * b.nk for a, b in dx_plan.pairs)
    return (rows_possible(dx_plan)
            and taps >= MIN_TAPS_PER_PHASE * len(dx_plan.rows) * len(dx_plan.cols)
            and max((C * a.nk * b.nk * F * b.count for a, b in dx_plan.pairs), default=0)
            <= mec_conv.MAX_ROW_PRODUCT)


@dataclass(frozen=True)
class Filters:
    """The filters of each phase pair as rows (C, nk_rows * nk_cols * F) flipped, [one per
    ``dx_plan.pairs``], their columns ordered as the way they are multiplied reads dout:
    (k_rows, k_cols, f) by rows (``by_rows``), else (f, k_rows, k_cols) as ``_columns``'
    rows."""

    mats: list
    by_rows: bool


def filters(w, dx_plan: DxPlan) -> Filters:
    """``Filters`` of w (F, C, HH, WW) for dx_plan."""
    F, C = w.shape[:2]
    rows = by_rows(dx_plan, C, F)
    order = (1, 2, 3, 0) if rows else (1, 0, 2, 3)
    return Filters([np.ascontiguousarray(w[:, :, a.taps, b.taps][:, :, ::-1, ::-1]
                                         .transpose(order)).reshape(C, -1)
                    for a, b in dx_plan.pairs], rows)


def padded_dout(m: int, F: int, plan, dx_plan: DxPlan, dtype, channels_last=False):
    """A scratch buffer for the padded dout of m images, (m, F, Hd, Wd) (channels_last: (m, Hd,
    Wd, F), as ``Filters.by_rows`` reads it), zeros around; returns (the buffer, the view of its
    interior, (m, F, H_out, W_out), to write dout into)."""
    shape = (m, dx_plan.Hd, dx_plan.Wd, F) if channels_last else (m, F, dx_plan.Hd, dx_plan.Wd)
    buf = scratch.array("conv.dpad", shape, dtype)
    grid = buf.transpose(0, 3, 1, 2) if channels_last else buf  # (m, F, Hd, Wd)
    top, left = dx_plan.top, dx_plan.left
    grid[:, :, :top] = 0
    grid[:, :, top + plan.H_out:] = 0
    grid[:, :, top:top + plan.H_out, :left] = 0
    grid[:, :, top:top + plan.H_out, left + plan.W_out:] = 0
    return buf, grid[:, :, top:top + plan.H_out, left:left + plan.W_out]


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


def _by_rows(dpad, dx_plan: DxPlan, a: AxisPhase, b: AxisPhase, W_rows, out):
    """The correlation of phase pair (a, b) into out (m, C, count_a, count_b), MEC's way
    (``mec_conv``): the channels-last padded dout (m, Hd, Wd, F) lowered along W for the pair's
    columns into L (m, count_b, Hd, nk_b, F), so that each output pixel's taps are one run of
    L, and one small product per output row, written into out's plane of that row."""
    L = mec_conv.lower(dpad[:, :, dx_plan.left + b.start:], b.count, b.nk, 1, "conv.dlowered")
    fields = mec_conv.fields(L[:, :, dx_plan.top + a.start:], a.count, a.nk, 1)
    np.matmul(W_rows, fields.transpose(0, 1, 3, 2), out=out.transpose(0, 2, 1, 3))


def input_gradient(dpad, w_pairs: Filters, dx_plan: DxPlan, dx):
    """dx (m, C, H, W) of the block of images whose padded dout is ``dpad`` (``padded_dout``,
    channels last where ``w_pairs.by_rows``): for every phase pair, its pixels; w_pairs:
    ``filters(w, dx_plan)``."""
    m, C = dx.shape[:2]
    S, Wd = dx_plan.stride, dx_plan.Wd
    for (a, b), W_rows in zip(dx_plan.pairs, w_pairs.mats, strict=True):
        if w_pairs.by_rows:
            real = scratch.array("conv.dY", (m, C, a.count, b.count), dx.dtype)
            _by_rows(dpad, dx_plan, a, b, W_rows, real)
        else:
            Y = np.matmul(W_rows, _columns(dpad, dx_plan, a, b),
                          out=scratch.array("conv.dY", (C, m * a.count * Wd), dx.dtype))
            # the garbage columns dropped
            real = Y.reshape(C, m, a.count, Wd)[..., :b.count].transpose(1, 0, 2, 3)
        dx[:, :, a.first::S, b.first::S] = real
    for a in dx_plan.rows:  # the phases no tap reads
        for b in dx_plan.cols:
            if not (a.nk and b.nk):
                dx[:, :, a.first::S, b.first::S] = 0
