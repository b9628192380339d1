"""Fast convolution and pooling layers: same signatures and results as the naive ones.

Each function here computes exactly what its namesake ``*_naive`` in ``layers.py`` computes
(up to float rounding), for every stride, pad, dilation and filter size that
``shapes.conv_geometry`` / ``shapes.pool_geometry`` accept, in float32 and float64. There are no
Python loops over N, H or W: the only loops run over the HH * WW taps of a filter or a pooling
window. Speed is measured, as ratios, by ``bench/conv.py``.

Convolution paths (``conv_forward_fast`` picks one; the cache remembers which):
- "winograd": 3 x 3 filters at stride 1 without dilation, Winograd F(4x4, 3x3) (``winograd.py``).
- "gemm": everything else, one batched matrix multiply over all receptive fields.
``conv_forward_im2col`` is the textbook path built on ``im2col`` / ``col2im`` (notebook
01_convolution); the default path never calls them, so the fast layers still work in the
student edition of the library, where those two are exercises.

Max-pool gradient ties go to the FIRST maximum of a window in row-major (i, j) order, as in the
naive layer.
"""

from __future__ import annotations

import numpy as np

from cs231n_lib import winograd
from cs231n_lib.im2col import col2im, im2col, pad_hw, window_view
from cs231n_lib.layers import _check_shape
from cs231n_lib.shapes import conv_geometry, pool_geometry


def _conv_dtype(*arrays) -> np.dtype:
    """The dtype a convolution computes in: numpy's promotion of its inputs, as in the naive
    layer (equal dtypes are preserved)."""
    return np.result_type(*arrays)


