"""Where the data lives, how files are checked, and the errors the loaders raise."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV_VAR = "CS231N_DATA_DIR"
# datasets/ beside the cs231n_lib package: <root>/cs231n_lib/data/files.py -> <root>/datasets
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "datasets"


class DatasetNotFoundError(FileNotFoundError):
    """A data file is missing; the message says how to get it."""


class ChecksumError(ValueError):
    """A file's md5 is not the expected one; the message names the file and both hashes."""


class CorruptDataError(ValueError):
    """A file is truncated or not in the expected format; the message names the file."""


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path`` if given, else $CS231N_DATA_DIR, else ``datasets/`` beside
    the ``cs231n_lib`` package."""
    if path is not None:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_DIR


def md5sum(path: Path, chunk_size: int = 1 << 20) -> str:
    """The md5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str | None) -> None:
    """Raise ChecksumError naming the file and both hashes unless its md5 is ``expected``
    (``None`` skips the check)."""
    if expected is None:
        return
    actual = md5sum(path)
    if actual != expected:
        raise ChecksumError(f"checksum mismatch for {path}: expected md5 {expected}, "
                            f"got {actual}")
