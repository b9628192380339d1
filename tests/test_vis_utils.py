"""Tiling of filters and feature maps."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from cs231n_lib.vis_utils import (  # noqa: E402
    plot_feature_maps,
    plot_filters,
    plot_grid,
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
    many = plot_filters(np.ones((4, 8, 3, 3)))  # 32 grey tiles: 6x6 grid of 3x3
    assert many.axes[0].images[0].get_array().shape == (23, 23)
    maps = plot_feature_maps(np.random.default_rng(1).random((6, 5, 5)))
    assert maps.axes[0].images[0].get_array().shape == (11, 17)  # 6 maps: 2 rows of 3
    fig2, ax = plt.subplots()
    assert plot_grid(filters, ax=ax) is fig2
    plt.close("all")
