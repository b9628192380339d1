"""L2-norm pooling (notebook 03, part 5): the reference solution against brute-force oracles.

Outside any kernel: the source notebook's solution cell is executed in a plain namespace, its two
functions are checked per window (``pooling_l2_oracles``) and against numerical gradients, every
call the notebook's test cells make (hidden tests included) is checked on exactly its seeded
inputs, and the exercise's rules (a loop, no library shortcut) are shown to bite.
"""

from __future__ import annotations

import functools

import notebook_utils as nbu
import numpy as np
import pytest
from pooling_l2_oracles import l2_pool_backward_oracle, l2_pool_oracle, l2_window_norm
from test_notebook_oracles_01_03 import reference_run, windows
from test_rules import found, messages

from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error

NOTEBOOK = "03_pooling"
CELL = "l2_pool"


@functools.cache
def reference():
    """(l2_pool_forward_naive, l2_pool_backward_naive) from the source notebook's solution."""
    nb = nbu.read(NOTEBOOK)
    code = [c for c in nb.cells if c.cell_type == "code"]
    ns: dict = {}
    exec(compile(code[0].source, f"{NOTEBOOK}:imports", "exec"), ns)
    (cell,) = [c for c in code if c.metadata["nbgrader"]["grade_id"] == CELL]
    exec(compile(cell.source, f"{NOTEBOOK}:{CELL}", "exec"), ns)
    return ns["l2_pool_forward_naive"], ns["l2_pool_backward_naive"]


def pool(ph, pw, stride):
    return {"pool_height": ph, "pool_width": pw, "stride": stride}


def random_case(rng, integers=False):
    """Random (x, pool_param) whose windows tile x exactly; integer x in 0..2 has zero windows."""
    ph, pw, S = (int(v) for v in rng.integers(1, 4, size=3))
    H_out, W_out = (int(v) for v in rng.integers(1, 5, size=2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), (H_out - 1) * S + ph,
             (W_out - 1) * S + pw)
    x = rng.integers(0, 3, size=shape).astype(float) if integers else rng.standard_normal(shape)
    return x, pool(ph, pw, S)


CASES = [random_case(np.random.default_rng(seed), integers=seed % 3 == 0) for seed in range(30)]


# --- the oracles themselves --------------------------------------------------------------------

def test_oracles_by_hand():
    x = np.array([[3.0, 0, 1, 1, 0, 0], [0, -4, 1, 1, 0, 0]])[None, None]
    np.testing.assert_allclose(l2_pool_oracle(x, pool(2, 2, 2)), [[[[5.0, 2.0, 0.0]]]])
    dx = l2_pool_backward_oracle(x, np.array([[[[10.0, 1.0, 7.0]]]]), pool(2, 2, 2))
    np.testing.assert_allclose(dx, [[[[6.0, 0, 0.5, 0.5, 0, 0], [0, -8, 0.5, 0.5, 0, 0]]]])
    # a 1x1 window is |x|, not x
    np.testing.assert_allclose(l2_pool_oracle(np.full((1, 1, 1, 1), -2.0), pool(1, 1, 1)), 2.0)


def test_oracles_agree_with_a_window_view_and_a_numerical_gradient():
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((2, 2, 7, 7)), rng.standard_normal((2, 2, 3, 3))
    p = pool(3, 3, 2)
    np.testing.assert_allclose(l2_pool_oracle(x, p), l2_window_norm(windows(x, 3, 3, 2), (4, 5)),
                               rtol=1e-13)
    numerical = eval_numerical_gradient_array(lambda v: l2_pool_oracle(v, p), x.copy(), dout)
    assert rel_error(l2_pool_backward_oracle(x, dout, p), numerical) < 1e-8


# --- the reference solution --------------------------------------------------------------------

@pytest.mark.parametrize("k", range(len(CASES)))
def test_reference_forward_and_backward_match_the_oracles(k):
    forward, backward = reference()
    x, p = CASES[k]
    out, cache = forward(x, p)
    assert out.dtype == x.dtype
    np.testing.assert_allclose(out, l2_pool_oracle(x, p), rtol=1e-12, atol=1e-14)
    dout = np.random.default_rng(100 + k).standard_normal(out.shape)
    dx = backward(dout, cache)
    assert np.isfinite(dx).all(), "an all-zero window must give 0, not NaN"
    np.testing.assert_allclose(dx, l2_pool_backward_oracle(x, dout, p), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, p", [((2, 3, 5, 5), pool(3, 3, 2)), ((1, 2, 4, 6), pool(2, 2, 2)),
                                      ((2, 1, 6, 5), pool(2, 3, 1))])
