"""Every markdown cell of the six notebooks renders as written.

Rendered with nbconvert's markdown engine (mistune, CommonMark rules like JupyterLab's marked),
a cell must not turn text into markup its author did not write: a formula's ``F*F*C`` into
italics, a wrapped line starting ``1)`` into a numbered list, or a ``$`` pair into broken math.
"""

import html
import re

import pytest
from nbconvert.filters.markdown_mistune import markdown2html_mistune
from notebook_utils import notebook_names, read

CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
MATH = re.compile(r"\$\$.+?\$\$|(?<!\\)\$[^$\n]+?(?<!\\)\$", re.S)
LIST_LINE = re.compile(r"^\s*(?:[-+*]|\d+[.)])\s+\S")
EMPHASIS = re.compile(r"<(em|strong)>(.*?)</\1>", re.S)


def _without_code(text: str) -> str:
    """``text`` with fenced blocks and code spans blanked (their characters are literal)."""
    text = FENCE.sub(lambda m: " " * len(m.group()), text)
    return CODE_SPAN.sub(lambda m: " " * len(m.group()), text)


def _cells():
    for name in notebook_names():
        for i, cell in enumerate(read(name).cells):
            if cell.cell_type == "markdown":
                yield pytest.param(cell.source, id=f"{name}-cell{i}")


CELLS = list(_cells())


def accidental_lists(source: str) -> list[str]:
    """Lines that start a list in the middle of a paragraph (a wrapped ``1)`` or ``- x``)."""
    lines = _without_code(source).split("\n")
    bad = []
    for prev, line in zip(lines, lines[1:], strict=False):
        if LIST_LINE.match(line) and prev.strip() and not LIST_LINE.match(prev) \
                and not prev.startswith((" ", "\t", "|", "#")):
            bad.append(line.strip())
    return bad


def accidental_emphasis(source: str, rendered: str) -> list[str]:
    """Emphasised texts whose ``*``/``_`` delimiters sit inside a word or formula (``F*F*C``)."""
    plain = _without_code(MATH.sub(lambda m: " " * len(m.group()), source))
    bad = []
    for _, inner in EMPHASIS.findall(rendered):
        text = html.unescape(re.sub(r"<[^>]+>", "", inner))
        intended = False
        for delim in ("**", "__", "*", "_"):
            for m in re.finditer(re.escape(delim + text + delim), plain):
                before = plain[m.start() - 1] if m.start() else " "
                after = plain[m.end()] if m.end() < len(plain) else " "
                if not before.isalnum() and not after.isalnum():
                    intended = True
        if not intended:
            bad.append(text)
    return bad


def unbalanced_dollars(source: str) -> int:
    """Number of unescaped ``$`` outside code (odd: a formula left open)."""
    return len(re.findall(r"(?<!\\)\$", _without_code(source)))


@pytest.mark.parametrize("source", CELLS)
def test_markdown_renders_as_written(source):
    rendered = markdown2html_mistune(source)
    assert accidental_lists(source) == [], "a wrapped line starts a list"
    assert accidental_emphasis(source, rendered) == [], "'*' or '_' inside a formula"
    assert unbalanced_dollars(source) % 2 == 0, "a '$' without its pair"
    for math in MATH.findall(_without_code(source)):
        assert html.escape(math, quote=False) in rendered or math in rendered, math


def test_the_checks_catch_the_errors_they_are_for():
    """The first formula of notebook 01 as it once was, and its fixed form."""
    broken = "A layer has K * (F*F*C +\n1) parameters, however large"
    rendered = markdown2html_mistune(broken)
    assert "<ol>" in rendered and "<em>F</em>" in rendered  # how it rendered
    assert accidental_lists(broken) == ["1) parameters, however large"]
    assert accidental_emphasis(broken, rendered) == ["F"]
    assert unbalanced_dollars("costs $K (F^2 C + 1) parameters") == 1
    fixed = "A layer has $K (F^2 C + 1)$ parameters,\nhowever large; *shared* weights"
    rendered = markdown2html_mistune(fixed)
    assert accidental_lists(fixed) == [] and accidental_emphasis(fixed, rendered) == []
    assert "$K (F^2 C + 1)$" in rendered
    assert accidental_lists("Steps:\n\n1. one\n2. two") == []
