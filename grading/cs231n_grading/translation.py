"""A notebook in another language, from the English source notebook and a gettext catalogue.

The catalogue (``<locale_dir>/<lang>/<NN_name>.po``, read with polib) holds one entry per
markdown cell: ``msgid`` the English source exactly as in the built notebook, ``msgstr`` its
translation, and the extracted comments ``cell <grade_id>`` and ``en-sha256 <16 hex>`` (the
first 16 hex digits of the SHA-256 of the English text, UTF-8). ``course_src/i18n.py`` keeps
the catalogues in step with the notebooks.

The translated notebook (``translate_notebook``) is the source notebook with

- every markdown cell replaced by its translation, links to other course notebooks
  (``../01_convolution/01_convolution.ipynb``) pointing at the same edition
  (``01_convolution.zh.ipynb``), and links to a heading (``01_convolution.ipynb#Glossary``, or
  ``#Glossary`` within the notebook) pointing at the translated heading
  (``01_convolution.zh.ipynb#术语表``): the heading at the same position of the same cell,
  its anchor derived from its text as JupyterLab and nbconvert do (``heading_anchor``);
- the notebook metadata ``{"cs231n": {"lang": "zh"}}``;
- one line on top of the first code cell (read-only setup),
  ``from cs231n_lib.i18n import set_language; set_language("zh")``, so that the library's test
  messages come out in that language in the kernel;
- the pass line of each test cell (``print("✓ <id> passed ...")``, added by the course build)
  in that language;
- the comment stating an exercise's grader rules on top of its solution cell (``# Grader rules
  for this cell ...``, added by the course build) in that language.

Everything else (code, solution and test cells, grade ids, points, cell ids) is unchanged: the
gradebook and the hidden tests are the English edition's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from nbformat import NotebookNode

from cs231n_grading.editions import META_KEY, edition_name
from cs231n_grading.restore import nbg
from cs231n_grading.rules import Rules
from cs231n_lib.checks import pass_message
from cs231n_lib.i18n import check_language

SET_LANGUAGE = 'from cs231n_lib.i18n import set_language; set_language("{lang}")'
# a link to a course notebook: NN_name.ipynb, not already an edition (NN_name.zh.ipynb), with
# the anchor of a heading in it (#Glossary), if any
ANCHOR = r"(?:[^\s()<>\]\"']|\([^\s()]*\))+"  # balanced parentheses: #1.-ReLU-(3-points)
NOTEBOOK_LINK = re.compile(rf"\b(\d\d_[A-Za-z0-9_]+)\.ipynb\b(#{ANCHOR})?")
# a markdown link to a heading of the same notebook: [text](#anchor)
SAME_NOTEBOOK_LINK = re.compile(rf"(\]\(\s*<?)#({ANCHOR})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_MARKUP = (  # what rendering removes from a heading's text: links, code, emphasis
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"`+([^`]*)`+"), r"\1"),
    (re.compile(r"(\*{1,3}|\b_{1,3})(\S(?:.*?\S)?)\1"), r"\2"),
)
HASH_COMMENT = re.compile(r"^en-sha256 ([0-9a-f]{16})$", re.MULTILINE)
CELL_COMMENT = re.compile(r"^cell (\S+)$", re.MULTILINE)


def source_hash(text: str) -> str:
    """The first 16 hex digits of the SHA-256 of ``text`` (UTF-8): the ``en-sha256`` comment."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Problem:
    """A markdown cell without a usable translation."""

    grade_id: str
    what: str  # "missing", "empty", "fuzzy" or "stale"

    def __str__(self) -> str:
        return f"cell {self.grade_id}: {self.what}"


def read_catalogue(path: Path):
    """The polib catalogue at ``path`` (ValueError naming the file when it cannot be read)."""
    import polib

    try:
        return polib.pofile(str(path), wrapwidth=0)
    except (OSError, ValueError) as err:  # polib raises IOError/ValueError on bad syntax
        raise ValueError(f"cannot read the catalogue {path}: {err}") from None


def entry_problem(entry) -> str | None:
    """Why a catalogue entry cannot be used: "missing" (None), "empty", "fuzzy" or "stale"
    (its stored hash is not the hash of its msgid), else None."""
    if entry is None:
        return "missing"
    if not entry.msgstr.strip():
        return "empty"
    if entry.fuzzy:
        return "fuzzy"
    stored = HASH_COMMENT.search(entry.comment or "")
    if stored is None or stored[1] != source_hash(entry.msgid):
        return "stale"
    return None


