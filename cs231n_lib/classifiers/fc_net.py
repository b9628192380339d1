"""A fully connected network of any depth (CS231n assignment 2's FullyConnectedNet).

    {affine - [batch norm] - relu - [dropout]} x (L - 1) - affine - softmax
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from ..layer_utils import (
    affine_bn_relu_backward,
    affine_bn_relu_forward,
    affine_relu_backward,
    affine_relu_forward,
)
from ..layers import (
    affine_backward,
    affine_forward,
    dropout_backward,
    dropout_forward,
    softmax_loss,
)
from ..shapes import check_int
from .regularization import add_l2

NORMALIZATIONS = (None, "batchnorm")


class FullyConnectedNet:
    """
    A multi-layer perceptron with ReLU hidden layers, optional batch normalisation and inverted
    dropout, and a softmax loss.

    Parameters (in ``self.params``): W1, b1 ... WL, bL for the L affine layers and, with batch
    normalisation, gamma1, beta1 ... gamma(L-1), beta(L-1) for the hidden layers. Batchnorm
    running averages live in ``self.bn_params`` (one dict per hidden layer).
    """

    def __init__(self, hidden_dims, input_dim=3 * 32 * 32, num_classes=10,
                 dropout_keep_ratio=1, normalization=None, reg=0.0, weight_scale=1e-2,
                 dtype=np.float32, seed=None):
        """
        Inputs:
        - hidden_dims: list of the sizes of the hidden layers
        - input_dim: size D of one (flattened) input
        - num_classes: number of scores to produce
        - dropout_keep_ratio: probability of keeping each hidden unit, in (0, 1]; 1 means no
          dropout
        - normalization: None or "batchnorm"
        - reg: L2 regularisation strength (0.5 * reg * sum(W**2) per weight matrix)
        - weight_scale: standard deviation of the initial weights
        - dtype: numpy float type of parameters and computations (float64 for grad checks)
        - seed: seeds the initial weights and, as in CS231n, is passed to the dropout layer,
          which then uses the same mask on every call (deterministic, for gradient checks)
        """
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization={normalization!r} must be one of {NORMALIZATIONS}")
        if isinstance(dropout_keep_ratio, bool) or not isinstance(dropout_keep_ratio, Real) or \
                not 0 < dropout_keep_ratio <= 1:
            raise ValueError(f"dropout_keep_ratio={dropout_keep_ratio!r} is a keep probability "
                             "and must be in (0, 1]")
        if isinstance(reg, bool) or not isinstance(reg, Real) or reg < 0:
            raise ValueError(f"reg={reg!r} must be a number >= 0")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype={dtype!r} must be a floating-point type")
        dims = [check_int(input_dim, "input_dim", 1)]
        dims += [check_int(h, "hidden dimension", 1) for h in hidden_dims]
        dims.append(check_int(num_classes, "num_classes", 1))
        self.normalization = normalization
        self.use_dropout = dropout_keep_ratio != 1
        self.reg = reg
        self.num_layers = len(dims) - 1

        rng = np.random.default_rng(seed)
        self.params = {}
        for i in range(1, self.num_layers + 1):
            d_in, d_out = dims[i - 1], dims[i]
            self.params[f"W{i}"] = (weight_scale * rng.standard_normal((d_in, d_out))
                                    ).astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(d_out, dtype=self.dtype)
            if normalization == "batchnorm" and i < self.num_layers:
                self.params[f"gamma{i}"] = np.ones(d_out, dtype=self.dtype)
                self.params[f"beta{i}"] = np.zeros(d_out, dtype=self.dtype)

        self.dropout_param = {}
        if self.use_dropout:
            self.dropout_param = {"mode": "train", "p": dropout_keep_ratio}
            if seed is not None:
                self.dropout_param["seed"] = seed
        self.bn_params = []
        if normalization == "batchnorm":
            self.bn_params = [{"mode": "train"} for _ in range(self.num_layers - 1)]

    def loss(self, X, y=None):
        """
        Scores, or loss and gradients, for a minibatch.

        Inputs:
        - X: inputs of shape (N, d_1, ..., d_k) with d_1 * ... * d_k = input_dim
        - y: labels of shape (N,), or None for test mode (batchnorm uses its running averages
          and dropout is off)

        Returns:
        - if y is None: scores of shape (N, num_classes)
        - otherwise a tuple (loss, grads) with grads keyed like self.params
        """
        X = np.asarray(X, dtype=self.dtype)
        mode = "test" if y is None else "train"
        if self.use_dropout:
            self.dropout_param["mode"] = mode
        for bn_param in self.bn_params:
            bn_param["mode"] = mode

        p = self.params
        h, caches = X, []
        for i in range(1, self.num_layers):
            if self.normalization == "batchnorm":
                h, cache = affine_bn_relu_forward(h, p[f"W{i}"], p[f"b{i}"], p[f"gamma{i}"],
                                                  p[f"beta{i}"], self.bn_params[i - 1])
            else:
                h, cache = affine_relu_forward(h, p[f"W{i}"], p[f"b{i}"])
            drop_cache = None
            if self.use_dropout:
                h, drop_cache = dropout_forward(h, self.dropout_param)
            caches.append((cache, drop_cache))
        L = self.num_layers
        scores, last_cache = affine_forward(h, p[f"W{L}"], p[f"b{L}"])
        if y is None:
            return scores

        loss, dscores = softmax_loss(scores, y)
        grads = {}
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, last_cache)
        for i in range(L - 1, 0, -1):
            cache, drop_cache = caches[i - 1]
            if self.use_dropout:
                dh = dropout_backward(dh, drop_cache)
            need_dx = i > 1  # the first layer's input, the data, needs no gradient
            if self.normalization == "batchnorm":
                dh, grads[f"W{i}"], grads[f"b{i}"], grads[f"gamma{i}"], grads[f"beta{i}"] = \
                    affine_bn_relu_backward(dh, cache, need_dx=need_dx)
            else:
                dh, grads[f"W{i}"], grads[f"b{i}"] = affine_relu_backward(dh, cache,
                                                                          need_dx=need_dx)
        loss += add_l2(self.reg, p, grads, [f"W{i}" for i in range(1, L + 1)])
        return float(loss), grads
