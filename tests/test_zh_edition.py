"""The Chinese edition (issue 19): catalogues complete and fresh, notebooks mostly Chinese with
formulas and code intact, runnable with the solutions, released beside the English ones with the
same grade ids and points, and graded by the same tests (fixture course): a Chinese submission
scores what the English one does, the both-submitted rule, Chinese feedback and ``check``.

The course's catalogues (course_src/locale/zh/*.po) are filled by translators; the tests on them
fail until every markdown cell has a current translation (``python course_src/i18n.py check``
lists what is left).
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import nbformat
import notebook_utils as nbu
import pytest

from cs231n_grading.autograde import autograde
from cs231n_grading.cli import main
from cs231n_grading.config import load_config
from cs231n_grading.feedback import feedback
from cs231n_grading.release import release
from cs231n_grading.restore import nbg
from cs231n_grading.rules import Rules
from cs231n_grading.samples import fill
from cs231n_grading.status import StatusStore
from cs231n_grading.translation import (
    SET_LANGUAGE,
    Sources,
    problems,
    read_catalogue,
    translate_notebook,
)
from cs231n_lib.checks import pass_message

FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"
NAMES = nbu.notebook_names()
LOCALE = nbu.COURSE_SRC / "locale" / "zh"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
LATIN = re.compile(r"[A-Za-z]")
MATH = re.compile(r"\$\$.+?\$\$|\$[^$]+\$", re.S)  # inline formulas and spans may wrap lines
CODE = re.compile(r"```.*?```|`[^`]+`", re.S)
TEXT_IN_MATH = re.compile(r"\\text\{[^}]*\}")  # words inside a formula are translated
URL = re.compile(r"\]\([^)]*\)|https?://\S+")
ENGLISH_QUOTE = re.compile(r"“[^”]*”")
RENDERED = re.compile(r'<div class="text_cell_render[^"]*">(.*?)</div>\s*</div>', re.S)


def zh_notebook(name: str, strict: bool = True) -> nbformat.NotebookNode:
    """The Chinese source notebook of course notebook ``name`` (``strict``: every markdown cell
    must have a current translation; else untranslated ones stay English)."""
    return translate_notebook(nbu.read(name), read_catalogue(LOCALE / f"{name}.po"), "zh",
                              strict=strict, sources=Sources(nbu.ASSIGNMENTS, LOCALE))


def english_code(cell) -> str:
    """A Chinese notebook's code cell as the English one has it: without the set_language line,
    with the English pass line and the English grader-rules comment."""
    text = cell.source.removeprefix(SET_LANGUAGE.format(lang="zh") + "\n")
    rules = Rules.from_metadata(cell.metadata)
    if rules.forbid or rules.require:
        assert text.startswith(rules.comment("zh") + "\n"), text[:200]
        text = rules.comment("en") + text.removeprefix(rules.comment("zh"))
    gid = nbg(cell).get("grade_id")
    return text.replace(pass_message(gid, "zh"), pass_message(gid, "en")) if gid else text


def spans(text: str) -> list[str]:
    """The formulas and code spans of a markdown text, sorted (a translation may reorder them),
    white space normalised (and may rewrap them) and ``\\text{...}`` in formulas emptied."""
    found = [m.group(0) for m in re.finditer(f"{CODE.pattern}|{MATH.pattern}", text, re.S)]
    return sorted(" ".join(TEXT_IN_MATH.sub(r"\\text{}", f).split()) for f in found)


def cjk_share(text: str) -> float:
    """Share of CJK characters among the letters of ``text`` outside formulas, code, links and
    quotations of the English original (“...” without Chinese in it); 1.0 for a text with no
    letters left."""
    prose = URL.sub("", CODE.sub("", MATH.sub("", text)))
    prose = ENGLISH_QUOTE.sub(lambda m: "" if not CJK.search(m.group(0)) else m.group(0), prose)
    cjk, latin = len(CJK.findall(prose)), len(LATIN.findall(prose))
    return cjk / (cjk + latin) if cjk + latin else 1.0


# ------------------------------------------------------------------- the course catalogues

@pytest.mark.parametrize("name", NAMES)
def test_every_markdown_cell_has_a_current_translation(name):
    """Fails until the translators finish: msgid present, msgstr non-empty, not fuzzy, hash of
    the English text as stored."""
    catalogue = LOCALE / f"{name}.po"
    assert catalogue.is_file(), f"no catalogue {catalogue}: run python course_src/i18n.py update"
    left = problems(nbu.read(name), read_catalogue(catalogue))
    assert left == [], f"{name}: {len(left)} cell(s) without a current translation: " + ", ".join(
        map(str, left[:10]))


@pytest.mark.parametrize("name", NAMES)
def test_chinese_notebook_renders_mostly_chinese_with_formulas_and_code_intact(name):
    """Rendered to HTML (nbconvert), every markdown cell reads mostly as Chinese (formulas,
    code, links and quotations of the English original aside); its formulas and code spans are
    the English cell's; code cells are the English ones (but the language line and the pass
    line); links point at the Chinese notebooks."""
    from nbconvert import HTMLExporter

    english, chinese = nbu.read(name), zh_notebook(name)
    body, _ = HTMLExporter(template_name="classic").from_notebook_node(chinese)
    rendered = RENDERED.findall(body)
    markdown = [(en, zh) for en, zh in zip(english.cells, chinese.cells, strict=True)
                if en.cell_type == "markdown"]
    assert len(rendered) == len(markdown)
    for (en, zh), block in zip(markdown, rendered, strict=True):
        gid = nbg(en).get("grade_id")
        text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<code>.*?</code>", " ", block,
                                                                flags=re.S)))
        assert cjk_share(text) > 0.5, (name, gid, text[:300])
        assert spans(zh.source) == spans(en.source), (name, gid)
        assert ".zh.ipynb" in zh.source or ".ipynb" not in en.source, (name, gid)
    for en, zh in zip(english.cells, chinese.cells, strict=True):
        if en.cell_type == "code":
            assert english_code(zh) == en.source, nbg(en)


HREF = re.compile(r'<a href="([^"#]*)#([^"]+)"')
HEADING_ID = re.compile(r'<h[1-6] id="([^"]+)"')


def _rendered(nb) -> str:
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="classic").from_notebook_node(nb)[0]


def test_links_to_headings_point_at_the_chinese_headings():
    """Rendered to HTML, every link to a heading of a Chinese notebook (another one, or the
    same) names an id that nbconvert gave a heading of that Chinese notebook; the links exist
    (notebooks 4-6 link to notebook 1's glossary)."""
    ids: dict[str, set[str]] = {}
    links = []
    for name in NAMES:
        page = _rendered(zh_notebook(name))
        ids[name] = set(HEADING_ID.findall(page))
        links += [(name, target, anchor) for target, anchor in HREF.findall(page)]
    assert {(n, t) for n, t, _ in links} >= {
        (n, "../01_convolution/01_convolution.zh.ipynb") for n in NAMES[3:6]}, links
    for name, target, anchor in links:
        stem = Path(target).name.removesuffix(".zh.ipynb") if target else name
        assert target == "" or target.endswith(".zh.ipynb"), (name, target)
        assert anchor in ids[stem], (name, target, anchor, sorted(ids[stem]))
        assert CJK.search(unquote(anchor)), (name, anchor)  # the Chinese heading's


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_chinese_notebook_runs_with_the_solutions_and_speaks_chinese(name, tmp_path):
    """The Chinese source notebook runs top to bottom in grading mode, every test cell passes
    (its pass line in Chinese); deliberately wrong answers get Chinese test messages."""
    lib = nbu.student_library(tmp_path / "lib")
    nb = zh_notebook(name, strict=False)  # the code is what runs; the prose is tested above
    nbu.execute(nb, nbu.notebook_path(name).parent, allow_errors=True, pythonpath=lib)
    failures = [(nbg(c)["grade_id"], nbu.error_of(c)) for c in nb.cells
                if c.cell_type == "code" and nbu.error_of(c)]
    assert failures == []
    passes = [c for c in nb.cells if nbu.role(c) == "tests" and "print(" in c.source]
    assert passes and all("通过" in "".join(o.get("text", "") for o in c.outputs)
                          for c in passes)
    wrong = _with_a_wrong_answer(nb)
    nbu.execute(wrong, nbu.notebook_path(name).parent, allow_errors=True, pythonpath=lib)
    errors = [nbu.error_of(c) for c in wrong.cells if nbu.role(c) == "tests" and nbu.error_of(c)]
    # the library's assert_* messages are Chinese (a test cell's own `assert` text is its code)
    assert any(ename == "AssertionError" and CJK.search(value) for ename, value in errors), errors


def _with_a_wrong_answer(nb):
    """The code cells of ``nb`` with the functions of every solution cell returning values off
    by one (same types and shapes): numbers, arrays and the numbers inside tuples, lists and
    dicts."""
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell = nbformat.v4.new_code_cell(cell.source, metadata=cell.metadata)
        if nbu.role(cell) == "solution":
            cell.source += "\n\n" + _off_by_one(cell.source)
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells, metadata=nb.metadata)


