"""Test helpers used inside notebook test cells.

Two jobs, kept separate so the verdict can move out of the student's kernel:

* ``assert_array`` / ``assert_value`` give the student a readable verdict in the kernel, in the
  order type -> shape -> values, with expected and actual values in the message.
* ``record`` hands a computed value *out* of the kernel as a display output with the MIME type
  ``RECORD_MIME`` only (front ends show nothing for it). The grader executes the same test
  cell with the reference solution in a process the student's code never touched, and
  compares each student record with the reference record of the same id (tolerances and bounds
  are taken from the reference record only). In-kernel assertions are feedback for honest
  students; they are never what earns points.

A test cell should therefore be: (1) seeded inputs, (2) one call of the student's function,
(3) ``record(...)`` of the result and, for visible tests, an ``assert_*`` against a value computed
by code that does not depend on the student. The course build appends a ``print`` of
``pass_message`` to each test cell, so a cell whose visible checks hold ends with one clear line.
"""

from __future__ import annotations

import base64
import math
import re

import numpy as np

from cs231n_lib.i18n import tr

RECORD_MIME = "application/vnd.cs231n.record+json"
KINDS = ("close", "equal", "at_least", "at_most")

# Limits on one recorded value. The grader treats every record as hostile data: decode_value
# refuses anything beyond them (and encode_value too, so the student is told in the kernel).
MAX_RECORD_DEPTH = 16               # nested lists/tuples
MAX_RECORD_ITEMS = 100_000          # scalars, strings, arrays and sequences in one value
MAX_RECORD_ELEMENTS = 8_000_000     # array elements in one value (all arrays together)
MAX_RECORD_BYTES = 8_000_000        # decoded array bytes plus string characters in one value
MAX_RECORD_INT = 2**63              # |int| must be below this (finite as a float, fits int64)
MAX_RECORD_NDIM = 32                # dimensions of one array
NONFINITE_FLOATS = ("nan", "inf", "-inf")  # the only spellings of {"__float__": ...}
_ARRAY_KINDS = "biufc"
_DTYPE_RE = re.compile(r"[<>|=]?[biufc][0-9]{1,2}")  # e.g. "<f8", "|b1", ">i4", "<c16"


class _Budget:
    """What is left of the limits while one value is encoded or decoded."""

    def __init__(self):
        self.items, self.elements, self.bytes = 0, 0, 0

    def take(self, *, items: int = 1, elements: int = 0, nbytes: int = 0) -> None:
        """Count one more part of the value; ValueError naming the limit once one is passed."""
        self.items += items
        self.elements += elements
        self.bytes += nbytes
        for used, limit, what in ((self.items, MAX_RECORD_ITEMS, "items"),
                                  (self.elements, MAX_RECORD_ELEMENTS, "array elements"),
                                  (self.bytes, MAX_RECORD_BYTES, "bytes")):
            if used > limit:
                raise ValueError(f"record value too large: more than {limit} {what}")


def _check_int(value: int) -> int:
    """``value`` if its magnitude is below MAX_RECORD_INT, else ValueError."""
    if not -MAX_RECORD_INT < value < MAX_RECORD_INT:
        raise ValueError(f"integer out of range: |value| must be below 2**63 "
                         f"(got one with {value.bit_length()} bits)")
    return value


def encode_value(value):
    """JSON-safe encoding of a record value (numbers, bools, strings, arrays, lists, tuples).

    ValueError for other types and for values beyond the MAX_RECORD_* limits.
    """
    return _encode(value, 0, _Budget())


