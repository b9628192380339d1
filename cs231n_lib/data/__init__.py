"""Data for the course: embedded sets that work offline, and CIFAR-10 on request.

``load_dataset(name, ...)`` returns CS231n's dictionary (X_train, y_train, X_val, y_val, X_test,
y_test; NCHW float32 by default) plus class_names, for "fashion_small", "digits", "shapes" and
"cifar10". ``get_CIFAR10_data`` keeps CS231n's signature. ``load_image`` gives real photos for
filter demos. CIFAR-10 is fetched only when asked: ``python -m cs231n_lib.data fetch cifar10``.
Files live in $CS231N_DATA_DIR, else in ``datasets/`` beside the package; see datasets/README.md.
"""

from __future__ import annotations

import numpy as np

from .cifar10 import ARCHIVE_MD5, FILE_MD5S, load_cifar10
from .embedded import IMAGE_NAMES, load_image
from .fetch import download_file, fetch_cifar10
from .files import ChecksumError, CorruptDataError, DatasetNotFoundError, data_dir
from .loaders import DATASETS, load_dataset
from .synthetic import SHAPE_NAMES, make_shapes

__all__ = [
    "ARCHIVE_MD5", "DATASETS", "FILE_MD5S", "IMAGE_NAMES", "SHAPE_NAMES", "ChecksumError",
    "CorruptDataError", "DatasetNotFoundError", "data_dir", "download_file", "fetch_cifar10",
    "get_CIFAR10_data", "load_cifar10", "load_dataset", "load_image", "make_shapes",
]


def get_CIFAR10_data(num_training=49000, num_validation=1000, num_test=1000,
                     subtract_mean=True, *, dtype=np.float32, data_dir=None) -> dict:
    """CIFAR-10 as CS231n's dictionary (same signature and split as CS231n's helper).

    Validation images are ``num_training .. num_training + num_validation`` of the training
    batches; test images are the first ``num_test``. Arrays are NCHW (N, 3, 32, 32) of ``dtype``
    (float32 unless asked), labels int64; the dict also holds class_names. Raises
    DatasetNotFoundError, saying which command fetches it, if CIFAR-10 is not present.
    """
    return load_dataset("cifar10", num_training=num_training, num_validation=num_validation,
                        num_test=num_test, subtract_mean=subtract_mean, dtype=dtype,
                        data_dir=data_dir)
