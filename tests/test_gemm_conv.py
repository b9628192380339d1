"""Tests for cs231n_lib/gemm_conv.py (the fast convolution's matrix-multiply path: im2col as
contiguous runs of phase planes, in blocks of images) and cs231n_lib/window_conv.py (its path
for filters with few taps: exact columns image by image), the ReLU the fast convolution can apply
as it writes (``relu`` / ``relu_out``, on every path: gemm, winograd, fft), and what goes with
them: ``parallel.blas_held`` and the threaded affine layer. (The FFT path's results are tested
with the other paths' in test_fast_layers.py.)"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
from layer_cases import conv_geometries
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_info

from cs231n_lib import (
    conv_dx,
    fast_layers,
    gemm_conv,
    layer_utils,
    layers,
    mec_conv,
    parallel,
    window_conv,
)
from cs231n_lib.im2col import im2col
from cs231n_lib.shapes import conv_geometry

# strides 1 to 4, dilations 1 to 3 (sharing a factor with the stride or not), pads from 0 to
# more than the filter reaches
GEOMETRIES = list(conv_geometries([5, 8], [6, 9], [1, 2, 3], [1, 3, 4], [1, 2, 3, 4], [0, 1, 3],
                                  [1, 2, 3]))


def _plan(H, W, HH, WW, S, P, d, C=2):
    geometry = conv_geometry((1, C, H, W), (1, C, HH, WW), {"stride": S, "pad": P, "dilation": d})
    return gemm_conv.Plan(C, H, W, HH, WW, S, P, d, *geometry[3:])


def test_the_grid_has_every_kind_of_geometry():
    kinds = {(S > 1, d > 1, np.gcd(S, d) > 1) for _, _, _, _, S, _, d in GEOMETRIES}
    assert kinds == {(False, False, False), (False, True, False), (True, False, False),
                     (True, True, False), (True, True, True)}
    assert len(GEOMETRIES) > 300


@pytest.mark.parametrize("g", GEOMETRIES)
def test_the_phase_groups_cover_every_tap_once(g):
    plan = _plan(*g)
    seen = []
    for offset, (rows, dr), (cols, dc) in plan.groups:
        i_taps, j_taps = range(plan.HH)[rows], range(plan.WW)[cols]
        for u, i in enumerate(i_taps):
            for v, j in enumerate(j_taps):
                S, di, dj = plan.stride, i * plan.dilation, j * plan.dilation
                plane = (di % S) * S + dj % S
                # the run of tap (i, j) starts where the phase-plane layout puts its pixel
                assert offset + u * dr + v * dc == \
                    plane * plan.plane + (di // S) * plan.R + dj // S
                seen.append((i, j))
    assert sorted(seen) == [(i, j) for i in range(plan.HH) for j in range(plan.WW)]


@pytest.mark.parametrize("g", GEOMETRIES[::7])
def test_columns_hold_the_textbook_im2col_in_their_real_columns(g):
    plan = _plan(*g)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, plan.C, plan.H, plan.W))
    buf = gemm_conv.to_planes(x, plan, "test.planes")
    X = np.empty((plan.K + 1, 3, plan.L))
    gemm_conv.columns(buf, plan, 0, 3, X)
    real = X.reshape(plan.K + 1, 3, plan.H_out, plan.R)[..., :plan.W_out]
    S, P, d = plan.stride, plan.pad, plan.dilation
    expected = im2col(x, plan.HH, plan.WW, S, P, d).reshape(plan.K, 3, plan.H_out, plan.W_out)
    assert_array_equal(real[:plan.K], expected)
    assert_array_equal(real[plan.K], 1)  # the bias row


def force_path(monkeypatch, path, forward=None):
    """Make the fast convolution take ``path`` ("window" or "gemm") for every filter that
    neither Winograd nor the FFT takes (both compute any geometry; the choice is speed), and
    ``forward`` (by default ``path``) for its forward pass (never ``mec_conv.forward_nchw`` or
    ``mec_conv.backward_weights``, whose own tests are in test_mec_conv.py)."""
    forward = path if forward is None else forward
    monkeypatch.setattr(window_conv, "applies", lambda w_shape: path == "window")
    monkeypatch.setattr(window_conv, "forward_applies",
                        lambda w_shape, stride, dilation: forward == "window")
    monkeypatch.setattr(mec_conv, "nchw_applies", lambda w_shape, W_out, dilation: False)
    monkeypatch.setattr(mec_conv, "backward_applies", lambda n, W_out, dilation: False)


def force_dx(monkeypatch, method):
    """Make the gemm path compute the input gradient by ``method``: "phases" (``conv_dx``) or
    "col2im", whichever ``conv_dx.applies`` would pick."""
    monkeypatch.setattr(conv_dx, "applies", lambda plan, F: method == "phases")


# (forward path, backward path, the gemm path's dx method); the last: a strided gemm-path
# layer's forward pass on the window path (``window_conv.forward_applies``)
PATHS = [("gemm", "gemm", "phases"), ("gemm", "gemm", "col2im"), ("window", "window", None),
         ("window", "gemm", "phases")]
SAME_PATHS = [(path, dx) for forward, path, dx in PATHS if forward == path]


@pytest.mark.parametrize("forward, path, dx_method", PATHS)
@pytest.mark.parametrize("g", GEOMETRIES[::3])
def test_gemm_and_window_paths_match_naive_forward_and_backward(g, forward, path, dx_method,
                                                                monkeypatch):
    H, W, HH, WW, S, P, d = g
    force_path(monkeypatch, path, forward)
    force_dx(monkeypatch, dx_method)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, H, W))
    w, b = rng.standard_normal((4, 2, HH, WW)), rng.standard_normal(4)
    param = {"stride": S, "pad": P, "dilation": d}
    out, cache = fast_layers.conv_forward_fast(x, w, b, param)
    assert cache[4] == path
    ref, ref_cache = layers.conv_forward_naive(x, w, b, param)
    assert_allclose(out, ref, rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(fast_layers.conv_backward_fast(dout, cache),
                         layers.conv_backward_naive(dout, ref_cache), strict=True):
        assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("path, dx_method", SAME_PATHS)
def test_blocks_of_any_size_give_the_same_result(path, dx_method, monkeypatch):
    force_path(monkeypatch, path)
    force_dx(monkeypatch, dx_method)
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((7, 3, 9, 9)), rng.standard_normal((5, 3, 3, 3)), np.ones(5)
    param = {"stride": 2, "pad": 1}
    out, cache = fast_layers.conv_forward_fast(x, w, b, param)
    assert cache[4] == path
    dout = rng.standard_normal(out.shape)
    grads = fast_layers.conv_backward_fast(dout, cache)
    plan = fast_layers._plan(x.shape, w.shape, 2, 1, 1, *out.shape[2:])
    columns = plan.L if path == "gemm" else plan.H_out * plan.W_out  # per image
    per_image = (plan.K + 1) * columns * 8
    for images in (1, 2, 3, 7):  # blocks of 1, 2, 3 images (a short last block) and all
        monkeypatch.setattr(gemm_conv, "BLOCK_BYTES", images * per_image)
        backward_images = 8 - images  # (7, 6, 5, 1: the backward pass's own size)
        monkeypatch.setattr(gemm_conv, "BACKWARD_BLOCK_BYTES", backward_images * per_image)
        for backward, want in ((False, images), (True, min(7, backward_images))):
            if path == "gemm":
                assert plan.block(7, 8, backward) == want
            else:
                assert window_conv._block(7, plan.K, columns, 8, backward) == want
        out2, cache2 = fast_layers.conv_forward_fast(x, w, b, param)
        assert_allclose(out2, out, rtol=1e-12)
        for g2, g in zip(fast_layers.conv_backward_fast(dout, cache2), grads, strict=True):
            assert_allclose(g2, g, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("path", ["gemm", "window"])
def test_the_gemm_and_window_caches_keep_no_columns(path, monkeypatch):
    """The columns are built again in the backward pass: the cache holds x, w and b and no
    array of the size of X_col (49 times x for a 7 x 7 filter)."""
    force_path(monkeypatch, path)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    w, b = rng.standard_normal((8, 3, 7, 7)).astype(np.float32), np.zeros(8, np.float32)
    _, cache = fast_layers.conv_forward_fast(x, w, b, {"pad": 3})
    assert cache[4] == path

    def arrays(obj):
        if isinstance(obj, np.ndarray):
            yield obj
        elif isinstance(obj, (tuple, list)):
            for item in obj:
                yield from arrays(item)

    assert sum(a.nbytes for a in arrays(cache)) == x.nbytes + w.nbytes + b.nbytes


@pytest.mark.parametrize("w_shape, param", [((6, 3, 5, 5), {"pad": 2}),  # gemm*
                                            ((6, 8, 3, 3), {"pad": 1}),  # winograd
                                            ((16, 16, 5, 5), {"pad": 2}),  # fft
                                            ((6, 3, 3, 3), {"stride": 2, "pad": 1}),  # window
                                            ((6, 3, 1, 1), {}),  # window, no padding
                                            ((6, 8, 3, 3), {"stride": 2, "pad": 1}),  # gemm*
                                            ((6, 3, 5, 5), {"pad": 4, "dilation": 2})])  # gemm
@pytest.mark.parametrize("need_dx", [True, False])
@pytest.mark.parametrize("dx_method", ["phases", "col2im"])  # (the gemm path's)
def test_the_fused_relu_is_the_relu_layer(w_shape, param, need_dx, dx_method, monkeypatch):
    """(* gemm: its forward pass ``mec_conv.forward_nchw``'s.)"""
    force_dx(monkeypatch, dx_method)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, w_shape[1], 9, 9)).astype(np.float32)
    w, b = rng.standard_normal(w_shape).astype(np.float32), rng.standard_normal(w_shape[0])
    b = b.astype(np.float32)
    a, cache = fast_layers.conv_forward_fast(x, w, b, param)
    out, fused_cache = fast_layers.conv_forward_fast(x, w, b, param, relu=True)
    assert_array_equal(out, layers.relu_forward(a)[0])
    assert (out == 0).any() and (out > 0).any()
    dout = rng.standard_normal(out.shape).astype(np.float32)
    expected = fast_layers.conv_backward_fast(layers.relu_backward(dout, a), cache,
                                              need_dx=need_dx)
    got = fast_layers.conv_backward_fast(dout, fused_cache, need_dx=need_dx, relu_out=out)
    for g, e in zip(got, expected, strict=True):
        if e is None:
            assert g is None
        else:
            assert_array_equal(g, e)


