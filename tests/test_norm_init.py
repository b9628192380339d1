"""Notebook 6, parts 5, 7 and 8: LRN (library), batch and group normalisation written by the
student (oracles of the reference solutions, rules), and the initialisation experiments.

The group-norm oracles run the test cells on the reference solutions (as
``test_notebook_oracles_04_06`` does) and compare every logged call with an independent
computation: the library's vanilla batch normalisation applied to each (image, group) as one
feature, then the per-channel scale and shift.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import test_notebook_oracles_04_06 as oracles
from test_rules import found, messages

from cs231n_lib import layers
from cs231n_lib.normalization import ALEXNET_LRN, lrn_denominator, lrn_forward

matplotlib.use("Agg")
NAME = "06_training"
GN_CELLS = ("test_spatial_groupnorm_forward", "test_spatial_groupnorm_backward",
            "test_spatial_groupnorm_hidden")


# ------------------------------------------------------------------------------------ LRN
def lrn_loops(x, size, k, alpha, beta):
    """LRN by the paper's formula, one channel window at a time."""
    out = np.empty_like(x, dtype=np.float64)
    C, half = x.shape[1], size // 2
    for c in range(C):
        window = x[:, max(0, c - half):min(C, c + half + 1)]
        out[:, c] = x[:, c] / (k + alpha * np.sum(window ** 2, axis=1)) ** beta
    return out


@pytest.mark.parametrize("size, k, alpha, beta", [(5, 2.0, 1e-4, 0.75), (3, 1.0, 0.5, 0.5),
                                                   (1, 0.0, 1.0, 1.0), (7, 2.0, 1e-2, 0.75)])
def test_lrn_matches_the_formula(size, k, alpha, beta):
    x = 10 * np.random.default_rng(size).standard_normal((2, 6, 3, 4))
    np.testing.assert_allclose(lrn_forward(x, size, k, alpha, beta),
                               lrn_loops(x, size, k, alpha, beta), rtol=1e-12)


def test_lrn_by_hand_on_one_pixel():
    a = np.array([3.0, 4.0])[None, :, None, None]
    # size 3: both channels see both squares, 9 + 16 = 25; (1 + 0.04 * 25) ** 0.5 = sqrt(2)
    np.testing.assert_allclose(lrn_forward(a, 3, 1.0, 0.04, 0.5).ravel(),
                               [3 / math.sqrt(2), 4 / math.sqrt(2)], rtol=1e-12)
    assert lrn_denominator(a, 1, 1.0, 1.0, 1.0).ravel().tolist() == [10.0, 17.0]


def test_lrn_keeps_float32_and_the_input():
    x = np.random.default_rng(0).standard_normal((1, 5, 2, 2)).astype(np.float32)
    before = x.copy()
    assert lrn_forward(x).dtype == np.float32
    np.testing.assert_array_equal(x, before)


def test_lrn_is_nearly_a_constant_scale_for_small_activations():
    """The notebook's claim: for activations of order 1 LRN is about a division by k^beta."""
    x = np.random.default_rng(1).uniform(-3, 3, (4, 16, 5, 5))
    ratio = lrn_forward(x, **ALEXNET_LRN) / (x / ALEXNET_LRN["k"] ** ALEXNET_LRN["beta"])
    assert 0.99 < ratio.min() and ratio.max() <= 1.0
    big = lrn_forward(255 * x, **ALEXNET_LRN) / (255 * x / 2 ** 0.75)
    assert big.min() < 0.5  # at AlexNet's pixel scale it suppresses strongly


@pytest.mark.parametrize("kwargs, message", [
    ({"size": 4}, "size=4 must be an odd positive integer"),
    ({"size": 0}, "size=0"), ({"size": True}, "size=True"), ({"size": 2.0}, "size=2.0"),
    ({"alpha": -1.0}, "alpha=-1.0 must be a real number >= 0"),
    ({"beta": float("nan")}, "beta=nan"),
    ({"k": 0.0, "alpha": 0.0}, "denominator at 0"),
])
def test_lrn_rejects_bad_constants(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrn_forward(np.ones((1, 3, 2, 2)), **kwargs)


def test_lrn_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"shape \(3, 2\); LRN needs \(N, C, H, W\)"):
        lrn_forward(np.ones((3, 2)))


