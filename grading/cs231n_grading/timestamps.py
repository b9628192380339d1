"""``timestamp.txt`` of a submission, read without following links and validated as nbgrader
parses it (apart from ``safe_files`` so that students' ``check`` needs no nbgrader)."""

from __future__ import annotations

from pathlib import Path, PurePath

from nbgrader.utils import parse_utc

from cs231n_grading.safe_files import MissingFile, TooLarge, read_file

MAX_TIMESTAMP_BYTES = 1_000


def read_timestamp(root: Path, rel: str | PurePath) -> tuple[str | None, str | None]:
    """(timestamp, problem) from ``root/rel/timestamp.txt``, validated as nbgrader parses it.

    A missing file is (None, None); an oversized, unreadable, undecodable or unparsable one is
    (None, why); a good one is (its stripped text, None). A timestamp.txt that is a link or not
    a regular file (or a link on the way to it) raises RefusedFile: that is not a bad date but
    an attempt to read something else, and the notebook is not graded.
    """
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
    if not text:
        return None, None
    zone = text.split(" ")[2] if len(text.split(" ")) == 3 else ""
    if zone.lstrip(":").startswith("/") or ".." in zone:  # nbgrader would open it as a file
        return None, f"timestamp.txt names the time zone {zone[:60]!r}, a file path"
    try:
        parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        return None, f"timestamp.txt holds {text[:60]!r}, which is not a date nbgrader reads"
    return text, None
