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

import math
from numbers import Real

import numpy as np

from . import parallel, scratch
from .layers import CHUNK_BYTES, _chunk_map
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
    allowed = defaults.keys() | state_keys
    if type(config) is not dict or not config.keys() <= allowed:  # (this runs every step)
        check_keys(config, allowed, f"{name} config")
    for key, default in defaults.items():
        value = config.setdefault(key, default)
        low, high, low_ok = _RANGES[key]
        if (type(value) is not float and (isinstance(value, bool) or not isinstance(
                value, Real))) or not ((low <= value if low_ok else low < value) and value < high):
            bracket = "[" if low_ok else "("
            raise ValueError(f"{name}: {key}={value!r} must be a number in "
                             f"{bracket}{low:g}, {high:g})")
    for key in state_keys:
        if key in config and key != "t" and np.shape(config[key]) != w.shape:
            raise ValueError(f"{name}: config[{key!r}] has shape {np.shape(config[key])} but w "
                             f"has shape {w.shape}; was this config used for another parameter?")
    return config


def _dtype(w, dw) -> np.dtype:
    """The dtype every rule computes and returns in: that of w and dw (float64 for integers).
    Hyperparameters are Python floats, which never upcast a float32 parameter, even when the
    caller passed a numpy float64 (``float`` is applied to them first)."""
    dtype = np.result_type(w, dw)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _chunked(kernel, inputs, outputs, shape, dtype):
    """New arrays of ``shape`` and ``dtype``, one per name in ``outputs``, filled by
    ``kernel(*inputs, *outputs)`` run on consecutive chunks of the flattened arrays (None
    inputs stay None): every rule is elementwise, so the chunks give exactly the whole arrays'
    numbers, while a rule's several passes run in the core's cache (``layers.CHUNK_BYTES`` of
    output at a time) instead of streaming every array from memory once per operation, and
    large parameters are split across threads (``parallel``). Returns the new arrays."""
    outs = [np.empty(shape, dtype) for _ in outputs]
    work = parallel.PASS_WORK * _PASSES * outs[0].size
    if work < 2 * parallel.MIN_WORK and outs[0].nbytes <= CHUNK_BYTES:  # one piece (small)
        kernel(*inputs, *outs)
        return outs
    flat_in = [None if a is None else np.asarray(a).reshape(-1) for a in inputs]
    flat_out = [o.reshape(-1) for o in outs]

    def chunk(s):
        kernel(*(None if a is None else a[s] for a in flat_in), *(o[s] for o in flat_out))

    with parallel.Batch.over(flat_out[0].size, work) as batch:
        _chunk_map(batch, flat_out[0], chunk)
    return outs


_PASSES = 8  # about how many passes over a parameter a rule makes (for parallel.batch_slices)


def _scale(a, factor, dtype, out):
    """``out = factor * a`` in ``dtype`` (a Python float factor never upcasts float32)."""
    return np.multiply(a, float(factor), out=out, dtype=dtype)


def _temp(shape, dtype) -> np.ndarray:
    """Scratch memory for a rule's temporary (reused from call to call; never returned)."""
    return scratch.array("optim.temp", shape, dtype)


def sgd(w, dw, config=None):
    """Vanilla stochastic gradient descent: ``w - learning_rate * dw``.

    config keys: learning_rate (default 1e-2).
    """
    config = _prepare(w, dw, config, SGD_DEFAULTS, (), "sgd")
    dtype = _dtype(w, dw)

    def kernel(w, dw, next_w):
        _scale(dw, -config["learning_rate"], dtype, next_w)  # -learning_rate * dw
        next_w += w

    (next_w,) = _chunked(kernel, (w, dw), ("next_w",), np.shape(w), dtype)
    return next_w, config


def sgd_momentum(w, dw, config=None):
    """SGD with momentum: ``v = momentum * v - learning_rate * dw``; ``w + v``.

    config keys: learning_rate (1e-2), momentum (0.9), velocity (state, zeros on the first call).
    """
    config = _prepare(w, dw, config, SGD_MOMENTUM_DEFAULTS, ("velocity",), "sgd_momentum")
    dtype = _dtype(w, dw)

    def kernel(w, dw, velocity, next_w, v):
        _scale(dw, -config["learning_rate"], dtype, v)  # -learning_rate * dw
        if velocity is not None:  # (absent: zeros, momentum * 0 adds nothing)
            v += np.multiply(velocity, float(config["momentum"]), out=_temp(v.shape, dtype))
        np.add(w, v, out=next_w, dtype=dtype)

    next_w, config["velocity"] = _chunked(kernel, (w, dw, config.get("velocity")),
                                          ("next_w", "velocity"), np.shape(w), dtype)
    return next_w, config


