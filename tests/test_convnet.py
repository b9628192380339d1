"""ConvNet built from a spec: gradients, the cache-free inference path, training."""

import numpy as np
import pytest

from cs231n_lib import architectures as arch
from cs231n_lib.classifiers.convnet import (
    ConvNet,
    grouped_conv_backward,
    grouped_conv_forward,
    residual_block_backward,
    residual_block_forward,
)
from cs231n_lib.fast_layers import conv_forward_fast
from cs231n_lib.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)
from cs231n_lib.solver import Solver


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# Everything the runnable model supports, at tiny scale: residual blocks (identity and
# projection), an inception module with a padded pool branch, grouped and dilated convs,
# batchnorm on volumes and vectors, average pooling, dropout with a fixed mask.
TINY = arch.Spec("tiny", (2, 6, 6), (
    arch.Conv(4, 3, pad=1, bias=False), arch.BatchNorm(), arch.ReLU(),
    arch.basic_block(4, 4),
    arch.basic_block(4, 6),
    arch.inception_module(2, 2, 2, 2, 2, 2, size5=3),
    arch.Conv(8, 3, pad=2, dilation=2, groups=2), arch.ReLU(inplace=False),
    arch.Pool("avg", 2),
    arch.Flatten(), arch.FC(5, bias=False), arch.BatchNorm(), arch.ReLU(), arch.Dropout(0.7),
    arch.FC(3)))


def test_parameter_names_and_shapes():
    """Parameters are numbered in spec order; their count matches the accounting."""
    from cs231n_lib import memory
    model = ConvNet(TINY, dtype=np.float64)
    assert model.params["W1"].shape == (4, 2, 3, 3)
    assert set(model.params) >= {"W1", "gamma2", "beta2"}
    assert "b1" not in model.params  # Conv(bias=False) before batchnorm, as in torchvision
    assert sum(v.size for v in model.params.values()) == memory.totals(TINY)["params"]
    assert all(v.dtype == np.float64 for v in model.params.values())
    assert len(model.bn_params) == sum(isinstance(r, arch.BatchNorm) for r in _leaves(TINY))


def _leaves(spec):
    out, stack = [], list(spec.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, arch.Residual):
            stack += list(layer.body) + list(layer.shortcut)
        elif isinstance(layer, arch.Inception):
            stack += [x for b in layer.branches for x in b]
        else:
            out.append(layer)
    return out


def test_gradient_check_residual_and_inception(rng):
    """Analytic gradients match centred differences in float64 for every parameter (every
    entry of small tensors, random entries of the larger ones)."""
    model = ConvNet(TINY, reg=0.1, dtype=np.float64, seed=1, dropout_seed=3)
    X = rng.standard_normal((4, 2, 6, 6))
    y = rng.integers(0, 3, 4)
    _, grads = model.loss(X, y)
    assert set(grads) == set(model.params)

    def f(_):
        return model.loss(X, y)[0]
    for name in sorted(model.params):
        value = model.params[name]
        if value.size <= 8:
            num = eval_numerical_gradient(f, value, h=1e-6)
            assert rel_error(num, grads[name]) < 1e-6, name
        else:
            errors = grad_check_sparse(f, value, grads[name], num_checks=5, h=1e-6,
                                       verbose=False)
            assert max(errors) < 1e-6, name


def test_cache_workspace_changes_memory_not_gradients(rng):
    """Recomputing the conv workspace in the backward pass gives the same gradients."""
    X = rng.standard_normal((3, 2, 6, 6))
    y = rng.integers(0, 3, 3)
    fat = ConvNet(TINY, dtype=np.float64, seed=1, dropout_seed=3, cache_workspace=True)
    lean = ConvNet(TINY, dtype=np.float64, seed=1, dropout_seed=3, cache_workspace=False)
    loss_fat, g_fat = fat.loss(X, y)
    loss_lean, g_lean = lean.loss(X, y)
    assert loss_fat == loss_lean
    for name in g_fat:
        np.testing.assert_array_equal(g_fat[name], g_lean[name])


def test_input_gradient_of_a_residual_network(rng):
    """d(scores)/dX through the skip connections matches the numerical gradient."""
    spec = arch.Spec("r", (3, 5, 5), (arch.Conv(3, 3, pad=1), arch.basic_block(3, 3),
                                      arch.basic_block(3, 4, 1), arch.GlobalAvgPool()))
    model = ConvNet(spec, dtype=np.float64)
    X = rng.standard_normal((2, 3, 5, 5))
    scores, caches = model.forward(X, "train")
    dscores = rng.standard_normal(scores.shape)
    dX, _ = model.backward(dscores, caches)
    num = eval_numerical_gradient_array(lambda x: model.forward(x, "train")[0], X, dscores)
    assert rel_error(num, dX) < 1e-6