# ----------------------------------------------------------------------- group norm oracle
def library_groupnorm(x, gamma, beta, G, eps=1e-5):
    """(out, bn_cache): each (image, group) is one feature of layers.batchnorm_forward."""
    N, C, H, W = x.shape
    rows = x.reshape(N * G, -1).T  # (C/G*H*W, N*G): one column per (image, group)
    x_hat, cache = layers.batchnorm_forward(rows, np.ones(N * G), np.zeros(N * G),
                                            {"mode": "train", "eps": eps})
    x_hat = x_hat.T.reshape(x.shape)
    return gamma[:, None, None] * x_hat + beta[:, None, None], (cache, x_hat, gamma)


def library_groupnorm_backward(dout, cache, G):
    bn_cache, x_hat, gamma = cache
    N = dout.shape[0]
    d_rows = (dout * gamma[:, None, None]).reshape(N * G, -1).T
    dx = layers.batchnorm_backward(d_rows, bn_cache)[0].T.reshape(dout.shape)
    return dx, (dout * x_hat).sum(axis=(0, 2, 3)), dout.sum(axis=(0, 2, 3))


def group_of(call):
    """G of a logged spatial_groupnorm_forward call (positional or keyword)."""
    return call.args[3] if len(call.args) > 3 else call.kwargs["G"]


def test_groupnorm_oracle_agrees_with_numerical_gradients():
    rng = np.random.default_rng(3)
    x, dout = rng.standard_normal((2, 4, 2, 3)), rng.standard_normal((2, 4, 2, 3))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    _, cache = library_groupnorm(x, gamma, beta, 2)
    dx = library_groupnorm_backward(dout, cache, 2)[0]
    numeric = oracles.eval_numerical_gradient_array(
        lambda v: library_groupnorm(v, gamma, beta, 2)[0], x.copy(), dout)
    assert oracles.rel_error(dx, numeric) < 1e-7


def test_06_groupnorm_forward_matches_the_oracle():
    found_calls = [c for c in oracles.calls(NAME, GN_CELLS, "spatial_groupnorm_forward", 6)
                   if c.result is not None]
    groups = set()
    for call in found_calls:
        x, gamma, beta = call.args[:3]
        G = group_of(call)
        groups.add((x.shape[1], G))
        expected, _ = library_groupnorm(x, gamma, beta, G)
        tol = 1e-4 if x.dtype == np.float32 else 1e-10
        np.testing.assert_allclose(call.result[0], expected, rtol=tol, atol=tol)
        assert call.result[0].dtype == x.dtype
    assert {(C, G) for C, G in groups if G in (1, C)}, "the tests cover G = 1 or G = C"


def test_06_groupnorm_backward_matches_the_oracle():
    run = oracles.run_cell(NAME, "test_spatial_groupnorm_hidden",
                           ("spatial_groupnorm_forward", "spatial_groupnorm_backward"))
    forwards, backwards = (run.calls["spatial_groupnorm_forward"],
                           run.calls["spatial_groupnorm_backward"])
    assert len(forwards) == len(backwards) == 3
    for fwd, bwd in zip(forwards, backwards, strict=True):
        x, gamma, beta = fwd.args[:3]
        G = group_of(fwd)
        _, cache = library_groupnorm(x, gamma, beta, G)
        expected = library_groupnorm_backward(bwd.args[0], cache, G)
        tol = 1e-3 if x.dtype == np.float32 else 1e-9
        for got, exp in zip(bwd.result, expected, strict=True):
            np.testing.assert_allclose(got, exp, rtol=tol, atol=tol)
            assert got.dtype == x.dtype


def test_06_groupnorm_rejects_indivisible_groups():
    ns = oracles.reference_namespace(NAME)
    with pytest.raises(ValueError, match="C=6 .*G=4"):
        ns["spatial_groupnorm_forward"](np.ones((1, 6, 2, 2)), np.ones(6), np.zeros(6), 4)