def _like(grad, a):
    """``grad`` in the dtype of the input it is the gradient of (no copy when it already is)."""
    return grad.astype(a.dtype, copy=False)


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
    - cache: (x, w, b, conv_param, path, saved) where path names the algorithm used ("winograd"
      or "gemm") and saved holds what its backward pass reuses.
    """
    stride, pad, dilation, _, _ = conv_geometry(x.shape, w.shape, conv_param)
    _check_shape("b", b, (w.shape[0],))
    dtype = _conv_dtype(x, w, b)
    xc, wc, bc = (np.asarray(a, dtype=dtype) for a in (x, w, b))
    if winograd.applies(w.shape, stride, dilation):
        path = "winograd"
        out, saved = winograd.conv_forward(xc, wc, bc, pad)
    else:
        path = "gemm"
        out, saved = _gemm_forward(xc, wc, bc, stride, pad, dilation)
    return out, (x, w, b, conv_param, path, saved)


def conv_backward_fast(dout, cache):
    """Fast backward pass for a convolutional layer; same contract as ``conv_backward_naive``.

    Inputs:
    - dout: Upstream derivatives of shape (N, F, H_out, W_out).
    - cache: As returned by ``conv_forward_fast``.

    Returns a tuple of:
    - dx: Gradient with respect to x, shape and dtype of x.
    - dw: Gradient with respect to w, shape and dtype of w.
    - db: Gradient with respect to b, shape and dtype of b.
    """
    x, w, b, conv_param, path, saved = cache
    stride, pad, dilation, H_out, W_out = conv_geometry(x.shape, w.shape, conv_param)
    _check_shape("dout", dout, (x.shape[0], w.shape[0], H_out, W_out))
    dout = np.asarray(dout, dtype=_conv_dtype(x, w, dout))
    if path == "winograd":
        dx, dw = winograd.conv_backward(dout, saved, x.shape, pad)
    else:
        dx, dw = _gemm_backward(dout, saved, x.shape, stride, pad, dilation)
    db = dout.sum(axis=(0, 2, 3))
    return _like(dx, x), _like(dw, w), _like(db, b)


def _gemm_forward(x, w, b, stride, pad, dilation):
    """Convolution as one batched matrix multiply: (F, C*HH*WW) @ (C*HH*WW, H_out*W_out) per
    image. Returns out and the patch matrix that the backward pass reuses for dw."""
    N, C, _, _ = x.shape
    F, _, HH, WW = w.shape
    win = window_view(pad_hw(x, pad), HH, WW, stride, dilation)  # (N, C, HH, WW, H_out, W_out)
    H_out, W_out = win.shape[4:]
    patches = win.reshape(N, C * HH * WW, H_out * W_out)  # copies: a per-image im2col
    out = np.matmul(w.reshape(F, -1), patches)  # (N, F, H_out * W_out)
    out += b[:, None]
    return out.reshape(N, F, H_out, W_out), (w, patches)


def _gemm_backward(dout, saved, x_shape, stride, pad, dilation):
    """Backward of ``_gemm_forward``: dw from the saved patches, dx by adding the patch
    gradients back tap by tap (HH * WW strided adds)."""
    w, patches = saved
    N, C, H, W = x_shape
    F, _, HH, WW = w.shape
    H_out, W_out = dout.shape[2:]
    d3 = dout.reshape(N, F, H_out * W_out)
    # sum over images of (F, P) @ (P, C*HH*WW); matmul reads the transposed patches in place
    dw = np.matmul(d3, patches.transpose(0, 2, 1)).sum(axis=0).reshape(w.shape)
    dpatches = np.matmul(w.reshape(F, -1).T, d3).reshape(N, C, HH, WW, H_out, W_out)
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=dout.dtype)
    dwin = window_view(dxp, HH, WW, stride, dilation, writeable=True)
    for i in range(HH):
        for j in range(WW):
            dwin[:, :, i, j] += dpatches[:, :, i, j]  # one tap plane never aliases itself
    return dxp[:, :, pad:pad + H, pad:pad + W].copy(), dw


def conv_forward_im2col(x, w, b, conv_param):
    """Textbook vectorised convolution: ``im2col`` then one matrix multiply.

    Same inputs and outputs as ``conv_forward_fast``; cache is (x, w, b, conv_param, X_col)
    with X_col of shape (C * HH * WW, N * H_out * W_out).
    """
    stride, pad, dilation, H_out, W_out = conv_geometry(x.shape, w.shape, conv_param)
    N = x.shape[0]
    F, _, HH, WW = w.shape
    _check_shape("b", b, (F,))
    dtype = _conv_dtype(x, w, b)
    X_col = im2col(x.astype(dtype, copy=False), HH, WW, stride, pad, dilation)
    out = w.reshape(F, -1).astype(dtype, copy=False) @ X_col  # (F, N * H_out * W_out)
    out += b.astype(dtype, copy=False)[:, None]
    out = out.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3).copy()  # (N, F, H_out, W_out)
    return out, (x, w, b, conv_param, X_col)


def conv_backward_im2col(dout, cache):
    """Backward pass of ``conv_forward_im2col``: dw = dout @ X_col.T, dx = col2im(w.T @ dout)."""
    x, w, b, conv_param, X_col = cache
    stride, pad, dilation, H_out, W_out = conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    _check_shape("dout", dout, (x.shape[0], F, H_out, W_out))
    dout = dout.astype(X_col.dtype, copy=False)
    d2 = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N * H_out * W_out)
    dw = (d2 @ X_col.T).reshape(w.shape)
    dx = col2im(w.reshape(F, -1).astype(X_col.dtype, copy=False).T @ d2, x.shape, HH, WW,
                stride, pad, dilation)
    db = d2.sum(axis=1)
    return _like(dx, x), _like(dw, w), _like(db, b)


def _pool_taps(x, pool_param, writeable=False):
    """Validate a pooling layer; return (window view (N, C, ph, pw, H_out, W_out), tap list)."""
    ph, pw, stride, _, _ = pool_geometry(x.shape, pool_param)
    taps = [(i, j) for i in range(ph) for j in range(pw)]  # row-major window order
    return window_view(x, ph, pw, stride, writeable=writeable), taps


def max_pool_forward_fast(x, pool_param):
    """Fast forward pass for a max-pooling layer; same contract as ``max_pool_forward_naive``.

    Inputs:
    - x: Input data of shape (N, C, H, W).
    - pool_param: dict with keys 'pool_height', 'pool_width' and 'stride'; windows may overlap.

    Returns a tuple of:
    - out: Output data of shape (N, C, H_out, W_out), dtype of x.
    - cache: (x, pool_param, argmax) where argmax (N, C, H_out, W_out) holds, for each window,
      the row-major index of its FIRST maximum.
    """
    win, taps = _pool_taps(x, pool_param)
    out = win[:, :, 0, 0].copy()
    argmax = np.zeros(out.shape, dtype=np.min_scalar_type(len(taps) - 1))
    for k, (i, j) in enumerate(taps[1:], start=1):
        tap = win[:, :, i, j]
        bigger = tap > out  # strictly: an equal later value must not steal the first maximum
        np.copyto(out, tap, where=bigger)
        np.copyto(argmax, k, where=bigger, casting="unsafe")
    return out, (x, pool_param, argmax)


def max_pool_backward_fast(dout, cache):
    """Fast backward pass for a max-pooling layer.

    Inputs:
    - dout: Upstream derivatives of shape (N, C, H_out, W_out).
    - cache: As returned by ``max_pool_forward_fast``.

    Returns:
    - dx: Gradient with respect to x (shape and dtype of x); each window's gradient goes to its
      first maximum.
    """
    x, pool_param, argmax = cache
    _check_shape("dout", dout, argmax.shape)
    dx = np.zeros(x.shape, dtype=x.dtype)
    dwin, taps = _pool_taps(dx, pool_param, writeable=True)
    for k, (i, j) in enumerate(taps):
        plane = dwin[:, :, i, j]
        np.add(plane, dout, out=plane, where=argmax == k)  # adds: overlapping windows share x
    return dx


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
    win, taps = _pool_taps(x, pool_param)
    out = np.zeros(win.shape[:2] + win.shape[4:], dtype=x.dtype)
    for i, j in taps:
        out += win[:, :, i, j]
    out /= len(taps)
    return out, (x, pool_param)


def avg_pool_backward_fast(dout, cache):
    """Fast backward pass for an average-pooling layer.

    Inputs:
    - dout: Upstream derivatives of shape (N, C, H_out, W_out).
    - cache: As returned by ``avg_pool_forward_fast``.

    Returns:
    - dx: Gradient with respect to x, shape and dtype of x.
    """
    x, pool_param = cache
    dx = np.zeros(x.shape, dtype=x.dtype)
    dwin, taps = _pool_taps(dx, pool_param, writeable=True)
    _check_shape("dout", dout, dwin.shape[:2] + dwin.shape[4:])
    share = dout / len(taps)
    for i, j in taps:
        dwin[:, :, i, j] += share
    return dx
