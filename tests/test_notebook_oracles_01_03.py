"""Independent oracles for the reference solutions of notebooks 01-03, run outside any kernel.

The hidden tests of these notebooks record only the student's values (seeded inputs, one call,
``record``); the grader compares them with the records of a reference run of the source notebook.
No expected value is computed in the student's kernel, so the checks that keep the reference
records trustworthy live here: the source notebook's solution cells and test cells are executed
in a plain namespace (no kernel), every exercise function is wrapped in a spy, and every call the
test cells make, hidden tests included, is checked against an independent oracle (scipy,
``np.pad``, ``sliding_window_view``, brute force, numerical gradients, adjoint identities, the
library's fast layers) on exactly the seeded inputs the hidden tests use.

Static checks keep the rule of issue 13 from regressing: a hidden-test region computes no
expected value (no assert, no oracle, no helper beyond input generators), and visible test cells
take their expected values from literals or formulas written out in the cell, never from a
library function that is the answer.
"""

from __future__ import annotations

import ast
import copy
import functools
import inspect
import os
import re
from dataclasses import dataclass, field, replace

import notebook_utils as nbu
import numpy as np
import pytest
from pooling_l2_oracles import l2_pool_backward_oracle, l2_window_norm
from scipy import signal

os.environ.setdefault("MPLBACKEND", "Agg")

from cs231n_grading.judge import compare  # noqa: E402
from cs231n_lib import architectures as arch  # noqa: E402
from cs231n_lib import shapes  # noqa: E402
from cs231n_lib.checks import encode_value  # noqa: E402
from cs231n_lib.fast_layers import conv_backward_fast, conv_forward_fast  # noqa: E402
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error  # noqa: E402

NOTEBOOKS = ("01_convolution", "02_padding_stride", "03_pooling")
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.DOTALL)
# Test cells not executed here, with the reason: they need read-only cells (a photo, a training
# loop) and have no hidden tests; their expected values are literals (the Sobel filter, a bound).
SKIPPED_CELLS = {"test_learn_kernel": "needs the photo of a read-only cell; expects the literal "
                                      "Sobel filter",
                 "test_allconv_trains": "trains a network; records an accuracy bound"}
# Exercises without a hidden test: checked on their visible calls, or not here (with the reason).
VISIBLE_ONLY = {"same_padding", "valid_input_sizes"}
NOT_CHECKED = {"learn_kernel": "its only test cell is skipped (see SKIPPED_CELLS)"}


# ---------------------------------------------------------------------------------------------
# Executing the source notebook with spies
# ---------------------------------------------------------------------------------------------

@dataclass
class Call:
    """One call of an exercise function made by a test cell."""

    function: str
    cell: str
    hidden: bool
    arguments: dict
    ids: dict  # id() of every argument as passed (to match a backward call with its forward)
    result: object = None
    error: Exception | None = None


@dataclass
class Run:
    """What executing a notebook's test cells with the reference solutions produced."""

    calls: list = field(default_factory=list)
    records: dict = field(default_factory=dict)
    functions: dict = field(default_factory=dict)

    def of(self, function: str) -> list[Call]:
        return [c for c in self.calls if c.function == function]


def _solution_functions(nb) -> list[str]:
    """Names of the functions defined by the notebook's solution cells."""
    names = []
    for cell in nb.cells:
        if nbu.role(cell) == "solution":
            names += [node.name for node in ast.parse(cell.source).body
                      if isinstance(node, ast.FunctionDef)]
    return names


