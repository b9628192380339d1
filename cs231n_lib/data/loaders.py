"""One entry point for every data set: ``load_dataset(name, ...)`` -> the CS231n dictionary."""

from __future__ import annotations

import numpy as np

from ..shapes import check_int, check_keys
from .cifar10 import FILE_MD5S, load_cifar10
from .embedded import EMBEDDED, SPLITS, load_embedded
from .synthetic import make_shapes, shape_class_names

# Split sizes used when num_training / num_validation / num_test are not given.
DEFAULT_SIZES = {
    "fashion_small": (5000, 1000, 1000),
    "digits": (1140, 300, 300),
    "shapes": (500, 100, 100),
    "cifar10": (49000, 1000, 1000),
}
DATASETS = tuple(DEFAULT_SIZES)
# Options only some data sets take (with their defaults).
OPTIONS = {
    "shapes": {"num_classes": 4, "size": 16, "seed": 0},
    "cifar10": {"file_md5s": FILE_MD5S},
}


SIZE_ARGS = ("num_training", "num_validation", "num_test")


def _sizes(name, requested) -> tuple[int, int, int]:
    """Validated split sizes: the defaults where None, within what an embedded set holds."""
    sizes = tuple(default if n is None else check_int(n, arg, 1 if arg == "num_training" else 0)
                  for arg, n, default in zip(SIZE_ARGS, requested, DEFAULT_SIZES[name],
                                             strict=True))
    for arg, n, limit in zip(SIZE_ARGS, sizes, DEFAULT_SIZES[name], strict=True):
        if name in EMBEDDED and n > limit:
            raise ValueError(f"{arg}={n} is more than the {limit} {name} holds")
    return sizes


def _shapes_splits(sizes, channels, options) -> dict:
    """Generate all images at once from the seed, then cut them into the three splits."""
    x, y = make_shapes(sum(sizes), channels=channels or 1, **options)
    cuts = np.cumsum(sizes)[:-1]
    out = {"class_names": np.array(shape_class_names(options["num_classes"]))}
    for split, xs, ys in zip(SPLITS, np.split(x, cuts), np.split(y, cuts), strict=True):
        out[f"X_{split}"], out[f"y_{split}"] = xs, ys
    return out


def _cifar10_splits(sizes, root, file_md5s) -> dict:
    """CS231n's split: validation = the num_validation training images after num_training."""
    x_train, y_train, x_test, y_test, names = load_cifar10(root, file_md5s)
    n_tr, n_val, n_te = sizes
    if n_tr + n_val > len(x_train) or n_te > len(x_test):
        raise ValueError(
            f"num_training + num_validation = {n_tr} + {n_val} and num_test={n_te} must fit "
            f"in the {len(x_train)} training and {len(x_test)} test images of CIFAR-10")
    val = slice(n_tr, n_tr + n_val)
    return {"X_train": x_train[:n_tr], "y_train": y_train[:n_tr],
            "X_val": x_train[val], "y_val": y_train[val],
            "X_test": x_test[:n_te], "y_test": y_test[:n_te], "class_names": np.array(names)}


def _embedded_splits(name, sizes, root) -> dict:
    """The first images of each stored split (stored in balanced blocks, so still balanced)."""
    out = load_embedded(name, root)
    for split, n in zip(SPLITS, sizes, strict=True):
        out[f"X_{split}"], out[f"y_{split}"] = out[f"X_{split}"][:n], out[f"y_{split}"][:n]
    return out


def _pad_and_repeat(x: np.ndarray, pad_to, channels) -> np.ndarray:
    """Zero-pad (N, C, H, W) to (N, C, pad_to, pad_to), centred; repeat one channel to
    ``channels``."""
    _, c, h, w = x.shape
    if pad_to is not None:
        pad_to = check_int(pad_to, "pad_to", max(h, w))
        top, left = (pad_to - h) // 2, (pad_to - w) // 2
        x = np.pad(x, ((0, 0), (0, 0), (top, pad_to - h - top), (left, pad_to - w - left)))
    if channels is not None and channels != c:
        if c != 1:
            raise ValueError(f"channels={channels}: only a 1-channel set can be repeated to more "
                             f"channels, this one has C={c}")
        x = np.repeat(x, check_int(channels, "channels", 1), axis=1)
    return x


def load_dataset(name: str, *, num_training=None, num_validation=None, num_test=None,
                 subtract_mean: bool = True, dtype=np.float32, pad_to=None, channels=None,
                 data_dir=None, **options) -> dict:
    """Load a data set as CS231n's dictionary of NCHW arrays.

    Inputs:
    - name: "fashion_small" (embedded Fashion-MNIST subset, 28x28 grey, 10 classes), "digits"
      (embedded 8x8 grey digits), "shapes" (synthetic, generated) or "cifar10" (32x32 RGB,
      needs ``python -m cs231n_lib.data fetch cifar10`` once)
    - num_training, num_validation, num_test: split sizes (default: ``DEFAULT_SIZES[name]``).
      Embedded sets return the first images of each split (stored so that any multiple of 10 is
      class-balanced); CIFAR-10 splits like CS231n (validation = images num_training.. of the
      training batches)
    - subtract_mean: subtract the per-pixel mean image of X_train from every split
    - dtype: np.float32 (default) or np.float64
    - pad_to: zero-pad each image, centred, to pad_to x pad_to (fashion_small with pad_to=32
      runs CIFAR-shaped code and a 32->16->8->4 pooling pyramid unchanged)
    - channels: number of channels; a grey set is repeated to it (channels=3 for CIFAR-shaped
      code); for "shapes" it is the number of channels generated
    - data_dir: where the files are (default: $CS231N_DATA_DIR, else datasets/ beside the package)
    - options: "shapes" takes num_classes (4), size (16) and seed (0); "cifar10" takes
      file_md5s (the expected md5 of each batch file)

    Returns a dict with
    - X_train, X_val, X_test: arrays of shape (N, C, H, W) and the requested dtype, pixel values
      on the 0..255 scale (digits' 0..16 grey levels are scaled by 255/16), mean-subtracted if
      asked
    - y_train, y_val, y_test: int64 arrays of shape (N,)
    - class_names: array of str, class_names[y] names label y
    """
    if name not in DEFAULT_SIZES:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    check_keys(options, OPTIONS.get(name, {}), f"options of {name!r}")
    options = {**OPTIONS.get(name, {}), **options}
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype={dtype} must be float32 or float64")
    sizes = _sizes(name, (num_training, num_validation, num_test))
    if name == "shapes":
        raw = _shapes_splits(sizes, channels, options)
    elif name == "cifar10":
        raw = _cifar10_splits(sizes, data_dir, options["file_md5s"])
    else:
        raw = _embedded_splits(name, sizes, data_dir)

    out = {}
    for s in SPLITS:
        out[f"X_{s}"] = _pad_and_repeat(raw[f"X_{s}"], pad_to, channels).astype(dtype)
        out[f"y_{s}"] = raw[f"y_{s}"]
    if name == "digits":  # grey levels 0..16 -> the 0..255 scale of the other sets
        for s in SPLITS:
            out[f"X_{s}"] *= dtype.type(255 / 16)
    if subtract_mean:
        mean = out["X_train"].mean(axis=0, dtype=np.float64).astype(dtype)  # (C, H, W)
        for s in SPLITS:
            out[f"X_{s}"] -= mean
    out["class_names"] = raw["class_names"]
    return out
