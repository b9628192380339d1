"""Naive reference layers: the readable definition of every layer in the course.

Every layer follows the CS231n contract: ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> gradients in input order``. Tensors are NCHW. The convolution and
pooling layers loop over output positions on purpose: they are the documentation that the fast
layers (``fast_layers.py``) must agree with.

Conventions shared by all layers:

* float32 and float64 both work; outputs follow numpy's type promotion of the inputs (so equal
  dtypes are preserved) and each gradient has the dtype of the input it belongs to.
* Inputs (x, w, b, dout, ...) are never modified. The one piece of state is batch
  normalisation's running averages, which live in ``bn_param`` (CS231n's contract).
* Geometry (output sizes, stride, pad, dilation, unknown parameter keys) is validated by
  ``shapes.py`` only; a bad value raises ValueError naming the value and the rule.

The convolution and pooling functions marked ``@exercise`` are stubbed one by one in the
student edition, so each keeps its own loop instead of sharing a pooling helper that would hand
students the answer; the only shared pieces are ``_window`` (which input slice an output position
reads) and ``im2col.pad_hw``.
"""

from __future__ import annotations

import functools
import math
from numbers import Real

import numpy as np

from cs231n_lib import parallel, scratch
from cs231n_lib.exercise import exercise
from cs231n_lib.im2col import pad_hw
from cs231n_lib.shapes import (
    BN_PARAM_KEYS,
    DROPOUT_PARAM_KEYS,
    check_int,
    check_keys,
    check_mode,
    conv_geometry,
    pool_geometry,
)


# --------------------------------------------------------------------------- small helpers
def _check_shape(name, array, shape):
    """Raise ValueError unless ``array`` has the expected shape."""
    if np.shape(array) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {np.shape(array)}")


def _check_ndim(name, array, ndim, letters):
    """Raise ValueError unless ``array`` has ``ndim`` axes (``letters`` names them)."""
    if np.ndim(array) != ndim:
        raise ValueError(f"{name} must be {ndim}-D {letters}, got shape {np.shape(array)}")


def _window(i, j, stride, field_h, field_w, dilation=1):
    """Row and column slices of the input window that output position (i, j) looks at.

    With dilation d the window spans ``d * (field - 1) + 1`` input pixels and takes every d-th.
    """
    top, left = i * stride, j * stride
    return (slice(top, top + dilation * (field_h - 1) + 1, dilation),
            slice(left, left + dilation * (field_w - 1) + 1, dilation))


def _like(grad, array):
    """``grad`` in the dtype of the input it belongs to (no copy when it already is)."""
    return grad.astype(array.dtype, copy=False)


# --------------------------------------------------------------------------- affine, ReLU
def affine_forward(x, w, b):
    """
    Fully connected (affine) layer: ``out = x.reshape(N, D) @ w + b``.

    Inputs:
    - x: input of shape (N, d_1, ..., d_k); each example is flattened to D = d_1 * ... * d_k
    - w: weights of shape (D, M)
    - b: biases of shape (M,)

    Returns a tuple of:
    - out: output of shape (N, M)
    - cache: (x, w, b)
    """
    _check_ndim("w", w, 2, "(D, M)")
    D, M = w.shape
    x_rows = x.reshape(x.shape[0], -1)  # (N, D)
    if x_rows.shape[1] != D:
        raise ValueError(
            f"x of shape {x.shape} flattens to D={x_rows.shape[1]} features per example, "
            f"but w of shape {w.shape} expects D={D}")
    _check_shape("b", b, (M,))
    N = x_rows.shape[0]
    out = np.empty((N, M), dtype=np.result_type(x_rows, w, b))
    # Threads split the larger operand: rows of x, or columns of w when w is the larger (a
    # thread that multiplies by all of a large w streams all of it from memory).
    by_columns = M > N

    def part(s):  # the product in the dtype of x @ w, then b (which may promote it)
        rows, cols, bias = (slice(None), s, b[s]) if by_columns else (s, slice(None), b)
        if out.dtype == np.result_type(x_rows, w):
            np.add(np.matmul(x_rows[rows], w[:, cols], out=out[rows, cols]), bias,
                   out=out[rows, cols])
        else:
            out[rows, cols] = np.matmul(x_rows[rows], w[:, cols]) + bias

    with parallel.Batch.over(M if by_columns else N, N * D * M) as batch:
        batch.map(part)
    return out, (x, w, b)


