"""Show many small images (filters, feature maps) as one tiled image."""

from __future__ import annotations

import math

import numpy as np

from .shapes import check_int

LAYOUTS = ("NCHW", "NHWC")
FILTER_SCALES = ("shared", "filter")  # plot_filters: one colour scale for all panels, or one each


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


def plot_filters(W, title=None, ax=None, names=None, scale="shared"):
    """
    Show conv weights W of shape (F, C, HH, WW) and return the Figure.

    C = 3: one RGB grid, each tile min-max scaled on its own (CS231n's picture of first-layer
    filters). Otherwise one panel per (filter, input channel), filter by filter: a diverging
    colour map centred at 0 (red positive, white 0, blue negative) with a colour bar; each panel
    titled (``names``: one title per filter, default "filter k", plus ", channel c" when C > 1;
    no titles beyond 16 panels), no empty panels, and the values written on the tiles when there
    are at most 6 tiles of at most 5 x 5. A constant filter is thus a flat colour (with its value
    on it), never black like an empty slot.

    ``scale``: "shared" (one colour scale and bar for all panels, magnitudes comparable) or
    "filter" (each panel its own scale and bar, shapes comparable). ``ax``: an Axes whose area
    the panels fill (it is replaced by them).
    """
    W = np.asarray(W, dtype=np.float64)
    if W.ndim != 4:
        raise ValueError(f"W must have shape (F, C, HH, WW), got {W.shape}")
    F, C, HH, WW = W.shape
    if C == 3:
        return plot_grid(W, layout="NCHW", title=title, ax=ax)
    if scale not in FILTER_SCALES:
        raise ValueError(f"scale={scale!r} must be one of {FILTER_SCALES}")
    names = [f"filter {k}" for k in range(F)] if names is None else list(names)
    if len(names) != F:
        raise ValueError(f"names has {len(names)} titles for F={F} filters")
    tiles = W.reshape(F * C, HH, WW)
    titles = [name if C == 1 else f"{name}, channel {c}" for name in names for c in range(C)]
    fig, axes = _panel_axes(len(tiles), ax)
    annotate = len(tiles) <= 6 and max(HH, WW) <= 5
    for k, (panel, tile) in enumerate(zip(axes, tiles, strict=True)):
        image = panel.imshow(tile, interpolation="nearest",
                             **_filter_colours(tile if scale == "filter" else W))
        if annotate:
            _write_values(panel, tile, image)
        if len(tiles) <= 16:
            panel.set_title(titles[k], fontsize=9)
        panel.set_xticks([])
        panel.set_yticks([])
        if scale == "filter":
            fig.colorbar(image, ax=panel, fraction=0.046, pad=0.04)
    if scale == "shared":
        fig.colorbar(image, ax=list(axes), fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title)
    return fig.figure if ax is not None else fig


def _filter_colours(values):
    """imshow colour arguments for filter weights: a diverging map, red positive and blue
    negative, with limits symmetric about 0 (white)."""
    limit = float(np.abs(values).max()) or 1.0  # an all-zero filter: any non-empty range
    return {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}


def _panel_axes(count, ax=None):
    """(figure to draw in, list of ``count`` Axes): one row when count <= 4, else a roughly
    square grid filled row by row; the grid's unused cells get no Axes. With ``ax``, the panels
    fill a subfigure in ax's place (ax is removed)."""
    import matplotlib.pyplot as plt

    ncols = count if count <= 4 else math.ceil(math.sqrt(count))
    nrows = math.ceil(count / ncols)
    if ax is None:
        fig = plt.figure(figsize=(min(3.2 * ncols + 0.6, 14), 2.8 * nrows + 0.4),
                         layout="constrained")
    else:
        fig = ax.figure.add_subfigure(ax.get_subplotspec())
        ax.remove()
    spec = fig.add_gridspec(nrows, ncols)
    return fig, [fig.add_subplot(spec[divmod(k, ncols)]) for k in range(count)]


def _write_values(panel, tile, image):
    """Write each weight on its pixel, in black or white, whichever reads on its colour."""
    for (i, j), value in np.ndenumerate(tile):
        r, g, b, _ = image.cmap(image.norm(value))
        colour = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
        panel.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=8, color=colour)


def plot_feature_maps(a, title=None, ax=None):
    """
    Show the activations of one image, ``a`` of shape (C, H, W) (e.g. ``out[0]`` of a conv
    layer), as C grey tiles. Returns the Figure.
    """
    a = np.asarray(a)
    if a.ndim != 3:
        raise ValueError(f"a must have shape (C, H, W) for one image, got {a.shape}")
    return plot_grid(a, layout="NCHW", title=title, ax=ax)