def markdown_cells(nb: NotebookNode) -> list[NotebookNode]:
    """The markdown cells of a notebook (the ones a catalogue translates)."""
    return [c for c in nb.cells if c.cell_type == "markdown"]


def problems(nb: NotebookNode, catalogue) -> list[Problem]:
    """Every markdown cell of ``nb`` whose translation in ``catalogue`` is unusable."""
    table = {e.msgid: e for e in catalogue if not e.obsolete}
    out = []
    for cell in markdown_cells(nb):
        what = entry_problem(table.get(cell.source))
        if what:
            out.append(Problem(str(nbg(cell).get("grade_id", cell.get("id"))), what))
    return out


def headings(markdown: str) -> list[str]:
    """The texts of the ATX headings (``## Title``) of a markdown text, in order (not those in
    fenced code blocks)."""
    out, fenced = [], None
    for line in markdown.splitlines():
        fence = FENCE.match(line)
        if fence and (fenced is None or fence[1] == fenced):
            fenced = fence[1] if fenced is None else None
        elif fenced is None and (m := HEADING.match(line)):
            out.append(m[2])
    return out


def heading_anchor(text: str) -> str:
    """The anchor JupyterLab and nbconvert's HTML exporter give a heading: its rendered text
    (markdown links, code spans and emphasis reduced to their text) with each space replaced by
    ``-`` (nbconvert also percent-encodes the id; a browser matches either form)."""
    for pattern, repl in INLINE_MARKUP:
        text = pattern.sub(repl, text)
    return text.strip().replace(" ", "-")


def anchor_map(nb: NotebookNode, catalogue) -> dict[str, str | None]:
    """``{English heading anchor: translated heading anchor}`` of source notebook ``nb``: the
    heading at the same position of the same markdown cell. A heading whose cell has no usable
    translation, or whose translation has fewer headings, maps to None (``resolve_anchor``
    says why)."""
    table = {e.msgid: e.msgstr for e in catalogue if not e.obsolete and entry_problem(e) is None}
    out: dict[str, str | None] = {}
    for cell in markdown_cells(nb):
        translated = headings(table[cell.source]) if cell.source in table else []
        for k, heading in enumerate(headings(cell.source)):
            out.setdefault(heading_anchor(heading),
                           heading_anchor(translated[k]) if k < len(translated) else None)
    return out


def resolve_anchor(anchors: dict[str, str | None], anchor: str, where: str, lang: str) -> str:
    """The translated anchor of English heading anchor ``anchor`` in notebook ``where``
    (ValueError when that notebook has no such heading or its translation lacks it)."""
    from urllib.parse import unquote

    key = unquote(anchor)
    if key not in anchors:
        known = ", ".join(f"#{a}" for a in anchors) or "none"
        raise ValueError(f"a link points at heading #{anchor} of {where}, which has no such "
                         f"heading (its headings: {known})")
    if anchors[key] is None:
        raise ValueError(f"a link points at heading #{anchor} of {where}, whose {lang} "
                         "translation has no heading at that place of that cell")
    return anchors[key]


@dataclass(frozen=True)
class Sources:
    """Where a course's English source notebooks (``<assignments>/<NN_name>/<NN_name>.ipynb``)
    and one language's catalogues (``<catalogues>/<NN_name>.po``) are: what a link to a heading
    of another notebook needs to find that heading's translation."""

    assignments: Path
    catalogues: Path

    def anchors(self, stem: str) -> dict[str, str | None]:
        """``anchor_map`` of notebook ``stem`` (ValueError when it or its catalogue is
        missing)."""
        import nbformat

        source = self.assignments / stem / f"{stem}.ipynb"
        if not source.is_file():
            raise ValueError(f"a link points at notebook {stem}, but {source} does not exist")
        catalogue = read_catalogue(self.catalogues / f"{stem}.po")
        return anchor_map(nbformat.read(source, as_version=4), catalogue)


def rewrite_links(text: str, lang: str, anchors=None, *, strict: bool = True) -> str:
    """``text`` with links to course notebooks pointing at their ``lang`` edition.

    A link to a heading (``01_x.ipynb#Title``, ``#Title``) needs ``anchors(stem)`` (the
    ``anchor_map`` of notebook ``stem``; ``stem`` None: the notebook of ``text``) and points at
    the translated heading; without ``anchors``, or when the heading or its translation is
    not found, such a link is a ValueError (``strict``) or left pointing at the English anchor.
    """
    def resolved(stem: str | None, anchor: str) -> str:
        where = stem or "this notebook"
        if anchors is None:
            raise ValueError(f"cannot translate the link to heading #{anchor} of {where}: "
                             "the notebooks' anchors were not given")
        try:
            return resolve_anchor(anchors(stem), anchor, where, lang)
        except ValueError:
            if strict:
                raise
            return anchor  # left as it is, like an untranslated cell

    def notebook(m: re.Match) -> str:
        name = edition_name(m[1], lang)
        return f"{name}#{resolved(m[1], m[2][1:])}" if m[2] else name

    def same(m: re.Match) -> str:
        return f"{m[1]}#{resolved(None, m[2])}"

    return SAME_NOTEBOOK_LINK.sub(same, NOTEBOOK_LINK.sub(notebook, text))


