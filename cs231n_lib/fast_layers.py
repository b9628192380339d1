"""Fast convolution and pooling layers: same signatures and results as the naive ones.

Each function here computes exactly what its namesake ``*_naive`` in ``layers.py`` computes
(up to float rounding), for every stride, pad, dilation and filter size that
``shapes.conv_geometry`` / ``shapes.pool_geometry`` accept, in float32 and float64. There are no
Python loops over N, H or W: the only loops run over the HH * WW taps of a filter or a pooling
window. Speed is measured, as ratios, by ``bench/conv.py``.

Convolution paths (``conv_forward_fast`` picks one; the cache remembers which):
- "winograd": 3 x 3 filters at stride 1 without dilation and with C >= 8 input channels,
  Winograd F(4x4, 3x3) (``winograd.py``).
- "gemm": everything else: the receptive fields copied into a matrix X_col (im2col), then one
  matrix multiply per image that writes the output in NCHW order. Its backward pass adds the
  columns of the input gradient back (col2im) through phase planes (``planes.py``) for
  strided layers such as the CS231n notebook's, with contiguous adds instead of strided ones.
Both split the batch into slices run side by side in threads (``parallel.py``; the slices are
kept in the cache so that the backward pass splits the same way) and keep their temporaries in
per-thread scratch buffers reused from call to call (``scratch.py``); so does max pooling.
``conv_forward_im2col`` is the textbook path built on ``im2col`` / ``col2im`` (notebook
01_convolution); the default path never calls them, so the fast layers still work in the
student edition of the library, where those two are exercises.

Max-pool gradient ties go to the FIRST maximum of a window in row-major (i, j) order, as in the
naive layer.
"""

from __future__ import annotations

import numpy as np

from cs231n_lib import parallel, planes, scratch, winograd
from cs231n_lib.im2col import col2im, im2col, pad_hw, window_view
from cs231n_lib.layers import _check_shape
from cs231n_lib.shapes import conv_geometry, pool_geometry


def conv_forward_fast(x, w, b, conv_param):
    """Fast forward pass for a convolutional layer; same contract as ``conv_forward_naive``.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - w: Filter weights of shape (F, C, HH, WW).
    - b: Biases of shape (F,).
    - conv_param: dict with optional keys 'stride' (default 1), 'pad' (zero padding per side,
      default 0) and 'dilation' (default 1).

    Returns a tuple of:
    - out: Output data of shape (N, F, H_out, W_out), dtype numpy's promotion of x, w, b.
    - cache: (x, w, b, conv_param, path, saved) where path names the algorithm used and saved
      holds what its backward pass reuses: for each slice of the batch (``parallel``), X_col
      (with a last row of ones) for "gemm", the transformed tiles V for "winograd" (which also
      keeps the transformed filters U once).
    """
    (stride, pad, dilation, H_out, W_out), x_, w_, b_ = _conv_inputs(x, w, b, conv_param)
    N, F = x.shape[0], w.shape[0]
    out = np.empty((N, F, H_out, W_out), dtype=x_.dtype)
    with parallel.Batch(parallel.batch_slices(N, out.size * w[0].size)) as batch:
        if winograd.applies(w.shape, stride, dilation):
            path, shared = "winograd", winograd.filters(w_)

            def part(s):
                return winograd.conv_forward(x_[s], shared, b_, pad, out[s])
        else:
            path, shared = "gemm", None
            W_row = np.concatenate([w_.reshape(F, -1), b_[:, None]], axis=1)  # bias column

            def part(s):
                return _gemm_forward(x_[s], W_row, w.shape, (stride, pad, dilation), _columns,
                                     out[s])
        saved = (shared, batch.slices, batch.map(part))
    return out, (x, w, b, conv_param, path, saved)


