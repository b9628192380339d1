"""Tiling of filters and feature maps."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cs231n_lib.vis_utils import (  # noqa: E402
    LOG_SCALE_RATIO,
    plot_feature_maps,
    plot_filters,
    plot_grid,
    plot_timings,
    visualize_grid,
)


@pytest.fixture
def filters():
    return np.random.default_rng(0).standard_normal((5, 3, 4, 6))  # (F, C, HH, WW)


def test_grid_shape_and_tile_placement(filters):
    grid = visualize_grid(filters, ubound=1.0, padding=2)
    # 5 tiles -> 3 per row, 2 rows of 4x6 tiles with 2-pixel gaps
    assert grid.shape == (2 * 4 + 2, 3 * 6 + 2 * 2, 3)
    # tile 4 sits in row 1, column 1; its content is filter 4 min-max scaled, channels last
    tile = grid[6:10, 8:14]
    f = filters[4].transpose(1, 2, 0)
    np.testing.assert_allclose(tile, (f - f.min()) / (f.max() - f.min()), atol=1e-12)
    # gaps and the unused sixth tile are zero
    assert np.all(grid[4:6] == 0) and np.all(grid[:, 6:8] == 0)
    assert np.all(grid[6:, 14:] == 0)


def test_each_tile_normalised_to_its_own_range(filters):
    scaled = filters * np.array([1, 10, 100, 1000, 1e-3])[:, None, None, None]
    grid = visualize_grid(scaled, padding=0)
    for n in range(5):
        r, c = divmod(n, 3)
        tile = grid[r * 4:(r + 1) * 4, c * 6:(c + 1) * 6]
        assert tile.min() == pytest.approx(0.0, abs=1e-9)
        assert tile.max() == pytest.approx(255.0)


def test_nhwc_equals_nchw(filters):
    np.testing.assert_array_equal(visualize_grid(filters),
                                  visualize_grid(filters.transpose(0, 2, 3, 1), layout="NHWC"))


def test_grey_maps_and_constant_tile():
    maps = np.zeros((4, 3, 3))
    maps[1] = np.arange(9).reshape(3, 3)
    grid = visualize_grid(maps, ubound=1.0, padding=1)
    assert grid.shape == (7, 7, 1)
    assert np.all(grid[:3, :3] == 0), "a constant tile is shown as 0, not NaN"
    np.testing.assert_allclose(grid[:3, 4:7, 0], np.arange(9).reshape(3, 3) / 8)


def test_ncols_sets_tiles_per_row(filters):
    grid = visualize_grid(filters, ubound=1.0, padding=1, ncols=2)
    assert grid.shape == (3 * 4 + 2, 2 * 6 + 1, 3)  # 5 tiles in rows of 2 -> 3 rows
    np.testing.assert_array_equal(grid[10:14, :6], visualize_grid(filters[4:], ubound=1.0))
    with pytest.raises(ValueError, match="ncols"):
        visualize_grid(filters, ncols=0)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 5, 3, 3)), "C=5"),
    (np.zeros((3, 3)), "shape"),
])
def test_bad_input_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        visualize_grid(bad)


def test_bad_layout_rejected(filters):
    with pytest.raises(ValueError, match="NWHC"):
        visualize_grid(filters, layout="NWHC")


def test_plots_return_figures(filters):
    fig = plot_filters(filters, title="conv1")
    assert fig.axes[0].get_title() == "conv1"
    assert fig.axes[0].images[0].get_array().shape == (9, 20, 3)
    many = plot_filters(np.ones((4, 8, 3, 3)))  # 32 grey tiles: 32 panels of 3x3, one colour bar
    assert [ax.images[0].get_array().shape for ax in many.axes[:32]] == [(3, 3)] * 32
    assert len(many.axes) == 33
    maps = plot_feature_maps(np.random.default_rng(1).random((6, 5, 5)))
    assert maps.axes[0].images[0].get_array().shape == (11, 17)  # 6 maps: 2 rows of 3
    fig2, ax = plt.subplots()
    assert plot_grid(filters, ax=ax) is fig2
    plt.close("all")


# --- plot_filters on single-channel filters (issue 14 item 6: the box blur drawn all black) ---

PHOTO_FILTERS = np.stack([np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])[None],  # Sobel
                          np.full((1, 3, 3), 1 / 9),  # box blur: constant
                          np.array([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]])[None]])  # sharpen
NAMES = ["vertical edges (Sobel)", "box blur", "sharpen"]


def _panels(fig):
    """The filter panels of a figure (Axes with an image and a title), in order."""
    return [ax for ax in fig.axes if ax.images and ax.get_title()]


@pytest.mark.parametrize("scale", ["shared", "filter"])
def test_filter_panels_are_titled_centred_at_zero_and_none_is_empty(scale):
    fig = plot_filters(PHOTO_FILTERS, title="the three filters", names=NAMES, scale=scale)
    panels = _panels(fig)
    assert [ax.get_title() for ax in panels] == NAMES  # no fourth, empty slot
    for ax, w in zip(panels, PHOTO_FILTERS[:, 0], strict=True):
        image = ax.images[0]
        np.testing.assert_array_equal(image.get_array(), w)
        assert image.norm.vmin == -image.norm.vmax > -np.inf  # white is exactly 0
        texts = [t.get_text() for t in ax.texts]
        assert texts == [f"{v:.2g}" for v in w.ravel()]  # each weight written on its pixel
    box = panels[1].images[0]
    r, g, b, _ = box.cmap(box.norm(1 / 9))
    assert r > b and (r, g, b) != (1.0, 1.0, 1.0), "a positive constant filter is not blank"
    bars = len(fig.axes) - len(panels)
    assert bars == (1 if scale == "shared" else 3)
    assert fig.get_suptitle() == "the three filters"
    plt.close("all")


def test_filter_scales_shared_or_per_filter():
    shared = [ax.images[0].norm.vmax for ax in _panels(plot_filters(PHOTO_FILTERS))]
    own = [ax.images[0].norm.vmax for ax in _panels(plot_filters(PHOTO_FILTERS, scale="filter"))]
    assert shared == [5.0] * 3
    assert own == pytest.approx([2.0, 1 / 9, 5.0])
    plt.close("all")


def test_filter_panels_fill_a_given_axes_and_name_channels():
    fig, (left, right) = plt.subplots(1, 2)
    w = np.random.default_rng(2).standard_normal((2, 2, 3, 3))
    assert plot_filters(w, ax=right) is fig
    assert right not in fig.axes and left in fig.axes
    assert [ax.get_title() for ax in _panels(fig)] == [
        "filter 0, channel 0", "filter 0, channel 1", "filter 1, channel 0",
        "filter 1, channel 1"]
    plt.close("all")


@pytest.mark.parametrize("kwargs, match", [
    ({"names": ["a", "b"]}, "names has 2 titles for F=3"),
    ({"scale": "tile"}, "scale='tile'"),
])
def test_filter_panel_arguments_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_filters(PHOTO_FILTERS, **kwargs)


# --- plot_timings (issue 14 item 6: a speed chart from one timing, unlabelled) ---

CONV_TIMES = {"naive loops": {"forward": 0.05, "backward": 0.09},
              "im2col": {"forward": 0.002, "backward": 0.003},
              "library fast": {"forward": 0.001}}


def test_timing_bars_are_labelled_with_time_and_speed_up():
    fig = plot_timings(CONV_TIMES, repeats=5, title="conv")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["50 ms", "90 ms", "2 ms\n25x faster", "3 ms\n30x faster",
                      "1 ms\n50x faster"]  # library fast has no backward bar
    assert ax.get_yscale() == "log"  # 90 ms / 1 ms > LOG_SCALE_RATIO
    assert ax.get_ylabel() == "ms per call, best of 5 runs (log scale)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["forward", "backward"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(CONV_TIMES)
    plt.close("all")


def test_timing_axis_is_linear_when_ratios_are_small():
    times = {"a": {"forward": 0.004}, "b": {"forward": 0.004 / LOG_SCALE_RATIO}}
    ax = plot_timings(times, repeats=1).axes[0]
    assert ax.get_yscale() == "linear"
    assert ax.get_ylabel() == "ms per call, best of 1 run"
    assert [t.get_text() for t in ax.texts] == ["4 ms", "0.4 ms\n10x faster"]
    plt.close("all")


@pytest.mark.parametrize("timings, repeats, match", [
    ({}, 3, "no implementation"),
    ({"a": {"forward": 0.0}}, 3, r"timings\['a'\]\['forward'\]=0.0 must be a positive"),
    ({"a": {"forward": float("nan")}}, 3, "must be a positive"),
    ({"a": {"forward": 1.0}}, 0, "repeats=0 must be >= 1"),
])
def test_timing_arguments_checked(timings, repeats, match):
    with pytest.raises(ValueError, match=match):
        plot_timings(timings, repeats)


def test_term_shows_chinese_only_with_a_cjk_font(monkeypatch):
    import warnings

    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    from cs231n_lib import vis_utils

    monkeypatch.setattr(font_manager.fontManager, "ttflist", [
        f for f in font_manager.fontManager.ttflist if f.name not in vis_utils.CJK_FONTS])
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    assert vis_utils.cjk_font() is None
    assert vis_utils.term("卷积", "convolution") == "convolution"  # no boxes: no Chinese at all
    monkeypatch.undo()
    if vis_utils.cjk_font() is None:
        pytest.skip("no CJK font installed (make test installs fonts-noto-cjk as root)")
    label = vis_utils.term("卷积", "convolution")
    assert label == "卷积 convolution"
    fig, ax = plt.subplots()
    ax.set_title(label)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)"
        fig.canvas.draw()
    plt.close(fig)