def affine_backward(dout, cache):
    """
    Backward pass of the affine layer.

    Inputs:
    - dout: upstream gradient of shape (N, M)
    - cache: (x, w, b) from affine_forward

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, d_1, ..., d_k)
    - dw: gradient with respect to w, of shape (D, M)
    - db: gradient with respect to b, of shape (M,)
    """
    dx, dw, db = affine_grads(dout, cache)
    return _like(dx, cache[0]), dw, db


def affine_grads(dout, cache, need_dx=True):
    """``affine_backward``'s gradients (dx, dw, db), dw and db in the dtypes of w and b, dx
    as the product makes it (None when need_dx is False: the first layer of a network,
    whose input needs no gradient, skips that product). The products run side by side in
    threads (``parallel``), both split by rows of w (columns of x): dx[:, t] = dout @ w[t].T
    and dw[t] = x[:, t].T @ dout, so that each thread reads its part of w and x only and dw
    needs no sum over threads."""
    x, w, b = cache
    _check_shape("dout", dout, (x.shape[0], w.shape[1]))
    N, (D, M) = x.shape[0], w.shape
    x_rows = x.reshape(N, -1)  # (N, D)
    dtype = np.result_type(dout, w)
    dx = np.empty((N, D), dtype=dtype) if need_dx else None
    dw = np.empty((D, M), dtype=np.result_type(x_rows, dout))
    def part(t):
        if dx is not None:
            np.matmul(dout, w[t].T, out=dx[:, t])
        np.matmul(x_rows[:, t].T, dout, out=dw[t])

    with parallel.Batch.over(D, (1 + need_dx) * N * D * M) as batch:
        batch.map(part)
    db = dout.sum(axis=0)  # (M,)
    dx = None if dx is None else dx.reshape(x.shape)  # (N, D) -> (N, d_1, ..., d_k)
    return dx, _like(dw, w), _like(db, b)


def relu_forward(x):
    """
    Rectified linear unit: ``out = max(x, 0)`` elementwise.

    Inputs:
    - x: input of any shape

    Returns a tuple of:
    - out: output of the same shape and dtype as x
    - cache: x
    """
    x_ = np.asarray(x)
    out = np.empty_like(x_)
    with _elementwise_batch(x_) as batch:  # large batches: slices side by side in threads
        batch.map(lambda s: relu_into(x_[s], out[s]))
    return out, x


def _zeros_operand(x, limit=1 << 16):
    """Zeros to compare x with in np.maximum: an array, not the scalar 0, which numpy's
    maximum runs without its vector loop (3x slower on data in the cache). Shaped like x's
    trailing axes, as many as fit in ``limit`` elements (but at least the last axis), so that
    it broadcasts over the leading ones and the inner loops stay long. Read-only, and the same
    array for the same shape and dtype (kept: the layers ask for a few shapes, over and over)."""
    k = min(1, x.ndim)
    while k < x.ndim - 1 and math.prod(x.shape[k:]) > limit:
        k += 1
    return _zeros(x.shape[k:], x.dtype)


@functools.lru_cache(maxsize=64)
def _zeros(shape, dtype):
    zeros = np.zeros(shape, dtype=dtype)
    zeros.flags.writeable = False
    return zeros


def relu_into(x, out):
    """``out = max(x, 0)`` elementwise (out may be x itself), with ``_zeros_operand``: for the
    layers that apply a ReLU as they write their output (the fused convolutions). On a strided
    view numpy's loop gains nothing from the zeros, so give it a contiguous x."""
    return np.maximum(x, _zeros_operand(x), out=out)


def relu_grad_into(dout, x, out):
    """``out = dout`` where ``x > 0``, else 0: the ReLU's backward pass for its input (or its
    output, positive at the same places) x. The kink x == 0 gets the subgradient 0. The one
    definition of that rule, for ``relu_backward`` and the convolutions that apply the ReLU's
    backward pass inside their own copies of dout."""
    return np.multiply(dout, x > 0, out=out)


