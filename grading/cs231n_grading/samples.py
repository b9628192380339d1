"""Sample submissions made from an assignment's source and release (demo and tests)."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

from cs231n_grading.markers import strip_solution_markers
from cs231n_grading.restore import nbg

WARN_PREFIX = ('import sys as _sys\nimport warnings as _warnings\n'
               '_warnings.warn("this honest solution emits a warning")\n'
               'print("debug output on stderr", file=_sys.stderr)\n')


def solution_text(source_cell) -> str:
    """A source solution cell as a student would write it (solution markers removed)."""
    return strip_solution_markers(source_cell.source)


def fill(release, source, *, fraction: float = 1.0, prefix: str = ""):
    """The release notebook with the first ``fraction`` of its solution cells answered."""
    nb = copy.deepcopy(release)
    answers = {nbg(c)["grade_id"]: c for c in source.cells if nbg(c).get("solution")}
    slots = [c for c in nb.cells if nbg(c).get("solution") and nbg(c).get("grade_id") in answers]
    for cell in slots[:round(fraction * len(slots))]:
        text = solution_text(answers[nbg(cell)["grade_id"]])
        cell.source = (prefix + text) if cell.cell_type == "code" else text
    return nb


KINDS = {
    "correct": lambda rel, src: fill(rel, src),
    "untouched": lambda rel, src: copy.deepcopy(rel),
    "partial": lambda rel, src: fill(rel, src, fraction=0.5),
    "warnings": lambda rel, src: fill(rel, src, prefix=WARN_PREFIX),
}


def write_submission(course_dir: Path, student: str, assignment: str, kind: str,
                     sources: list[Path]) -> Path:
    """Write ``student``'s submission of ``assignment`` of the given kind (or 'broken')."""
    folder = Path(course_dir) / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "timestamp.txt").write_text("2026-01-15 12:00:00.000000 UTC")
    for src in sources:
        release = Path(course_dir) / "release" / assignment / src.name
        if kind == "broken":
            text = release.read_text(encoding="utf-8")
            (folder / src.name).write_text(text[: len(text) // 2], encoding="utf-8")
            continue
        nb = KINDS[kind](nbformat.read(release, as_version=4), nbformat.read(src, as_version=4))
        nbformat.write(nb, folder / src.name)
    return folder