def _spy(name: str, fn, run: Run, state: dict):
    """Wrap ``fn`` so that every call (arguments copied before the call) is logged in ``run``."""
    signature = inspect.signature(fn)

    def spy(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = Call(name, state["cell"], state["hidden"], copy.deepcopy(dict(bound.arguments)),
                    {k: id(v) for k, v in bound.arguments.items()})
        run.calls.append(call)
        try:
            call.result = fn(*args, **kwargs)
        except Exception as err:
            call.error = err
            raise
        return call.result

    return spy


def execute_source(name: str, replacement: str = "") -> Run:
    """Run the imports, solution and test cells of a source notebook with spies on the exercises.

    ``replacement``: source run after the solution cells, e.g. an honest solution in another
    style that replaces the reference one. Records are kept as the payloads the grader judges.
    """
    nb = nbu.read(name)
    run, state = Run(), {"cell": "", "hidden": False}
    ns: dict = {"__name__": f"notebook_{name}"}
    code = [c for c in nb.cells if c.cell_type == "code"]
    exec(compile(code[0].source, f"{name}:imports", "exec"), ns)  # the import cell comes first

    def record(check_id, value, *, kind="close", rtol=1e-7, atol=1e-9, bound=None):
        assert check_id not in run.records, f"record id {check_id!r} used twice"
        run.records[check_id] = {"id": check_id, "kind": kind, "rtol": rtol, "atol": atol,
                                 "bound": bound, "value": encode_value(value)}

    ns["record"] = record
    for cell in code:
        if nbu.role(cell) == "solution":
            grade_id = cell.metadata["nbgrader"]["grade_id"]
            exec(compile(cell.source, f"{name}:{grade_id}", "exec"), ns)
    exec(compile(replacement, f"{name}:replacement", "exec"), ns)
    for fn_name in _solution_functions(nb):
        run.functions[fn_name] = ns[fn_name]
        ns[fn_name] = _spy(fn_name, ns[fn_name], run, state)
    for cell in code:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        if nbu.role(cell) != "tests" or grade_id in SKIPPED_CELLS:
            continue
        state.update(cell=grade_id, hidden="BEGIN HIDDEN TESTS" in cell.source)
        exec(compile(cell.source, f"{name}:{grade_id}", "exec"), ns)
    return run


@functools.cache
def reference_run(name: str) -> Run:
    return execute_source(name)


@pytest.fixture(scope="module", params=NOTEBOOKS)
def run(request):
    return request.param, reference_run(request.param)


# ---------------------------------------------------------------------------------------------
# Oracles (independent of the solutions)
# ---------------------------------------------------------------------------------------------

def conv_oracle(x, w, b, stride=1, pad=0, dilation=1):
    """scipy cross-correlation of the zero-padded input with the dilated filters."""
    F, C, HH, WW = w.shape
    wd = np.zeros((F, C, dilation * (HH - 1) + 1, dilation * (WW - 1) + 1))
    wd[:, :, ::dilation, ::dilation] = w
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    full = np.array([[signal.correlate(xn, wf, mode="valid")[0] for wf in wd] for xn in xp])
    return full[:, :, ::stride, ::stride] + b[:, None, None]


def _conv_args(conv_param):
    return conv_param.get("stride", 1), conv_param.get("pad", 0), conv_param.get("dilation", 1)


def windows(x, ph, pw, stride, pad=0, dilation=1):
    """Every receptive field of x as a strided view: (N, C, H_out, W_out, ph, pw)."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    span = (dilation * (ph - 1) + 1, dilation * (pw - 1) + 1)
    view = np.lib.stride_tricks.sliding_window_view(xp, span, axis=(2, 3))
    return view[:, :, ::stride, ::stride, ::dilation, ::dilation]


def im2col_oracle(x, HH, WW, stride=1, pad=0, dilation=1):
    win = windows(x, HH, WW, stride, pad, dilation)  # (N, C, Ho, Wo, HH, WW)
    C = x.shape[1]
    return win.transpose(1, 4, 5, 0, 2, 3).reshape(C * HH * WW, -1)


def assert_close(got, want, rtol=1e-9, atol=1e-10, what="value"):
    assert isinstance(got, np.ndarray), f"{what}: {type(got).__name__} is not an ndarray"
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=what)


def check_conv_backward(dx, dw, db, x, w, b, conv_param, dout):
    """Adjoint identities against the oracle, db, and (small cases) numerical gradients."""
    S, P, D = _conv_args(conv_param)
    lin = conv_oracle(x, w, np.zeros_like(b), S, P, D)  # linear in x and in w
    scale = 1 + abs(np.vdot(lin, dout))
    assert abs(np.vdot(lin, dout) - np.vdot(x, dx)) < 1e-8 * scale, "<conv(x), y> != <x, dx>"
    assert abs(np.vdot(lin, dout) - np.vdot(w, dw)) < 1e-8 * scale, "<conv(w), y> != <w, dw>"
    assert_close(db, dout.sum(axis=(0, 2, 3)), what="db")
    if x.size + w.size <= 600:
        dx_num = eval_numerical_gradient_array(lambda v: conv_oracle(v, w, b, S, P, D), x.copy(),
                                               dout)
        dw_num = eval_numerical_gradient_array(lambda v: conv_oracle(x, v, b, S, P, D), w.copy(),
                                               dout)
        assert rel_error(dx, dx_num) < 1e-7, f"dx vs numerical gradient {rel_error(dx, dx_num)}"
        assert rel_error(dw, dw_num) < 1e-7, f"dw vs numerical gradient {rel_error(dw, dw_num)}"


def _check_conv_param_counts(call, calls):
    a, result = call.arguments, call.result
    C, H, W = a["input_shape"]
    F, S, P, K = a["field"], a["stride"], a["pad"], a["num_filters"]
    sizes = [(n - F + 2 * P) / S + 1 for n in (H, W)]
    assert all(s == int(s) and s >= 1 for s in sizes), f"invalid test setting {a}"
    per_filter = K * (F * F * C + 1)
    assert result == (int(sizes[0]) * int(sizes[1]) * per_filter, per_filter)
    assert all(type(v) is int for v in result)


def _check_conv_forward(call, calls):
    a, result = call.arguments, call.result
    out, _ = result
    x, w, b = a["x"], a["w"], a["b"]
    assert out.dtype == np.result_type(x, w, b)
    assert_close(out, conv_oracle(x, w, b, *_conv_args(a["conv_param"])), what="conv forward")


def _forward_call(calls, name, backward):
    """The forward call whose result carried the cache passed to ``backward`` (by identity)."""
    for c in calls:
        if c.function == name and c.error is None and id(c.result[1]) == backward.ids["cache"]:
            return c
    raise AssertionError(f"no {name} call produced the cache of this {backward.function} call")


def _check_conv_backward(forward_name):
    def check(call, calls):
        a, result = call.arguments, call.result
        fwd = _forward_call(calls, forward_name, call)
        f = fwd.arguments
        check_conv_backward(*result, f["x"], f["w"], f["b"], f["conv_param"], a["dout"])
    return check


def _check_im2col(call, calls):
    a, result = call.arguments, call.result
    want = im2col_oracle(a["x"], a["HH"], a["WW"], a["stride"], a["pad"], a["dilation"])
    assert result.dtype == a["x"].dtype
    np.testing.assert_array_equal(result, want)


def _check_col2im(call, calls):
    a, result = call.arguments, call.result
    x = np.random.default_rng(0).standard_normal(a["x_shape"])
    cols = im2col_oracle(x, a["HH"], a["WW"], a["stride"], a["pad"], a["dilation"])
    lhs, rhs = np.vdot(cols, a["X_col"]), np.vdot(x, result)
    assert result.shape == tuple(a["x_shape"])
    assert abs(lhs - rhs) < 1e-10 * (1 + abs(lhs)), "col2im is not the adjoint of im2col"


def _check_conv1x1(call, calls):
    a, result = call.arguments, call.result
    x, w, b = a["x"], a["w"], a["b"]
    assert_close(result, np.einsum("nchw,fc->nfhw", x, w[:, :, 0, 0]) + b[:, None, None],
                 what="conv1x1")


def _check_fc_to_conv(call, calls):
    a, result = call.arguments, call.result
    C, H, W = a["input_shape"]
    w_fc = a["w_fc"]
    M = w_fc.shape[1]
    np.testing.assert_array_equal(result, np.moveaxis(w_fc.reshape(C, H, W, M), 3, 0))
    x = np.random.default_rng(1).standard_normal((2, C, H, W))
    scores = conv_forward_fast(x, result, np.zeros(M), {"stride": 1, "pad": 0})[0][:, :, 0, 0]
    assert_close(scores, x.reshape(2, -1) @ w_fc, what="conv scores vs affine")


def _check_receptive_field(call, calls):
    a, result = call.arguments, call.result
    support = {0}  # input positions that reach neuron 0 of the last layer, walked downwards
    for F, S, d in reversed(list(a["layers"])):
        support = {p * S + d * k for p in support for k in range(F)}
    assert result == max(support) - min(support) + 1


def _library_size(W, F, S, P):
    try:
        return shapes.output_size(W, F, S, P)
    except ValueError:
        return "invalid"


def _check_conv_output_size(call, calls):
    a, result, error = call.arguments, call.result, call.error
    want = _library_size(a["W"], a["F"], a["S"], a["P"])
    got = "invalid" if isinstance(error, ValueError) else result
    assert got == want, f"conv_output_size{tuple(a.values())}: {got!r} != library {want!r}"


def _check_same_padding(call, calls):
    a, result, error = call.arguments, call.result, call.error
    if a["F"] % 2 == 0:
        assert isinstance(error, ValueError)
    else:
        assert result == (a["F"] - 1) // 2


def _check_pad_image(call, calls):
    a, result = call.arguments, call.result
    mode = {"zero": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}
    x, p = a["x"], a["pad"]
    want = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=mode[a["mode"]])
    assert result.dtype == x.dtype
    np.testing.assert_array_equal(result, want)


def measured_influence(H, W, F, num_layers, pad):
    """Brute force: the non-zero outputs each one-pixel image produces through the stack."""
    x = np.eye(H * W).reshape(H * W, 1, H, W)
    w, b = np.ones((1, 1, F, F)), np.zeros(1)
    for _ in range(num_layers):
        x, _ = conv_forward_fast(x, w, b, {"stride": 1, "pad": pad})
    return (x > 0).sum(axis=(1, 2, 3)).reshape(H, W)


def _check_influence_map(call, calls):
    a, result = call.arguments, call.result
    np.testing.assert_array_equal(result, measured_influence(*a.values()))


def _check_valid_input_sizes(call, calls):
    a, result = call.arguments, call.result
    want = [W for W in a["sizes"] if _library_size(W, a["F"], a["S"], a["P"]) != "invalid"]
    assert result == want


def _check_strided_forward(call, calls):
    a, result = call.arguments, call.result
    want = conv_forward_fast(a["x"], a["w"], a["b"], a["conv_param"])[0]
    assert_close(result, want, what="strided forward")


def _check_strided_backward(call, calls):
    a, result = call.arguments, call.result
    _, cache = conv_forward_fast(a["x"], a["w"], a["b"], a["conv_param"])
    for name, got, want in zip("dx dw db".split(), result,
                               conv_backward_fast(a["dout"], cache), strict=True):
        assert_close(got, want, what=f"strided backward {name}")


def _check_pool_forward(reduce):
    def check(call, calls):
        a, result = call.arguments, call.result
        out, _ = result
        p = a["pool_param"]
        want = reduce(windows(a["x"], p["pool_height"], p["pool_width"], p["stride"]),
                      axis=(4, 5))
        assert out.dtype == a["x"].dtype
        assert_close(out, want, rtol=1e-12, atol=1e-12, what="pool forward")
    return check


def _pool_backward_oracle(x, dout, pool_param, kind):
    """Loop over every (n, c, i, j): max routes to np.argmax's pixel, avg spreads evenly."""
    ph, pw, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros(x.shape)
    for n, c, i, j in np.ndindex(*dout.shape):
        window = x[n, c, i * S:i * S + ph, j * S:j * S + pw]
        if kind == "max":
            r, s = np.unravel_index(np.argmax(window), window.shape)
            dx[n, c, i * S + r, j * S + s] += dout[n, c, i, j]
        else:
            dx[n, c, i * S:i * S + ph, j * S:j * S + pw] += dout[n, c, i, j] / (ph * pw)
    return dx


def _check_pool_backward(forward_name, kind):
    def check(call, calls):
        a, result = call.arguments, call.result
        f = _forward_call(calls, forward_name, call).arguments
        want = _pool_backward_oracle(f["x"], a["dout"], f["pool_param"], kind)
        assert_close(result, want, rtol=1e-12, atol=1e-12, what=f"{kind} pool backward")
    return check


def _check_l2_pool_backward(call, calls):
    a, result = call.arguments, call.result
    f = _forward_call(calls, "l2_pool_forward_naive", call).arguments
    want = l2_pool_backward_oracle(f["x"], a["dout"], f["pool_param"])
    assert_close(result, want, rtol=1e-12, atol=1e-12, what="l2 pool backward")


def _check_pool_to_conv(call, calls):
    a, result = call.arguments, call.result
    spec, want, shape = a["spec"], [], tuple(a["spec"].input)
    for layer in spec.layers:
        if isinstance(layer, arch.Pool):
            want += [arch.Conv(shape[0], layer.size, layer.step, layer.pad), arch.ReLU()]
        else:
            want.append(layer)
        shape = arch.out_shape(layer, shape)
    assert list(result.layers) == want
    assert result.name == spec.name + "_allconv"
    assert result.out_shape() == spec.out_shape()


ORACLES = {
    "conv_param_counts": _check_conv_param_counts,
    "conv_forward_naive": _check_conv_forward,
    "conv_backward_naive": _check_conv_backward("conv_forward_naive"),
    "im2col": _check_im2col,
    "col2im": _check_col2im,
    "conv_forward_im2col": _check_conv_forward,
    "conv_backward_im2col": _check_conv_backward("conv_forward_im2col"),
    "conv1x1": _check_conv1x1,
    "fc_to_conv": _check_fc_to_conv,
    "receptive_field": _check_receptive_field,
    "conv_output_size": _check_conv_output_size,
    "same_padding": _check_same_padding,
    "pad_image": _check_pad_image,
    "influence_map": _check_influence_map,
    "valid_input_sizes": _check_valid_input_sizes,
    "strided_conv_forward": _check_strided_forward,
    "strided_conv_backward": _check_strided_backward,
    "max_pool_forward_naive": _check_pool_forward(np.max),
    "max_pool_backward_naive": _check_pool_backward("max_pool_forward_naive", "max"),
    "avg_pool_forward_naive": _check_pool_forward(np.mean),
    "avg_pool_backward_naive": _check_pool_backward("avg_pool_forward_naive", "avg"),
    "l2_pool_forward_naive": _check_pool_forward(l2_window_norm),
    "l2_pool_backward_naive": _check_l2_pool_backward,
    "pool_to_conv": _check_pool_to_conv,
}
RAISING = {"conv_output_size", "same_padding"}  # their oracles also judge a ValueError


def check_call(call: Call, calls: list[Call]) -> None:
    """Raise AssertionError if the reference's result of ``call`` disagrees with the oracle."""
    if call.function not in RAISING:
        assert call.error is None, f"{call.function} raised {call.error!r}"
    ORACLES[call.function](call, calls)


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def test_every_exercise_has_an_oracle_and_hidden_calls(run):
    name, result = run
    unknown = set(result.functions) - set(ORACLES) - set(NOT_CHECKED)
    assert unknown == set(), f"{name}: exercises without an oracle: {unknown}"
    for fn_name in set(result.functions) - set(NOT_CHECKED):
        calls = result.of(fn_name)
        if fn_name in VISIBLE_ONLY:
            assert calls, f"{name}: no test calls {fn_name}"
        else:
            assert any(c.hidden for c in calls), f"{name}: no hidden test calls {fn_name}"


def test_reference_solutions_agree_with_the_oracles(run):
    name, result = run
    failures = []
    for call in result.calls:
        try:
            check_call(call, result.calls)
        except AssertionError as err:
            failures.append(f"{call.cell}: {call.function}: {str(err)[:300]}")
    assert failures == [], f"{name}: {len(failures)} calls disagree:\n" + "\n".join(failures[:5])
    assert len(result.calls) > 20


def _perturbed(value):
    """A slightly wrong copy of a result: the first number changed, a layer dropped."""
    if isinstance(value, np.ndarray):
        wrong = value.astype(np.float64 if value.dtype.kind in "biu" else value.dtype)
        wrong.flat[0] += 1
        return wrong
    if isinstance(value, (tuple, list)):
        return type(value)([_perturbed(value[0]), *value[1:]])
    if isinstance(value, (int, float)):
        return value + 1
    if isinstance(value, arch.Spec):
        return replace(value, layers=value.layers[:-1])
    raise TypeError(f"cannot perturb {type(value).__name__}")


def test_every_oracle_rejects_a_wrong_result(run):
    """The oracles can fail: a result one unit off (or one layer short) is caught, per function."""
    name, result = run
    for fn_name in result.functions:
        calls = [c for c in result.of(fn_name) if c.error is None]
        if fn_name in NOT_CHECKED or not calls:
            continue
        call = max(calls, key=lambda c: c.hidden)  # a hidden test's call where there is one
        wrong = replace(call, result=_perturbed(call.result))
        calls_with_wrong = [wrong if c is call else c for c in result.calls]
        with pytest.raises(AssertionError):
            check_call(wrong, calls_with_wrong)


def test_every_hidden_case_is_recorded_under_its_own_id(run):
    """Each hidden test records per case (its id names the case), not one aggregate value."""
    name, result = run
    hidden_ids = [rid for rid in result.records if "hidden" in rid]
    assert len(hidden_ids) >= 10, hidden_ids
    assert all(len(rid) <= 120 for rid in result.records), max(result.records, key=len)


# ---------------------------------------------------------------------------------------------
# Static rules on the test cells (issue 13, item 1)
# ---------------------------------------------------------------------------------------------

# Names that compute an answer: an oracle library or the library's own solution of an exercise.
ORACLE_NAMES = {"signal", "scipy", "sliding_window_view", "as_strided", "conv_backward_fast",
                "all_conv_net", "measured_influence", "einsum", "moveaxis", "output_size",
                "pool_geometry", "conv_geometry", "_conv_oracle", "_pool_oracle"}
# Visible cells that use the given fast convolution on purpose: to make an input (the target of
# learn_kernel) or to apply the student's answer (fc_to_conv's filters); never as an expected value.
FAST_CONV_ALLOWED = {"test_learn_kernel", "test_fc_to_conv"}
INPUT_GENERATORS = re.compile(r"_random_\w+|_spy_\w+")


def _names(tree) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.split(".")[-1])
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update(node.module.split("."))
    return found


