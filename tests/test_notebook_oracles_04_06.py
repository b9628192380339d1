"""Oracles of notebooks 04-06, checked outside the student's kernel.

The hidden tests of these notebooks hold no expected value: they record the student's outputs and
the grader compares them with the records of the reference run (the solutions). What makes the
reference run right is checked here instead: every test cell that used to compare with the
library in the kernel is executed on the reference solutions (the setup cell and the solution
cells of ``course_src/NN_name.py``), with ``record`` captured and the exercise functions wrapped
to log each call, and the logged results are compared with an independent computation (the
library, numerical gradients, a search) on exactly the inputs the test cell used.
"""

from __future__ import annotations

import ast
import copy
import functools
import math
from dataclasses import dataclass, field

import notebook_utils as nbu
import numpy as np
import pytest

from cs231n_lib import architectures as arch
from cs231n_lib import layers, memory
from cs231n_lib.classifiers.convnet import ConvNet
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error


@dataclass
class Call:
    """One logged call of an exercise function: arguments before and after it, and its result."""

    args: tuple
    kwargs: dict
    args_after: tuple
    result: object


@dataclass
class CellRun:
    """What one test cell did on the reference solutions."""

    records: dict = field(default_factory=dict)
    calls: dict = field(default_factory=dict)


@functools.cache
def source_cells(name: str) -> tuple:
    """The cells of ``course_src/<name>.py`` as built into the notebook."""
    path = nbu.COURSE_SRC / f"{name}.py"
    return tuple(nbu.load_build().parse_cells(path.read_text(encoding="utf-8"), path.name))


def defined_functions(source: str) -> set[str]:
    """Names of the functions a cell defines at top level."""
    return {node.name for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}


def reference_namespace(name: str, helpers: tuple[str, ...] = ()) -> dict:
    """A namespace as the reference run has it before the test cells: the setup cell (the first
    code cell), every solution cell, and the read-only cells defining one of ``helpers``."""
    code = [c for c in source_cells(name) if c.cell_type == "code"]
    ns: dict = {"__name__": f"oracle_{name}"}
    exec(compile(code[0].source, f"{name}:setup", "exec"), ns)  # noqa: S102 - our own source
    for cell in code[1:]:
        role = nbu.role(cell)
        if role == "solution" or (role == "readonly" and
                                  defined_functions(cell.source) & set(helpers)):
            exec(compile(cell.source, f"{name}:{cell.id}", "exec"), ns)  # noqa: S102
    return ns


