"""The judge treats every record as hostile data: a malformed, oversized or pathological record
fails its own test cell with a message and never raises (issue 13, item 3)."""

import base64
import re

import numpy as np
import pytest

from cs231n_grading.judge import compare, judge_cell
from cs231n_lib import checks
from cs231n_lib.checks import decode_value, encode_value


def rec(check_id, value, kind="close", **kw):
    """An honest record payload, as record() would build it."""
    return {"id": check_id, "kind": kind, "rtol": 1e-7, "atol": 1e-9, "bound": kw.get("bound"),
            "value": encode_value(value)}


def raw(check_id, value_json, kind="close", **extra):
    """A record payload whose 'value' is the given JSON, however malformed."""
    return {"id": check_id, "kind": kind, "rtol": 1e-7, "atol": 1e-9, "bound": None,
            "value": value_json} | extra


def nested_list(depth):
    """A bare JSON list nested ``depth`` deep (built without recursion)."""
    v = []
    for _ in range(depth):
        v = [v]
    return v


def nested_seq(depth, leaf=1.0):
    """An encoded sequence nested ``depth`` deep (built without recursion)."""
    v = leaf
    for _ in range(depth):
        v = {"__seq__": "list", "items": [v]}
    return v


def array_json(dtype="<f8", shape=(3,), data=None):
    """An encoded array with any dtype string, shape and base64 data."""
    if data is None:
        data = base64.b64encode(np.zeros(3).tobytes()).decode()
    return {"__ndarray__": data, "dtype": dtype, "shape": list(shape) if isinstance(
        shape, tuple) else shape}


