"""Fast max- and average-pooling layers: same signatures and results as the naive ones in
``layers.py``, for every window and stride ``shapes.pool_geometry`` accepts (windows may overlap),
in float32 and float64. ``fast_layers`` re-exports the four layers.

The batch is split across threads (``parallel``) as the fast convolutions split theirs, and each
thread's slice into chunks of about ``layers.CHUNK_BYTES`` of x: a pooling layer makes one
strided pass per window tap, and a chunk's passes then run from the core's cache instead of
memory (up to 3 times faster: max pooling 3x3/2 of bench/layers.py's float64 batch).

Max pooling keeps, like torch, the flat index of each window's maximum in x, so that its backward
pass is one scatter of dout onto zeros. Gradient ties go to the FIRST maximum of a window in
row-major (i, j) order, as in the naive layer. Average pooling sums each window's rows, then
its columns: at stride 1 as shifted copies of each chunk flattened (long vector loops), at
larger strides over each band of windows' rows only; its backward pass is the transpose of
those sums.
"""

from __future__ import annotations

import math

import numpy as np

from cs231n_lib import parallel, scratch
from cs231n_lib.im2col import window_view
from cs231n_lib.layers import CHUNK_BYTES, _check_shape, _chunk_map, relu_grad_into, relu_into
from cs231n_lib.shapes import pool_geometry

# Bytes from which a new array is memory fresh from the system, which comes zeroed (glibc's
# largest mmap threshold): np.zeros costs nothing more there, while below it calloc clears a
# recycled block in the calling thread (1.3 ms for 16 MB), which the chunks' own fills do in
# parallel, from the cache.
FRESH_BYTES = 32 << 20
# Max pooling's backward pass with overlapping windows (np.add.at, which holds the GIL) splits
# its batch in one slice per thread from this size of x, when dx is zeroed by the slices (not
# fresh memory): a thread's zeroing then runs while the other's scatter does. Measured (2
# threads, interleaved, 3x3/2 and 3x3/1): 0.67-0.90 of the time from 8.9 MB of x, 1.04-1.35 at 3
# MB and below; on fresh memory (whose page faults the two threads take together) 0.81-1.25.
SPLIT_SCATTER_BYTES = 8 << 20
# Average pooling at this stride or more sums each band of windows' rows first
# (``_strided_mean``), at smaller strides shifted copies of every pixel (``_window_mean``).
ROWS_FIRST_MIN_STRIDE = 2


def _each_chunk(x, passes, fn):
    """Call ``fn(s)`` for consecutive slices s of x's batch that together cover it: the batch is
    split across threads (``passes``: the layer's passes over x, for ``parallel.batch_slices``;
    0: one thread, the caller's) and each thread's slice into chunks of at most
    ``layers.CHUNK_BYTES`` of x. No call for an empty x (no image or no channel): its outputs
    are empty."""
    if x.size == 0:
        return
    with parallel.Batch.over(x.shape[0], parallel.PASS_WORK * passes * x.size) as batch:
        _chunk_map(batch, x, fn)


def _pool_taps(x, geometry, writeable=False):
    """The (N, C, H_out, W_out) tap planes of every window of x (views), in row-major window
    order; ``geometry`` is ``pool_geometry``'s tuple. writeable: views to write a gradient
    through, one plane at a time (where windows overlap, planes alias)."""
    ph, pw, stride = geometry[:3]
    win = window_view(x, ph, pw, stride, writeable=writeable)
    return [win[:, :, i, j] for i in range(ph) for j in range(pw)]


def _overlap(geometry):
    """Whether neighbouring windows share pixels (stride below the window's height or width)."""
    ph, pw, stride = geometry[:3]
    return stride < max(ph, pw)


def max_pool_forward_fast(x, pool_param):
    """Fast forward pass for a max-pooling layer; same contract as ``max_pool_forward_naive``.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - pool_param: dict with keys 'pool_height', 'pool_width' and 'stride'; windows may overlap.

    Returns a tuple of:
    - out: Output data of shape (N, C, H_out, W_out), dtype of x.
    - cache: (x, pool_param, argmax): as in the naive layer, plus where each window's gradient
      will go: argmax (N, C, H_out, W_out), intp, the index into ``x.ravel()`` of the window's
      FIRST maximum (row-major order). Computed here, as torch keeps its indices, so that the
      backward pass is one scatter.
    """
    geometry = pool_geometry(x.shape, pool_param)
    ph, pw, _, H_out, W_out = geometry
    out = np.empty((*x.shape[:2], H_out, W_out), dtype=x.dtype)
    argmax = np.empty(out.shape, dtype=np.intp)
    starts = {}  # the chunks' windows' top-left pixels, by chunk size

    def chunk(s):
        taps = _pool_taps(x[s], geometry)
        first = _first_max(taps, _window_max(taps, out[s]))
        _flat_index(first, x.shape, s.start, geometry, argmax[s], starts)

    _each_chunk(x, ph * pw, chunk)
    return out, (x, pool_param, argmax)


