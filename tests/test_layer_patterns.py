"""Layer patterns and sizing rules (05 part 7) and the activations ConvNet runs (05 part 8).

The reference solution of ``layer_rules`` is checked against an independent reading of the
notes' rules (a state machine for the pattern, output shapes for "same" convolutions, repeated
halving for the input); the numbers part 7 prints are checked against closed formulas; the
sigmoid and tanh layers that LeNet's training needs are checked against numerical gradients.
"""

from __future__ import annotations

import contextlib
import io
import re

import numpy as np
import pytest
from test_notebook_oracles_04_06 import reference_namespace, source_cells, spy, support_width

from cs231n_lib import architectures as arch
from cs231n_lib.classifiers.convnet import ConvNet, activation_backward, activation_forward
from cs231n_lib.gradient_check import eval_numerical_gradient, rel_error

NAME = "05_architectures"
SKIPPED = (arch.BatchNorm, arch.Dropout, arch.LRN, arch.Flatten)


# ------------------------------------------------------------------------------- the oracle
def tokens(spec):
    """The pattern's vocabulary for each top-level layer: CONV, RELU, POOL, FC or OTHER."""
    kinds = ((arch.Conv, "CONV"), (arch.Activation, "RELU"), (arch.Pool, "POOL"),
             (arch.GlobalAvgPool, "POOL"), (arch.FC, "FC"))
    out = []
    for layer in spec.layers:
        if isinstance(layer, SKIPPED):
            continue
        out.append(next((word for cls, word in kinds if isinstance(layer, cls)), "OTHER"))
    return out


def follows_pattern(words):
    """INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC, read left to right."""
    i, features = 0, True
    while i < len(words):
        pair = words[i:i + 2]
        if features and (words[i] == "POOL" or pair == ["CONV", "RELU"]):
            i += 1 if words[i] == "POOL" else 2
            continue
        features = False  # from here on only FC -> RELU blocks and the final FC
        if words[i] != "FC":
            return False
        if i == len(words) - 1:
            return True
        if pair != ["FC", "RELU"]:
            return False
        i += 2
    return False  # no final FC


def halvings(n):
    """How many times n halves exactly."""
    count = 0
    while n > 0 and n % 2 == 0:
        n, count = n // 2, count + 1
    return count


def keeps_size(conv):
    """True when the conv keeps a 64x64 input's height and width (stride 1, same padding)."""
    try:
        return conv.out_shape((1024, 64, 64))[1:] == (64, 64) and conv.stride == 1
    except ValueError:  # the stride does not tile 64
        return False


def rules_oracle(spec, min_halvings):
    convs = [layer for layer in spec.layers if isinstance(layer, arch.Conv)]
    pools = [layer for layer in spec.layers if isinstance(layer, arch.Pool)]
    return {
        "pattern": follows_pattern(tokens(spec)),
        "small_filters": not any(conv.size > 5 for conv in convs),
        "same_conv": all(keeps_size(conv) for conv in convs),
        "input_halvable": min(halvings(s) for s in spec.input[1:]) >= min_halvings,
        "small_pools": not any(pool.size > 3 for pool in pools),
    }


def small_spec(*layers, input=(3, 32, 32)):
    return arch.Spec("case", input, tuple(layers))


@pytest.mark.parametrize("layers, expected", [
    ((arch.Conv(4, 3), arch.ReLU(), arch.Pool("max", 2), arch.FC(10)), True),
    ((arch.Pool("max", 2), arch.Pool("max", 2), arch.FC(10)), True),       # N = 0 twice
    ((arch.FC(10), arch.ReLU(), arch.FC(10)), True),                        # M = 0
    ((arch.Conv(4, 3), arch.ReLU(), arch.FC(10), arch.ReLU()), False),      # no final FC
    ((arch.Conv(4, 3), arch.Pool("max", 2), arch.FC(10)), False),           # CONV without RELU
    ((arch.Conv(4, 3), arch.ReLU(), arch.FC(10), arch.Pool("max", 2), arch.FC(10)), False),
    ((arch.Residual((arch.Conv(3, 3, pad=1),)), arch.FC(10)), False),      # a block
    ((arch.Conv(4, 3), arch.BatchNorm(), arch.ReLU(), arch.Flatten(), arch.Dropout(),
      arch.FC(10)), True),                                                  # skipped records
])
def test_pattern_oracle(layers, expected):
    assert follows_pattern(tokens(small_spec(*layers))) is expected


def test_sizing_oracle_catches_each_rule():
    ok = small_spec(arch.Conv(4, 3, pad=1), arch.ReLU(), arch.Pool("max", 2), arch.FC(10))
    assert all(rules_oracle(ok, 4).values())
    broken = {
        "small_filters": small_spec(arch.Conv(4, 7, pad=3), arch.ReLU(), arch.FC(10)),
        "same_conv": small_spec(arch.Conv(4, 3, stride=2, pad=1), arch.ReLU(), arch.FC(10)),
        "input_halvable": small_spec(arch.FC(10), input=(3, 24, 32)),       # 24 = 8 x 3
        "small_pools": small_spec(arch.Pool("avg", 4), arch.FC(10)),
    }
    for rule, spec in broken.items():
        verdict = rules_oracle(spec, 4)
        assert [r for r, held in verdict.items() if not held] == [rule], rule
    assert not rules_oracle(small_spec(arch.Conv(4, 2, pad=0), arch.ReLU(), arch.FC(10)),
                            4)["same_conv"]                                  # even filter


