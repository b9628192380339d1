"""Tests for cs231n_lib/parallel.py: batch slices, the parallel region (threads, BLAS held to one
thread, fallbacks) and the thread-count setting."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from cs231n_lib import parallel


@pytest.fixture(autouse=True)
def restore_settings(monkeypatch):
    """Every test starts from the default thread count and leaves it so."""
    monkeypatch.delenv(parallel.ENV_VAR, raising=False)
    parallel.set_num_threads(None)
    yield
    parallel.set_num_threads(None)


def blas_threads():
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


@pytest.mark.parametrize("n,threads", [(1, 2), (2, 2), (3, 2), (7, 3), (64, 2), (5, 8)])
def test_batch_slices_cover_the_batch_in_near_equal_parts(n, threads):
    parallel.set_num_threads(threads)
    slices = parallel.batch_slices(n, work=1e12)
    assert len(slices) == min(n, parallel.SLICES_PER_THREAD * threads)
    covered = [i for s in slices for i in range(n)[s]]
    assert covered == list(range(n))  # contiguous, in order, each image once
    sizes = [s.stop - s.start for s in slices]
    assert max(sizes) - min(sizes) <= 1


def test_small_work_stays_in_one_slice():
    parallel.set_num_threads(4)
    assert parallel.batch_slices(64, work=parallel.MIN_WORK - 1) == [slice(0, 64)]
    assert len(parallel.batch_slices(64, work=2 * parallel.MIN_WORK)) == 2
    most = parallel.SLICES_PER_THREAD * 4
    assert len(parallel.batch_slices(64, work=100 * parallel.MIN_WORK)) == most


def test_thread_count_from_setting_then_environment_then_cpus(monkeypatch):
    import os

    assert parallel.get_num_threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(parallel.ENV_VAR, "3")
    assert parallel.get_num_threads() == 3
    parallel.set_num_threads(1)
    assert parallel.get_num_threads() == 1
    parallel.set_num_threads(None)
    assert parallel.get_num_threads() == 3


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_thread_counts_are_rejected_naming_the_value(bad):
    with pytest.raises(ValueError, match=f"n={bad!r}.*integer >= 1"):
        parallel.set_num_threads(bad)


def test_bad_environment_value_is_rejected_naming_it(monkeypatch):
    monkeypatch.setenv(parallel.ENV_VAR, "lots")
    with pytest.raises(ValueError, match="CS231N_NUM_THREADS='lots'"):
        parallel.get_num_threads()


def test_parallel_region_uses_several_threads_with_blas_held_to_one():
    parallel.set_num_threads(3)
    slices = [slice(0, 3), slice(3, 6), slice(6, 9)]
    seen = []

    def part(s, tag):
        seen.append((threading.get_ident(), blas_threads()))
        time.sleep(0.05)  # overlap: every slice is still running when the others start
        return s.start, tag

    before = blas_threads()
    with parallel.Batch(slices) as batch:
        results = batch.map(part, ["a", "b", "c"])
    assert results == [(0, "a"), (3, "b"), (6, "c")]  # in slice order
    assert len({ident for ident, _ in seen}) == 3
    assert threading.get_ident() in {ident for ident, _ in seen}  # the caller works too
    assert before, "numpy's BLAS is not controllable by threadpoolctl"
    assert all(inside == {1} for _, inside in seen)
    assert blas_threads() == before  # restored


def test_a_region_too_small_to_split_runs_in_the_caller_with_blas_held_to_one():
    """Its products are too small for BLAS's threads too, which would spin on the cores
    through the layers after it."""
    parallel.set_num_threads(2)
    slices = parallel.batch_slices(4, work=parallel.MIN_WORK)
    assert slices == [slice(0, 4)]
    before = blas_threads()
    assert before != {1}, "BLAS runs on one thread already: nothing to see"
    with parallel.Batch(slices) as batch:
        assert batch.map(lambda s: (threading.get_ident(), blas_threads())) == [
            (threading.get_ident(), {1})]
    assert blas_threads() == before  # restored


@pytest.mark.parametrize("extra, held", [(0, False), (1, True)])
def test_a_serial_region_holds_blas_only_when_its_work_could_wake_blas_threads(extra, held):
    """OpenBLAS runs products up to BLAS_ONE_THREAD_WORK multiply-adds on one thread: a region
    with no more work than that leaves BLAS as it is (holding it costs ~8 us a region)."""
    parallel.set_num_threads(2)
    work = parallel.BLAS_ONE_THREAD_WORK + extra
    slices = parallel.batch_slices(4, work)
    assert slices == [slice(0, 4)]
    before = blas_threads()
    with parallel.Batch(slices, work) as batch:
        assert batch.map(lambda s: blas_threads()) == [{1} if held else before]
    assert blas_threads() == before


def test_the_layers_give_their_regions_their_work(monkeypatch):
    """A tiny network's loss (a gradient check calls it thousands of times) holds BLAS in none
    of its regions; ThreeLayerConvNet's last affine layer, 128 x 500 -> 10, does in each pass
    (one product of 640,000 multiply-adds forward, two backward)."""
    from cs231n_lib import layers
    from cs231n_lib.classifiers.cnn import ThreeLayerConvNet

    parallel.set_num_threads(2)
    entered = []
    real = parallel._blas_limit
    monkeypatch.setattr(parallel, "_blas_limit", lambda: entered.append(1) or real())
    rng = np.random.default_rng(0)
    model = ThreeLayerConvNet(input_dim=(3, 16, 16), num_filters=3, filter_size=3,
                              hidden_dim=7)
    model.loss(rng.standard_normal((2, 3, 16, 16)), rng.integers(0, 10, 2))
    assert entered == []
    x, w = rng.standard_normal((128, 500)), rng.standard_normal((500, 10))
    out, cache = layers.affine_forward(x, w, np.zeros(10))
    assert entered == [1]
    layers.affine_backward(np.ones_like(out), cache)
    assert entered == [1, 1]


def test_a_one_image_region_leaves_blas_its_threads():
    """One image: BLAS's threads are the only way its products use several cores."""
    parallel.set_num_threads(2)
    before = blas_threads()
    with parallel.Batch(parallel.batch_slices(1, work=1e12)) as batch:
        assert batch.map(lambda s: (threading.get_ident(), blas_threads())) == [
            (threading.get_ident(), before)]


