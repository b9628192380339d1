"""rel_error and the numerical gradients against functions whose gradients are known."""

import numpy as np
import pytest

from cs231n_lib.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    grad_check_sparse,
    rel_error,
)


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def test_rel_error_is_zero_for_identical_arrays_including_zeros(rng):
    x = rng.standard_normal((4, 5))
    assert rel_error(x, x.copy()) == 0.0
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros((0, 3)), np.zeros((0, 3))) == 0.0


def test_rel_error_is_symmetric_and_relative(rng):
    x, y = rng.standard_normal(10), rng.standard_normal(10)
    assert rel_error(x, y) == rel_error(y, x) > 0
    assert rel_error(np.array([1.0]), np.array([1.0 + 2e-6])) == pytest.approx(1e-6, rel=1e-6)
    assert rel_error(np.array([1.0, 1.0]), np.array([1.0, 3.0])) == pytest.approx(0.5)


def test_rel_error_has_no_spurious_error_on_near_zero_float32_entries(rng):
    """float32 copies of float64 values agree to float32 precision, including entries near zero
    (or rounded to zero); the old floor of 1e-8 would have reported errors like 0.1 there."""
    y = np.concatenate([rng.standard_normal(20), [1e-9, -3e-10, 1e-12, 1e-40, 1e-50, 0.0]])
    x = y.astype(np.float32)
    assert rel_error(x, y) < 1e-7
    assert rel_error(x, x.astype(np.float64)) == 0.0


def test_rel_error_of_a_correct_float32_convolution_is_small(rng):
    """A float32 convolution agrees with its float64 value to float32 precision; an elementwise
    relative error (CS231n's) reports > 1e-4 on it because some outputs cancel to near zero."""
    from cs231n_lib.fast_layers import conv_forward_fast

    x, w, b = (rng.standard_normal(s) for s in ((20, 3, 31, 31), (25, 3, 3, 3), (25,)))
    param = {"stride": 2, "pad": 1}
    out64, _ = conv_forward_fast(x, w, b, param)
    out32, _ = conv_forward_fast(*(a.astype(np.float32) for a in (x, w, b)), param)
    elementwise = np.max(np.abs(out32 - out64) / (np.abs(out32) + np.abs(out64)))
    assert elementwise > 1e-4  # the trap this metric avoids (0.01 on 100 images)
    assert rel_error(out32, out64) < 1e-6


def test_rel_error_still_sees_one_wrong_entry(rng):
    x = rng.standard_normal(1000)
    y = x.copy()
    y[np.argmin(np.abs(x))] += 1e-4 * np.max(np.abs(x))  # a small entry made wrong
    assert rel_error(x, y) > 1e-5


def test_rel_error_rejects_different_shapes():
    with pytest.raises(ValueError, match=r"\(3,\) and \(4,\)"):
        rel_error(np.zeros(3), np.zeros(4))


def test_numerical_gradient_of_a_cubic(rng):
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    grad = eval_numerical_gradient(lambda v: np.sum(v**3), x)
    assert rel_error(grad, 3 * x0**2) < 1e-8
    np.testing.assert_array_equal(x, x0)  # every entry restored after its perturbation


def test_numerical_gradient_array_of_a_matrix_product(rng):
    X, W = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    df = rng.standard_normal((5, 4))
    W0 = W.copy()
    grad = eval_numerical_gradient_array(lambda v: X @ v, W, df)
    assert rel_error(grad, X.T @ df) < 1e-9
    np.testing.assert_array_equal(W, W0)


def test_grad_check_sparse_separates_right_from_wrong(rng):
    x = rng.standard_normal((6, 6))

    def f(v):
        return np.sum(np.sin(v))

    good = grad_check_sparse(f, x, np.cos(x), num_checks=8, verbose=False)
    bad = grad_check_sparse(f, x, np.cos(x) + 0.1, num_checks=8, verbose=False)
    assert len(good) == len(bad) == 8
    assert max(good) < 1e-8 and min(bad) > 1e-3