OFF_BY_ONE = """
def _off(v):
    if isinstance(v, (bool, np.bool_)):
        return not v
    if isinstance(v, (int, float, np.ndarray, np.number)):
        return v + 1
    if isinstance(v, (tuple, list)):
        return type(v)(_off(x) for x in v)
    if isinstance(v, dict):
        return {k: _off(x) for k, x in v.items()}
    return v
"""


def _off_by_one(source: str) -> str:
    """Code that wraps each function a solution cell defines so that its results are off by
    one."""
    import ast

    names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    wraps = [f"{n} = (lambda f: lambda *a, **k: _off(f(*a, **k)))({n})" for n in names]
    return "import numpy as np\n" + OFF_BY_ONE + "\n".join(wraps)


# --------------------------------------------------------------------------- the fixture course

def _write(course: Path, student: str, lang: str, kind: str) -> Path:
    """``student``'s 01_basics in edition ``lang``: "correct", "untouched" or "half"."""
    name = f"{A}.ipynb" if lang == "en" else f"{A}.zh.ipynb"
    rel = nbformat.read(course / "release" / A / name, 4)
    src = nbformat.read(course / "released_source" / A / name, 4)
    nb = {"correct": lambda: fill(rel, src), "untouched": lambda: rel,
          "half": lambda: fill(rel, src, fraction=0.5), "tampered": lambda: _tampered(rel, src),
          "ruled": lambda: _ruled(rel, src)}[kind]()
    folder = course / "submitted" / student / A
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / name)
    if kind == "ruled":  # a link, which is not copied for grading
        (folder / "secret").symlink_to(folder / name)
    return folder / name


