"""Issue 13's attacks on the fixture course, and honest controls in several styles.

Used by tests/test_hostile_corpus.py, which grades them in the same sandboxed ``autograde`` run
as the rest of its corpus. Fixture course tests/fixtures/course_small:

- 01_basics (3 points): test_relu 2 (visible ``relu_small`` + hidden ``relu_hidden_7``),
  test_add 1 (visible ``add_ints`` + hidden ``add_hidden_squares``), cell timeout 3 s;
- 02_loops (3 points): test_total 2 (visible ``total_small`` + hidden ``total_hidden_100``),
  test_total_bound 1 (visible only: ``total_halves`` at least 4), cell timeout 20 s.

Each case is a :class:`Case`: which assignment it attacks, how its submission folder is made from
the correct notebook, and what it must get (score, status). ``score`` is what the honest part of
the submission earns: an attack earns nothing.
"""

from __future__ import annotations

import ast
import base64
import codecs
import copy
import html
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from cs231n_grading.restore import nbg

A, L = "01_basics", "02_loops"
POINTS = {A: {"test_relu": 2, "test_add": 1}, L: {"test_total": 2, "test_total_bound": 1}}
STAMP = "2026-01-15 12:00:00.000000 UTC"


@dataclass(frozen=True)
class Case:
    """One crafted submission of ``assignment``.

    edit: changes the correct notebook (nbformat node) in place before it is written;
    place: ``place(course_dir, student, folder, notebook_json)`` writes the submission instead
    of the default (notebook + a valid timestamp.txt in ``submitted/<student>/<assignment>/``);
    score: the score due (exact, or at most when not ``exact``); status: how the status must
    start; base: the
    ``cs231n_grading.samples.KINDS`` entry the submission starts from.
    """

    assignment: str
    edit: Callable | None = None
    place: Callable | None = None
    score: float = 0
    status: str = "graded"
    base: str = "correct"
    exact: bool = True  # False: the score may be lower (IPython internals cost points by rule)


def cell(nb, grade_id):
    """The cell of ``nb`` with nbgrader ``grade_id``."""
    return next(c for c in nb.cells if nbg(c).get("grade_id") == grade_id)


def replace(grade_id: str, source: str):
    """Edit: the source of cell ``grade_id`` becomes ``source``."""
    return lambda nb: setattr(cell(nb, grade_id), "source", source)


def insert_after(grade_id: str | None, *cells):
    """Edit: insert ``cells`` (sources, or cell nodes) after ``grade_id`` (None: at the end)."""
    def edit(nb):
        at = nb.cells.index(cell(nb, grade_id)) + 1 if grade_id else len(nb.cells)
        new = [new_code_cell(c) if isinstance(c, str) else copy.deepcopy(c) for c in cells]
        for c in new:  # nbformat 4.4, as released: cells carry no ids
            c.pop("id", None)
        nb.cells[at:at] = new
    return edit


def both(*edits):
    """Edit: several edits in order."""
    def edit(nb):
        for e in edits:
            e(nb)
    return edit


def write_submission(course_dir: Path, student: str, case: Case, nb) -> Path:
    """Write ``student``'s submission of ``case`` made from the correct notebook ``nb``."""
    nb = nbformat.from_dict(copy.deepcopy(nb))
    if case.edit:
        case.edit(nb)
    folder = course_dir / "submitted" / student / case.assignment
    if case.place:
        case.place(course_dir, student, folder, nbformat.writes(nb))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{case.assignment}.ipynb").write_text(nbformat.writes(nb))
        (folder / "timestamp.txt").write_text(STAMP)
    return folder


# ---------------------------------------------------------------------------------------------
# 1. Forged records: wrap record/assert_*, defer records to post_run_cell, swap in `expected`.