def conv_backward_fast(dout, cache, *, need_dx=True):
    """Fast backward pass for a convolutional layer; same contract as ``conv_backward_naive``.

    Inputs:
    - dout: Upstream derivatives of shape (N, F, H_out, W_out).
    - cache: As returned by ``conv_forward_fast``.
    - need_dx: keyword only; False when nobody needs the input gradient (a network's first
      layer: the data needs none): dx is then None and its work is skipped (the dX matrix
      multiply and col2im of the gemm path; the dV multiplies, their transform and the
      overlap-add of the Winograd path). dw and db are the same either way.

    Returns a tuple of:
    - dx: Gradient with respect to x, shape and dtype of x (None when need_dx is False).
    - dw: Gradient with respect to w, shape and dtype of w.
    - db: Gradient with respect to b, shape and dtype of b.
    """
    x, w, b, conv_param, path, (shared, slices, parts) = cache
    (stride, pad, dilation, _, _), dout = _conv_dout(dout, x, w, conv_param)
    dx = np.empty(x.shape, dtype=dout.dtype) if need_dx else None
    with parallel.Batch(slices) as batch:
        if path == "winograd":
            def part(s, V):
                return winograd.conv_backward(dout[s], shared, V, pad,
                                              None if dx is None else dx[s], x[s].shape)
        else:
            w_row = w.reshape(w.shape[0], -1).astype(dout.dtype, copy=False)
            to_image = _add_columns if need_dx else None

            def part(s, X_col):
                return _gemm_backward(dout[s], w_row, w.shape, X_col, (stride, pad, dilation),
                                      to_image, None if dx is None else dx[s])
        grads = batch.map(part, parts)  # summed over slices below
        if path == "winograd":
            dU, db = (sum(g) for g in zip(*grads, strict=True))
            dw = winograd.filters_adjoint(dU)
        else:
            dW_row = sum(grads)  # (F, C*HH*WW + 1): dw, then db in the bias column
            dw, db = dW_row[:, :-1].reshape(w.shape), dW_row[:, -1]
    return (_like(dx, x) if need_dx else None), _like(dw, w), _like(db, b)


def conv_forward_im2col(x, w, b, conv_param):
    """Textbook vectorised convolution: ``im2col`` then one matrix multiply.

    Same inputs and outputs as ``conv_forward_fast``; cache is (x, w, b, conv_param, X_col)
    with X_col of shape (C * HH * WW, N * H_out * W_out).
    """
    (stride, pad, dilation, H_out, W_out), x_, w_, b_ = _conv_inputs(x, w, b, conv_param)
    F = w.shape[0]
    out = np.empty((x.shape[0], F, H_out, W_out), dtype=x_.dtype)
    X_col = _gemm_forward(x_, w_.reshape(F, -1), w.shape, (stride, pad, dilation), im2col, out)
    out += b_[:, None, None]
    return out, (x, w, b, conv_param, X_col)


def conv_backward_im2col(dout, cache):
    """Backward pass of ``conv_forward_im2col``: dw = dout @ X_col.T, dx = col2im(w.T @ dout)."""
    x, w, b, conv_param, X_col = cache
    (stride, pad, dilation, _, _), dout = _conv_dout(dout, x, w, conv_param)

    def to_image(dX, x_shape, *geometry, out):  # (N, C*HH*WW, H_out, W_out) -> col2im's layout
        out[...] = col2im(dX.transpose(1, 0, 2, 3).reshape(dX.shape[1], -1), x_shape, *geometry)

    dx = np.empty(x.shape, dtype=dout.dtype)
    w_row = w.reshape(w.shape[0], -1).astype(dout.dtype, copy=False)
    dw = _gemm_backward(dout, w_row, w.shape, X_col, (stride, pad, dilation), to_image, dx)
    return _like(dx, x), _like(dw.reshape(w.shape), w), _like(dout.sum(axis=(0, 2, 3)), b)


def _conv_inputs(x, w, b, conv_param):
    """Validate a convolution; return its geometry (stride, pad, dilation, H_out, W_out) and
    x, w, b in the dtype the layer computes in (numpy's promotion of the three, as in the naive
    layer)."""
    geometry = conv_geometry(x.shape, w.shape, conv_param)
    _check_shape("b", b, (w.shape[0],))
    dtype = np.result_type(x, w, b)
    return geometry, *(a.astype(dtype, copy=False) for a in (x, w, b))


def _conv_dout(dout, x, w, conv_param):
    """Validate dout's shape; return the geometry (as ``_conv_inputs``) and dout in the
    computing dtype."""
    geometry = conv_geometry(x.shape, w.shape, conv_param)
    _check_shape("dout", dout, (x.shape[0], w.shape[0], *geometry[3:]))
    return geometry, dout.astype(np.result_type(x, w, dout), copy=False)


