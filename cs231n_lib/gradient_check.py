"""Numerical gradients and the relative error: the project's only copies of these helpers."""

from __future__ import annotations

import numpy as np


def rel_error(x, y, eps: float = 1e-300) -> float:
    """Relative error of x against y, normwise: ``max |x - y| / max(|x| + |y|)`` (largest
    entries over the whole arrays; 0 when both are all zeros).

    Elementwise relative errors (CS231n's ``max(|x - y| / (|x| + |y|))``) blow up at entries
    near zero: a float32 result that is correct to float32 precision has absolute errors of
    order 1e-7 times the scale of the terms it sums, so an output entry that cancels to 1e-5
    reports ~0.01-0.1 - for example a float32 convolution against its float64 value. Measured
    against the largest entries, the same result reports ~1e-7, while a wrong gradient (a
    missing term, a wrong sign, a wrong scale) still reports errors far above 1e-7.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs equal shapes, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0
    return float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(x) + np.abs(y))), eps))


def eval_numerical_gradient(f, x: np.ndarray, verbose: bool = False, h: float = 1e-5):
    """Centred-difference gradient of a scalar function ``f`` at ``x`` (x is perturbed in place
    and restored)."""
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x: np.ndarray, df: np.ndarray, h: float = 1e-5):
    """Numerical gradient of ``sum(f(x) * df)`` with respect to ``x`` (array-valued f).

    Not written as ``eval_numerical_gradient`` of ``sum(f(x) * df)``: subtracting the two
    outputs *before* the product with ``df`` loses less precision to cancellation (layer tests
    need relative errors below 1e-7 in float64).
    """
    grad = np.zeros_like(x, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"], op_flags=[["readwrite"]])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old - h
        neg = np.array(f(x), dtype=np.float64, copy=True)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad


def grad_check_sparse(f, x: np.ndarray, analytic_grad: np.ndarray, num_checks: int = 10,
                      h: float = 1e-5, seed: int | None = 0, verbose: bool = True):
    """Compare ``analytic_grad`` with centred differences at ``num_checks`` random entries.

    Returns the list of relative errors (one per checked entry).
    """
    rng = np.random.default_rng(seed)
    errors = []
    for _ in range(num_checks):
        ix = tuple(int(rng.integers(m)) for m in x.shape)
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        num = (fxph - fxmh) / (2 * h)
        ana = analytic_grad[ix]
        err = abs(num - ana) / max(1e-12, abs(num) + abs(ana))
        errors.append(float(err))
        if verbose:
            print(f"numerical: {num:f} analytic: {ana:f}, relative error: {err:e}")
    return errors
