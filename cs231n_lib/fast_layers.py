"""Fast convolution layers (and, re-exported from ``fast_pool``, the fast pooling layers): same
signatures and results as the naive ones.

Each function here computes exactly what its namesake ``*_naive`` in ``layers.py`` computes
(up to float rounding), for every stride, pad, dilation and filter size that
``shapes.conv_geometry`` accepts, in float32 and float64. There are no Python loops over N, H
or W. Speed is measured, as ratios, by ``bench/conv.py`` and ``bench/layers.py``.

Convolution paths (``conv_forward_fast`` picks one; the cache remembers which):
- "winograd": 3 x 3 filters at stride 1 with C >= 8 input channels, Winograd F(4x4, 3x3)
  (``winograd.py``); dilated ones on 32 channels or more, as one Winograd convolution per
  phase, when the phases fill their tiles.
- "fft": filters of 25 taps or more (5 x 5, 7 x 7, dilated too) at stride 1 on 16 channels
  or more: the convolution theorem, one small complex matrix multiply per frequency
  (``fft_conv.py``).
- "window": filters with few taps (1 x 1, or C * HH * WW <= 64: a first layer's filters on 1
  to 3 channels): each image's receptive fields copied exactly from the window view of the
  padded input and multiplied image by image straight into the output (``window_conv.py``).
- "gemm": everything else: im2col and one matrix multiply per block of images, with the
  columns built as contiguous runs of the padded image, a few images at a time while they are
  in the cache, and never kept (``gemm_conv.py``); the backward pass builds them again, and
  computes an inner layer's input gradient as stride-1 convolutions of dout (``conv_dx.py``).
  Its forward pass is MEC's (``mec_conv.forward_nchw``: the input lowered along W only, one
  small product per output row) where those products are small (``mec_conv.MAX_ROW_PRODUCT``),
  else, for a strided layer, the window path's (faster there; none of the three keeps anything
  for the backward pass). Its backward pass's dW is MEC's too where a thread's images give
  deep enough products (``mec_conv.backward_weights``); then no columns are built at all.
All split the batch into slices run side by side in threads (``parallel.py``; the slices are
kept in the cache so that the backward pass splits the same way) and keep their temporaries in
per-thread scratch buffers reused from call to call (``scratch.py``). A ReLU after the
convolution can run inside it (``relu=True`` / ``relu_out``: the sandwiches of
``layer_utils`` do), and so can a max pooling after that ReLU (``conv_relu_pool_forward_fast``:
the convolution's output pooled chunk by chunk in the cache, never stored; there, a first
layer under 2x2/2 windows is computed at the pooling's resolution, its four window pixels as
four planes of one stride-2 convolution, ``s2d_conv.py``, and a gemm-path layer of large filters
on few channels that it does not take runs its forward pass channels last, ``mec_conv.py``).
``conv_forward_im2col`` is the textbook path built on ``im2col`` / ``col2im`` (notebook
01_convolution); the default path never calls them, so the fast layers still work in the
student edition of the library, where those two are exercises.
"""

from __future__ import annotations

import math

import numpy as np