def _window_max(taps, out):
    """Elementwise maximum of the tap planes into ``out``: every window's maximum at once."""
    if len(taps) == 1:
        out[...] = taps[0]
        return out
    np.maximum(taps[0], taps[1], out=out)
    for tap in taps[2:]:
        np.maximum(out, tap, out=out)
    return out


def _first_max(taps, out):
    """Which tap of each window holds its FIRST maximum ``out`` (scratch, unsigned ints): the
    number of leading taps strictly below the maximum. Plain comparisons and adds: numpy's
    masked assignments (np.where, putmask, copyto(where=)) are ~5x slower. (A NaN window: no
    tap is below it, so tap 0.)"""
    below = _scratch_like("pool.below", out, bool)  # every tap so far below the maximum
    below.fill(True)
    less = _scratch_like("pool.less", out, bool)
    first = _scratch_like("pool.first", out, np.min_scalar_type(len(taps) - 1))
    first.fill(0)
    for tap in taps[:-1]:
        np.less(tap, out, out=less)
        below &= less
        first += below.view(np.uint8)  # True counts as 1 (a bool operand: 2x slower)
    return first


def _order(a):
    """a's axes from the outermost in memory (the largest step) to the innermost."""
    return sorted(range(a.ndim), key=lambda axis: -abs(a.strides[axis]))


def _scratch_like(role, like, dtype):
    """Scratch memory (``scratch.array``) of ``like``'s shape, laid out in memory as ``like`` is
    (C order for a C-contiguous array, channels last for a channels-last view): numpy's
    elementwise loops run along memory, fast only when all operands agree."""
    order = _order(like)
    buf = scratch.array(role, [like.shape[axis] for axis in order], dtype)
    return buf.transpose(np.argsort(order))


def _flat_index(first, x_shape, start, geometry, out, starts):
    """``out`` = the index into x.ravel() of tap ``first`` of each window of images ``start``,
    ``start + 1``, ... of x (shape ``x_shape``): the tap's offset in its window, plus the
    window's top-left pixel. ``starts``: a dict kept by the caller for its chunks, which holds
    the top-left pixels of a chunk of each size (``_window_starts``), computed once."""
    ph, pw = geometry[:2]
    _, C, H, W = x_shape
    n = first.shape[0]
    if n not in starts:
        starts[n] = _window_starts(n, C, H, W, geometry)
    tap_offset = (W * np.arange(ph)[:, None] + np.arange(pw)).ravel()
    np.take(tap_offset, first, out=out, mode="clip")  # (clip: no buffering; all in range)
    out += starts[n]
    if start:
        out += start * C * H * W


def _window_starts(n, C, H, W, geometry):
    """The index into the ravel of n images (C, H, W) of every window's top-left pixel, shape
    (n, C, H_out, W_out)."""
    stride, H_out, W_out = geometry[2:]
    planes = np.arange(n * C).reshape(n, C, 1, 1) * (H * W)
    return planes + stride * (W * np.arange(H_out)[:, None] + np.arange(W_out))


def max_pool_backward_fast(dout, cache):
    """Fast backward pass for a max-pooling layer.

    Inputs:
    - dout: Upstream derivatives of shape (N, C, H_out, W_out).
    - cache: As returned by ``max_pool_forward_fast``.

    Returns:
    - dx: Gradient with respect to x (shape and dtype of x); each window's gradient goes to its
      FIRST maximum in row-major order (overlapping windows add up).
    """
    x, pool_param, argmax = cache
    geometry = pool_geometry(x.shape, pool_param)
    _check_shape("dout", dout, argmax.shape)
    overlap = _overlap(geometry)
    fresh = x.nbytes > FRESH_BYTES
    dx = (np.zeros if fresh else np.empty)(x.shape, dtype=x.dtype)
    flat = dx.reshape(-1)

    def chunk(s):
        if not fresh:
            dx[s].fill(0)
        _scatter(flat, argmax[s], dout[s], overlap)

    if overlap and not fresh and x.nbytes >= SPLIT_SCATTER_BYTES:
        # one slice per thread, unchunked: each zeroes its slice while the other's
        # np.add.at, which holds the GIL, runs
        with parallel.Batch.over(x.shape[0], parallel.PASS_WORK * x.size) as batch:
            batch.map(chunk)
    else:
        # np.add.at holds the GIL: chunks on two threads take longer than on one (measured,
        # 3x3/2 on bench/layers.py's float32 batch: 2.7 ms against 1.9)
        _each_chunk(x, 0 if overlap else 2, chunk)
    return dx


