"""Benchmark: naive vs fast vs im2col convolution and pooling, against torch when installed.

Run ``python bench/conv.py`` (or ``make bench``, which installs the optional torch==2.13.0).
Everything is measured in ONE run with 2 BLAS threads, interleaved: every round times each
implementation of each case (in a fresh random order, after a pause and 50 ms of untimed calls)
a few times and keeps the best call, and the tables report medians over rounds, so a slow
moment of a shared machine hits all implementations alike. Speed claims are the ratios printed
here, never absolute times. numpy's own GEMM rate is measured in the same rounds and each
convolution's GFLOP/s (``conv_flops``: taps on the zero padding not counted) is shown as a
share of it; the page faults per forward + backward call are counted (fresh memory is what a
numpy pipeline pays most for on a virtual machine). The load average is printed before and
after: on a machine busy with other work the ratios say more about the load than about the
code. So is the OpenBLAS kernel numpy runs (its GEMM is the fast layers' engine): some
machines pin an older one with OPENBLAS_CORETYPE (for old OpenBLAS builds that misbehave on
new processors); ``make bench`` unsets it and OPENBLAS_L2_SIZE for its own command, so that
numpy's OpenBLAS picks the kernel for this CPU, as it does on a machine that sets neither.

Targets (from the project's issue):
- fast conv forward+backward within 1.5x of torch in float32 on shapes A and B, and no slower
  than torch in float64;
- fast conv at least 100x faster than the naive loops on the CS231n notebook shape;
- max pool 2x2/2 forward+backward within 2x of torch on (64, 64, 32, 32).
"""

from __future__ import annotations

import os

# Thread counts must be fixed before numpy / torch load their thread pools.
THREADS = 2
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(THREADS)

import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout
from cs231n_lib import fast_layers, layers, parallel, shapes  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF

    torch.set_num_threads(THREADS)
except ImportError:  # torch is an optional baseline (the `bench` extra)
    torch = None

ROUNDS = 15  # interleaved rounds; medians are taken over them
CALLS = 3  # calls per implementation per round (the median call is kept)
NAIVE_ROUNDS = 3  # the naive loops are slow: time them in the first rounds only
# Pause before timing each implementation: after a multi-threaded call, OpenBLAS's idle threads
# spin on the cores for about 2**28 cycles (~0.1 s) and torch's OpenMP threads for a while too;
# without the pause each implementation would be timed next to the previous one's spinning
# threads (measured: up to 2x slower, whichever came second). The pause is a busy wait of this
# thread, not a sleep: on a virtual machine, cores left idle for 0.15 s came back slow for the
# next ~50 ms of work (measured: 1.5x on the fast conv), which a sleep would add to every timing.
SETTLE = 0.15
# Untimed calls before timing, for at least this long (at least one call): the pause above
# leaves every core but this thread's idle, and on a virtual machine an idle core runs the next
# ~50 ms of work slower (measured: the fast conv's second thread, 1.3x on its forward pass).
WARMUP = 0.05

SHAPE_A = ((64, 3, 32, 32), (32, 3, 3, 3), {"stride": 1, "pad": 1})
SHAPE_B = ((64, 32, 16, 16), (64, 32, 3, 3), {"stride": 1, "pad": 1})
NOTEBOOK = ((100, 3, 31, 31), (25, 3, 3, 3), {"stride": 2, "pad": 1})
POOL_X = (64, 64, 32, 32)
POOL_PARAM = {"pool_height": 2, "pool_width": 2, "stride": 2}


@dataclass
class Impl:
    """One implementation of a case: a forward callable and a backward callable (no args)."""

    forward: object
    backward: object
    rounds: int = ROUNDS
    times: dict = field(default_factory=lambda: {"fwd": [], "bwd": []})
    faults: list = field(default_factory=list)  # page faults per forward + backward call

    def median(self, part):
        return float(np.median(self.times[part])) if self.times[part] else float("nan")

    @property
    def total(self):
        return self.median("fwd") + self.median("bwd")


