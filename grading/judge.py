"""Judge test cells against the reference run: a pure function of recorded outputs.

A test cell earns its points iff every reference record id of that cell appears exactly once
among the student's records of that cell and matches it. The kind, tolerances and bound come
from the reference record only; what the student's kernel claims about them is ignored.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

from cs231n_lib.checks import RECORD_MIME, assert_array, decode_value


@dataclass
class TestResult:
    """Verdict on one test cell."""

    grade_id: str
    points: float
    max_points: float
    passed: bool
    message: str

    def to_dict(self) -> dict:
        """Plain dict (picklable, JSON-able)."""
        return asdict(self)


def cell_records(cell) -> list[dict]:
    """Record payloads among a cell's outputs (anything malformed is skipped)."""
    out = []
    for o in cell.get("outputs", []):
        data = o.get("data") if o.get("output_type") in ("display_data", "execute_result") else None
        payload = data.get(RECORD_MIME) if isinstance(data, dict) else None
        if isinstance(payload, dict) and isinstance(payload.get("id"), str):
            out.append(payload)
    return out


def cell_error(cell) -> str | None:
    """``Name: value`` of the first error a cell raised, if any."""
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            return f"{o.get('ename', 'Error')}: {str(o.get('evalue', ''))[:300]}"
    return None


def _is_number(v) -> bool:
    """A real number (not bool) or a 0-d numeric array."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool) or (
        isinstance(v, np.ndarray) and v.ndim == 0 and v.dtype.kind in "iuf")


def _close(name, got, ref, rtol, atol) -> str | None:
    """Mismatch message for kind 'close', recursing into sequences, else None."""
    if isinstance(ref, (list, tuple)):
        if not isinstance(got, (list, tuple)) or len(got) != len(ref):
            return f"{name}: expected a sequence of {len(ref)} items, got {_show(got)}"
        for k, (g, r) in enumerate(zip(got, ref, strict=True)):
            msg = _close(f"{name}[{k}]", g, r, rtol, atol)
            if msg:
                return msg
        return None
    if isinstance(ref, np.ndarray) or _is_number(ref):
        if not (isinstance(got, np.ndarray) or _is_number(got)):
            return f"{name}: expected a number or array, got {_show(got)}"
        got_arr = np.asarray(got)
        if got_arr.dtype.kind not in "biuf":
            return f"{name}: expected a numeric value, got dtype {got_arr.dtype}"
        try:
            assert_array(name, got_arr, np.asarray(ref), rtol=rtol, atol=atol)
        except AssertionError as err:
            return str(err)
        return None
    return _equal(name, got, ref)


def _equal(name, got, ref) -> str | None:
    """Mismatch message for kind 'equal' (same type family and value), else None."""
    if isinstance(ref, np.ndarray):
        if not isinstance(got, np.ndarray):
            return f"{name}: expected an array, got {_show(got)}"
        if got.shape != ref.shape or got.dtype != ref.dtype:
            return (f"{name}: expected shape {ref.shape} dtype {ref.dtype}, got shape "
                    f"{got.shape} dtype {got.dtype}")
        if not np.array_equal(got, ref, equal_nan=ref.dtype.kind in "fc"):
            return f"{name}: values differ from the expected ones"
        return None
    if isinstance(ref, (list, tuple)):
        if type(got) is not type(ref) or len(got) != len(ref):
            return f"{name}: expected {_show(ref)}, got {_show(got)}"
        for k, (g, r) in enumerate(zip(got, ref, strict=True)):
            msg = _equal(f"{name}[{k}]", g, r)
            if msg:
                return msg
        return None
    same_kind = (isinstance(ref, bool) == isinstance(got, bool)) and (
        _is_number(ref) == _is_number(got)) and (isinstance(ref, str) == isinstance(got, str))
    if not same_kind or got != ref:
        return f"{name}: expected {_show(ref)}, got {_show(got)}"
    return None


def _show(v) -> str:
    """Short description of a value for messages."""
    if isinstance(v, np.ndarray):
        return f"array of shape {v.shape} dtype {v.dtype}"
    return f"{type(v).__name__} {v!r:.80}"


def compare(ref: dict, got: dict) -> str | None:
    """None if the student's record ``got`` matches the reference record ``ref``, else why not."""
    name = ref["id"]
    if ref.get("error") or "value" not in ref:
        return f"{name}: the reference could not record this value (instructor: fix the test)"
    if got.get("error"):
        return f"{name}: your value could not be recorded ({got['error']})"
    try:
        expected = decode_value(ref["value"])
        actual = decode_value(got.get("value"))
    except (ValueError, TypeError, KeyError) as err:
        return f"{name}: unreadable record ({err})"
    kind = ref.get("kind", "close")
    if kind == "close":
        return _close(name, actual, expected, float(ref.get("rtol", 1e-7)),
                      float(ref.get("atol", 1e-9)))
    if kind == "equal":
        return _equal(name, actual, expected)
    if kind in ("at_least", "at_most"):
        bound = ref.get("bound")
        if bound is None:
            return f"{name}: the reference record has no bound (instructor: fix the test)"
        if not _is_number(actual) or not math.isfinite(float(actual)):
            return f"{name}: expected a finite number, got {_show(actual)}"
        ok = float(actual) >= bound if kind == "at_least" else float(actual) <= bound
        word = "at least" if kind == "at_least" else "at most"
        return None if ok else f"{name}: expected {word} {bound:g}, got {float(actual):g}"
    return f"{name}: unknown record kind {kind!r} in the reference"


def judge_cell(grade_id: str, max_points: float, reference: list[dict], student: list[dict],
               *, error: str | None = None, event: str | None = None) -> TestResult:
    """Verdict on one test cell from the reference's and the student's records."""
    if not reference:
        return TestResult(grade_id, 0.0, max_points, False,
                          "no reference records for this test (instructor: call record())")
    problems = []
    for ref in reference:
        mine = [r for r in student if r.get("id") == ref["id"]]
        if len(mine) == 1:
            msg = compare(ref, mine[0])
        elif not mine:
            msg = f"{ref['id']}: not recorded"
        else:
            msg = f"{ref['id']}: recorded {len(mine)} times (must be exactly once)"
        if msg:
            problems.append(msg)
    if not problems:
        return TestResult(grade_id, float(max_points), max_points, True, "passed")
    context = [c for c in (event, f"the cell raised {error}" if error else None) if c]
    message = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3
                                         else "")
    if context:
        message += " [" + "; ".join(context) + "]"
    return TestResult(grade_id, 0.0, max_points, False, message)
