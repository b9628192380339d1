"""Tests for the fused convolution - ReLU - max pooling (``fast_layers.conv_relu_pool_forward_fast``
and its backward pass, ``fast_pool.PooledBlocks``): the same numbers as the three layers run one
after the other, on every convolution path, for tiling, overlapping and ragged pooling windows,
ties and all-negative windows, chunks and threads; and it keeps a quarter of what they keep."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cs231n_lib import fast_layers, fast_pool, layer_utils, mec_conv, parallel
from cs231n_lib.layers import relu_backward, relu_forward
from cs231n_lib.shapes import conv_geometry

# (C, F, HH, stride, pad, dilation, H, W) -> the path conv_forward_fast takes
CONVS = {
    "window": (3, 4, 3, 1, 1, 1, 8, 9),
    "gemm": (8, 5, 5, 1, 2, 1, 9, 9),
    "mec": (3, 4, 7, 1, 3, 1, 9, 9),  # forward channels last (mec_conv), backward gemm's
    "gemm strided": (8, 4, 3, 2, 1, 1, 11, 11),
    "winograd": (8, 6, 3, 1, 1, 1, 9, 9),
    "winograd dilated": (32, 4, 3, 1, 2, 2, 8, 8),  # one Winograd convolution per phase
    "fft": (16, 16, 5, 1, 2, 1, 8, 8),
    # with 2x2/2 windows, at the pooling's resolution (s2d_conv): the forward pass (3 x 3),
    # both passes (5 x 5 on 2 channels, without dx), the backward pass after MEC (7 x 7)
    "s2d": (3, 4, 3, 1, 1, 1, 8, 10),
    "s2d both": (2, 4, 5, 1, 2, 1, 8, 8),
    "s2d backward": (3, 4, 7, 1, 3, 1, 10, 10),
}
POOLS = {
    "2x2/2 tiling": (2, 2, 2),
    "3x3/2 overlapping": (3, 3, 2),
    "2x2/1 overlapping": (2, 2, 1),
    "3x3/3": (3, 3, 3),
    "1x1/1": (1, 1, 1),
    "2x3/2": (2, 3, 2),
    "2x2/3 with gaps": (2, 2, 3),  # pixels no window reaches get no gradient
}


def _layer(rng, conv, n=5, dtype=np.float64):
    C, F, HH, stride, pad, dilation, H, W = CONVS[conv]
    x = rng.standard_normal((n, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, HH, HH)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    return x, w, b, {"stride": stride, "pad": pad, "dilation": dilation}


def _conv_out(conv):
    C, F, HH, stride, pad, dilation, H, W = CONVS[conv]
    return conv_geometry((1, C, H, W), (F, C, HH, HH),
                         {"stride": stride, "pad": pad, "dilation": dilation})[3:]


def _pool_param(pool):
    ph, pw, stride = POOLS[pool]
    return {"pool_height": ph, "pool_width": pw, "stride": stride}


def _tiles(conv, pool):
    """Whether the pooling's windows tile the convolution's output (the pooling layer's rule)."""
    ph, pw, stride = POOLS[pool]
    H, W = _conv_out(conv)
    return (H - ph) % stride == 0 and (W - pw) % stride == 0


CASES = [(c, p) for c in CONVS for p in POOLS if _tiles(c, p)]


def _three_layers(x, w, b, conv_param, pool_param, dout, need_dx=True):
    """Output and gradients of conv, ReLU, max pool run one after the other."""
    s, conv_cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
    r, relu_cache = relu_forward(s)
    out, pool_cache = fast_layers.max_pool_forward_fast(r, pool_param)
    ds = relu_backward(fast_layers.max_pool_backward_fast(dout, pool_cache), relu_cache)
    return out, fast_layers.conv_backward_fast(ds, conv_cache, need_dx=need_dx), s.shape


def _check(x, w, b, conv_param, pool_param, rng, need_dx=True, rtol=1e-12, exact=True):
    """The fused layer against the three: the output exactly equal (``exact``: unless chunks
    split the batch otherwise than the threads' slices, where the FFT path rounds otherwise),
    the gradients to ``rtol``."""
    s, _ = fast_layers.conv_forward_fast(x, w, b, conv_param)
    out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, b, conv_param, pool_param)
    dout = rng.standard_normal(out.shape).astype(out.dtype)
    before = dout.copy()
    got = fast_layers.conv_relu_pool_backward_fast(dout, cache, need_dx=need_dx)
    expected_out, expected, _ = _three_layers(x, w, b, conv_param, pool_param, dout, need_dx)
    assert_array_equal(dout, before)  # dout is read, never written
    assert out.dtype == expected_out.dtype
    if exact:
        assert_array_equal(out, expected_out)
    else:
        assert_allclose(out, expected_out, rtol=rtol, atol=rtol * np.abs(expected_out).max())
    for name, g, e in zip(("dx", "dw", "db"), got, expected, strict=True):
        if e is None:
            assert g is None, name
        else:
            assert g.dtype == e.dtype and g.shape == e.shape, name
            # dw and db add the same terms; chunks may group them otherwise than slices
            assert_allclose(g, e, rtol=rtol, atol=rtol * np.abs(e).max(), err_msg=name)
    return cache