# ------------------------------------------------------------------------ the notebook
def part7_namespace():
    """The reference namespace with part 7's read-only constants (SIZING_RULES, MIN_HALVINGS)."""
    ns = reference_namespace(NAME)
    cell = next(c for c in source_cells(NAME) if c.cell_type == "code"
                and c.source.startswith("SIZING_RULES = "))
    exec(compile(cell.source, f"{NAME}:{cell.id}", "exec"), ns)  # noqa: S102
    return ns


def test_05_layer_rules_matches_the_oracle():
    """Every call of layer_rules in its test cell (hidden part included) agrees with the oracle."""
    ns, found, records = part7_namespace(), [], {}
    ns["layer_rules"] = spy(ns["layer_rules"], found)
    ns["record"] = lambda check_id, value, **_: records.setdefault(check_id, value)
    cell = next(c for c in source_cells(NAME) if c.id == "test_layer_rules")
    exec(compile(cell.source, f"{NAME}:{cell.id}", "exec"), ns)  # noqa: S102
    assert len(found) == len(records) >= 11
    min_halvings = ns["MIN_HALVINGS"]
    names = set()
    for call in found:
        spec = call.args[0]
        names.add(spec.name)
        assert dict(call.result) == rules_oracle(spec, min_halvings), spec.name
    # the hidden tests reach residual and inception blocks, strided and unpadded convs
    assert {"resnet18", "googlenet", "alexnet", "all_conv_net"} <= names


def part7_output(marker):
    """What the read-only code cell of 05 containing ``marker`` prints (on the solutions)."""
    ns = part7_namespace()
    cell = next(c for c in source_cells(NAME) if c.cell_type == "code" and marker in c.source)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(cell.source, f"{NAME}:{cell.id}", "exec"), ns)  # noqa: S102
    return buffer.getvalue().splitlines()


def numbers(line):
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", line)]


def test_05_small_filter_arithmetic():
    """Three 3x3 vs one 7x7 at C=64 on 56x56: 27 C^2 vs 49 C^2 weights, MACs, field, memory."""
    C, H = 64, 56
    lines = part7_output("small_vs_large = {")
    assert len(lines) == 2
    for line, (size, n) in zip(lines, ((3, 3), (7, 1)), strict=True):
        field = support_width(size, n)
        weights = n * size * size * C * C
        assert numbers(line) == [size, size, field, field, weights, n * size * size, 2,
                                 H * H * weights, n, n * C * H * H], line


def test_05_pool_loss_arithmetic():
    lines = part7_output("for size, stride in ((2, 2)")
    for line, (size, stride) in zip(lines, ((2, 2), (3, 2), (4, 4), (5, 5)), strict=True):
        out = (224 - size) // stride + 1
        kept = out * out / 224**2
        assert f"224x224 -> {out}x{out}" in line
        assert f"keeps {kept:.2%} (discards {1 - kept:.2%}), {size * size} inputs" in line


def test_05_rules_table_and_halvings():
    lines = part7_output("halves exactly")
    min_halvings = part7_namespace()["MIN_HALVINGS"]
    rows = {line.split()[0]: line.split()[2:] for line in lines[1:] if line.strip()
            and not line.strip()[0].isdigit()}
    assert rows["vgg16"] == ["follows"] * 5
    for name, words in rows.items():
        expected = rules_oracle(arch.get(name), min_halvings)
        assert words == ["follows" if held else "BREAKS" for held in expected.values()], name
    for line in lines:
        if "halves exactly" in line:
            size = int(line.split(":")[0])
            assert f"halves exactly {halvings(size)} times" in line


# ------------------------------------------------------------- sigmoid and tanh in ConvNet
@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
def test_convnet_runs_sigmoid_and_tanh(fn):
    """A small net with the activation passes a float64 gradient check; infer == forward."""
    spec = arch.Spec("t", (1, 8, 8), (
        arch.Conv(3, 3, pad=1), arch.Activation(fn, inplace=False), arch.Pool("avg", 2),
        arch.Flatten(), arch.FC(5), arch.Activation(fn), arch.FC(3)))
    model = ConvNet(spec, dtype=np.float64, seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((4, 1, 8, 8)), rng.integers(0, 3, size=4)
    _, grads = model.loss(X, y)
    for key, value in model.params.items():
        num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], value)
        assert rel_error(grads[key], num) < 1e-7, key
    # the in-place activation after FC(5) takes the inference path's in-place branch
    np.testing.assert_allclose(model.loss(X), model.forward(X, "test")[0], rtol=1e-12)


def test_activation_layers_match_their_formulas():
    x = np.array([-800.0, -3.0, 0.0, 2.0, 800.0])
    with np.errstate(all="raise"):  # no overflow for large inputs
        s, cache = activation_forward(x, "sigmoid")
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.exp(3.0)), 0.5, 1 / (1 + np.exp(-2.0)), 1.0],
                               rtol=1e-12, atol=1e-30)
    np.testing.assert_allclose(activation_backward(np.ones_like(x), cache, "sigmoid"),
                               s * (1 - s), rtol=1e-12)
    t, cache = activation_forward(x, "tanh")
    np.testing.assert_allclose(activation_backward(2 * np.ones_like(x), cache, "tanh"),
                               2 / np.cosh(np.clip(x, -50, 50)) ** 2, rtol=1e-12, atol=1e-30)
    assert x[0] == -800.0  # the input is not overwritten
    for bad in (activation_forward, lambda v, fn: activation_backward(v, v, fn)):
        with pytest.raises(ValueError, match="fn='softplus' must be"):
            bad(x, "softplus")
