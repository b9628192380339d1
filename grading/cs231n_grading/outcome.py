"""A notebook's grading status: ``graded``, or ``not graded: <reason>``.

The one place that builds and reads the status text stored in the status store, the CSV and the
feedback pages. Standard library only: the gradebook, export and feedback use it without
importing the kernel stack.
"""

from __future__ import annotations

from dataclasses import dataclass

GRADED_TEXT = "graded"
NOT_GRADED_PREFIX = "not graded: "


@dataclass(frozen=True)
class Status:
    """Graded (``reason`` None), or not graded for ``reason`` (a non-empty sentence)."""

    reason: str | None = None

    def __post_init__(self):
        if self.reason is not None and not str(self.reason).strip():
            raise ValueError(f"a 'not graded' status needs a reason, got {self.reason!r}")

    @classmethod
    def not_graded(cls, reason: str) -> Status:
        """The status of a notebook that could not be graded, for ``reason``."""
        return cls(str(reason))

    @property
    def graded(self) -> bool:
        """Whether the notebook was graded (its test verdicts count)."""
        return self.reason is None

    def __str__(self) -> str:
        return GRADED_TEXT if self.graded else NOT_GRADED_PREFIX + self.reason

    @classmethod
    def parse(cls, text: str) -> Status:
        """The Status whose text is ``text``; ValueError for any other string."""
        if text == GRADED_TEXT:
            return GRADED
        if isinstance(text, str) and text.startswith(NOT_GRADED_PREFIX):
            return cls(text[len(NOT_GRADED_PREFIX):])
        raise ValueError(f"not a grading status: {text!r} (expected {GRADED_TEXT!r} or "
                         f"{NOT_GRADED_PREFIX!r} followed by a reason)")


GRADED = Status()


def is_graded(text: str) -> bool:
    """Whether a stored status text says ``graded`` (ValueError for a text that is no status)."""
    return Status.parse(text).graded
