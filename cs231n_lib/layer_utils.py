"""Sandwich layers: common layer sequences, composed from existing layers (no new math).

Each ``*_forward`` returns ``(out, cache)`` where cache is the tuple of the caches of its parts
in forward order (except ``conv_relu_pool_forward``, which runs the three layers as one,
``fast_layers.conv_relu_pool_forward_fast``, and keeps that one's cache); each
``*_backward(dout, cache)`` runs the parts' backward passes in reverse and returns the
gradients in input order. Where a part's gradient is a new array of the sandwich's
own (after a pooling layer's backward), the ReLU's backward pass runs in it
(``relu_backward_inplace``: same numbers, no new array). Convolutions and pooling use
``fast_layers`` (same results as the naive layers, much faster).
"""

from __future__ import annotations

import numpy as np

from . import scratch
from .fast_layers import (
    conv_backward_fast,
    conv_forward_fast,
    conv_relu_pool_backward_fast,
    conv_relu_pool_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from .layers import (
    affine_backward,
    affine_forward,
    affine_grads,
    batchnorm_backward,
    batchnorm_forward,
    relu_backward,
    relu_forward,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)


def relu_backward_inplace(dout, cache):
    """``relu_backward(dout, cache)`` computed in ``dout``, which is overwritten and returned.

    For a gradient its caller made and owns (the output of another layer's backward pass, as
    inside the sandwiches below): the result is the same, without a new array of dout's size
    or a temporary mask (the mask lives in scratch memory). Never pass a gradient someone else
    may still read (an upstream ``dout`` handed to a sandwich).
    """
    x = cache
    if dout.shape != x.shape:
        raise ValueError(f"dout has shape {dout.shape} but the ReLU's input x has shape "
                         f"{x.shape}; they must be equal")
    if dout.dtype != x.dtype:  # relu_backward returns x's dtype: a new array after all
        return relu_backward(dout, x)
    return np.multiply(dout, np.greater(x, 0, out=scratch.array("relu.mask", x.shape, bool)),
                       out=dout)


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


def affine_weight_grads(dout, cache):
    """The parameter gradients of an affine layer without its input gradient: ``(dw, db)``,
    equal to ``affine_backward(dout, cache)[1:]``, skipping the dx matrix multiply (for a first
    layer, whose input, the data, needs no gradient).

    Inputs:
    - dout: upstream gradient of shape (N, M)
    - cache: (x, w, b) from affine_forward
    """
    return affine_grads(dout, cache, need_dx=False)[1:]


def _affine_backward(dout, cache, need_dx):
    """``affine_backward``, or ``(None, dw, db)`` without dx's work when need_dx is False."""
    return affine_backward(dout, cache) if need_dx else (None, *affine_weight_grads(dout, cache))


def affine_relu_backward(dout, cache, *, need_dx=True):
    """Backward pass of affine_relu; returns (dx, dw, db). need_dx=False (keyword only): dx is
    None and not computed."""
    fc_cache, relu_cache = cache
    da = relu_backward(dout, relu_cache)
    return _affine_backward(da, fc_cache, need_dx)


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


def affine_bn_relu_backward(dout, cache, *, need_dx=True):
    """Backward pass of affine_bn_relu; returns (dx, dw, db, dgamma, dbeta). need_dx=False
    (keyword only): dx is None and not computed."""
    fc_cache, bn_cache, relu_cache = cache
    da_bn = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward(da_bn, bn_cache)
    dx, dw, db = _affine_backward(da, fc_cache, need_dx)
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
    - cache: (conv_cache, relu_cache); relu_cache is out itself: the convolution applies the
      ReLU as it writes its output (``conv_forward_fast(..., relu=True)``), and out > 0
      exactly where the pre-activation is, which is all ``relu_backward`` looks at.
    """
    out, conv_cache = conv_forward_fast(x, w, b, conv_param, relu=True)
    return out, (conv_cache, out)


def conv_relu_backward(dout, cache, *, need_dx=True):
    """Backward pass of conv_relu; returns (dx, dw, db). need_dx=False (keyword only): dx is
    None and not computed (see conv_backward_fast)."""
    conv_cache, relu_cache = cache
    return conv_backward_fast(dout, conv_cache, need_dx=need_dx, relu_out=relu_cache)


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """
    Convolution - ReLU - max pooling.

    Inputs:
    - x, w, b, conv_param: as in conv_relu_forward
    - pool_param: dict with pool_height, pool_width, stride

    Returns a tuple of:
    - out: output of shape (N, F, H'', W'')
    - cache: for the backward pass (``fast_layers.conv_relu_pool_forward_fast``: where it can,
      the pooling runs inside the convolution, block by block, and the convolution's output
      is never stored)
    """
    return conv_relu_pool_forward_fast(x, w, b, conv_param, pool_param)


def conv_relu_pool_backward(dout, cache, *, need_dx=True):
    """Backward pass of conv_relu_pool; returns (dx, dw, db). need_dx=False (keyword only): dx
    is None and not computed."""
    return conv_relu_pool_backward_fast(dout, cache, need_dx=need_dx)


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
    return _conv_bn_backward(dan, conv_cache, bn_cache, need_dx)


def _conv_bn_backward(dan, conv_cache, bn_cache, need_dx):
    """Spatial batchnorm then convolution, backward: (dx, dw, db, dgamma, dbeta)."""
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
    conv_cache, bn_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    dan = relu_backward_inplace(ds, relu_cache)  # ds is this function's own new array
    return _conv_bn_backward(dan, conv_cache, bn_cache, need_dx)
