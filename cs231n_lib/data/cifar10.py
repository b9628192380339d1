"""Read the CIFAR-10 python batches (Krizhevsky, 2009) after checking their md5s.

Layout of ``cifar-10-batches-py/``: ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
``batches.meta``. Each batch is a Python 2 pickle of a dict: ``data`` (10000 x 3072 uint8; the R,
G then B planes of a 32x32 image, row-major, so ``reshape(-1, 3, 32, 32)`` gives NCHW) and
``labels`` (10000 ints). The keys are bytes or str depending on the unpickling encoding; both are
accepted.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .files import CorruptDataError, DatasetNotFoundError, data_dir, verify_md5

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
FILE_MD5S = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
FETCH_COMMAND = "python -m cs231n_lib.data fetch cifar10"

# The only globals a CIFAR-10 pickle needs: numpy's array reconstruction (under its numpy 1 and
# numpy 2 module names) and, for pickles written by Python 3 with protocol 2, _codecs.encode.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global but numpy arrays', so a tampered file cannot run
    code."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


def _str_keys(d: dict) -> dict:
    """The dict with bytes keys decoded (pickles read with encoding='bytes' have bytes keys)."""
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def unpickle(path: Path, md5: str | None = None) -> dict:
    """Load one batch (or the meta file) as a dict with str keys, after checking its md5.

    Raises ChecksumError on an md5 mismatch, CorruptDataError (naming the file) when the file is
    truncated or is not a pickled dict.
    """
    verify_md5(path, md5)
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as e:
        raise CorruptDataError(f"{path} is corrupt or truncated: {type(e).__name__}: {e}") from e
    if not isinstance(d, dict):
        raise CorruptDataError(f"{path} holds a {type(d).__name__}, expected a dict")
    return _str_keys(d)


def load_batch(path: Path, md5: str | None = None):
    """One batch as (X, y): X uint8 (N, 3, 32, 32), y int64 (N,) in 0..9."""
    d = unpickle(path, md5)
    try:
        data, labels = np.asarray(d["data"]), np.asarray(d["labels"])
    except KeyError as e:
        raise CorruptDataError(f"{path} has no {e.args[0]!r} entry") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CorruptDataError(f"{path}: data is {data.dtype} {data.shape}, "
                               "expected uint8 (N, 3072)")
    if labels.shape != (len(data),) or labels.size and not (0 <= labels.min() <= labels.max() <= 9):
        raise CorruptDataError(f"{path}: expected {len(data)} labels in 0..9")
    return data.reshape(-1, 3, 32, 32), labels.astype(np.int64)  # (N, C, H, W)


def load_cifar10(root=None, file_md5s: Mapping[str, str] = FILE_MD5S):
    """All of CIFAR-10 from ``root/cifar-10-batches-py`` as uint8 NCHW arrays.

    Inputs:
    - root: the data directory holding ``cifar-10-batches-py/`` (default: ``data_dir()``)
    - file_md5s: expected md5 per file name (default: the real files'); a file left out of
      the mapping is not checked

    Returns a tuple (X_train, y_train, X_test, y_test, class_names): X uint8 (N, 3, 32, 32),
    y int64 (N,), class_names a tuple of 10 str.
    """
    root = data_dir(root)
    folder = root / FOLDER
    missing = [n for n in FILES if not (folder / n).is_file()]
    if missing:
        what = f"no {FOLDER}/" if len(missing) == len(FILES) else f"{FOLDER}/ lacks {missing}"
        raise DatasetNotFoundError(
            f"CIFAR-10 not found in {root} ({what}). Fetch it (170 MB, needs internet) with\n"
            f"    {FETCH_COMMAND} --dir {root}\nThe embedded data sets work offline: "
            "load_dataset('fashion_small'), 'digits' or 'shapes'.")
    train = [load_batch(folder / n, file_md5s.get(n)) for n in TRAIN_FILES]
    x_test, y_test = load_batch(folder / TEST_FILE, file_md5s.get(TEST_FILE))
    meta = unpickle(folder / META_FILE, file_md5s.get(META_FILE))
    names = tuple(n.decode() if isinstance(n, bytes) else str(n)
                  for n in meta["label_names"]) if "label_names" in meta else ()
    if len(names) != 10:
        raise CorruptDataError(f"{folder / META_FILE}: expected 10 label_names, got {names}")
    x_train = np.concatenate([x for x, _ in train])
    y_train = np.concatenate([y for _, y in train])
    return x_train, y_train, x_test, y_test, names
