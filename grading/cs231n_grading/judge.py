"""Judge test cells against the reference run: a pure function of recorded outputs.

A test cell earns its points iff every reference record id of that cell appears exactly once
among the student's records of that cell and matches it. The kind, tolerances and bound come
from the reference record only; what the student's kernel claims about them is ignored.
"""

from __future__ import annotations

import builtins
import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

from cs231n_grading.locale import tr
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
            return tr("{name}: expected a sequence of {count} items, got {got}", name=name,
                      count=len(ref), got=_show(got))
        for k, (g, r) in enumerate(zip(got, ref, strict=True)):
            msg = _close(f"{name}[{k}]", g, r, rtol, atol)
            if msg:
                return msg
        return None
    if isinstance(ref, np.ndarray) or _is_number(ref):
        if not (isinstance(got, np.ndarray) or _is_number(got)):
            return tr("{name}: expected a number or array, got {got}", name=name,
                      got=_show(got))
        got_arr = np.asarray(got)
        if got_arr.dtype.kind not in "biuf":
            return tr("{name}: expected a numeric value, got dtype {dtype}", name=name,
                      dtype=got_arr.dtype)
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
            return tr("{name}: expected an array, got {got}", name=name, got=_show(got))
        if got.shape != ref.shape or got.dtype != ref.dtype:
            return tr("{name}: expected shape {shape} dtype {dtype}, got shape {got_shape} "
                      "dtype {got_dtype}", name=name, shape=ref.shape, dtype=ref.dtype,
                      got_shape=got.shape, got_dtype=got.dtype)
        if not np.array_equal(got, ref, equal_nan=ref.dtype.kind in "fc"):
            return tr("{name}: values differ from the expected ones", name=name)
        return None
    if isinstance(ref, (list, tuple)):
        if type(got) is not type(ref) or len(got) != len(ref):
            return _expected(name, ref, got)
        for k, (g, r) in enumerate(zip(got, ref, strict=True)):
            msg = _equal(f"{name}[{k}]", g, r)
            if msg:
                return msg
        return None
    same_kind = (isinstance(ref, bool) == isinstance(got, bool)) and (
        _is_number(ref) == _is_number(got)) and (isinstance(ref, str) == isinstance(got, str))
    if not same_kind or got != ref:
        return _expected(name, ref, got)
    return None


def _expected(name, ref, got) -> str:
    """``name: expected <reference>, got <description of got>``."""
    return tr("{name}: expected {expected}, got {got}", name=name,
              expected=_show(ref, reference=True), got=_show(got))


def _show(v, *, reference: bool = False) -> str:
    """Short description of a decoded value for messages (bounded work whatever ``v`` is).

    A student's strings are described, never quoted: feedback must not carry text the kernel
    made, which could encode hidden-test source read from the grading run."""
    if isinstance(v, np.ndarray):
        return tr("array of shape {shape} dtype {dtype}", shape=v.shape, dtype=v.dtype)
    if isinstance(v, (list, tuple)):
        return tr("{type} of {count} items", type=type(v).__name__, count=len(v))
    if isinstance(v, str):
        return (f"str {v[:80]!r}" if reference
                else tr("a str of {count} characters", count=len(v)))
    if isinstance(v, (bool, int, float, np.generic)) or v is None:
        return f"{type(v).__name__} {v!r:.40}"
    return tr("a {type}", type=type(v).__name__)


def error_name(error: str | None) -> str | None:
    """What a verdict may say of a cell's error: a builtin exception's name, else 'an error'
    (the message and a student-defined name are kernel text, see ``_show``)."""
    if not error:
        return None
    name = error.split(":", 1)[0].strip()
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return name
    return tr("an error")


