"""Feedback pages carry no hidden-test source and no executable student HTML.

Issue 13, items 6 and 7. A submission installs a ``pre_run_cell`` hook that captures every cell
holding hidden tests while the grader runs it, and later cells print what it captured in plain
text, base64, hex, reversed and rot13 (as text and as HTML). Another submission saves
``<script>``, ``onerror=`` and ``javascript:`` payloads in its own outputs and markdown, and gives
a fake graded cell an id that is HTML. The pages must show the student's own notebook (test cells
as released), the verdicts and the points, and nothing of the grading run.
"""

import base64
import codecs
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from cs231n_grading.autograde import autograde
from cs231n_grading.config import load_config
from cs231n_grading.feedback import PLACEHOLDER, feedback, render
from cs231n_grading.leakscan import hidden_test_lines
from cs231n_grading.release import release
from cs231n_grading.restore import nbg
from cs231n_grading.samples import fill
from cs231n_grading.sanitize import sanitize_notebook, sanitizer
from cs231n_lib.checks import RECORD_MIME

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"
SOURCE = FIXTURE / "assignments" / A / f"{A}.ipynb"

HOOK = '''
import base64 as _b64, codecs as _codecs
_captured = []
def _grab(info):
    if "BEGIN HIDDEN TESTS" in (info.raw_cell or ""):
        _captured.append(info.raw_cell)
get_ipython().events.register("pre_run_cell", _grab)

def _encodings(text):
    out = []
    for piece in [text] + text.splitlines():
        out += [piece, _b64.b64encode(piece.encode()).decode(), piece.encode().hex(),
                piece[::-1], _codecs.encode(piece, "rot13")]
    return out
'''
DUMP = '''
import sys
from IPython.display import HTML, Markdown, display
for _text in _captured:
    for _e in _encodings(_text):
        print(_e)
        print(_e, file=sys.stderr)
        display(HTML("<pre>" + _e + "</pre>"))
        display(Markdown("`" + _e + "`"))
raise RuntimeError(" ".join(_encodings(_captured[0])[:3]))
'''
PAYLOADS = ('<script>alert("s")</script>', '<img src=x onerror=alert("i")>',
            '<a href="javascript:alert(1)">link</a>', '<svg onload=alert("v")></svg>',
            '<iframe src="javascript:alert(2)"></iframe>', '<body onload=alert("b")>')
XSS_MARKDOWN = ("My answer " + " ".join(PAYLOADS)
                + "\n\n[click](javascript:alert(3)) ![pic](javascript:alert(4)) "
                  "<javascript:alert(5)>")


def _cell(nb, gid):
    return next(c for c in nb.cells if nbg(c).get("grade_id") == gid)


def _correct(course_dir):
    release_nb = nbformat.read(course_dir / "release" / A / f"{A}.ipynb", 4)
    return fill(release_nb, nbformat.read(SOURCE, 4))


def leaker(nb):
    """Captures hidden tests with a hook during grading and prints them in five encodings."""
    relu = _cell(nb, "relu_impl")
    relu.source = HOOK + "\n" + relu.source
    nb.cells.append(new_code_cell(DUMP))


def xss(nb):
    """Student HTML and JavaScript saved in the submission's outputs and markdown."""
    relu = _cell(nb, "relu_impl")
    relu.outputs = [
        new_output("stream", name="stdout", text="my own output 4242\n" + PAYLOADS[0]),
        new_output("display_data", data={"text/html": "".join(PAYLOADS),
                                         "text/markdown": XSS_MARKDOWN,
                                         "application/javascript": 'alert("js")',
                                         "image/svg+xml": PAYLOADS[3],
                                         "text/plain": "plain"},
                   metadata={"text/html": {"isolated": True}}),
        new_output("execute_result", data={"text/html": PAYLOADS[1]}, execution_count=3)]
    relu.execution_count = 3
    nb.cells.insert(1, new_markdown_cell(XSS_MARKDOWN))
    nb.cells.append(new_code_cell("from IPython.display import HTML, display\n"
                                  f"display(HTML({''.join(PAYLOADS)!r}))"))
    nb.cells.append(new_code_cell("x = 1", metadata={"nbgrader": {
        "schema_version": 3, "grade": True, "solution": False, "locked": True,
        "grade_id": '<script>alert("id")</script>', "points": 5}}))
    _cell(nb, "test_add").outputs = [new_output("display_data", data={"text/html": PAYLOADS[0]})]