def spy(function, log: list):
    """``function`` logging a :class:`Call` (copies of its arguments) to ``log``."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        before = copy.deepcopy(args)
        result = function(*args, **kwargs)
        log.append(Call(before, copy.deepcopy(kwargs), copy.deepcopy(args), result))
        return result
    return wrapper


@functools.cache
def run_cell(name: str, grade_id: str, spied: tuple[str, ...], helpers: tuple[str, ...] = ()):
    """Execute test cell ``grade_id`` of notebook ``name`` on the reference solutions."""
    ns = reference_namespace(name, helpers)
    run = CellRun(calls={f: [] for f in spied})

    def record(check_id, value, **_):
        assert check_id not in run.records, f"record id {check_id} twice"
        run.records[check_id] = value

    ns["record"] = record
    for function in spied:
        ns[function] = spy(ns[function], run.calls[function])
    cell = next(c for c in source_cells(name) if c.id == grade_id)
    exec(compile(cell.source, f"{name}:{grade_id}", "exec"), ns)  # noqa: S102
    assert run.records, f"{grade_id} recorded nothing"
    return run


def calls(name: str, grade_ids: tuple[str, ...], function: str, minimum: int,
          helpers: tuple[str, ...] = ()) -> list[Call]:
    """The calls of ``function`` made by the given test cells (at least ``minimum`` of them)."""
    found = [c for g in grade_ids for c in run_cell(name, g, (function,), helpers).calls[function]]
    assert len(found) >= minimum, f"{function}: {len(found)} calls < {minimum} in {grade_ids}"
    return found


def hidden_source(name: str, grade_id: str) -> str:
    """The hidden-test region of a test cell (empty if it has none)."""
    source = next(c for c in source_cells(name) if c.id == grade_id).source
    start, end = source.find("### BEGIN HIDDEN TESTS"), source.find("### END HIDDEN TESTS")
    return source[start:end] if start >= 0 else ""


# ---------------------------------------------------------------------------------- the rule
NOTEBOOKS = ("04_memory", "05_architectures", "06_training")


def hidden_cells() -> list[tuple[str, str]]:
    """(notebook, grade_id) of every test cell of notebooks 04-06 with a hidden-test region."""
    return [(name, c.id) for name in NOTEBOOKS for c in source_cells(name)
            if "### BEGIN HIDDEN TESTS" in c.source]


def test_hidden_cells_are_found():
    assert len(hidden_cells()) >= 11


# What computes an expected value in a kernel: library oracles, comparisons, reference helpers.
ORACLE_NAMES = {"assert_value", "assert_array", "expected", "library_rows", "library_inception",
                "library_block", "stack_spec", "support_width", "eval_numerical_gradient",
                "eval_numerical_gradient_array", "rel_error", "ConvNet", "conv_forward_fast",
                "memory.max_batch", "memory.memory_example", "memory.notes_table",
                "arch.out_shape", "arch.param_count", "arch.Conv", "macs", "np.testing",
                "np.allclose"}


def dotted_names(tree) -> set[str]:
    """Every name, attribute and dotted chain (``a.b.c``, ``a.b``) used in ``tree``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            parts, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name):
                parts.append(inner.id)
                chain = list(reversed(parts))
                names.update(".".join(chain[:k]) for k in range(2, len(chain) + 1))
            names.add(node.attr)
    return names


def oracle_problems(source: str) -> list[str]:
    """Expected-value computations in ``source``: assert statements and oracle names."""
    tree = ast.parse(source)
    problems = [f"assert statement at line {n.lineno}" for n in ast.walk(tree)
                if isinstance(n, ast.Assert)]
    return problems + sorted(dotted_names(tree) & ORACLE_NAMES)


def test_oracle_problems_catches_expected_values():
    source = ("got = f(x)\nrecord('a', got)\nassert got == 1\n"
              "assert_value('a', got, memory.max_batch(s, 1))\nn = arch.Conv(1, 3).macs(s)\n")
    assert oracle_problems(source) == ["assert statement at line 3", "arch.Conv",
                                       "assert_value", "macs", "memory.max_batch"]
    assert oracle_problems("record('a', f(memory.totals(spec)['params']))") == []


@pytest.mark.parametrize("name, grade_id", hidden_cells())
def test_hidden_tests_compute_no_expected_value(name, grade_id):
    hidden = hidden_source(name, grade_id)
    assert "record(" in hidden
    assert oracle_problems(hidden) == []


@pytest.mark.parametrize("name, words", [
    ("04_memory", ("def library_rows", "memory.max_batch(", "layer_table(spec)")),
    ("05_architectures", ("def stack_spec", "def support_width", "def library_inception",
                          "def library_block", "arch.lenet()")),
    ("06_training", ("layers.spatial_batchnorm",)),
])
def test_no_solving_helper_in_the_students_kernel(name, words):
    """Helpers that solve an exercise are gone from every cell the student's kernel runs."""
    kernel_code = "\n".join(c.source for c in source_cells(name) if c.cell_type == "code"
                            and nbu.role(c) != "solution")
    assert [w for w in words if w in kernel_code] == []


