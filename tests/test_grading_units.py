"""Unit tests of the grading layer's pure parts (no kernels): fast."""

import textwrap
import warnings

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from cs231n_grading.config import load_config
from cs231n_grading.judge import cell_records, compare, judge_cell
from cs231n_grading.leakscan import hidden_test_lines, scan_library, scan_release
from cs231n_grading.restore import InvalidSubmission, load_notebook_text, nbg, restore
from cs231n_grading.student_edition import build_student_edition, find_exercises, stub_source
from cs231n_lib.checks import RECORD_MIME, encode_value

LIB = textwrap.dedent('''\
    """Module."""
    from cs231n_lib.exercise import exercise


    def given(x):
        """Kept."""
        return x + 1


    @exercise("01_convolution", "2. Naive forward pass")
    def conv(x,
             w):
        """Doc.

        Inputs:
        - x
        """
        # a hint that must go
        out = x * w
        return out


    class Layer:
        @exercise("02_padding_stride", "1. Padding")
        def forward(self, x):
            return x - 1
    ''')


def test_stub_source_keeps_signature_docstring_and_given_code():
    new, found = stub_source(LIB)
    assert [e.qualname for e in found] == ["conv", "Layer.forward"]
    ns = {}
    exec(compile(new, "<lib>", "exec"), ns)  # noqa: S102 - our own test source
    assert ns["given"](1) == 2
    assert ns["conv"].__doc__.startswith("Doc.")
    with pytest.raises(NotImplementedError, match="01_convolution, section 2. Naive forward"):
        ns["conv"](1, 2)
    with pytest.raises(NotImplementedError, match="02_padding_stride, section 1. Padding"):
        ns["Layer"]().forward(1)
    assert "x * w" not in new and "a hint" not in new and "x - 1" not in new


def test_stub_source_rejects_one_line_exercise_and_non_literal_tags():
    with pytest.raises(ValueError, match="own lines"):
        stub_source('@exercise("a", "b")\ndef f(x): return x\n')
    with pytest.raises(ValueError, match="two string literals"):
        find_exercises('@exercise(NAME, "b")\ndef f(x):\n    return x\n')


def _package(root, name, source):
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(source)
    return pkg


def test_student_edition_passes_library_scan_and_reference_fails_it(tmp_path):
    pkg = _package(tmp_path, "lib_ref", LIB)
    stubbed = build_student_edition(pkg, tmp_path / "edition")
    assert len(stubbed) == 2
    assert scan_library(pkg, tmp_path / "edition" / "lib_ref") == []
    problems = scan_library(pkg, pkg)  # the reference itself "released"
    assert len(problems) == 2 and all("keeps a body" in p for p in problems)


def _nb_with_hidden(tmp_path):
    src = new_notebook(cells=[new_code_cell(
        "x = 1\n### BEGIN HIDDEN TESTS\nrecord('h', secret_function(3))\n"
        "assert_close(secret_function(4), 17)\n### END HIDDEN TESTS\n")])
    path = tmp_path / "src.ipynb"
    nbformat.write(src, path)
    return path


def test_scan_release_finds_markers_and_copied_hidden_blocks(tmp_path):
    source = _nb_with_hidden(tmp_path)
    rel = tmp_path / "release"
    rel.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), rel / "ok.ipynb")
    assert scan_release([rel], [source]) == []
    nbformat.write(new_notebook(cells=[new_code_cell(
        "x = 1\nrecord('h', secret_function(3))\nassert_close(secret_function(4), 17)")]),
        rel / "copied.ipynb")
    (rel / "helper.py").write_text("### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION\n")
    problems = scan_release([rel], [source])
    assert any("copied.ipynb" in p and "hidden test" in p for p in problems)
    assert any("helper.py" in p and "BEGIN SOLUTION" in p for p in problems)
    assert hidden_test_lines(nbformat.read(source, 4).cells[0].source) == [
        "record('h', secret_function(3))", "assert_close(secret_function(4), 17)"]


def rec(check_id, value, kind="close", **kw):
    return {"id": check_id, "kind": kind, "rtol": kw.get("rtol", 1e-7),
            "atol": kw.get("atol", 1e-9), "bound": kw.get("bound"), "value": encode_value(value)}