def test_inference_path_equals_the_caching_forward(rng):
    """infer() gives the test-mode scores of forward(); without BN/dropout also train mode."""
    model = ConvNet(TINY, dtype=np.float64, seed=2)
    X = rng.standard_normal((5, 2, 6, 6))
    model.forward(X, "train")  # moves the batchnorm running averages away from 0 / 1
    expected = model.forward(X, "test")[0]
    np.testing.assert_allclose(model.infer(X), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(model.loss(X), expected, rtol=1e-12, atol=1e-12)
    body = (arch.Conv(4, 3, pad=1), arch.ReLU(), arch.Conv(4, 3, pad=1))
    plain = ConvNet(arch.Spec("p", (2, 6, 6), (
        arch.Conv(4, 3, pad=1), arch.ReLU(), arch.Residual(body),
        arch.Residual(body, (arch.Conv(4, 1),)),
        arch.inception_module(2, 2, 2, 2, 2, 2, bn=False), arch.Pool("max", 3, 1, 1),
        arch.Flatten(), arch.FC(3))), dtype=np.float32)
    X32 = X.astype(np.float32)
    out = plain.infer(X32)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, plain.forward(X32, "train")[0], rtol=1e-5, atol=1e-6)


def test_inference_never_mutates_the_input(rng):
    """An in-place ReLU right after the input copies instead of overwriting the caller's X."""
    model = ConvNet(arch.Spec("r", (2, 4, 4), (arch.ReLU(), arch.Flatten(), arch.FC(3))),
                    dtype=np.float64)
    X = rng.standard_normal((3, 2, 4, 4))
    X_copy = X.copy()
    model.infer(X)
    np.testing.assert_array_equal(X, X_copy)


def test_all_convolutional_net_trains_loss_down(rng):
    """The all-conv net (stride-2 convs, no pooling) overfits a tiny set with the Solver."""
    spec = arch.all_conv_net((3, 8, 8), classes=4, width=8)
    assert not any(isinstance(layer, arch.Pool) for layer in spec.layers)
    model = ConvNet(spec, seed=0)
    X = rng.standard_normal((20, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 20)
    data = {"X_train": X, "y_train": y, "X_val": X, "y_val": y}
    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 5e-3},
                    num_epochs=15, batch_size=10, verbose=False, seed=0)
    solver.train()
    assert solver.loss_history[-1] < 0.5 * solver.loss_history[0]
    assert solver.best_val_acc >= 0.8


def test_grouped_conv_equals_separate_convs(rng):
    """groups=2 is two independent convolutions on the two channel halves."""
    x = rng.standard_normal((2, 4, 5, 5))
    w = rng.standard_normal((6, 2, 3, 3))
    b = rng.standard_normal(6)
    param = {"stride": 1, "pad": 1}
    out, cache = grouped_conv_forward(x, w, b, param, groups=2)
    top = conv_forward_fast(x[:, :2], w[:3], b[:3], param)[0]
    bottom = conv_forward_fast(x[:, 2:], w[3:], b[3:], param)[0]
    np.testing.assert_allclose(out, np.concatenate([top, bottom], axis=1), rtol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = grouped_conv_backward(dout, cache, groups=2)
    num = eval_numerical_gradient_array(
        lambda v: grouped_conv_forward(v, w, b, param, 2)[0], x, dout)
    assert rel_error(num, dx) < 1e-7
    assert dw.shape == w.shape and db.shape == b.shape


def test_residual_block_exercise_gradient_check(rng):
    """The notebook's standalone residual block: forward shape and numerical gradients."""
    x = rng.standard_normal((2, 3, 4, 4))
    w1, w2 = rng.standard_normal((2, 3, 3, 3, 3)) * 0.3
    b1, b2 = rng.standard_normal((2, 3))
    out, cache = residual_block_forward(x, w1, b1, w2, b2)
    assert out.shape == x.shape and out.min() >= 0
    dout = rng.standard_normal(out.shape)
    grads = residual_block_backward(dout, cache)
    for i, arg in enumerate((x, w1, b1, w2, b2)):
        args = [x, w1, b1, w2, b2]

        def f(v, i=i, args=args):
            args[i] = v
            return residual_block_forward(*args)[0]
        num = eval_numerical_gradient_array(f, arg, dout)
        assert rel_error(num, grads[i]) < 1e-6, i


@pytest.mark.parametrize("layer, message", [
    (arch.LRN(), "no numpy layer"),
    (arch.Conv(4, 3, pad=1, rounding="floor"), "rounding"),
    (arch.Pool("max", 2, trainable=True), "trainable"),
    (arch.Pool("max", 2, pad=2), "half the window"),
])
def test_accounting_only_layers_raise(layer, message):
    """Layers that only the accounting supports raise a ValueError naming the layer."""
    with pytest.raises(ValueError, match=message):
        ConvNet(arch.Spec("x", (4, 8, 8), (layer,)))


def test_bad_inputs_raise(rng):
    """Wrong input shape, negative reg, bad mode and non-float dtype are ValueErrors."""
    model = ConvNet(arch.small_pool_net((3, 8, 8), width=4))
    with pytest.raises(ValueError, match="X must have shape"):
        model.loss(rng.standard_normal((2, 3, 9, 9)))
    with pytest.raises(ValueError, match="mode"):
        model.forward(np.zeros((1, 3, 8, 8), np.float32), "eval")
    with pytest.raises(ValueError, match="reg"):
        ConvNet(arch.small_pool_net(), reg=-1)
    with pytest.raises(ValueError, match="dtype"):
        ConvNet(arch.small_pool_net(), dtype=np.int32)
    with pytest.raises(ValueError, match="class scores"):
        ConvNet(arch.Spec("c", (1, 4, 4), (arch.Conv(2, 3),))).loss(
            np.zeros((1, 1, 4, 4), np.float32), np.zeros(1, int))
