"""The data sets committed under ``datasets/`` (built by ``datasets/build_*.py``).

- ``fashion_small.npz``: Fashion-MNIST subset, 5,000 / 1,000 / 1,000 28x28 grey, 10 classes
- ``digits.npz``: scikit-learn's 8x8 digits, 1,140 / 300 / 300, grey levels 0..16
- ``photos.npz``: ``camera`` (512x512 grey) and ``chelsea`` (300x451 RGB) for filter demos
"""

from __future__ import annotations

import zipfile

import numpy as np

from .files import ENV_VAR, CorruptDataError, DatasetNotFoundError, data_dir

EMBEDDED = {"fashion_small": "fashion_small.npz", "digits": "digits.npz"}
PHOTOS_FILE = "photos.npz"
IMAGE_NAMES = ("camera", "chelsea")
SPLITS = ("train", "val", "test")


def _read(filename: str, root, keys) -> dict[str, np.ndarray]:
    """Read ``keys`` from a committed npz, or explain where it was looked for and how to point
    at it (missing) or which file is damaged (corrupt)."""
    path = data_dir(root) / filename
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{filename} not found in {path.parent}. The embedded data sets ship in the "
            f"course's datasets/ folder: pass data_dir=... or set ${ENV_VAR} to that folder.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in keys}
    except (KeyError, ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise CorruptDataError(f"{path} is corrupt or incomplete: {e}") from e


def load_embedded(name: str, root=None) -> dict:
    """Raw splits of an embedded set: X_* uint8 (N, 1, H, W), y_* int64 (N,), class_names."""
    keys = ["class_names"] + [f"{xy}_{split}" for split in SPLITS for xy in "Xy"]
    out = _read(EMBEDDED[name], root, keys)
    for split in SPLITS:
        out[f"X_{split}"] = out[f"X_{split}"][:, None]  # (N, H, W) -> (N, 1, H, W)
        out[f"y_{split}"] = out[f"y_{split}"].astype(np.int64)
    return out


def load_image(name: str, data_dir=None) -> np.ndarray:
    """A real photo as a uint8 array: (H, W) for grey ``camera``, (H, W, 3) RGB for ``chelsea``.

    The layout is the one ``plt.imshow`` expects; for a conv layer use
    ``img.transpose(2, 0, 1)[None]`` (colour) or ``img[None, None]`` (grey) to get NCHW.
    """
    if name not in IMAGE_NAMES:
        raise ValueError(f"unknown image {name!r}; available: {', '.join(IMAGE_NAMES)}")
    return _read(PHOTOS_FILE, data_dir, [name])[name]
