"""Build the notebook the grader executes from a submission and the instructor's source.

Instructor cells are matched by ``grade_id``: test and read-only cells get the instructor's
source (hidden tests included) and metadata; solution cells keep the student's source with the
instructor's metadata and cell type; missing cells are re-inserted; cells the student added stay
where they were (after the instructor cell they followed), with any nbgrader metadata removed.
Every change is noted (in the current language, ``cs231n_lib.i18n``); tampering never makes a
gradable notebook ungradable.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import nbformat
from nbformat import NotebookNode

from cs231n_grading.locale import tr

FLAG_KEYS = ("grade", "solution", "locked", "points", "grade_id")
MAX_METADATA_DEPTH = 64  # deeper cell metadata is refused (copying it would hit recursion limits)


class InvalidSubmission(ValueError):
    """The submission is not a notebook the grader can read."""


def load_notebook_text(text: str | bytes) -> NotebookNode:
    """Parse notebook JSON (v4) without trusting its structure; raise InvalidSubmission."""
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # nesting too deep
        raise InvalidSubmission(f"invalid JSON ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise InvalidSubmission("not a notebook (no list of cells)")
    if raw.get("nbformat") != 4:
        raise InvalidSubmission(f"unsupported nbformat {raw.get('nbformat')!r} (need 4)")
    cells = []
    for i, c in enumerate(raw["cells"]):
        if not isinstance(c, dict) or c.get("cell_type") not in ("code", "markdown", "raw"):
            raise InvalidSubmission(f"cell {i} is not a valid notebook cell")
        src = c.get("source", "")
        if isinstance(src, list):
            src = "".join(s for s in src if isinstance(s, str))
        if not isinstance(src, str):
            raise InvalidSubmission(f"cell {i} has a source that is not text")
        meta = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
        _check_cell(i, src, meta)
        cells.append(_new_cell(c["cell_type"], src, meta))
    nb = nbformat.v4.new_notebook(cells=cells)
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    _check_depth(meta, "the notebook")
    nb.metadata = meta  # (restore() replaces it by the source's)
    return nb


def _check_depth(metadata: dict, where: str) -> None:
    """Raise InvalidSubmission when ``metadata`` nests deeper than MAX_METADATA_DEPTH."""
    level, depth = [metadata], 0
    while level:  # iterative: nesting must not reach the interpreter's recursion limit
        depth += 1
        if depth > MAX_METADATA_DEPTH:
            raise InvalidSubmission(f"{where} has metadata nested deeper than "
                                    f"{MAX_METADATA_DEPTH} levels")
        level = [v for o in level if isinstance(o, (dict, list))
                 for v in (o.values() if isinstance(o, dict) else o)]


def _check_cell(i: int, source: str, metadata: dict) -> None:
    """Raise InvalidSubmission for what no grading step could copy, save or send to a kernel."""
    _check_depth(metadata, f"cell {i}")
    try:  # JSON escapes can encode lone surrogates, which no kernel message can carry
        (source + json.dumps(metadata, ensure_ascii=False)).encode("utf-8")
    except UnicodeEncodeError as err:
        raise InvalidSubmission(f"cell {i} holds text that is not valid Unicode "
                                f"({err.reason}: {err.object[err.start:err.end]!a})") from None


def _new_cell(cell_type: str, source: str, metadata: dict) -> NotebookNode:
    """A fresh cell of ``cell_type`` (no outputs) with a copy of ``metadata``."""
    make = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell}[cell_type]
    return make(source, metadata=copy.deepcopy(metadata))


def nbg(cell) -> dict:
    """The cell's nbgrader metadata (empty dict when absent or malformed)."""
    m = cell.get("metadata", {}).get("nbgrader")
    return m if isinstance(m, dict) else {}


def is_tracked(cell) -> bool:
    """Whether nbgrader tracks the cell (has a grade_id and a grade/solution/locked flag)."""
    m = nbg(cell)
    return bool(m.get("grade_id")) and any(m.get(k) for k in ("grade", "solution", "locked"))


def is_test(cell) -> bool:
    """An autograded test cell: graded code cell that is not a solution."""
    m = nbg(cell)
    return cell.cell_type == "code" and bool(m.get("grade")) and not m.get("solution")


@dataclass
class Restored:
    """The grading notebook and the notes on what was restored."""
    nb: NotebookNode
    notes: list[str] = field(default_factory=list)


def restore(submission: NotebookNode, source: NotebookNode,
            release: NotebookNode | None = None) -> Restored:
    """The grading notebook for ``submission`` (see module docstring)."""
    notes: list[str] = []
    inst = {nbg(c)["grade_id"]: c for c in source.cells if is_tracked(c)}
    order = [nbg(c)["grade_id"] for c in source.cells if is_tracked(c)]
    given = {nbg(c)["grade_id"]: c for c in (release.cells if release else []) if is_tracked(c)}

    matched: dict[str, NotebookNode] = {}
    anchored: dict[str | None, list[NotebookNode]] = {None: []}
    seen_order: list[str] = []
    anchor = None
    for cell in submission.cells:
        gid = nbg(cell).get("grade_id")
        gid = gid if isinstance(gid, str) else None  # a list or dict id matches nothing
        if gid in inst and gid not in matched:
            matched[gid] = cell
            seen_order.append(gid)
            anchor = gid
            anchored.setdefault(gid, [])
            continue
        cell = copy.deepcopy(cell)
        if nbg(cell):
            m = nbg(cell)
            if gid in inst:
                notes.append(tr("duplicate of cell {id} kept as an ordinary cell", id=gid))
            elif any(m.get(k) for k in ("grade", "solution", "locked")):
                notes.append(tr("extra cell {id} marked for grading is not part of the "
                                "assignment (kept as an ordinary cell)", id=gid or "(no id)"))
            cell.metadata.pop("nbgrader", None)
        anchored.setdefault(anchor, []).append(cell)
    if seen_order != [g for g in order if g in matched]:
        notes.append(tr("instructor cells were reordered (instructor order restored)"))

    cells = list(anchored[None])
    for gid in order:
        ref = inst[gid]
        m = nbg(ref)
        student = matched.get(gid)
        role = "solution" if m.get("solution") else ("test" if m.get("grade") else "read-only")
        if role == "solution":
            if student is None:
                source_text = given[gid].source if gid in given else ""
                notes.append(tr("solution cell {id} was deleted (empty answer graded)",
                                id=gid))
            else:
                source_text = student.source
        else:
            source_text = ref.source
            if student is None:
                notes.append(tr("test cell {id} was deleted (restored)", id=gid) if role == "test"
                             else tr("read-only cell {id} was deleted (restored)", id=gid))
            elif gid in given and student.source != given[gid].source:
                notes.append(tr("test cell {id} was edited (restored)", id=gid) if role == "test"
                             else tr("read-only cell {id} was edited (restored)", id=gid))
        if student is not None:
            if student.cell_type != ref.cell_type:
                notes.append(tr("cell {id} type changed from {old} to {new} (restored)",
                                id=gid, old=ref.cell_type, new=student.cell_type))
            if any(nbg(student).get(k) != m.get(k) for k in FLAG_KEYS):
                notes.append(tr("cell {id} nbgrader metadata changed (restored)", id=gid))
        cells.append(_new_cell(ref.cell_type, source_text, ref.metadata))
        cells.extend(anchored.get(gid, []))

    for k, cell in enumerate(cells):  # before new_notebook validates them: a submission's
        cell["id"] = f"cell-{k}"  # cells need not have ids (nbformat < 4.5, e.g. Colab's)
    nb = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return Restored(nb, notes)
