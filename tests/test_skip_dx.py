"""The fast conv backward (and the sandwich layers and classifiers built on it) can skip the
input gradient nobody needs (``need_dx=False``): same dw and db, dx None, less work."""

from __future__ import annotations

import numpy as np
import pytest

from cs231n_lib import architectures as arch
from cs231n_lib import conv_dx, fast_layers, gemm_conv, layer_utils, window_conv
from cs231n_lib.classifiers.cnn import ThreeLayerConvNet
from cs231n_lib.classifiers.convnet import ConvNet
from cs231n_lib.gradient_check import eval_numerical_gradient, rel_error

# (x shape, w shape, conv_param): the window path (few taps, strided), the gemm path (stride 1,
# 5x5 on 3 channels: a first layer), the winograd path (3x3, C >= 8), the gemm path with phase
# planes (strided, 72 taps) and a first layer of 8 filters, whose dx the gemm path computes by
# col2im (the others' by phases, ``conv_dx``).
SHAPES = [((3, 3, 9, 9), (4, 3, 3, 3), {"stride": 2, "pad": 1}),
          ((3, 3, 8, 8), (4, 3, 5, 5), {"stride": 1, "pad": 2}),
          ((2, 8, 8, 8), (4, 8, 3, 3), {"stride": 1, "pad": 1}),
          ((3, 8, 9, 9), (4, 8, 3, 3), {"stride": 2, "pad": 1}),
          ((2, 3, 8, 8), (16, 3, 5, 5), {"stride": 1, "pad": 2})]  # F > 4C: col2im


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_conv_backward_same_dw_db_and_no_dx(shape, dtype):
    x_shape, w_shape, conv_param = shape
    rng = np.random.default_rng(0)
    x, w = (rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape))
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    out, cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = fast_layers.conv_backward_fast(dout, cache)
    skipped, dw2, db2 = fast_layers.conv_backward_fast(dout, cache, need_dx=False)
    assert skipped is None
    assert dx.shape == x.shape and dx.dtype == x.dtype  # the default is unchanged
    np.testing.assert_allclose(dw2, dw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(db2, db, rtol=0, atol=1e-12)
    assert dw2.dtype == w.dtype and db2.dtype == b.dtype


def test_need_dx_is_keyword_only():
    with pytest.raises(TypeError):
        fast_layers.conv_backward_fast(None, None, False)


# each path's col2im, and the gemm path's other way to dx
COL2IMS = ((gemm_conv, "add_columns"), (window_conv, "add_taps"), (conv_dx, "input_gradient"))


def _count_col2im(monkeypatch, spied=COL2IMS):
    """Spy on the col2im of the gemm and window paths (or of those in ``spied``): a list that
    grows by one per call."""
    calls = []

    def spying(real):
        def spy(*args, **kwargs):
            calls.append(1)
            return real(*args, **kwargs)
        return spy

    for module, name in spied:
        monkeypatch.setattr(module, name, spying(getattr(module, name)))
    return calls


@pytest.mark.parametrize("shape, path, module, name", [
    (SHAPES[1], "gemm", conv_dx, "input_gradient"), (SHAPES[3], "gemm", conv_dx, "input_gradient"),
    (SHAPES[4], "gemm", gemm_conv, "add_columns"), (SHAPES[0], "window", window_conv, "add_taps")])
def test_skipped_dx_does_no_col2im(shape, path, module, name, monkeypatch):
    x_shape, w_shape, conv_param = shape
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out, cache = fast_layers.conv_forward_fast(x, w, np.zeros(w_shape[0]), conv_param)
    assert cache[4] == path
    calls = _count_col2im(monkeypatch, [(module, name)])
    fast_layers.conv_backward_fast(out, cache)
    assert calls, "the spy must see the default path's col2im"
    before = len(calls)
    fast_layers.conv_backward_fast(out, cache, need_dx=False)
    assert len(calls) == before


def test_skipped_dx_on_the_winograd_path_does_no_input_transform(monkeypatch):
    x_shape, w_shape, conv_param = SHAPES[2]
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out, cache = fast_layers.conv_forward_fast(x, w, np.zeros(w_shape[0]), conv_param)
    assert cache[4] == "winograd"
    transforms = []  # the backward's only transform is dx's (the adjoint of the input tiles')
    real = fast_layers.winograd._transform
    monkeypatch.setattr(fast_layers.winograd, "_transform",
                        lambda *a, **k: transforms.append(1) or real(*a, **k))
    dx, dw, db = fast_layers.conv_backward_fast(out, cache)
    assert len(transforms) == 1 and dx.shape == x.shape
    skipped, dw2, db2 = fast_layers.conv_backward_fast(out, cache, need_dx=False)
    assert skipped is None and len(transforms) == 1
    np.testing.assert_allclose(dw2, dw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(db2, db, rtol=0, atol=1e-12)



def test_winograd_backward_without_dx_needs_x_shape():
    with pytest.raises(ValueError, match="x_shape"):
        fast_layers.winograd.conv_backward(np.zeros((1, 4, 4, 4)), np.zeros((36, 4, 8)), None,
                                           1, None)


SANDWICHES = [
    (layer_utils.conv_relu_forward, layer_utils.conv_relu_backward, False, False),
    (layer_utils.conv_relu_pool_forward, layer_utils.conv_relu_pool_backward, False, True),
    (layer_utils.conv_bn_relu_forward, layer_utils.conv_bn_relu_backward, True, False),
    (layer_utils.conv_bn_relu_pool_forward, layer_utils.conv_bn_relu_pool_backward, True, True),
]


@pytest.mark.parametrize("forward, backward, bn, pool", SANDWICHES)
def test_sandwich_layers_skip_dx(forward, backward, bn, pool, monkeypatch):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3)), np.zeros(4)
    args = [x, w, b]
    if bn:
        args += [np.ones(4), np.zeros(4)]
    args.append({"stride": 1, "pad": 1})
    if bn:
        args.append({"mode": "train"})
    if pool:
        args.append({"pool_height": 2, "pool_width": 2, "stride": 2})
    out, cache = forward(*args)
    dout = rng.standard_normal(out.shape)
    calls = _count_col2im(monkeypatch)
    full = backward(dout, cache)
    assert calls, "the spy must see the default path's col2im"
    before = len(calls)
    skipped = backward(dout, cache, need_dx=False)
    assert len(calls) == before
    assert full[0].shape == x.shape and skipped[0] is None
    assert len(skipped) == len(full)
    for g, g2 in zip(full[1:], skipped[1:], strict=True):
        np.testing.assert_allclose(g2, g, rtol=0, atol=1e-12)