@pytest.mark.parametrize("ref, got, ok", [
    (rec("a", np.arange(3.0)), rec("a", np.arange(3.0) + 1e-12), True),
    (rec("a", np.arange(3.0)), rec("a", np.arange(3.0) + 1e-3), False),
    (rec("a", np.arange(3.0)), rec("a", np.arange(4.0)), False),
    (rec("a", np.arange(3.0)), rec("a", "nope"), False),
    (rec("a", 2.0), rec("a", np.float64(2.0)), True),
    (rec("a", (2, 3), kind="equal"), rec("a", (2, 3)), True),
    (rec("a", (2, 3), kind="equal"), rec("a", [2, 3]), False),
    (rec("a", 5, kind="equal"), rec("a", 5.0), True),
    (rec("a", 5, kind="equal"), rec("a", True), False),
    (rec("a", 0.9, kind="at_least", bound=0.5), rec("a", 0.6, kind="at_least", bound=9), True),
    (rec("a", 0.9, kind="at_least", bound=0.5), rec("a", 0.4, kind="at_least", bound=0), False),
    (rec("a", 0.1, kind="at_most", bound=0.5), rec("a", float("nan")), False),
], ids=["close", "far", "shape", "type", "scalar-vs-0d", "tuple", "tuple-vs-list", "int-float",
        "bool-not-int", "at-least-ref-bound", "below-bound", "nan"])
def test_compare_takes_kind_and_tolerance_from_the_reference(ref, got, ok):
    assert (compare(ref, got) is None) == ok


def test_judge_cell_requires_each_reference_record_exactly_once():
    ref = [rec("a", 1, kind="equal"), rec("b", np.ones(2))]
    good = [rec("b", np.ones(2)), rec("a", 1), rec("extra", 3)]
    assert judge_cell("t", 2, ref, good).points == 2
    twice = judge_cell("t", 2, ref, good + [rec("a", 1)])
    assert twice.points == 0 and "recorded 2 times" in twice.message
    missing = judge_cell("t", 2, ref, [rec("a", 1)], error="NotImplementedError: x")
    assert missing.points == 0 and "b: not recorded" in missing.message
    assert "NotImplementedError" in missing.message
    assert judge_cell("t", 2, [], good).points == 0  # nothing to compare: never free points


def test_cell_records_reads_only_record_outputs():
    cell = new_code_cell("")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={RECORD_MIME: rec("a", 1),
                                                     "text/plain": "[recorded a]"}),
        nbformat.v4.new_output("stream", name="stdout", text="{'id': 'b'}"),
        nbformat.v4.new_output("display_data", data={RECORD_MIME: "not a dict"}),
    ]
    assert [r["id"] for r in cell_records(cell)] == ["a"]


def meta(gid, **flags):
    m = {"schema_version": 3, "grade": False, "solution": False, "locked": False,
         "grade_id": gid}
    m.update(flags)
    return {"nbgrader": m}


def _source():
    return new_notebook(cells=[
        new_markdown_cell("# Title"),
        new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION",
                      metadata=meta("impl", solution=True)),
        new_code_cell("record('f', f())\n### BEGIN HIDDEN TESTS\nrecord('g', f())\n"
                      "### END HIDDEN TESTS", metadata=meta("test_f", grade=True, locked=True,
                                                            points=2)),
        new_markdown_cell("answer", metadata=meta("why", grade=True, solution=True, points=1)),
    ])


def _release():
    nb = _source()
    nb.cells[1].source = "def f():\n    raise NotImplementedError()"
    nb.cells[2].source = "record('f', f())"
    return nb


def test_restore_untouched_submission_has_no_notes_and_hidden_tests():
    sub = _release()
    sub.cells[1].source = "def f():\n    return 1"
    out = restore(sub, _source(), _release())
    assert out.notes == []
    assert [c.source for c in out.nb.cells][1:3] == ["def f():\n    return 1",
                                                    _source().cells[2].source]