# ------------------------------------------------------------------------------- 04_memory
def library_rows(input_shape, layers_):
    """(kind, shape, activations, parameters) per tuple layer, from the library's records."""
    shape, rows = tuple(input_shape), []
    for layer in layers_:
        if layer[0] == "conv":
            rec = arch.Conv(*layer[1:])
        elif layer[0] == "pool":
            rec = arch.Pool("max", *layer[1:])
        else:
            rec = arch.FC(layer[1])
            shape = arch.out_shape(arch.Flatten(), shape)
        params = sum(arch.param_count(rec, shape))
        shape = arch.out_shape(rec, shape)
        rows.append((layer[0], tuple(int(s) for s in shape), int(np.prod(shape)), int(params)))
    return rows


def as_rows(rows):
    return [(str(r[0]), tuple(int(s) for s in r[1]), int(r[2]), int(r[3])) for r in rows]


def test_04_calculator_matches_the_library():
    for call in calls("04_memory", ("test_simple_layer_memory", "test_simple_layer_memory_hidden",
                                    "test_memory_example"), "simple_layer_memory", 8):
        assert as_rows(call.result) == library_rows(*call.args), call.args


def test_04_vgg_table_matches_the_library():
    run = run_cell("04_memory", "test_vgg16_table", ())
    table = memory.notes_table(arch.vgg16())  # (label, shape, activations, weights), INPUT first
    assert [(r[1], r[2]) for r in run.records["vgg_rows"]] == [
        (tuple(int(s) for s in row[1]), int(row[2])) for row in table[1:]]
    assert run.records["vgg_total_activations"] == sum(row[2] for row in table)
    assert run.records["vgg_total_params"] == memory.totals(arch.vgg16())["params"]


def test_04_activation_bytes_and_memory_example():
    for call in calls("04_memory", ("test_activation_bytes", "test_activation_bytes_hidden"),
                      "activation_bytes", 8):
        count, dtype = call.args[0], call.args[1]
        nbytes = count * np.dtype(dtype).itemsize * (2 if call.kwargs["with_gradients"] else 1)
        assert call.result == (nbytes, nbytes / 1e6, nbytes / 2**20)
    run = run_cell("04_memory", "test_memory_example", ())
    example = memory.memory_example()
    assert run.records["example_activations"] == example["activations"]
    assert run.records["example_bytes"] == example["train_bytes"]


def test_04_live_activations():
    found = calls("04_memory", ("test_live_activations",), "live_activations", 6)
    for call in found:
        counts, mode = call.args
        pairs = [counts[i] + counts[i + 1] for i in range(len(counts) - 1)]
        assert call.result == (sum(counts) if mode == "train" else max(pairs))
    assert {call.args[1] for call in found} == {"train", "test"}


def test_04_conv_layer_cost_matches_the_library():
    for call in calls("04_memory", ("test_conv_layer_cost",), "conv_layer_cost", 7):
        in_shape, F, size, stride, pad = call.args
        layer = arch.Conv(F, size, stride, pad)
        shape = arch.out_shape(layer, in_shape)
        assert (tuple(call.result[0]), call.result[1], call.result[2]) == (
            shape, int(np.prod(shape)), layer.macs(in_shape))
    # the visible test's inputs are the first layers of the library's specs
    run = run_cell("04_memory", "test_conv_layer_cost", ())
    for name, label in (("vgg16", "VGG-16 3x3/1"), ("zfnet", "ZF Net 7x7/2"),
                        ("alexnet", "AlexNet 11x11/4")):
        conv1 = memory.layer_table(arch.get(name))[1]
        assert run.records[f"first_layer_{label}"] == (tuple(conv1.shape), conv1.activations,
                                                       conv1.macs)


def largest_batch_by_search(activations, params, input_size, budget, dtype="float32",
                            optimizer="sgd"):
    """The largest B with memory_budget-style bytes(B) <= budget, by bisection on B."""
    item, k = np.dtype(dtype).itemsize, memory.optimizer_state(optimizer)

    def fits(batch):
        return item * (batch * (2 * activations + input_size) + params * (2 + k)) <= budget

    low, high = 0, 1
    while fits(high):
        high *= 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low if fits(low) else 0