def relu_backward(dout, cache):
    """
    Backward pass of the ReLU: the gradient passes where x > 0 and is 0 elsewhere (including
    x == 0, the kink, where the subgradient 0 is chosen).

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: x from relu_forward

    Returns:
    - dx: gradient with respect to x
    """
    x = cache
    _check_shape("dout", dout, np.shape(x))
    x_ = np.asarray(x)
    dx = np.empty(x_.shape, dtype=np.result_type(dout, x_))
    with _elementwise_batch(x_) as batch:
        batch.map(lambda s: relu_grad_into(dout[s], x_[s], dx[s]))
    return _like(dx, x_)


def _elementwise_batch(x):
    """The parallel region of an elementwise layer on x: slices of its first axis (a 0-d x is
    one slice: everything)."""
    if x.ndim == 0:
        return parallel.Batch([Ellipsis])
    return parallel.Batch.over(x.shape[0], parallel.PASS_WORK * x.size)


# Bytes of x a thread of a layer works on at a time (``_chunk_map``; also the fused
# convolution-pooling's chunks and the update rules'): a core's L2 cache, between 256 KiB and
# 4 MiB (1 MiB where the system does not say). Measured single-threaded on bench/layers.py's
# batches: pooling up to 3x faster than on whole 16-image slices (max pooling 3x3/2, float64).
# With two threads on this project's machine (2 MiB of L2 per core), 2 MiB chunks ran max
# pooling's forward pass, batch norm and whole training steps 8-26% faster than 1 MiB ones.
CHUNK_BYTES = min(max(parallel.l2_cache_bytes(), 256 << 10), 4 << 20)


