"""Student-facing messages in Chinese (issue 19): every ``tr("...")`` message of the library and
the grader has a current Chinese text, messages switch with the language, plots get a CJK font
when one is installed (and nothing breaks when none is), and the tools of the Chinese edition
(catalogue -> notebook, the catalogue update, the choice of the edition to grade) do their job.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import pickle
import re
import string
import subprocess
import sys
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import polib
import pytest
from matplotlib import font_manager

from cs231n_grading import execute, rules, worker
from cs231n_grading.editions import (
    BestOfEditions,
    edition_language,
    edition_name,
    edition_stem,
    languages,
    shown_note,
)
from cs231n_grading.feedback import header_html, status_text
from cs231n_grading.judge import judge_cell
from cs231n_grading.restore import nbg
from cs231n_grading.selfcheck import Verdict, report
from cs231n_grading.solution_stubs import name_stubs
from cs231n_grading.student_edition import stub_source
from cs231n_grading.translation import (
    SET_LANGUAGE,
    Sources,
    heading_anchor,
    headings,
    problems,
    read_catalogue,
    source_hash,
    translate_notebook,
    translate_rules_comment,
)
from cs231n_lib import i18n, vis_utils
from cs231n_lib.checks import assert_array, assert_value, pass_message

ROOT = Path(__file__).resolve().parents[1]
CATALOGUES = {  # package folder -> its message catalogue
    ROOT / "cs231n_lib": ROOT / "cs231n_lib" / "locale" / "zh.po",
    ROOT / "grading" / "cs231n_grading": ROOT / "grading" / "cs231n_grading" / "locale" / "zh.po",
}
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
CJK = re.compile(r"[\u4e00-\u9fff]")


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments."""
    return {t.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for t in node.targets if isinstance(t, ast.Name)}


MARKERS = ("tr", "N_")  # tr: translated now; N_: a Text translated when shown


def wrapped_messages(package: Path) -> dict[str, str]:
    """{msgid: "file:line"} of every ``tr(...)`` or ``N_(...)`` call in a package (AST scan);
    its first argument must be a string literal or a module-level string constant."""
    found = {}
    for py in sorted(package.rglob("*.py")):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        consts = _constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in MARKERS):
                continue
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.setdefault(arg.value, f"{py}:{node.lineno}")
            elif isinstance(arg, ast.Name) and arg.id in consts:
                found.setdefault(consts[arg.id], f"{py}:{node.lineno}")
            elif py.name != "i18n.py" and "locale" not in py.parts:  # tr's own definitions
                raise AssertionError(f"{py}:{node.lineno}: tr() needs a literal message")
    return found


def fields(text: str) -> set[str]:
    """The ``{field}`` names of a format string."""
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


@pytest.fixture
def zh():
    with i18n.using_language("zh"):
        yield


# --------------------------------------------------------------------------- catalogues complete

@pytest.mark.parametrize("package", list(CATALOGUES), ids=lambda p: p.name)
def test_every_wrapped_message_has_a_current_chinese_text(package):
    messages = wrapped_messages(package)
    assert len(messages) > 5
    entries = {e.msgid: e for e in polib.pofile(str(CATALOGUES[package]), wrapwidth=0)
               if not e.obsolete}
    missing = [f"{where}: {m!r}" for m, where in messages.items() if m not in entries]
    assert missing == [], "add to " + str(CATALOGUES[package]) + ":\n" + "\n".join(missing)
    for msgid in messages:
        entry = entries[msgid]
        assert entry.msgstr.strip() and not entry.fuzzy, f"{msgid!r}: no current translation"
        assert fields(entry.msgstr) == fields(msgid), msgid
        assert CJK.search(entry.msgstr) or not re.search(r"[a-z]{3}", msgid), msgid


def test_the_scan_finds_a_message_without_a_translation(tmp_path):
    (tmp_path / "m.py").write_text('X = "constant text"\ntr("literal text")\ntr(X)\n'
                                   'N_("later text", n=1)\n')
    assert set(wrapped_messages(tmp_path)) == {"literal text", "constant text", "later text"}
    (tmp_path / "bad.py").write_text("tr(f'{x}')\n")
    with pytest.raises(AssertionError, match="literal"):
        wrapped_messages(tmp_path)