def test_a_held_block_stays_held_while_another_threads_region_ends():
    """Regions and ``blas_held`` blocks share one count: the limit is restored when the last
    of them ends, whichever thread that is."""
    parallel.set_num_threads(2)
    before = blas_threads()
    entered, release = threading.Event(), threading.Event()
    seen = []

    def region():
        with parallel.Batch(parallel.batch_slices(4, work=1e12)) as batch:
            entered.set()
            release.wait(5)
            batch.map(lambda s: None)

    user = threading.Thread(target=region)
    user.start()
    assert entered.wait(5)
    with parallel.blas_held():
        release.set()
        user.join()  # the region has ended
        seen.append(blas_threads())
    assert seen == [{1}]
    assert blas_threads() == before


def test_serial_block_runs_its_regions_in_the_caller_then_restores_threads():
    parallel.set_num_threads(3)
    slices = [slice(0, 3), slice(3, 6), slice(6, 9)]

    def idents():
        with parallel.Batch(slices) as batch:
            return set(batch.map(lambda s: (time.sleep(0.02), threading.get_ident())[1]))

    with parallel.serial():
        assert idents() == {threading.get_ident()}
        with parallel.serial():  # nests
            assert idents() == {threading.get_ident()}
        assert idents() == {threading.get_ident()}
    assert len(idents()) == 3  # threads again after the block
    with pytest.raises(RuntimeError), parallel.serial():
        raise RuntimeError("boom")
    assert len(idents()) == 3  # and after an error


def test_a_region_says_how_many_threads_it_runs_on():
    """``Batch.threads``: the region's threads, 1 when it runs serially (one slice, a nested
    region, a ``serial`` block); what a library with its own threads may use inside it."""
    parallel.set_num_threads(3)
    slices = [slice(0, 3), slice(3, 6), slice(6, 9)]
    with parallel.Batch(slices) as batch:
        assert batch.threads == 3
        with parallel.Batch(slices) as inner:  # (nested in the caller's own thread)
            assert inner.threads == 1
        assert batch.map(lambda s: _inner_threads(slices)) == [1, 1, 1]
    with parallel.Batch(slices[:2]) as batch:
        assert batch.threads == 2
    with parallel.Batch([slice(0, 9)]) as batch:
        assert batch.threads == 1
    with parallel.serial(), parallel.Batch(slices) as batch:
        assert batch.threads == 1
    parallel.set_num_threads(1)
    with parallel.Batch(slices) as batch:
        assert batch.threads == 1


def _inner_threads(slices):
    with parallel.Batch(slices) as batch:
        return batch.threads


def test_memory_measurement_runs_its_call_serially():
    from cs231n_lib import memory_measure

    parallel.set_num_threads(2)
    slices = [slice(0, 1), slice(1, 2)]

    def region():
        with parallel.Batch(slices) as batch:
            return set(batch.map(lambda s: (time.sleep(0.02), threading.get_ident())[1]))

    assert memory_measure.traced_call(region)[0] == {threading.get_ident()}


def test_nested_regions_run_serially_without_deadlock():
    parallel.set_num_threads(2)
    outer = parallel.batch_slices(4, work=1e12)

    def inner(s):
        with parallel.Batch(parallel.batch_slices(4, work=1e12)) as batch:
            return set(batch.map(lambda t: threading.get_ident()))

    with parallel.Batch(outer) as batch:
        idents = batch.map(inner)
    assert all(len(ids) == 1 for ids in idents)  # each inner region stayed in its thread