def test_reference_backward_matches_a_numerical_gradient(shape, p):
    forward, backward = reference()
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape)
    out, cache = forward(x, p)
    dout = rng.standard_normal(out.shape)
    numerical = eval_numerical_gradient_array(lambda v: forward(v, p)[0], x.copy(), dout)
    assert rel_error(backward(dout, cache), numerical) < 1e-8


def test_reference_keeps_float32():
    forward, backward = reference()
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32)
    out, cache = forward(x, pool(2, 2, 2))
    assert out.dtype == np.float32
    assert backward(np.ones_like(out), cache).dtype == np.float32


# --- every call of the notebook's test cells, hidden tests included ----------------------------

def _l2_calls():
    run = reference_run(NOTEBOOK)
    return run, run.of("l2_pool_forward_naive"), run.of("l2_pool_backward_naive")


def assert_agrees(x, pool_param, out, dout=None, dx=None, what=""):
    """out (and dx for the upstream gradient dout) equal the brute-force oracles."""
    np.testing.assert_allclose(out, l2_pool_oracle(x, pool_param), rtol=1e-12, atol=1e-14,
                               err_msg=f"{what}: forward")
    if dx is not None:
        np.testing.assert_allclose(dx, l2_pool_backward_oracle(x, dout, pool_param), rtol=1e-12,
                                   atol=1e-14, err_msg=f"{what}: backward")


def test_every_notebook_call_matches_the_oracles():
    run, forwards, backwards = _l2_calls()
    assert any(c.hidden for c in forwards) and any(c.hidden for c in backwards)
    by_cache = {id(c.result[1]): c for c in forwards if c.error is None}
    for call in forwards:
        assert_agrees(call.arguments["x"], call.arguments["pool_param"], call.result[0],
                      what=call.cell)
    for call in backwards:
        f = by_cache[call.ids["cache"]]
        assert_agrees(f.arguments["x"], f.arguments["pool_param"], f.result[0],
                      call.arguments["dout"], call.result, what=call.cell)
    zero_windows = [c for c in forwards if c.hidden and (c.result[0] == 0).any()]
    assert zero_windows, "the hidden tests should include an all-zero window"


def test_hidden_records_are_per_case():
    run, _, _ = _l2_calls()
    ids = [rid for rid in run.records if rid.startswith("l2_") and "hidden" in rid]
    assert len(ids) == 16 and len(set(ids)) == 16
    assert all("windows, stride" in rid for rid in ids)


@pytest.mark.parametrize("mistake", ["NaN for a zero window", "the mean's gradient",
                                     "no square root"])
def test_the_oracle_check_rejects_common_mistakes(mistake):
    x = np.array([[3.0, 0, 1, 1, 0, 0], [0, 4, 1, 1, 0, 0]])[None, None]  # a zero window
    p, dout = pool(2, 2, 2), np.array([[[[10.0, 1.0, 7.0]]]])
    forward, backward = reference()
    out, cache = forward(x, p)
    dx = backward(dout, cache)
    assert_agrees(x, p, out, dout, dx)
    if mistake == "NaN for a zero window":
        with np.errstate(invalid="ignore", divide="ignore"):
            dx = x * np.kron(dout / out, np.ones((2, 2)))
    elif mistake == "the mean's gradient":
        dx = np.kron(dout / 4, np.ones((2, 2)))
    else:
        out = out ** 2
    with pytest.raises(AssertionError):
        assert_agrees(x, p, out, dout, dx)


# --- the exercise's rules bite ------------------------------------------------------------------

VECTORISED = '''
def l2_pool_forward_naive(x, pool_param):
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    v = np.lib.stride_tricks.sliding_window_view(x, (ph, pw), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.sqrt((v ** 2).sum(axis=(4, 5))), (x, pool_param)


def l2_pool_backward_naive(dout, cache):
    raise NotImplementedError()
'''
LIBRARY = '''
from cs231n_lib.layers import avg_pool_forward_naive as _avg


def l2_pool_forward_naive(x, pool_param):
    out, _ = _avg(x * x, pool_param)
    for _ in range(1):
        out = np.sqrt(out * pool_param["pool_height"] * pool_param["pool_width"])
    return out, (x, out, pool_param)


def l2_pool_backward_naive(dout, cache):
    raise NotImplementedError()
'''


@pytest.mark.parametrize("solution, rule", [(VECTORISED, "sliding_window_view"),
                                            (VECTORISED, "loop"),
                                            (LIBRARY, "cs231n_lib")])
def test_rules_forbid_shortcuts_and_require_a_loop(solution, rule):
    assert rule in messages(found(NOTEBOOK, {CELL: solution}))


def test_reference_solution_trips_no_rule():
    assert found(NOTEBOOK) == []