def test_04_max_batch_size_matches_the_library():
    by_totals = {}
    for name in ("vgg16", "resnet50", "alexnet", "googlenet", "lenet"):
        t = memory.totals(arch.get(name))
        by_totals[(t["activations"], t["params"], t["input"])] = name
    checked_specs = 0
    for call in calls("04_memory", ("test_max_batch_size", "test_max_batch_size_hidden"),
                      "max_batch_size", 9):
        assert call.result == largest_batch_by_search(*call.args, **call.kwargs), call.args
        name = by_totals.get(tuple(call.args[:3]))
        if name is not None:
            checked_specs += 1
            assert call.result == memory.max_batch(arch.get(name), *call.args[3:]), call.args
    assert checked_specs >= 8


# ------------------------------------------------------------------------ 05_architectures
def test_05_lenet_spec_matches_the_library():
    run = run_cell("05_architectures", "test_lenet_spec", ())
    reference = memory.layer_table(arch.lenet())
    assert run.records["lenet_shapes"] == [tuple(int(s) for s in r.shape) for r in reference]
    assert run.records["lenet_params"] == memory.totals(arch.lenet())["params"]
    assert run.records["lenet_macs"] == memory.totals(arch.lenet())["macs"]


def test_05_cumulative_shares():
    run = run_cell("05_architectures", "test_cumulative_shares", ())
    rows = memory.layer_table(arch.googlenet())[1:]
    for got, attribute in zip(run.records["shares_googlenet"], ("activations", "params"),
                              strict=True):
        values = np.array([getattr(r, attribute) for r in rows], dtype=np.float64)
        np.testing.assert_allclose(got, np.cumsum(values) / values.sum(), rtol=1e-12)


def support_width(size, n):
    """Receptive field by walking input positions down the stack (independent of a formula)."""
    support = {0}
    for _ in range(n):
        support = {p + k for p in support for k in range(size)}
    return max(support) - min(support) + 1