def test_relu_out_of_the_wrong_shape_is_refused():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    out, cache = fast_layers.conv_forward_fast(x, w, np.zeros(4), {"pad": 1}, relu=True)
    with pytest.raises(ValueError, match="relu_out"):
        fast_layers.conv_backward_fast(out, cache, relu_out=out[:1])


def test_conv_relu_sandwiches_match_the_layers_one_by_one():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 3, 8, 8))
    w, b = rng.standard_normal((4, 3, 5, 5)), rng.standard_normal(4)
    param, pool = {"pad": 2}, {"pool_height": 2, "pool_width": 2, "stride": 2}
    a, conv_cache = fast_layers.conv_forward_fast(x, w, b, param)
    r, relu_cache = layers.relu_forward(a)
    p, pool_cache = fast_layers.max_pool_forward_fast(r, pool)
    out, cache = layer_utils.conv_relu_pool_forward(x, w, b, param, pool)
    # 5 x 5 filters on 3 channels: the fused layer's forward pass is mec_conv's (rounded
    # otherwise than the gemm path's), its backward pass the gemm path's
    assert_allclose(out, p, rtol=1e-13, atol=1e-13)
    dout = rng.standard_normal(out.shape)
    da = layers.relu_backward(fast_layers.max_pool_backward_fast(dout, pool_cache), relu_cache)
    expected = fast_layers.conv_backward_fast(da, conv_cache)
    for g, e in zip(layer_utils.conv_relu_pool_backward(dout, cache), expected, strict=True):
        assert_allclose(g, e, rtol=1e-13, atol=1e-13)
    out, cache = layer_utils.conv_relu_forward(x, w, b, param)
    assert_array_equal(out, r)
    dr = rng.standard_normal(r.shape)
    expected = fast_layers.conv_backward_fast(layers.relu_backward(dr, relu_cache), conv_cache)
    for g, e in zip(layer_utils.conv_relu_backward(dr, cache), expected, strict=True):
        assert_array_equal(g, e)


