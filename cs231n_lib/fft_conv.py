"""FFT convolution: large filters at stride 1 with far fewer multiplications than im2col.

By the convolution theorem a correlation of two signals is a pointwise product of their
Fourier transforms. For an input channel x and a filter g zero-padded to an Hf x Wf grid,

    y = irfft2(rfft2(x) * conj(rfft2(g)))    is    y[t, u] = sum_ij g[i, j] x[t + i, u + j]

with indices taken modulo (Hf, Wf). Summed over input channels, the pointwise products become
one small complex matrix multiply per frequency, (N, C) @ (C, F): for a 7 x 7 layer on 64
channels of 16 x 16 images about 1/20 of the multiply-adds of im2col (49 per output and
channel), and the transforms cost O(log) per pixel. It pays off for filters of 25 taps and more
on enough channels (``applies``; measured with bench/layers.py); small filters and the
3-channel first layer go through ``gemm_conv`` / ``winograd`` instead.

Padding costs nothing here: x is transformed unpadded on a grid of Hf >= H + pad rows (Wf
likewise), and output row t is row (t - pad) mod Hf of y: the rows a window reads above the
image wrap around to the grid's last rows, which hold zeros, and those below it are zeros too
(``_grid``). A dilated filter is the filter with dilation - 1 zeros between its taps, placed on
the same grid. The backward pass is the adjoint of these steps: dx = irfft2(D * G) and
dw = the first taps of irfft2(conj(D) * X), D the transform of dout placed back on the grid.

Float rounding: the transforms add an error of about the dtype's epsilon times log(Hf * Wf)
relative to the largest values, the same order as a matrix multiply's.
"""

from __future__ import annotations

import numpy as np

from cs231n_lib.layers import relu_into


def _sfft():
    """scipy.fft, imported on first use: it takes about 0.2 s, which a notebook (or a
    sandboxed grading kernel) that never runs a large filter should not pay."""
    import scipy.fft

    return scipy.fft


MIN_TAPS = 25  # filters smaller than 5 x 5 run faster through gemm_conv (measured)
MIN_CHANNELS = 16  # input and output channels: fewer make the per-frequency products too thin
# The filters' transforms (``Grid.filters``, ``Grid.adjoint_filters``) run on the parallel
# region's threads (scipy.fft's workers) from this many spectra values (freqs * C * F). Measured
# (2 threads against 1, float32 and float64): 0.56-0.84 of the time from 737K values (64 -> 64
# channels, 5 x 5 and 7 x 7, 16 x 16 images), even at 368K, slower at 184K and below (waking the
# workers costs about 0.4 ms).
PARALLEL_VALUES = 1 << 19


def applies(w_shape, stride: int) -> bool:
    """True when the FFT path computes this convolution and pays off. Not at stride 2 or more:
    as a stride-1 convolution over the input's phase planes (4 times the channels on a grid a
    quarter of the size) the many small transforms cost more than im2col (measured)."""
    F, C, HH, WW = w_shape
    return stride == 1 and HH * WW >= MIN_TAPS and min(C, F) >= MIN_CHANNELS


def _grid(size: int, pad: int, reach: int) -> int:
    """Transform length along an axis of ``size`` pixels: at least size + pad (see the module
    docstring) and the filter's reach ((taps - 1) * dilation + 1), rounded up to a length
    scipy's FFT is fast at."""
    return _sfft().next_fast_len(max(size + pad, reach), real=True)