def test_05_conv_stack_cost_matches_the_library():
    for call in calls("05_architectures", ("test_conv_stack_cost",), "conv_stack_cost", 7):
        C, size, n, H, W = call.args
        spec = arch.Spec("stack", (C, H, W),
                         (arch.Conv(C, size, pad=(size - 1) // 2, bias=False),) * n)
        t = memory.totals(spec)
        assert tuple(call.result) == (t["weights"], t["macs"], support_width(size, n)), call.args


def library_inception(input_shape, channels, bottleneck):
    """(MACs, output depth) of one inception module built from the library's records."""
    if bottleneck:
        module = arch.inception_module(*channels, bn=False)
    else:
        c1, c3, c5 = channels[0], channels[2], channels[4]
        module = arch.Inception(((arch.Conv(c1, 1),), (arch.Conv(c3, 3, pad=1),),
                                 (arch.Conv(c5, 5, pad=2),), (arch.Pool("max", 3, 1, 1),)))
    spec = arch.Spec("module", tuple(input_shape), (module,))
    return memory.totals(spec)["macs"], spec.out_shape()[0]


def test_05_inception_macs_matches_the_library():
    found = calls("05_architectures", ("test_inception_macs",), "inception_macs", 7)
    for call in found:
        assert tuple(call.result) == library_inception(
            call.args[0], call.args[1:], call.kwargs["bottleneck"]), call.args
    assert {call.kwargs["bottleneck"] for call in found} == {False, True}


RESIDUAL_HELPERS = ("residual_case",)  # the seeded inputs of the residual tests


def library_block(x, w1, b1, w2, b2):
    """The basic residual block run by the library's ConvNet from a Residual spec."""
    C = x.shape[1]
    body = (arch.Conv(C, 3, pad=1), arch.ReLU(), arch.Conv(C, 3, pad=1))
    model = ConvNet(arch.Spec("block", x.shape[1:], (arch.Residual(body),)), dtype=np.float64)
    model.params.update(W1=w1, b1=b1, W2=w2, b2=b2)
    return model.forward(x, "train")[0]


def test_05_residual_forward_matches_the_library():
    for call in calls("05_architectures", ("test_residual_forward", "test_residual_hidden"),
                      "residual_block_forward", 4, helpers=RESIDUAL_HELPERS):
        np.testing.assert_allclose(call.result[0], library_block(*call.args), rtol=1e-10,
                                   atol=1e-12)


def test_05_residual_backward_matches_numerical_gradients():
    run = run_cell("05_architectures", "test_residual_hidden",
                   ("residual_block_forward", "residual_block_backward"), RESIDUAL_HELPERS)
    forwards, backwards = (run.calls["residual_block_forward"],
                           run.calls["residual_block_backward"])
    assert len(forwards) == len(backwards) == 2
    for fwd, bwd in zip(forwards, backwards, strict=True):
        inputs, dout = fwd.args, bwd.args[0]
        for i, got in enumerate(bwd.result):
            numeric = eval_numerical_gradient_array(lambda v, i=i, inputs=inputs: library_block(
                *[v if j == i else a for j, a in enumerate(inputs)]), inputs[i].copy(), dout)
            assert rel_error(got, numeric) < 1e-7, (i, rel_error(got, numeric))


# ----------------------------------------------------------------------------- 06_training
def test_06_sanity_checks_hidden():
    (call,) = calls("06_training", ("test_sanity_checks_hidden",), "sanity_checks", 1)
    model, X, y = call.args
    result = call.result
    assert math.isclose(result["loss"], model.loss(X, y)[0], rel_tol=1e-12)
    assert math.isclose(result["expected_loss"], math.log(model.params["b3"].shape[0]))
    assert sorted(result["rel_errors"]) == sorted(model.params)
    assert max(result["rel_errors"].values()) < 1e-4


def test_06_first_layer_maps_match_the_naive_layers():
    (call,) = calls("06_training", ("test_first_layer_maps",), "first_layer_maps", 1)
    model, x = call.args
    pad = (model.params["W1"].shape[2] - 1) // 2
    out = layers.conv_forward_naive(x, model.params["W1"], model.params["b1"],
                                    {"stride": 1, "pad": pad})[0]
    np.testing.assert_allclose(call.result, np.maximum(out, 0), rtol=1e-10, atol=1e-12)


def test_06_spatial_batchnorm_forward_matches_the_library():
    found = calls("06_training", ("test_spatial_batchnorm_forward",
                                  "test_spatial_batchnorm_backward",
                                  "test_spatial_batchnorm_hidden"), "spatial_batchnorm_forward", 5)
    for call in found:
        x, gamma, beta, bn_param = call.args
        out, _ = layers.spatial_batchnorm_forward(x, gamma, beta, bn_param)  # updates bn_param
        tol = 1e-4 if x.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(call.result[0], out, rtol=tol, atol=tol)
        assert call.result[0].dtype == x.dtype
        for key in ("running_mean", "running_var"):
            if bn_param["mode"] == "train":
                np.testing.assert_allclose(call.args_after[3][key], bn_param[key], rtol=1e-6)
    assert {call.args[3]["mode"] for call in found} == {"train", "test"}


def test_06_spatial_batchnorm_backward_matches_the_library():
    run = run_cell("06_training", "test_spatial_batchnorm_hidden",
                   ("spatial_batchnorm_forward", "spatial_batchnorm_backward"))
    forwards, backwards = (run.calls["spatial_batchnorm_forward"],
                           run.calls["spatial_batchnorm_backward"])
    assert len(forwards) == len(backwards) == 2
    for fwd, bwd in zip(forwards, backwards, strict=True):
        x, gamma, beta, bn_param = fwd.args
        _, cache = layers.spatial_batchnorm_forward(x, gamma, beta, dict(bn_param))
        expected = layers.spatial_batchnorm_backward(bwd.args[0], cache)
        tol = 1e-3 if x.dtype == np.float32 else 1e-9
        for got, exp in zip(bwd.result, expected, strict=True):
            np.testing.assert_allclose(got, exp, rtol=tol, atol=tol)