def _max_grad_error(model, X, y):
    loss, grads = model.loss(X, y)
    worst = 0.0
    for name, param in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], param, verbose=False,
                                      h=1e-6)
        worst = max(worst, rel_error(num, grads[name]))
    return worst


def test_three_layer_convnet_skips_first_dx_and_checks_gradients(monkeypatch):
    rng = np.random.default_rng(3)
    model = ThreeLayerConvNet(input_dim=(3, 8, 8), num_filters=3, filter_size=3, hidden_dim=7,
                              weight_scale=1e-2, dtype=np.float64, seed=0)
    X, y = rng.standard_normal((2, 3, 8, 8)), np.array([1, 4])
    calls = _count_col2im(monkeypatch)
    model.loss(X, y)
    assert not calls  # its only conv is the first layer: no col2im at all
    assert _max_grad_error(model, X, y) < 1e-5


def test_convnet_skips_only_the_first_layers_dx(monkeypatch):
    rng = np.random.default_rng(4)
    spec = arch.Spec("two", (3, 7, 7), (arch.Conv(4, 3, pad=1), arch.ReLU(),
                                        arch.Conv(4, 3, pad=1, stride=2), arch.ReLU(),
                                        arch.Flatten(), arch.FC(3)))
    model = ConvNet(spec, dtype=np.float64, seed=0)
    X, y = rng.standard_normal((2, 3, 7, 7)), np.array([0, 2])
    calls = _count_col2im(monkeypatch)
    model.loss(X, y)
    assert len(calls) == 1  # the second conv's dx only
    scores, caches = model.forward(X, "train")
    dX, grads = model.backward(np.ones_like(scores), caches)
    assert dX.shape == X.shape  # the default backward still returns dX
    assert _max_grad_error(model, X, y) < 1e-5
