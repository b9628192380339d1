"""The course's two editions, English and Chinese, of every notebook, graded as one.

``<NN_name>.ipynb`` is the English edition, ``<NN_name>.zh.ipynb`` the Chinese one (made by
``cs231n_grading.translation`` at release). Both have the same grade ids, points, solution and
test cells, so the gradebook knows one notebook, ``<NN_name>``, and a student may submit either.

Which file of a submission is graded (``edition_tasks``): the one submitted; when both are,
the one(s) the student worked in (whose solution or answer cells differ from the released
version). When both differ, both are graded and the higher score is kept, with a note saying so
(``BestOfEditions``): the student's honest work is never lost, and no point is earned that one
notebook did not earn under the same hidden tests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from cs231n_lib.i18n import LANGUAGES, check_language

LANG_CHOICES = ("en", "zh", "all")  # --lang of release and verify
META_KEY = "cs231n"  # notebook metadata: {"cs231n": {"lang": "zh"}}


def languages(lang: str) -> list[str]:
    """The editions ``--lang`` names: "en", "zh" or "all" (ValueError for anything else)."""
    if lang not in LANG_CHOICES:
        raise ValueError(f"--lang {lang!r} must be one of {LANG_CHOICES}")
    return list(LANGUAGES) if lang == "all" else [lang]


def edition_stem(stem: str) -> str:
    """The gradebook's notebook name of a file stem: ``01_x.zh`` -> ``01_x``."""
    for lang in LANGUAGES:
        if lang != "en" and stem.endswith(f".{lang}"):
            return stem[:-len(lang) - 1]
    return stem


def edition_language(name: str | os.PathLike) -> str:
    """The language of a notebook file by its name: ``x.zh.ipynb`` -> "zh", else "en"."""
    stem = Path(name).name.removesuffix(".ipynb")
    return next((lang for lang in LANGUAGES if lang != "en" and stem.endswith(f".{lang}")),
                "en")


def edition_name(stem: str, lang: str) -> str:
    """The file name of notebook ``stem`` in ``lang``: ``01_x.ipynb`` or ``01_x.zh.ipynb``."""
    check_language(lang)
    return f"{stem}.ipynb" if lang == "en" else f"{stem}.{lang}.ipynb"


def notebook_language(nb) -> str:
    """The language a notebook's metadata states (``cs231n.lang``), else "en"."""
    meta = nb.get("metadata", {}).get(META_KEY)
    lang = meta.get("lang") if isinstance(meta, dict) else None
    return lang if lang in LANGUAGES else "en"


def _work(data: bytes) -> list | None:
    """(grade id, source) of the solution and answer cells of notebook bytes, None when they
    are not a readable notebook."""
    from cs231n_grading.restore import InvalidSubmission, load_notebook_text, nbg

    try:
        nb = load_notebook_text(data)
    except InvalidSubmission:
        return None
    return [(nbg(c).get("grade_id"), c.source) for c in nb.cells if nbg(c).get("solution")]


def worked_in(submitted: Path, released: Path, max_bytes: int) -> bool:
    """Whether the student's notebook ``submitted`` (below ``submitted/``, read without
    following links) differs from ``released`` in its solution or answer cells; an unreadable
    one counts as worked in (grading then says why it is not graded)."""
    from cs231n_grading.safe_files import RefusedFile, read_file, submission_root

    try:
        root, rel = submission_root(submitted.parent)
        mine = _work(read_file(root, rel / submitted.name, max_bytes=max_bytes))
    except (RefusedFile, OSError):
        return True
    given = _work(released.read_bytes()) if released.is_file() else None
    return mine is None or mine != given