def test_06_spatial_batchnorm_is_written_out_not_delegated():
    """Part 5's reference solution computes batch norm itself, and the rule enforces it."""
    cell = next(c for c in oracles.source_cells(NAME) if c.id == "spatial_batchnorm_forward")
    assert "layers." not in cell.source and "batchnorm_forward(" not in cell.source.replace(
        "def spatial_batchnorm_forward(", "")
    delegating = ("from cs231n_lib import layers\n"
                  "def spatial_batchnorm_forward(x, gamma, beta, bn_param):\n"
                  "    N, C, H, W = x.shape\n"
                  "    out, cache = layers.batchnorm_forward(x.transpose(0, 2, 3, 1).reshape("
                  "-1, C), gamma, beta, bn_param)\n"
                  "    return out.reshape(N, H, W, C).transpose(0, 3, 1, 2), cache\n"
                  "def spatial_batchnorm_backward(dout, cache):\n"
                  "    return layers.batchnorm_backward(dout, cache)\n")
    vs = found(NAME, {"spatial_batchnorm_forward": delegating})
    assert vs and {v.part for v in vs} == {5}, messages(vs)


@pytest.mark.parametrize("code", [
    "from cs231n_lib.layers import batchnorm_forward\n"
    "def spatial_groupnorm_forward(x, gamma, beta, G, eps=1e-5):\n"
    "    return batchnorm_forward(x, gamma, beta, {'mode': 'train'})\n",
    "import cs231n_lib.normalization as nrm\n"
    "def spatial_groupnorm_forward(x, gamma, beta, G, eps=1e-5):\n"
    "    return nrm.lrn_forward(x), None\n",
])
def test_06_groupnorm_may_not_use_the_library(code):
    vs = found(NAME, {"spatial_groupnorm_forward": code})
    assert vs and {v.part for v in vs} == {7}, messages(vs)


def test_06_groupnorm_reference_passes_the_rules():
    assert found(NAME) == []


def test_06_no_library_normalisation_in_the_students_kernel():
    kernel = "\n".join(c.source for c in oracles.source_cells(NAME)
                       if c.cell_type == "code" and oracles.nbu.role(c) != "solution")
    assert [w for w in ("layers.batchnorm", "layers.spatial_batchnorm") if w in kernel] == []


# ------------------------------------------------------------------------- initialisation
def readonly_cell(marker: str):
    """The source of the read-only code cell of notebook 6 containing ``marker``."""
    (cell,) = [c for c in oracles.source_cells(NAME) if c.cell_type == "code"
               and oracles.nbu.role(c) == "readonly" and marker in c.source]
    return cell.source


@pytest.fixture(scope="module")
def init_namespace():
    ns = {"np": np, "plt": matplotlib.pyplot, "layers": layers}
    exec(compile(readonly_cell("init_scales ="), "init", "exec"), ns)  # noqa: S102
    matplotlib.pyplot.close("all")
    return ns


def test_activation_stds_follow_the_theory(init_namespace):
    """Per layer the std is multiplied by sqrt(n Var[w] / 2) (the reference answer's (b))."""
    ns = init_namespace
    for label, std in ns["init_scales"].items():
        stds = np.array(ns["layer_stds"][label])
        factor = math.sqrt(ns["WIDTH"] * std ** 2 / 2)
        per_layer = stds[1:] / stds[:-1]
        assert np.exp(np.mean(np.log(per_layer))) == pytest.approx(factor, rel=0.1), label
    he = ns["layer_stds"]["He sqrt(2/fan_in)"]
    assert max(he) / min(he) < 1.5
    assert ns["layer_stds"]["small (0.01)"][-1] < 1e-8
    assert ns["layer_stds"]["large (0.2)"][-1] > 1e3


@pytest.mark.slow
def test_small_init_does_not_train_and_he_does(monkeypatch):
    """The notebook's training comparison under the graded budget (the one the grader runs)."""
    monkeypatch.setenv("CS231N_GRADING", "1")
    ns: dict = {"__name__": "init_oracle"}
    setup = next(c for c in oracles.source_cells(NAME) if c.cell_type == "code").source
    exec(compile(setup, "setup", "exec"), ns)  # noqa: S102
    ns["data"] = ns["prepare_data"]("fashion_small", num_training=ns["NUM_TRAIN"])
    exec(compile(readonly_cell("def deep_mlp"), "deep_mlp", "exec"), ns)  # noqa: S102
    matplotlib.pyplot.close("all")
    small, he = (np.asarray(ns["init_runs"][k].loss_history) for k in ("std 0.01", "He"))
    assert np.abs(small - math.log(10)).max() < 0.01  # stuck at ln 10
    assert he[-5:].mean() < 0.85 * he[:5].mean()
    assert ns["init_runs"]["He"].best_val_acc > 2 * ns["init_runs"]["std 0.01"].best_val_acc
