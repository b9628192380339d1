"""A deterministic synthetic data set: one filled shape per image, its class is the shape.

For unit tests and overfit checks, not a substitute for real images. Any image size, channel
count and class count: classes 0..7 are the eight shapes below at full brightness; classes from 8
on reuse them at darker foreground levels (class k is shape ``k % 8`` at level ``k // 8``).
"""

from __future__ import annotations

import numpy as np

from ..shapes import check_int

# (name, mask) pairs; a mask maps offsets dx, dy from the centre, the distance d and the
# half-size r (all broadcastable to (N, H, W)) to a boolean image. Bars are 2r/3 thick.
SHAPES = (
    ("square", lambda dx, dy, d, r: (abs(dx) <= r) & (abs(dy) <= r)),
    ("disk", lambda dx, dy, d, r: d <= r),
    ("triangle", lambda dx, dy, d, r: (abs(dy) <= r) & (abs(dx) <= (dy + r) / 2)),
    ("horizontal bar", lambda dx, dy, d, r: (abs(dy) <= r / 3) & (abs(dx) <= r)),
    ("vertical bar", lambda dx, dy, d, r: (abs(dx) <= r / 3) & (abs(dy) <= r)),
    ("plus", lambda dx, dy, d, r: ((abs(dx) <= r / 3) & (abs(dy) <= r))
     | ((abs(dy) <= r / 3) & (abs(dx) <= r))),
    ("ring", lambda dx, dy, d, r: (d <= r) & (d >= 0.55 * r)),
    ("diamond", lambda dx, dy, d, r: abs(dx) + abs(dy) <= r),
)
SHAPE_NAMES = tuple(name for name, _ in SHAPES)


def shape_class_names(num_classes: int) -> list[str]:
    """Names of the classes: the shape, plus its brightness level from class 8 on."""
    return [SHAPE_NAMES[k % len(SHAPES)] + (f" (level {k // len(SHAPES)})" if k >= len(SHAPES)
                                            else "") for k in range(num_classes)]


def make_shapes(num_samples: int, num_classes: int = 4, channels: int = 1, size: int = 16,
                seed: int = 0):
    """Draw ``num_samples`` images of random shapes, the same ones for the same arguments.

    Inputs:
    - num_samples: N, number of images
    - num_classes: number of classes (>= 1); every class gets N // num_classes or one more images
    - channels: C, number of channels (>= 1); with C > 1 each image gets a random colour tint
    - size: H = W, image side in pixels (>= 8)
    - seed: seed of the random generator; same seed -> same data

    Returns a tuple of:
    - X: uint8 array of shape (N, C, H, W); noisy dark background, bright shape
    - y: int64 array of shape (N,), labels in 0..num_classes-1
    """
    n = check_int(num_samples, "num_samples", 1)
    num_classes = check_int(num_classes, "num_classes", 1)
    channels = check_int(channels, "channels", 1)
    size = check_int(size, "size", 8)
    seed = check_int(seed, "seed", 0)
    rng = np.random.default_rng(seed)

    y = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    r = rng.uniform(0.2, 0.35, n) * size                        # half-size, (N,)
    cx, cy = (rng.uniform(r, size - 1 - r) for _ in range(2))   # centres keep the shape inside
    grid = np.arange(size, dtype=np.float64)
    dx = grid[None, None, :] - cx[:, None, None]                 # (N, 1, W)
    dy = grid[None, :, None] - cy[:, None, None]                 # (N, H, 1)
    r = r[:, None, None]                                         # (N, 1, 1)

    mask = np.zeros((n, size, size), dtype=bool)
    for kind, (_, draw) in enumerate(SHAPES):
        pick = (y % len(SHAPES)) == kind
        if pick.any():
            ddx, ddy = dx[pick], dy[pick]
            mask[pick] = draw(ddx, ddy, np.hypot(ddx, ddy), r[pick])

    num_levels = -(-num_classes // len(SHAPES))             # ceil
    level = np.linspace(255.0, 110.0, num_levels)[y // len(SHAPES)]  # (N,)
    tint = rng.uniform(0.75, 1.0, (n, channels)) if channels > 1 else np.ones((n, 1))
    foreground = level[:, None] * tint                           # (N, C)
    background = rng.uniform(0.0, 48.0, (n, channels, size, size))
    x = np.where(mask[:, None], foreground[:, :, None, None], background)  # (N, C, H, W)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8), y