FORGE_CORE = '''\
_pending, _expected = [], []  # this cell's records, and the expected values its asserts saw


def _fake_record(check_id, value, **kw):
    _pending.append((check_id, value, kw))


def _fake_assert_array(name, actual, expected, **kw):
    _expected.append(np.asarray(expected, dtype=float))


def _fake_assert_value(name, actual, expected, **kw):
    _expected.append(expected)


def _flush(result):
    for i, (check_id, value, kw) in enumerate(_pending):
        if kw.get("bound") is not None:
            value = kw["bound"]  # exactly at the bound
        elif i < len(_expected):
            value = _expected[i]  # the value the test cell expected
        _real_record(check_id, value, **kw)
    _pending.clear()
    _expected.clear()
'''
STUBS = {  # answers that do nothing, shaped like right ones
    A: ("def relu(x):\n    return np.zeros_like(x)\n\n\n"
        "def add(a, b):\n    return 0 * np.add(a, b)\n"),
    L: ("def total(xs):\n    for _ in xs:  # as many iterations as a real loop\n        pass\n"
        "    return 0\n"),
}
# how record/assert_* are rebound and the hook registered: plain, then written to evade a naive
# AST check (aliases, getattr with strings, __import__, globals()[...])
FORGE_WIRING = {
    "plain": ("from cs231n_lib.checks import record as _real_record\n",
              "record, assert_array, assert_value = (_fake_record, _fake_assert_array, "
              "_fake_assert_value)\nget_ipython().events.register('post_run_cell', _flush)\n"),
    "alias": ("import cs231n_lib.checks as _c\n_real_record = _c.record\n",
              "_ip = get_ipython\n_ns = _ip().user_ns\n_ev = _ip().events\n_reg = _ev.register\n"
              "_ns['rec' 'ord'], _ns['assert_array'], _ns['assert_value'] = (_fake_record, "
              "_fake_assert_array, _fake_assert_value)\n_reg('post_run_cell', _flush)\n"),
    "getattr": ("_real_record = getattr(assert_array, '__glo' + 'bals__')['rec' + 'ord']\n",
                "_shell = get_ipython()\n"
                "for _n, _f in (('rec' + 'ord', _fake_record), ('assert_' + 'array', "
                "_fake_assert_array), ('assert_' + 'value', _fake_assert_value)):\n"
                "    getattr(_shell, 'user_' + 'ns')[_n] = _f\n"
                "getattr(getattr(_shell, 'eve' + 'nts'), 'regi' + 'ster')('post_' + 'run_cell', "
                "_flush)\n"),
    "dunder_import": ("_real_record = __import__('cs231n_lib.checks', fromlist=['x']).record\n",
                      "__import__('IPython').get_ipython().user_ns.update(record=_fake_record, "
                      "assert_array=_fake_assert_array, assert_value=_fake_assert_value)\n"
                      "__import__('IPython').get_ipython().events.register('post_run_cell', "
                      "_flush)\n"),
    "globals": ("_real_record = globals()['rec' 'ord']\n",
                "globals()['record'] = _fake_record\nglobals()['assert_array'] = "
                "_fake_assert_array\nglobals()['assert_value'] = _fake_assert_value\n"
                "globals()['get_ipython']().events.register('post_run_cell', _flush)\n"),
}


def forgery(wiring: str) -> str:
    """Source of a cell that forges every later record (see FORGE_CORE)."""
    first, last = FORGE_WIRING[wiring]
    return first + "\n" + FORGE_CORE + "\n\n" + last


def stub_edit(assignment: str):
    """Edit: every solution cell of ``assignment`` holds its stub answer."""
    if assignment == L:
        return replace("total_impl", STUBS[L])
    relu, add = STUBS[A].split("\n\n\n")
    return both(replace("relu_impl", relu), replace("add_impl", add))


def forged_cases() -> dict[str, Case]:
    """The issue's forgery (an extra cell after the imports, stub answers) on both assignments,
    the same inside the solution cell, and its AST-evading variants on 02_loops (where a
    visible-only test cell makes a forged record worth a point)."""
    cases = {f"f_forge_cell_{tag}": Case(a, both(stub_edit(a), insert_after("setup",
                                                                             forgery("plain"))))
             for a, tag in ((A, "basics"), (L, "loops"))}
    for wiring in FORGE_WIRING:
        cases[f"f_forge_{wiring}"] = Case(L, replace("total_impl",
                                                     forgery(wiring) + "\n\n" + STUBS[L]))
    return cases