B64_24 = base64.b64encode(bytes(24)).decode()
HOSTILE = {  # case: (reference value, kind, student record, words the message must contain)
    "huge-int-equal": (5, "equal", raw("a", 10**400), "integer out of range"),
    "huge-int-close": (5.0, "close", raw("a", 10**400), "integer out of range"),
    "huge-int-bound": (0.5, "at_least", raw("a", 10**400), "integer out of range"),
    "deep-json-list": (1.0, "close", raw("a", nested_list(3000)), "not a record encoding"),
    "deep-seq": (1.0, "close", raw("a", nested_seq(400)), "nested more than 16"),
    "seq-17-deep": ([1.0], "close", raw("a", nested_seq(17)), "nested more than 16"),
    "huge-shape": (np.zeros(3), "close", raw("a", array_json(shape=[10**6, 10**6], data="")),
                   "too large"),
    "shape-bytes-mismatch": (np.zeros(3), "close", raw("a", array_json(shape=[5])),
                             "base64 text of 40 bytes"),
    "negative-shape": (np.zeros(3), "close", raw("a", array_json(shape=[-3])), "shape must be"),
    "float-shape": (np.zeros(3), "close", raw("a", array_json(shape=[3.0])), "shape must be"),
    "str-shape": (np.zeros(3), "close", raw("a", array_json(shape="3")), "shape must be"),
    "bool-shape": (np.zeros(3), "close", raw("a", array_json(shape=[True, 3])),
                   "shape must be"),
    "too-many-dims": (np.zeros(3), "close", raw("a", array_json(shape=[1] * 40)),
                      "shape must be"),
    "base64-garbage": (np.zeros(3), "close", raw("a", array_json(data="!" * 32)), "base64"),
    "base64-not-str": (np.zeros(3), "close", raw("a", array_json(data=[1, 2])), "base64"),
    "dtype-object": (np.zeros(3), "close", raw("a", array_json(dtype="O")), "dtype"),
    "dtype-void": (np.zeros(3), "close", raw("a", array_json(dtype="V8")), "dtype"),
    "dtype-unicode": (np.zeros(3), "close", raw("a", array_json(dtype="<U2")), "dtype"),
    "dtype-struct": (np.zeros(3), "close", raw("a", array_json(dtype="f8,f8")), "dtype"),
    "dtype-subarray": (np.zeros(3), "close", raw("a", array_json(dtype="(3,)f8")), "dtype"),
    "dtype-datetime": (np.zeros(3), "close", raw("a", array_json(dtype="<M8")), "dtype"),
    "dtype-invalid": (np.zeros(3), "close", raw("a", array_json(dtype="u3")), "dtype"),
    "dtype-not-str": (np.zeros(3), "close", raw("a", array_json(dtype=8)), "dtype"),
    "complex-for-real": (np.zeros(3), "close", raw("a", array_json(dtype="<c16", data=base64.
                         b64encode(np.zeros(3, complex).tobytes()).decode())), "numeric"),
    "array-extra-key": (np.zeros(3), "close", raw("a", array_json() | {"x": 1}),
                        "unknown record encoding"),
    "float-1e999": (1.0, "close", raw("a", {"__float__": "1e999"}), "__float__ must be"),
    "float-huge-int": (1.0, "close", raw("a", {"__float__": 10**400}), "__float__ must be"),
    "float-nan": (1.0, "close", raw("a", {"__float__": "nan"}), "NaN"),
    "nan-below-bound": (0.1, "at_most", raw("a", {"__float__": "nan"}), "finite number"),
    "seq-kind-set": ((1, 2), "equal", raw("a", {"__seq__": "set", "items": [1, 2]}),
                     "__seq__ must be"),
    "seq-items-dict": ((1, 2), "equal", raw("a", {"__seq__": "list", "items": {"0": 1}}),
                       "items must be a JSON list"),
    "unknown-dict": (1.0, "close", raw("a", {"__pickle__": "gASV"}), "unknown record encoding"),
    "bare-list": ((1, 2), "equal", raw("a", [1, 2]), "not a record encoding"),
    "bool-for-int": (1, "equal", raw("a", True), "expected int"),
    "missing-value": (1.0, "close", {"id": "a", "kind": "close"}, "no value"),
    "error-not-str": (1.0, "close", raw("a", None, error=["x"] * 10**5), "could not be recorded"),
    "too-many-items": ([0] * 3, "equal", raw("a", {"__seq__": "list", "items": [0] * 200_000}),
                       "more than 100000 items"),
    "huge-string": ("ok", "equal", raw("a", "x" * (checks.MAX_RECORD_BYTES + 1)),
                    f"more than {checks.MAX_RECORD_BYTES} bytes"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_record_fails_only_its_own_cell_with_a_message(case):
    ref_value, kind, bad, words = HOSTILE[case]
    ref = rec("a", ref_value, kind, bound=0.5 if kind in ("at_least", "at_most") else None)
    honest = rec("b", np.arange(3.0))
    bad_cell = judge_cell("t_bad", 2, [ref], [bad])
    assert (bad_cell.passed, bad_cell.points) == (False, 0.0)
    assert bad_cell.message.startswith("a: ")
    if "unreadable record (it breaks a limit" in bad_cell.message:
        # the verdict names no detail (it could carry kernel text); the decoder names the rule
        with pytest.raises(ValueError, match=re.escape(words)):
            checks.decode_value(bad["value"])
    else:
        assert words in bad_cell.message
    assert len(bad_cell.message) < 600
    good_cell = judge_cell("t_good", 3, [rec("b", np.arange(3.0))], [bad, honest])
    assert (good_cell.passed, good_cell.points) == (True, 3.0)


@pytest.mark.parametrize("student", [["not a dict"], [None, 3, [1]], [{"id": 7, "value": 1}],
                                     [{"value": 1.0}]], ids=["str", "junk", "int-id", "no-id"])
def test_records_that_are_not_dicts_or_lack_a_string_id_count_as_not_recorded(student):
    verdict = judge_cell("t", 1, [rec("a", 1.0)], student + [rec("b", 1.0)])
    assert not verdict.passed and verdict.message == "a: not recorded"
    assert "not a JSON object" in compare(rec("a", 1.0), "not a dict")


def test_many_records_are_judged_in_one_pass():
    student = [rec(f"x{i}", i) for i in range(100_000)] + [rec("a", 1.0)] * 3
    verdict = judge_cell("t", 1, [rec("a", 1.0)], student)
    assert not verdict.passed and "recorded 3 times" in verdict.message


def test_an_unexpected_error_while_comparing_costs_only_that_record(monkeypatch):
    import cs231n_grading.judge as judge

    def boom(*_):
        raise RecursionError("maximum recursion depth exceeded")
    monkeypatch.setattr(judge, "_close", boom)
    verdict = judge_cell("t", 1, [rec("a", 1.0)], [rec("a", 1.0)])
    assert not verdict.passed and "unreadable record (RecursionError" in verdict.message


def test_a_broken_reference_is_blamed_on_the_instructor_not_raised():
    ref = raw("a", {"__float__": "1e999"})
    assert "instructor" in compare(ref, rec("a", 1.0))
    assert "instructor" in compare(rec("a", 1.0, "at_least") | {"bound": "high"}, rec("a", 1.0))


@pytest.mark.parametrize("value", [
    True, 0, -(2**63) + 1, 2**63 - 1, 1.5, float("nan"), float("-inf"), "text", None,
    np.arange(6, dtype=np.int32).reshape(2, 3), np.float32(2.5), np.array(3.0), np.zeros((0, 4)),
    np.array([True, False]), np.array([1 + 2j]), (1, [2.0, (np.ones(2), "s")]), [],
    [[[[1]]]] * 2,
], ids=lambda v: type(v).__name__)
def test_honest_values_round_trip(value):
    back = decode_value(encode_value(value))
    assert type(back) is type(value) or isinstance(value, np.generic)
    if not (isinstance(value, float) and value != value):  # scalar NaN never equals itself
        assert compare(rec("a", value, "equal"), rec("a", value)) is None


def test_big_endian_arrays_decode_to_native_order_and_pass():
    big = np.arange(3.0).astype(">f8")
    got = decode_value(encode_value(big))
    assert got.dtype == np.dtype("<f8") and got.tolist() == [0.0, 1.0, 2.0]
    assert compare(rec("a", np.arange(3.0), "equal"), rec("a", big)) is None


@pytest.mark.parametrize("value, words", [
    (2**63, "integer out of range"), (nested_list(17), "nested more than 16"),
    (np.zeros(checks.MAX_RECORD_ELEMENTS + 1, np.int8), "array elements"),
    (np.array(["a"]), "dtype <U1"), ({"a": 1}, "type dict"),
], ids=["int", "deep", "elements", "unicode", "dict"])
def test_encode_value_refuses_what_the_judge_would_refuse(value, words):
    with pytest.raises(ValueError, match=words):
        encode_value(value)


@pytest.mark.slow
def test_the_audit_attacks_in_a_real_kernel_cost_only_their_own_cells(tmp_path):
    import shutil
    from pathlib import Path

    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from cs231n_grading.execute import run_notebook
    from cs231n_grading.kernels import make_kernel_manager
    from cs231n_grading.worker import judge_notebook

    lib = tmp_path / "lib"
    shutil.copytree(Path(__file__).parents[1] / "cs231n_lib", lib / "cs231n_lib")
    send = ("from IPython.display import display\nfrom cs231n_lib.checks import RECORD_MIME\n"
            "def send(check_id, value):\n    display({RECORD_MIME: {'id': check_id, 'kind': "
            "'equal', 'value': value}, 'text/plain': 'r'}, raw=True)\n")
    attacks = {
        "t_int": "send('a', 10**400)",
        "t_seq": "v = 1.0\nfor _ in range(400):\n    v = {'__seq__': 'list', 'items': [v]}\n"
                 "send('a', v)",
        "t_deep": "import sys\nsys.setrecursionlimit(100_000)\nv = []\nfor _ in range(3000):\n"
                  "    v = [v]\nsend('a', v)",
        "t_ok": "from cs231n_lib.checks import record\nrecord('a', 1.0)",
    }

    def test_cell(gid, source):
        return new_code_cell(source, metadata={"nbgrader": {
            "grade": True, "solution": False, "locked": True, "grade_id": gid, "points": 1,
            "schema_version": 3}})
    nb = new_notebook(cells=[new_code_cell(send)] + [test_cell(g, s) for g, s in attacks.items()])
    run = run_notebook(nb, lambda: make_kernel_manager(tmp_path, library_dir=lib),
                       cwd=str(tmp_path), cell_timeout=60, notebook_timeout=180)
    assert run.finished and not run.events  # no kernel restart was needed
    reference = {"cells": {gid: {"points": 1.0, "records": [rec("a", 1.0)]} for gid in attacks}}
    verdicts = {t["grade_id"]: t for t in judge_notebook(nb, reference)}
    assert verdicts["t_ok"]["passed"] and verdicts["t_ok"]["points"] == 1
    assert verdicts["t_int"]["message"].startswith("a: unreadable record")
    assert not verdicts["t_seq"]["passed"] and verdicts["t_seq"]["message"].startswith("a: ")
    assert verdicts["t_deep"]["message"] == "a: not recorded"
    assert any("could not read was dropped" in o.get("text", "") for o in nb.cells[3].outputs)
    assert not any(verdicts[g]["passed"] for g in ("t_int", "t_seq", "t_deep"))
    nbformat.writes(nb)  # the graded notebook can still be saved
