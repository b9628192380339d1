"""Independent oracles for L2-norm pooling (notebook 03, part 5), by brute force per window.

Used by tests/test_pooling_l2.py and by the generic oracle table of
tests/test_notebook_oracles_01_03.py. Nothing here shares code with the reference solution:
every output and every gradient is computed one (n, c, i, j) window at a time.
"""

from __future__ import annotations

import numpy as np


def _window_slices(pool_param, i, j):
    ph, pw, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    return slice(i * S, i * S + ph), slice(j * S, j * S + pw)


def _out_shape(x_shape, pool_param):
    """(N, C, H_out, W_out), asserting that the windows tile the input exactly."""
    N, C, H, W = x_shape
    ph, pw, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    assert (H - ph) % S == 0 and (W - pw) % S == 0, f"invalid test setting {pool_param}"
    return N, C, (H - ph) // S + 1, (W - pw) // S + 1


def l2_pool_oracle(x, pool_param):
    """out[n, c, i, j] = np.hypot folded over the window's values, one window at a time."""
    out = np.zeros(_out_shape(x.shape, pool_param))
    for n, c, i, j in np.ndindex(*out.shape):
        rows, cols = _window_slices(pool_param, i, j)
        out[n, c, i, j] = np.hypot.reduce(x[n, c, rows, cols].ravel(), initial=0.0)
    return out


def l2_pool_backward_oracle(x, dout, pool_param):
    """dx by the chain rule per window: dout * x / ||window||, 0 for an all-zero window;
    overlapping windows add."""
    dx = np.zeros(x.shape)
    for n, c, i, j in np.ndindex(*dout.shape):
        rows, cols = _window_slices(pool_param, i, j)
        window = x[n, c, rows, cols]
        norm = np.sqrt(np.sum(window.astype(np.float64) ** 2))
        if norm > 0:
            dx[n, c, rows, cols] += dout[n, c, i, j] * window / norm
    return dx


def l2_window_norm(windows, axis):
    """``reduce`` for a generic pool-forward oracle over a window view: the L2 norm."""
    return np.sqrt(np.sum(np.square(windows), axis=axis))