FRAME_PEEK = '''
def relu(x):
    """Reads the calling cell's source (IPython keeps it for tracebacks) and, in a hidden test,
    raises with its first hidden line base64-encoded."""
    import base64, inspect, linecache
    src = "".join(linecache.getlines(inspect.currentframe().f_back.f_code.co_filename))
    if "BEGIN HIDDEN TESTS" in src:
        line = src.split("BEGIN HIDDEN TESTS")[1].splitlines()[1].strip()
        raise ValueError(base64.b64encode(line.encode()).decode())
    return np.maximum(0, x)
'''


def frame_peek(nb):
    """No hook: the student's function reads the hidden test's source from the caller's frame
    and raises it encoded; the judge's message quotes the error's text."""
    _cell(nb, "relu_impl").source = FRAME_PEEK


STUDENTS = {"leaker": leaker, "xss": xss, "honest": lambda nb: None, "frame_peek": frame_peek}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course_dir = tmp_path_factory.mktemp("feedback") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course_dir)
    release(cfg, [A], log=lambda *_: None)
    for student, edit in STUDENTS.items():
        nb = _correct(course_dir)
        edit(nb)
        folder = course_dir / "submitted" / student / A
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / f"{A}.ipynb")
    linked = course_dir / "submitted" / "linked" / A  # issue 13 item 2: the source, linked
    linked.mkdir(parents=True)
    (linked / f"{A}.ipynb").symlink_to(f"../../../released_source/{A}/{A}.ipynb")
    results = {r["student"]: r for r in autograde(cfg, A, jobs=2, log=lambda *_: None)}
    pages = {p.parts[-3]: p.read_text(encoding="utf-8")
             for p in feedback(cfg, A, log=lambda *_: None)}
    return cfg, results, pages


def encodings(text: str) -> list[str]:
    """``text`` in plain, base64, hex, reversed and rot13."""
    return [text, base64.b64encode(text.encode()).decode(), text.encode().hex(), text[::-1],
            codecs.encode(text, "rot13")]


def secrets() -> list[str]:
    """Every hidden-test cell's source and hidden line, in every encoding."""
    cells = [c.source for c in nbformat.read(SOURCE, 4).cells if "BEGIN HIDDEN TESTS" in c.source]
    assert len(cells) == 2
    pieces = cells + [ln for c in cells for ln in hidden_test_lines(c)]
    return [e for p in pieces for e in encodings(p)]


def as_shown(page: str) -> str:
    """A page's text as a browser shows it (tags gone, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


class _Active(HTMLParser):
    """What a browser would run or load as a document: scripts, frames, event handlers,
    javascript:/data: URLs."""

    URL_ATTRS = ("href", "src", "action", "formaction", "data", "srcdoc", "xlink:href")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._script = None

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "frame", "object", "embed", "base", "form", "meta",
                   "svg", "math", "style", "link"):
            self.found.append(f"<{tag} {attrs}>")
        for name, value in attrs:
            value = re.sub(r"\s", "", value or "").lower()
            if name.startswith("on"):
                self.found.append(f"{tag} {name}={value}")
            if name in self.URL_ATTRS and value.startswith(("javascript:", "vbscript:",
                                                            "data:text/html")):
                self.found.append(f"{tag} {name}={value}")
        self._script = tag if tag == "script" else None

    def handle_data(self, data):
        if self._script:
            self.found[-1] += data


def active(page: str) -> list[str]:
    """The executable parts of a page's body (the template's head is the exporter's own)."""
    parser = _Active()
    parser.feed(page[page.index("<body"):])
    return parser.found


def test_the_attacks_ran_in_the_grading_run(course):
    """Meaningful only if the hook did capture hidden tests and print them while grading."""
    cfg, results, _ = course
    assert results["leaker"]["status"] == "graded"  # (its points are another test's concern)
    executed = (cfg.course_dir / "autograded" / "leaker" / A / f"{A}.ipynb").read_text()
    leaked = [s for s in secrets() if s in executed or html.escape(s) in executed]
    assert len(leaked) > len(secrets()) // 2
    assert results["xss"]["status"] == "graded"


def _no_secret(page: str, student: str) -> None:
    shown = as_shown(page)
    for secret in secrets():
        assert secret not in page and secret not in shown, (student, secret)
        assert html.escape(secret) not in page, (student, secret)