def _blas_threads():
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_blas_held_holds_blas_to_one_thread_and_nests():
    parallel.set_num_threads(2)
    try:
        before = _blas_threads()
        with parallel.blas_held():
            assert _blas_threads() == {1}
            with parallel.blas_held():
                assert _blas_threads() == {1}
                with parallel.Batch(parallel.split(8, 2)) as batch:  # a region inside
                    batch.map(lambda s: None)
                assert _blas_threads() == {1}
            assert _blas_threads() == {1}
        assert _blas_threads() == before
    finally:
        parallel.set_num_threads(None)


def test_blas_held_restores_the_limit_after_an_error():
    before = _blas_threads()
    with pytest.raises(RuntimeError), parallel.blas_held():
        raise RuntimeError("boom")
    assert _blas_threads() == before


@pytest.mark.parametrize("x_shape", [(64, 512), (64, 8, 8, 8), (3, 7)])
def test_affine_split_across_threads_matches_numpy(x_shape, monkeypatch):
    monkeypatch.setattr(parallel, "MIN_WORK", 1)  # every call in 2 slices, one per thread
    parallel.set_num_threads(2)
    try:
        rng = np.random.default_rng(7)
        x = rng.standard_normal(x_shape).astype(np.float32)
        D = int(np.prod(x_shape[1:]))
        w, b = rng.standard_normal((D, 33)).astype(np.float32), rng.standard_normal(33)
        out, cache = layers.affine_forward(x, w, b)
        assert out.dtype == np.float64  # promoted by b, as x @ w + b is
        # float32 products summed in other blocks: rounding of sums of up to 512 terms
        assert_allclose(out, x.reshape(len(x), -1) @ w + b, rtol=1e-5, atol=1e-4)
        dout = rng.standard_normal(out.shape)
        dx, dw, db = layers.affine_backward(dout, cache)
        assert (dx.dtype, dw.dtype, db.dtype) == (x.dtype, w.dtype, b.dtype)
        assert_allclose(dx, (dout @ w.T).reshape(x.shape), rtol=1e-5, atol=1e-4)
        assert_allclose(dw, x.reshape(len(x), -1).T @ dout, rtol=1e-5, atol=1e-4)
        assert_allclose(db, dout.sum(axis=0))
        none, dw2, db2 = layers.affine_grads(dout, cache, need_dx=False)
        assert none is None
        assert_array_equal(dw2, dw)
        assert_array_equal(db2, db)
    finally:
        parallel.set_num_threads(None)


