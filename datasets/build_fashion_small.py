"""Build ``fashion_small.npz``: a balanced 5,000 / 1,000 / 1,000 subset of Fashion-MNIST.

Source: Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist/``, gzip'd
IDX files; MIT, (c) 2017 Zalando SE). Train and validation images come from Fashion-MNIST's
training set (disjoint), test images from its test set. Every class has exactly the same count in
every split, and each split is stored in blocks of one image per class (in a random order inside
each block), so any prefix of 10*k images is balanced too.

Run from the repository root (numpy only; not run by tests or CI, the committed file is):

    .venv/bin/python datasets/build_fashion_small.py [--seed 0] [--source DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
from _build import balanced_indices, save_npz

HERE = Path(__file__).resolve().parent
SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
LICENSE = ("Fashion-MNIST, (c) 2017 Zalando SE, MIT licence "
           "(https://github.com/zalandoresearch/fashion-mnist); see datasets/LICENSES.md")


def read_idx(path: Path) -> np.ndarray:
    """Read a gzip'd IDX file (unsigned bytes) into an array of the shape its header gives."""
    raw = gzip.decompress(path.read_bytes())
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4]!r})")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, found {data.size} values")
    return data.reshape(shape)


def build(source: Path, seed: int) -> dict[str, np.ndarray]:
    """Arrays of the subset: X_* (N, 28, 28) uint8, y_* (N,) uint8, class names, provenance."""
    rng = np.random.default_rng(seed)
    x_tr = read_idx(source / "train-images-idx3-ubyte.gz")
    y_tr = read_idx(source / "train-labels-idx1-ubyte.gz")
    x_te = read_idx(source / "t10k-images-idx3-ubyte.gz")
    y_te = read_idx(source / "t10k-labels-idx1-ubyte.gz")
    train, val = balanced_indices(y_tr, [500, 500 // 5], rng)
    (test,) = balanced_indices(y_te, [100], rng)
    return {
        "X_train": x_tr[train], "y_train": y_tr[train],
        "X_val": x_tr[val], "y_val": y_tr[val],
        "X_test": x_te[test], "y_test": y_te[test],
        "class_names": np.array(CLASS_NAMES),
        "source": np.array(f"Debian dataset-fashion-mnist, {source}, seed={seed}"),
        "license": np.array(LICENSE),
    }


def main(argv=None) -> None:
    """Build the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=HERE / "fashion_small.npz")
    args = parser.parse_args(argv)
    save_npz(args.out, build(args.source, args.seed))


if __name__ == "__main__":
    main()