@dataclass
class Case:
    """A layer on one shape and dtype, with the implementations to compare."""

    name: str
    dtype: type
    flops: float  # forward FLOPs; the backward pass does twice as many
    impls: dict


def taps_on_image(size, field, stride, pad, dilation=1):
    """Along one axis: the pairs (output position, filter tap) whose input pixel lies on the
    image, not on its zero padding."""
    out = shapes.output_size(size, field, stride, pad, dilation)
    at = np.arange(out)[:, None] * stride + np.arange(field)[None, :] * dilation - pad
    return int(np.count_nonzero((at >= 0) & (at < size)))


def conv_flops(x_shape, w_shape, conv_param):
    """A convolution's forward FLOPs: two (a multiply and an add) for every filter tap that
    reads a pixel of the image. Taps on the zero padding are not counted: they add nothing,
    and a direct convolution (torch's oneDNN) skips them, while im2col and the fast layers
    multiply them like any other. (Counted with them, bench/layers.py's stride-2 7x7 layer on
    15 x 15 images has 1.36x these FLOPs, and torch's share of numpy's GEMM rate came out above
    100%.) The backward pass does twice as many: dw and dx each multiply the same pairs once."""
    N, C, H, W = x_shape
    F, _, HH, WW = w_shape
    stride, pad = conv_param["stride"], conv_param["pad"]
    dilation = conv_param.get("dilation", 1)
    return (2.0 * N * F * C * taps_on_image(H, HH, stride, pad, dilation)
            * taps_on_image(W, WW, stride, pad, dilation))


def numpy_conv(forward, backward, x, w, b, conv_param):
    """Impl for a numpy conv layer: backward reuses the cache of one forward call."""
    out, cache = forward(x, w, b, conv_param)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(out.dtype)
    return Impl(lambda: forward(x, w, b, conv_param), lambda: backward(dout, cache))


def torch_conv(x, w, b, conv_param):
    """Impl for torch.nn.functional.conv2d with autograd (backward = autograd.grad of x, w, b)."""
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    stride, pad = conv_param["stride"], conv_param["pad"]
    out = TF.conv2d(xt, wt, bt, stride=stride, padding=pad)
    dout = torch.randn_like(out)
    return Impl(lambda: TF.conv2d(xt, wt, bt, stride=stride, padding=pad),
                lambda: torch.autograd.grad(out, (xt, wt, bt), dout, retain_graph=True))


def conv_case(label, shape, dtype, naive=False):
    x_shape, w_shape, conv_param = shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    flops = conv_flops(x_shape, w_shape, conv_param)
    impls = {
        "fast": numpy_conv(fast_layers.conv_forward_fast, fast_layers.conv_backward_fast,
                           x, w, b, conv_param),
        "im2col": numpy_conv(fast_layers.conv_forward_im2col, fast_layers.conv_backward_im2col,
                             x, w, b, conv_param),
    }
    if naive:
        impls["naive"] = numpy_conv(layers.conv_forward_naive, layers.conv_backward_naive,
                                    x, w, b, conv_param)
        impls["naive"].rounds = NAIVE_ROUNDS
    if torch is not None:
        impls["torch"] = torch_conv(x, w, b, conv_param)
    name = f"conv {label} x={x_shape} w={w_shape} s{conv_param['stride']}p{conv_param['pad']}"
    return Case(name, dtype, flops, impls)


def pool_case(dtype):
    x = np.random.default_rng(0).standard_normal(POOL_X).astype(dtype)
    out, cache = fast_layers.max_pool_forward_fast(x, POOL_PARAM)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    impls = {"fast": Impl(lambda: fast_layers.max_pool_forward_fast(x, POOL_PARAM),
                          lambda: fast_layers.max_pool_backward_fast(dout, cache))}
    _, naive_cache = layers.max_pool_forward_naive(x, POOL_PARAM)
    impls["naive"] = Impl(lambda: layers.max_pool_forward_naive(x, POOL_PARAM),
                          lambda: layers.max_pool_backward_naive(dout, naive_cache),
                          rounds=NAIVE_ROUNDS)
    if torch is not None:
        xt = torch.tensor(x, requires_grad=True)
        out_t = TF.max_pool2d(xt, 2, 2)
        dout_t = torch.tensor(dout)
        impls["torch"] = Impl(lambda: TF.max_pool2d(xt, 2, 2),
                              lambda: torch.autograd.grad(out_t, xt, dout_t, retain_graph=True))
    return Case(f"max pool 2x2/2 x={POOL_X}", dtype, float(x.size), impls)


