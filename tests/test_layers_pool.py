"""Naive max and average pooling: an independent sliding-window oracle, numerical gradients with
overlapping windows, the max-pool tie convention and the even spread of average pooling."""

import numpy as np
import pytest
from layer_cases import check_gradients, distinct
from numpy.lib.stride_tricks import sliding_window_view

from cs231n_lib.layers import (
    avg_pool_backward_naive,
    avg_pool_forward_naive,
    max_pool_backward_naive,
    max_pool_forward_naive,
)

MAX = (max_pool_forward_naive, max_pool_backward_naive, np.max)
AVG = (avg_pool_forward_naive, avg_pool_backward_naive, np.mean)
KINDS = {"max": MAX, "avg": AVG}


def _param(ph, pw, stride):
    return {"pool_height": ph, "pool_width": pw, "stride": stride}


# (x shape, pool_param): tiling, overlapping (F=3, S=2 and S=1), non-square, 1x1 windows
CASES = {
    "2x2 s2": ((2, 3, 4, 4), _param(2, 2, 2)),
    "3x3 s2 overlapping": ((2, 2, 7, 5), _param(3, 3, 2)),
    "3x3 s1 overlapping": ((1, 2, 5, 5), _param(3, 3, 1)),
    "2x3 s1 non-square": ((2, 2, 4, 5), _param(2, 3, 1)),
    "1x1 s1": ((1, 2, 3, 3), _param(1, 1, 1)),
    "global": ((2, 3, 4, 6), _param(4, 6, 1)),
}


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def _oracle(x, pool_param, reduce):
    """Pooling from numpy's sliding windows, subsampled by the stride."""
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    windows = sliding_window_view(x, (ph, pw), axis=(2, 3))  # (N, C, H-ph+1, W-pw+1, ph, pw)
    windows = windows[:, :, ::s, ::s]  # (N, C, H', W', ph, pw)
    return reduce(windows, axis=(4, 5))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x_shape, param", CASES.values(), ids=CASES.keys())
def test_pool_forward_matches_sliding_windows(kind, x_shape, param, rng):
    forward, _, reduce = KINDS[kind]
    x = rng.standard_normal(x_shape)
    out, _ = forward(x, param)
    expected = _oracle(x, param, reduce)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x_shape, param", CASES.values(), ids=CASES.keys())
def test_pool_backward_matches_numerical_gradient(kind, x_shape, param, rng):
    forward, backward, _ = KINDS[kind]
    # distinct values keep max pooling away from ties
    check_gradients(lambda x: forward(x, param), backward, (distinct(rng, x_shape),), rng)


def test_max_pool_tie_goes_to_the_first_maximum_in_row_major_order():
    x = np.array([[3.0, 1.0],
                  [3.0, 3.0]])[None, None]  # three tied maxima
    _, cache = max_pool_forward_naive(x, _param(2, 2, 2))
    dx = max_pool_backward_naive(np.full((1, 1, 1, 1), 5.0), cache)
    np.testing.assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])

    x = np.array([[1.0, 3.0],
                  [3.0, 2.0]])[None, None]  # (0, 1) comes before (1, 0) in row-major order
    _, cache = max_pool_forward_naive(x, _param(2, 2, 2))
    dx = max_pool_backward_naive(np.full((1, 1, 1, 1), 5.0), cache)
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 5.0], [0.0, 0.0]])


def test_max_pool_ties_with_overlapping_windows():
    """On a constant 5x5 input with 3x3 windows at stride 2, window (i, j) sends its gradient to
    its own top-left pixel (2i, 2j), the first of its nine tied maxima."""
    dout = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]
    _, cache = max_pool_forward_naive(np.zeros((1, 1, 5, 5)), _param(3, 3, 2))
    dx = max_pool_backward_naive(dout, cache)
    expected = np.zeros((5, 5))
    expected[::2, ::2][:2, :2] = dout[0, 0]
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_max_pool_overlap_accumulates_on_a_shared_maximum():
    """A pixel that is the maximum of every window it lies in collects every window's gradient."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the centre lies in all four 3x3 stride-2 windows
    _, cache = max_pool_forward_naive(x, _param(3, 3, 2))
    dx = max_pool_backward_naive(np.array([[1.0, 2.0], [3.0, 4.0]])[None, None], cache)
    assert dx[0, 0, 2, 2] == 10.0 and dx.sum() == 10.0


def test_avg_pool_backward_spreads_evenly_and_overlaps_add_up():
    """3x3 windows at stride 2 on 5x5: along each axis rows 0, 1, 3, 4 are in one window and
    row 2 in two, so pixel (r, c) is covered by count[r] * count[c] windows, each giving 1/9."""
    _, cache = avg_pool_forward_naive(np.zeros((1, 1, 5, 5)), _param(3, 3, 2))
    dx = avg_pool_backward_naive(np.ones((1, 1, 2, 2)), cache)
    count = np.array([1, 1, 2, 1, 1])
    np.testing.assert_allclose(dx[0, 0], np.outer(count, count) / 9, rtol=1e-15)
    assert dx[0, 0, 2, 2] == pytest.approx(4 / 9)


BAD = {
    "non-integer output 4.5": ((1, 1, 10, 10), _param(3, 3, 2), r"4\.5"),
    "stride 0": ((1, 1, 4, 4), _param(2, 2, 0), r"stride=0"),
    "window larger than input": ((1, 1, 4, 4), _param(5, 2, 1), r"filter size 5 along H"),
    "unknown key pad": ((1, 1, 4, 4), {**_param(2, 2, 2), "pad": 1}, r"'pad'"),
    "missing key": ((1, 1, 4, 4), {"pool_height": 2, "stride": 2}, r"pool_width"),
    "x not 4-D": ((4, 4), _param(2, 2, 2), r"\(4, 4\)"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("x_shape, param, match", BAD.values(), ids=BAD.keys())
def test_pool_forward_rejects_invalid_settings(kind, x_shape, param, match):
    with pytest.raises(ValueError, match=match):
        KINDS[kind][0](np.zeros(x_shape), param)


@pytest.mark.parametrize("kind", KINDS)
def test_pool_backward_rejects_a_wrong_upstream_shape(kind):
    forward, backward, _ = KINDS[kind]
    _, cache = forward(np.zeros((1, 2, 4, 4)), _param(2, 2, 2))
    with pytest.raises(ValueError, match=r"dout must have shape \(1, 2, 2, 2\)"):
        backward(np.zeros((1, 2, 4, 4)), cache)
