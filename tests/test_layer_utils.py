"""Sandwich layers equal the explicit composition of the naive layers, forward and backward."""

import numpy as np
import pytest

from cs231n_lib import layer_utils as lu
from cs231n_lib import layers as L
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error

CONV = {"stride": 1, "pad": 1}
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def conv_inputs(rng):
    x = rng.standard_normal((2, 3, 6, 6))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    return x, w, b


def explicit_conv_block(x, w, b, gamma=None, beta=None, pool=False):
    """conv - [spatial bn] - relu - [pool] written out with the naive layers, forward and
    backward for a fixed upstream gradient; returns (out, backward function)."""
    a, c_conv = L.conv_forward_naive(x, w, b, CONV)
    if gamma is not None:
        a, c_bn = L.spatial_batchnorm_forward(a, gamma, beta, {"mode": "train"})
    s, c_relu = L.relu_forward(a)
    out = s
    if pool:
        out, c_pool = L.max_pool_forward_naive(s, POOL)

    def backward(dout):
        ds = L.max_pool_backward_naive(dout, c_pool) if pool else dout
        da = L.relu_backward(ds, c_relu)
        extra = ()
        if gamma is not None:
            da, dgamma, dbeta = L.spatial_batchnorm_backward(da, c_bn)
            extra = (dgamma, dbeta)
        return (*L.conv_backward_naive(da, c_conv), *extra)

    return out, backward


def assert_grads_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        # atol: a bias followed by batchnorm has a gradient of exactly 0 up to rounding
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bn", [False, True], ids=["plain", "bn"])
@pytest.mark.parametrize("pool", [False, True], ids=["nopool", "pool"])
def test_conv_sandwiches_equal_naive_composition(rng, bn, pool):
    x, w, b = conv_inputs(rng)
    gamma, beta = (rng.standard_normal(4), rng.standard_normal(4)) if bn else (None, None)
    expected_out, backward = explicit_conv_block(x, w, b, gamma, beta, pool)
    name = "conv" + ("_bn" if bn else "") + "_relu" + ("_pool" if pool else "")
    forward, backward_sandwich = getattr(lu, name + "_forward"), getattr(lu, name + "_backward")
    args = (x, w, b) + ((gamma, beta) if bn else ()) + (CONV,) + (
        ({"mode": "train"},) if bn else ()) + ((POOL,) if pool else ())
    out, cache = forward(*args)
    np.testing.assert_allclose(out, expected_out, rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    assert_grads_close(backward_sandwich(dout, cache), backward(dout))


def test_affine_relu(rng):
    x, w, b = rng.standard_normal((4, 2, 3)), rng.standard_normal((6, 5)), rng.standard_normal(5)
    out, cache = lu.affine_relu_forward(x, w, b)
    a, c_fc = L.affine_forward(x, w, b)
    expected, c_relu = L.relu_forward(a)
    np.testing.assert_array_equal(out, expected)
    dout = rng.standard_normal(out.shape)
    assert_grads_close(lu.affine_relu_backward(dout, cache),
                       L.affine_backward(L.relu_backward(dout, c_relu), c_fc))
    dx_num = eval_numerical_gradient_array(lambda x: lu.affine_relu_forward(x, w, b)[0], x, dout)
    assert rel_error(lu.affine_relu_backward(dout, cache)[0], dx_num) < 1e-7


def test_affine_bn_relu(rng):
    x, w, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    gamma, beta = rng.standard_normal(5), rng.standard_normal(5)
    bn_param = {"mode": "train"}
    out, cache = lu.affine_bn_relu_forward(x, w, b, gamma, beta, bn_param)
    assert bn_param["running_mean"].shape == (5,), "running averages are stored in bn_param"
    a, c_fc = L.affine_forward(x, w, b)
    an, c_bn = L.batchnorm_forward(a, gamma, beta, {"mode": "train"})
    expected, c_relu = L.relu_forward(an)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    dout = rng.standard_normal(out.shape)
    dan, dgamma, dbeta = L.batchnorm_backward(L.relu_backward(dout, c_relu), c_bn)
    assert_grads_close(lu.affine_bn_relu_backward(dout, cache),
                       (*L.affine_backward(dan, c_fc), dgamma, dbeta))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_relu_pool_keeps_dtype(rng, dtype):
    x, w, b = (a.astype(dtype) for a in conv_inputs(rng))
    out, cache = lu.conv_relu_pool_forward(x, w, b, CONV, POOL)
    assert out.dtype == dtype and out.shape == (2, 4, 3, 3)
    grads = lu.conv_relu_pool_backward(np.ones_like(out), cache)
    assert [g.dtype for g in grads] == [dtype] * 3
