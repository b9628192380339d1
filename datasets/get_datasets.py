"""Fetch CIFAR-10 (170 MB, needs internet) into this folder, or into ``--dir``.

    python datasets/get_datasets.py [--dir DIR] [--keep-archive]

Same as ``python -m cs231n_lib.data fetch cifar10 --dir datasets/``: a progress bar, md5 checks,
resume after an interruption, safe extraction. The embedded data sets need no download.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository, in case the package is not installed

from cs231n_lib.data.__main__ import main  # noqa: E402

if __name__ == "__main__":
    args = sys.argv[1:]
    raise SystemExit(main(["fetch", "cifar10", *args] if "--dir" in args
                          else ["fetch", "cifar10", "--dir", str(HERE), *args]))
