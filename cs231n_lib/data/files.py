"""Where the data lives, how files are checked, and the errors the loaders raise."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENV_VAR = "CS231N_DATA_DIR"
# An installed wheel ships the embedded data inside the package (setup.py copies it there) ...
PACKAGED_DIR = Path(__file__).resolve().parent / "datasets"
# ... a checkout keeps it in datasets/ beside the package: <root>/cs231n_lib/data -> <root>/datasets
CHECKOUT_DIR = Path(__file__).resolve().parents[2] / "datasets"


def default_data_dir() -> Path:
    """Where the embedded data is: inside the installed package (a wheel), else ``datasets/``
    of the checkout the package lives in (also an editable install)."""
    return PACKAGED_DIR if PACKAGED_DIR.is_dir() else CHECKOUT_DIR


DEFAULT_DIR = default_data_dir()


class DatasetNotFoundError(FileNotFoundError):
    """A data file is missing; the message says how to get it."""


class ChecksumError(ValueError):
    """A file's md5 is not the expected one; the message names the file and both hashes."""


class CorruptDataError(ValueError):
    """A file is truncated or not in the expected format; the message names the file."""


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data directory: ``path`` if given, else $CS231N_DATA_DIR, else ``default_data_dir()``
    (the installed package's data, or ``datasets/`` of the checkout)."""
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