def test_restore_undoes_tampering_and_notes_each_change():
    sub = _release()
    del sub.cells[2]  # deleted test cell
    sub.cells[1].cell_type = "markdown"  # flipped type (as a student could in the JSON)
    sub.cells[1].metadata["nbgrader"]["points"] = 100
    sub.cells.insert(0, new_code_cell("x = 1", metadata=meta("bonus", grade=True, points=50)))
    out = restore(sub, _source(), _release())
    notes = " | ".join(out.notes)
    assert "test cell test_f was deleted" in notes
    assert "type changed" in notes and "metadata changed" in notes
    assert "extra cell bonus" in notes
    kinds = [(c.cell_type, nbg(c).get("grade_id")) for c in out.nb.cells]
    assert kinds == [("code", None), ("markdown", None), ("code", "impl"), ("code", "test_f"),
                     ("markdown", "why")]


def test_restore_reorder_and_edited_test_cell():
    sub = _release()
    sub.cells[2].source = "record('f', 1)  # forged"
    sub.cells[1], sub.cells[2] = sub.cells[2], sub.cells[1]
    out = restore(sub, _source(), _release())
    assert any("reordered" in n for n in out.notes)
    assert any("test cell test_f was edited" in n for n in out.notes)
    assert [nbg(c).get("grade_id") for c in out.nb.cells][1:3] == ["impl", "test_f"]
    assert "forged" not in out.nb.cells[2].source


@pytest.mark.parametrize("text, reason", [
    (b"{not json", "invalid JSON"),
    (b"[1, 2]", "not a notebook"),
    (b'{"cells": [], "nbformat": 3}', "unsupported nbformat"),
    (b'{"cells": [{"cell_type": "weird"}], "nbformat": 4}', "cell 0"),
])
def test_load_notebook_text_rejects_broken_files_with_a_reason(text, reason):
    with pytest.raises(InvalidSubmission, match=reason):
        load_notebook_text(text)


def test_load_config_timeouts_and_unknown_keys(tmp_path):
    path = tmp_path / "nbgrader_config.py"
    path.write_text("c = get_config()\nc.CourseGrading.cell_timeout = 7\n"
                    "c.CourseGrading.timeouts = {'06_training': {'cell': 60}}\n")
    cfg = load_config(path)
    assert cfg.cell_timeout_for("01_convolution") == 7
    assert cfg.cell_timeout_for("06_training") == 60
    assert cfg.course_dir == tmp_path / "course"
    path.write_text("c = get_config()\nc.CourseGrading.cel_timeout = 7\n")
    with pytest.raises(ValueError, match="cel_timeout"):
        load_config(path)


def _maybe_die(task):
    import os
    if task["die"]:
        os._exit(3)  # takes its worker process down, as a runaway submission could
    return {"ok": task["n"]}


def test_run_pool_survives_a_task_that_kills_its_worker():
    from cs231n_grading.autograde import run_pool

    tasks = [{"n": i, "die": i == 2} for i in range(5)]
    seen = []
    results = run_pool(_maybe_die, tasks, 2, desc="test", on_result=lambda i, r: seen.append(i))
    assert results[2] == {"error": "grading worker crashed"}
    assert [r["ok"] for i, r in enumerate(results) if i != 2] == [0, 1, 3, 4]
    assert sorted(seen) == list(range(5))


def test_demo_only_wipes_folders_it_made(tmp_path):
    from cs231n_grading.class_demo import MARKER, fresh_course_dir

    real = tmp_path / "real"
    real.mkdir()
    (real / "gradebook.db").write_text("precious")
    with pytest.raises(ValueError, match="did not make"):
        fresh_course_dir(real)
    assert (real / "gradebook.db").read_text() == "precious"
    demo = tmp_path / "demo"
    fresh_course_dir(demo)
    (demo / "old").write_text("x")
    fresh_course_dir(demo)
    assert sorted(p.name for p in demo.iterdir()) == [MARKER]


