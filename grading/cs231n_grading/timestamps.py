"""``timestamp.txt`` of a submission, read without following links and validated as nbgrader
parses it (apart from ``safe_files`` so that students' ``check`` needs no nbgrader).

nbgrader is imported only to parse a date (``read_timestamp``, in the parent process, which has
it loaded already): a grading worker only checks that the file is not a link
(``refuse_linked_timestamp``), so worker processes never import nbgrader."""

from __future__ import annotations

from pathlib import Path, PurePath

from cs231n_grading.safe_files import MissingFile, TooLarge, read_file

MAX_TIMESTAMP_BYTES = 1_000


def _timestamp_text(root: Path, rel: str | PurePath) -> tuple[str | None, str | None]:
    """(stripped text, None) of ``root/rel/timestamp.txt``, or (None, why not) (None, None:
    missing or empty); RefusedFile for a link or a file that is not regular (read_timestamp)."""
    try:
        data = read_file(root, PurePath(rel, "timestamp.txt"), max_bytes=MAX_TIMESTAMP_BYTES)
    except MissingFile:
        return None, None
    except TooLarge as err:
        return None, str(err)
    except OSError as err:
        return None, f"timestamp.txt cannot be read ({err.strerror or err})"
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None, "timestamp.txt is not UTF-8 text"
    return text or None, None


def refuse_linked_timestamp(root: Path, rel: str | PurePath) -> None:
    """Raise RefusedFile when ``root/rel/timestamp.txt`` is a link or not a regular file (or a
    link is on the way to it), as read_timestamp does; what the file says is not looked at."""
    _timestamp_text(root, rel)


def read_timestamp(root: Path, rel: str | PurePath) -> tuple[str | None, str | None]:
    """(timestamp, problem) from ``root/rel/timestamp.txt``, validated as nbgrader parses it.

    A missing file is (None, None); an oversized, unreadable, undecodable or unparsable one is
    (None, why); a good one is (its stripped text, None). A timestamp.txt that is a link or not
    a regular file (or a link on the way to it) raises RefusedFile: that is not a bad date but
    an attempt to read something else, and the notebook is not graded.
    """
    text, problem = _timestamp_text(root, rel)
    if text is None:
        return None, problem
    zone = text.split(" ")[2] if len(text.split(" ")) == 3 else ""
    if zone.lstrip(":").startswith("/") or ".." in zone:  # nbgrader would open it as a file
        return None, f"timestamp.txt names the time zone {zone[:60]!r}, a file path"
    from nbgrader.utils import parse_utc  # here only: see the module docstring

    try:
        parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        return None, f"timestamp.txt holds {text[:60]!r}, which is not a date nbgrader reads"
    return text, None