def _encode(value, depth: int, budget: _Budget):
    """encode_value for a part of the value at nesting ``depth``."""
    budget.take()
    if isinstance(value, np.ndarray) or (
            isinstance(value, np.generic) and not isinstance(value, np.bool_)):
        arr = np.asarray(value)
        if arr.dtype == object or arr.dtype.kind not in _ARRAY_KINDS:
            raise ValueError(f"cannot record an array of dtype {arr.dtype}")
        if arr.ndim > MAX_RECORD_NDIM:
            raise ValueError(f"cannot record an array of {arr.ndim} dimensions "
                             f"(limit {MAX_RECORD_NDIM})")
        budget.take(items=0, elements=arr.size, nbytes=arr.nbytes)
        arr = np.ascontiguousarray(arr).reshape(arr.shape)  # ascontiguousarray makes 0-d 1-d
        return {"__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"),
                "dtype": arr.dtype.str, "shape": list(arr.shape)}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, int):
        return _check_int(int(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, str):
        budget.take(items=0, nbytes=len(value))
        return value
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if depth >= MAX_RECORD_DEPTH:
            raise ValueError(f"cannot record sequences nested more than {MAX_RECORD_DEPTH} deep")
        return {"__seq__": type(value).__name__,
                "items": [_encode(v, depth + 1, budget) for v in value]}
    raise ValueError(f"cannot record a value of type {type(value).__name__}")


def decode_value(obj):
    """Inverse of ``encode_value`` for untrusted input; never unpickles.

    Arrays come back via ``np.frombuffer`` in native byte order. Raises ValueError naming the
    rule for anything encode_value cannot produce or that exceeds a MAX_RECORD_* limit; the
    work done is bounded by those limits whatever ``obj`` is.
    """
    return _decode(obj, 0, _Budget())


def _decode(obj, depth: int, budget: _Budget):
    """decode_value for a part of the value at nesting ``depth``."""
    budget.take()
    if obj is None or isinstance(obj, (bool, float)):
        return obj
    if isinstance(obj, int):
        return _check_int(obj)
    if isinstance(obj, str):
        budget.take(items=0, nbytes=len(obj))
        return obj
    if not isinstance(obj, dict):
        raise ValueError(f"a JSON {type(obj).__name__} is not a record encoding "
                         "(sequences are encoded as {'__seq__': ..., 'items': [...]})")
    keys = set(obj)
    if keys == {"__ndarray__", "dtype", "shape"}:
        return _decode_array(obj, budget)
    if keys == {"__float__"}:
        if obj["__float__"] not in NONFINITE_FLOATS:
            raise ValueError(f"__float__ must be one of {NONFINITE_FLOATS}, got "
                             f"{_brief(obj['__float__'])}")
        return float(obj["__float__"])
    if keys == {"__seq__", "items"}:
        return _decode_seq(obj, depth, budget)
    raise ValueError(f"unknown record encoding with keys {_brief(sorted(map(str, keys)))}")


def _decode_seq(obj: dict, depth: int, budget: _Budget):
    """A list or tuple from {"__seq__": "list"|"tuple", "items": [...]}."""
    if obj["__seq__"] not in ("list", "tuple"):
        raise ValueError(f"__seq__ must be 'list' or 'tuple', got {_brief(obj['__seq__'])}")
    if not isinstance(obj["items"], list):
        raise ValueError(f"sequence items must be a JSON list, got {_brief(obj['items'])}")
    if depth >= MAX_RECORD_DEPTH:
        raise ValueError(f"sequences nested more than {MAX_RECORD_DEPTH} deep")
    items = [_decode(v, depth + 1, budget) for v in obj["items"]]
    return tuple(items) if obj["__seq__"] == "tuple" else items


def _decode_array(obj: dict, budget: _Budget) -> np.ndarray:
    """An ndarray from {"__ndarray__": base64, "dtype": str, "shape": [int, ...]}."""
    dtype_str, shape, data = obj["dtype"], obj["shape"], obj["__ndarray__"]
    if not isinstance(dtype_str, str) or not _DTYPE_RE.fullmatch(dtype_str):
        raise ValueError(f"array dtype must be a numeric type string like '<f8', got "
                         f"{_brief(dtype_str)}")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError:
        raise ValueError(f"array dtype {dtype_str!r} is not a numpy type") from None
    if dtype.kind not in _ARRAY_KINDS:
        raise ValueError(f"refusing to decode an array of dtype {dtype}")
    if not (isinstance(shape, list) and len(shape) <= MAX_RECORD_NDIM and all(
            type(s) is int and 0 <= s <= MAX_RECORD_ELEMENTS for s in shape)):
        raise ValueError(f"array shape must be a list of at most {MAX_RECORD_NDIM} integers "
                         f"in [0, {MAX_RECORD_ELEMENTS}], got {_brief(shape)}")
    size = math.prod(shape)
    budget.take(items=0, elements=size, nbytes=size * dtype.itemsize)
    if not isinstance(data, str) or len(data) != 4 * math.ceil(size * dtype.itemsize / 3):
        raise ValueError(f"array data must be the base64 text of {size * dtype.itemsize} "
                         f"bytes for shape {tuple(shape)} and dtype {dtype}")
    raw = base64.b64decode(data, validate=True)  # binascii.Error is a ValueError
    if len(raw) != size * dtype.itemsize:
        raise ValueError(f"array data holds {len(raw)} bytes, shape {tuple(shape)} and dtype "
                         f"{dtype} need {size * dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _brief(value) -> str:
    """A short, safe description of an untrusted JSON value for messages."""
    if isinstance(value, (list, dict)):
        return f"a JSON {'list' if isinstance(value, list) else 'object'} of {len(value)} items"
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**20:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


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
    # Only the record MIME type, no text/plain: JupyterLab has no renderer for it and shows
    # nothing (a student has nothing to interpret), while nbclient and nbformat keep the output.
    display({RECORD_MIME: payload}, raw=True)


def pass_message(test_id: str, lang: str | None = None) -> str:
    """The line a test cell prints when its visible checks hold (``build.py`` appends a
    ``print`` of it to every test cell that runs visible tests; the Chinese edition's test
    cells print ``pass_message(test_id, "zh")``). ``lang``: default the current language."""
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(test_id)):
        raise ValueError(f"test id {test_id!r} must be letters, digits, '_' or '-'")
    return tr("\u2713 {test_id} passed (visible tests; hidden tests will also run when graded)",
              lang, test_id=test_id)


def _type_name(x) -> str:
    return type(x).__module__ + "." + type(x).__qualname__ if not isinstance(
        x, (int, float, str, bool, tuple, list)) else type(x).__name__


def assert_array(name: str, actual, expected, *, rtol: float = 1e-7, atol: float = 0.0) -> None:
    """Assert ``actual`` is an ndarray with ``expected``'s shape and values (type, shape, values).

    Raises AssertionError with a message naming what is wrong and showing expected vs actual.
    """
    expected = np.asarray(expected)
    if not isinstance(actual, np.ndarray):
        raise AssertionError(tr("{name}: expected a numpy.ndarray, got {type} ({value})",
                                name=name, type=_type_name(actual), value=f"{actual!r:.200}"))
    if actual.shape != expected.shape:
        raise AssertionError(tr("{name}: wrong shape: expected {expected}, got {actual}",
                                name=name, expected=expected.shape, actual=actual.shape))
    if actual.dtype.kind not in "biuf":
        raise AssertionError(tr("{name}: expected a numeric array, got dtype {dtype}",
                                name=name, dtype=actual.dtype))
    if not np.all(np.isfinite(actual)):
        bad = int(np.size(actual) - np.count_nonzero(np.isfinite(actual)))
        raise AssertionError(tr("{name}: {count} entries are NaN or infinite", name=name,
                                count=bad))
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    tol = atol + rtol * np.abs(expected.astype(np.float64))
    bad = diff > tol
    if np.any(bad):
        idx = tuple(int(i) for i in np.unravel_index(np.argmax(diff - tol), diff.shape))
        raise AssertionError(tr(
            "{name}: wrong values at {count} of {size} entries; worst at index {index}: "
            "expected {expected}, got {actual} (|diff|={diff}, allowed {allowed})",
            name=name, count=int(bad.sum()), size=bad.size, index=idx,
            expected=repr(expected[idx]), actual=repr(actual[idx]), diff=f"{diff[idx]:.3g}",
            allowed=f"{tol[idx]:.3g}"))


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
        raise AssertionError(tr("{name}: expected a {expected}, got {type} ({value})",
                                name=name, expected=type(expected).__name__,
                                type=_type_name(actual), value=f"{actual!r:.200}"))
    if isinstance(expected, float):
        ok = math.isclose(float(actual), expected, rel_tol=rel_tol, abs_tol=0.0)
    else:
        ok = actual == expected
    if not ok:
        raise AssertionError(tr("{name}: expected {expected}, got {actual}", name=name,
                                expected=repr(expected), actual=repr(actual)))
