"""Build ``photos.npz``: real photos for filter demos, pre-decoded to uint8 arrays.

Source: images bundled in the scikit-image wheel (not fetched): ``camera`` (512x512 grey, CC0 by
the photographer, Lav Varshney) and ``chelsea`` (300x451 RGB, CC0 by the photographer, Stefan
van der Walt). Stored decoded so no image decoder is needed at run time.

Needs scikit-image (build time only). Run from the repository root:

    .venv/bin/python datasets/build_photos.py [--out FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _build import save_npz

HERE = Path(__file__).resolve().parent
PHOTOS = {
    "camera": "camera: 512x512 grey, CC0 by the photographer (Lav Varshney), via scikit-image",
    "chelsea": "chelsea (the cat): 300x451 RGB, CC0 by the photographer (Stefan van der Walt), "
               "via scikit-image",
}


def build() -> dict[str, np.ndarray]:
    """One uint8 array per photo, (H, W) grey or (H, W, 3) RGB, plus provenance strings."""
    import skimage
    from skimage import data

    arrays = {name: np.ascontiguousarray(getattr(data, name)(), dtype=np.uint8)
              for name in PHOTOS}
    arrays["source"] = np.array(f"scikit-image {skimage.__version__} skimage.data")
    arrays["license"] = np.array("; ".join(PHOTOS.values()))
    return arrays


def main(argv=None) -> None:
    """Build the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "photos.npz")
    args = parser.parse_args(argv)
    save_npz(args.out, build())


if __name__ == "__main__":
    main()