def test_a_fuzzy_or_missing_translation_falls_back_to_english(tmp_path):
    po = polib.POFile(wrapwidth=0)
    po.append(polib.POEntry(msgid="ok {n}", msgstr="好 {n}"))
    po.append(polib.POEntry(msgid="old", msgstr="旧", flags=["fuzzy"]))
    po.save(str(tmp_path / "zh.po"))
    messages = i18n.Messages(tmp_path)
    assert messages.tr("ok {n}", "zh", n=1) == "好 1"
    assert messages.tr("old", "zh") == "old" and messages.tr("new", "zh") == "new"
    assert messages.tr("ok {n}", "en", n=1) == "ok 1"


# --------------------------------------------------------------------------- language switching

def test_language_comes_from_set_language_then_the_environment(monkeypatch):
    monkeypatch.setattr(i18n, "_current", None)
    monkeypatch.setenv("CS231N_LANG", "zh_CN.UTF-8")
    assert i18n.language() == "zh"
    monkeypatch.setenv("CS231N_LANG", "klingon")
    assert i18n.language() == "en"
    with i18n.using_language("zh"):
        assert i18n.language() == "zh"
    assert i18n.language() == "en"
    with pytest.raises(ValueError, match="'fr' is not one of"):
        i18n.set_language("fr")


def test_library_test_messages_in_chinese(zh):
    with pytest.raises(AssertionError, match="形状不对：应为 \\(2,\\)，实际为 \\(3,\\)"):
        assert_array("out", np.zeros(3), np.zeros(2))
    with pytest.raises(AssertionError, match="个数值不对"):
        assert_array("out", np.ones(2), np.zeros(2))
    with pytest.raises(AssertionError, match="应为 numpy.ndarray"):
        assert_array("out", [1.0], np.zeros(1))
    with pytest.raises(AssertionError, match="应为 int 类型"):
        assert_value("n", "3", 3)
    with pytest.raises(AssertionError, match="n：应为 3，实际为 4"):
        assert_value("n", 4, 3)
    assert pass_message("t_1") == "✓ t_1 通过（可见测试；评分时还会运行隐藏测试）"
    assert pass_message("t_1", "en").startswith("✓ t_1 passed")


def test_english_messages_unchanged():
    with pytest.raises(AssertionError, match=r"^out: wrong shape: expected \(2,\), got \(3,\)$"):
        assert_array("out", np.zeros(3), np.zeros(2))


def test_library_stub_speaks_the_kernels_language():
    new, _ = stub_source('from x import exercise\n\n\n@exercise("01_convolution", "2. Forward")'
                         '\ndef conv(x):\n    """Doc."""\n    return x\n')
    assert "not implemented yet: write your code in conv" in new  # readable in the source
    ns = {"__name__": "lib"}
    exec(compile(new.replace("from x import exercise", "exercise = lambda *a: (lambda f: f)"),
                 "<lib>", "exec"), ns)  # noqa: S102 - our own test source
    with i18n.using_language("zh"), pytest.raises(NotImplementedError,
                                                  match="^尚未实现：请在 conv 中编写"):
        ns["conv"](1)
    assert i18n.stub_text("some other text") == "some other text"


def test_notebook_stubs_of_the_chinese_edition(zh):
    cell = "def outer(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    out = name_stubs(cell, "02_padding_stride", "3")
    assert '尚未实现：请在 outer 中编写你的代码（笔记本 02_padding_stride，第 3 部分）' in out
    ast.parse(out)


