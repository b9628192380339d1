"""Best-of-several timings of a layer's forward and backward passes, for the notebooks' speed parts.

A single timing on a shared machine measures the machine as much as the code: another process
can stall any one run. ``best_time`` runs a call several times (``timeit.repeat``) and keeps the
fastest run, the one least disturbed; ``time_layer`` does that for a layer's forward pass and,
separately, for its backward pass on the forward's cache.
"""

from __future__ import annotations

import contextlib
import timeit

import numpy as np
from threadpoolctl import threadpool_limits

from .shapes import check_int


def best_time(fn, repeats, number=1):
    """
    Seconds per call of ``fn()``: the fastest of ``repeats`` runs of ``number`` calls each,
    after one untimed call (which wakes up thread pools and fills caches).

    Raises ValueError when repeats or number is not an integer >= 1.
    """
    repeats = check_int(repeats, "repeats", 1)
    number = check_int(number, "number", 1)
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeats)) / number


def time_layer(forward, backward, args, repeats, number=1, seed=0, blas_threads=None):
    """
    Best-of-``repeats`` seconds per call of a layer's forward and backward pass.

    Inputs:
    - forward: function called as ``forward(*args)``, returning ``(out, cache)``
    - backward: function called as ``backward(dout, cache)``, or None to time the forward only
    - args: tuple of the forward's arguments
    - repeats, number: as in best_time
    - seed: seed of the random upstream gradient ``dout`` (shape and dtype of ``out``)
    - blas_threads: if given, numpy's BLAS (its matrix products) is held to this many threads
      while timing (threadpoolctl): on a busy machine, BLAS threads waiting for a core can stall
      one small matrix product for milliseconds, in every run

    Returns:
    - dict {"forward": seconds} plus {"backward": seconds} when backward is given; the backward
      pass is timed alone, on the cache of an untimed forward call.
    """
    if blas_threads is None:
        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(limits=check_int(blas_threads, "blas_threads", 1),
                                  user_api="blas")
    with limit:
        out, cache = forward(*args)
        times = {"forward": best_time(lambda: forward(*args), repeats, number)}
        if backward is not None:
            dout = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
            times["backward"] = best_time(lambda: backward(dout, cache), repeats, number)
    return times