def _test_cells(name):
    for cell in nbu.read(name).cells:
        if nbu.role(cell) == "tests":
            yield cell.metadata["nbgrader"]["grade_id"], cell.source


def hidden_problems(source: str) -> list[str]:
    """What a hidden-test region does beyond seeded inputs, calls and records."""
    problems = []
    for region in HIDDEN.findall(source):
        tree = ast.parse(region)
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                problems.append(f"assert statement at line {node.lineno}")
            if isinstance(node, ast.FunctionDef) and not INPUT_GENERATORS.fullmatch(node.name):
                problems.append(f"defines {node.name} (only _random_* / _spy_* input helpers)")
        used = _names(tree)
        problems += [f"uses {n}" for n in sorted(used & (ORACLE_NAMES | {"assert_array",
                                                                         "assert_value"}))]
        if {"conv_forward_fast", "conv_backward_fast"} & used and "_spy_forward" not in region:
            problems.append("uses the fast layers as a reference")
    return problems


def visible_problems(grade_id: str, source: str) -> list[str]:
    """Library answers or solution-like helpers in a visible test cell."""
    visible = HIDDEN.sub("", source)
    tree = ast.parse(visible)
    used = _names(tree)
    problems = [f"uses {n}" for n in sorted(used & ORACLE_NAMES)]
    if "conv_forward_fast" in used and grade_id not in FAST_CONV_ALLOWED:
        problems.append("uses conv_forward_fast")
    if "pad" in {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}:
        problems.append("uses np.pad")
    problems += [f"defines {n.name}" for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return problems


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_hidden_tests_compute_no_expected_value(name):
    found = {gid: hidden_problems(src) for gid, src in _test_cells(name)}
    assert {gid: p for gid, p in found.items() if p} == {}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_visible_tests_take_expected_values_from_literals_or_formulas(name):
    found = {gid: visible_problems(gid, src) for gid, src in _test_cells(name)}
    assert {gid: p for gid, p in found.items() if p} == {}


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN HIDDEN TESTS\nout = f(x)\nrecord('a', out)\nassert out == 1\n"
     "### END HIDDEN TESTS\n", "assert statement"),
    ("### BEGIN HIDDEN TESTS\nfrom scipy import signal\nrecord('a', f(x))\n"
     "### END HIDDEN TESTS\n", "uses scipy"),
    ("### BEGIN HIDDEN TESTS\ndef oracle(x):\n    return x\nrecord('a', f(x))\n"
     "### END HIDDEN TESTS\n", "defines oracle"),
    ("### BEGIN HIDDEN TESTS\nassert_array('a', f(x), g(x))\n### END HIDDEN TESTS\n",
     "uses assert_array"),
    ("### BEGIN HIDDEN TESTS\nref = conv_forward_fast(x, w, b, p)\n### END HIDDEN TESTS\n",
     "fast layers"),
])
def test_hidden_rule_catches_an_expected_value(source, problem):
    assert any(problem in p for p in hidden_problems(source)), hidden_problems(source)