def test_judge_and_check_and_feedback_in_chinese(zh):
    ref = [{"id": "a", "kind": "close", "value": 1.0, "rtol": 0, "atol": 0}]
    result = judge_cell("t", 2, ref, [], error="ValueError: x")
    assert result.message == "a：没有记录 [该单元格抛出了 ValueError]"
    text = report([Verdict("1. 卷积（5 分）", "t", 0, 2, "NotImplementedError: x",
                           exercise="f (solution cell s)"),
                   Verdict("1. 卷积（5 分）", "h", 0, 1, None, hidden=True)], ["n"])
    assert "可见测试 0 / 2；隐藏测试 1 分在评分时评判" in text
    assert "下一步：「1. 卷积（5 分）」部分中的 f (solution cell s) 未通过 t" in text
    assert "隐藏测试，只在评分时运行" in text and "备注：n" in text
    assert "  未通过 t (2 分): NotImplementedError: x" in text  # the verdict word too
    head = header_html("li", "01_basics", {"notebook": "01_basics", "status": "graded",
                                           "notes": [], "tests": [], "lang": "zh"})
    assert "状态：" in head and "已评分" in head
    assert status_text("not graded: kernel died", "zh") == "未评分：kernel died"
    assert "Status:" in header_html("lee", "01_basics", None, lang="en")


def _ruled_submission():
    """The fixture notebook with a forbidden import in solution cell relu_impl and an added
    cell calling exec; its source notebook."""
    src = _fixture_notebook()
    sub = copy.deepcopy(src)
    cell = next(c for c in sub.cells if nbg(c).get("grade_id") == "relu_impl")
    cell.source = "import ctypes\n" + cell.source
    sub.cells.append(nbformat.v4.new_code_cell('exec("1")'))
    return sub, src


def test_rule_messages_in_english_and_chinese():
    sub, src = _ruled_submission()
    tests = [{"grade_id": "test_relu", "points": 2.0, "passed": True, "message": "passed"}]
    with i18n.using_language("en"):
        _, en = rules.check(tests, sub, src)
    assert en == ["rule: solution cell relu_impl must not use ctypes (ctypes) (line 1)",
                  "rule: added cell 1 must not use exec (line 1)"]
    with i18n.using_language("zh"):
        judged, zh = rules.check(tests, sub, src)
    assert zh == ["规则：解答单元格 relu_impl 第 1 行不得使用 ctypes（ctypes）",
                  "规则：你添加的第 1 个单元格 第 1 行不得使用 exec"]
    assert judged[0]["message"] == "；".join(zh).replace("；", "; ") and judged[0]["points"] == 0


def test_the_grader_rules_comment_of_the_chinese_edition():
    cell = nbformat.v4.new_code_cell(metadata={"cs231n": {"rules": {
        "forbid": ["scipy", "cs231n_lib"], "allow": ["cs231n_lib.shapes"], "require": ["loop"]}}},
        source="# Grader rules for this cell (checked on your code): do not use scipy, "
               "cs231n_lib; allowed:\n# cs231n_lib.shapes; use a for or while loop (or a "
               "comprehension).\ndef f(x):\n    return x\n")
    assert rules.Rules.from_metadata(cell.metadata).comment("en") + "\n" + \
        "def f(x):\n    return x\n" == cell.source  # as the course build writes it
    zh = translate_rules_comment(cell, "zh")
    assert zh == ("# 本单元格的评分规则（评分程序会检查你的代码）：不得使用 scipy, "
                  "cs231n_lib；允许使用\n"
                  "# cs231n_lib.shapes；须使用 for 或 while 循环（或推导式）。\n"
                  "def f(x):\n    return x\n")
    cell.source = "def f(x):\n    return x\n"  # the comment was edited away: left alone
    assert translate_rules_comment(cell, "zh") == cell.source


def test_a_deferred_message_is_english_as_a_str_and_survives_pickling():
    text = rules.N_("{cell} (used by {user})", cell=rules.N_("added cell {number}", number=2),
                    user=rules.N_("solution cell {id}", id="conv"))
    assert text == "added cell 2 (used by solution cell conv)" and "used by" in text
    again = pickle.loads(pickle.dumps(text))
    assert again == text
    assert again.shown("zh") == "你添加的第 2 个单元格（解答单元格 conv 用到了它）"
    with i18n.using_language("zh"):
        assert text.shown() == again.shown("zh") and str(text) == text.shown("en")


