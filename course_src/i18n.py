"""Keep the notebooks' translation catalogues in step with the built English notebooks.

One gettext catalogue per notebook and language: ``course_src/locale/<lang>/<NN_name>.po``. Each
entry is one markdown cell of ``assignments/<NN_name>/<NN_name>.ipynb``: ``msgid`` the English
source exactly as built, ``msgstr`` the translation, extracted comments ``cell <grade_id>`` and
``en-sha256 <16 hex>`` (the English text's hash; cs231n_grading.translation reads them).

    python course_src/i18n.py update   # re-extract after `python course_src/build.py`
    python course_src/i18n.py check    # exit 1 listing missing, empty, fuzzy and stale entries

``update`` keeps every translation whose English text is unchanged; a cell whose English text
changed keeps its old translation marked ``fuzzy`` with the old English as ``previous_msgid``
(gettext's convention: ``#| msgid ...``) and the new hash, for a translator to revise and then
remove the fuzzy flag; entries whose cell is gone become obsolete (``#~``). ``--assignments``,
``--locale`` and ``--lang`` point it at another course (e.g. the fixture course of the tests).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat
import polib

from cs231n_grading.restore import nbg
from cs231n_grading.translation import (
    CELL_COMMENT,
    entry_problem,
    markdown_cells,
    problems,
    source_hash,
)

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "assignments"
LOCALE = Path(__file__).resolve().parent / "locale"
LANGUAGE_NAMES = {"zh": "zh_CN"}


def notebooks(assignments: Path) -> list[Path]:
    """The built English notebooks ``<assignments>/NN_name/NN_name.ipynb``, in course order."""
    return sorted(p for p in assignments.glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb")
                  if p.stem == p.parent.name)


def _cell_id(cell) -> str:
    """The cell's grade id, else its cell id (what the ``cell`` comment names)."""
    return str(nbg(cell).get("grade_id") or cell.get("id") or "?")


def _comment(cell_id: str, text: str) -> str:
    return f"cell {cell_id}\nen-sha256 {source_hash(text)}"


def _new_catalogue(stem: str, lang: str) -> polib.POFile:
    po = polib.POFile(wrapwidth=0)
    po.metadata = {"Project-Id-Version": f"cs231n-course {stem}",
                   "Language": LANGUAGE_NAMES.get(lang, lang), "MIME-Version": "1.0",
                   "Content-Type": "text/plain; charset=UTF-8",
                   "Content-Transfer-Encoding": "8bit"}
    return po


def updated(nb, old: polib.POFile | None, stem: str, lang: str) -> tuple[polib.POFile, dict]:
    """The catalogue of ``nb``'s markdown cells, carrying over ``old``'s translations (see
    the module docstring); also counts of kept, fuzzy, new and obsolete entries."""
    po = _new_catalogue(stem, lang)
    if old is not None:
        po.metadata = dict(old.metadata)
    previous = list(old) if old is not None else []
    by_text = {e.msgid: e for e in previous}
    by_cell: dict[str, polib.POEntry] = {}
    for e in previous:
        for cid in CELL_COMMENT.findall(e.comment or ""):
            if cid != "?":  # a cell without an id is matched by its text only
                by_cell.setdefault(cid, e)
    texts = {c.source for c in markdown_cells(nb)}
    used, counts = set(), {"kept": 0, "fuzzy": 0, "new": 0, "obsolete": 0}
    for cell in markdown_cells(nb):
        text, cid = cell.source, _cell_id(cell)
        if text in {e.msgid for e in po}:
            continue  # the same text twice: one entry
        entry = polib.POEntry(msgid=text, msgstr="", comment=_comment(cid, text))
        same = by_text.get(text)
        moved = by_cell.get(cid)
        if same is not None:
            used.add(id(same))
            entry.msgstr, entry.flags = same.msgstr, list(same.flags)
            entry.previous_msgid = same.previous_msgid
            if same.msgstr and entry_problem(same) == "stale" and "fuzzy" not in entry.flags:
                entry.flags.append("fuzzy")  # translated against another English text
            counts["kept"] += 1
        elif moved is not None and moved.msgid not in texts and id(moved) not in used:
            used.add(id(moved))
            entry.msgstr = moved.msgstr
            if moved.msgstr:
                entry.flags = ["fuzzy"]
                entry.previous_msgid = moved.previous_msgid or moved.msgid
                counts["fuzzy"] += 1
            else:
                counts["new"] += 1
        else:
            counts["new"] += 1
        po.append(entry)
    for e in previous:
        if id(e) not in used and e.msgid not in texts and e.msgstr:
            e.obsolete = True
            po.append(e)
            counts["obsolete"] += 1
    return po, counts


def update(assignments: Path, locale: Path, lang: str, log=print) -> int:
    """Rewrite ``<locale>/<lang>/<NN_name>.po`` for every notebook; returns 0."""
    for path in notebooks(assignments):
        nb = nbformat.read(path, as_version=4)
        target = locale / lang / f"{path.stem}.po"
        old = polib.pofile(str(target), wrapwidth=0) if target.is_file() else None
        po, counts = updated(nb, old, path.stem, lang)
        target.parent.mkdir(parents=True, exist_ok=True)
        po.save(str(target))
        log(f"{target}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def check(assignments: Path, locale: Path, lang: str, log=print) -> int:
    """Report every markdown cell without a usable translation; returns 1 if there is one."""
    bad = 0
    for path in notebooks(assignments):
        target = locale / lang / f"{path.stem}.po"
        if not target.is_file():
            log(f"{path.stem}: no catalogue {target} (run `python course_src/i18n.py update`)")
            bad += 1
            continue
        found = problems(nbformat.read(path, as_version=4), polib.pofile(str(target),
                                                                        wrapwidth=0))
        for p in found:
            log(f"{path.stem}: {p}")
        bad += len(found)
        if not found:
            log(f"{path.stem}: every markdown cell has a current {lang} translation")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("update", "check"))
    parser.add_argument("--lang", default="zh", help="language code (default: zh)")
    parser.add_argument("--assignments", type=Path, default=ASSIGNMENTS,
                        help="folder of built notebooks (default: assignments/)")
    parser.add_argument("--locale", type=Path, default=LOCALE,
                        help="folder of catalogues (default: course_src/locale/)")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[a-z]{2}", args.lang):
        parser.error(f"--lang {args.lang!r} must be a two-letter language code")
    run = update if args.command == "update" else check
    return run(args.assignments, args.locale, args.lang)


if __name__ == "__main__":
    sys.exit(main())
