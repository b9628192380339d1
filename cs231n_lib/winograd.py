"""Winograd F(4x4, 3x3) convolution: 3 x 3 filters at stride 1 with 2.25 instead of 9
multiplications per output.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). In 1-D, four outputs
of a 3-tap correlation ``y[t] = sum_k g[k] d[t + k]`` over a 6-sample tile d are

    y = AT @ ((G @ g) * (BT @ d))

and in 2-D, for a 6 x 6 input tile d and a 3 x 3 filter g, the 4 x 4 output tile is
``AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T``. Summed over input channels, the elementwise
product becomes 36 independent matrix multiplies (one per tile position (a, b)) of
(P tiles, C) @ (C, F): that is where the time goes, and why it is fast.

The backward pass is the exact adjoint of the same three steps (transposed transforms and
transposed matrix multiplies), so no separate algorithm is needed for dx and dw.

Layout: internally channels-last, (..., N, tiles_h, tiles_w, C), so every copy between layouts
moves runs of C contiguous numbers. Tiles start every 4 pixels and overlap by 2.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

M = 4  # output tile size
R = 3  # filter size
ALPHA = M + R - 1  # input tile size, 6

# Interpolation points 0, 1, -1, 2, -2 and infinity (Lavin & Gray, F(4, 3)).
AT = np.array([[1, 1, 1, 1, 1, 0],
               [0, 1, -1, 2, -2, 0],
               [0, 1, 1, 4, 4, 0],
               [0, 1, -1, 8, -8, 1]], dtype=np.float64)  # (M, ALPHA): output transform
G = np.array([[1 / 4, 0, 0],
              [-1 / 6, -1 / 6, -1 / 6],
              [-1 / 6, 1 / 6, -1 / 6],
              [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6],
              [0, 0, 1]], dtype=np.float64)  # (ALPHA, R): filter transform
BT = np.array([[4, 0, -5, 0, 1, 0],
               [0, -4, -4, 1, 1, 0],
               [0, 4, -4, -1, 1, 0],
               [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0],
               [0, 4, 0, -5, 0, 1]], dtype=np.float64)  # (ALPHA, ALPHA): input transform

MIN_CHANNELS = 16  # below this the tile copies cost more than the saved multiplies


def applies(w_shape, stride: int, dilation: int) -> bool:
    """True when Winograd F(4x4, 3x3) computes this convolution and pays off."""
    _, C, HH, WW = w_shape
    return (HH, WW) == (R, R) and stride == 1 and dilation == 1 and C >= MIN_CHANNELS


def _transform(T: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Apply the small matrix T (k_out, k_in) to both leading axes of X (k_in, k_in, ...):
    ``T @ X[:, :, l] @ T.T`` for every trailing index l, as two large matrix multiplies."""
    k_in = X.shape[0]
    rest = X.shape[2:]
    T = T.astype(X.dtype)
    X1 = (T @ X.reshape(k_in, -1)).reshape(T.shape[0], k_in, -1)  # first axis
    return np.matmul(T, X1).reshape(T.shape[0], T.shape[0], *rest)  # second axis


def _tiles(nhwc: np.ndarray, tiles_h: int, tiles_w: int) -> np.ndarray:
    """View (ALPHA, ALPHA, N, tiles_h, tiles_w, C) of the overlapping 6 x 6 tiles of an
    (N, H, W, C) array, one every M pixels (shares memory with it)."""
    sn, sh, sw, sc = nhwc.strides
    N, _, _, C = nhwc.shape
    return as_strided(nhwc, (ALPHA, ALPHA, N, tiles_h, tiles_w, C),
                      (sh, sw, sn, M * sh, M * sw, sc), writeable=nhwc.flags.writeable)