def test_fixture_notebooks_are_committed_clean_and_match_their_builder():
    import importlib.util
    from pathlib import Path

    here = Path(__file__).parent / "fixtures" / "course_small"
    spec = importlib.util.spec_from_file_location("build_fixture", here / "build_fixture.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for name, cells in builder.NOTEBOOKS.items():
        committed = nbformat.read(here / "assignments" / name / f"{name}.ipynb", 4)
        assert committed == builder.notebook(cells), name
        for cell in committed.cells:
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None


def test_check_verdicts_skip_hidden_only_cells_and_group_by_section():
    from cs231n_grading.selfcheck import report, verdicts

    def test_cell(gid, source, outputs=()):
        cell = new_code_cell(source, metadata=meta(gid, grade=True, locked=True, points=2))
        cell.execution_count = 1
        cell.outputs = list(outputs)
        return cell

    err = nbformat.v4.new_output("error", ename="AssertionError", evalue="relu(x): wrong shape",
                                 traceback=[])
    nb = new_notebook(cells=[
        new_markdown_cell("## 1. ReLU"), test_cell("t_ok", "record('a', 1)"),
        test_cell("t_hidden", '"""Hidden tests."""\n# nothing visible'),
        new_markdown_cell("## 2. Add"), test_cell("t_bad", "assert_array(...)", [err])])
    got = verdicts(nb)
    assert [(v.section, v.grade_id, v.points, v.hidden) for v in got] == [
        ("1. ReLU", "t_ok", 2, False), ("1. ReLU", "t_hidden", 0, True),
        ("2. Add", "t_bad", 0, False)]
    text = report(got, [])
    assert "1. ReLU: visible tests 2 / 2; hidden tests 2 points are judged" in text
    assert "2. Add: visible tests 0 / 2\n" in text
    assert "FAIL t_bad (2 points): AssertionError: relu(x): wrong shape" in text
    assert "Total: visible tests 2 / 4; hidden tests 2 points are judged when graded" in text
    assert 'next: the code above it, in part "2. Add", fails t_bad' in text


def test_thread_env_sets_every_pool_to_the_share():
    from cs231n_grading.kernels import THREAD_VARS, thread_env

    assert thread_env(None) == {}
    assert thread_env(3) == dict.fromkeys(THREAD_VARS, "3")
    assert thread_env(0) == dict.fromkeys(THREAD_VARS, "1")
    assert "CS231N_NUM_THREADS" in THREAD_VARS and "OPENBLAS_NUM_THREADS" in THREAD_VARS


def test_deep_notebook_metadata_is_an_invalid_submission():
    """Notebook-level metadata nested deeply once reached nbformat's recursion limit (a
    'grader error'); it is refused with a reason like a cell's."""
    from cs231n_grading.restore import InvalidSubmission, load_notebook_text
    deep = "[" * 200 + "]" * 200
    text = '{"nbformat": 4, "nbformat_minor": 5, "cells": [], "metadata": {"x": ' + deep + "}}"
    with pytest.raises(InvalidSubmission, match="the notebook has metadata nested deeper"):
        load_notebook_text(text)
    ok = load_notebook_text('{"nbformat": 4, "nbformat_minor": 5, "cells": [], '
                            '"metadata": {"kernelspec": {"name": "python3"}}}')
    assert ok.metadata["kernelspec"]["name"] == "python3"


def test_run_pool_with_nothing_to_do_starts_no_process(monkeypatch):
    """A rerun with everything already graded must not pay for a process pool."""
    from cs231n_grading import autograde

    def no_pool():
        raise AssertionError("a process pool was started for no task")

    monkeypatch.setattr(autograde, "_context", no_pool)
    assert autograde.run_pool(len, [], 2, desc="nothing") == []


def test_restore_takes_a_submission_whose_cells_have_no_ids():
    # nbformat < 4.5 (Google Colab writes 4.0) has no cell ids; nbformat warns that a missing
    # id "will become a hard error", which would leave such a notebook ungraded.
    sub = _release()
    sub.nbformat_minor = 4
    sub.cells.append(new_code_cell("x = 1"))
    for cell in sub.cells:
        del cell["id"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = restore(sub, _source(), _release())
    ids = [c["id"] for c in out.nb.cells]
    assert len(set(ids)) == len(ids) == 5 and out.nb.cells[-1].source == "x = 1"
