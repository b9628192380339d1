"""Sandwich layers: common layer sequences, composed from existing layers (no new math).

Each ``*_forward`` returns ``(out, cache)`` where cache is the tuple of the caches of its parts
in forward order; each ``*_backward(dout, cache)`` runs the parts' backward passes in reverse and
returns the gradients in input order. Convolutions and pooling use ``fast_layers`` (same results
as the naive layers, much faster).
"""

from __future__ import annotations

from .fast_layers import (
    conv_backward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from .layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


def affine_relu_forward(x, w, b):
    """
    Affine transform followed by a ReLU.

    Inputs:
    - x: input of shape (N, d_1, ..., d_k)
    - w: weights of shape (D, M) with D = d_1 * ... * d_k
    - b: biases of shape (M,)

    Returns a tuple of:
    - out: output of the ReLU, shape (N, M)
    - cache: (fc_cache, relu_cache)
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of affine_relu; returns (dx, dw, db)."""
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return affine_backward(da, fc_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """
    Affine - batch normalisation - ReLU.

    Inputs:
    - x, w, b: as in affine_relu_forward
    - gamma, beta: batchnorm scale and shift, shape (M,)
    - bn_param: batchnorm parameters (its running averages are updated in train mode)

    Returns a tuple of:
    - out: output of shape (N, M)
    - cache: (fc_cache, bn_cache, relu_cache)
    """
    a, fc_cache = affine_forward(x, w, b)
    a_bn, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(a_bn)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Backward pass of affine_bn_relu; returns (dx, dw, db, dgamma, dbeta)."""
    fc_cache, bn_cache, relu_cache = cache
    da_bn = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward(da_bn, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """
    Convolution followed by a ReLU.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filters of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dict with stride, pad, dilation (see conv_forward_naive)

    Returns a tuple of:
    - out: output of shape (N, F, H', W')
    - cache: (conv_cache, relu_cache)
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache, *, need_dx=True):
    """Backward pass of conv_relu; returns (dx, dw, db). need_dx=False (keyword only): dx is
    None and not computed (see conv_backward_fast)."""
    conv_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return conv_backward_fast(da, conv_cache, need_dx=need_dx)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """
    Convolution - ReLU - max pooling.

    Inputs:
    - x, w, b, conv_param: as in conv_relu_forward
    - pool_param: dict with pool_height, pool_width, stride

    Returns a tuple of:
    - out: output of shape (N, F, H'', W'')
    - cache: (conv_cache, relu_cache, pool_cache)
    """
    s, inner = conv_relu_forward(x, w, b, conv_param)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (*inner, pool_cache)


def conv_relu_pool_backward(dout, cache, *, need_dx=True):
    """Backward pass of conv_relu_pool; returns (dx, dw, db). need_dx=False (keyword only): dx
    is None and not computed."""
    *inner, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_relu_backward(ds, tuple(inner), need_dx=need_dx)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """
    Convolution - spatial batch normalisation - ReLU.

    Inputs:
    - x, w, b, conv_param: as in conv_relu_forward
    - gamma, beta: spatial batchnorm scale and shift, shape (F,)
    - bn_param: batchnorm parameters (its running averages are updated in train mode)

    Returns a tuple of:
    - out: output of shape (N, F, H', W')
    - cache: (conv_cache, bn_cache, relu_cache)
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache, *, need_dx=True):
    """Backward pass of conv_bn_relu; returns (dx, dw, db, dgamma, dbeta). need_dx=False
    (keyword only): dx is None and not computed."""
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache, need_dx=need_dx)
    return dx, dw, db, dgamma, dbeta


def conv_bn_relu_pool_forward(x, w, b, gamma, beta, conv_param, bn_param, pool_param):
    """
    Convolution - spatial batch normalisation - ReLU - max pooling.

    Inputs: as in conv_bn_relu_forward, plus pool_param (pool_height, pool_width, stride).

    Returns a tuple of:
    - out: output of shape (N, F, H'', W'')
    - cache: (conv_cache, bn_cache, relu_cache, pool_cache)
    """
    s, inner = conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (*inner, pool_cache)


def conv_bn_relu_pool_backward(dout, cache, *, need_dx=True):
    """Backward pass of conv_bn_relu_pool; returns (dx, dw, db, dgamma, dbeta). need_dx=False
    (keyword only): dx is None and not computed."""
    *inner, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    return conv_bn_relu_backward(ds, tuple(inner), need_dx=need_dx)
