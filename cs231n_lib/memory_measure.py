"""Measure the memory of a forward pass with ``tracemalloc`` and set it beside the theory.

numpy reports its array buffers to ``tracemalloc``, so the traced memory is the activations,
caches and workspaces a forward pass allocates. The input batch ``X`` is allocated by the caller
before tracing starts and is not counted; the theory below leaves it out the same way.

* retained: memory still held when the pass returns (training: the output plus every cache;
  inference: the output only);
* peak: the high-water mark during the pass, workspaces included (im2col patches, Winograd
  tiles, padded copies) - the gap to the theory is reported, never hidden;
* live (inference only): the largest memory at the moments a layer has produced its output
  while its input is still alive, which ``memory.inference_live`` predicts.
"""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from cs231n_lib import architectures as arch
from cs231n_lib import memory, parallel, scratch
from cs231n_lib.classifiers.convnet import ConvNet

MIB = memory.MIB


def traced_call(fn, *args, **kwargs):
    """Run ``fn(*args, **kwargs)`` under tracemalloc; return (result, bytes still held at
    return, peak bytes during the call).

    The fast layers' scratch buffers (``scratch``), which outlive a call to be reused by the
    next, are freed before the call (so that the peak includes them, as on a first call) and
    again before the held bytes are read (they are the library's, not the result's). The call
    runs its layers in one thread (``parallel.serial``): the figures are the same on any
    number of cores, and no thread hand-off's bookkeeping (a few KiB that vary from run to
    run) is counted as memory the result holds.
    """
    gc.collect()
    scratch.release()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with parallel.serial():
            result = fn(*args, **kwargs)
        scratch.release()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, current - base, peak - base


def measure_forward(model: ConvNet, X, mode: str = "train") -> dict:
    """Bytes retained, peak and (inference) live during one forward pass of ``model`` on ``X``.

    mode "train" runs ``model.forward(X, "train")`` and keeps its caches; mode "test" runs
    ``model.infer(X)``, which keeps none. Scratch buffers are left out of retained and live
    and counted in peak (see ``traced_call``).
    """
    if mode not in ("train", "test"):
        raise ValueError(f"mode={mode!r} must be 'train' or 'test'")
    X = model.as_input(X)  # any dtype conversion happens before tracing
    marks = []

    def live():
        marks.append(tracemalloc.get_traced_memory()[0] - scratch.held_bytes())

    def run():
        start = tracemalloc.get_traced_memory()[0]
        result = model.forward(X, "train") if mode == "train" else model.infer(X, hook=live)
        return result, start

    (result, start), retained, peak = traced_call(run)
    del result
    return {"retained_bytes": retained, "peak_bytes": peak,
            "live_bytes": (max(marks) - start) if marks else None}


def theory(spec: arch.Spec, batch: int, dtype) -> dict:
    """What the accounting predicts for the same pass (input batch excluded)."""
    item = memory.itemsize(dtype)
    return {"train_bytes": item * batch * memory.totals(spec)["activations"],
            "inference_live_bytes": item * batch * memory.inference_live(spec, False),
            "output_bytes": item * batch * int(np.prod(spec.out_shape()))}


def compare(spec: arch.Spec, batch: int = 1, dtype=np.float32, seed: int = 0,
            cache_workspace: bool = False) -> dict:
    """Measure training and inference passes of ``ConvNet(spec)`` on random data vs theory.

    Returns a dict of bytes: theory_*, train_* and test_* measurements, and the gaps
    ``train_peak_gap`` / ``test_peak_gap`` (peak minus theory: the workspaces).
    """
    model = ConvNet(spec, dtype=dtype, seed=seed, cache_workspace=cache_workspace)
    X = np.random.default_rng(seed).standard_normal((batch, *spec.input)).astype(dtype)
    th = theory(spec, batch, dtype)
    train = measure_forward(model, X, "train")
    test = measure_forward(model, X, "test")
    return {
        **{f"theory_{k}": v for k, v in th.items()},
        "train_retained_bytes": train["retained_bytes"],
        "train_peak_bytes": train["peak_bytes"],
        "test_retained_bytes": test["retained_bytes"],
        "test_live_bytes": test["live_bytes"],
        "test_peak_bytes": test["peak_bytes"],
        "train_peak_gap": train["peak_bytes"] - th["train_bytes"],
        "test_peak_gap": test["peak_bytes"] - th["inference_live_bytes"],
    }


def three_volume_experiment(cache_workspace: bool = False) -> dict:
    """The notes' example: three 3x3/64 convs on one 224x224x3 image, float32.

    Theory: training keeps all three [224x224x64] volumes (36.75 MiB), inference only the
    current one (12.25 MiB retained at the end). Returns ``compare``'s dict.
    """
    return compare(arch.three_conv64(), 1, np.float32, cache_workspace=cache_workspace)


def report(result: dict) -> str:
    """The measurements as lines of MiB."""
    return "\n".join(f"{key:<28}{value / MIB:>10.2f} MiB" for key, value in result.items()
                     if value is not None)