# ---------------------------------------------------------------------------------------------
# 2. Symbolic links in submitted/.

def _notebook_and_stamp(folder: Path, assignment: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{assignment}.ipynb").write_text(text)
    (folder / "timestamp.txt").write_text(STAMP)


def link_notebook(course_dir, student, folder, text):
    """The notebook is a link to the instructor's released source (solutions inside)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text(STAMP)
    (folder / f"{A}.ipynb").symlink_to(f"../../../released_source/{A}/{A}.ipynb")


def link_timestamp(course_dir, student, folder, text):
    """An honest notebook; timestamp.txt is a link to another student's (valid) timestamp."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{A}.ipynb").write_text(text)
    (folder / "timestamp.txt").symlink_to("../../honest_a/01_basics/timestamp.txt")


def link_student_folder(course_dir, student, folder, text):
    """submitted/<student> is a link to a folder outside the course holding correct work (and
    an empty 02_loops folder: the grader cannot know what is inside without following it)."""
    outside = course_dir.parent / "outside" / student
    _notebook_and_stamp(outside / A, A, text)
    (outside / L).mkdir()
    folder.parent.parent.mkdir(parents=True, exist_ok=True)
    folder.parent.symlink_to(outside, target_is_directory=True)


def link_assignment_folder(course_dir, student, folder, text):
    """submitted/<student>/01_basics is a link to another student's submission folder."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.symlink_to("../honest_a/01_basics", target_is_directory=True)


def bad_timestamp(course_dir, student, folder, text):
    """An honest notebook next to a timestamp.txt that is not a date."""
    _notebook_and_stamp(folder, A, text)
    (folder / "timestamp.txt").write_text("not a date")


LINK_CASES = {
    "s_link_notebook": Case(A, place=link_notebook, status="not graded: "),
    "s_link_timestamp": Case(A, place=link_timestamp, status="not graded: "),
    "s_link_student": Case(A, place=link_student_folder, status="not graded: "),
    "s_link_folder": Case(A, place=link_assignment_folder, status="not graded: "),
}

# ---------------------------------------------------------------------------------------------
# 3. Pathological records: each costs its own cell only.

DEEP_RELU = '''\
import sys

sys.setrecursionlimit(30_000)  # deep enough for the kernel to encode it


def relu(x):
    if x.shape == (3,):  # the visible test: a {depth}-deep list instead of an array
        deep = []
        for _ in range({depth}):
            deep = [deep]
        return deep
    return np.maximum(0, x)
'''
BIG_TOTAL = '''\
def total(xs):
    s = 0
    for x in xs:
        s += x
    return 10**400 if len(xs) == 10 else s  # the bound test gets an int no float can hold
'''
# The same values handed out as raw records (display of the record MIME type), which skips
# record()'s own limits; display breaks the source rules, which cost the part it is in.
RAW_RECORD = '''\
import sys

from IPython.display import display

sys.setrecursionlimit(30_000)


def {name}({arg}):
    if {when}:  # this test's input: a record of my own, then no value at all
        value = {build}
        display({{"application/vnd.cs231n.record+json": {{
            "id": "{record_id}", "kind": "{kind}", "value": value}}}}, raw=True)
        raise ValueError("nothing to see")
    {honest}
'''
NESTED = "[]\n        for _ in range({depth}):\n            value = {wrap}"


def raw_relu(build: str) -> str:
    """relu_impl handing out ``relu_small`` as a raw record of value ``build``."""
    return RAW_RECORD.format(name="relu", arg="x", when="x.shape == (3,)", build=build,
                             record_id="relu_small", kind="close",
                             honest="return np.maximum(0, x)")


JUDGE_CASES = {
    # through record(): refused or kept in the kernel, never a crash
    "j_deep_json": Case(A, replace("relu_impl", DEEP_RELU.format(depth=3000)), score=1),
    "j_deep_seq": Case(A, replace("relu_impl", DEEP_RELU.format(depth=400)), score=1),
    "j_bigint": Case(L, replace("total_impl", BIG_TOTAL), score=2),
    # raw records straight to the judge: a 3000-deep JSON list, a 400-deep encoded sequence,
    # an int no float holds where the reference has a bound (02's only part: score 0 by rule)
    "j_raw_deep_json": Case(A, replace("relu_impl", raw_relu(NESTED.format(
        depth=3000, wrap="[value]"))), score=1),
    "j_raw_deep_seq": Case(A, replace("relu_impl", raw_relu(NESTED.format(
        depth=400, wrap='{"__seq__": "list", "items": [value]}'))), score=1),
    "j_raw_bigint": Case(L, replace("total_impl", RAW_RECORD.format(
        name="total", arg="xs", when="len(xs) == 10", build="10**400",
        record_id="total_halves", kind="at_least",
        honest="s = 0\n    for x in xs:\n        s += x\n    return s"))),
}

# ---------------------------------------------------------------------------------------------
# 4-7. Bad timestamp, output amplification, hidden tests leaked through feedback, student HTML.

AMPLIFY_CELLS = (
    ["from IPython.display import display, update_display\n"
     f"display({{'text/plain': 'cell {i}'}}, raw=True, display_id='x')" for i in range(10)]
    + ["update_display({'text/plain': 'y' * 15_000_000}, raw=True, display_id='x')"])

LEAK_HOOK = '''\
_seen = []


def _keep(info):
    if "HIDDEN TESTS" in (info.raw_cell or ""):
        _seen.append(info.raw_cell)


get_ipython().events.register("pre_run_cell", _keep)'''
LEAK_PRINT = '''\
import ast
import base64
import codecs

for _text in _seen:
    for _line in [_text] + _text.splitlines():
        print("plain:", _line)
        print("b64:", base64.b64encode(_line.encode()).decode())
        print("hex:", _line.encode().hex())
        print("reversed:", _line[::-1])
        print("rot13:", codecs.encode(_line, "rot13"))'''


def encodings(line: str) -> dict[str, str]:
    """The encodings LEAK_PRINT uses, of one line."""
    return {"plain": line, "b64": base64.b64encode(line.encode()).decode(),
            "hex": line.encode().hex(), "reversed": line[::-1],
            "rot13": codecs.encode(line, "rot13")}


def hidden_lines(source_nb) -> list[str]:
    """Non-blank lines strictly inside BEGIN/END HIDDEN TESTS blocks of a source notebook."""
    lines, inside = [], False
    for c in source_nb.cells:
        for ln in c.source.splitlines():
            if "BEGIN HIDDEN TESTS" in ln or "END HIDDEN TESTS" in ln:
                inside = "BEGIN" in ln
            elif inside and ln.strip():
                lines.append(ln.strip())
    return lines


HTML_MARK = "H6PWNED"
# rich outputs through _repr_*_ methods (display() and IPython are against the rules; this is not)
HTML_CELLS = [
    f'''\
class Rich:
    """Shows itself as ``text`` in the given MIME type."""

    def __init__(self, kind, text):
        self.kind, self.text = kind, text

    def _repr_html_(self):
        return self.text if self.kind == "html" else None

    def _repr_javascript_(self):
        return self.text if self.kind == "js" else None

    def _repr_svg_(self):
        return self.text if self.kind == "svg" else None

    def _repr_markdown_(self):
        return self.text if self.kind == "md" else None


print("<script>{HTML_MARK}_print()</script>")
Rich("html", "<script>{HTML_MARK}_script()</script>")'''] + [
    f"Rich({kind!r}, {text!r})" for kind, text in (
        ("html", f'<img src="x" onerror="{HTML_MARK}_onerror()">'),
        ("html", f'<svg onload="{HTML_MARK}_svg()"></svg>'),
        ("html", f'<a href="javascript:{HTML_MARK}_href()">click</a>'),
        ("html", f'<iframe srcdoc="<script>{HTML_MARK}_iframe()</script>"></iframe>'),
        ("html", f'<object data="javascript:{HTML_MARK}_object()"></object>'),
        ("js", f"{HTML_MARK}_javascript()"),
        ("svg", f'<svg xmlns="http://www.w3.org/2000/svg"><script>{HTML_MARK}_svgscript()'
                '</script></svg>'),
        ("md", f'*hi* <img src="x" onerror="{HTML_MARK}_mdoutput()">'))]
HTML_MARKDOWN = (f'Notes <img src="x" onerror="{HTML_MARK}_markdown()"> '
                 f'<script>{HTML_MARK}_mdscript()</script>')


class ActiveHTML(HTMLParser):
    """Collects what a browser would execute: script bodies, on* handlers, javascript: URLs,
    iframe srcdoc, object/embed sources."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.active: list[str] = []
        self._script = 0

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._script += 1
        for name, value in attrs:
            value = value or ""
            if (name.startswith("on") or name == "srcdoc"
                    or value.strip().lower().startswith("javascript:")
                    or tag in ("object", "embed") and name in ("data", "src")):
                self.active.append(f"<{tag} {name}={value!r}>")

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = max(0, self._script - 1)

    def handle_data(self, data):
        if self._script:
            self.active.append(data)


def executable_html(page: str, mark: str) -> list[str]:
    """Pieces of ``page`` a browser would run that contain ``mark``."""
    parser = ActiveHTML()
    parser.feed(page)
    return [a for a in parser.active if mark in a]


def leaked(page: str, lines: list[str]) -> list[tuple[str, str]]:
    """(encoding, line) for every hidden line found in ``page`` in any encoding."""
    texts = (page, html.unescape(page))
    return [(name, line) for line in lines for name, enc in encodings(line).items()
            if any(enc in t for t in texts)]


OTHER_CASES = {
    "t_bad_timestamp": Case(A, place=bad_timestamp, score=3),
    "o_amplify": Case(A, insert_after(None, *AMPLIFY_CELLS), score=3, exact=False),
    "o_leak_hidden": Case(A, both(insert_after("setup", LEAK_HOOK),
                                  insert_after(None, LEAK_PRINT)), score=3, exact=False),
    "o_html": Case(A, insert_after(None, new_markdown_cell(HTML_MARKDOWN), *HTML_CELLS),
                   score=3),
}

# ---------------------------------------------------------------------------------------------
# 8. "How" check evasion: tracing off around a forbidden call, then a fake loop.

SETTRACE_TOTAL = '''\
import sys


def total(xs):
    tracer = sys.gettrace()
    sys.settrace(None)  # nothing below is seen by an in-kernel line counter
    s = sum(xs)
    sys.settrace(tracer)
    for _ in range(len(xs)):  # a loop that does nothing, for the line counter
        pass
    return s
'''
HOW_CASES = {
    "h_settrace": Case(L, replace("total_impl", SETTRACE_TOTAL)),
    # the exercise's own rules (in the fixture's source): no sum(), and a loop is required
    "h_forbidden_sum": Case(L, replace("total_impl", "def total(xs):\n    for _ in xs:\n"
                                                     "        pass\n    return sum(xs)\n")),
    "h_no_loop": Case(L, replace("total_impl", "def total(xs):\n    return np.asarray(xs) @ "
                                               "np.ones(len(xs))  # no loop\n")),
}

# ---------------------------------------------------------------------------------------------
# Honest controls in several styles (full marks, no notes).

RELU_LOOPS = '''\
def relu(x):
    """Elementwise max(0, x), one entry at a time."""
    out = np.zeros(np.shape(x))
    for idx in np.ndindex(*np.shape(x)):
        if x[idx] > 0:
            out[idx] = x[idx]
    return out'''
RELU_WHERE = "def relu(x):\n    return np.where(x > 0, x, 0.0)  # vectorised\n"
RELU_HELPER = '''\
def _floor_at(values, floor):
    """values, with everything below floor raised to it."""
    return np.maximum(values, floor)


def relu(x):
    return _floor_at(x, 0.0)'''
RELU_IMPORTS = '''\
import math
from collections import namedtuple
from numpy import maximum as elementwise_max

Pair = namedtuple("Pair", "a b")
assert math.isclose(1.0, 1.0)


def relu(x):
    return elementwise_max(np.asarray(x), 0)'''
ADD_LOOPS = '''\
def add(a, b):
    a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
    if a.ndim == 0:
        return a.item() + b.item()
    out = np.empty(a.shape)
    for idx in np.ndindex(*a.shape):
        out[idx] = a[idx] + b[idx]
    return out'''
EXTRA_CELLS_BASICS = [
    new_markdown_cell("My notes: ReLU zeroes the negatives. *Try it below.*"),
    "demo = np.linspace(-2, 2, 5)\nprint('relu of', demo, 'is', relu(demo))",
    "for row in np.eye(2):\n    print(row, relu(row - 0.5))",
]
TOTAL_WHILE = '''\
def total(xs):
    items = list(xs)
    i, s = 0, 0
    while i < len(items):
        s = s + items[i]
        i += 1
    return s'''
TOTAL_HELPER = '''\
def _accumulate(acc, item):
    return acc + item


def total(xs):
    s = 0
    for item in xs:
        s = _accumulate(s, item)
    return s'''
PLOT_CELLS = [
    new_markdown_cell("## My plot\nRunning totals of 0..9:"),
    "import matplotlib.pyplot as plt\n\n"
    "running = [total(range(k)) for k in range(10)]\nplt.plot(running)\nplt.title('totals')\n"
    "plt.show()\nprint(running)",
]
HONEST_STYLES = {
    "honest_loops": Case(A, both(replace("relu_impl", RELU_LOOPS),
                                 replace("add_impl", ADD_LOOPS)), score=3),
    "honest_vectorised": Case(A, both(replace("relu_impl", RELU_WHERE),
                                      replace("add_impl", "def add(a, b):\n    return a + b")),
                              score=3),
    "honest_helper": Case(A, replace("relu_impl", RELU_HELPER), score=3),
    "honest_imports": Case(A, replace("relu_impl", RELU_IMPORTS), score=3),
    "honest_extra_cells": Case(A, insert_after("relu_impl", *EXTRA_CELLS_BASICS), score=3),
    "honest_loops_correct": Case(L, score=3),
    "honest_loops_while": Case(L, replace("total_impl", TOTAL_WHILE), score=3),
    "honest_loops_helper_plot": Case(L, both(replace("total_impl", TOTAL_HELPER),
                                             insert_after("test_total_bound", *PLOT_CELLS)),
                                     score=3),
    "honest_loops_warnings": Case(L, score=3, base="warnings"),
    "honest_loops_untouched": Case(L, score=0, base="untouched"),
}

CASES: dict[str, Case] = {**forged_cases(), **LINK_CASES, **JUDGE_CASES, **OTHER_CASES,
                          **HOW_CASES, **HONEST_STYLES}


# ---------------------------------------------------------------------------------------------
# The fixture's test cells keep expected values out of the student's kernel.

def _literal(node) -> bool:
    """A Python literal, or ``np.array(<literal>)``."""
    if (isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.array", "np.asarray")
            and len(node.args) == 1 and not node.keywords):
        node = node.args[0]
    try:
        ast.literal_eval(node)
    except ValueError:
        return False
    return True


def expected_value_problems(source: str) -> list[str]:
    """What in a test cell's source lets a kernel see an expected value: a hidden block that
    asserts (its expected value would be in the kernel), or an assert/bound whose expected value
    is computed rather than written as a literal."""
    problems = []
    visible, _, rest = source.partition("### BEGIN HIDDEN TESTS")
    hidden = rest.partition("### END HIDDEN TESTS")[0]
    for part, text in (("visible", visible), ("hidden", hidden)):
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name.startswith("assert_") and (part == "hidden" or len(node.args) < 3
                                               or not _literal(node.args[2])):
                problems.append(f"{part}: {ast.unparse(node)}")
            for kw in node.keywords:
                if name == "record" and kw.arg == "bound" and not _literal(kw.value):
                    problems.append(f"{part}: computed bound in {ast.unparse(node)}")
    return problems
