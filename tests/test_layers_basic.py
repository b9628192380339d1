"""Every layer's backward against numerical gradients; dtypes and inputs preserved; affine, ReLU
and the two losses against straightforward oracles."""

import math

import numpy as np
import pytest
from layer_cases import LAYER_CASES, away_from_zero, check_gradients

from cs231n_lib import layers
from cs231n_lib.gradient_check import eval_numerical_gradient, rel_error


@pytest.fixture
def rng():
    return np.random.default_rng(231)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_backward_matches_numerical_gradient(name, rng):
    forward, backward, arrays = LAYER_CASES[name](rng, np.float64)
    check_gradients(forward, backward, arrays, rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_dtype_preserved_and_inputs_untouched(name, dtype, rng):
    forward, backward, arrays = LAYER_CASES[name](rng, dtype)
    arrays = tuple(a.astype(dtype) for a in arrays)
    before = [a.copy() for a in arrays]
    out, cache = forward(*arrays)
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    dout_before = dout.copy()
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g, a in zip(grads, arrays, strict=True):
        assert g.dtype == dtype and g.shape == a.shape
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dout, dout_before)
    # no output aliases an input: writing to it leaves the inputs as they were
    out[...] = 7
    for g in grads:
        g[...] = 7
    for a, b in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(dout, dout_before)


def test_affine_forward_is_a_dot_product_per_example(rng):
    x, w, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((8, 5)), rng.standard_normal(5)
    out, _ = layers.affine_forward(x, w, b)
    expected = np.array([[x[n].ravel() @ w[:, m] + b[m] for m in range(5)] for n in range(3)])
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


def test_relu_forward_and_backward_at_the_kink():
    x = np.array([-2.0, -0.0, 0.0, 3.0])
    out, cache = layers.relu_forward(x)
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 3.0])
    np.testing.assert_array_equal(layers.relu_backward(np.ones(4), cache), [0, 0, 0, 1])


# --------------------------------------------------------------------------- losses
def _loop_svm(x, y):
    """Hinge loss and gradient one example and one class at a time."""
    N, C = x.shape
    loss, dx = 0.0, np.zeros((N, C))
    for i in range(N):
        for j in range(C):
            if j == y[i]:
                continue
            margin = x[i, j] - x[i, y[i]] + 1
            if margin > 0:
                loss += margin
                dx[i, j] += 1
                dx[i, y[i]] -= 1
    return loss / N, dx / N


def _loop_softmax(x, y):
    """Cross-entropy from the definition, with Python's math on each example."""
    return sum(-math.log(math.exp(x[i, y[i]]) / sum(math.exp(s) for s in x[i]))
               for i in range(len(y))) / len(y)


def test_softmax_loss_of_small_scores_is_log_num_classes(rng):
    C = 10
    x = 1e-3 * rng.standard_normal((50, C))
    loss, _ = layers.softmax_loss(x, rng.integers(C, size=50))
    assert abs(loss - math.log(C)) < 1e-2


def test_softmax_loss_matches_the_definition(rng):
    x, y = rng.standard_normal((6, 4)), rng.integers(4, size=6)
    loss, dx = layers.softmax_loss(x, y)
    assert abs(loss - _loop_softmax(x, y)) < 1e-12
    p = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dx, (p - np.eye(4)[y]) / 6, rtol=1e-12, atol=1e-15)


def test_softmax_loss_is_stable_for_huge_scores(rng):
    x, y = rng.standard_normal((5, 3)), rng.integers(3, size=5)
    big_loss, big_dx = layers.softmax_loss(x + 1e4, y)
    loss, dx = layers.softmax_loss(x, y)
    assert np.isfinite(big_loss) and abs(big_loss - loss) < 1e-9
    np.testing.assert_allclose(big_dx, dx, atol=1e-12)


def test_svm_loss_matches_a_loop(rng):
    x, y = rng.standard_normal((8, 5)), rng.integers(5, size=8)
    loss, dx = layers.svm_loss(x, y)
    loop_loss, loop_dx = _loop_svm(x, y)
    assert loop_loss > 0 and abs(loss - loop_loss) < 1e-12
    np.testing.assert_allclose(dx, loop_dx, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss_fn", [layers.softmax_loss, layers.svm_loss])
def test_loss_gradient_matches_numerical_gradient(loss_fn, rng):
    x, y = rng.standard_normal((7, 5)), rng.integers(5, size=7)
    margins = x - x[np.arange(7), y, None] + 1
    assert np.min(np.abs(margins)) > 1e-3  # away from the hinge's kinks
    _, dx = loss_fn(x, y)
    num = eval_numerical_gradient(lambda v: loss_fn(v, y)[0], x.copy())
    assert rel_error(dx, num) < 1e-7


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss_fn", [layers.softmax_loss, layers.svm_loss])
def test_loss_dtype_preserved_and_inputs_untouched(loss_fn, dtype, rng):
    x = away_from_zero(rng, (6, 4)).astype(dtype)
    y = rng.integers(4, size=6)
    x0, y0 = x.copy(), y.copy()
    loss, dx = loss_fn(x, y)
    assert isinstance(loss, float) and dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
