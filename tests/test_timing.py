"""Best-of-several timings for the notebooks' speed parts (cs231n_lib.timing)."""

import itertools

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from cs231n_lib import timing


def test_best_time_keeps_the_fastest_run_after_a_warm_up_call(monkeypatch):
    runs, calls = iter([0.3, 0.1, 0.2]), []
    monkeypatch.setattr(timing.timeit, "repeat",
                        lambda fn, number, repeat: [next(runs) for _ in range(repeat)])
    assert timing.best_time(lambda: calls.append(1), repeats=3, number=2) == pytest.approx(0.05)
    assert calls == [1]  # the untimed warm-up call


@pytest.mark.parametrize("kwargs, match", [({"repeats": 0}, "repeats=0 must be >= 1"),
                                           ({"repeats": 2, "number": 1.5}, "number=1.5")])
def test_best_time_checks_its_counts(kwargs, match):
    with pytest.raises(ValueError, match=match):
        timing.best_time(lambda: None, **kwargs)


def test_time_layer_times_backward_on_the_forward_cache():
    calls = []

    def forward(x):
        calls.append("forward")
        return 2 * x, ("cache", x)

    def backward(dout, cache):
        calls.append("backward")
        assert cache[0] == "cache" and dout.shape == (2, 3) and dout.dtype == np.float32
        return 2 * dout

    times = timing.time_layer(forward, backward, (np.ones((2, 3), np.float32),), repeats=4)
    assert set(times) == {"forward", "backward"} and all(t > 0 for t in times.values())
    # one untimed forward for the cache, then per pass one untimed call and 4 timed runs
    assert [k for k, _ in itertools.groupby(calls)] == ["forward", "backward"]
    assert calls.count("forward") == 6 and calls.count("backward") == 5
    assert set(timing.time_layer(forward, None, (np.ones(2),), repeats=1)) == {"forward"}


def test_time_layer_can_hold_blas_to_one_thread():
    seen = []

    def forward(x):
        seen.append({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
        return x, None

    timing.time_layer(forward, None, (np.ones(2),), repeats=2, blas_threads=1)
    assert seen and all(threads == {1} for threads in seen)  # numpy's BLAS found, held to 1
    with pytest.raises(ValueError, match="blas_threads=0 must be >= 1"):
        timing.time_layer(forward, None, (np.ones(2),), repeats=1, blas_threads=0)