def _like(grad, a):
    """``grad`` in the dtype of the input it is the gradient of (no copy when it already is)."""
    return grad.astype(a.dtype, copy=False)


def _per_image(X_col, N, P):
    """View X_col (K, N*P) as N matrices (K, P): columns are ordered (n, h_out, w_out)."""
    return X_col.reshape(X_col.shape[0], N, P).transpose(1, 0, 2)  # (N, K, P), no copy


def _gemm_forward(x, W_row, w_shape, geometry, to_columns, out):
    """Convolution of a batch x as matrix multiplies W_row @ X_col, X_col (K, N*H_out*W_out)
    from ``to_columns`` (``im2col``, or its private copy ``_columns`` which appends a row of
    ones: then W_row (F, K) ends with the bias as an extra column, saving a pass over the
    output). One multiply per image writes ``out`` (N, F, H_out, W_out) in NCHW order
    directly. Returns X_col."""
    N = x.shape[0]
    F, _, HH, WW = w_shape
    X_col = to_columns(x, HH, WW, *geometry)
    P = out.shape[2] * out.shape[3]
    np.matmul(W_row, _per_image(X_col, N, P), out=out.reshape(N, F, P))  # (N, F, H_out*W_out)
    return X_col


def _gemm_backward(dout, w_row, w_shape, X_col, geometry, to_image, dx):
    """Backward of ``_gemm_forward`` on a batch: writes dx = to_image(w.T @ dout), with dX of
    shape (N, C*HH*WW, H_out, W_out), unless to_image is None (dx not needed: no dX at all);
    returns dW_row, the sum over images of dout @ X_col.T (its last column is db when X_col
    has the row of ones)."""
    N, F = dout.shape[:2]
    HH, WW = w_shape[2:]
    K, P = w_row.shape[1], dout.shape[2] * dout.shape[3]
    d3 = dout.reshape(N, F, P)
    dW_n = scratch.array("gemm.dW", (N, F, X_col.shape[0]), d3.dtype)  # per image, then summed
    dW_row = np.matmul(d3, _per_image(X_col, N, P).transpose(0, 2, 1), out=dW_n).sum(axis=0)
    if to_image is None:
        return dW_row
    dX = np.matmul(w_row.T, d3, out=scratch.array("gemm.dX", (N, K, P), d3.dtype))
    to_image(dX.reshape(N, K, *dout.shape[2:]), dx.shape, HH, WW, *geometry, out=dx)
    return dW_row


# ``im2col`` and ``col2im`` are notebook exercises, stubbed in the student edition, so the fast
# path keeps its own versions of them.
def _columns(x, HH, WW, stride, pad, dilation):
    """``im2col`` for the fast path, plus a last row of ones (for the bias): X_col of shape
    (C*HH*WW + 1, N*H_out*W_out), rows (c, i, j)."""
    N, C, H, W = x.shape
    xp = pad_hw(x, pad, out=scratch.array("gemm.xp", (N, C, H + 2 * pad, W + 2 * pad), x.dtype))
    win = window_view(xp, HH, WW, stride, dilation)  # (N, C, HH, WW, H_out, W_out)
    H_out, W_out = win.shape[4:]
    K = C * HH * WW
    X_col = np.empty((K + 1, N * H_out * W_out), dtype=x.dtype)
    # (C, HH, WW, N, H_out, W_out) -> (C*HH*WW, N*H_out*W_out): the one copy of the forward
    np.copyto(X_col[:K].reshape(C, HH, WW, N, H_out, W_out), win.transpose(1, 2, 3, 0, 4, 5))
    X_col[K] = 1
    return X_col


def _add_columns(dX, x_shape, HH, WW, stride, pad, dilation, out):
    """``col2im`` for the fast path, on the per-image layout dX (N, C*HH*WW, H_out, W_out; may
    be overwritten): add every column back onto its receptive field; the result goes to
    ``out`` (x_shape)."""
    N, C, H, W = x_shape
    H_out, W_out = dX.shape[2:]
    if planes.applies(stride, dilation, WW):  # strided: contiguous adds into phase planes
        layout = planes.Layout(N, C, H, W, HH, WW, stride, pad, dilation, H_out, W_out)
        planes.add_columns(dX, layout, out)
        return
    xp = scratch.array("gemm.xp", (N, C, H + 2 * pad, W + 2 * pad), dX.dtype)
    xp.fill(0)
    win = window_view(xp, HH, WW, stride, dilation, writeable=True)
    cols = dX.reshape(N, C, HH, WW, H_out, W_out)
    for i in range(HH):
        for j in range(WW):
            win[:, :, i, j] += cols[:, :, i, j]  # one tap plane never aliases itself
    out[...] = xp[:, :, pad:pad + H, pad:pad + W]


