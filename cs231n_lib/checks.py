"""Test helpers used inside notebook test cells.

Two jobs, kept separate so the verdict can move out of the student's kernel:

* ``assert_array`` / ``assert_value`` give the student a readable verdict in the kernel, in the
  order type -> shape -> values, with expected and actual values in the message.
* ``record`` hands a computed value *out* of the kernel as a display output with the MIME type
  ``RECORD_MIME``. The grader executes the same test cell with the reference solution in a process
  the student's code never touched, and compares each student record with the reference record of
  the same id (tolerances and bounds are taken from the reference record only). In-kernel
  assertions are feedback for honest students; they are never what earns points.

A test cell should therefore be: (1) seeded inputs, (2) one call of the student's function,
(3) ``record(...)`` of the result and, for visible tests, an ``assert_*`` against a value computed
by code that does not depend on the student.
"""

from __future__ import annotations

import base64
import math

import numpy as np

RECORD_MIME = "application/vnd.cs231n.record+json"
KINDS = ("close", "equal", "at_least", "at_most")


def encode_value(value):
    """JSON-safe encoding of a record value (numbers, bools, strings, arrays, lists, tuples)."""
    if isinstance(value, np.ndarray) or (
            isinstance(value, np.generic) and not isinstance(value, np.bool_)):
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in "biufc":
            raise ValueError(f"cannot record an array of dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # ascontiguousarray makes 0-d 1-d
        return {"__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"),
                "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, str):
        return value
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return {"__seq__": type(value).__name__, "items": [encode_value(v) for v in value]}
    raise ValueError(f"cannot record a value of type {type(value).__name__}")


def decode_value(obj):
    """Inverse of ``encode_value``; never unpickles (arrays come back via ``np.frombuffer``)."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            dtype = np.dtype(obj["dtype"])
            if dtype.kind not in "biufc":
                raise ValueError(f"refusing to decode an array of dtype {dtype}")
            raw = base64.b64decode(obj["__ndarray__"], validate=True)
            shape = tuple(int(s) for s in obj["shape"])
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        if "__float__" in obj:
            return float(obj["__float__"])
        if "__seq__" in obj:
            items = [decode_value(v) for v in obj["items"]]
            return tuple(items) if obj["__seq__"] == "tuple" else items
        raise ValueError(f"unknown record encoding with keys {sorted(obj)}")
    return obj


def record(check_id: str, value, *, kind: str = "close", rtol: float = 1e-7,
           atol: float = 1e-9, bound=None) -> None:
    """Hand ``value`` out of the kernel for the grader to judge against the reference run.

    kind: 'close' (allclose to the reference value), 'equal' (exactly equal), 'at_least' /
    'at_most' (compared with ``bound``, e.g. an accuracy threshold).
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} must be one of {KINDS}")
    from IPython.display import display

    payload = {"id": str(check_id), "kind": kind, "rtol": float(rtol), "atol": float(atol),
               "bound": None if bound is None else float(bound)}
    try:
        payload["value"] = encode_value(value)
    except ValueError as err:
        payload["value"] = None
        payload["error"] = str(err)
    display({RECORD_MIME: payload, "text/plain": f"[recorded {check_id}]"}, raw=True)


def _type_name(x) -> str:
    return type(x).__module__ + "." + type(x).__qualname__ if not isinstance(
        x, (int, float, str, bool, tuple, list)) else type(x).__name__


def assert_array(name: str, actual, expected, *, rtol: float = 1e-7, atol: float = 0.0) -> None:
    """Assert ``actual`` is an ndarray with ``expected``'s shape and values (type, shape, values).

    Raises AssertionError with a message naming what is wrong and showing expected vs actual.
    """
    expected = np.asarray(expected)
    if not isinstance(actual, np.ndarray):
        raise AssertionError(
            f"{name}: expected a numpy.ndarray, got {_type_name(actual)} ({actual!r:.200})")
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{name}: wrong shape: expected {expected.shape}, got {actual.shape}")
    if actual.dtype.kind not in "biuf":
        raise AssertionError(f"{name}: expected a numeric array, got dtype {actual.dtype}")
    if not np.all(np.isfinite(actual)):
        bad = int(np.size(actual) - np.count_nonzero(np.isfinite(actual)))
        raise AssertionError(f"{name}: {bad} entries are NaN or infinite")
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    tol = atol + rtol * np.abs(expected.astype(np.float64))
    bad = diff > tol
    if np.any(bad):
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff - tol), diff.shape))
        raise AssertionError(
            f"{name}: wrong values at {int(bad.sum())} of {bad.size} entries; worst at index "
            f"{idx}: expected {expected[idx]!r}, got {actual[idx]!r} "
            f"(|diff|={diff[idx]:.3g}, allowed {tol[idx]:.3g})")


def assert_value(name: str, actual, expected, *, rel_tol: float = 0.0) -> None:
    """Assert a scalar/tuple/string result: type first, then value."""
    if isinstance(expected, bool):
        ok_type = isinstance(actual, (bool, np.bool_))
    elif isinstance(expected, int):
        ok_type = isinstance(actual, (int, np.integer)) and not isinstance(actual, bool)
    elif isinstance(expected, float):
        ok_type = isinstance(actual, (int, float, np.integer, np.floating))
    else:
        ok_type = isinstance(actual, type(expected))
    if not ok_type:
        raise AssertionError(
            f"{name}: expected a {type(expected).__name__}, got {_type_name(actual)} "
            f"({actual!r:.200})")
    if isinstance(expected, float):
        ok = math.isclose(float(actual), expected, rel_tol=rel_tol, abs_tol=0.0)
    else:
        ok = actual == expected
    if not ok:
        raise AssertionError(f"{name}: expected {expected!r}, got {actual!r}")