def test_grader_events_and_notes_in_chinese(zh):
    deep = 0
    for _ in range(execute.MAX_OUTPUT_DEPTH + 1):
        deep = [deep]
    assert execute._json_problem(deep) == f"嵌套超过 {execute.MAX_OUTPUT_DEPTH} 层"
    nb = _fixture_notebook()
    assert execute._label(nb, 4) == "第 4 个单元格（test_relu）"
    assert worker._skip_notes(["a is a symbolic link"] * 6) == (
        ["未复制到评分目录：a is a symbolic link（只复制普通文件）"] * 5
        + ["未复制到评分目录：另有 1 项"])
    note = "tampering: 测试单元格 t 被修改过（已恢复）"
    assert shown_note(note, "zh") == "受保护的单元格被改动：测试单元格 t 被修改过（已恢复）"
    assert shown_note(note, "en") == note and shown_note("other", "zh") == "other"
    with i18n.using_language("en"):
        assert execute._label(nb, 4) == "cell 4 (test_relu)" and execute._label(nb, 0) == "cell 0"


def test_the_language_of_one_thread_does_not_leak_into_another():
    import threading

    seen = {}

    def other():
        seen["other"] = i18n.language()

    with i18n.using_language("zh"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert i18n.language() == "zh"
    assert seen["other"] == i18n.language()


def test_student_command_help_in_chinese():
    env = {"CS231N_LANG": "zh", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "cs231n_grading", "check", "--help"],
                         capture_output=True, text=True, check=True, env=env).stdout
    assert "中文版 NN_name.zh.ipynb" in out
    out = subprocess.run([sys.executable, "-m", "cs231n_grading", "--help"],
                         capture_output=True, text=True, check=True, env=env).stdout
    assert "像评分程序那样运行" in out and "JupyterLab" in out


# --------------------------------------------------------------------------- fonts

def test_chinese_plots_fall_back_silently_without_a_cjk_font(monkeypatch):
    monkeypatch.setattr(vis_utils, "_first_cjk", lambda manager: None)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    families = list(np.atleast_1d(matplotlib.rcParams["font.family"]))
    with i18n.using_language("en"):
        i18n.set_language("zh")  # no error, no font added
    assert list(np.atleast_1d(matplotlib.rcParams["font.family"])) == families
    assert vis_utils.term("卷积", "convolution") == "convolution"


def test_chinese_plots_use_a_cjk_font_when_installed(monkeypatch):
    monkeypatch.setitem(matplotlib.rcParams, "font.family", ["sans-serif"])
    monkeypatch.setattr(vis_utils, "_first_cjk", lambda manager: "Noto Sans CJK SC")
    with i18n.using_language("en"):
        i18n.set_language("zh")
    assert matplotlib.rcParams["font.family"] == ["sans-serif", "Noto Sans CJK SC"]
    assert vis_utils.term("卷积", "convolution") == "卷积 convolution"


# --------------------------------------------------------------------------- translation tools

def _fixture_notebook():
    return nbformat.read(FIXTURE / "assignments" / "01_basics" / "01_basics.ipynb", 4)


def test_translate_notebook_replaces_prose_only():
    nb = _fixture_notebook()
    nb.cells[0].source += "\n\nSee [part 1](../02_loops/02_loops.ipynb)."
    po = read_catalogue(FIXTURE / "locale" / "zh" / "01_basics.po")
    link = "\n\n见 [第 1 部分](../02_loops/02_loops.ipynb)。"
    po[0].msgid, po[0].msgstr = nb.cells[0].source, po[0].msgstr + link
    po[0].comment = f"cell ?\nen-sha256 {source_hash(nb.cells[0].source)}"
    zh = translate_notebook(nb, po, "zh")
    assert zh.metadata["cs231n"] == {"lang": "zh"} and "cs231n" not in nb.metadata
    assert "](../02_loops/02_loops.zh.ipynb)" in zh.cells[0].source
    assert zh.cells[1].source == SET_LANGUAGE.format(lang="zh") + "\n" + nb.cells[1].source
    for en, cn in zip(nb.cells[2:], zh.cells[2:], strict=True):
        assert (en.source == cn.source) == (en.cell_type == "code")
        assert en.metadata == cn.metadata and en.get("id") == cn.get("id")


