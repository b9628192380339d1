"""The embedded data sets (offline), the synthetic shapes and load_dataset's options."""

import shutil
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cs231n_lib.data import (
    DATASETS,
    IMAGE_NAMES,
    SHAPE_NAMES,
    CorruptDataError,
    DatasetNotFoundError,
    data_dir,
    load_dataset,
    load_image,
    make_shapes,
)
from cs231n_lib.data.loaders import _pad_and_repeat

DATASETS_DIR = Path(__file__).resolve().parents[1] / "datasets"
SPLITS = ("train", "val", "test")
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """The embedded sets must load with urlopen and sockets made to raise."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    for obj, name in [(urllib.request, "urlopen"), (socket, "create_connection"),
                      (socket.socket, "connect"), (socket, "getaddrinfo")]:
        monkeypatch.setattr(obj, name, refuse)
    monkeypatch.delenv("CS231N_DATA_DIR", raising=False)


@pytest.fixture(scope="module")
def fashion_raw():
    """fashion_small without preprocessing, loaded once for the module."""
    return load_dataset("fashion_small", subtract_mean=False)


def test_default_data_dir_is_datasets_beside_the_package(monkeypatch, tmp_path):
    assert data_dir() == DATASETS_DIR
    monkeypatch.setenv("CS231N_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert data_dir("elsewhere") == Path("elsewhere")


@pytest.mark.parametrize("name, sizes, hw, names", [
    ("fashion_small", (5000, 1000, 1000), 28, FASHION),
    ("digits", (1140, 300, 300), 8, tuple("0123456789")),
])
def test_embedded_sets_shapes_dtypes_balance_and_range(name, sizes, hw, names):
    d = load_dataset(name, subtract_mean=False)
    assert set(d) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "class_names"}
    assert tuple(d["class_names"]) == names and d["class_names"].shape == (10,)
    for split, n in zip(SPLITS, sizes, strict=True):
        x, y = d[f"X_{split}"], d[f"y_{split}"]
        assert x.shape == (n, 1, hw, hw) and x.dtype == np.float32
        assert y.shape == (n,) and y.dtype == np.int64
        np.testing.assert_array_equal(np.bincount(y, minlength=10), [n // 10] * 10)
        assert x.min() == 0 and x.max() == 255  # real images use the full 0..255 scale


@pytest.mark.parametrize("name, floor", [("fashion_small", 0.55), ("digits", 0.8)])
def test_labels_match_the_images(name, floor):
    """A nearest-class-mean classifier fit on train does far better than chance (0.1) on val
    and test, so labels and images were kept together in every split."""
    d = load_dataset(name)
    flat = {s: d[f"X_{s}"].reshape(len(d[f"X_{s}"]), -1) for s in SPLITS}
    means = np.stack([flat["train"][d["y_train"] == k].mean(axis=0) for k in range(10)])
    for s in ("val", "test"):
        dist = ((flat[s][:, None] - means[None]) ** 2).sum(axis=-1)  # (N, 10)
        assert (dist.argmin(axis=1) == d[f"y_{s}"]).mean() > floor


def test_digits_are_grey_levels_scaled_to_255():
    x = load_dataset("digits", subtract_mean=False)["X_train"]
    levels = np.unique(x * 16 / 255)
    np.testing.assert_allclose(levels, np.arange(17), atol=1e-4)


def test_splits_do_not_overlap(fashion_raw):
    flat = {s: {row.tobytes() for row in fashion_raw[f"X_{s}"].astype(np.uint8)} for s in SPLITS}
    assert not flat["train"] & flat["val"] and not flat["train"] & flat["test"]


def test_subsets_are_prefixes_and_balanced(fashion_raw):
    d = load_dataset("fashion_small", num_training=100, num_validation=30, num_test=20,
                     subtract_mean=False)
    assert [len(d[f"y_{s}"]) for s in SPLITS] == [100, 30, 20]
    np.testing.assert_array_equal(d["X_train"], fashion_raw["X_train"][:100])
    np.testing.assert_array_equal(np.bincount(d["y_train"]), [10] * 10)
    np.testing.assert_array_equal(np.bincount(d["y_test"]), [2] * 10)
    assert len(load_dataset("fashion_small", num_validation=0)["X_val"]) == 0


def test_pad_to_32_and_three_channels(fashion_raw):
    d = load_dataset("fashion_small", pad_to=32, channels=3, subtract_mean=False)
    x = d["X_test"]
    assert x.shape == (1000, 3, 32, 32)
    np.testing.assert_array_equal(x[:, :, 2:30, 2:30],
                                  np.repeat(fashion_raw["X_test"], 3, axis=1))
    border = np.ones((32, 32), bool)
    border[2:30, 2:30] = False
    assert np.all(x[:, :, border] == 0)
    # The border stays exactly zero after mean subtraction (its mean is zero).
    dm = load_dataset("fashion_small", pad_to=32, channels=3)
    assert np.all(dm["X_train"][:, :, border] == 0)
    # Odd padding puts the extra row and column at the bottom and right.
    odd = load_dataset("digits", pad_to=11, subtract_mean=False)["X_val"]
    assert odd.shape == (300, 1, 11, 11)
    assert np.all(odd[:, :, :1] == 0) and np.all(odd[:, :, 9:] == 0)


def test_mean_subtraction_uses_the_training_mean(fashion_raw):
    d = load_dataset("fashion_small")
    mean = fashion_raw["X_train"].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(d["X_train"].mean(axis=0, dtype=np.float64), 0, atol=1e-3)
    np.testing.assert_allclose(d["X_val"], fashion_raw["X_val"] - mean, atol=1e-3)
    np.testing.assert_allclose(d["X_test"], fashion_raw["X_test"] - mean, atol=1e-3)


def test_float64_on_request(fashion_raw):
    d = load_dataset("fashion_small", dtype=np.float64, num_training=200)
    assert all(d[f"X_{s}"].dtype == np.float64 for s in SPLITS)
    mean = fashion_raw["X_train"][:200].astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(d["X_val"], fashion_raw["X_val"] - mean, rtol=0, atol=1e-10)


def test_results_are_fresh_arrays():
    """Changing a returned array does not change the next load (no shared cache)."""
    a = load_dataset("digits")
    a["X_train"][:] = -1
    b = load_dataset("digits")
    assert b["X_train"].max() > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="mnist"), "unknown data set 'mnist'; available: fashion_small"),
    (dict(name="fashion_small", seed=1), "unknown key\\(s\\) \\['seed'\\]"),
    (dict(name="shapes", num_clases=3), "num_clases"),
    (dict(name="digits", dtype=np.int32), "dtype=int32 must be float32 or float64"),
    (dict(name="digits", pad_to=6), "pad_to=6 must be >= 8"),
    (dict(name="digits", num_training=1141), "num_training=1141 is more than the 1140"),
    (dict(name="digits", num_training=0), "num_training=0 must be >= 1"),
    (dict(name="digits", num_test=2.5), "num_test=2.5 must be an integer"),
    (dict(name="shapes", channels=3, pad_to=16.0), "pad_to=16.0 must be an integer"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset(**kwargs)


def test_only_grey_sets_are_repeated_to_more_channels():
    with pytest.raises(ValueError, match="channels=1: only a 1-channel set can be repeated"):
        _pad_and_repeat(np.zeros((2, 3, 4, 4), np.uint8), None, 1)


def test_env_var_and_missing_data_messages(monkeypatch, tmp_path):
    monkeypatch.setenv("CS231N_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as e:
        load_dataset("fashion_small")
    assert str(tmp_path) in str(e.value) and "CS231N_DATA_DIR" in str(e.value)
    with pytest.raises(DatasetNotFoundError, match="photos.npz not found"):
        load_image("camera")
    shutil.copy(DATASETS_DIR / "digits.npz", tmp_path)
    assert load_dataset("digits")["X_train"].shape == (1140, 1, 8, 8)


def test_damaged_embedded_file_names_the_file(tmp_path):
    blob = (DATASETS_DIR / "digits.npz").read_bytes()
    (tmp_path / "digits.npz").write_bytes(blob[:len(blob) // 2])
    with pytest.raises(CorruptDataError, match="digits.npz is corrupt or incomplete"):
        load_dataset("digits", data_dir=tmp_path)
    np.savez(tmp_path / "digits.npz", X_train=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(CorruptDataError, match="digits.npz is corrupt .*class_names"):
        load_dataset("digits", data_dir=tmp_path)


def test_photos():
    camera, chelsea = load_image("camera"), load_image("chelsea")
    assert IMAGE_NAMES == ("camera", "chelsea")
    assert camera.shape == (512, 512) and camera.dtype == np.uint8
    assert chelsea.shape == (300, 451, 3) and chelsea.dtype == np.uint8
    assert camera.std() > 30 and chelsea.std() > 30  # real photos, not blank arrays
    with pytest.raises(ValueError, match="unknown image 'lena'; available: camera, chelsea"):
        load_image("lena")


def test_committed_files_are_small_and_carry_their_licences():
    sizes = {p.name: p.stat().st_size for p in DATASETS_DIR.glob("*.npz")}
    assert set(sizes) == {"fashion_small.npz", "digits.npz", "photos.npz"}
    assert sum(sizes.values()) < 5e6
    licences = {"fashion_small.npz": "MIT", "digits.npz": "CC BY 4.0", "photos.npz": "CC0"}
    for name, licence in licences.items():
        with np.load(DATASETS_DIR / name) as npz:
            assert licence in str(npz["license"])
    text = (DATASETS_DIR / "LICENSES.md").read_text()
    assert "Zalando SE" in text and "Permission is hereby granted" in text


# --- synthetic shapes --------------------------------------------------------------------

def test_shapes_generator_is_deterministic():
    x1, y1 = make_shapes(64, num_classes=5, channels=3, size=12, seed=7)
    x2, y2 = make_shapes(64, num_classes=5, channels=3, size=12, seed=7)
    x3, y3 = make_shapes(64, num_classes=5, channels=3, size=12, seed=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3) and not np.array_equal(y1, y3)


@pytest.mark.parametrize("n, classes, channels, size", [
    (10, 1, 1, 8), (30, 3, 2, 16), (100, 8, 3, 32), (55, 20, 1, 10)])
def test_shapes_generator_sizes_balance_and_range(n, classes, channels, size):
    x, y = make_shapes(n, num_classes=classes, channels=channels, size=size)
    assert x.shape == (n, channels, size, size) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y, minlength=classes)
    assert len(counts) == classes and counts.max() - counts.min() <= 1
    assert x.max() > 100 and x.min() < 48  # a bright shape on a dark background


def test_shapes_labels_match_the_pictures():
    """1-nearest-neighbour on |FFT| (blind to where a shape sits) recovers the labels, so each
    label is the shape drawn, not noise."""
    d = load_dataset("shapes", num_training=800, num_validation=0, num_test=200, num_classes=8,
                     size=16, seed=3, subtract_mean=False)
    feats = {s: np.abs(np.fft.fft2(d[f"X_{s}"][:, 0])).reshape(len(d[f"X_{s}"]), -1)
             for s in ("train", "test")}
    dist = ((feats["test"][:, None] - feats["train"][None]) ** 2).sum(axis=-1)  # (200, 800)
    accuracy = (d["y_train"][dist.argmin(axis=1)] == d["y_test"]).mean()
    assert accuracy > 0.9  # chance is 1/8
    assert len(SHAPE_NAMES) == 8


def test_load_dataset_shapes_options():
    d = load_dataset("shapes", channels=3, num_classes=6, size=20, seed=1, subtract_mean=False)
    assert d["X_train"].shape == (500, 3, 20, 20)
    assert list(d["class_names"]) == list(SHAPE_NAMES[:6])
    names = load_dataset("shapes", num_classes=10, num_training=10)["class_names"]
    assert list(names[7:]) == ["diamond", "square (level 1)", "disk (level 1)"]
    assert set(np.unique(d["y_train"])) == set(range(6))
    again = load_dataset("shapes", channels=3, num_classes=6, size=20, seed=1,
                         subtract_mean=False)
    np.testing.assert_array_equal(d["X_test"], again["X_test"])
    assert DATASETS == ("fashion_small", "digits", "shapes", "cifar10")