def _exact(conv):
    """Whether the fused layer's output is exactly the three layers' (the same sums in the same
    order): not where its forward pass is MEC's or may be s2d_conv's."""
    return not (conv == "mec" or conv.startswith("s2d"))


def test_the_cases_cover_every_path_and_pooling():
    assert {p for _, p in CASES} == set(POOLS)
    assert {c.split()[0] for c, p in CASES if p == "3x3/2 overlapping"} == {"gemm", "winograd",
                                                                            "mec"}
    assert all(sum(c == conv for c, _ in CASES) >= 3 for conv in CONVS)
    assert len(CASES) >= 15


@pytest.mark.parametrize("conv, pool", CASES)
def test_fused_is_the_three_layers(conv, pool):
    rng = np.random.default_rng(1)
    x, w, b, conv_param = _layer(rng, conv)
    _, conv_cache = fast_layers.conv_forward_fast(x, w, b, conv_param)
    mec = mec_conv.applies(w.shape, conv_param["dilation"])
    # the path this case is meant to cover (where s2d_conv does not take it)
    assert mec == (conv in ("mec", "s2d both", "s2d backward"))
    assert conv_cache[4] == ("window" if conv in ("s2d", "s2d both") else "gemm" if mec
                             else conv.split()[0])
    _check(x, w, b, conv_param, _pool_param(pool), rng, exact=_exact(conv))


@pytest.mark.parametrize("conv, pool", [next(case for case in CASES if case[0] == conv)
                                        for conv in CONVS])
def test_fused_skips_dx_when_asked(conv, pool):
    rng = np.random.default_rng(2)
    x, w, b, conv_param = _layer(rng, conv)
    _check(x, w, b, conv_param, _pool_param(pool), rng, need_dx=False, exact=_exact(conv))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv, pool", [("gemm strided", "2x2/2 tiling"),
                                        ("mec", "3x3/2 overlapping")])
