"""Winograd F(4x4, 3x3) convolution: 3 x 3 filters at stride 1 with 2.25 instead of 9
multiplications per output.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016). In 1-D, four outputs
of a 3-tap correlation ``y[t] = sum_k g[k] d[t + k]`` over a 6-sample tile d are

    y = AT @ ((G @ g) * (BT @ d))

and in 2-D, for a 6 x 6 input tile d and a 3 x 3 filter g, the 4 x 4 output tile is
``AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T``. Summed over input channels, the elementwise
product becomes 36 independent matrix multiplies (one per tile position (a, b)) of
(F, C) @ (C, P tiles): that is where the time goes, and why it is fast.

The backward pass is the exact adjoint of the same three steps (transposed transforms and
transposed matrix multiplies), so no separate algorithm is needed for dx and dw.

Layout, chosen so that numpy copies long contiguous runs (short ones make it slow): tiles are
gathered channels-last, (6, 6, N, tiles_h, tiles_w, C); the output transform leaves each tile's
column index last, so the one copy into NCHW moves whole image rows (tiles_w * 4 numbers) at a
time. The bias rides along inside the transform domain (see ``BIAS_AT``) rather than as a
broadcast add over the output, which would cost more than that copy. Tiles start every 4 pixels
and overlap by 2; a ragged last tile is zero-padded.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from cs231n_lib import scratch
from cs231n_lib.im2col import pad_hw

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

# Tile position (1, 1) (interpolation point 1): AT's column 1 is all ones, so a value added to
# every tile at (1, 1) reaches all 16 outputs of the tile unchanged.
BIAS_AT = 1 * ALPHA + 1
# The filter transform of all (f, c) at once: GG[6a + b, 3i + j] = G[a, i] G[b, j], so that
# G g G^T flattened is GG @ g.ravel() (computed once: a kron per layer call cost ~15 us)
GG = np.kron(G, G)
MIN_CHANNELS = 8  # below this the tile copies cost more than the saved multiplies (measured)
# A dilated convolution runs as one Winograd convolution per phase (``conv_forward_dilated``),
# on images d times smaller each way. Measured against the gemm path (float32, 2 threads,
# forward + backward): 0.54-0.91 of its time with 32 to 128 channels when the phases' outputs
# fill their tiles (dilation 2 on 8 x 8 to 32 x 32 outputs, 3 on 24 x 24, 4 on 16 x 16); 1.09-1.25
# when they do not (dilation 3 on 16 x 16: 5- and 6-pixel phases in 8-pixel tiles); 1.0 with 16
# channels, 1.5-2 with 8 (notebook-sized layers). Hence: at least this many channels, and at
# most this much of the tiles' outputs beyond the layer's.
MIN_CHANNELS_DILATED = 32
MAX_TILED_SHARE = 1.25


def applies(w_shape, stride: int, dilation: int, out_hw=None) -> bool:
    """True when Winograd F(4x4, 3x3) computes this convolution and pays off; a dilated one
    (``conv_forward_dilated``, out_hw: its output's (H_out, W_out)) when it has at least
    ``MIN_CHANNELS_DILATED`` input channels and its phases' outputs fill their tiles."""
    _, C, HH, WW = w_shape
    if (HH, WW) != (R, R) or stride != 1 or C < MIN_CHANNELS:
        return False
    return dilation == 1 or (out_hw is not None and C >= MIN_CHANNELS_DILATED
                             and _phase_tiles(out_hw, dilation) <= MAX_TILED_SHARE)


def _phase_tiles(out_hw, dilation) -> float:
    """The outputs the tiles of a dilated convolution's phases compute, as a share of the
    output's own: along each axis the phases' outputs (ceil((H_out - a) / d) for phase a) are
    rounded up to whole tiles of M."""
    share = 1.0
    for size in out_hw:
        tiled = sum(-(-len(range(a, size, dilation)) // M) * M for a in range(min(dilation, size)))
        share *= tiled / max(size, 1)
    return share


def _transform(T: np.ndarray, X: np.ndarray, out: np.ndarray | None = None,
               tmp: np.ndarray | None = None) -> np.ndarray:
    """``T @ X[:, :, l] @ T.T`` for every trailing index l of X (k_in, k_in, L), as two large
    matrix multiplies; returns (k_out, k_out, L). ``out`` may be X's own memory (X is not read
    by the second multiply) and ``tmp`` (k_out, k_in, L) a dead buffer for the intermediate:
    reusing memory saves the page faults of fresh arrays."""
    k_in, k_out = X.shape[0], T.shape[0]
    T = T.astype(X.dtype)
    if tmp is not None:
        tmp = tmp.reshape(k_out, -1)
    X1 = np.matmul(T, X.reshape(k_in, -1), out=tmp).reshape(k_out, k_in, -1)  # first axis
    return np.matmul(T, X1, out=out)  # second axis


def filters(w: np.ndarray) -> np.ndarray:
    """Transformed filters U = G g G^T for every (f, c), laid out (36, F, C).

    ``G g G^T`` flattened is ``kron(G, G) @ g.ravel()``, so all F * C filters take ONE
    (36, 9) @ (9, F * C) product that writes the (36, F, C) layout directly (a broadcast
    matmul over (f, c) would make F * C tiny products: ten times slower)."""
    F, C = w.shape[:2]
    return (GG.astype(w.dtype) @ w.reshape(F * C, R * R).T).reshape(ALPHA * ALPHA, F, C)


def filters_adjoint(dU: np.ndarray) -> np.ndarray:
    """dw = G^T dU G for every (f, c): the adjoint of ``filters``; returns (F, C, 3, 3)."""
    _, F, C = dU.shape
    return (dU.reshape(ALPHA * ALPHA, F * C).T @ GG.astype(dU.dtype)).reshape(F, C, R, R)


def _scratch(role: str, shape, dtype) -> np.ndarray:
    """A temporary from ``scratch`` (reused between calls, see there)."""
    return scratch.array(f"winograd.{role}", shape, dtype)


def _padded(x: np.ndarray, pad: int, Hp: int, Wp: int) -> np.ndarray:
    """x (N, C, H, W) zero-padded to (N, Hp, Wp, C), channels last: ``pad`` rows and columns
    before, the rest after (the tiles may reach past H + 2 * pad)."""
    N, C, H, W = x.shape
    xp = _scratch("xp", (N, Hp, Wp, C), x.dtype)
    xp[:, :pad] = 0
    xp[:, pad + H:] = 0
    xp[:, pad:pad + H, :pad] = 0
    xp[:, pad:pad + H, pad + W:] = 0
    xp[:, pad:pad + H, pad:pad + W] = x.transpose(0, 2, 3, 1)
    return xp


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


def conv_forward(x, U, b, pad, out):
    """Winograd forward pass for 3 x 3 filters, stride 1.

    Inputs:
    - x: (N, C, H, W); U: transformed filters (36, F, C) from ``filters``; b: (F,); all in one
      floating dtype.
    - pad: Zero padding per side.
    - out: (N, F, H_out, W_out) array the output is written to (may be a slice of a larger
      batch's output).

    Returns V, the transformed tiles (36, P, C) the backward pass needs,
    P = N * tiles_h * tiles_w.
    """
    N, C, H, W = x.shape
    F = U.shape[1]
    tiles_h, tiles_w, Hp, Wp = _geometry(x.shape, pad)
    P = N * tiles_h * tiles_w
    xp = _padded(x, pad, Hp, Wp)  # padded, channels last
    # (6, 6, N, th, tw, C), a new array: V is made in it and kept for the backward pass. (Not
    # ascontiguousarray: one image of one tile is already contiguous, and V would then be the
    # scratch buffer, which the next layer's forward pass in this thread overwrites.)
    d = np.array(_tiles(xp, tiles_h, tiles_w), order="C", copy=True)
    d = d.reshape(ALPHA, ALPHA, P * C)
    V = _transform(BT, d, out=d, tmp=_scratch("C", (ALPHA, ALPHA, P * C), d.dtype))
    V = V.reshape(ALPHA * ALPHA, P, C)  # V = BT d BT^T per tile, kept for the backward pass
    # 36 matrix multiplies (F, C) @ (C, P): the bulk of the work. (36, F, P)
    Mt = np.matmul(U, V.transpose(0, 2, 1), out=_scratch("C", (ALPHA * ALPHA, F, P), x.dtype))
    # The bias, added to one (F, P) slice (1/36 of Mt): AT e_1 = ones(4), so AT Mt AT^T adds b
    # to all 16 outputs of every tile. A broadcast add over the output costs more than its copy.
    Mt[BIAS_AT] += b[:, None]
    # Output transform AT Mt AT^T; the second product puts j (tile column) last, so that the
    # copy below moves whole image rows (tiles_w * 4 numbers) at a time.
    Y1 = np.matmul(AT.astype(x.dtype), Mt.reshape(ALPHA, -1),
                   out=_scratch("B", (M, ALPHA * F * P), x.dtype)).reshape(M, ALPHA, F * P)
    Y = np.matmul(Y1.transpose(0, 2, 1), AT.T.astype(x.dtype),
                  out=Mt.reshape(-1)[:M * F * P * M].reshape(M, F * P, M))  # (4, L, 4)
    for tiled, image in _same_pixels(Y, out)[1]:
        np.copyto(image, tiled)
    return V


def conv_forward_dilated(x, U, b, pad, dilation, out):
    """``conv_forward`` for a dilated convolution (stride 1): tap (i, j) of output (h, w) reads
    padded pixel (h + d * i, w + d * j), so the outputs of phase (h % d, w % d) = (a, b) are the
    undilated convolution of the padded pixels of the same phase, xp[a::d, b::d] (no padding):
    one Winograd convolution per phase pair, into out[:, :, a::d, b::d] (on an image smaller
    than d, some phases have no output: a convolution of no tiles). Returns the phases'
    transformed tiles, [V for each of ``_phase_pairs``]."""
    n, C, H, W = x.shape
    xp = pad_hw(x, pad, out=_scratch("dilated", (n, C, H + 2 * pad, W + 2 * pad), x.dtype))
    d = dilation
    return [conv_forward(xp[:, :, a::d, c::d], U, b, 0, out[:, :, a::d, c::d])
            for a, c in _phase_pairs(d)]


def _phase_pairs(dilation):
    """The phase pairs (a, b) of a dilated convolution, in the order of its list of tiles."""
    return [(a, b) for a in range(dilation) for b in range(dilation)]


def conv_backward_dilated(dout, U, Vs, pad, dilation, dx, x_shape=None):
    """The adjoint of ``conv_forward_dilated`` (Vs: what it returned), as ``conv_backward``:
    returns (dU, db) summed over the phases, and writes dx unless it is None. Each padded pixel
    is in one phase, so the phases' input gradients tile the padded dx."""
    n, C, H, W = x_shape if dx is None else dx.shape
    d, Hp, Wp = dilation, H + 2 * pad, W + 2 * pad
    dxp = None if dx is None else _scratch("dilated", (n, C, Hp, Wp), dout.dtype)
    grads = []
    for (a, c), V in zip(_phase_pairs(d), Vs, strict=True):
        shape = (n, C, len(range(a, Hp, d)), len(range(c, Wp, d)))
        grads.append(conv_backward(dout[:, :, a::d, c::d], U, V, 0,
                                   None if dxp is None else dxp[:, :, a::d, c::d], shape))
    if dx is not None:
        dx[...] = dxp[:, :, pad:pad + H, pad:pad + W]
    return tuple(sum(g) for g in zip(*grads, strict=True))


def _same_pixels(Y, image):
    """Y (4, F * P, 4), the output tiles as the output transform leaves them, seen as
    (N, F, tiles_h, 4, tiles_w * 4): each tile row's 4 image rows, whole (tile column and
    column within the tile are adjacent); and the (tiles' view, image's view) pairs that hold
    the same pixels of ``image`` (N, F, H_out, W_out): the tile rows whose 4 image rows are all
    in the image, then the first rows of a ragged last one. A ragged last tile's columns past
    W_out are in neither."""
    N, F, H_out, W_out = image.shape
    tiles_h, width = -(-H_out // M), -(-W_out // M) * M  # (width: tiles_w * 4)
    rows = Y.reshape(M, F, N, tiles_h, width).transpose(2, 1, 3, 0, 4)
    whole = H_out // M
    pairs = [(rows[:, :, :whole, :, :W_out],
              image[:, :, :whole * M].reshape(N, F, whole, M, W_out))]
    if whole < tiles_h:
        pairs.append((rows[:, :, whole, :H_out - whole * M, :W_out], image[:, :, whole * M:]))
    return rows, pairs


def conv_backward(dout, U, V, pad, dx, x_shape=None):
    """Adjoint of ``conv_forward``.

    Inputs:
    - dout: (N, F, H_out, W_out).
    - U, V: the transformed filters and the tiles ``conv_forward`` returned.
    - pad: zero padding per side.
    - dx: (N, C, H, W) array the gradient of x is written to, or None when nobody needs it
      (then its work, the dV multiplies, their transform and the overlap-add, is skipped).
    - x_shape: (N, C, H, W) of x; needed only when dx is None.

    Returns (dU, db): the gradient of U (36, F, C) (``filters_adjoint`` turns it into dw) and
    db (F,).
    """
    if dx is None and x_shape is None:
        raise ValueError("x_shape=None: without dx, conv_backward needs x's shape (N, C, H, W)")
    N, C, H, W = x_shape if dx is None else dx.shape
    F = U.shape[1]
    H_out, W_out = dout.shape[2:]
    tiles_h, tiles_w, Hp, Wp = _geometry((N, C, H, W), pad)
    P = N * tiles_h * tiles_w
    dtype = dout.dtype
    dY = _scratch("A", (M, F * P, M), dtype)  # layout of Y in the forward
    # dout into it, runs of whole image rows; what ragged last tiles reach past it, zeros
    rows, pairs = _same_pixels(dY, dout)
    for tiled, image in pairs:
        np.copyto(tiled, image)
    rows[..., W_out:] = 0
    if H_out % M:  # a ragged last tile row: its rows below dout's
        rows[:, :, H_out // M, H_out % M:] = 0
    # adjoint of the output transform: (4, L, 4) -> (4, 6, L) -> (6, 6, L)
    dY1 = np.matmul(AT.T.astype(dtype), dY.transpose(0, 2, 1),
                    out=_scratch("B", (M, ALPHA, F * P), dtype))
    dM = np.matmul(AT.T.astype(dtype), dY1.reshape(M, -1),
                   out=_scratch("C", (ALPHA, ALPHA * F * P), dtype)).reshape(ALPHA * ALPHA, F, P)
    db = dM[BIAS_AT].sum(axis=1)  # adjoint of the bias added at tile position (1, 1)
    dU = np.matmul(dM, V)  # (36, F, C)
    if dx is None:
        return dU, db
    # dY1, then dM are dead from here on: their roles hold dV and the transform's temporary.
    dV = np.matmul(dM.transpose(0, 2, 1), U, out=_scratch("B", (ALPHA * ALPHA, P, C), dtype))
    dV = dV.reshape(ALPHA, ALPHA, P * C)
    dd = _transform(BT.T, dV, out=dV, tmp=_scratch("C", (ALPHA, ALPHA, P * C), dtype))
    dd = dd.reshape(ALPHA, ALPHA, N, tiles_h, tiles_w, C)
    # Overlap-add the tiles: positions a, b < 4 of all tiles cover the image once; positions
    # 4 and 5 overlap the next tile's 0 and 1. Each of the four blocks below is alias-free.
    dxp = _scratch("xp", (N, Hp, Wp, C), dtype)
    dxp[:, M * tiles_h:] = 0  # the rows and columns that only positions 4 and 5 reach
    dxp[:, :, M * tiles_w:] = 0
    dtiles = _tiles(dxp, tiles_h, tiles_w)
    dtiles[:M, :M] = dd[:M, :M]
    dtiles[M:, :M] += dd[M:, :M]
    dtiles[:M, M:] += dd[:M, M:]
    dtiles[M:, M:] += dd[M:, M:]
    dx[...] = dxp[:, pad:pad + H, pad:pad + W].transpose(0, 3, 1, 2)
    return dU, db
