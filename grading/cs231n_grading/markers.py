"""The nbgrader region markers of the course's notebooks: the one definition of each.

A solution cell holds ``### BEGIN SOLUTION`` ... ``### END SOLUTION``; a test cell may hold
``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` (removed from the release). The course
builder, the leak scan, the feedback pages and the sample submissions all read them from here.
Standard library only: the course builder imports it without the grading stack.
"""

from __future__ import annotations

import re

SOLUTION = "SOLUTION"
HIDDEN_TESTS = "HIDDEN TESTS"
KINDS = (SOLUTION, HIDDEN_TESTS)
PREFIX = "### "  # how the course writes them (nbgrader accepts any number of '#')

BEGIN_SOLUTION = f"{PREFIX}BEGIN {SOLUTION}"
END_SOLUTION = f"{PREFIX}END {SOLUTION}"
BEGIN_HIDDEN_TESTS = f"{PREFIX}BEGIN {HIDDEN_TESTS}"
END_HIDDEN_TESTS = f"{PREFIX}END {HIDDEN_TESTS}"

# Marker words that must never appear in a release (nbgrader's mark scheme marker included).
LEAK_WORDS = (f"BEGIN {SOLUTION}", f"END {SOLUTION}", f"BEGIN {HIDDEN_TESTS}",
              f"END {HIDDEN_TESTS}", "BEGIN MARK SCHEME")

REGION = re.compile(r"^[ \t]*#+[ \t]*BEGIN (SOLUTION|HIDDEN TESTS)[^\n]*\n(.*?)"
                    r"^[ \t]*#+[ \t]*END \1", re.S | re.M)


def regions(source: str, kind: str) -> list[list[str]]:
    """Stripped non-empty lines of each ``### BEGIN <kind>`` ... ``### END <kind>`` block."""
    if kind not in KINDS:
        raise ValueError(f"unknown region kind {kind!r}; known: {KINDS}")
    out = []
    for m in REGION.finditer(source):
        if m.group(1) == kind:
            lines = [ln.strip() for ln in m.group(2).splitlines() if ln.strip()]
            if lines:
                out.append(lines)
    return out


def has_hidden_tests(source: str) -> bool:
    """Whether ``source`` holds a hidden-test region's opening marker."""
    return f"BEGIN {HIDDEN_TESTS}" in source


def strip_solution_markers(source: str) -> str:
    """``source`` without its solution marker lines (a solution as a student would write it)."""
    return "\n".join(ln for ln in source.splitlines()
                     if ln.strip() not in (BEGIN_SOLUTION, END_SOLUTION))