def gemm_impl(dtype, n=1024):
    """numpy's own matrix multiply, timed in the same rounds: the ceiling for a GEMM-based conv."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    return Impl(lambda: a @ a, lambda: None), 2.0 * n ** 3  # (its "bwd" times are ignored)


def timed(fn, calls):
    """Best wall time of ``calls`` calls of fn after untimed calls for at least ``WARMUP``
    seconds, in seconds: each implementation is timed in its own steady state (its memory
    reused, its thread pool awake, every core it uses up to speed), as in a training loop that
    calls it again and again."""
    end = time.perf_counter() + WARMUP
    fn()
    while time.perf_counter() < end:
        fn()
    ts = []
    faults = _minor_faults()
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), (_minor_faults() - faults) / calls


def round_ratios(ours, theirs):
    """ours / theirs round by round (per-round times of two implementations timed in the same
    interleaved rounds, so each pair on the same machine state): their spread shows how far the
    machine's noise moves a ratio. bench/layers.py and bench/train_step.py print their range."""
    return [a / b for a, b in zip(ours, theirs, strict=True)]


def _busy_wait(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _minor_faults():
    """Page faults of this process so far: a fresh array's pages fault in at first touch,
    which on a virtual machine costs more than the arithmetic on them."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def run(cases, gemms):
    """Time every implementation once per round, in a new random order each round: what ran
    just before a call (a large GEMM, a torch call) changes its time, so no implementation may
    always follow the same one."""
    impls = [impl for impl, _ in gemms.values()]
    impls += [impl for case in cases for impl in case.impls.values()]
    order = np.random.default_rng(0)
    for r in tqdm(range(ROUNDS), desc="interleaved rounds"):
        for k in order.permutation(len(impls)):
            impl = impls[k]
            if r < impl.rounds:
                _busy_wait(SETTLE)
                calls = 1 if impl.rounds < ROUNDS else CALLS
                faults = 0.0
                for part, fn in (("fwd", impl.forward), ("bwd", impl.backward)):
                    t, f = timed(fn, calls)
                    impl.times[part].append(t)
                    faults += f
                impl.faults.append(faults)


def machine(cpuinfo="/proc/cpuinfo"):
    """The processor the benchmark ran on: its model (Linux's ``cpuinfo``), the CPUs this
    process may use and one core's L2 cache. Every figure is relative to it (this project's VM
    changed from an AMD EPYC to an Intel Xeon between two runs, and most ratios with it)."""
    model = "unknown model"
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    model = " ".join(value.split())
                    break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    l2 = parallel.l2_cache_bytes(default=0)
    cache = f", L2 {l2 / 2**20:g} MiB per core" if l2 else ""
    return f"CPU: {model}, {cpus} CPUs for this process{cache}"


def blas_kernel():
    """What numpy's BLAS is and which CPU kernel it runs, as threadpoolctl reports it."""
    from threadpoolctl import threadpool_info

    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    # numpy's wheels bundle their BLAS in numpy.libs; a conda numpy links the environment's one
    libs = [lib for lib in blas if "numpy" in lib["filepath"]] or blas
    if not libs:
        return "numpy's BLAS: not found by threadpoolctl"
    lib = libs[0]
    text = (f"numpy's BLAS: {lib['internal_api']} {lib['version']}, "
            f"kernel {lib.get('architecture', '?')}")
    pinned = {v: os.environ[v] for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
              if v in os.environ}
    if pinned:
        text += " (pinned by " + ", ".join(f"{k}={v}" for k, v in pinned.items()) + ")"
    return text


def report(cases, gemms):
    gemm_rate = {dt: flops / impl.median("fwd") / 1e9 for dt, (impl, flops) in gemms.items()}
    print(f"\n{THREADS} BLAS threads, {ROUNDS} interleaved rounds, median over rounds of the "
          f"best of {CALLS} calls; torch {torch.__version__ if torch else 'not installed'}")
    print(machine())
    print(blas_kernel())
    print("numpy GEMM (1024^3): " + ", ".join(
        f"{np.dtype(dt).name} {rate:.0f} GFLOP/s" for dt, rate in gemm_rate.items()))
    print(f"\n{'case':<62} {'dtype':<8} {'impl':<7} {'fwd ms':>8} {'bwd ms':>8} "
          f"{'total':>8} {'GFLOP/s':>8} {'% GEMM':>7} {'faults':>7}")
    for case in cases:
        is_conv = case.name.startswith("conv")
        for name, impl in case.impls.items():
            rate = 3 * case.flops / impl.total / 1e9 if is_conv else float("nan")
            share = 100 * rate / gemm_rate[case.dtype] if is_conv else float("nan")
            print(f"{case.name:<62} {np.dtype(case.dtype).name:<8} {name:<7} "
                  f"{1e3 * impl.median('fwd'):8.2f} {1e3 * impl.median('bwd'):8.2f} "
                  f"{1e3 * impl.total:8.2f} {rate:8.1f} {share:6.0f}% "
                  f"{np.median(impl.faults):7.0f}")

    print("\nRatios (forward + backward time; lower is better for fast/torch)")
    verdicts = []
    for case in cases:
        impls, dt = case.impls, np.dtype(case.dtype).name
        fast = impls["fast"].total
        line = f"  {case.name:<62} {dt:<8}"
        if "torch" in impls:
            ratio = fast / impls["torch"].total
            line += f" fast/torch {ratio:5.2f}"
            limit = _torch_limit(case)
            if limit is not None:
                verdicts.append((f"{case.name} {dt}: fast/torch {ratio:.2f} <= {limit}",
                                 ratio <= limit))
        if "im2col" in impls:
            line += f"  im2col/fast {impls['im2col'].total / fast:5.2f}"
        if "naive" in impls:
            speedup = impls["naive"].total / fast
            line += f"  naive/fast {speedup:7.0f}"
            if case.name.startswith("conv"):  # the target is for the conv layer
                verdicts.append((f"{case.name} {dt}: naive/fast {speedup:.0f} >= 100",
                                 speedup >= 100))
        print(line)
    print("\nTargets")
    for text, ok in verdicts:
        print(f"  [{'met' if ok else 'NOT met'}] {text}")
    if torch is None:
        print("  (torch not installed: the torch targets were not measured; `make bench`)")


def _torch_limit(case):
    """The allowed fast/torch ratio for a case, or None when the issue sets no target."""
    if case.name.startswith("max pool"):
        return 2.0 if case.dtype == np.float32 else None
    if "x=(100, 3, 31, 31)" in case.name:
        return None
    return 1.5 if case.dtype == np.float32 else 1.0


def main():
    cases = []
    for dtype in (np.float32, np.float64):
        cases += [conv_case("A", SHAPE_A, dtype), conv_case("B", SHAPE_B, dtype),
                  conv_case("notebook", NOTEBOOK, dtype, naive=True), pool_case(dtype)]
    gemms = {dtype: gemm_impl(dtype) for dtype in (np.float32, np.float64)}
    load_before = os.getloadavg()[0]
    run(cases, gemms)
    report(cases, gemms)
    load_after = os.getloadavg()[0]
    print(f"\n1-minute load average: {load_before:.1f} before, {load_after:.1f} after, on "
          f"{os.cpu_count()} CPUs")
    if max(load_before, load_after) > os.cpu_count():
        print("  WARNING: the machine was busy with other work; rerun on an idle machine.")


if __name__ == "__main__":
    main()
