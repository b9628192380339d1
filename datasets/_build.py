"""Helpers shared by the ``datasets/build_*.py`` scripts (build time only, never imported at
run time)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np


def balanced_indices(y: np.ndarray, counts: list[int], rng: np.random.Generator):
    """Disjoint index sets, ``counts[s]`` per class for split s, each in balanced blocks.

    Split s holds ``counts[s]`` images of every class, ordered as blocks of one image per class
    (shuffled inside each block), so every prefix of ``num_classes * k`` images is balanced.
    """
    classes = np.unique(y)
    picks = [rng.permutation(np.flatnonzero(y == c))[:sum(counts)] for c in classes]
    if min(len(p) for p in picks) < sum(counts):
        raise ValueError(f"some class has fewer than sum(counts)={sum(counts)} images")
    splits, start = [], 0
    for n in counts:
        table = np.stack([p[start:start + n] for p in picks], axis=1)  # (n, num_classes)
        order = rng.permuted(np.tile(np.arange(len(classes)), (n, 1)), axis=1)
        splits.append(np.take_along_axis(table, order, axis=1).ravel())
        start += n
    return splits


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an npz (deflate level 9) byte for byte reproducibly (fixed zip timestamps), then
    print its size and md5."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue(), compresslevel=9)
    path.write_bytes(buf.getvalue())
    print(f"wrote {path} ({len(buf.getvalue()) / 1e6:.2f} MB, "
          f"md5 {hashlib.md5(buf.getvalue()).hexdigest()})")