def _pool_taps(x, pool_param, writeable=False):
    """Validate a pooling layer; return the window view (N, C, ph, pw, H_out, W_out) of x, its
    (N, C, H_out, W_out) tap planes in row-major window order, and whether the windows tile x
    exactly (stride == pool_height == pool_width: every pixel is in exactly one window)."""
    ph, pw, stride, _, _ = pool_geometry(x.shape, pool_param)
    win = window_view(x, ph, pw, stride, writeable=writeable)
    taps = [win[:, :, i, j] for i in range(ph) for j in range(pw)]
    return taps, ph == pw == stride


def _pool_batch(x, taps):
    """The parallel region of a pooling layer on x: its batch slices, one pass per tap."""
    return parallel.Batch(parallel.batch_slices(x.shape[0], parallel.PASS_WORK * taps * x.size))


def max_pool_forward_fast(x, pool_param):
    """Fast forward pass for a max-pooling layer; same contract as ``max_pool_forward_naive``.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - pool_param: dict with keys 'pool_height', 'pool_width' and 'stride'; windows may overlap.

    Returns a tuple of:
    - out: Output data of shape (N, C, H_out, W_out), dtype of x.
    - cache: (x, pool_param, winner): as in the naive layer, plus where each window's gradient
      will go: winner (pool_height * pool_width, N, C, H_out, W_out), bool, True at tap k of a
      window when that tap holds the window's FIRST maximum (row-major order). Computed here
      so that the backward pass is one multiply per tap (as torch keeps its argmax indices).
    """
    ph, pw, _, H_out, W_out = pool_geometry(x.shape, pool_param)
    out = np.empty((*x.shape[:2], H_out, W_out), dtype=x.dtype)
    winner = np.empty((ph * pw, *out.shape), dtype=bool)

    def part(s):
        taps = _pool_taps(x[s], pool_param)[0]
        _first_max(taps, _window_max(taps, out[s]), winner[:, s])

    with _pool_batch(x, ph * pw) as batch:
        batch.map(part)
    return out, (x, pool_param, winner)


def _window_max(taps, out):
    """Elementwise maximum of the tap planes into ``out``: every window's maximum at once."""
    if len(taps) == 1:
        out[...] = taps[0]
        return out
    np.maximum(taps[0], taps[1], out=out)
    for tap in taps[2:]:
        np.maximum(out, tap, out=out)
    return out


def _first_max(taps, out, winner):
    """winner[k] = tap k holds the FIRST maximum ``out`` of its window: every tap before it is
    strictly below the maximum and it is not. Plain comparisons: numpy's masked assignments
    (np.where, copyto(where=)) are ~10x slower."""
    shape = out.shape
    below = scratch.array("pool.below", shape, bool)  # every tap so far below the maximum
    below.fill(True)
    less = scratch.array("pool.less", shape, bool)
    for k, tap in enumerate(taps[:-1]):
        np.less(tap, out, out=less)
        np.greater(below, less, out=winner[k])  # below so far, and this one is not
        below &= less
    winner[-1] = below  # (a NaN window: no tap is below it, so tap 0 wins)


def max_pool_backward_fast(dout, cache):
    """Fast backward pass for a max-pooling layer.

    Inputs:
    - dout: Upstream derivatives of shape (N, C, H_out, W_out).
    - cache: As returned by ``max_pool_forward_fast``.

    Returns:
    - dx: Gradient with respect to x (shape and dtype of x); each window's gradient goes to its
      FIRST maximum in row-major order.
    """
    x, pool_param, winner = cache
    taps, tiled = _pool_taps(x, pool_param)
    _check_shape("dout", dout, taps[0].shape)
    dx = np.empty(x.shape, dtype=x.dtype)  # every pixel is written
    with _pool_batch(x, len(taps)) as batch:
        batch.map(lambda s: _max_pool_backward(dout[s], winner[:, s], pool_param, tiled, dx[s]))
    return dx