from cs231n_lib import (
    fast_pool,
    fft_conv,
    gemm_conv,
    mec_conv,
    parallel,
    s2d_conv,
    scratch,
    window_conv,
    winograd,
)
from cs231n_lib.fast_pool import (  # noqa: F401 (re-exported: the course imports them from here)
    avg_pool_backward_fast,
    avg_pool_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from cs231n_lib.im2col import col2im, im2col
from cs231n_lib.layers import _check_shape, relu_grad_into, relu_into
from cs231n_lib.shapes import conv_geometry


def conv_forward_fast(x, w, b, conv_param, *, relu=False):
    """Fast forward pass for a convolutional layer; same contract as ``conv_forward_naive``.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - w: Filter weights of shape (F, C, HH, WW).
    - b: Biases of shape (F,).
    - conv_param: dict with optional keys 'stride' (default 1), 'pad' (zero padding per side,
      default 0) and 'dilation' (default 1).
    - relu: keyword only; True applies a ReLU to the output as it is written (the sandwiches
      ``conv_relu_forward`` and ``conv_relu_pool_forward`` use it: one pass over the output
      less, and no array for the pre-activations). Pass the output as ``relu_out`` to the
      backward pass then.

    Returns a tuple of:
    - out: Output data of shape (N, F, H_out, W_out), dtype numpy's promotion of x, w, b.
    - cache: (x, w, b, conv_param, path, saved) where path names the algorithm used and saved
      holds what its backward pass reuses: the transformed filters, the slices of the batch
      (``parallel``) and, for each slice, a list with an entry per chunk it was computed in
      (here one, the slice; ``conv_relu_pool_forward_fast`` cuts slices into chunks): the
      transformed tiles V for "winograd" or the input's spectra for "fft"; None for "window"
      and "gemm", whose backward passes build their columns again from x (``window_conv``,
      ``gemm_conv``).
    """
    return _forward(x, w, b, conv_param, relu)


def conv_relu_pool_forward_fast(x, w, b, conv_param, pool_param):
    """Convolution - ReLU - max pooling (``layer_utils.conv_relu_pool_forward``): the output of
    ``max_pool_forward_fast(conv_forward_fast(x, w, b, conv_param, relu=True)[0], pool_param)``,
    without that convolution's output.

    Each thread computes the convolution of a chunk of its images at a time (about
    ``layers.CHUNK_BYTES`` of output, in a scratch buffer) and pools it while it is in the
    core's cache (``fast_pool.PooledBlocks``); the backward pass makes each chunk's gradient
    from the pooled one the same way. The convolution's output is never stored: no pass over
    it in memory, and a quarter of its memory kept for the backward pass (2x2 windows). A first
    layer (few input channels, stride 1) under 2x2/2 windows is computed at
    the pooling's resolution (``s2d_conv``: its forward pass for filters of at most 75 taps,
    its backward pass without dx for filters from 3 x 3 to 150 taps; 0.64-1.01 of the time
    where it takes them); large filters on few channels that it does not take, which the gemm
    path computes, run their forward pass channels last (``mec_conv``: 1.5x faster on a 7 x 7
    first layer). Both give the same numbers as the three layers up to rounding.

    Returns a tuple of:
    - out: Output data of shape (N, F, H'', W'').
    - cache: (conv_cache, pooled): the convolution's cache (as ``conv_forward_fast``'s, with
      the chunks as its slices) and the ``fast_pool.PooledBlocks`` (pooled output, taps).
    """
    return _forward(x, w, b, conv_param, True, pool_param)


def conv_relu_pool_backward_fast(dout, cache, *, need_dx=True):
    """Backward pass of ``conv_relu_pool_forward_fast``: (dx, dw, db) for dout, the gradient of
    the pooled output; need_dx as in ``conv_backward_fast``."""
    conv_cache, pooled = cache
    _check_shape("dout", dout, pooled.out.shape)
    return _backward(dout, conv_cache, need_dx, None, pooled)


def conv_backward_fast(dout, cache, *, need_dx=True, relu_out=None):
    """Fast backward pass for a convolutional layer; same contract as ``conv_backward_naive``.

    Inputs:
    - dout: Upstream derivatives of shape (N, F, H_out, W_out).
    - cache: As returned by ``conv_forward_fast``.
    - need_dx: keyword only; False when nobody needs the input gradient (a network's first
      layer: the data needs none): dx is then None and its work is skipped (the dX matrix
      multiply and col2im of the window and gemm paths, or the gemm path's per-phase
      products, ``conv_dx``; the dV multiplies, their transform and the overlap-add of the
      Winograd path). dw and db are the same either way.
    - relu_out: keyword only; the output of ``conv_forward_fast(..., relu=True)`` when dout is
      the gradient of that ReLU's output: the ReLU's backward pass (dout where relu_out > 0,
      else 0, as ``relu_backward``) runs inside, in the copy of dout the path makes anyway.

    Returns a tuple of:
    - dx: Gradient with respect to x, shape and dtype of x (None when need_dx is False).
    - dw: Gradient with respect to w, shape and dtype of w.
    - db: Gradient with respect to b, shape and dtype of b.
    """
    if relu_out is not None:
        _check_shape("relu_out", relu_out, np.shape(dout))
    return _backward(dout, cache, need_dx, relu_out)


def _path(w_shape, stride, dilation, out_hw):
    """The algorithm that computes a convolution with filters of shape ``w_shape`` and an
    output of out_hw (H_out, W_out) pixels."""
    if winograd.applies(w_shape, stride, dilation, out_hw):
        return "winograd"
    if fft_conv.applies(w_shape, stride):
        return "fft"
    return "window" if window_conv.applies(w_shape) else "gemm"


def _s2d(applies, pooled, path, w_shape, stride, dilation):
    """Whether a pass (``applies``: ``s2d_conv.forward_applies`` or ``backward_applies``) of a
    convolution fused with the pooling ``pooled`` (None: not fused) runs at the pooling's
    resolution (``s2d_conv``): on a first layer whose ``path`` (which computes the input's
    gradient where one is needed, s2d_conv not) keeps nothing from the forward pass."""
    return (pooled is not None and path in _MATMUL_PATHS
            and applies(w_shape, stride, dilation, pooled.geometry))


def _chunks(s, pooled):
    """The pieces a thread's slice s of the batch is computed in: s itself, or, for a pooled
    convolution, chunks of ``pooled.chunk`` images."""
    starts = range(s.start, s.stop, pooled.chunk) if pooled is not None else []
    return [slice(a, min(a + pooled.chunk, s.stop)) for a in starts] or [s]  # (s if empty)


def _forward(x, w, b, conv_param, relu, pool_param=None):
    """``conv_forward_fast`` (out, cache); with ``pool_param``, ``conv_relu_pool_forward_fast``
    (pooled output, (cache, pooled))."""
    (stride, pad, dilation, H_out, W_out), x_, w_, b_ = _conv_inputs(x, w, b, conv_param)
    N, F = x.shape[0], w.shape[0]
    conv_shape = (N, F, H_out, W_out)
    pooled = None if pool_param is None else fast_pool.PooledBlocks(conv_shape, pool_param,
                                                                   x_.dtype)
    out = None if pooled else np.empty(conv_shape, dtype=x_.dtype)
    relu_here = relu and pooled is None  # a pooled convolution's ReLU runs on the pooled output
    path = _path(w.shape, stride, dilation, (H_out, W_out))
    # a pooled first layer: at the pooling's resolution (s2d_conv), or, for large filters on
    # few channels that s2d_conv does not take, MEC, channels last
    s2d = _s2d(s2d_conv.forward_applies, pooled, path, w.shape, stride, dilation)
    channels_last = (pooled is not None and not s2d and path == "gemm"
                     and mec_conv.applies(w.shape, dilation))
    with parallel.Batch.over(N, _work(conv_shape, w.shape)) as batch:
        if s2d:
            shared = None
            Ws = s2d_conv.filters(w_, b_)

            def compute(c, _):
                s2d_conv.forward(x_[c], Ws, w.shape, pad, pooled, c.start)
        elif path == "winograd":
            shared = winograd.filters(w_)

            def compute(c, y):
                if dilation > 1:
                    V = winograd.conv_forward_dilated(x_[c], shared, b_, pad, dilation, y)
                else:
                    V = winograd.conv_forward(x_[c], shared, b_, pad, y)
                if relu_here:
                    relu_into(y, y)
                return V
        elif path == "fft":
            grid = fft_conv.Grid(x.shape, w.shape, pad, dilation, H_out, W_out)
            G = grid.filters(w_, batch.threads)
            shared = (grid, G, G.conj())

            def compute(c, y):
                return fft_conv.forward(x_[c], shared[2], b_, grid, y, relu_here)
        else:
            plan = _plan(x.shape, w.shape, stride, pad, dilation, H_out, W_out)
            shared = None
            # the forward pass of a strided gemm-path layer runs on the window path (its
            # backward pass, which ``path`` in the cache names, stays on the gemm path)
            matmul_path = (window_conv if window_conv.forward_applies(w.shape, stride, dilation)
                           else _MATMUL_PATHS[path])
            if channels_last:  # the gemm path's backward pass, mec_conv's forward pass
                Wm = mec_conv.filters(w_)

                def compute(c, y):  # (the bias: after pooling; columns by the pooling's phase)
                    mec_conv.forward(x_[c], Wm, None, plan, y, pooled.phases)
            elif path == "gemm" and mec_conv.nchw_applies(w.shape, W_out, dilation):
                Wm = mec_conv.filters(w_)

                def compute(c, y):
                    mec_conv.forward_nchw(x_[c], Wm, b_, plan, y, relu_here)
            else:
                W_row = np.concatenate([w_.reshape(F, -1), b_[:, None]], axis=1)  # bias column

                def compute(c, y):
                    matmul_path.forward(x_[c], W_row, plan, y, relu_here)

        def part(s):
            saved = []
            for c in _chunks(s, pooled):
                if pooled is None:
                    saved.append(compute(c, out[c]))
                    continue
                if s2d:  # pools as it goes
                    saved.append(compute(c, None))
                    continue
                m = c.stop - c.start
                y = scratch.array("pool.conv_out", (m, H_out, W_out, F) if channels_last
                                  else (m, F, H_out, W_out), x_.dtype)
                saved.append(compute(c, y))
                if channels_last:
                    pooled.forward_phased(c.start, y, b_)
                else:
                    pooled.forward(c.start, y)
            return saved

        cache = (x, w, b, conv_param, path, (shared, batch.slices, batch.map(part)))
    return (out, cache) if pooled is None else (pooled.out, (cache, pooled))


def _backward(dout, cache, need_dx, relu_out, pooled=None):
    """``conv_backward_fast``; or, with ``pooled`` (the ``fast_pool.PooledBlocks`` of
    ``conv_relu_pool_forward_fast``), for dout the gradient of the pooled output: each chunk's
    gradient is made from it, in a scratch buffer, as the convolution's backward pass needs it."""
    x, w, b, conv_param, path, (shared, slices, parts) = cache
    if pooled is None:
        (stride, pad, dilation, _, _), dout = _conv_dout(dout, x, w, conv_param)
        dtype, conv_shape = dout.dtype, dout.shape
    else:
        stride, pad, dilation = conv_geometry(x.shape, w.shape, conv_param)[:3]
        dtype, conv_shape = pooled.out.dtype, pooled.conv_shape
        dout = dout.astype(dtype, copy=False)
    dx = np.empty(x.shape, dtype=dtype) if need_dx else None
    s2d = not need_dx and _s2d(s2d_conv.backward_applies, pooled, path, w.shape, stride,
                                   dilation)
    # (no product of the backward pass is larger than the forward pass's whole work)
    with parallel.Batch(slices, _work(conv_shape, w.shape)) as batch:
        # compute(c, d, relu_out of c or None, saved): the gradients of chunk c, as a tuple
        if s2d:
            def compute(c, *_):
                return (s2d_conv.backward(x[c].astype(dtype, copy=False), dout[c],
                                          pooled.out[c], pooled.tap[c], w.shape, pad),)
        elif path == "winograd":
            def compute(c, d, r, V):
                if dilation > 1:
                    return winograd.conv_backward_dilated(_gated(d, r), shared, V, pad, dilation,
                                                          None if dx is None else dx[c],
                                                          x[c].shape)
                return winograd.conv_backward(_gated(d, r), shared, V, pad,
                                              None if dx is None else dx[c], x[c].shape)
        elif path == "fft":
            grid, G, _ = shared

            def compute(c, d, r, X):
                d = _gated(d, r)
                dG = fft_conv.backward(d, G, X, grid, None if dx is None else dx[c])
                return dG, d.sum(axis=(0, 2, 3))
        else:
            w_row = w.reshape(w.shape[0], -1).astype(dtype, copy=False)
            plan = _plan(x.shape, w.shape, stride, pad, dilation, *conv_shape[2:])
            matmul_path = _MATMUL_PATHS[path]
            # the gemm path's input-gradient filters: made once for all slices and chunks
            extra = ({"w_pairs": gemm_conv.dx_filters(w_row, plan)}
                     if path == "gemm" and need_dx else {})

            # MEC's dW (``mec_conv.backward_weights``) on the gemm path, unless col2im computes
            # dx: its product shares the gemm path's gradient matrix with dW's
            mec_dw = path == "gemm" and not (need_dx and extra["w_pairs"] is None)

            def compute(c, d, r, _):
                dx_c = None if dx is None else dx[c]
                if not (mec_dw and mec_conv.backward_applies(c.stop - c.start, plan.W_out,
                                                             dilation)):
                    return (matmul_path.backward(x[c], d, w_row, plan, dx_c, r, **extra),)
                # the gemm path computes dx alone (if it is needed)
                if dx_c is not None:
                    matmul_path.backward(x[c], d, w_row, plan, dx_c, r, weights=False, **extra)
                return (mec_conv.backward_weights(x[c], d, plan, r),)

        def part(s, saved):
            grads = []
            for c, kept in zip(_chunks(s, pooled), saved, strict=True):
                if pooled is None:
                    grads.append(compute(c, dout[c], None if relu_out is None else relu_out[c],
                                         kept))
                elif s2d:  # works from the pooled gradient itself
                    grads.append(compute(c))
                else:
                    d = scratch.array("pool.conv_grad", (c.stop - c.start, *conv_shape[1:]),
                                      dtype)
                    pooled.backward(dout, c.start, d)
                    grads.append(compute(c, d, None, kept))
            return grads

        # summed over chunks and slices
        grads = [sum(g) for g in zip(*(g for part_grads in batch.map(part, parts)
                                       for g in part_grads), strict=True)]
        if s2d:
            dw, db = s2d_conv.filters_adjoint(grads[0], w.shape)
        elif path == "winograd":
            dU, db = grads
            dw = winograd.filters_adjoint(dU)
        elif path == "fft":
            dG, db = grads
            dw = grid.adjoint_filters(dG, w.shape, dtype, batch.threads)
        else:
            (dW_row,) = grads  # (F, C*HH*WW + 1): dw, then db in the bias column
            dw, db = dW_row[:, :-1].reshape(w.shape), dW_row[:, -1]
    return (_like(dx, x) if need_dx else None), _like(dw, w), _like(db, b)


def conv_forward_im2col(x, w, b, conv_param):
    """Textbook vectorised convolution: ``im2col`` then one matrix multiply.

    Same inputs and outputs as ``conv_forward_fast``; cache is (x, w, b, conv_param, X_col)
    with X_col of shape (C * HH * WW, N * H_out * W_out).
    """
    (stride, pad, dilation, H_out, W_out), x_, w_, b_ = _conv_inputs(x, w, b, conv_param)
    N, (F, _, HH, WW) = x.shape[0], w.shape
    X_col = im2col(x_, HH, WW, stride, pad, dilation)  # columns ordered (n, h_out, w_out)
    out = np.empty((N, F, H_out, W_out), dtype=x_.dtype)
    # one multiply per image (N views of X_col) writes the output in NCHW order directly
    per_image = X_col.reshape(X_col.shape[0], N, H_out * W_out).transpose(1, 0, 2)
    np.matmul(w_.reshape(F, -1), per_image, out=out.reshape(N, F, H_out * W_out))
    out += b_[:, None, None]
    return out, (x, w, b, conv_param, X_col)


def conv_backward_im2col(dout, cache):
    """Backward pass of ``conv_forward_im2col``: dw = dout @ X_col.T, dx = col2im(w.T @ dout)."""
    x, w, b, conv_param, X_col = cache
    (stride, pad, dilation, _, _), dout = _conv_dout(dout, x, w, conv_param)
    F, _, HH, WW = w.shape
    d = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*H_out*W_out): X_col's column order
    dw = d @ X_col.T
    dx = col2im(w.reshape(F, -1).astype(d.dtype, copy=False).T @ d, x.shape, HH, WW, stride,
                pad, dilation)
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


