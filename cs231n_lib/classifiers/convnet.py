"""A convolutional network built from an architecture spec (``cs231n_lib.architectures``).

``ConvNet(spec)`` runs any spec made of Conv (with groups and dilation), max/avg Pool (padding
allowed), activations (ReLU, sigmoid, tanh), BatchNorm, Dropout, Flatten, FC, GlobalAvgPool,
Residual and Inception records, forward and backward, with the library's layers. It meets the
Solver's contract (``params``, ``bn_params``, ``loss(X, y=None)``).

Two forward paths:

* ``forward(X, mode)`` keeps every layer's cache for ``backward`` (training);
* ``infer(X)`` keeps no caches and lets each activation go as soon as the next layer has used it
  ("keep only the current layer" in the notes); a ReLU marked ``inplace`` overwrites its input
  when that input is an intermediate result. ``cs231n_lib.memory.inference_live`` predicts the
  memory of this path exactly, and ``cs231n_lib.memory_measure`` measures it.

Accounting-only features (LeNet-5's connection table and trainable subsampling, LRN, floor/ceil
rounding) raise ValueError here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real

import numpy as np

from .. import architectures as arch
from ..exercise import exercise
from ..fast_layers import (
    avg_pool_backward_fast,
    avg_pool_forward_fast,
    conv_backward_fast,
    conv_forward_fast,
    conv_relu_pool_backward_fast,
    conv_relu_pool_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from ..layer_utils import affine_weight_grads, relu_backward_inplace
from ..layers import (
    affine_backward,
    affine_forward,
    batchnorm_backward,
    batchnorm_forward,
    dropout_backward,
    dropout_forward,
    relu_backward,
    relu_forward,
    relu_into,
    softmax_loss,
    spatial_batchnorm_backward,
    spatial_batchnorm_forward,
)
from .regularization import add_l2

_KINDS = {arch.Conv: "conv", arch.Pool: "pool", arch.Activation: "relu", arch.BatchNorm: "bn",
          arch.Dropout: "dropout", arch.Flatten: "flatten", arch.FC: "fc",
          arch.GlobalAvgPool: "gap", arch.Residual: "res", arch.Inception: "inc"}


@dataclass
class _Node:
    """One layer of the compiled network: its spec record, parameter names and layer param."""

    layer: object
    kind: str
    names: dict = field(default_factory=dict)   # role ("W", "b", "gamma", "beta") -> params key
    param: dict | None = None                   # conv_param / pool_param / bn / dropout param
    children: tuple = ()                         # res: (body, shortcut); inc: the branches
    splits: tuple = ()                           # inc: channels of each branch


_FUSED = "run by the convolution before it"  # the cache of a ReLU or pooling layer fused in


def _fused_after_conv(nodes, k, cache_workspace) -> int:
    """How many of the layers after nodes[k] a convolution runs itself: 1 for a plain ReLU,
    which it applies as it writes its output (``conv_forward_fast(..., relu=True)``); 2 for a
    ReLU then an unpadded max pooling, which it pools chunk by chunk and never stores its
    output (``conv_relu_pool_forward_fast``; not with groups, nor without cache_workspace,
    whose training keeps every activation, as the notes' accounting assumes); else 0."""
    node = nodes[k]
    if not (node.kind == "conv" and k + 1 < len(nodes) and nodes[k + 1].kind == "relu"
            and nodes[k + 1].layer.fn == "relu"):
        return 0
    pool = nodes[k + 2] if k + 2 < len(nodes) else None
    pooled = (pool is not None and pool.kind == "pool" and pool.layer.kind == "max"
              and not pool.layer.pad and node.layer.groups == 1 and cache_workspace)
    return 2 if pooled else 1


def _unsupported(layer, why):
    raise ValueError(f"ConvNet cannot run {layer!r}: {why} (the memory accounting can)")


class ConvNet:
    """
    A numpy network built from ``spec``; the last layer's output holds the class scores.

    Parameters are named by position: W1, b1 for the first conv/FC layer, gamma2, beta2 for a
    batchnorm after it, and so on through residual and inception blocks in spec order. Weights
    start with He initialisation (std sqrt(2 / fan_in)) unless ``weight_scale`` is given.
    """

    def __init__(self, spec: arch.Spec, weight_scale=None, reg=0.0, dtype=np.float32, seed=0,
                 dropout_seed=None, cache_workspace=True):
        """
        Inputs:
        - spec: an architectures.Spec whose input is (C, H, W)
        - weight_scale: std of the initial weights (None: He initialisation per layer)
        - reg: L2 strength; the loss adds 0.5 * reg * sum(W**2) over conv and FC weights
        - dtype: float type of parameters and computations (float64 for gradient checks)
        - seed: seed of the initial weights
        - dropout_seed: fixed dropout masks (for gradient checks); None draws fresh masks
        - cache_workspace: keep the fast conv layer's workspace (Winograd tiles or FFT
          spectra, several times the activation; the gemm path keeps none) in the training
          cache for a faster backward; False keeps only the activations, as the notes'
          accounting assumes, and recomputes the workspace in the backward pass (one more
          forward per conv layer)
        """
        if isinstance(reg, bool) or not isinstance(reg, Real) or reg < 0:
            raise ValueError(f"reg={reg!r} must be a number >= 0")
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype={dtype!r} must be a float type")
        self.spec, self.reg, self.weight_scale = spec, reg, weight_scale
        self.dropout_seed, self.cache_workspace = dropout_seed, cache_workspace
        self.params, self.bn_params = {}, []
        self._rng = np.random.default_rng(seed)
        self._count = 0
        self.nodes, self.out_shape = self._compile(spec.layers, tuple(spec.input))

    # ------------------------------------------------------------------------------ building
    def _new_params(self, shapes, fan_in):
        self._count += 1
        names = {}
        for role, shape in shapes.items():
            key = f"{role}{self._count}"
            if role == "W":
                std = np.sqrt(2.0 / fan_in) if self.weight_scale is None else self.weight_scale
                value = std * self._rng.standard_normal(shape)
            else:
                value = np.ones(shape) if role == "gamma" else np.zeros(shape)
            self.params[key] = value.astype(self.dtype)
            names[role] = key
        return names

    def _compile(self, layers, shape):
        nodes = []
        for layer in layers:
            kind = _KINDS.get(type(layer))
            if kind is None:
                _unsupported(layer, "no numpy layer for it")
            node = _Node(layer, kind)
            if kind == "conv":
                if layer.table is not None or layer.rounding != "exact":
                    _unsupported(layer, "connection tables and floor/ceil rounding")
                node.names = self._new_params(arch.param_shapes(layer, shape),
                                              shape[0] // layer.groups * layer.size ** 2)
                node.param = {"stride": layer.stride, "pad": layer.pad,
                              "dilation": layer.dilation}
            elif kind == "pool":
                if layer.trainable or layer.rounding != "exact":
                    _unsupported(layer, "trainable subsampling and floor/ceil rounding")
                if 2 * layer.pad > layer.size:
                    _unsupported(layer, "pad must be at most half the window")
                node.param = {"pool_height": layer.size, "pool_width": layer.size,
                              "stride": layer.step}
            elif kind == "bn":
                node.names = self._new_params(arch.param_shapes(layer, shape), 1)
                node.param = {"mode": "train", "eps": layer.eps}
                self.bn_params.append(node.param)
            elif kind == "dropout":
                node.param = {"p": layer.p, "mode": "train"}
                if self.dropout_seed is not None:
                    node.param["seed"] = self.dropout_seed
            elif kind == "fc":
                node.names = self._new_params(arch.param_shapes(layer, shape), shape[0])
            elif kind == "res":
                body, _ = self._compile(layer.body, shape)
                short, _ = self._compile(layer.shortcut, shape)
                node.children = (body, short)
            elif kind == "inc":
                node.children = tuple(self._compile(b, shape)[0] for b in layer.branches)
                node.splits = tuple(arch.seq_shape(b, shape)[0] for b in layer.branches)
            shape = arch.out_shape(layer, shape)  # validates the geometry
            nodes.append(node)
        return nodes, shape

    def _p(self, node, role):
        return self.params[node.names[role]]

    # ------------------------------------------------------------------------------ leaf layers
    def _leaf_forward(self, node, x, mode, fused=0, pool=None):
        """(out, cache) of one non-composite layer. fused: a conv layer runs the ReLU that
        follows it (1), and the max pooling ``pool`` after that (2) (``_forward_seq`` decides,
        ``_fused_after_conv``)."""
        kind, layer = node.kind, node.layer
        relu = fused > 0
        if kind == "conv":
            b = self._p(node, "b") if layer.bias else np.zeros(layer.filters, x.dtype)
            if fused == 2:
                out, cache = conv_relu_pool_forward_fast(x, self._p(node, "W"), b, node.param,
                                                         pool.param)
                return out, (x, b, cache, _FUSED)
            out, cache = grouped_conv_forward(x, self._p(node, "W"), b, node.param, layer.groups,
                                              relu=relu)
            # Without cache_workspace the fast layer's workspace (Winograd tiles) is dropped now
            # and recomputed by the backward pass: only the activation x is kept (and the
            # output, the next layer's input anyway, when the ReLU ran inside).
            return out, (x, b, cache if self.cache_workspace else None, out if relu else None)
        if kind == "pool":
            return _pool_forward(x, node.param, layer.kind, layer.pad)
        if kind == "relu":
            return activation_forward(x, layer.fn)
        if kind == "bn":
            node.param["mode"] = mode
            bn = spatial_batchnorm_forward if x.ndim == 4 else batchnorm_forward
            return bn(x, self._p(node, "gamma"), self._p(node, "beta"), node.param)
        if kind == "dropout":
            node.param["mode"] = mode
            return dropout_forward(x, node.param)
        if kind == "flatten":
            return x.reshape(x.shape[0], -1), x.shape  # (N, C*H*W): a view
        if kind == "fc":
            b = self._p(node, "b") if layer.bias else np.zeros(layer.units, x.dtype)
            return affine_forward(x, self._p(node, "W"), b)
        # global average pool: (N, C, H, W) -> (N, C)
        return x.mean(axis=(2, 3)), x.shape

    def _leaf_backward(self, node, dout, cache, grads, need_dx=True, owned=False):
        """dx of one non-composite layer; parameter gradients go into ``grads``. A conv or FC
        layer skips its dx (returns None) when ``need_dx`` is False. ``owned``: dout is a
        gradient this network made and nobody else reads, which a ReLU may overwrite with its
        dx."""
        kind, layer = node.kind, node.layer
        if kind == "conv":
            x, b, conv_cache, relu_out = cache
            if relu_out is _FUSED:  # ReLU and max pooling ran inside
                dx, dw, db = conv_relu_pool_backward_fast(dout, conv_cache, need_dx=need_dx)
            else:
                if conv_cache is None:  # recompute what the fast layer's backward reuses
                    _, conv_cache = grouped_conv_forward(x, self._p(node, "W"), b, node.param,
                                                         layer.groups, relu=relu_out is not None)
                dx, dw, db = grouped_conv_backward(dout, conv_cache, layer.groups,
                                                   need_dx=need_dx, relu_out=relu_out)
            grads[node.names["W"]] = dw
            if layer.bias:
                grads[node.names["b"]] = db
            return dx
        if kind == "pool":
            return _pool_backward(dout, cache, layer.kind, layer.pad)
        if kind == "relu":
            if owned and layer.fn == "relu":
                return relu_backward_inplace(dout, cache)
            return activation_backward(dout, cache, layer.fn)
        if kind == "bn":
            bn = spatial_batchnorm_backward if dout.ndim == 4 else batchnorm_backward
            dx, grads[node.names["gamma"]], grads[node.names["beta"]] = bn(dout, cache)
            return dx
        if kind == "dropout":
            return dropout_backward(dout, cache)
        if kind == "flatten":
            return dout.reshape(cache)
        if kind == "fc":
            if need_dx:
                dx, grads[node.names["W"]], db = affine_backward(dout, cache)
            else:  # the first layer with parameters: its dx is not needed
                dx, (grads[node.names["W"]], db) = None, affine_weight_grads(dout, cache)
            if layer.bias:
                grads[node.names["b"]] = db
            return dx
        N, C, H, W = cache  # global average pool: spread each gradient over H*W pixels
        return np.broadcast_to(dout[:, :, None, None] / (H * W), cache).astype(dout.dtype)

    # ------------------------------------------------------------------------------ training
    def _forward_seq(self, nodes, x, mode):
        caches = []
        ahead = 0  # layers after the last conv layer that it ran itself, still to pass
        for k, node in enumerate(nodes):
            if ahead:
                caches.append(_FUSED)
                ahead -= 1
                continue
            if node.kind == "res":
                body, short = node.children
                main, c_body = self._forward_seq(body, x, mode)
                skip, c_short = self._forward_seq(short, x, mode)
                x = main + skip
                c_relu = None
                if node.layer.relu:
                    x, c_relu = relu_forward(x)
                cache = (c_body, c_short, c_relu)
            elif node.kind == "inc":
                outs = [self._forward_seq(branch, x, mode) for branch in node.children]
                x = np.concatenate([o for o, _ in outs], axis=1)  # (N, sum of branch C, H, W)
                cache = [c for _, c in outs]
            else:
                ahead = _fused_after_conv(nodes, k, self.cache_workspace)
                x, cache = self._leaf_forward(node, x, mode, ahead,
                                              nodes[k + 2] if ahead == 2 else None)
            caches.append(cache)
        return x, caches

    def _backward_seq(self, nodes, dout, caches, grads, need_dx=True):
        """Gradient of the input of ``nodes``, or None when ``need_dx`` is False: then the
        layers before the first one with parameters are skipped and that one's dx is skipped
        too when it is a conv or FC layer. ``dout`` itself is never overwritten (a residual block
        hands the same gradient to two branches); the gradients made here may be."""
        first = 0 if need_dx else next(
            (i for i, node in enumerate(nodes) if node.names or node.children), len(nodes))
        upstream = dout
        for i, node, cache in zip(range(len(nodes) - 1, -1, -1), reversed(nodes),
                                  reversed(caches), strict=True):
            if i < first:
                return None  # nobody needs this gradient: no layer before has parameters
            if cache is _FUSED:  # the conv layer before runs this layer's backward pass
                continue
            # made by a layer of this loop (not a view of the caller's, as Flatten's dx is)
            owned = not np.may_share_memory(dout, upstream)
            if node.kind == "res":
                body, short = node.children
                c_body, c_short, c_relu = cache
                if c_relu is not None:
                    relu = relu_backward_inplace if owned else relu_backward
                    dout = relu(dout, c_relu)
                # the add copies the gradient to both paths; their input gradients add up
                dout = (self._backward_seq(body, dout, c_body, grads)
                        + self._backward_seq(short, dout, c_short, grads))
            elif node.kind == "inc":
                pieces = np.split(dout, np.cumsum(node.splits)[:-1], axis=1)
                dout = sum(self._backward_seq(branch, d, c, grads)
                           for branch, d, c in zip(node.children, pieces, cache, strict=True))
            else:
                dout = self._leaf_backward(node, dout, cache, grads, need_dx or i > first,
                                           owned)
        return dout if need_dx or first == 0 else None

    def forward(self, X, mode="train"):
        """Scores and the caches of every layer: ``(scores, caches)``.

        Inputs:
        - X: input of shape (N, C, H, W)
        - mode: "train" or "test" (batchnorm statistics, dropout)
        """
        if mode not in ("train", "test"):
            raise ValueError(f"mode={mode!r} must be 'train' or 'test'")
        X = self.as_input(X)
        return self._forward_seq(self.nodes, X, mode)

    def backward(self, dscores, caches, *, need_dx=True):
        """``(dX, grads)``: the input gradient and every parameter's gradient (without the
        regularisation term) from the gradient of the scores and the caches of ``forward``.
        need_dx=False (keyword only): dX is not needed (it is then None): the layers before
        the first one with parameters are skipped, and so is that one's dX when it is a conv or
        FC layer."""
        grads = {}
        dX = self._backward_seq(self.nodes, dscores, caches, grads, need_dx)
        return dX, grads

    def as_input(self, X):
        """``X`` as an array of the model's dtype, after checking its shape (N, C, H, W)."""
        if np.ndim(X) != 4 or tuple(np.shape(X)[1:]) != tuple(self.spec.input):
            raise ValueError(f"X must have shape (N, {', '.join(map(str, self.spec.input))}), "
                             f"got {np.shape(X)}")
        return np.asarray(X).astype(self.dtype, copy=False)

    # ------------------------------------------------------------------------------ inference
    def _infer_seq(self, nodes, x, owned, hook):
        """Run ``nodes`` keeping only the current activation. ``owned``: may x be overwritten?"""
        for node in nodes:
            if node.kind == "dropout":
                continue  # the identity at test time (inverted dropout): no copy
            if node.kind == "flatten":
                x = x.reshape(x.shape[0], -1)  # a view of the same storage
                continue
            if node.kind == "relu" and node.layer.inplace and owned:
                _ACTIVATIONS_INPLACE[node.layer.fn](x)
                continue
            if node.kind in ("res", "inc"):
                out = self._infer_block(node, x, hook)
            else:
                out = self._leaf_forward(node, x, "test")[0]  # the cache is dropped at once
            if hook is not None:
                hook()  # the moment both the input and the output are alive
            x, owned = out, True  # rebinding x frees the input unless a caller still holds it
        return x

    def _infer_block(self, node, x, hook):
        """A residual or inception block; ``x`` stays alive (the caller holds it) throughout."""
        if node.kind == "res":
            out = self._infer_add(node, x, hook)
            if node.layer.relu:
                relu_into(out, out)  # the branch outputs are already gone
            return out
        return self._infer_concat(node, x, hook)

    def _infer_add(self, node, x, hook):
        body, short = node.children
        main = self._infer_seq(body, x, False, hook)
        skip = self._infer_seq(short, x, False, hook) if short else x
        out = main + skip
        if hook is not None:
            hook()
        return out  # main and skip die with this frame

    def _infer_concat(self, node, x, hook):
        outs = []  # each branch's output waits here for the concatenation
        for branch in node.children:
            outs.append(self._infer_seq(branch, x, False, hook))
        out = np.concatenate(outs, axis=1)
        if hook is not None:
            hook()
        return out

    def infer(self, X, hook=None):
        """Test-mode scores without caches, freeing each activation once it has been used.

        ``hook()`` (optional) is called whenever a layer has produced its output while its input
        is still alive: the moments of largest memory that ``memory_measure`` samples.
        """
        return self._infer_seq(self.nodes, self.as_input(X), False, hook)

    # ------------------------------------------------------------------------------ Solver API
    def loss(self, X, y=None):
        """Scores (y is None) or ``(loss, grads)``: softmax loss plus 0.5 * reg * sum(W**2)."""
        if y is None:
            return self.infer(X)
        scores, caches = self.forward(X, "train")
        if scores.ndim != 2:
            raise ValueError(f"the spec must end in class scores (N, classes), got {scores.shape}")
        loss, dscores = softmax_loss(scores, y)
        _, grads = self.backward(dscores, caches, need_dx=False)  # the images need no gradient
        loss += add_l2(self.reg, self.params, grads, [k for k in self.params if k[0] == "W"])
        return loss, grads


# ----------------------------------------------------------------------------------------------
# Building blocks


def grouped_conv_forward(x, w, b, conv_param, groups=1, relu=False):
    """Convolution with ``groups`` independent channel groups (AlexNet's two GPUs).

    Inputs:
    - x: (N, C, H, W); w: (F, C / groups, HH, WW); b: (F,); conv_param as for conv_forward_fast
    - relu: apply a ReLU to the output as it is written (``conv_forward_fast``)

    Returns (out of shape (N, F, H', W'), cache: a list of per-group conv caches).
    """
    if groups == 1:
        out, cache = conv_forward_fast(x, w, b, conv_param, relu=relu)
        return out, [cache]
    if x.shape[1] % groups or w.shape[0] % groups:
        raise ValueError(f"groups={groups} must divide C={x.shape[1]} and F={w.shape[0]}")
    pieces = [conv_forward_fast(np.ascontiguousarray(xg), wg, bg, conv_param, relu=relu)
              for xg, wg, bg in zip(np.split(x, groups, axis=1), np.split(w, groups),
                                    np.split(b, groups), strict=True)]
    return np.concatenate([p[0] for p in pieces], axis=1), [p[1] for p in pieces]


def grouped_conv_backward(dout, cache, groups=1, *, need_dx=True, relu_out=None):
    """Backward pass of grouped_conv_forward: (dx, dw, db); dx is None (not computed) when
    need_dx is False. relu_out: the output, when the forward pass ran with relu=True."""
    if groups == 1:  # no split: the gradients as the fast layer returns them, without a copy
        return conv_backward_fast(dout, cache[0], need_dx=need_dx, relu_out=relu_out)
    douts = np.split(dout, groups, axis=1)
    outs = [None] * groups if relu_out is None else np.split(relu_out, groups, axis=1)
    grads = [conv_backward_fast(np.ascontiguousarray(d), c, need_dx=need_dx, relu_out=r)
             for d, c, r in zip(douts, cache, outs, strict=True)]
    return (np.concatenate([g[0] for g in grads], axis=1) if need_dx else None,
            np.concatenate([g[1] for g in grads], axis=0),
            np.concatenate([g[2] for g in grads], axis=0))


def _sigmoid(x, out=None):
    """The logistic function 1 / (1 + exp(-x)), written with tanh so it never overflows."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


_ACTIVATIONS_INPLACE = {
    "relu": lambda x: relu_into(x, x),
    "sigmoid": lambda x: _sigmoid(x, out=x),
    "tanh": lambda x: np.tanh(x, out=x),
}


def activation_forward(x, fn="relu"):
    """Elementwise ``fn`` ("relu", "sigmoid" or "tanh"): ``(out, cache)``.

    The cache of ReLU is its input (as ``layers.relu_forward``); sigmoid and tanh keep their
    output, from which their derivative follows: s * (1 - s) and 1 - t**2.
    """
    if fn == "relu":
        return relu_forward(x)
    if fn not in _ACTIVATIONS_INPLACE:
        raise ValueError(f"activation fn={fn!r} must be 'relu', 'sigmoid' or 'tanh'")
    out = _ACTIVATIONS_INPLACE[fn](np.array(x, copy=True))
    return out, out


def activation_backward(dout, cache, fn="relu"):
    """Backward pass of ``activation_forward``: the gradient with respect to its input."""
    if fn == "relu":
        return relu_backward(dout, cache)
    if fn == "sigmoid":
        return dout * cache * (1 - cache)
    if fn == "tanh":
        return dout * (1 - cache * cache)
    raise ValueError(f"activation fn={fn!r} must be 'relu', 'sigmoid' or 'tanh'")


def _pool_forward(x, pool_param, kind, pad):
    """Max/avg pooling after padding by ``pad`` with -inf (max) or zeros (avg)."""
    if pad:
        fill = -np.inf if kind == "max" else 0
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    forward = max_pool_forward_fast if kind == "max" else avg_pool_forward_fast
    return forward(x, pool_param)


def _pool_backward(dout, cache, kind, pad):
    backward = max_pool_backward_fast if kind == "max" else avg_pool_backward_fast
    dx = backward(dout, cache)
    return dx[:, :, pad:dx.shape[2] - pad, pad:dx.shape[3] - pad] if pad else dx


# ----------------------------------------------------------------------------------------------
# Exercise for the architectures notebook (standalone: ConvNet does not call it)


@exercise("05_architectures", "Residual block")
def residual_block_forward(x, w1, b1, w2, b2):
    """
    A basic residual block: ``out = relu(conv2(relu(conv1(x))) + x)``, 3x3 convs with pad 1.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w1, w2: filters of shape (C, C, 3, 3); b1, b2: biases of shape (C,)

    Returns a tuple of:
    - out: output of shape (N, C, H, W)
    - cache: (conv1 cache, relu1 cache, conv2 cache, relu2 cache)
    """
    conv_param = {"stride": 1, "pad": 1}
    a, c1 = conv_forward_fast(x, w1, b1, conv_param)
    h, r1 = relu_forward(a)
    z, c2 = conv_forward_fast(h, w2, b2, conv_param)
    out, r2 = relu_forward(z + x)  # the skip connection adds the block's input
    return out, (c1, r1, c2, r2)


@exercise("05_architectures", "Residual block")
def residual_block_backward(dout, cache):
    """
    Backward pass of residual_block_forward.

    Inputs:
    - dout: upstream gradient of shape (N, C, H, W)
    - cache: from residual_block_forward

    Returns a tuple of (dx, dw1, db1, dw2, db2).
    """
    c1, r1, c2, r2 = cache
    dz = relu_backward(dout, r2)          # gradient of z + x
    dh, dw2, db2 = conv_backward_fast(dz, c2)
    da = relu_backward(dh, r1)
    dx, dw1, db1 = conv_backward_fast(da, c1)
    return dx + dz, dw1, db1, dw2, db2     # the skip path hands dz straight to x
