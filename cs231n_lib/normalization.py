"""Local response normalisation (LRN): the normalisation layer of AlexNet and ZF Net.

A given tool of notebook 6 (part 7), not an exercise: the notebook computes it on small examples
to show what the ``LRN`` entries of ``architectures.alexnet()`` and ``zfnet()`` did. Each
activation is divided by a power of the summed squares of its neighbours across channels
(Krizhevsky et al., 2012, section 3.3):

    b[n, c, h, w] = a[n, c, h, w] / (k + alpha * sum_{c' in window(c)} a[n, c', h, w]**2) ** beta

where window(c) holds the ``size`` channels centred on c (clipped at the first and last
channel). The paper's constants are the defaults: size=5, k=2, alpha=1e-4, beta=0.75. The paper
sums alpha * a**2; PyTorch's ``LocalResponseNorm`` uses alpha / size instead (pass
``alpha=1e-4 / 5`` for the same numbers).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

SIZE, K, ALPHA, BETA = 5, 2.0, 1e-4, 0.75  # the paper's constants, the defaults below
ALEXNET_LRN = {"size": SIZE, "k": K, "alpha": ALPHA, "beta": BETA}


def _check_lrn_args(x, size, k, alpha, beta):
    """ValueError naming the value and the rule for an invalid LRN input or constant."""
    if np.ndim(x) != 4:
        raise ValueError(f"x has shape {np.shape(x)}; LRN needs (N, C, H, W)")
    if isinstance(size, bool) or not isinstance(size, Integral) or size < 1 or size % 2 == 0:
        raise ValueError(f"size={size!r} must be an odd positive integer (a centred window)")
    for name, value in (("k", k), ("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
            raise ValueError(f"{name}={value!r} must be a real number >= 0")
    if k == 0 and alpha == 0:
        raise ValueError("k=0 and alpha=0 leave LRN's denominator at 0")


def lrn_denominator(x, size=SIZE, k=K, alpha=ALPHA, beta=BETA):
    """(k + alpha * sum of squares over the ``size`` neighbouring channels) ** beta, shaped as x."""
    _check_lrn_args(x, size, k, alpha, beta)
    squares = np.asarray(x, dtype=np.float64) ** 2
    half = size // 2
    padded = np.pad(squares, ((0, 0), (half, half), (0, 0), (0, 0)))  # zeros beyond the ends
    C = squares.shape[1]
    window_sums = sum(padded[:, offset:offset + C] for offset in range(size))  # (N, C, H, W)
    return (k + alpha * window_sums) ** beta


def lrn_forward(x, size=SIZE, k=K, alpha=ALPHA, beta=BETA):
    """
    Local response normalisation across channels (forward pass only).

    Inputs:
    - x: activations of shape (N, C, H, W)
    - size: number of neighbouring channels summed (odd; 5 in AlexNet)
    - k, alpha, beta: the constants of the formula in the module docstring

    Returns the normalised activations, of x's shape and dtype.
    """
    out = np.asarray(x, dtype=np.float64) / lrn_denominator(x, size, k, alpha, beta)
    return out.astype(np.result_type(x, np.float32), copy=False)