def _pass_line(grade_id: str, lang: str) -> str:
    """The print a test cell ends with, in ``lang`` (as course_src/build.py writes it)."""
    return f"print({json.dumps(pass_message(grade_id, lang), ensure_ascii=False)})"


def translate_rules_comment(cell: NotebookNode, lang: str) -> str:
    """A solution cell's source with its grader-rules comment (from its ``cs231n.rules``
    metadata, as the course build wrote it in English) in ``lang``; unchanged without one."""
    rules = Rules.from_metadata(cell.metadata)
    english = rules.comment("en") + "\n"
    if not (rules.forbid or rules.require) or not cell.source.startswith(english):
        return cell.source
    return rules.comment(lang) + "\n" + cell.source[len(english):]


def _first_setup_cell(nb: NotebookNode) -> NotebookNode:
    """The first code cell, which must be read-only (ValueError otherwise)."""
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    if cell is None or nbg(cell).get("solution") or nbg(cell).get("grade"):
        raise ValueError("the first code cell must be a read-only setup cell (it gets the "
                         "set_language line)")
    return cell


def translate_notebook(nb: NotebookNode, catalogue, lang: str, *, strict: bool = True,
                       sources: Sources | None = None) -> NotebookNode:
    """The ``lang`` edition of source notebook ``nb`` (a copy; see the module docstring).

    ``strict``: ValueError listing every markdown cell without a usable translation; else such
    cells stay in English. ``sources``: where the other notebooks are, for links to their
    headings (ValueError when such a link cannot be translated).
    """
    if check_language(lang) == "en":
        raise ValueError("the English edition is the source notebook itself")
    found = problems(nb, catalogue)
    if strict and found:
        raise ValueError(f"{len(found)} markdown cell(s) lack a usable {lang} translation: "
                         + ", ".join(map(str, found)))
    table = {e.msgid: e for e in catalogue if not e.obsolete and entry_problem(e) is None}
    out = copy.deepcopy(nb)
    tables: dict[str | None, dict] = {}

    def anchors(stem: str | None) -> dict:
        if stem not in tables:
            if stem is None:
                tables[None] = anchor_map(nb, catalogue)
            elif sources is None:
                raise ValueError(f"cannot translate a link to a heading of {stem}: the other "
                                 "notebooks' sources were not given")
            else:
                tables[stem] = sources.anchors(stem)
        return tables[stem]

    for cell in markdown_cells(out):
        entry = table.get(cell.source)
        if entry is not None:
            cell.source = rewrite_links(entry.msgstr, lang, anchors, strict=strict)
    setup = _first_setup_cell(out)
    setup.source = SET_LANGUAGE.format(lang=lang) + "\n" + setup.source
    for cell in out.cells:
        gid = nbg(cell).get("grade_id")
        if cell.cell_type == "code" and nbg(cell).get("grade") and gid:
            cell.source = cell.source.replace(_pass_line(gid, "en"), _pass_line(gid, lang))
        if cell.cell_type == "code" and nbg(cell).get("solution"):
            cell.source = translate_rules_comment(cell, lang)
    out.metadata[META_KEY] = {"lang": lang}
    return out


def translate_file(source: Path, catalogue_path: Path, lang: str, dest: Path, *,
                   strict: bool = True) -> Path:
    """Write the ``lang`` edition of notebook ``source`` to ``dest``; returns ``dest``. Links
    to headings of other notebooks are resolved from the course layout: ``source`` is
    ``<assignments>/<NN_name>/<NN_name>.ipynb`` and the catalogues of the other notebooks are
    beside ``catalogue_path``."""
    import nbformat

    nb = nbformat.read(source, as_version=4)
    sources = Sources(Path(source).parent.parent, Path(catalogue_path).parent)
    new = translate_notebook(nb, read_catalogue(catalogue_path), lang, strict=strict,
                             sources=sources)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new, dest)
    return dest