@pytest.mark.parametrize("student", sorted(set(STUDENTS) - {"frame_peek"} | {"linked"}))
def test_feedback_has_no_hidden_test_source_in_any_encoding(course, student):
    _no_secret(course[2][student], student)


def test_judge_messages_quote_no_kernel_text(course):
    _no_secret(course[2]["frame_peek"], "frame_peek")


def test_feedback_shows_the_submission_as_submitted_and_tests_as_released(course):
    cfg, _, pages = course
    xss_page, honest = as_shown(pages["xss"]), as_shown(pages["honest"])
    assert "my own output 4242" in xss_page  # the student's saved output
    assert "grading budget: 1" not in honest  # printed by the setup cell during grading only
    assert PLACEHOLDER in honest and "relu_small" in honest  # visible test kept, hidden not
    assert "test_relu" in honest and "passed" in honest and "Total: 3 / 4" in honest
    leaker_page = as_shown(pages["leaker"])
    assert "_grab" in leaker_page  # the student's own code is shown
    assert "RuntimeError: " not in leaker_page  # the grading run's error is not
    linked = as_shown(pages["linked"])  # never read through the link
    assert "cannot be shown" in linked and "symbolic link" in linked


def test_feedback_has_no_executable_student_html(course):
    _, _, pages = course
    baseline = active(render(new_notebook(), "<p>header</p>"))
    assert not baseline, baseline  # the exporter puts its own scripts in <head> only
    for student, page in pages.items():
        assert active(page) == [], student
    xss_page = as_shown(pages["xss"])
    assert "My answer" in xss_page and "onload=alert(\"v\")" in xss_page  # shown as text
    assert '<script>alert("id")</script>' in xss_page  # the fake cell's id, escaped, in a note


def test_the_active_html_check_can_fail():
    nb = new_notebook(cells=[new_code_cell("", outputs=[new_output(
        "display_data", data={"text/html": "".join(PAYLOADS)})])])
    from nbconvert import HTMLExporter

    unsafe, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    found = " ".join(active(unsafe))
    for sign in ("<script", "onerror=", "onload=", "javascript:", "<iframe"):
        assert sign in found, sign
    assert active(render(nb, "")) == []


def test_sanitize_notebook_defuses_outputs_and_keeps_records():
    record = {"id": "r", "kind": "equal", "value": 1}
    nb = new_notebook(cells=[
        new_markdown_cell(XSS_MARKDOWN),
        new_code_cell("", outputs=[
            new_output("display_data", data={"text/html": "".join(PAYLOADS),
                                             "application/javascript": "alert(1)",
                                             "text/plain": "kept"}),
            new_output("display_data", data={RECORD_MIME: record}),
            new_output("stream", name="stdout", text=PAYLOADS[0])])])
    out = sanitize_notebook(nb)
    assert out is nb
    data = nb.cells[1].outputs[0].data
    assert set(data) == {"text/html", "text/plain"} and data["text/plain"] == "kept"
    assert active("<body>" + data["text/html"]) == []
    assert "alert" in data["text/html"]  # the payload is shown as text
    markdown = nb.cells[0].source  # rendered, then cleaned: markdown links included
    assert "My answer" in markdown and "&lt;script&gt;" in markdown
    assert active("<body>" + markdown) == []
    from nbconvert.filters.markdown import markdown2html
    cleaned_source = sanitizer().sanitize_html_tags("[click](javascript:alert(3))")
    assert active("<body>" + markdown2html(cleaned_source))  # what cleaning the source misses
    assert nb.cells[1].outputs[1].data[RECORD_MIME] == record
    assert nb.cells[1].outputs[2].text == PAYLOADS[0]  # plain text is escaped when rendered


# The grader's record outputs carry RECORD_MIME only, which front ends show as nothing (see
# cs231n_lib.checks); nbconvert says so in a warning for each.
@pytest.mark.filterwarnings(
    "ignore:Your element with mimetype.*application/vnd.cs231n.record:UserWarning")
def test_autograded_notebooks_are_safe_to_render_unsanitised(course):
    """The formgrader renders course/autograded notebooks without sanitising them."""
    from nbconvert import HTMLExporter

    cfg = course[0]
    nb = nbformat.read(cfg.course_dir / "autograded" / "xss" / A / f"{A}.ipynb", 4)
    page, _ = HTMLExporter(template_name="classic").from_notebook_node(nb)
    assert active(page) == []