def _with_heading_links(links: str):
    """The fixture notebook whose first cell (English and Chinese) ends with ``links``, and its
    catalogue."""
    nb = _fixture_notebook()
    po = read_catalogue(FIXTURE / "locale" / "zh" / "01_basics.po")
    entry = next(e for e in po if e.msgid == nb.cells[0].source)
    nb.cells[0].source += links
    entry.msgid, entry.msgstr = nb.cells[0].source, entry.msgstr + links
    entry.comment = f"cell ?\nen-sha256 {source_hash(entry.msgid)}"
    return nb, po


def test_links_to_headings_point_at_the_translated_headings():
    nb, po = _with_heading_links("\n\n[a](#1.-ReLU-(3-points)), [b](../02_loops/02_loops.ipynb"
                                 "#1.-Running-total-(3-points)), [c](02_loops.ipynb)")
    zh = translate_notebook(nb, po, "zh", sources=Sources(FIXTURE / "assignments",
                                                          FIXTURE / "locale" / "zh"))
    assert zh.cells[0].source.endswith("[a](#1.-ReLU-激活函数（3-分）), [b](../02_loops/"
                                       "02_loops.zh.ipynb#1.-逐项求和（3-分）), "
                                       "[c](02_loops.zh.ipynb)")


def test_a_link_to_a_heading_that_cannot_be_translated_is_an_error():
    sources = Sources(FIXTURE / "assignments", FIXTURE / "locale" / "zh")
    nb, po = _with_heading_links("\n\n[x](../02_loops/02_loops.ipynb#No-such-heading)")
    with pytest.raises(ValueError, match="#No-such-heading of 02_loops, which has no such "
                                         "heading .*#1.-Running-total-"):
        translate_notebook(nb, po, "zh", sources=sources)
    with pytest.raises(ValueError, match="sources were not given"):
        translate_notebook(*_with_heading_links("[x](02_loops.ipynb#02-Loops)"), "zh")
    nb, po = _with_heading_links("\n\n[x](#2.-Add-(1-point))")
    entry = next(e for e in po if "## 2." in e.msgstr)
    entry.msgstr = entry.msgstr.replace("## 2.", "2.")  # the translation lost the heading
    with pytest.raises(ValueError, match="zh translation has no heading at that place"):
        translate_notebook(nb, po, "zh", sources=sources)
    loose = translate_notebook(nb, po, "zh", strict=False)
    assert loose.cells[0].source.endswith("[x](#2.-Add-(1-point))")


def test_heading_anchors_as_jupyterlab_derives_them():
    text = "# Title one\n```\n# not a heading\n```\n## 2. `conv` and **pool** ##\nx\n"
    assert headings(text) == ["Title one", "2. `conv` and **pool**"]
    assert [heading_anchor(h) for h in headings(text)] == ["Title-one", "2.-conv-and-pool"]
    assert heading_anchor("See [the notes](http://x) (5 分)") == "See-the-notes-(5-分)"


def test_translate_notebook_refuses_missing_fuzzy_and_stale_entries():
    nb = _fixture_notebook()
    po = read_catalogue(FIXTURE / "locale" / "zh" / "01_basics.po")
    assert problems(nb, po) == []
    po[0].flags.append("fuzzy")
    po[1].comment = "cell ?\nen-sha256 0000000000000000"
    po[2].msgstr = ""
    nb.cells[-3].source += " (changed)"  # its translation is now missing
    assert sorted(p.what for p in problems(nb, po)) == ["empty", "fuzzy", "missing", "stale"]
    with pytest.raises(ValueError, match="4 markdown cell"):
        translate_notebook(nb, po, "zh")
    loose = translate_notebook(nb, po, "zh", strict=False)
    assert loose.cells[0].source == nb.cells[0].source  # left in English