@pytest.mark.parametrize("n, k", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_split_cuts_a_range_into_k_near_equal_slices(n, k):
    slices = parallel.split(n, k)
    assert len(slices) == k
    sizes = [len(range(n)[s]) for s in slices]
    assert sum(sizes) == n and max(sizes) - min(sizes) <= 1
    assert [i for s in slices for i in range(n)[s]] == list(range(n))


@pytest.mark.parametrize("name, groups", [("all_conv_net", 1), ("small_pool_net", 1),
                                          ("alexnet_like", 2)])
def test_convnet_fuses_conv_relu_pairs_without_changing_a_number(name, groups, monkeypatch):
    from cs231n_lib import architectures as arch
    from cs231n_lib.classifiers import convnet

    if name == "alexnet_like":  # a grouped convolution followed by a ReLU
        spec = arch.Spec("grouped", (4, 8, 8), (
            arch.Conv(6, 3, pad=1, groups=groups), arch.ReLU(), arch.Conv(4, 3, pad=1),
            arch.ReLU(), arch.Flatten(), arch.FC(5)))
    else:
        spec = arch.REGISTRY[name]((1, 12, 12), classes=5, width=4)
    rng = np.random.default_rng(8)
    X = rng.standard_normal((6, *spec.input))
    y = rng.integers(0, 5, 6)
    model = convnet.ConvNet(spec, dtype=np.float64, seed=0)
    scores, caches = model.forward(X)
    assert any(c is convnet._FUSED for c in caches)  # a ReLU ran inside its convolution
    # small_pool_net's max pooling too (conv, ReLU, pool: two layers run by the conv)
    pooled = [a is b is convnet._FUSED for a, b in zip(caches, caches[1:], strict=False)]
    assert any(pooled) == (name == "small_pool_net")
    loss, grads = model.loss(X, y)
    monkeypatch.setattr(convnet, "_fused_after_conv", lambda nodes, k, cache_workspace: 0)
    scores2, caches2 = model.forward(X)
    assert not any(c is convnet._FUSED for c in caches2)
    # a fused ReLU changes no number; a fused pooling computes its first layer at the
    # pooling's resolution (s2d_conv), the same sums in another order: equal up to rounding
    same = (assert_array_equal if name != "small_pool_net"
            else partial(assert_allclose, rtol=1e-13, atol=1e-15))
    same(scores, scores2)
    loss2, grads2 = model.loss(X, y)
    same(loss, loss2)
    for key in grads:
        same(grads[key], grads2[key])


def test_the_solver_step_holds_blas_to_one_thread():
    """A training step runs every product in the thread that asks for it (the layers' own
    threads use the cores): no multi-threaded BLAS call wakes OpenBLAS's spinning pool."""
    from cs231n_lib.solver import Solver

    seen = []

    class Model:
        params = {"W": np.ones(3)}

        def loss(self, X, y=None):
            seen.append(_blas_threads())
            return 0.5, {"W": np.zeros(3)}

    data = {"X_train": np.zeros((4, 3)), "y_train": np.zeros(4, int),
            "X_val": np.zeros((1, 3)), "y_val": np.zeros(1, int)}
    solver = Solver(Model(), data, batch_size=2, verbose=False)
    before = _blas_threads()
    solver._step(np.arange(2))
    assert seen == [{1}]
    assert _blas_threads() == before


@pytest.mark.parametrize("w_shape, expected", [
    ((8, 3, 3, 3), True), ((8, 1, 5, 5), True), ((8, 16, 2, 2), True), ((8, 512, 1, 1), True),
    ((8, 8, 3, 3), False), ((8, 3, 5, 5), False), ((8, 17, 2, 2), False), ((8, 3, 7, 7), False)])
def test_the_window_path_takes_filters_with_few_taps(w_shape, expected):
    assert window_conv.applies(w_shape) is expected
    x = np.zeros((1, w_shape[1], 8, 8))
    _, cache = fast_layers.conv_forward_fast(x, np.zeros(w_shape), np.zeros(8), {"pad": 1})
    assert (cache[4] == "window") is expected


@pytest.mark.parametrize("w_shape, param, x_hw", [
    ((4, 3, 2, 2), {"stride": 2}, (6, 8)),  # windows tile x: each pixel written once, no fill
    ((4, 3, 1, 1), {}, (5, 7)),  # 1 x 1: tiles too
    ((4, 8, 1, 1), {}, (5, 7)),  # 1 x 1 on 8 channels: pointwise, dx straight from the product
    ((4, 3, 2, 2), {"stride": 3}, (8, 5)),  # disjoint taps with gaps between windows
    ((4, 3, 1, 1), {"stride": 2, "pad": 1}, (5, 5)),  # disjoint, padded
    ((4, 2, 2, 2), {"stride": 3, "dilation": 2}, (9, 6)),  # disjoint, gaps inside windows
    ((4, 3, 3, 3), {"stride": 2, "pad": 1}, (7, 9))])  # overlapping windows: adds
def test_window_col2im_writes_every_pixel_of_a_garbage_dx(w_shape, param, x_hw):
    """The window path's dx over a buffer full of NaN (fresh np.empty memory often comes
    zeroed, which would hide a pixel left unwritten): equal to the naive layer's."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, w_shape[1], *x_hw))
    w, b = rng.standard_normal(w_shape), np.zeros(w_shape[0])
    out, cache = layers.conv_forward_naive(x, w, b, param)
    dout = rng.standard_normal(out.shape)
    geometry = conv_geometry(x.shape, w.shape, param)
    plan = fast_layers._plan(x.shape, w.shape, *geometry)
    dx = np.full(x.shape, np.nan)
    dW_row = window_conv.backward(x, dout, w.reshape(w_shape[0], -1), plan, dx)
    dx_naive, dw_naive, db_naive = layers.conv_backward_naive(dout, cache)
    assert_allclose(dx, dx_naive, rtol=1e-10, atol=1e-12)
    assert_allclose(dW_row[:, :-1].reshape(w_shape), dw_naive, rtol=1e-10, atol=1e-12)
    assert_allclose(dW_row[:, -1], db_naive, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("w_shape, param, expected", [
    ((16, 8, 1, 1), {}, True), ((64, 64, 1, 1), {}, True), ((8, 512, 1, 1), {}, True),
    ((8, 8, 1, 1), {"dilation": 3}, True),  # (a 1 x 1 filter has no gaps to dilate)
    ((17, 8, 1, 1), {}, False),  # more than two filters per channel
    ((64, 16, 1, 1), {}, False), ((6, 3, 1, 1), {}, False),  # under 8 channels
    ((8, 8, 1, 1), {"stride": 2}, False), ((8, 8, 1, 1), {"pad": 1}, False),
    ((8, 8, 3, 3), {}, False)])
def test_the_pointwise_rule(w_shape, param, expected):
    """Which convolutions use the images as their own columns (``window_conv._pointwise``)."""
    x_shape = (1, w_shape[1], 7, 7)
    plan = fast_layers._plan(x_shape, w_shape, *conv_geometry(x_shape, w_shape, param))
    assert window_conv._pointwise(plan, w_shape[0]) is expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C, F, relu, need_dx", [
    (8, 16, False, True), (8, 16, True, True), (32, 32, True, False), (24, 5, False, False),
    (6, 12, False, True), (8, 17, True, True)])  # (the last two: not pointwise)
def test_a_pointwise_convolution_skips_the_columns(monkeypatch, dtype, C, F, relu, need_dx):
    """A 1 x 1 convolution that ``_pointwise`` takes builds no columns in either pass, one it
    does not take builds them; both equal the naive layer (ReLU inside or not; with and
    without dx), including on a batch split across threads into blocks of 2 images."""
    for name in ("BLOCK_BYTES", "BACKWARD_BLOCK_BYTES"):
        monkeypatch.setattr(gemm_conv, name, 2 * (C + 1) * 30 * np.dtype(dtype).itemsize)
    columns = []
    real = window_conv._columns
    monkeypatch.setattr(window_conv, "_columns",
                        lambda *a, **k: columns.append(1) or real(*a, **k))
    rng = np.random.default_rng(C + F)
    x = rng.standard_normal((7, C, 5, 6)).astype(dtype)
    w = rng.standard_normal((F, C, 1, 1)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    parallel.set_num_threads(2)
    try:
        out, cache = fast_layers.conv_forward_fast(x, w, b, {}, relu=relu)
        dout = rng.standard_normal(out.shape).astype(dtype)
        grads = fast_layers.conv_backward_fast(dout, cache, need_dx=need_dx,
                                               relu_out=out if relu else None)
    finally:
        parallel.set_num_threads(None)
    pointwise = C >= 8 and F <= 2 * C
    assert cache[4] == "window" and bool(columns) is not pointwise
    ref, ref_cache = layers.conv_forward_naive(x.astype(np.float64), w.astype(np.float64),
                                               b.astype(np.float64), {})
    d_ref = dout.astype(np.float64)
    if relu:
        d_ref = d_ref * (ref > 0)
        ref = np.maximum(ref, 0)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    assert out.dtype == dtype
    assert_allclose(out, ref, **tol)
    want = layers.conv_backward_naive(d_ref, ref_cache)
    if not need_dx:
        assert grads[0] is None
    for got, expected in zip(grads, want, strict=True):
        if got is not None:
            assert got.dtype == dtype
            assert_allclose(got, expected, **tol)


def test_relu_into_compares_with_shared_read_only_zeros():
    """The zeros ``relu_into`` compares with are kept between calls: nobody may write to them,
    or every later ReLU would clip at the wrong value."""
    x = np.arange(-6.0, 6.0, dtype=np.float32).reshape(2, 2, 3)
    out = np.empty_like(x)
    assert layers.relu_into(x, out) is out
    assert_array_equal(out, np.where(x > 0, x, 0))
    zeros = layers._zeros_operand(x)
    assert zeros is layers._zeros_operand(x.copy())  # the same array for the same shape
    assert not zeros.flags.writeable
    with pytest.raises(ValueError):
        zeros += 1
    layers.relu_into(x, x)  # in place
    assert_array_equal(x, out)


@pytest.mark.parametrize("w_shape, stride, dilation, expected", [
    ((8, 64, 7, 7), 2, 1, True), ((8, 3, 5, 5), 2, 1, True), ((8, 8, 3, 3), 3, 1, True),
    ((8, 3, 3, 3), 1, 1, True),  # few taps: the window path's own
    ((8, 8, 3, 3), 1, 1, False), ((8, 3, 7, 7), 1, 1, False), ((8, 64, 3, 3), 2, 2, False)])
def test_the_window_path_takes_the_forward_pass_of_strided_layers(w_shape, stride, dilation,
                                                                  expected):
    assert window_conv.forward_applies(w_shape, stride, dilation) is expected


@pytest.mark.parametrize("over_mec_bound, forward", [(True, "window_conv.forward"),
                                                     (False, "mec_conv.forward_nchw")])
def test_a_strided_layer_runs_forward_on_the_window_path_or_mec_and_backward_on_gemm(
        over_mec_bound, forward, monkeypatch):
    """Each pass calls the path the rules name, and the gradients are the naive layer's: the
    forward pass is ``mec_conv.forward_nchw``'s where a row's product is at most
    ``mec_conv.MAX_ROW_PRODUCT``, else the window path's."""
    calls = []
    for label, module, names in (("window_conv", window_conv, ("forward", "backward")),
                                 ("gemm_conv", gemm_conv, ("forward", "backward")),
                                 ("mec_conv", mec_conv, ("forward", "forward_nchw"))):
        for name in names:
            real = getattr(module, name)

            def spy(*args, _real=real, _name=f"{label}.{name}", **kwargs):
                calls.append(_name)
                return _real(*args, **kwargs)

            monkeypatch.setattr(module, name, spy)
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 8, 11, 11)), rng.standard_normal((4, 8, 5, 5)), np.ones(4)
    W_out = 6
    monkeypatch.setattr(mec_conv, "MAX_ROW_PRODUCT", w.size * W_out - over_mec_bound)
    param = {"stride": 2, "pad": 2}
    out, cache = fast_layers.conv_forward_fast(x, w, b, param)
    assert set(calls) == {forward} and cache[4] == "gemm"
    calls.clear()
    dout = rng.standard_normal(out.shape)
    grads = fast_layers.conv_backward_fast(dout, cache)
    assert set(calls) == {"gemm_conv.backward"}
    ref, ref_cache = layers.conv_forward_naive(x, w, b, param)
    assert_allclose(out, ref, rtol=1e-10)
    for got, want in zip(grads, layers.conv_backward_naive(dout, ref_cache), strict=True):
        assert_allclose(got, want, rtol=1e-10, atol=1e-12)
