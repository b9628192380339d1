"""Build ``digits.npz``: scikit-learn's 8x8 handwritten digits, split 1,140 / 300 / 300.

Source: ``sklearn.datasets.load_digits`` (the test set of the UCI "Optical Recognition of
Handwritten Digits" data, E. Alpaydin and C. Kaynak, CC BY 4.0). Pixels are the original integer
grey levels 0..16, stored as uint8. Every class has 114 / 30 / 30 images (57 of the 1,797 images
are left out to keep the classes balanced); each split is stored in blocks of one image per class.

Needs scikit-learn (build time only). Run from the repository root:

    .venv/bin/python datasets/build_digits.py [--seed 0] [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _build import balanced_indices, save_npz

HERE = Path(__file__).resolve().parent
LICENSE = ("Optical Recognition of Handwritten Digits, E. Alpaydin and C. Kaynak (1998), UCI "
           "Machine Learning Repository, https://doi.org/10.24432/C50P49, CC BY 4.0; "
           "via scikit-learn's load_digits; see datasets/LICENSES.md")


def build(seed: int) -> dict[str, np.ndarray]:
    """Arrays of the split: X_* (N, 8, 8) uint8 in 0..16, y_* (N,) uint8, names, provenance."""
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.images.astype(np.uint8)  # (1797, 8, 8), exact: the values are integers 0..16
    y = digits.target.astype(np.uint8)
    train, val, test = balanced_indices(y, [114, 30, 30], np.random.default_rng(seed))
    return {
        "X_train": x[train], "y_train": y[train],
        "X_val": x[val], "y_val": y[val],
        "X_test": x[test], "y_test": y[test],
        "class_names": np.array([str(c) for c in digits.target_names]),
        "source": np.array(f"scikit-learn {sklearn.__version__} load_digits, seed={seed}"),
        "license": np.array(LICENSE),
    }


def main(argv=None) -> None:
    """Build the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE / "digits.npz")
    args = parser.parse_args(argv)
    save_npz(args.out, build(args.seed))


if __name__ == "__main__":
    main()
