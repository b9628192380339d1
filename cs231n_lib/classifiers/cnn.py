"""A three-layer convolutional network (CS231n assignment 2's ThreeLayerConvNet).

    conv - relu - 2x2 max pool - affine - relu - affine - softmax

The convolution uses "same" padding (``pad = (F - 1) // 2``, stride 1), so it keeps H and W and
the pooling halves them.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from ..layer_utils import (
    affine_relu_backward,
    affine_relu_forward,
    conv_relu_pool_backward,
    conv_relu_pool_forward,
)
from ..layers import affine_backward, affine_forward, softmax_loss
from ..shapes import check_int, output_size, same_pad
from .regularization import add_l2


class ThreeLayerConvNet:
    """
    conv - relu - 2x2 max pool - affine - relu - affine - softmax, on minibatches of shape
    (N, C, H, W).

    Parameters (in ``self.params``): W1 (F, C, HH, WW) and b1 (F,) for the convolution;
    W2 (F * H/2 * W/2, hidden_dim) and b2 for the hidden affine layer; W3 (hidden_dim,
    num_classes) and b3 for the output layer. Weights start as ``weight_scale`` times standard
    normal draws, biases at zero.
    """

    def __init__(self, input_dim=(3, 32, 32), num_filters=32, filter_size=7, hidden_dim=100,
                 num_classes=10, weight_scale=1e-3, reg=0.0, dtype=np.float32, seed=None):
        """
        Inputs:
        - input_dim: (C, H, W) of one input image; H and W must be even (2x2 pooling)
        - num_filters: number of filters F of the convolution
        - filter_size: filter height and width (odd, for same padding)
        - hidden_dim: units in the hidden affine layer
        - num_classes: number of scores to produce
        - weight_scale: standard deviation of the initial weights
        - reg: L2 regularisation strength; the loss adds 0.5 * reg * sum(W**2) per weight matrix
        - dtype: numpy float type of the parameters and computations (float64 for grad checks)
        - seed: seed of the generator that draws the initial weights
        """
        if len(input_dim) != 3:
            raise ValueError(f"input_dim={input_dim!r} must be (C, H, W)")
        C, H, W = (check_int(d, name, 1) for d, name in zip(input_dim, "CHW", strict=True))
        F = check_int(num_filters, "num_filters", 1)
        HH = check_int(filter_size, "filter_size", 1)
        hidden_dim = check_int(hidden_dim, "hidden_dim", 1)
        num_classes = check_int(num_classes, "num_classes", 1)
        if isinstance(reg, bool) or not isinstance(reg, Real) or reg < 0:
            raise ValueError(f"reg={reg!r} must be a number >= 0")
        self.reg = reg
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype={dtype!r} must be a floating-point type")
        self.conv_param = {"stride": 1, "pad": same_pad(HH)}
        self.pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
        # pooled size; raises ValueError when H or W is odd
        Hp = output_size(H, 2, stride=2, axis="H")
        Wp = output_size(W, 2, stride=2, axis="W")

        rng = np.random.default_rng(seed)
        shapes = {"W1": (F, C, HH, HH), "W2": (F * Hp * Wp, hidden_dim),
                  "W3": (hidden_dim, num_classes)}
        self.params = {}
        for i, (name, shape) in enumerate(shapes.items(), start=1):
            self.params[name] = (weight_scale * rng.standard_normal(shape)).astype(self.dtype)
            self.params[f"b{i}"] = np.zeros(shape[0] if i == 1 else shape[1], dtype=self.dtype)

    def loss(self, X, y=None):
        """
        Scores, or loss and gradients, for a minibatch.

        Inputs:
        - X: images of shape (N, C, H, W)
        - y: labels of shape (N,), y[i] in [0, num_classes), or None

        Returns:
        - if y is None: scores of shape (N, num_classes)
        - otherwise a tuple (loss, grads): the softmax loss plus L2 regularisation, and a dict
          with the same keys as self.params holding the gradients
        """
        X = np.asarray(X, dtype=self.dtype)
        p = self.params
        h1, cache1 = conv_relu_pool_forward(X, p["W1"], p["b1"], self.conv_param,
                                            self.pool_param)  # (N, F, H/2, W/2)
        h2, cache2 = affine_relu_forward(h1, p["W2"], p["b2"])  # (N, hidden_dim)
        scores, cache3 = affine_forward(h2, p["W3"], p["b3"])  # (N, num_classes)
        if y is None:
            return scores

        data_loss, dscores = softmax_loss(scores, y)
        weights = ("W1", "W2", "W3")
        grads = {}
        dh2, grads["W3"], grads["b3"] = affine_backward(dscores, cache3)
        dh1, grads["W2"], grads["b2"] = affine_relu_backward(dh2, cache2)
        # the images need no gradient: skip the first layer's dx
        _, grads["W1"], grads["b1"] = conv_relu_pool_backward(dh1, cache1, need_dx=False)
        return float(data_loss) + add_l2(self.reg, p, grads, weights), grads