def _tampered(rel, src):
    """A correct notebook whose visible test test_relu was edited."""
    nb = fill(rel, src)
    next(c for c in nb.cells if nbg(c).get("grade_id") == "test_relu").source = "pass"
    return nb


def _ruled(rel, src):
    """A correct notebook with an added cell that breaks a process rule and one that kills
    the kernel."""
    nb = fill(rel, src)
    nb.cells += [nbformat.v4.new_code_cell('exec("1")'),
                 nbformat.v4.new_code_cell("import os\nos._exit(1)")]
    return nb


CLASS = {  # student -> [(edition, kind)], expected score, kept edition
    "li": ([("zh", "correct")], 3, "zh"),
    "lee": ([("en", "correct")], 3, "en"),
    "wang": ([("zh", "half")], 2, "zh"),
    "walt": ([("en", "half")], 2, "en"),
    "zhang": ([("en", "untouched"), ("zh", "correct")], 3, "zh"),  # worked in zh only
    "chen": ([("en", "half"), ("zh", "correct")], 3, "zh"),  # both worked in: the higher
    "zhao": ([("zh", "tampered")], 3, "zh"),
    "sun": ([("zh", "ruled")], 0, "zh"),  # a notebook-wide rule broken: no points
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course_dir = tmp_path_factory.mktemp("zh") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course_dir)
    release(cfg, [A], log=lambda *_: None, lang="all")
    for student, (files, _, _) in CLASS.items():
        for lang, kind in files:
            _write(course_dir, student, lang, kind)
    results = autograde(cfg, A, jobs=2, log=lambda *_: None)
    return cfg, {r["student"]: r for r in results}


@pytest.mark.slow
def test_release_all_writes_both_editions_with_the_same_grade_ids_and_points(course):
    cfg, _ = course
    folder = cfg.course_dir / "release" / A
    en, zh = (nbformat.read(folder / n, 4) for n in (f"{A}.ipynb", f"{A}.zh.ipynb"))
    graded = [(nbg(c).get("grade_id"), nbg(c).get("points")) for c in en.cells if nbg(c)]
    assert graded and graded == [(nbg(c).get("grade_id"), nbg(c).get("points"))
                                 for c in zh.cells if nbg(c)]
    assert zh.metadata["cs231n"] == {"lang": "zh"} and "基础" in zh.cells[0].source
    assert 'set_language("zh")' in zh.cells[1].source
    assert (cfg.course_dir / "released_source" / A / f"{A}.zh.ipynb").is_file()
    assert [p.name for p in cfg.graded_notebooks(A)] == [f"{A}.ipynb"]  # one gradebook notebook