def compare(ref: dict, got) -> str | None:
    """None if the student's record ``got`` matches the reference record ``ref``, else why not.

    ``got`` is hostile data: whatever it holds, the answer is a message about this record, never
    an exception (the decoding limits are the MAX_RECORD_* constants of cs231n_lib.checks).
    """
    name = ref.get("id") if isinstance(ref, dict) and isinstance(ref.get("id"), str) else "?"
    try:
        return _compare(name, ref, got)
    except Exception as err:  # noqa: BLE001 - one bad record costs its own cell, nothing more
        return tr("{name}: unreadable record ({error})", name=name, error=type(err).__name__)


def _compare(name: str, ref: dict, got) -> str | None:
    """compare() without the safety net."""
    if ref.get("error") or "value" not in ref:
        return tr("{name}: the reference could not record this value (instructor: fix the "
                  "test)", name=name)
    if not isinstance(got, dict):
        return tr("{name}: unreadable record (not a JSON object)", name=name)
    if got.get("error"):
        return tr("{name}: your value could not be recorded (not a number, string, array or "
                  "list)", name=name)
    if "value" not in got:
        return tr("{name}: unreadable record (no value)", name=name)
    try:
        expected = decode_value(ref["value"])
    except ValueError as err:
        return tr("{name}: the reference value is unreadable ({error}; instructor: fix the "
                  "test)", name=name, error=err)
    try:
        actual = decode_value(got["value"])
    except ValueError:
        return tr("{name}: unreadable record (it breaks a limit of cs231n_lib.checks)",
                  name=name)
    kind = ref.get("kind", "close")
    if kind == "close":
        return _close(name, actual, expected, float(ref.get("rtol", 1e-7)),
                      float(ref.get("atol", 1e-9)))
    if kind == "equal":
        return _equal(name, actual, expected)
    if kind in ("at_least", "at_most"):
        return _bound(name, kind, actual, ref.get("bound"))
    return tr("{name}: unknown record kind {kind} in the reference", name=name, kind=repr(kind))


def _bound(name: str, kind: str, actual, bound) -> str | None:
    """Mismatch message for kinds 'at_least' / 'at_most', else None."""
    if not _is_number(bound):
        return tr("{name}: the reference record has no bound (instructor: fix the test)",
                  name=name)
    if not _is_number(actual) or not math.isfinite(float(actual)):
        return tr("{name}: expected a finite number, got {got}", name=name, got=_show(actual))
    ok = float(actual) >= bound if kind == "at_least" else float(actual) <= bound
    if ok:
        return None
    fields = {"name": name, "bound": f"{bound:g}", "got": f"{float(actual):g}"}
    if kind == "at_least":
        return tr("{name}: expected at least {bound}, got {got}", **fields)
    return tr("{name}: expected at most {bound}, got {got}", **fields)


def judge_cell(grade_id: str, max_points: float, reference: list[dict], student: list[dict],
               *, error: str | None = None, event: str | None = None) -> TestResult:
    """Verdict on one test cell from the reference's and the student's records."""
    if not reference:
        return TestResult(grade_id, 0.0, max_points, False,
                          tr("no reference records for this test (instructor: call record())"))
    by_id: dict[str, list] = {}
    for rec in student:
        if isinstance(rec, dict) and isinstance(rec.get("id"), str):
            by_id.setdefault(rec["id"], []).append(rec)
    problems = []
    for ref in reference:
        mine = by_id.get(ref["id"], [])
        if len(mine) == 1:
            msg = compare(ref, mine[0])
        elif not mine:
            msg = tr("{name}: not recorded", name=ref["id"])
        else:
            msg = tr("{name}: recorded {count} times (must be exactly once)", name=ref["id"],
                     count=len(mine))
        if msg:
            problems.append(msg)
    if not problems:
        return TestResult(grade_id, float(max_points), max_points, True, tr("passed"))
    raised = tr("the cell raised {error}", error=error_name(error)) if error else None
    context = [c for c in (event, raised) if c]
    message = "; ".join(problems[:3]) + (tr(" (+{count} more)", count=len(problems) - 3)
                                         if len(problems) > 3 else "")
    if context:
        message += " [" + "; ".join(context) + "]"
    return TestResult(grade_id, 0.0, max_points, False, message)