def _scatter(flat, index, grad, overlap):
    """Max pooling's backward pass onto the zeros of ``flat``: each window's gradient ``grad``
    to element ``index`` of flat (same shapes); ``overlap``: two windows may send to one
    pixel, whose gradients then add up."""
    index, grad = index.reshape(-1), grad.reshape(-1)
    if overlap:
        np.add.at(flat, index, grad)
    else:
        flat[index] = grad


class PooledBlocks:
    """ReLU then max pooling of a convolution's output, chunk by chunk as the convolution
    computes it (``fast_layers.conv_relu_pool_forward_fast``): each chunk is pooled while it
    is in the core's cache, and the convolution's output is never stored.

    Since max(relu(y)) = relu(max(y)), each chunk is pooled before the ReLU, which then runs on
    the pooled output (a quarter of the size, for 2x2 windows). Where a window's maximum is
    positive, its FIRST maximum is the same before and after the ReLU; where it is not, the
    ReLU passes no gradient to any of its pixels. So ``out`` and the gradients are exactly those
    of conv - ReLU - ``max_pool_forward_fast``.

    Keeps, for the backward pass, the pooled output ``out`` (N, F, H_out, W_out) and ``tap``:
    which tap of each window holds its first maximum (row-major; the smallest unsigned ints),
    1/8 of the memory of the flat indices ``max_pool_forward_fast`` keeps.
    """

    def __init__(self, conv_shape, pool_param, dtype):
        self.geometry = pool_geometry(conv_shape, pool_param)
        self.conv_shape = tuple(conv_shape)
        ph, pw, stride, H_out, W_out = self.geometry
        self.out = np.empty((*conv_shape[:2], H_out, W_out), dtype=dtype)
        self.tap = np.empty(self.out.shape, dtype=np.min_scalar_type(ph * pw - 1))
        image_bytes = np.dtype(dtype).itemsize * math.prod(conv_shape[1:])
        self.chunk = max(1, CHUNK_BYTES // max(1, image_bytes))  # images per chunk
        self._starts = {}  # for the backward pass's flat indices (``_flat_index``)

    def forward(self, start, y, bias=None):
        """Pool the convolution's output y (m, F, H, W) of images start.. (scratch memory, in
        C order or channels last: ``mec_conv``'s (m, H, W, F) as y.transpose(0, 3, 1, 2)) into
        ``out``, and keep its taps; bias as in ``forward_taps``."""
        self.forward_taps(start, _pool_taps(y, self.geometry), bias)

    @property
    def phases(self) -> int:
        """s when the windows are s x s at stride s (they tile the convolution's output), else
        1: the phases a channels-last output's columns may be ordered by for
        ``forward_phased``."""
        ph, pw, stride = self.geometry[:3]
        return stride if ph == pw == stride else 1

    def forward_phased(self, start, y, bias=None):
        """``forward`` from a channels-last y (m, H, W, F) whose columns are ordered by phase,
        (w mod s, w div s) with s = ``phases`` (``mec_conv.forward(..., phases=s)``): each tap
        of the windows is then a plane of runs of W / s * F numbers (against F in the natural
        order), which numpy's loops run along. (Other windows: s = 1, y in the natural order.)"""
        s = self.phases
        if s == 1:
            self.forward(start, y.transpose(0, 3, 1, 2), bias)
            return
        m, H, W, F = y.shape
        grid = y.reshape(m, H // s, s, s, W // s, F)  # (image, h', i, j, w', f)
        self.forward_taps(start, [grid[:, :, i, j].transpose(0, 3, 1, 2) for i in range(s)
                                  for j in range(s)], bias)

    def forward_taps(self, start, taps, bias=None):
        """``forward`` from the planes of the windows' taps (m, F, H_out, W_out) of images
        start.., in row-major window order, whatever their layout (views into ``forward``'s y,
        or ``s2d_conv``'s four output planes, filter-major): pooled in ``out`` itself when they
        are laid out as it is, else in their own layout, and then copied into ``out``. bias
        (F,): added to the pooled output, where the taps do not hold it yet (max(y) + b is
        max(y + b): rounding is monotone)."""
        chunk = slice(start, start + taps[0].shape[0])
        out = self.out[chunk]
        pooled = (out if _order(taps[0]) == _order(out)
                  else _scratch_like("pool.pooled", taps[0], out.dtype))
        _window_max(taps, pooled)
        self.tap[chunk] = _first_max(taps, pooled)
        if bias is not None:
            np.add(pooled, bias[:, None, None], out=out)
        elif pooled is not out:
            out[...] = pooled
        relu_into(out, out)

    def backward(self, dout, start, d):
        """The gradient of the convolution's output of images start.. into d (m, F, H, W),
        contiguous, from the gradient ``dout`` of the whole pooled output: each window's
        gradient goes, if its maximum is positive (the ReLU), to its first maximum
        (overlapping windows add up)."""
        chunk = slice(start, start + d.shape[0])
        shape = (*d.shape[:2], *self.out.shape[2:])
        g = relu_grad_into(dout[chunk], self.out[chunk], scratch.array("pool.grad", shape,
                                                                       d.dtype))
        index = scratch.array("pool.index", shape, np.intp)
        _flat_index(self.tap[chunk], d.shape, 0, self.geometry, index, self._starts)
        d.fill(0)
        _scatter(d.reshape(-1), index, g, _overlap(self.geometry))


def avg_pool_forward_fast(x, pool_param):
    """Fast forward pass for an average-pooling layer; same contract as
    ``avg_pool_forward_naive``.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - pool_param: dict with keys 'pool_height', 'pool_width' and 'stride'; windows may overlap.

    Returns a tuple of:
    - out: Output data of shape (N, C, H_out, W_out), dtype of x.
    - cache: (x, pool_param).
    """
    geometry = pool_geometry(x.shape, pool_param)
    ph, pw, _, H_out, W_out = geometry
    out = np.empty((*x.shape[:2], H_out, W_out), dtype=x.dtype)
    _each_chunk(x, ph + pw, lambda s: _window_mean(x[s], geometry, out[s]))
    return out, (x, pool_param)


def _window_mean(x, geometry, out):
    """Every window's average into ``out``, from two sums of shifted copies of the whole chunk
    flattened: over the ph taps along H (shifts by a row, W), then over the pw taps along W
    (shifts by 1), which leaves in element k the sum of the window whose top-left pixel is k;
    ``out`` reads the windows' corners (``_corners``). Each sum is one long contiguous loop,
    which numpy runs with vector instructions, over all pixels. At stride 1 every pixel is a
    corner and this is the faster way; from stride 2 on, sums over just the windows' rows
    (``_strided_mean``) do less work."""
    ph, pw, stride = geometry[:3]
    if stride >= ROWS_FIRST_MIN_STRIDE:
        return _strided_mean(x, geometry, out)
    W = x.shape[3]
    flat = x.reshape(-1)
    rows = scratch.array("pool.rows", (flat.size - (ph - 1) * W,), x.dtype)
    _add_shifted([flat[i * W:i * W + rows.size] for i in range(ph)], rows)
    sums = scratch.array("pool.sums", (rows.size - (pw - 1),), x.dtype)
    _add_shifted([rows[j:j + sums.size] for j in range(pw)], sums)
    np.divide(_corners(sums, x.shape, geometry), ph * pw, out=out)
    return out


def _strided_mean(x, geometry, out):
    """``_window_mean`` at a stride of 2 or more: the ph rows of each band of windows summed
    along whole image rows (contiguous loops W long), then each window's pw columns of those
    sums: the same adds in the same order as the shifted sums, on H_out rows instead of all H.
    Measured (2 threads, 64 images of 64 channels, interleaved against the shifted sums;
    2x2/2, 3x3/2, 5x5/2, 3x3/3, 2x2/3, float32 and float64): forward 0.39-0.81 of the time,
    backward (``_strided_mean_adjoint``) 0.30-0.69; at stride 1 the shifted sums are the
    faster (3x3/1: 0.83-0.90 of this one's time)."""
    ph, pw, S, H_out, W_out = geometry
    rows = scratch.array("pool.rows", (*x.shape[:2], H_out, x.shape[3]), x.dtype)
    _add_shifted(_strided_views(x, 2, S, ph, H_out), rows)
    _add_shifted(_strided_views(rows, 3, S, pw, W_out), out)
    np.divide(out, ph * pw, out=out)
    return out


def _strided_views(a, axis, stride, taps, n):
    """The views of a (N, C, H, W) that take n elements along ``axis`` (2 or 3), every
    ``stride``-th from offset 0, 1, ..., taps - 1: each tap of every window along that axis."""
    return [a[(slice(None),) * axis + (slice(t, t + stride * (n - 1) + 1, stride),)]
            for t in range(taps)]


def _corners(flat, x_shape, geometry):
    """The (N, C, H_out, W_out) view of ``flat`` (element k for pixel k of an x of shape
    x_shape, flattened) at every window's top-left pixel."""
    stride, H_out, W_out = geometry[2:]
    N, C, H, W = x_shape
    steps = np.array([C * H * W, H * W, stride * W, stride]) * flat.itemsize
    return np.lib.stride_tricks.as_strided(flat, (N, C, H_out, W_out), tuple(steps))


def _add_shifted(views, out):
    """out = the sum of the views (all of out's shape)."""
    if len(views) == 1:
        out[...] = views[0]
        return
    np.add(views[0], views[1], out=out)
    for view in views[2:]:
        out += view


def avg_pool_backward_fast(dout, cache):
    """Fast backward pass for an average-pooling layer.

    Inputs:
    - dout: Upstream derivatives of shape (N, C, H_out, W_out).
    - cache: As returned by ``avg_pool_forward_fast``.

    Returns:
    - dx: Gradient with respect to x, shape and dtype of x.
    """
    x, pool_param = cache
    geometry = pool_geometry(x.shape, pool_param)
    ph, pw, _, H_out, W_out = geometry
    _check_shape("dout", dout, (*x.shape[:2], H_out, W_out))
    dx = np.empty(x.shape, dtype=x.dtype)  # every pixel is written
    _each_chunk(x, ph + pw, lambda s: _window_mean_adjoint(dout[s], geometry, dx[s]))
    return dx


def _window_mean_adjoint(dout, geometry, dx):
    """The transpose of ``_window_mean`` into ``dx`` (contiguous): each window's share
    dout / (ph * pw) at its top-left pixel, 0 elsewhere, then the transposes of the two
    shifted sums, along W and then along H."""
    ph, pw = geometry[:2]
    if geometry[2] >= ROWS_FIRST_MIN_STRIDE:
        _strided_mean_adjoint(dout, geometry, dx)
        return
    W = dx.shape[3]
    flat = dx.reshape(-1)  # a view: dx is contiguous
    rows = scratch.array("pool.rows", (flat.size - (ph - 1) * W,), dx.dtype)
    sums = scratch.array("pool.sums", (rows.size - (pw - 1),), dx.dtype)
    sums.fill(0)
    np.divide(dout, ph * pw, out=_corners(sums, dx.shape, geometry))
    _spread_shifted(sums, rows, 1, pw)
    _spread_shifted(rows, flat, W, ph)


def _strided_mean_adjoint(dout, geometry, dx):
    """The transpose of ``_strided_mean`` into dx: each window's share dout / (ph * pw) onto
    the pw columns of its band's rows, then those rows onto the band's ph rows of dx."""
    ph, pw, S, H_out, _ = geometry
    share = np.divide(dout, ph * pw, out=scratch.array("pool.share", dout.shape, dx.dtype))
    rows = scratch.array("pool.rows", (*dx.shape[:2], H_out, dx.shape[3]), dx.dtype)
    _spread_strided(share, rows, 3, S, pw)
    _spread_strided(rows, dx, 2, S, ph)


def _spread_strided(src, out, axis, stride, taps):
    """out = the transpose of summing out's ``_strided_views`` along ``axis``: src added onto
    each view in order, 0 where none reaches. The first ``stride`` views are disjoint (one
    offset mod the stride each) and are written, not added: no pass zeroes what they cover."""
    n = src.shape[axis]
    views = _strided_views(out, axis, stride, taps, n)
    if taps < stride:  # the gaps between windows
        out.fill(0)
    else:  # what lies past the first ``stride`` views (more views will add onto it)
        out[(slice(None),) * axis + (slice(stride * n, None),)] = 0
    for t, view in enumerate(views):
        if t < stride:
            view[...] = src
        else:
            view += src


def _spread_shifted(src, out, step, taps):
    """out = the transpose of ``_add_shifted`` over the shifts of out by 0, step, ...,
    (taps - 1) * step: src added at each of those offsets, 0 where none reaches."""
    n = src.size
    out[n:] = 0
    out[:n] = src
    for t in range(1, taps):
        out[t * step:t * step + n] += src