@pytest.mark.parametrize("source, problem", [
    ("assert_array('o', f(x), np.pad(x, 1))\n", "np.pad"),
    ("def measured(x):\n    return x\nassert_array('o', f(x), measured(x))\n", "defines measured"),
    ("assert_array('o', f(x), conv_forward_fast(x, w, b, p)[0])\n", "conv_forward_fast"),
    ("want = arch.all_conv_net(input=(1, 28, 28))\n", "all_conv_net"),
])
def test_visible_rule_catches_a_library_answer(source, problem):
    assert any(problem in p for p in visible_problems("test_x", source))


# ---------------------------------------------------------------------------------------------
# Honest solutions in another style earn every record (issue 13: the "how" bounds of the hidden
# tests must accept a loop over rows vectorised across columns, which the exercise text allows)
# ---------------------------------------------------------------------------------------------

ROW_LOOP_CONV = """
def conv_forward_naive(x, w, b, conv_param):
    stride, pad, dilation, H_out, W_out = shapes.conv_geometry(x.shape, w.shape, conv_param)
    F, C, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((x.shape[0], F, H_out, W_out), dtype=np.result_type(x, w, b))
    taps = np.arange(W_out)[None, :] * stride + dilation * np.arange(WW)[:, None]  # (WW, W_out)
    for i in range(H_out):
        rows = xp[:, :, i * stride:i * stride + dilation * (HH - 1) + 1:dilation]  # (N, C, HH, .)
        out[:, :, i] = np.tensordot(rows[..., taps], w, axes=([1, 2, 3], [1, 2, 3])
                                    ).transpose(0, 2, 1) + b[:, None]
    return out, (x, w, b, conv_param)
"""
ROW_LOOP_MAX_POOL = """
def max_pool_forward_naive(x, pool_param):
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    out = np.empty(x.shape[:2] + (H_out, W_out), dtype=x.dtype)
    taps = np.arange(W_out)[None, :] * stride + np.arange(pw)[:, None]  # (pw, W_out)
    for i in range(H_out):
        out[:, :, i] = x[:, :, i * stride:i * stride + ph][..., taps].max(axis=(2, 3))
    return out, (x, pool_param)
"""


@pytest.mark.parametrize("name, replacement", [("01_convolution", ROW_LOOP_CONV),
                                               ("03_pooling", ROW_LOOP_MAX_POOL)])
def test_row_loop_vectorised_across_columns_earns_every_record(name, replacement):
    reference, honest = reference_run(name), execute_source(name, replacement)
    assert set(honest.records) == set(reference.records)
    verdicts = {rid: compare(ref, honest.records[rid]) for rid, ref in reference.records.items()}
    assert {rid: v for rid, v in verdicts.items() if v} == {}