def adagrad(w, dw, config=None):
    """Adagrad: ``cache += dw**2``; ``w - learning_rate * dw / (sqrt(cache) + epsilon)``.

    config keys: learning_rate (1e-2), epsilon (1e-8), cache (state: running sum of dw**2).
    """
    config = _prepare(w, dw, config, ADAGRAD_DEFAULTS, ("cache",), "adagrad")
    dtype = _dtype(w, dw)

    def kernel(w, dw, old, next_w, cache):
        np.multiply(dw, dw, out=cache, dtype=dtype)
        if old is not None:
            cache += old
        _step_into(w, dw, cache, -float(config["learning_rate"]), float(config["epsilon"]),
                   next_w)

    next_w, config["cache"] = _chunked(kernel, (w, dw, config.get("cache")),
                                       ("next_w", "cache"), np.shape(w), dtype)
    return next_w, config


def rmsprop(w, dw, config=None):
    """RMSProp: a leaky Adagrad, ``cache = decay_rate * cache + (1 - decay_rate) * dw**2``.

    config keys: learning_rate (1e-2), decay_rate (0.99), epsilon (1e-8), cache (state).
    """
    config = _prepare(w, dw, config, RMSPROP_DEFAULTS, ("cache",), "rmsprop")
    dtype = _dtype(w, dw)
    rho = float(config["decay_rate"])

    def kernel(w, dw, old, next_w, cache):
        _moving_average(np.multiply(dw, dw, out=cache, dtype=dtype), old, rho, cache)
        _step_into(w, dw, cache, -float(config["learning_rate"]), float(config["epsilon"]),
                   next_w)

    next_w, config["cache"] = _chunked(kernel, (w, dw, config.get("cache")),
                                       ("next_w", "cache"), np.shape(w), dtype)
    return next_w, config


def _moving_average(new, old, rate, out):
    """``out = rate * old + (1 - rate) * new`` (old None: zeros, which add nothing), computed
    as ``old + (1 - rate) * (new - old)``: three passes over the arrays and no temporary
    (new may be out itself). Returns out."""
    if old is None:
        return np.multiply(new, 1 - rate, out=out, dtype=out.dtype)
    np.subtract(new, old, out=out, dtype=out.dtype)
    out *= 1 - rate
    out += old
    return out


def _step_into(w, numerator, second, gain, epsilon, out):
    """``out = w + gain * numerator / (sqrt(second) + epsilon)``, the step of Adagrad, RMSProp
    and Adam (gain: minus the learning rate, for Adam with its bias corrections folded in):
    five passes, no temporary. Returns out."""
    np.sqrt(second, out=out)
    out += epsilon
    np.divide(numerator, out, out=out, dtype=out.dtype)
    out *= gain
    np.add(out, w, out=out, dtype=out.dtype)
    return out


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
    dtype = _dtype(w, dw)
    b1, b2 = float(config["beta1"]), float(config["beta2"])
    t = int(config.get("t", 0)) + 1

    # The bias corrections folded into the step's constants: 12 passes over the arrays and no
    # temporary, where dividing m and v by them took 14 and two temporaries (measured on
    # notebook 6's 313,600 float32 weights, 2 threads: 0.77 ms against 1.03).
    # lr * (m / c1) / (sqrt(v / c2) + eps) = (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2))
    root = math.sqrt(1 - b2**t)
    gain = -float(config["learning_rate"]) * root / (1 - b1**t)
    epsilon = float(config["epsilon"]) * root

    def kernel(w, dw, old_m, old_v, next_w, m, v):
        _moving_average(dw, old_m, b1, m)  # (absent on the first call: zeros)
        _moving_average(np.multiply(dw, dw, out=v, dtype=dtype), old_v, b2, v)
        _step_into(w, m, v, gain, epsilon, next_w)

    next_w, m, v = _chunked(kernel, (w, dw, config.get("m"), config.get("v")),
                            ("next_w", "m", "v"), np.shape(w), dtype)
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