LOG_SCALE_RATIO = 10.0  # plot_timings: log axis when the slowest bar is this many times the fastest


def plot_timings(timings, repeats, title=None, ax=None):
    """
    Grouped bars of seconds per call, labelled so that they cannot be misread; returns the Figure.

    Inputs:
    - timings: dict {implementation: {pass name: seconds}}, e.g. {"naive loops": {"forward":
      0.03, "backward": 0.05}, "im2col": {...}}; one group of bars per pass name (in order of
      first appearance), one bar per implementation (a pass an implementation lacks is left out)
    - repeats: the number of timed runs each time is the best of (stated on the axis)
    - title, ax: the chart's title; an existing Axes to draw into (else a new figure is made)

    Each bar is labelled with its time and, after the first implementation, its speed-up over the
    first one in the same group. The time axis is logarithmic when the slowest bar is more than
    LOG_SCALE_RATIO times the fastest (the axis label says which scale it is).
    """
    import matplotlib.pyplot as plt

    if not timings:
        raise ValueError("timings holds no implementation")
    repeats = check_int(repeats, "repeats", 1)
    passes = list(dict.fromkeys(p for times in timings.values() for p in times))
    for name, times in timings.items():
        for p, seconds in times.items():
            if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
                raise ValueError(f"timings[{name!r}][{p!r}]={seconds!r} must be a positive "
                                 f"number of seconds")
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 2.2 * len(passes) * len(timings) / 2), 4))
    else:
        fig = ax.figure
    baseline = next(iter(timings.values()))
    width = 0.8 / len(timings)
    for k, (name, times) in enumerate(timings.items()):
        shown = [p for p in passes if p in times]
        xs = [passes.index(p) - 0.4 + (k + 0.5) * width for p in shown]
        bars = ax.bar(xs, [1e3 * times[p] for p in shown], width, label=name)
        ax.bar_label(bars, labels=[_timing_label(times[p], baseline.get(p), k > 0)
                                   for p in shown], fontsize=8, padding=2)
    values = [s for times in timings.values() for s in times.values()]
    log = max(values) / min(values) > LOG_SCALE_RATIO
    if log:
        ax.set_yscale("log")
    ax.margins(y=0.25 if log else 0.15)
    ax.set_xticks(range(len(passes)), passes)
    ax.set_ylabel(f"ms per call, best of {repeats} run{'s' * (repeats > 1)}"
                  f"{' (log scale)' if log else ''}")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


def _timing_label(seconds, baseline, compare):
    """'12.3 ms', and '(4.5x faster)' below it when compared with a baseline time."""
    label = f"{1e3 * seconds:.3g} ms"
    if compare and baseline is not None:
        ratio = baseline / seconds
        label += f"\n{ratio:.3g}x " + ("faster" if ratio >= 1 else "as fast")
    return label


# Fonts with Chinese glyphs, in order of preference (Debian/Ubuntu: fonts-noto-cjk,
# fonts-wqy-microhei; Fedora: google-noto-sans-cjk-fonts; macOS and Windows ship the last ones).
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Micro Hei",
             "WenQuanYi Zen Hei", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
             "SimHei")


def cjk_font() -> str | None:
    """The name of an installed font that has Chinese glyphs, or None.

    When one is found it is added to ``font.family`` behind the current families, so that
    figures may show Chinese terms (matplotlib >= 3.6 falls back glyph by glyph)."""
    import matplotlib
    from matplotlib import font_manager

    manager = font_manager.fontManager
    name = _first_cjk(manager)
    if name is None:  # matplotlib's font cache predates a font installed since: look again
        known = {f.fname for f in manager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known and any(k in path.lower() for k in ("cjk", "wqy", "han")):
                try:
                    manager.addfont(path)
                except (OSError, RuntimeError, ValueError):
                    continue
        name = _first_cjk(manager)
    if name is not None:  # a family list: matplotlib takes each glyph from the first that has it
        families = matplotlib.rcParams["font.family"]
        families = [families] if isinstance(families, str) else list(families)
        if name not in families:
            matplotlib.rcParams["font.family"] = [*families, name]
    return name


def _first_cjk(manager) -> str | None:
    installed = {f.name for f in manager.ttflist}
    return next((f for f in CJK_FONTS if f in installed), None)


def term(zh: str, en: str) -> str:
    """A label for a glossary term: "卷积 convolution" where a CJK font is installed, else just
    "convolution" (never boxes for missing glyphs)."""
    return f"{zh} {en}" if cjk_font() else en