def _max_pool_backward(dout, winner, pool_param, tiled, dx):
    """``max_pool_backward_fast`` on a slice of the batch, into ``dx``."""
    if tiled:  # every pixel is written exactly once
        dtaps, _ = _pool_taps(dx, pool_param, writeable=True)
        for dtap, won in zip(dtaps, winner, strict=True):
            np.multiply(dout, won, out=dtap)
        return
    dtaps = _pool_tap_grads(dout.shape, len(winner), dx.dtype)
    for dtap, won in zip(dtaps, winner, strict=True):
        np.multiply(dout, won, out=dtap)  # contiguous: a bool operand is slow otherwise
    _add_pool_taps(dtaps, pool_param, dx)


def _pool_tap_grads(shape, taps, dtype):
    """Scratch (taps, N, C, H_out, W_out) for the gradient each tap of each window passes
    back."""
    return scratch.array("pool.taps", (taps, *shape), dtype)


def _add_pool_taps(dtaps, pool_param, dx):
    """Add the tap gradients (ph*pw, N, C, H_out, W_out; overwritten) of overlapping windows
    onto dx: col2im with one channel per channel. The strided adds of a tap plane run without
    vector instructions; the phase planes of ``planes.py`` (strides 2 and 3 with windows of
    at most 2 * stride - 1) make them contiguous."""
    ph, pw, stride, H_out, W_out = pool_geometry(dx.shape, pool_param)
    N, C, H, W = dx.shape
    # the fast convolution's dX layout (images, C*HH*WW, H_out, W_out), every channel an image
    cols = dtaps.reshape(ph * pw, N * C, H_out, W_out).transpose(1, 0, 2, 3)
    flat = dx.reshape(N * C, 1, H, W)
    _add_columns(cols, flat.shape, ph, pw, stride, 0, 1, out=flat)


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
    ph, pw, stride, H_out, W_out = pool_geometry(x.shape, pool_param)
    out = np.empty((*x.shape[:2], H_out, W_out), dtype=x.dtype)
    with _pool_batch(x, ph + pw) as batch:
        batch.map(lambda s: _window_mean(x[s], ph, pw, stride, out[s]))
    return out, (x, pool_param)


def _window_mean(x, ph, pw, stride, out):
    """Every window's average into ``out``, as two sums of shifted views: over the pw taps
    along W for every row of x (the strided reads, on H * W_out elements), then over the ph
    taps along H of those row sums (contiguous rows, on H_out * W_out). The ph * pw tap planes
    would make ph * pw - 1 strided passes over H_out * W_out elements instead."""
    H_out, W_out = out.shape[2:]
    span_h, span_w = stride * (H_out - 1) + 1, stride * (W_out - 1) + 1
    rows = scratch.array("pool.rows", (*x.shape[:3], W_out), x.dtype)
    _add_shifted([x[..., j:j + span_w:stride] for j in range(pw)], rows)
    _add_shifted([rows[:, :, i:i + span_h:stride] for i in range(ph)], out)
    out /= ph * pw
    return out


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
    taps, tiled = _pool_taps(x, pool_param)
    _check_shape("dout", dout, taps[0].shape)
    dx = np.empty(x.shape, dtype=x.dtype)  # every pixel is written
    with _pool_batch(x, len(taps)) as batch:
        batch.map(lambda s: _avg_pool_backward(dout[s], pool_param, tiled, dx[s]))
    return dx


def _avg_pool_backward(dout, pool_param, tiled, dx):
    """``avg_pool_backward_fast`` on a slice of the batch, into ``dx``."""
    taps = pool_param["pool_height"] * pool_param["pool_width"]
    if tiled:  # every pixel is written exactly once
        dtaps, _ = _pool_taps(dx, pool_param, writeable=True)
        share = np.divide(dout, taps, out=scratch.array("pool.share", dout.shape, dx.dtype))
        for dtap in dtaps:
            dtap[...] = share
        return
    dtaps = _pool_tap_grads(dout.shape, taps, dx.dtype)
    np.divide(dout, taps, out=dtaps)  # the same share for every tap
    _add_pool_taps(dtaps, pool_param, dx)