def _course_i18n():
    spec = importlib.util.spec_from_file_location("course_i18n", ROOT / "course_src" / "i18n.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_update_keeps_marks_fuzzy_and_obsoletes(tmp_path):
    tool = _course_i18n()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Same.", id="a"),
        nbformat.v4.new_markdown_cell("Changed now.", id="b"),
        nbformat.v4.new_markdown_cell("Brand new.", id="c")])
    old = polib.POFile(wrapwidth=0)
    for cid, en, zh in (("a", "Same.", "相同。"), ("b", "Changed.", "改了。"),
                        ("gone", "Gone.", "没了。")):
        old.append(polib.POEntry(msgid=en, msgstr=zh,
                                 comment=f"cell {cid}\nen-sha256 {source_hash(en)}"))
    po, counts = tool.updated(nb, old, "x", "zh")
    assert counts == {"kept": 1, "fuzzy": 1, "new": 1, "obsolete": 1}
    by = {e.msgid: e for e in po}
    assert by["Same."].msgstr == "相同。" and not by["Same."].fuzzy
    changed = by["Changed now."]
    assert changed.fuzzy and changed.previous_msgid == "Changed." and changed.msgstr == "改了。"
    assert f"en-sha256 {source_hash('Changed now.')}" in changed.comment
    assert by["Brand new."].msgstr == "" and by["Gone."].obsolete
    path = tmp_path / "x.po"
    po.save(str(path))
    assert "#| msgid \"Changed.\"" in path.read_text() and "#~ msgid \"Gone.\"" in path.read_text()


def test_check_lists_what_is_left(tmp_path, capsys):
    tool = _course_i18n()
    assert tool.check(FIXTURE / "assignments", FIXTURE / "locale", "zh") == 0
    assert tool.check(FIXTURE / "assignments", tmp_path, "zh") == 1
    assert "no catalogue" in capsys.readouterr().out


# --------------------------------------------------------------------------- editions

def test_edition_names():
    assert edition_name("01_x", "zh") == "01_x.zh.ipynb" and edition_name("01_x", "en") == \
        "01_x.ipynb"
    assert edition_stem("01_x.zh") == "01_x" and edition_stem("01_x") == "01_x"
    assert edition_language("a/01_x.zh.ipynb") == "zh" and edition_language("01_x.ipynb") == "en"
    assert languages("all") == ["en", "zh"]
    with pytest.raises(ValueError, match="--lang 'fr'"):
        languages("fr")


class _Task:
    def __init__(self, student, submission):
        self.student, self.assignment, self.notebook = student, "a", "n"
        self.submission = Path(submission)


def test_best_of_editions_waits_for_both_and_keeps_the_higher():
    tasks = [_Task("s", "n.ipynb"), _Task("s", "n.zh.ipynb"), _Task("t", "n.ipynb")]
    got = []
    merge = BestOfEditions(tasks, lambda i, r: got.append((i, r)))
    merge(2, {"status": "graded", "score": 1.0, "notes": []})
    merge(0, {"status": "graded", "score": 2.0, "max_score": 3.0, "notes": []})
    assert [i for i, _ in got] == [2]  # the pair waits
    merge(1, {"status": "graded", "score": 3.0, "max_score": 3.0, "notes": ["x"]})
    i, res = got[-1]
    assert i == 1 and res["score"] == 3.0 and res["notes"][1:] == ["x"]
    assert "n.zh.ipynb" in res["notes"][0] and "n.ipynb 得分 2 / 3" in res["notes"][0]
    got.clear()
    merge = BestOfEditions(tasks[:2], lambda i, r: got.append((i, r)))
    merge(1, {"status": "not graded: x", "score": 0.0, "notes": []})
    merge(0, {"status": "graded", "score": 0.0, "notes": []})
    assert got[0][0] == 0  # graded beats not graded; ties keep English
