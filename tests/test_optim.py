"""Update rules against updates computed here, step by step, from their formulas."""

import numpy as np
import pytest

from cs231n_lib import optim

W0 = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]])
GRADS = [np.array([[0.1, -0.2, 0.3], [0.4, -0.5, 0.6]]),
         np.array([[-0.3, 0.1, 0.0], [0.2, 0.2, -0.1]]),
         np.array([[0.05, 0.05, -0.4], [0.0, 1.0, 0.3]])]


def run(rule, config):
    """Apply ``rule`` for the three gradients in GRADS; return the weights after each step."""
    w, out = W0, []
    for dw in GRADS:
        w, config = rule(w, dw, config)
        out.append(w)
    return out, config


def test_sgd():
    out, _ = run(optim.sgd, {"learning_rate": 0.1})
    expected = W0 - 0.1 * GRADS[0]
    np.testing.assert_allclose(out[0], expected, rtol=1e-12)
    np.testing.assert_allclose(out[2], W0 - 0.1 * (GRADS[0] + GRADS[1] + GRADS[2]), rtol=1e-12)


def test_sgd_momentum():
    lr, mu = 0.1, 0.8
    out, config = run(optim.sgd_momentum, {"learning_rate": lr, "momentum": mu})
    v1 = -lr * GRADS[0]
    v2 = mu * v1 - lr * GRADS[1]
    v3 = mu * v2 - lr * GRADS[2]
    np.testing.assert_allclose(out[0], W0 + v1, rtol=1e-12)
    np.testing.assert_allclose(out[1], W0 + v1 + v2, rtol=1e-12)
    np.testing.assert_allclose(out[2], W0 + v1 + v2 + v3, rtol=1e-12)
    np.testing.assert_allclose(config["velocity"], v3, rtol=1e-12)


def test_adagrad():
    lr, eps = 0.5, 1e-8
    out, config = run(optim.adagrad, {"learning_rate": lr})
    w, cache = W0.copy(), np.zeros_like(W0)
    for dw, got in zip(GRADS, out, strict=True):
        cache = cache + dw**2
        w = w - lr * dw / (np.sqrt(cache) + eps)
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(config["cache"], sum(g**2 for g in GRADS), rtol=1e-12)


def test_rmsprop():
    lr, rho, eps = 1e-2, 0.9, 1e-8
    out, config = run(optim.rmsprop, {"learning_rate": lr, "decay_rate": rho})
    w, cache = W0.copy(), np.zeros_like(W0)
    for dw, got in zip(GRADS, out, strict=True):
        cache = rho * cache + (1 - rho) * dw**2
        w = w - lr * dw / (np.sqrt(cache) + eps)
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(config["cache"], cache, rtol=1e-12)


def test_adam_matches_formula_with_t_incremented_first():
    lr, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    out, config = run(optim.adam, {"learning_rate": lr})
    w, m, v = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    for t, (dw, got) in enumerate(zip(GRADS, out, strict=True), start=1):
        m = b1 * m + (1 - b1) * dw
        v = b2 * v + (1 - b2) * dw**2
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        np.testing.assert_allclose(got, w, rtol=1e-12, atol=1e-15)
    assert config["t"] == 3
    np.testing.assert_allclose(config["m"], m, rtol=1e-12)
    np.testing.assert_allclose(config["v"], v, rtol=1e-12)