def test_fused_keeps_the_dtype(dtype, conv, pool):
    rng = np.random.default_rng(3)
    x, w, b, conv_param = _layer(rng, conv, dtype=dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    cache = _check(x, w, b, conv_param, _pool_param(pool), rng, rtol=rtol, exact=_exact(conv))
    assert cache[1].out.dtype == dtype


@pytest.mark.parametrize("conv, pool", [(c, p) for c, p in CASES if c != "gemm strided"
                                        and p in ("2x2/2 tiling", "3x3/2 overlapping")])
def test_chunks_and_threads_change_no_number(conv, pool, monkeypatch):
    """Two threads and chunks of one or two images (several per thread, some ragged) against the
    unchunked, single-threaded pass."""
    rng = np.random.default_rng(4)
    x, w, b, conv_param = _layer(rng, conv, n=7)
    pool_param = _pool_param(pool)
    image_bytes = fast_layers.conv_forward_fast(x, w, b, conv_param)[0][0].nbytes
    for chunk in (1, 2):
        monkeypatch.setattr(fast_pool, "CHUNK_BYTES", chunk * image_bytes)
        monkeypatch.setattr(parallel, "MIN_WORK", 1)
        parallel.set_num_threads(2)
        try:
            cache = _check(x, w, b, conv_param, pool_param, rng, exact=False)
        finally:
            parallel.set_num_threads(None)
        pooled, slices = cache[1], cache[0][5][1]
        assert pooled.chunk == chunk and len(slices) == 2
        # each slice kept one saved entry per chunk (the backward pass walks the same chunks)
        assert [len(p) for p in cache[0][5][2]] == [-(-(s.stop - s.start) // chunk)
                                                   for s in slices]


@pytest.mark.parametrize("bias, gets_gradient", [(2.0, True), (0.0, False), (-1.0, False)])
def test_ties_and_nonpositive_windows_send_the_gradient_where_the_three_layers_do(bias,
                                                                                 gets_gradient):
    """Zero filters make every output pixel the bias: every window a tie. A positive tie's
    gradient goes to the window's first pixel; at 0 and below the ReLU passes none."""
    rng = np.random.default_rng(5)
    x, w, b, conv_param = _layer(rng, "gemm strided")
    w[:] = 0
    b[:] = bias
    pool_param = {"pool_height": 2, "pool_width": 2, "stride": 2}
    out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, b, conv_param, pool_param)
    assert_array_equal(out, max(bias, 0.0))
    dout = np.ones_like(out)
    db = fast_layers.conv_relu_pool_backward_fast(dout, cache)[2]
    assert_array_equal(db, dout[:, 0].sum() if gets_gradient else 0.0)
    _check(x, w, b, conv_param, pool_param, rng)


def test_the_pooled_cache_holds_a_quarter_of_the_convolutions_output():
    """For 2x2 windows: the pooled output and one byte per window, no (N, F, H, W) array."""
    rng = np.random.default_rng(6)
    x, w, b, conv_param = _layer(rng, "fft", n=4, dtype=np.float32)
    out, (conv_cache, pooled) = fast_layers.conv_relu_pool_forward_fast(
        x, w, b, conv_param, {"pool_height": 2, "pool_width": 2, "stride": 2})
    conv_shape = pooled.conv_shape
    assert pooled.tap.dtype == np.uint8 and pooled.tap.shape == out.shape
    assert out.size * 4 == np.prod(conv_shape)


def test_bad_dout_is_rejected():
    rng = np.random.default_rng(7)
    x, w, b, conv_param = _layer(rng, "fft")
    out, cache = layer_utils.conv_relu_pool_forward(
        x, w, b, conv_param, {"pool_height": 2, "pool_width": 2, "stride": 2})
    with pytest.raises(ValueError, match="dout must have shape"):
        layer_utils.conv_relu_pool_backward(out[:, :1], cache)


@pytest.mark.parametrize("conv", CONVS)
def test_an_empty_batch_gives_empty_outputs_and_zero_weight_gradients(conv):
    rng = np.random.default_rng(8)
    x, w, b, conv_param = _layer(rng, conv, n=0)
    pool = next(p for c, p in CASES if c == conv)
    out, cache = fast_layers.conv_relu_pool_forward_fast(x, w, b, conv_param, _pool_param(pool))
    assert out.shape[0] == 0
    dx, dw, db = fast_layers.conv_relu_pool_backward_fast(np.zeros_like(out), cache)
    assert dx.shape == x.shape
    assert_array_equal(dw, np.zeros_like(w))
    assert_array_equal(db, np.zeros_like(b))


def test_mixed_dtypes_compute_in_numpys_promotion_and_return_each_inputs_dtype():
    rng = np.random.default_rng(9)
    x, w, b, conv_param = _layer(rng, "gemm strided", dtype=np.float32)
    w = w.astype(np.float64)
    cache = _check(x, w, b, conv_param, {"pool_height": 2, "pool_width": 2, "stride": 2}, rng)
    assert cache[1].out.dtype == np.float64  # the pooled output: float32 x float64 -> float64
