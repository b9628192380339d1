"""First-order update rules, all with one signature (CS231n's contract).

``update(w, dw, config=None) -> (next_w, config)``

* ``w``, ``dw``: arrays of the same shape (a parameter and its gradient). Neither is modified:
  ``next_w`` is a new array with ``w``'s dtype.
* ``config``: a dict of hyperparameters *and* optimizer state (velocity, caches, moments, step
  count). It is the one argument that is updated: missing hyperparameters are filled with their
  defaults and the state entries are replaced by their next values, in the dict passed in, which
  is also returned. Pass the returned dict to the next call for the same parameter. An unknown key
  (a misspelt hyperparameter) raises ValueError instead of being ignored.

Memory: SGD keeps no state; momentum, Adagrad and RMSProp keep one extra copy of each parameter;
Adam keeps two (the notes' "multiply by at least 3" for parameters + gradients + state).
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from .shapes import check_keys

# Hyperparameter defaults (CS231n assignment 2), then the state keys each rule keeps in config.
SGD_DEFAULTS = {"learning_rate": 1e-2}
SGD_MOMENTUM_DEFAULTS = {"learning_rate": 1e-2, "momentum": 0.9}
RMSPROP_DEFAULTS = {"learning_rate": 1e-2, "decay_rate": 0.99, "epsilon": 1e-8}
ADAGRAD_DEFAULTS = {"learning_rate": 1e-2, "epsilon": 1e-8}
ADAM_DEFAULTS = {"learning_rate": 1e-3, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8}

# Allowed range of each hyperparameter: (low, high, low inclusive?). high is exclusive.
_RANGES = {
    "learning_rate": (0.0, np.inf, True),
    "momentum": (0.0, 1.0, True),
    "decay_rate": (0.0, 1.0, True),
    "beta1": (0.0, 1.0, True),
    "beta2": (0.0, 1.0, True),
    "epsilon": (0.0, np.inf, False),
}


def _prepare(w, dw, config, defaults: dict, state_keys: tuple, name: str) -> dict:
    """Check w/dw/config, fill in default hyperparameters, and return config."""
    w = np.asarray(w)
    dw = np.asarray(dw)
    if w.shape != dw.shape:
        raise ValueError(f"{name}: w has shape {w.shape} but dw has shape {dw.shape}; "
                         "they must be equal")
    if config is None:
        config = {}
    check_keys(config, set(defaults) | set(state_keys), f"{name} config")
    for key, default in defaults.items():
        config.setdefault(key, default)
        value = config[key]
        low, high, low_ok = _RANGES[key]
        if isinstance(value, bool) or not isinstance(value, Real) or not (
                (low <= value if low_ok else low < value) and value < high):
            bracket = "[" if low_ok else "("
            raise ValueError(f"{name}: {key}={value!r} must be a number in "
                             f"{bracket}{low:g}, {high:g})")
    for key in state_keys:
        if key in config and key != "t" and np.shape(config[key]) != w.shape:
            raise ValueError(f"{name}: config[{key!r}] has shape {np.shape(config[key])} but w "
                             f"has shape {w.shape}; was this config used for another parameter?")
    return config


def _zeros(w) -> np.ndarray:
    """A fresh state array for parameter ``w`` (same shape, float dtype of w)."""
    w = np.asarray(w)
    return np.zeros(w.shape, dtype=w.dtype if w.dtype.kind == "f" else np.float64)


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config keys: learning_rate (default 1e-2).
    """
    config = _prepare(w, dw, config, SGD_DEFAULTS, (), "sgd")
    next_w = w - config["learning_rate"] * dw
    return next_w, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw``; ``w + v``.

    config keys: learning_rate (1e-2), momentum (0.9), velocity (state, zeros on the first call).
    """
    config = _prepare(w, dw, config, SGD_MOMENTUM_DEFAULTS, ("velocity",), "sgd_momentum")
    v = config.get("velocity", _zeros(w))
    v = config["momentum"] * v - config["learning_rate"] * dw
    config["velocity"] = v
    return w + v, config


def adagrad(w, dw, config=None):
    """Adagrad: ``cache += dw**2``; ``w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config keys: learning_rate (1e-2), epsilon (1e-8), cache (state: running sum of dw**2).
    """
    config = _prepare(w, dw, config, ADAGRAD_DEFAULTS, ("cache",), "adagrad")
    cache = config.get("cache", _zeros(w)) + dw * dw
    config["cache"] = cache
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSProp: a leaky Adagrad, ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``.

    config keys: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache (state).
    """
    config = _prepare(w, dw, config, RMSPROP_DEFAULTS, ("cache",), "rmsprop")
    rho = config["decay_rate"]
    cache = rho * config.get("cache", _zeros(w)) + (1 - rho) * dw * dw
    config["cache"] = cache
    next_w = w - config["learning_rate"] * dw / (np.sqrt(cache) + config["epsilon"])
    return next_w, config


def adam(w, dw, config=None):
    """Adam with bias correction.

    The step counter ``t`` is incremented *before* the update (CS231n's 2019+ version), so the
    first call uses ``t = 1`` and the bias corrections ``1 - beta**t`` are never zero::

        t += 1
        m = beta1 * m + (1 - beta1) * dw
        v = beta2 * v + (1 - beta2) * dw**2
        next_w = w - learning_rate * (m / (1 - beta1**t)) / (sqrt(v / (1 - beta2**t)) + epsilon)

    config keys: learning_rate (1e-3), beta1 (0.9), beta2 (0.999), epsilon (1e-8), and the
    state m, v (moment estimates, zeros at first) and t (steps taken, 0 at first).
    """
    config = _prepare(w, dw, config, ADAM_DEFAULTS, ("m", "v", "t"), "adam")
    b1, b2 = config["beta1"], config["beta2"]
    t = int(config.get("t", 0)) + 1
    m = b1 * config.get("m", _zeros(w)) + (1 - b1) * dw
    v = b2 * config.get("v", _zeros(w)) + (1 - b2) * dw * dw
    m_hat = m / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    next_w = w - config["learning_rate"] * m_hat / (np.sqrt(v_hat) + config["epsilon"])
    config.update(m=m, v=v, t=t)
    return next_w, config


UPDATE_RULES = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
}


def get_update_rule(name: str):
    """Return the update rule called ``name`` (one of ``UPDATE_RULES``)."""
    if name not in UPDATE_RULES:
        raise ValueError(f"unknown update_rule {name!r}; choose one of {sorted(UPDATE_RULES)} "
                         "or pass a callable update(w, dw, config) -> (next_w, config)")
    return UPDATE_RULES[name]