def test_concurrent_regions_from_two_user_threads_both_finish_correctly():
    parallel.set_num_threads(2)
    out = {}

    def user(name, n):
        with parallel.Batch(parallel.batch_slices(n, work=1e12)) as batch:
            out[name] = batch.map(lambda s: (time.sleep(0.02), list(range(n)[s]))[1])

    threads = [threading.Thread(target=user, args=(k, n)) for k, n in (("a", 4), ("b", 6))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [i for part in out["a"] for i in part] == list(range(4))
    assert [i for part in out["b"] for i in part] == list(range(6))


def test_an_error_in_a_thread_is_raised_after_every_thread_finished():
    parallel.set_num_threads(2)
    finished = []

    def part(s):
        if s.start == 0:
            finished.append("caller")
            return 0
        time.sleep(0.05)
        finished.append("worker")
        raise ArithmeticError(f"slice {s}")

    with pytest.raises(ArithmeticError, match="slice"):
        with parallel.Batch(parallel.batch_slices(2, work=1e12)) as batch:
            batch.map(part)
    assert sorted(finished) == ["caller", "worker"]
    with parallel.Batch(parallel.batch_slices(2, work=1e12)) as batch:  # still usable
        assert batch.map(lambda s: s.start) == [0, 1]


def test_after_an_error_no_new_slice_is_started():
    """An error (or Ctrl-C) in one slice stops the others from taking more work."""
    parallel.set_num_threads(2)
    started = []

    def part(s):
        started.append(s.start)
        if s.start == 0:
            raise KeyboardInterrupt
        time.sleep(0.02)

    with pytest.raises(KeyboardInterrupt):
        with parallel.Batch([slice(i, i + 1) for i in range(20)]) as batch:
            batch.map(part)
    assert 0 in started and len(started) <= 3  # the failing slice and what had already begun


def test_no_thread_to_be_had_falls_back_to_the_caller(monkeypatch):
    """A sandbox's process limit makes thread creation fail: the work is done anyway."""
    parallel.set_num_threads(3)

    class NoThreads:
        def submit(self, *args):
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(parallel, "_threads_failed", False)
    monkeypatch.setattr(parallel, "_get_pool", lambda workers: NoThreads())
    with parallel.Batch(parallel.batch_slices(6, work=1e12)) as batch:
        results = batch.map(lambda s: (threading.get_ident(), s.start))
    assert results == [(threading.get_ident(), s.start)
                       for s in parallel.batch_slices(6, work=1e12)]
    assert parallel._threads_failed  # later regions do not try again


def test_fast_conv_in_threads_equals_one_thread(monkeypatch):
    """The same layer, split across 3 threads or not: equal up to the order of the sums."""
    from cs231n_lib import fast_layers

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 16, 9, 9))
    w = rng.standard_normal((5, 16, 3, 3))
    b = rng.standard_normal(5)
    dout = rng.standard_normal((7, 5, 9, 9))
    results = {}
    monkeypatch.setattr(parallel, "MIN_WORK", 1)
    for threads in (1, 3):
        parallel.set_num_threads(threads)
        out, cache = fast_layers.conv_forward_fast(x, w, b, {"pad": 1})
        # the slices the backward pass will reuse
        assert len(cache[5][1]) == min(7, parallel.SLICES_PER_THREAD * threads)
        results[threads] = (out, *fast_layers.conv_backward_fast(dout, cache))
    for one, three in zip(results[1], results[3], strict=True):
        np.testing.assert_allclose(three, one, rtol=1e-12, atol=1e-12)


def _fake_caches(root, caches):
    for i, (level, kind, size) in enumerate(caches):
        folder = root / f"index{i}"
        folder.mkdir()
        for name, value in (("level", level), ("type", kind), ("size", size)):
            (folder / name).write_text(f"{value}\n")


@pytest.mark.parametrize("caches, expected", [
    ([("1", "Data", "48K"), ("1", "Instruction", "32K"), ("2", "Unified", "2048K"),
      ("3", "Unified", "491520K")], 2048 << 10),
    ([("1", "Data", "32K"), ("2", "Data", "1M")], 1 << 20),
    ([("1", "Data", "32K"), ("2", "Instruction", "512K")], 777),  # no data cache at level 2
    ([("2", "Unified", "lots")], 777),                             # a size it cannot read
    ([], 777),
])
def test_l2_cache_bytes_reads_sysfs(tmp_path, monkeypatch, caches, expected):
    _fake_caches(tmp_path, caches)
    monkeypatch.setattr(parallel, "CACHE_SYSFS", str(tmp_path))
    assert parallel.l2_cache_bytes(default=777) == expected


def test_l2_cache_bytes_without_sysfs(tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "CACHE_SYSFS", str(tmp_path / "absent"))
    assert parallel.l2_cache_bytes() == 1 << 20


def test_chunk_bytes_is_the_l2_cache_within_bounds():
    from cs231n_lib import layers

    assert layers.CHUNK_BYTES == min(max(parallel.l2_cache_bytes(), 256 << 10), 4 << 20)