def _chunk_map(batch, x, fn):
    """``[fn(c) for every chunk c]``: each slice of the parallel region ``batch`` (slices of
    x's first axis, or Ellipsis) cut into chunks of at most ``CHUNK_BYTES`` of x (at least one
    row), in order, run in the slice's thread. A layer that makes several passes over its data
    makes them chunk by chunk, so that all passes but the first read the core's cache instead
    of memory."""
    row_bytes = x.itemsize * int(np.prod(x.shape[1:]))
    per = max(1, CHUNK_BYTES // max(1, row_bytes))

    def part(s):
        if s is Ellipsis:
            return [fn(s)]
        starts = range(s.start, s.stop, per) or [s.start]  # an empty slice: one empty chunk
        return [fn(slice(a, min(a + per, s.stop))) for a in starts]

    return [result for results in batch.map(part) for result in results]


# --------------------------------------------------------------------------- convolution
@exercise("01_convolution", "Naive convolution: forward")
def conv_forward_naive(x, w, b, conv_param):
    """
    Naive forward pass of a convolutional layer (a cross-correlation, as in every deep-learning
    library: the filter is not flipped).

    Each of the F filters spans all C input channels; output pixel (n, f, i, j) is the sum of
    ``w[f]`` times the input window under position (i, j), plus ``b[f]``.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filter weights of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dict with the optional keys
      - 'stride': pixels between neighbouring windows (default 1)
      - 'pad': zero padding on every side of H and W (default 0)
      - 'dilation': spacing of the filter taps, 1 = a contiguous filter (default 1)

    Returns a tuple of:
    - out: output of shape (N, F, H', W') where
      H' = (H + 2 * pad - (dilation * (HH - 1) + 1)) / stride + 1, and likewise W' with W, WW.
      A non-integer H' or W' raises ValueError.
    - cache: (x, w, b, conv_param)
    """
    stride, pad, dilation, H_out, W_out = conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    _check_shape("b", b, (F,))
    x_pad = pad_hw(x, pad)  # (N, C, H + 2P, W + 2P)
    out = np.empty((x.shape[0], F, H_out, W_out), dtype=np.result_type(x, w, b))
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = _window(i, j, stride, HH, WW, dilation)
            field = x_pad[:, :, rows, cols]  # (N, C, HH, WW): the receptive field
            for f in range(F):
                out[:, f, i, j] = np.sum(field * w[f], axis=(1, 2, 3)) + b[f]
    return out, (x, w, b, conv_param)


@exercise("01_convolution", "Naive convolution: backward")
def conv_backward_naive(dout, cache):
    """
    Naive backward pass of a convolutional layer. It mirrors the forward loop: every product
    ``field * w[f]`` that made ``out[:, f, i, j]`` sends ``dout[:, f, i, j]`` back to both factors.

    Inputs:
    - dout: upstream gradient of shape (N, F, H', W')
    - cache: (x, w, b, conv_param) from conv_forward_naive

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    - dw: gradient with respect to w, of shape (F, C, HH, WW)
    - db: gradient with respect to b, of shape (F,)
    """
    x, w, b, conv_param = cache
    stride, pad, dilation, H_out, W_out = conv_geometry(x.shape, w.shape, conv_param)
    N, _, H, W = x.shape
    F, _, HH, WW = w.shape
    _check_shape("dout", dout, (N, F, H_out, W_out))
    x_pad = pad_hw(x, pad)  # (N, C, H + 2P, W + 2P)
    dtype = np.result_type(x, w, dout)
    dx_pad = np.zeros(x_pad.shape, dtype=dtype)
    dw = np.zeros(w.shape, dtype=dtype)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = _window(i, j, stride, HH, WW, dilation)
            field = x_pad[:, :, rows, cols]  # (N, C, HH, WW)
            for f in range(F):
                g = dout[:, f, i, j, None, None, None]  # (N, 1, 1, 1)
                dx_pad[:, :, rows, cols] += g * w[f]  # windows overlap: accumulate
                dw[f] += np.sum(g * field, axis=0)
    dx = np.ascontiguousarray(dx_pad[:, :, pad:pad + H, pad:pad + W])  # unpad: (N, C, H, W)
    db = dout.sum(axis=(0, 2, 3))  # (F,)
    return _like(dx, x), _like(dw, w), _like(db, b)


# --------------------------------------------------------------------------- pooling
@exercise("03_pooling", "Max pooling")
def max_pool_forward_naive(x, pool_param):
    """
    Naive forward pass of a max-pooling layer: the largest value of each window, per channel.

    Inputs:
    - x: input of shape (N, C, H, W)
    - pool_param: dict with the required keys
      - 'pool_height': height of each window
      - 'pool_width': width of each window
      - 'stride': pixels between neighbouring windows; windows overlap when the stride is
        smaller than the window (for example 3x3 windows with stride 2)

    Returns a tuple of:
    - out: output of shape (N, C, H', W') with H' = (H - pool_height) / stride + 1 and
      W' = (W - pool_width) / stride + 1; a non-integer raises ValueError
    - cache: (x, pool_param)
    """
    ph, pw, stride, H_out, W_out = pool_geometry(x.shape, pool_param)
    N, C = x.shape[:2]
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = _window(i, j, stride, ph, pw)
            out[:, :, i, j] = x[:, :, rows, cols].max(axis=(2, 3))
    return out, (x, pool_param)


@exercise("03_pooling", "Max pooling")
def max_pool_backward_naive(dout, cache):
    """
    Naive backward pass of a max-pooling layer: each window's upstream gradient goes to the
    input pixel that held the maximum.

    Ties: when several pixels of a window share the maximum, the whole gradient goes to the
    FIRST of them in row-major order within the window (the one ``np.argmax`` of the flattened
    window returns). The fast layers follow the same convention. Overlapping windows add up
    their contributions.

    Inputs:
    - dout: upstream gradient of shape (N, C, H', W')
    - cache: (x, pool_param) from max_pool_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    """
    x, pool_param = cache
    ph, pw, stride, H_out, W_out = pool_geometry(x.shape, pool_param)
    N, C = x.shape[:2]
    _check_shape("dout", dout, (N, C, H_out, W_out))
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = _window(i, j, stride, ph, pw)
            field = x[:, :, rows, cols].reshape(N, C, ph * pw)  # (N, C, ph*pw), row-major
            first_max = field.argmax(axis=2)  # (N, C): argmax returns the first maximum
            mask = np.arange(ph * pw) == first_max[:, :, None]  # (N, C, ph*pw), one True each
            dx[:, :, rows, cols] += mask.reshape(N, C, ph, pw) * dout[:, :, i, j, None, None]
    return _like(dx, x)


@exercise("03_pooling", "Average pooling")
def avg_pool_forward_naive(x, pool_param):
    """
    Naive forward pass of an average-pooling layer: the mean of each window, per channel.

    Inputs:
    - x: input of shape (N, C, H, W)
    - pool_param: dict with the required keys 'pool_height', 'pool_width' and 'stride'
      (windows may overlap, as in max_pool_forward_naive)

    Returns a tuple of:
    - out: output of shape (N, C, H', W'), sizes as in max_pool_forward_naive
    - cache: (x, pool_param)
    """
    ph, pw, stride, H_out, W_out = pool_geometry(x.shape, pool_param)
    N, C = x.shape[:2]
    out = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = _window(i, j, stride, ph, pw)
            out[:, :, i, j] = x[:, :, rows, cols].mean(axis=(2, 3))
    return out, (x, pool_param)


@exercise("03_pooling", "Average pooling")
def avg_pool_backward_naive(dout, cache):
    """
    Naive backward pass of an average-pooling layer: each window's upstream gradient is spread
    evenly, ``dout / (pool_height * pool_width)``, over its pixels; a pixel covered by several
    overlapping windows receives the sum of their shares.

    Inputs:
    - dout: upstream gradient of shape (N, C, H', W')
    - cache: (x, pool_param) from avg_pool_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    """
    x, pool_param = cache
    ph, pw, stride, H_out, W_out = pool_geometry(x.shape, pool_param)
    N, C = x.shape[:2]
    _check_shape("dout", dout, (N, C, H_out, W_out))
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = _window(i, j, stride, ph, pw)
            dx[:, :, rows, cols] += dout[:, :, i, j, None, None] / (ph * pw)
    return _like(dx, x)


# --------------------------------------------------------------------------- batch normalisation
def batchnorm_forward(x, gamma, beta, bn_param):
    """
    Batch normalisation (Ioffe and Szegedy, 2015) of each of D features.

    Train mode normalises with the batch mean and (biased) variance and updates the running
    averages, which are stored back into ``bn_param``:
        running_mean = momentum * running_mean + (1 - momentum) * batch_mean
        running_var = momentum * running_var + (1 - momentum) * batch_var
    Test mode normalises with the running averages instead (defaults: zeros and ones).

    Inputs:
    - x: data of shape (N, D)
    - gamma: scale of shape (D,)
    - beta: shift of shape (D,)
    - bn_param: dict with the keys
      - 'mode': 'train' or 'test' (required)
      - 'eps': constant added to the variance, > 0 (default 1e-5)
      - 'momentum': decay of the running averages, in [0, 1] (default 0.9)
      - 'running_mean': array of shape (D,) (default zeros; replaced in train mode)
      - 'running_var': array of shape (D,) (default ones; replaced in train mode)

    Returns a tuple of:
    - out: output of shape (N, D)
    - cache: (x, mean, inv_std, gamma, beta, mode): the input, and the statistics it was
      normalised with, x_hat = (x - mean) * inv_std, where mean (the batch's in train mode,
      running_mean in test mode) and inv_std = 1 / sqrt(var + eps) have shape (D,). The
      backward pass recomputes x_hat rather than keep an array of x's size.
    """
    _check_ndim("x", x, 2, "(N, D)")
    return _batchnorm(x, gamma, beta, bn_param)


def batchnorm_backward(dout, cache):
    """
    Backward pass of batch normalisation.

    In train mode the batch mean and variance depend on x too, which gives the compact form
        dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)),  g = dout * gamma,
    means taken over the batch axis. In test mode the statistics are constants and
    dx = inv_std * g.

    Inputs:
    - dout: upstream gradient of shape (N, D)
    - cache: (x, mean, inv_std, gamma, beta, mode) from batchnorm_forward

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, D)
    - dgamma: gradient with respect to gamma, of shape (D,)
    - dbeta: gradient with respect to beta, of shape (D,)
    """
    return _batchnorm_backward(dout, cache)


def _batchnorm(x, gamma, beta, bn_param):
    """batchnorm_forward with the features on axis 1 of x, normalised over all other axes:
    (N, D) or (N, C, H, W).

    Train mode makes three passes over x (its sums; x - mean, whose squares are summed; out)
    and makes no array of x's size but out: a large batch is split into slices run side by
    side in threads (``parallel``), whose sums are added up, and each slice into chunks
    (``_chunk_map``) whose temporaries stay in the cache."""
    check_keys(bn_param, BN_PARAM_KEYS, "bn_param", required=("mode",))
    mode = check_mode(bn_param["mode"], "bn_param")
    D = x.shape[1]
    _check_shape("gamma", gamma, (D,))
    _check_shape("beta", beta, (D,))
    eps = bn_param.get("eps", 1e-5)
    momentum = bn_param.get("momentum", 0.9)
    if not eps > 0:
        raise ValueError(f"bn_param eps={eps!r} must be > 0")
    if not 0 <= momentum <= 1:
        raise ValueError(f"bn_param momentum={momentum!r} must be in [0, 1]")
    running_mean = bn_param.get("running_mean", np.zeros(D, dtype=x.dtype))
    running_var = bn_param.get("running_var", np.ones(D, dtype=x.dtype))
    _check_shape("bn_param running_mean", running_mean, (D,))
    _check_shape("bn_param running_var", running_var, (D,))
    if mode != "train":
        inv_std = 1 / np.sqrt(running_var + eps)  # (D,)
        x_hat = _like((x - _per_feature(running_mean, x)) * _per_feature(inv_std, x), x)
        out = _per_feature(gamma, x) * x_hat + _per_feature(beta, x)
        return out, (x, running_mean, inv_std, gamma, beta, mode)
    n = x.size // D
    out = np.empty(x.shape, dtype=np.result_type(x, gamma, beta))
    with _elementwise_batch(x) as batch:
        mean = sum(_chunk_map(batch, x, lambda c: _feature_sum(x[c]))) / n  # (D,)
        mean_ = _per_feature(mean, x)

        def squares(c):  # the sum of squares of x - mean
            centred = scratch.array("bn.centred", x[c].shape, x.dtype)
            np.subtract(x[c], mean_, out=centred)
            return _feature_sum(centred, centred)

        var = sum(_chunk_map(batch, x, squares)) / n  # (D,), the biased variance
        inv_std = 1 / np.sqrt(var + eps)  # (D,)
        gain = _per_feature(_like(inv_std, x) * gamma, x)
        shift = _per_feature(beta, x)

        def normalise(c):  # out = gamma * x_hat + beta
            np.subtract(x[c], mean_, out=out[c])
            out[c] *= gain
            out[c] += shift

        _chunk_map(batch, x, normalise)
    # new arrays, not in-place updates: arrays the caller holds are left as they were
    bn_param["running_mean"] = momentum * running_mean + (1 - momentum) * mean
    bn_param["running_var"] = momentum * running_var + (1 - momentum) * var
    return out, (x, mean, inv_std, gamma, beta, mode)


def _batchnorm_backward(dout, cache):
    """batchnorm_backward for x of any shape with the features on axis 1. In train mode
    dx = a * dout + b * x_hat + c with per-feature a = gamma * inv_std,
    b = -a * mean(g * x_hat) / gamma = -a * dgamma / n and c = -a * dbeta / n. Two passes,
    chunk by chunk (``_chunk_map``): the sums, with dx holding x - mean (x_hat is never made:
    its per-feature factor inv_std goes into the sums and into b), then dx from dout and
    that."""
    x, mean, inv_std, gamma, beta, mode = cache
    _check_shape("dout", dout, x.shape)
    a = gamma * inv_std  # (D,)
    mean_ = _per_feature(_like(mean, x), x)
    dx = np.empty(x.shape, dtype=x.dtype)

    def sums(c):  # sum(dout), sum(dout * (x - mean)); dx = x - mean
        centred = np.subtract(x[c], mean_, out=dx[c])
        return _feature_sum(dout[c]), _feature_sum(dout[c], centred)

    with _elementwise_batch(x) as batch:
        dbeta, dgamma = (sum(part) for part in zip(*_chunk_map(batch, x, sums), strict=True))
        dgamma = dgamma * inv_std  # sum(dout * x_hat), (D,)
        if mode == "train":
            n = x.size // x.shape[1]
            coefs = [a, -a * dgamma * inv_std / n, -a * dbeta / n]  # b times inv_std
        else:
            coefs = [a]
        coefs = [_per_feature(_like(c, x), x) for c in coefs]
        _chunk_map(batch, x, lambda c: _affine_sum(dout[c], coefs, dx[c]))
    return dx, _like(dgamma, gamma), _like(dbeta, beta)


def _affine_sum(dout, coefs, out):
    """out = a * dout, or a * dout + b * out + c when coefs holds b and c: per-feature a, b, c
    (laid out by ``_per_feature``)."""
    if len(coefs) == 1:
        np.multiply(dout, coefs[0], out=out)
        return
    a, b, c = coefs
    out *= b
    out += c
    out += np.multiply(dout, a, out=scratch.array("bn.term", dout.shape, out.dtype))


def _per_feature(v, x):
    """The per-feature (D,) array v laid out as one example of x (shape x.shape[1:], v[d] all
    over feature d), contiguous: it broadcasts against x over the batch axis only, so numpy's
    vector loops run along whole examples (2x faster than a (1, D, 1, 1) view, whose values
    stay put along the inner pixel axes)."""
    shape = (x.shape[1],) + (1,) * (x.ndim - 2)
    return np.ascontiguousarray(np.broadcast_to(np.reshape(v, shape), x.shape[1:]))


def _feature_sum(a, b=None):
    """sum(a), or sum(a * b) without an array of a's size, over every axis but axis 1: (D,).
    Data with pixels (N, D, ...) goes through BLAS, one row of pixels per (example, feature):
    a matrix-vector product for the sum, dot products for the products (2-3x faster than
    numpy's sum and einsum)."""
    if a.ndim == 2:
        return a.sum(axis=0) if b is None else np.einsum("nd,nd->d", a, b)
    N, D = a.shape[:2]
    rows = a.reshape(N * D, -1)
    if b is None:
        sums = rows @ np.ones(rows.shape[1], dtype=a.dtype)
    else:
        sums = np.matmul(rows[:, None, :], b.reshape(N * D, -1, 1))
    return sums.reshape(N, D).sum(axis=0)


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """
    Spatial batch normalisation: batchnorm_forward with every pixel of every image as an example
    of C features, so each channel is normalised over the N, H and W axes.

    Inputs:
    - x: input of shape (N, C, H, W)
    - gamma: scale of shape (C,)
    - beta: shift of shape (C,)
    - bn_param: as in batchnorm_forward (running averages have shape (C,))

    Returns a tuple of:
    - out: output of shape (N, C, H, W)
    - cache: as batchnorm_forward's, with x of shape (N, C, H, W)
    """
    _check_ndim("x", x, 4, "(N, C, H, W)")
    return _batchnorm(x, gamma, beta, bn_param)  # in NCHW, averaged over axes (0, 2, 3)


def spatial_batchnorm_backward(dout, cache):
    """
    Backward pass of spatial batch normalisation.

    Inputs:
    - dout: upstream gradient of shape (N, C, H, W)
    - cache: from spatial_batchnorm_forward

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    - dgamma: gradient with respect to gamma, of shape (C,)
    - dbeta: gradient with respect to beta, of shape (C,)
    """
    _check_ndim("dout", dout, 4, "(N, C, H, W)")
    return _batchnorm_backward(dout, cache)


# --------------------------------------------------------------------------- dropout
def dropout_forward(x, dropout_param):
    """
    Inverted dropout. In train mode each unit is kept with probability p and kept units are
    scaled by 1 / p, so the expected output equals x and test mode is simply the identity.

    Inputs:
    - x: input of any shape
    - dropout_param: dict with the keys
      - 'p': probability of KEEPING each unit, 0 < p <= 1 (required)
      - 'mode': 'train' or 'test' (required)
      - 'seed': optional integer >= 0; the same seed gives the same mask (for gradient checks)

    Returns a tuple of:
    - out: output of the same shape and dtype as x (a copy of x in test mode)
    - cache: (mode, mask) where mask holds 0 or 1 / p per unit (None in test mode)
    """
    check_keys(dropout_param, DROPOUT_PARAM_KEYS, "dropout_param", required=("p", "mode"))
    p = dropout_param["p"]
    if isinstance(p, bool) or not isinstance(p, Real) or not 0 < p <= 1:
        raise ValueError(f"dropout_param p={p!r} is the keep probability and must be in (0, 1]")
    mode = check_mode(dropout_param["mode"], "dropout_param")
    if mode == "test":
        return x.copy(), (mode, None)
    seed = dropout_param.get("seed")
    if seed is not None:
        seed = check_int(seed, "dropout_param seed", 0)
    keep = np.random.default_rng(seed).random(x.shape) < p  # True with probability p
    mask = keep.astype(x.dtype) / p  # 0 or 1 / p, same dtype as x
    return x * mask, (mode, mask)


def dropout_backward(dout, cache):
    """
    Backward pass of inverted dropout: the gradient flows through the kept units, scaled by 1 / p.

    Inputs:
    - dout: upstream gradient, same shape as x
    - cache: (mode, mask) from dropout_forward

    Returns:
    - dx: gradient with respect to x
    """
    mode, mask = cache
    if mode == "test":
        return dout.copy()
    _check_shape("dout", dout, mask.shape)
    return dout * mask


# --------------------------------------------------------------------------- losses
def _check_scores_and_labels(x, y):
    """Validate scores x (N, C) and integer labels y (N,) in [0, C); return y as an int array."""
    _check_ndim("scores x", x, 2, "(N, C)")
    N, C = x.shape
    y = np.asarray(y)
    if y.shape != (N,):
        raise ValueError(f"labels y must have shape ({N},) to match x of shape {x.shape}, "
                         f"got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels y must be integers, got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= C))
    if bad.size:
        i = bad[0]
        raise ValueError(f"label y[{i}]={y[i]} is outside [0, {C}) for C={C} classes")
    return y


def softmax_loss(x, y):
    """
    Softmax (cross-entropy) loss, averaged over the batch, and its gradient.

    Inputs:
    - x: scores of shape (N, C); x[i, j] is the score of class j for example i
    - y: integer labels of shape (N,), 0 <= y[i] < C

    Returns a tuple of:
    - loss: the mean of -log(softmax(x[i])[y[i]]), a float
    - dx: gradient of the loss with respect to x, of shape (N, C)
    """
    y = _check_scores_and_labels(x, y)
    N = x.shape[0]
    rows = np.arange(N)
    top = x.max(axis=1, keepdims=True)  # (N, 1)
    # exp(x - max) in (0, 1], so it cannot overflow; float32 stays float32, integers go float64
    probs = np.subtract(x, top, dtype=np.result_type(x.dtype, np.float16))  # (N, C)
    np.exp(probs, out=probs)
    total = probs.sum(axis=1)  # (N,), >= 1
    # -log softmax(x)[y] = log(total) - (x[y] - max): one exp per score, N logs
    loss = np.mean(np.log(total) - (x[rows, y] - top[:, 0]))
    probs *= 1 / (N * total[:, None])  # softmax probabilities / N: the gradient but at y
    probs[rows, y] -= 1 / N
    return float(loss), probs


def svm_loss(x, y):
    """
    Multiclass SVM (hinge) loss with margin 1, averaged over the batch, and its gradient.

    Inputs:
    - x: scores of shape (N, C); x[i, j] is the score of class j for example i
    - y: integer labels of shape (N,), 0 <= y[i] < C

    Returns a tuple of:
    - loss: the mean over i of sum over j != y[i] of max(0, x[i, j] - x[i, y[i]] + 1), a float
    - dx: gradient of the loss with respect to x, of shape (N, C)
    """
    y = _check_scores_and_labels(x, y)
    N = x.shape[0]
    rows = np.arange(N)
    margins = np.maximum(0, x - x[rows, y, None] + 1)  # (N, C)
    margins[rows, y] = 0
    loss = margins.sum() / N
    dx = (margins > 0).astype(x.dtype)  # each violating class j pushes x[i, j] up ...
    dx[rows, y] = -dx.sum(axis=1)  # ... and the correct class down, once per violation
    dx /= N
    return float(loss), dx
