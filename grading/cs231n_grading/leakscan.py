"""Scan a release (student notebooks + student library edition) for reference solutions.

A leak is any of: a solution or hidden-test marker in any file; a source notebook's
hidden-test block or (multi-line) solution block in a released notebook; an ``@exercise``
function in the student edition whose body is not a NotImplementedError stub.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat

from cs231n_grading.markers import HIDDEN_TESTS, LEAK_WORDS, SOLUTION, regions
from cs231n_grading.student_edition import docstring_stmt, find_exercises

__all__ = ["hidden_test_lines", "regions", "scan_library", "scan_release"]


def hidden_test_lines(source: str) -> list[str]:
    """Non-trivial stripped lines of the hidden-test blocks of ``source`` (for redaction)."""
    return [ln for block in regions(source, HIDDEN_TESTS) for ln in block
            if len(ln) >= 8 and not ln.startswith("#")]


def _contains_block(haystack: list[str], block: list[str]) -> bool:
    """Whether ``block`` occurs as consecutive lines of ``haystack``."""
    n = len(block)
    return any(haystack[i:i + n] == block for i in range(len(haystack) - n + 1))


def _is_stub(node) -> bool:
    """Whether a function body is only (docstring +) ``raise NotImplementedError``."""
    doc = docstring_stmt(node)
    body = node.body[1:] if doc else node.body
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc
    target = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(target, ast.Name) and target.id == "NotImplementedError"


def scan_library(reference: Path, edition: Path) -> list[str]:
    """Problems with the student edition ``edition`` of the package ``reference``."""
    problems = []
    for ref_py in sorted(Path(reference).rglob("*.py")):
        rel = ref_py.relative_to(reference)
        ref_ex = find_exercises(ref_py.read_text(encoding="utf-8"), ref_py)
        if not ref_ex:
            continue
        ed_py = Path(edition) / rel
        if not ed_py.is_file():
            problems.append(f"{ed_py}: missing from the student edition")
            continue
        ed_ex = {e.qualname: e for e in find_exercises(ed_py.read_text(encoding="utf-8"), ed_py)}
        for ex in ref_ex:
            got = ed_ex.get(ex.qualname)
            if got is None:
                problems.append(f"{ed_py}: exercise {ex.qualname} missing or undecorated")
            elif not _is_stub(got.node):
                problems.append(f"{ed_py}: exercise {ex.qualname} keeps a body (reference "
                                "solution leaked)")
    return problems


def _text_files(root: Path):
    """(path, text) of every readable text file under ``root``."""
    for path in sorted(Path(root).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            try:
                yield path, path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue


def _cell_lines(path: Path) -> list[list[str]]:
    """Stripped non-empty source lines of each cell of a notebook file."""
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001 - an unreadable file is scanned as text only
        return []
    return [[ln.strip() for ln in c.source.splitlines() if ln.strip()] for c in nb.cells]


def scan_release(roots: list[Path], source_notebooks: list[Path],
                 libraries: dict[Path, Path] | None = None) -> list[str]:
    """All leaks found under ``roots``; empty list means the release is clean.

    ``source_notebooks``: instructor notebooks whose hidden tests and solutions must not appear;
    ``libraries``: {reference package dir: student edition dir}.
    """
    problems = []
    blocks = []
    for src in source_notebooks:
        for cell in nbformat.read(src, as_version=4).cells:
            blocks += [("hidden test", src, b) for b in regions(cell.source, HIDDEN_TESTS)]
            blocks += [("solution", src, b) for b in regions(cell.source, SOLUTION)
                       if len(b) >= 2]
    for root in roots:
        for path, text in _text_files(root):
            for marker in LEAK_WORDS:
                if marker in text:
                    problems.append(f"{path}: contains {marker!r}")
            if path.suffix == ".ipynb":
                cells = _cell_lines(path)
                for what, src, block in blocks:
                    if any(_contains_block(lines, block) for lines in cells):
                        problems.append(f"{path}: contains a {what} block of {src.name}: "
                                        f"{block[0]!r}...")
    for ref, edition in (libraries or {}).items():
        problems += scan_library(ref, edition)
    return problems
