"""Show many small images (filters, feature maps) as one tiled image."""

from __future__ import annotations

import math

import numpy as np

from .shapes import check_int

LAYOUTS = ("NCHW", "NHWC")


def visualize_grid(Xs, ubound=255.0, padding=1, layout="NCHW", ncols=None):
    """
    Tile N images into a grid (roughly square by default), each tile scaled to [0, ubound] on
    its own.

    Inputs:
    - Xs: images of shape (N, C, H, W) (layout="NCHW", e.g. conv weights (F, C, HH, WW)) or
      (N, H, W, C) (layout="NHWC", CS231n's convention), with C = 1 (grey) or 3 (RGB); a 3-D
      array (N, H, W) is read as N grey images
    - ubound: the largest value of a tile (255 for uint8-like images, 1 for imshow of floats)
    - padding: pixels of zeros between tiles
    - layout: "NCHW" or "NHWC"
    - ncols: tiles per row, G (default ceil(sqrt(N))); tiles fill the grid row by row

    Returns:
    - grid: float array of shape (R*H + (R-1)*padding, G*W + (G-1)*padding, C) with
      R = ceil(N / G) rows, in [0, ubound]; each tile is min-max normalised (a constant tile
      becomes 0); unused tiles and the padding are 0.
    """
    Xs = np.asarray(Xs, dtype=np.float64)
    if layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} must be one of {LAYOUTS}")
    if Xs.ndim == 3:
        Xs = Xs[:, :, :, None]  # (N, H, W, 1)
    elif Xs.ndim == 4:
        if layout == "NCHW":
            Xs = Xs.transpose(0, 2, 3, 1)  # (N, H, W, C)
    else:
        raise ValueError(f"Xs must have shape (N, C, H, W), (N, H, W, C) or (N, H, W), "
                         f"got {Xs.shape}")
    N, H, W, C = Xs.shape
    if C not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels, got C={C} for layout {layout} "
                         f"(shape {Xs.shape} as NHWC); use plot_filters for other channel counts")
    if N == 0:
        raise ValueError("Xs holds no images (N=0)")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding={padding!r} must be an integer >= 0")
    G = math.ceil(math.sqrt(N)) if ncols is None else check_int(ncols, "ncols", 1)
    R = math.ceil(N / G)
    grid = np.zeros((R * H + (R - 1) * padding, G * W + (G - 1) * padding, C))
    low = Xs.min(axis=(1, 2, 3), keepdims=True)
    span = Xs.max(axis=(1, 2, 3), keepdims=True) - low
    tiles = ubound * (Xs - low) / np.where(span > 0, span, 1.0)  # (N, H, W, C) in [0, ubound]
    for n in range(N):
        r, c = divmod(n, G)
        y0, x0 = r * (H + padding), c * (W + padding)
        grid[y0:y0 + H, x0:x0 + W] = tiles[n]
    return grid


def plot_grid(Xs, layout="NCHW", padding=1, title=None, ax=None, ncols=None):
    """
    Draw ``visualize_grid(Xs)`` with matplotlib and return the Figure.

    Grey grids use the "gray" colour map. ``ax``: an existing Axes to draw into (else a new
    figure is made); ``ncols``: tiles per row (as in visualize_grid).
    """
    import matplotlib.pyplot as plt

    grid = visualize_grid(Xs, ubound=1.0, padding=padding, layout=layout, ncols=ncols)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 5))
    else:
        fig = ax.figure
    if grid.shape[2] == 1:
        ax.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return fig


def plot_filters(W, title=None, ax=None):
    """
    Show conv weights W of shape (F, C, HH, WW): RGB tiles when C = 3, otherwise one grey tile
    per (filter, input channel) pair, filter by filter. Returns the Figure.
    """
    W = np.asarray(W)
    if W.ndim != 4:
        raise ValueError(f"W must have shape (F, C, HH, WW), got {W.shape}")
    F, C, HH, WW = W.shape
    if C != 3:
        W = W.reshape(F * C, 1, HH, WW)
    return plot_grid(W, layout="NCHW", title=title, ax=ax)


def plot_feature_maps(a, title=None, ax=None):
    """
    Show the activations of one image, ``a`` of shape (C, H, W) (e.g. ``out[0]`` of a conv
    layer), as C grey tiles. Returns the Figure.
    """
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"a must have shape (C, H, W) for one image, got {a.shape}")
    return plot_grid(a, layout="NCHW", title=title, ax=ax)
