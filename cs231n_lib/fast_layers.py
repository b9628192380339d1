"""Fast convolution layers (and, re-exported from ``fast_pool``, the fast pooling layers): same
signatures and results as the naive ones.

Each function here computes exactly what its namesake ``*_naive`` in ``layers.py`` computes
(up to float rounding), for every stride, pad, dilation and filter size that
``shapes.conv_geometry`` accepts, in float32 and float64. There are no Python loops over N, H
or W. Speed is measured, as ratios, by ``bench/conv.py`` and ``bench/layers.py``.

Convolution paths (``conv_forward_fast`` picks one; the cache remembers which):
- "winograd": 3 x 3 filters at stride 1 without dilation and with C >= 8 input channels,
  Winograd F(4x4, 3x3) (``winograd.py``).
- "fft": filters of 25 taps or more (5 x 5, 7 x 7, dilated too) at stride 1 on 16 channels
  or more: the convolution theorem, one small complex matrix multiply per frequency
  (``fft_conv.py``).
- "window": filters with few taps (1 x 1, or C * HH * WW <= 64: a first layer's filters on 1
  to 3 channels): each image's receptive fields copied exactly from the window view of the
  padded input and multiplied image by image straight into the output (``window_conv.py``).
- "gemm": everything else: im2col and one matrix multiply per block of images, with the
  columns built as contiguous runs of the padded image, a few images at a time while they are
  in the cache, and never kept (``gemm_conv.py``); the backward pass builds them again.
All split the batch into slices run side by side in threads (``parallel.py``; the slices are
kept in the cache so that the backward pass splits the same way) and keep their temporaries in
per-thread scratch buffers reused from call to call (``scratch.py``). A ReLU after the
convolution can run inside it (``relu=True`` / ``relu_out``: the sandwiches of
``layer_utils`` do). ``conv_forward_im2col`` is the textbook path built on ``im2col`` /
``col2im`` (notebook 01_convolution); the default path never calls them, so the fast layers
still work in the student edition of the library, where those two are exercises.
"""

from __future__ import annotations

import numpy as np

from cs231n_lib import fft_conv, gemm_conv, parallel, scratch, window_conv, winograd
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
      holds what its backward pass reuses: the transformed filters and, for each slice of
      the batch (``parallel``), the transformed tiles V for "winograd" or the input's spectra
      for "fft"; nothing for "window" and "gemm", whose backward passes build their columns
      again from x (``window_conv``, ``gemm_conv``).
    """
    (stride, pad, dilation, H_out, W_out), x_, w_, b_ = _conv_inputs(x, w, b, conv_param)
    N, F = x.shape[0], w.shape[0]
    out = np.empty((N, F, H_out, W_out), dtype=x_.dtype)
    with parallel.Batch(parallel.batch_slices(N, out.size * w[0].size)) as batch:
        if winograd.applies(w.shape, stride, dilation):
            path, shared = "winograd", winograd.filters(w_)

            def part(s):
                V = winograd.conv_forward(x_[s], shared, b_, pad, out[s])
                if relu:
                    relu_into(out[s], out[s])
                return V
        elif fft_conv.applies(w.shape, stride):
            grid = fft_conv.Grid(x.shape, w.shape, pad, dilation, H_out, W_out)
            G = grid.filters(w_)
            path, shared = "fft", (grid, G, G.conj())

            def part(s):
                return fft_conv.forward(x_[s], shared[2], b_, grid, out[s], relu)
        else:
            W_row = np.concatenate([w_.reshape(F, -1), b_[:, None]], axis=1)  # bias column
            plan = _plan(x.shape, w.shape, stride, pad, dilation, H_out, W_out)
            path, shared = ("window" if window_conv.applies(w.shape) else "gemm"), None
            matmul_path = _MATMUL_PATHS[path]

            def part(s):
                matmul_path.forward(x_[s], W_row, plan, out[s], relu)
        saved = (shared, batch.slices, batch.map(part))
    return out, (x, w, b, conv_param, path, saved)


def conv_backward_fast(dout, cache, *, need_dx=True, relu_out=None):
    """Fast backward pass for a convolutional layer; same contract as ``conv_backward_naive``.

    Inputs:
    - dout: Upstream derivatives of shape (N, F, H_out, W_out).
    - cache: As returned by ``conv_forward_fast``.
    - need_dx: keyword only; False when nobody needs the input gradient (a network's first
      layer: the data needs none): dx is then None and its work is skipped (the dX matrix
      multiply and col2im of the window and gemm paths; the dV multiplies, their transform
      and the overlap-add of the Winograd path). dw and db are the same either way.
    - relu_out: keyword only; the output of ``conv_forward_fast(..., relu=True)`` when dout is
      the gradient of that ReLU's output: the ReLU's backward pass (dout where relu_out > 0,
      else 0, as ``relu_backward``) runs inside, in the copy of dout the path makes anyway.

    Returns a tuple of:
    - dx: Gradient with respect to x, shape and dtype of x (None when need_dx is False).
    - dw: Gradient with respect to w, shape and dtype of w.
    - db: Gradient with respect to b, shape and dtype of b.
    """
    x, w, b, conv_param, path, (shared, slices, parts) = cache
    (stride, pad, dilation, _, _), dout = _conv_dout(dout, x, w, conv_param)
    if relu_out is not None:
        _check_shape("relu_out", relu_out, dout.shape)
    dx = np.empty(x.shape, dtype=dout.dtype) if need_dx else None
    with parallel.Batch(slices) as batch:
        if path == "winograd":
            def part(s, V):
                return winograd.conv_backward(_gated(dout, relu_out, s), shared, V, pad,
                                              None if dx is None else dx[s], x[s].shape)
        elif path == "fft":
            grid, G, _ = shared

            def part(s, X):
                d = _gated(dout, relu_out, s)
                dG = fft_conv.backward(d, G, X, grid, None if dx is None else dx[s])
                return dG, d.sum(axis=(0, 2, 3))
        else:
            w_row = w.reshape(w.shape[0], -1).astype(dout.dtype, copy=False)
            plan = _plan(x.shape, w.shape, stride, pad, dilation, *dout.shape[2:])
            matmul_path = _MATMUL_PATHS[path]

            def part(s, _):
                return matmul_path.backward(x[s], dout[s], w_row, plan,
                                            None if dx is None else dx[s],
                                            None if relu_out is None else relu_out[s])
        grads = batch.map(part, parts)  # summed over slices below
        if path == "winograd":
            dU, db = (sum(g) for g in zip(*grads, strict=True))
            dw = winograd.filters_adjoint(dU)
        elif path == "fft":
            dG, db = (sum(g) for g in zip(*grads, strict=True))
            dw = grid.adjoint_filters(dG, w.shape, dout.dtype)
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


def _gated(dout, relu_out, s):
    """dout[s], or, after a fused ReLU, dout[s] where relu_out[s] > 0 and 0 elsewhere (in a
    scratch buffer)."""
    d = dout[s]
    if relu_out is None:
        return d
    return relu_grad_into(d, relu_out[s], scratch.array("conv.drelu", d.shape, d.dtype))


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
