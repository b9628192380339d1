"""Tests for cs231n_lib/scratch.py: per-thread, per-role buffers reused between calls."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from cs231n_lib import scratch


@pytest.fixture(autouse=True)
def empty():
    scratch.release()
    yield
    scratch.release()


def test_array_has_the_shape_and_dtype_asked_for_and_is_aligned():
    a = scratch.array("t.a", (3, 5, 7), np.float32)
    assert a.shape == (3, 5, 7) and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.ctypes.data % scratch.ALIGN == 0
    a[...] = 1.5  # writeable
    assert a.sum() == 1.5 * a.size


def test_same_role_reuses_memory_and_other_roles_do_not():
    a = scratch.array("t.a", (100,), np.float64)
    again = scratch.array("t.a", (10, 10), np.float64)
    smaller = scratch.array("t.a", (50,), np.float32)
    other = scratch.array("t.b", (100,), np.float64)
    assert np.shares_memory(a, again) and np.shares_memory(a, smaller)
    assert not np.shares_memory(a, other)


def test_a_larger_request_grows_the_buffer():
    small = scratch.array("t.a", (10,), np.float64)
    held = scratch.held_bytes()
    big = scratch.array("t.a", (1000,), np.float64)
    assert big.shape == (1000,) and not np.shares_memory(small, big)
    assert scratch.held_bytes() > held >= small.nbytes


def test_threads_get_their_own_buffers():
    mine = scratch.array("t.a", (100,), np.float64)
    theirs = []
    t = threading.Thread(target=lambda: theirs.append(scratch.array("t.a", (100,), np.float64)))
    t.start()
    t.join()
    assert not np.shares_memory(mine, theirs[0])


def test_release_frees_everything_and_finished_threads_are_forgotten():
    scratch.array("t.a", (1000,), np.float64)
    t = threading.Thread(target=lambda: scratch.array("t.b", (1000,), np.float64))
    t.start()
    t.join()
    assert scratch.held_bytes() >= 2 * 8000
    scratch.array("t.c", (2000,), np.float64)  # a new buffer drops the finished thread's
    assert scratch.held_bytes() < 8000 + 16000 + 2 * scratch.ALIGN + 1
    scratch.release()
    assert scratch.held_bytes() == 0


def test_fast_layers_results_survive_later_calls():
    """Nothing a fast layer returns or caches lives in scratch memory: a second call with other
    data (reusing every scratch buffer) leaves the first call's output and cache intact."""
    from cs231n_lib import fast_layers

    rng = np.random.default_rng(0)
    cases = [((2, 16, 8, 8), (4, 16, 3, 3), {"pad": 1}),  # winograd
             ((2, 3, 9, 9), (4, 3, 3, 3), {"stride": 2, "pad": 1})]  # gemm
    for x_shape, w_shape, conv_param in cases:
        x1, x2 = rng.standard_normal(x_shape), rng.standard_normal(x_shape)
        w, b = rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
        out1, cache1 = fast_layers.conv_forward_fast(x1, w, b, conv_param)
        kept = out1.copy()
        dout = rng.standard_normal(out1.shape)
        grads1 = fast_layers.conv_backward_fast(dout, cache1)
        kept_grads = [g.copy() for g in grads1]
        out2, cache2 = fast_layers.conv_forward_fast(x2, w, b, conv_param)
        fast_layers.conv_backward_fast(rng.standard_normal(out2.shape), cache2)
        np.testing.assert_array_equal(out1, kept)
        for g, k in zip(grads1, kept_grads, strict=True):
            np.testing.assert_array_equal(g, k)
        # and the first cache still gives the first gradients
        for g, k in zip(fast_layers.conv_backward_fast(dout, cache1), kept_grads, strict=True):
            np.testing.assert_array_equal(g, k)