def test_adam_first_step_moves_each_weight_by_learning_rate():
    """With bias correction at t=1, m_hat = dw and v_hat = dw**2: each step is lr * sign(dw)."""
    dw = np.array([3.0, -0.02, 7e-3])
    next_w, config = optim.adam(np.zeros(3), dw, {"learning_rate": 0.1})
    np.testing.assert_allclose(next_w, -0.1 * np.sign(dw), rtol=1e-5)
    assert config["t"] == 1


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_defaults_inputs_untouched_dtype_kept(name):
    rule = optim.get_update_rule(name)
    w = W0.astype(np.float32)
    dw = GRADS[0].astype(np.float32)
    w_copy, dw_copy = w.copy(), dw.copy()
    config = {}
    next_w, returned = rule(w, dw, config)
    assert returned is config, "config is the optimizer's state: updated and returned"
    assert next_w.dtype == np.float32
    assert next_w is not w
    np.testing.assert_array_equal(w, w_copy)
    np.testing.assert_array_equal(dw, dw_copy)
    expected_lr = 1e-3 if name == "adam" else 1e-2
    assert config["learning_rate"] == expected_lr
    assert not np.allclose(next_w, w)


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_unknown_config_key_rejected(name):
    with pytest.raises(ValueError, match="learnin_rate"):
        optim.UPDATE_RULES[name](W0, GRADS[0], {"learnin_rate": 1e-3})


@pytest.mark.parametrize("config", [{"learning_rate": -1.0}, {"learning_rate": "0.1"},
                                    {"momentum": 1.0}, {"momentum": True}])
def test_bad_hyperparameter_values_rejected(config):
    with pytest.raises(ValueError, match=next(iter(config))):
        optim.sgd_momentum(W0, GRADS[0], config)


def test_shape_mismatches_rejected():
    with pytest.raises(ValueError, match="shape"):
        optim.sgd(W0, GRADS[0][:, :2])
    _, config = optim.adam(W0, GRADS[0])
    with pytest.raises(ValueError, match="another parameter"):
        optim.adam(W0[:1], GRADS[0][:1], config)


def test_unknown_update_rule_name():
    with pytest.raises(ValueError, match="'nesterov'"):
        optim.get_update_rule("nesterov")


def _steps(rule, w, grads):
    config, out = {}, []
    for dw in grads:
        w, config = rule(w, dw, config)
        out.append((w, {k: np.copy(v) for k, v in config.items()}))
    return out


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float64, np.float32),
                                    (np.float32, np.int64)])
def test_chunks_and_threads_give_the_same_numbers(name, dtypes, monkeypatch):
    """A large parameter runs in cache-sized chunks split across threads: element for element,
    the same operations as on the whole array at once (small parameters do that)."""
    from cs231n_lib import parallel

    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 30)).astype(dtypes[0])[:, ::2]  # not contiguous
    grads = [(rng.standard_normal(w.shape) * 4).astype(dtypes[1]) for _ in range(3)]
    rule = optim.get_update_rule(name)
    whole = _steps(rule, w, grads)
    seen = []
    monkeypatch.setattr(optim, "CHUNK_BYTES", 64)  # chunks of 8 or 16 elements
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    real_chunk_map = optim._chunk_map
    monkeypatch.setattr(optim, "_chunk_map", lambda batch, x, fn: seen.append(
        len(batch.slices)) or real_chunk_map(batch, x, fn))
    monkeypatch.setattr("cs231n_lib.layers.CHUNK_BYTES", 64)
    parallel.set_num_threads(2)
    try:
        chunked = _steps(rule, w, grads)
    finally:
        parallel.set_num_threads(None)
    assert seen == [2, 2, 2]  # every step ran in two threads
    for (w1, c1), (w2, c2) in zip(whole, chunked, strict=True):
        assert w1.dtype == w2.dtype and w1.shape == w2.shape == w.shape
        np.testing.assert_array_equal(w1, w2)
        assert c1.keys() == c2.keys()
        for key in c1:
            np.testing.assert_array_equal(c1[key], c2[key])


@pytest.mark.parametrize("name", sorted(optim.UPDATE_RULES))
def test_a_scalar_parameter_is_updated_like_a_one_element_one(name):
    rule = optim.get_update_rule(name)
    w, dw = np.array(0.5, np.float32), np.array(-0.25, np.float32)
    next_w, config = rule(w, dw, {})
    one, _ = rule(w.reshape(1), dw.reshape(1), {})
    assert next_w.shape == () and next_w.dtype == np.float32
    np.testing.assert_array_equal(next_w, one[0])
    assert w == np.float32(0.5)  # untouched