def _work(conv_shape, w_shape):
    """The multiply-adds of a convolution's forward pass, output ``conv_shape``, filters
    ``w_shape`` (its parallel regions' ``work``)."""
    return math.prod(conv_shape) * math.prod(w_shape[1:])


def _gated(d, relu_out):
    """d, or, after a fused ReLU, d where relu_out > 0 and 0 elsewhere (in a scratch buffer)."""
    if relu_out is None:
        return d
    return relu_grad_into(d, relu_out, scratch.array("conv.drelu", d.shape, d.dtype))


def _like(grad, a):
    """``grad`` in the dtype of the input it is the gradient of (no copy when it already is)."""
    return grad.astype(a.dtype, copy=False)


# The two matrix-multiply paths: same signatures (forward(x, W_row, plan, out, relu),
# backward(x, dout, w_row, plan, dx, relu_out) -> dW_row), the same plan.
_MATMUL_PATHS = {"window": window_conv, "gemm": gemm_conv}


def _plan(x_shape, w_shape, stride, pad, dilation, H_out, W_out):
    """The geometry of a convolution (``gemm_conv.Plan``: the runs layout of the gemm path,
    whose sizes the window path reads too)."""
    _, C, H, W = x_shape
    return gemm_conv.Plan(C, H, W, *w_shape[2:], stride, pad, dilation, H_out, W_out)
