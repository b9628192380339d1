"""Shared pieces of the tests/test_layers_*.py files: a table of every layer with small inputs,
and a gradient check of a backward pass against centred differences."""

from __future__ import annotations

import itertools

import numpy as np

from cs231n_lib import layers
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error
from cs231n_lib.shapes import conv_geometry


def conv_geometries(heights, widths, filter_heights, filter_widths, strides, pads, dilations):
    """(H, W, HH, WW, stride, pad, dilation) of every combination of the given values whose
    windows tile the padded input (the others are not convolutions the layers accept)."""
    for H, W, HH, WW, S, P, d in itertools.product(heights, widths, filter_heights,
                                                  filter_widths, strides, pads, dilations):
        try:
            conv_geometry((1, 1, H, W), (1, 1, HH, WW), {"stride": S, "pad": P, "dilation": d})
        except ValueError:
            continue
        yield H, W, HH, WW, S, P, d


def away_from_zero(rng, shape, gap=0.1):
    """Random values with |v| >= gap, so a step of 1e-5 never crosses a ReLU kink."""
    v = rng.standard_normal(shape)
    return np.sign(v) * (gap + np.abs(v))


def distinct(rng, shape, gap=0.1):
    """Values that differ pairwise by at least ``gap``: no max-pool ties, even after a 1e-5 step."""
    return rng.permutation(int(np.prod(shape))).reshape(shape) * gap


def numerical_grads(forward, arrays, dout):
    """Centred-difference gradients of ``sum(forward(*arrays)[0] * dout)``, one per array."""
    grads = []
    for k, array in enumerate(arrays):

        def f(v, k=k):
            args = list(arrays)
            args[k] = v
            return forward(*args)[0]

        grads.append(eval_numerical_gradient_array(f, array.copy(), dout))
    return grads


def check_gradients(forward, backward, arrays, rng, tol=1e-7):
    """Assert that ``backward`` matches the numerical gradient of every input to ``forward``."""
    out, cache = forward(*arrays)
    dout = rng.standard_normal(out.shape)
    analytic = backward(dout, cache)
    analytic = analytic if isinstance(analytic, tuple) else (analytic,)
    numeric = numerical_grads(forward, arrays, dout)
    assert len(analytic) == len(arrays), "backward must return one gradient per input"
    for k, (a, n, x) in enumerate(zip(analytic, numeric, arrays, strict=True)):
        assert a.shape == x.shape, f"gradient {k}: shape {a.shape} != input shape {x.shape}"
        err = rel_error(a, n)
        assert err < tol, f"gradient {k}: relative error {err:.2e} >= {tol:.0e}"


POOL_3x3_S2 = {"pool_height": 3, "pool_width": 3, "stride": 2}


def _bn(spatial, mode):
    forward = layers.spatial_batchnorm_forward if spatial else layers.batchnorm_forward
    backward = layers.spatial_batchnorm_backward if spatial else layers.batchnorm_backward

    def case(rng, dtype):
        shape = (2, 3, 4, 4) if spatial else (8, 4)
        D = shape[1]
        bn_param = {"mode": mode}
        if mode == "test":
            bn_param["running_mean"] = rng.standard_normal(D).astype(dtype)
            bn_param["running_var"] = rng.uniform(0.5, 2.0, D).astype(dtype)
        arrays = (rng.normal(1.0, 2.0, shape), rng.uniform(0.5, 1.5, D), rng.standard_normal(D))
        return (lambda x, g, b: forward(x, g, b, bn_param)), backward, arrays

    return case


def _dropout(mode):
    def case(rng, dtype):
        param = {"p": 0.6, "mode": mode, "seed": 3}
        return (lambda x: layers.dropout_forward(x, param)), layers.dropout_backward, \
            (rng.standard_normal((5, 6)),)

    return case


def _conv(rng, dtype):
    param = {"stride": 2, "pad": 1}
    arrays = (rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((4, 3, 3, 3)),
              rng.standard_normal(4))
    return (lambda x, w, b: layers.conv_forward_naive(x, w, b, param)), \
        layers.conv_backward_naive, arrays


def _pool(forward, backward):
    def case(rng, dtype):
        return (lambda x: forward(x, POOL_3x3_S2)), backward, (distinct(rng, (2, 3, 5, 5)),)

    return case


# Every layer as ``case(rng, dtype) -> (forward(*arrays), backward, arrays)``. Arrays are
# float64; the dtype tests cast them. Parameters are closed over by ``forward``.
LAYER_CASES = {
    "affine": lambda rng, dtype: (
        layers.affine_forward, layers.affine_backward,
        (rng.standard_normal((3, 2, 4)), rng.standard_normal((8, 5)), rng.standard_normal(5))),
    "relu": lambda rng, dtype: (
        layers.relu_forward, layers.relu_backward, (away_from_zero(rng, (4, 6)),)),
    "conv": _conv,
    "max_pool": _pool(layers.max_pool_forward_naive, layers.max_pool_backward_naive),
    "avg_pool": _pool(layers.avg_pool_forward_naive, layers.avg_pool_backward_naive),
    "batchnorm_train": _bn(spatial=False, mode="train"),
    "batchnorm_test": _bn(spatial=False, mode="test"),
    "spatial_batchnorm_train": _bn(spatial=True, mode="train"),
    "spatial_batchnorm_test": _bn(spatial=True, mode="test"),
    "dropout_train": _dropout("train"),
    "dropout_test": _dropout("test"),
}