class Grid:
    """The transform grid of one convolution geometry (validated by the caller)."""

    def __init__(self, x_shape, w_shape, pad: int, dilation: int, H_out: int, W_out: int):
        _, _, H, W = x_shape
        _, _, HH, WW = w_shape
        self.pad, self.dilation = pad, dilation
        self.shape = (_grid(H, pad, (HH - 1) * dilation + 1),
                      _grid(W, pad, (WW - 1) * dilation + 1))
        # output row t is grid row (t - pad) mod Hf; likewise for columns
        self.rows = (np.arange(H_out) - pad) % self.shape[0]
        self.cols = (np.arange(W_out) - pad) % self.shape[1]

    @property
    def freqs(self) -> int:
        """Number of frequencies of a real transform on the grid."""
        return self.shape[0] * (self.shape[1] // 2 + 1)

    def filters(self, w, threads: int = 1):
        """rfft2 of the (dilated) filters w (F, C, HH, WW) on the grid, laid out (freqs, C, F)
        as the per-frequency products read them, on up to ``threads`` threads. The taps are
        laid out (HH, WW, C, F) first and transformed along their first two axes, row
        transforms on the taps' rows only: their spectra come in the products' layout, with no
        transposed copy of them (Hf * (Wf // 2 + 1) complex numbers for HH * WW taps: 14 times
        the taps' bytes for 5 x 5 filters on the 18 x 18 grid of 16 x 16 images). The same
        numbers, bit for bit, in 0.3-0.6 of rfft2's time (measured)."""
        F, C, HH, WW = w.shape
        d = self.dilation
        taps = np.zeros(((HH - 1) * d + 1, (WW - 1) * d + 1, C, F), w.dtype)
        taps[::d, ::d] = w.transpose(2, 3, 1, 0)
        workers = self._workers(C * F, threads)
        spectra = _sfft().rfft(taps, n=self.shape[1], axis=1, workers=workers)
        spectra = _sfft().fft(spectra, n=self.shape[0], axis=0, overwrite_x=True, workers=workers)
        return spectra.reshape(self.freqs, C, F)

    def adjoint_filters(self, dG, w_shape, dtype, threads: int = 1):
        """dw (F, C, HH, WW) from dG (freqs, C, F), the spectra of the filters' gradient on the
        grid (summed over images): their transform back, at the taps' positions (the inverse
        transform along the grid's rows, then along the columns of the taps' rows only; 0.25-0.5
        of the time of irfft2 on the whole grid, measured), on up to ``threads`` threads."""
        F, C, HH, WW = w_shape
        d = self.dilation
        Hf, Wf = self.shape
        workers = self._workers(C * F, threads)
        g = _sfft().ifft(dG.reshape(Hf, Wf // 2 + 1, C, F), axis=0, workers=workers)
        g = _sfft().irfft(g[:(HH - 1) * d + 1:d], n=Wf, axis=1, overwrite_x=True,
                          workers=workers)[:, :(WW - 1) * d + 1:d]
        return np.ascontiguousarray(g.transpose(3, 2, 0, 1), dtype=dtype)

    def _workers(self, matrices: int, threads: int) -> int:
        """scipy.fft's workers for the transforms of ``matrices`` filters' spectra."""
        return threads if self.freqs * matrices >= PARALLEL_VALUES else 1

    def place(self, dout):
        """dout (n, F, H_out, W_out) on the grid at the rows and columns the output came from
        (zeros elsewhere): the adjoint of cropping the output."""
        n, F = dout.shape[:2]
        grid = np.zeros((n, F, *self.shape), dout.dtype)
        grid[:, :, self.rows[:, None], self.cols] = dout
        return grid


def _by_frequency(spectra):
    """Spectra (a, b, Hf, Wf // 2 + 1) -> (freqs, a, b), contiguous: one matrix per frequency."""
    a, b, Hf, Wc = spectra.shape
    return np.ascontiguousarray(spectra.transpose(2, 3, 0, 1)).reshape(Hf * Wc, a, b)


def _from_frequency(per_freq, shape):
    """The inverse of ``_by_frequency``: (freqs, a, b) -> (a, b, Hf, Wf // 2 + 1)."""
    grid = per_freq.reshape(shape[0], shape[1] // 2 + 1, *per_freq.shape[1:])
    return np.ascontiguousarray(grid.transpose(2, 3, 0, 1))


def forward(x, G_conj, b, grid: Grid, out, relu=False):
    """Convolution of x (n, C, H, W) into ``out`` (n, F, H_out, W_out), G_conj the complex
    conjugate of grid.filters(w). Returns X, the input's spectra (freqs, n, C), which the
    backward pass reuses for dw."""
    X = _by_frequency(_sfft().rfft2(x, s=grid.shape))  # (freqs, n, C)
    Y = np.matmul(X, G_conj)  # (freqs, n, F)
    y = _sfft().irfft2(_from_frequency(Y, grid.shape), s=grid.shape)  # (n, F, Hf, Wf)
    result = y[:, :, grid.rows[:, None], grid.cols]
    result += b[:, None, None]
    if relu:
        relu_into(result, result)
    out[...] = result
    return X


def backward(dout, G, X, grid: Grid, dx):
    """Gradients of ``forward`` for upstream dout (n, F, H_out, W_out): writes dx (n, C, H, W)
    unless it is None; returns dG (freqs, C, F), this slice's share of the spectra of the
    filters' gradient (``Grid.adjoint_filters`` turns their sum over slices into dw).

    With y[t] = sum_u g[u] x[t + u] on the grid: dx[v] = sum_t dy[t] g[v - t], a circular
    convolution (spectra D * G), and dg[u] = sum_t dy[t] x[t + u], a correlation like y's
    (spectra X * conj(D)); summed over output channels and over images respectively."""
    D = _by_frequency(_sfft().rfft2(grid.place(dout)))  # (freqs, n, F)
    dG = np.matmul(X.transpose(0, 2, 1), D.conj())  # (freqs, C, F)
    if dx is not None:
        dX = np.matmul(D, G.transpose(0, 2, 1))  # (freqs, n, C)
        g = _sfft().irfft2(_from_frequency(dX, grid.shape), s=grid.shape)
        dx[...] = g[:, :, :dx.shape[2], :dx.shape[3]]
    return dG