def edition_tasks(cfg, folder: Path, src: Path, make_task: Callable) -> list:
    """The GradingTasks of a student's submission of source notebook ``src`` in ``folder``:
    one per edition to grade (see the module docstring). ``make_task(source)`` builds the task
    of one edition's released source notebook (``autograde.grading_task``); the tasks of two
    editions share one key, so that a re-run skips or grades them together."""
    stem = src.stem
    snap = Path(src).parent
    release = cfg.course_dir / "release" / folder.name
    present = [lang for lang in LANGUAGES
               if os.path.lexists(folder / edition_name(stem, lang))
               and (snap / edition_name(stem, lang)).is_file()]
    chosen = present
    if len(present) > 1:
        chosen = [lang for lang in present if worked_in(
            folder / edition_name(stem, lang), release / edition_name(stem, lang),
            cfg.max_notebook_bytes)] or ["en"]
    tasks = [make_task(snap / edition_name(stem, lang)) for lang in (chosen or ["en"])]
    tasks = [dataclasses.replace(t, notebook=stem) for t in tasks]
    if len(tasks) > 1:
        key = hashlib.sha256(json.dumps([t.key for t in tasks]).encode()).hexdigest()[:24]
        tasks = [dataclasses.replace(t, key=key) for t in tasks]
    return tasks


def _rank(res: dict) -> tuple:
    """Order of two editions' results: graded before not graded, then the higher score."""
    graded = str(res.get("status", "")) == "graded"
    return (graded, float(res.get("score") or 0.0))


class BestOfEditions:
    """``on_result`` wrapper for a pool of grading tasks: a notebook submitted in both editions
    (two tasks for one student, assignment and notebook) is passed on once both results are in,
    as the better of the two with a note; every other result is passed on as it arrives."""

    def __init__(self, tasks: list, on_result: Callable[[int, dict], None]):
        self.on_result = on_result
        self.groups: dict[tuple, list[int]] = {}
        for i, t in enumerate(tasks):
            self.groups.setdefault((t.student, t.assignment, t.notebook), []).append(i)
        self.tasks = tasks
        self.waiting: dict[tuple, dict[int, dict]] = {}

    def __call__(self, i: int, res: dict) -> None:
        """Pass on result ``res`` of task ``i`` (or hold it until its pair's result is in)."""
        t = self.tasks[i]
        group = self.groups[(t.student, t.assignment, t.notebook)]
        if len(group) == 1:
            self.on_result(i, res)
            return
        held = self.waiting.setdefault((t.student, t.assignment, t.notebook), {})
        held[i] = res
        if len(held) < len(group):
            return
        best = max(group, key=lambda k: _rank(held[k]))  # ties: the first (English) edition
        chosen = dict(held[best])
        lang = edition_language(self.tasks[best].submission)
        others = [k for k in group if k != best]
        chosen["notes"] = [both_note(
            self.tasks[best].submission, held[best], [(self.tasks[k].submission, held[k])
                                                      for k in others], lang),
            *chosen.get("notes", [])]
        self.on_result(best, chosen)


def both_note(kept: Path, res: dict, others: list[tuple[Path, dict]], lang: str) -> str:
    """The note of a notebook submitted and worked in in both editions."""
    from cs231n_grading.locale import tr

    rest = "; ".join(tr("{name} scored {score}", lang, name=Path(p).name,
                        score=_score_text(r, lang)) for p, r in others)
    return tr("both editions were submitted and worked in, so both were graded by the same "
              "tests and the higher score is kept: {name} ({score}); {rest}", lang,
              name=Path(kept).name, score=_score_text(res, lang), rest=rest)


def _score_text(res: dict, lang: str) -> str:
    """``3 / 4`` points of a worker result, or 'not graded'."""
    from cs231n_grading.locale import tr

    if str(res.get("status", "")) != "graded":
        return tr("not graded", lang)
    return f"{float(res.get('score') or 0):g} / {float(res.get('max_score') or 0):g}"


# --------------------------------------------------------------------------- notes as shown

TAMPERING = "tampering: "  # prefix of the notes on restored cells: a key, kept in English


def shown_note(note: str, lang: str) -> str:
    """A stored grading note as a student reads it in ``lang``: the English ``tampering: ``
    key (which ``verify`` filters on) translated; the rest was written in the edition's language
    by the grading worker. English notes are shown unchanged."""
    from cs231n_grading.locale import tr

    if note.startswith(TAMPERING):
        return tr("tampering: {note}", lang, note=note[len(TAMPERING):])
    return note
