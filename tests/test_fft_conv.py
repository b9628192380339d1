"""Tests for cs231n_lib/fft_conv.py's filter transforms (the FFT path's results against the
naive layer are in test_fast_layers.py): ``Grid.filters`` is scipy's rfft2 of the filters on
the grid, bit for bit, laid out by frequency; ``Grid.adjoint_filters`` is the inverse transform
of a gradient's spectra cropped to the taps, as irfft2 over the whole grid computes it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
from numpy.testing import assert_allclose, assert_array_equal

from cs231n_lib import fft_conv

# (filters (F, C, HH, WW), image size, dilation)
CASES = [((4, 3, 5, 5), 9, 1), ((2, 5, 7, 3), 11, 1), ((3, 2, 3, 3), 10, 2), ((5, 4, 2, 4), 8, 3)]


def _grid(w_shape, size, dilation):
    HH, WW = w_shape[2:]
    pad = dilation * (max(HH, WW) - 1) // 2
    return fft_conv.Grid((1, w_shape[1], size, size), w_shape, pad, dilation, size, size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w_shape, size, dilation", CASES)
def test_the_filters_spectra_are_rfft2_of_the_dilated_filters_by_frequency(w_shape, size,
                                                                          dilation, dtype):
    grid = _grid(w_shape, size, dilation)
    w = np.random.default_rng(1).standard_normal(w_shape).astype(dtype)
    F, C, HH, WW = w_shape
    spread = np.zeros((F, C, (HH - 1) * dilation + 1, (WW - 1) * dilation + 1), dtype)
    spread[:, :, ::dilation, ::dilation] = w
    want = scipy.fft.rfft2(spread, s=grid.shape)  # (F, C, Hf, Wf // 2 + 1)
    got = grid.filters(w)
    assert got.shape == (grid.freqs, C, F) and got.flags.c_contiguous
    assert got.dtype == want.dtype
    assert_array_equal(got, want.transpose(2, 3, 1, 0).reshape(grid.freqs, C, F))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("w_shape, size, dilation", CASES)
def test_the_filters_gradient_is_the_inverse_transform_at_the_taps(w_shape, size, dilation,
                                                                   dtype):
    grid = _grid(w_shape, size, dilation)
    F, C, HH, WW = w_shape
    rng = np.random.default_rng(2)
    complex_type = np.complex64 if dtype == np.float32 else np.complex128
    dG = (rng.standard_normal((grid.freqs, C, F))
          + 1j * rng.standard_normal((grid.freqs, C, F))).astype(complex_type)
    Hf, Wf = grid.shape
    full = scipy.fft.irfft2(dG.reshape(Hf, Wf // 2 + 1, C, F).transpose(3, 2, 0, 1), s=grid.shape)
    want = full[:, :, :(HH - 1) * dilation + 1:dilation, :(WW - 1) * dilation + 1:dilation]
    got = grid.adjoint_filters(dG, w_shape, dtype)
    assert got.shape == w_shape and got.dtype == dtype and got.flags.c_contiguous
    tol = 1e-5 if dtype == np.float32 else 1e-13
    assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("values, workers", [(1, 2), (10**9, 1)])
def test_the_filters_transforms_use_the_regions_threads_from_enough_values(monkeypatch, values,
                                                                          workers):
    """From ``PARALLEL_VALUES`` spectra values, scipy.fft gets the threads the caller passes
    (its workers), below that one; the numbers are the same either way, bit for bit."""
    w_shape, size, dilation = CASES[0]
    grid = _grid(w_shape, size, dilation)
    rng = np.random.default_rng(3)
    w = rng.standard_normal(w_shape)
    dG = grid.filters(w) * (1 + 1j)
    one = grid.filters(w), grid.adjoint_filters(dG, w_shape, np.float64)
    seen = []
    for name in ("rfft", "fft", "ifft", "irfft"):
        real = getattr(scipy.fft, name)
        monkeypatch.setattr(scipy.fft, name, lambda *a, _real=real, **k: (
            seen.append(k.get("workers")), _real(*a, **k))[1])
    monkeypatch.setattr(fft_conv, "PARALLEL_VALUES", values)
    assert_array_equal(grid.filters(w, threads=2), one[0])
    assert_array_equal(grid.adjoint_filters(dG, w_shape, np.float64, threads=2), one[1])
    assert seen == [workers] * 4