@pytest.mark.slow
def test_chinese_submissions_get_the_english_scores(course):
    _, by = course
    for student, (_, score, _) in CLASS.items():
        assert by[student]["status"] == "graded", (student, by[student]["status"])
        assert by[student]["score"] == score, (student, by[student]["tests"])
        assert by[student]["notebook"] == A
    assert [t["passed"] for t in by["li"]["tests"]] == [t["passed"] for t in by["lee"]["tests"]]
    assert [t["passed"] for t in by["wang"]["tests"]] == [
        t["passed"] for t in by["walt"]["tests"]]


@pytest.mark.slow
def test_both_submitted_keeps_the_worked_in_or_higher_edition_with_a_note(course):
    cfg, by = course
    store = StatusStore(cfg.course_dir)
    stored = {r["student"]: r for r in store.query()}
    store.close()
    for student, (_, _, lang) in CLASS.items():
        assert stored[student]["lang"] == lang, student
    assert not any("两个语言版本" in n or "both editions" in n for n in by["zhang"]["notes"])
    assert any("两个语言版本都已提交" in n and f"{A}.zh.ipynb" in n and "3 / 3" in n
               for n in by["chen"]["notes"]), by["chen"]["notes"]


@pytest.mark.slow
def test_verdicts_and_feedback_of_a_chinese_submission_are_chinese(course):
    cfg, by = course
    failed = next(t for t in by["wang"]["tests"] if not t["passed"])
    assert CJK.search(failed["message"]), failed
    assert "tampering: 测试单元格 test_relu 被修改过（已恢复）" in by["zhao"]["notes"]
    notes = by["sun"]["notes"]  # rules, skipped files, kernel events: all in Chinese
    assert "未复制到评分目录：secret is a symbolic link（只复制普通文件）" in notes, notes
    assert any(re.fullmatch(r"规则：你添加的第 1 个单元格 第 1 行不得使用 exec", n)
               for n in notes), notes
    assert any(n.endswith("内核终止了（崩溃、调用了 os._exit 或超出内存上限）；内核已重启")
               for n in notes), notes
    assert all(t["message"].startswith("规则：") for t in by["sun"]["tests"])
    feedback(cfg, A, students=["wang", "walt"], log=lambda *_: None)
    page = (cfg.course_dir / "feedback" / "wang" / A / f"{A}.html").read_text()
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    for heading in ("状态：", "自动评分得分：", "总分：", "未通过", "书面回答"):
        assert heading in text, heading
    assert "基础" in text  # the submitted Chinese notebook is shown
    english = (cfg.course_dir / "feedback" / "walt" / A / f"{A}.html").read_text()
    assert "Autograded score:" in english and "状态" not in english


@pytest.mark.slow
def test_check_a_chinese_notebook_reports_in_chinese(course, capsys):
    cfg, _ = course
    args = ["--course", str(FIXTURE), "--course-dir", str(cfg.course_dir), "check"]
    wang = cfg.course_dir / "submitted" / "wang" / A / f"{A}.zh.ipynb"
    assert main(args + [str(wang)]) == 1
    out = capsys.readouterr().out
    assert "合计：可见测试 2 / 3" in out and "下一步：" in out, out
    li = cfg.course_dir / "submitted" / "li" / A / f"{A}.zh.ipynb"
    assert main(args + [str(li)]) == 0
    assert "所有可见测试均已通过" in capsys.readouterr().out


@pytest.mark.slow
def test_verify_all_editions_passes_on_the_fixture(capsys):
    assert main(["--course", str(FIXTURE), "verify", "--lang", "all", "02_loops"]) == 0
    out = capsys.readouterr().out
    assert "02_loops.zh" in out and "02_loops " in out and "FAIL" not in out


@pytest.mark.slow
def test_release_zh_needs_complete_catalogues(tmp_path):
    fixture = tmp_path / "course_small"
    shutil.copytree(FIXTURE, fixture, ignore=shutil.ignore_patterns("__pycache__"))
    config = fixture / "nbgrader_config.py"
    config.write_text(config.read_text().replace(
        '"../../../cs231n_lib"', repr(str(FIXTURE.parents[2] / "cs231n_lib"))))
    po = read_catalogue(fixture / "locale" / "zh" / f"{A}.po")
    po[0].flags.append("fuzzy")
    po.save()
    cfg = load_config(config, course_dir=tmp_path / "course")
    with pytest.raises(ValueError, match="lack a usable zh translation: cell .*: fuzzy"):
        release(cfg, [A], log=lambda *_: None, lang="zh")