def _geometry(x_shape, pad: int):
    """Number of tiles along H and W, and the padded size that holds them all."""
    _, _, H, W = x_shape
    tiles_h = -(-(H + 2 * pad - R + 1) // M)  # ceil(H_out / M)
    tiles_w = -(-(W + 2 * pad - R + 1) // M)
    return tiles_h, tiles_w, M * tiles_h + R - 1, M * tiles_w + R - 1


def conv_forward(x, w, b, pad):
    """Winograd forward pass for 3 x 3 filters, stride 1.

    Inputs:
    - x: (N, C, H, W); w: (F, C, 3, 3); b: (F,); all in one floating dtype.
    - pad: Zero padding per side.

    Returns a tuple of:
    - out: (N, F, H_out, W_out), contiguous.
    - saved: (U, V) transformed filters (36, C, F) and tiles (36, P, C) for the backward pass.
    """
    N, C, H, W = x.shape
    F = w.shape[0]
    H_out, W_out = H + 2 * pad - R + 1, W + 2 * pad - R + 1
    tiles_h, tiles_w, Hp, Wp = _geometry(x.shape, pad)
    P = N * tiles_h * tiles_w
    xp = np.zeros((N, Hp, Wp, C), dtype=x.dtype)  # padded, channels last
    xp[:, pad:pad + H, pad:pad + W] = x.transpose(0, 2, 3, 1)
    d = np.ascontiguousarray(_tiles(xp, tiles_h, tiles_w))  # (6, 6, N, th, tw, C)
    V = _transform(BT, d).reshape(ALPHA * ALPHA, P, C)
    U = np.einsum("ai,fcij,bj->abcf", G, w, G).astype(x.dtype).reshape(ALPHA * ALPHA, C, F)
    Mt = np.matmul(V, U)  # (36, P, F): 36 matrix multiplies, the bulk of the work
    Y = _transform(AT, Mt.reshape(ALPHA, ALPHA, P * F))  # (4, 4, P * F)
    Y = Y.reshape(M, M, N, tiles_h, tiles_w, F).transpose(2, 5, 3, 0, 4, 1)  # (N,F,th,4,tw,4)
    full = np.empty((N, F, tiles_h, M, tiles_w, M), dtype=x.dtype)
    np.add(Y, b.reshape(1, F, 1, 1, 1, 1), out=full)
    out = full.reshape(N, F, M * tiles_h, M * tiles_w)
    if out.shape[2:] != (H_out, W_out):  # ragged last tile: drop the extra rows/columns
        out = out[:, :, :H_out, :W_out].copy()
    return out, (U, V)


def conv_backward(dout, saved, x_shape, pad):
    """Adjoint of ``conv_forward``.

    Inputs:
    - dout: (N, F, H_out, W_out).
    - saved: (U, V) from ``conv_forward``.
    - x_shape: (N, C, H, W); pad: zero padding per side.

    Returns a tuple (dx, dw) of shapes (N, C, H, W) and (F, C, 3, 3).
    """
    U, V = saved
    N, C, H, W = x_shape
    F = U.shape[2]
    H_out, W_out = dout.shape[2:]
    tiles_h, tiles_w, Hp, Wp = _geometry(x_shape, pad)
    P = N * tiles_h * tiles_w
    if (H_out, W_out) != (M * tiles_h, M * tiles_w):  # ragged last tile: pad dout with zeros
        dout = np.pad(dout, [(0, 0), (0, 0), (0, M * tiles_h - H_out), (0, M * tiles_w - W_out)])
    dY = np.empty((M, M, N, tiles_h, tiles_w, F), dtype=dout.dtype)
    dY.transpose(2, 5, 3, 0, 4, 1)[...] = dout.reshape(N, F, tiles_h, M, tiles_w, M)
    dM = _transform(AT.T, dY.reshape(M, M, P * F)).reshape(ALPHA * ALPHA, P, F)
    dU = np.matmul(V.transpose(0, 2, 1), dM)  # (36, C, F)
    dV = np.matmul(dM, U.transpose(0, 2, 1))  # (36, P, C)
    dw = np.einsum("ai,abcf,bj->fcij", G, dU.reshape(ALPHA, ALPHA, C, F), G)
    dd = _transform(BT.T, dV.reshape(ALPHA, ALPHA, P * C))  # (6, 6, P * C)
    dd = dd.reshape(ALPHA, ALPHA, N, tiles_h, tiles_w, C)
    dxp = np.zeros((N, Hp, Wp, C), dtype=dout.dtype)
    dtiles = _tiles(dxp, tiles_h, tiles_w)
    for a in range(ALPHA):
        for b in range(ALPHA):
            dtiles[a, b] += dd[a, b]  # one tap plane never aliases itself; tiles overlap by 2
    dx = dxp[:, pad:pad + H, pad:pad + W].transpose(0, 3, 1, 2)
    return np.ascontiguousarray(dx), dw.astype(dout.dtype)
