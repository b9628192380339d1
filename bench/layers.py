"""Benchmark: every layer of the library against torch, forward and backward, in float32 and
float64.

Run ``python bench/layers.py`` (``make bench`` runs it after bench/conv.py; ``--quick`` runs
tiny sizes with one round, as the smoke test does; ``--dtype`` and ``--filter`` pick rows).
The layers are those of the project's issue: convolutions 1x1, 3x3, 5x5 and 7x7 at stride 1
and 2 and a dilated 3x3 (dilation 2), each on a 3-channel first layer and on a 64-channel inner
layer; max and average pooling 2x2/2 and overlapping 3x3/2; affine; ReLU; spatial batch
normalisation in train mode; the softmax loss. "Ours" is what a course network calls: the fast
convolution and pooling layers (``fast_layers``) and the layers of ``layers.py``; torch runs the
same layer (torch.nn.functional, backward through autograd) on the same inputs. Every backward
computes the gradients of all inputs on both sides (a first layer's dx included).

Timing follows bench/conv.py (its helpers are imported): 2 threads, interleaved rounds in a fresh
random order, a pause and a warm-up before each timing, the best of a few calls per round and
the median over rounds; what counts is the ratio ours / torch, and, since this project's VM
moves a layer's time by 20-40% from run to run, the range of the ratio over the rounds (each
round times both sides) and, for a row over the target, in how many rounds it is. For the
layers that run on matrix multiplies (convolutions, affine) the table shows each side's useful
FLOPs per second as a share of numpy's own GEMM rate, the best of 20 products 1024^3 at the
start and at the end (the backward pass does twice the forward's FLOPs; a convolution's taps
on the zero padding are not counted, ``conv.conv_flops``). The softmax loss computes its
gradient in the same call as the loss, so it has one row, forward and backward together.

Stride-2 layers run on odd image sizes (31, 15, 33): the course's layers refuse a stride that
does not tile the padded input, where torch would drop the last row and column.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import argtypes  # noqa: E402
import conv  # noqa: E402  (first: it fixes the thread counts before numpy and torch load)
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cs231n_lib import fast_layers, layers  # noqa: E402

torch = conv.torch
if torch is not None:
    import torch.nn.functional as TF

LIMIT = 1.5  # the target: no layer slower than 1.5x torch
GEMM_CALLS = 20  # numpy's GEMM rate: the best of this many products, at the start and the end
DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class Sizes:
    """The shapes of one run (full, or ``--quick``)."""

    batch: int  # images per conv / pool / batch-norm layer
    first: tuple  # (C, H, F): the first layer's channels, image size (stride 1), filters
    inner: tuple  # the same for an inner layer
    pool: tuple  # (C, H) of the pooling layers' input (2x2/2; 3x3/2 runs on H + 1)
    affine: tuple  # (N, D, M)
    relu: tuple  # input shape
    bn: tuple  # input shape
    softmax: tuple  # ((N, classes), ...)
    gemm: int  # n of the n^3 GEMM that measures numpy's rate
    rounds: int


FULL = Sizes(batch=64, first=(3, 32, 32), inner=(64, 16, 64), pool=(64, 32),
             affine=(128, 4096, 512), relu=(64, 64, 32, 32), bn=(64, 64, 32, 32),
             softmax=((128, 10), (128, 1000)), gemm=1024, rounds=5)
QUICK = Sizes(batch=2, first=(3, 8, 4), inner=(8, 8, 8), pool=(4, 8), affine=(4, 32, 8),
              relu=(2, 4, 8, 8), bn=(2, 4, 8, 8), softmax=((4, 10),), gemm=64, rounds=1)
KERNELS = ((1, 1, 1), (3, 1, 1), (5, 1, 1), (7, 1, 1), (1, 2, 1), (3, 2, 1), (5, 2, 1),
           (7, 2, 1), (3, 1, 2))  # (filter size, stride, dilation)


@dataclass
class Row:
    """One layer on one dtype: ours and torch (``conv.Impl``s) and its forward FLOPs when it
    runs on matrix multiplies (0 otherwise); ``fused``: forward and backward in one call."""

    name: str
    dtype: type
    impls: dict
    flops: float = 0.0
    fused: bool = False


def _rng_arrays(dtype, *shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _ours(forward, backward, args, dout_seed=1):
    """Impl of one of our layers: backward reuses the cache of one forward call, with a fixed
    random upstream gradient of the output's shape."""
    out, cache = forward(*args)
    dout, = _rng_arrays(out.dtype, out.shape, seed=dout_seed)
    return conv.Impl(lambda: forward(*args), lambda: backward(dout, cache))


def _torch(forward, arrays, grad_of=None, dout_seed=1):
    """Impl of torch's layer ``forward(*tensors)`` on copies of ``arrays``; backward is
    autograd.grad of the inputs listed in ``grad_of`` (indices; default all), with the same
    upstream gradient as ours."""
    grad_of = range(len(arrays)) if grad_of is None else grad_of
    tensors = [torch.tensor(a, requires_grad=i in grad_of) for i, a in enumerate(arrays)]
    out = forward(*tensors)
    dout, = _rng_arrays(arrays[0].dtype, tuple(out.shape), seed=dout_seed)
    dout = torch.tensor(dout)
    wrt = [tensors[i] for i in grad_of]
    return conv.Impl(lambda: forward(*tensors),
                     lambda: torch.autograd.grad(out, wrt, dout, retain_graph=True))


def conv_row(label, x_shape, w_shape, stride, dilation, dtype):
    HH = w_shape[2]
    pad = dilation * (HH - 1) // 2  # "same" padding
    x, w, b = _rng_arrays(dtype, x_shape, w_shape, (w_shape[0],))
    param = {"stride": stride, "pad": pad, "dilation": dilation}
    impls = {"ours": _ours(fast_layers.conv_forward_fast, fast_layers.conv_backward_fast,
                           (x, w, b, param))}
    if torch is not None:
        impls["torch"] = _torch(lambda xt, wt, bt: TF.conv2d(xt, wt, bt, stride, pad, dilation),
                                (x, w, b))
    _, C, H, W = x_shape
    kind = f"conv {HH}x{HH}/s{stride}" + (f" d{dilation}" if dilation > 1 else "")
    name = f"{kind} {label} {C}x{H}x{W}->{w_shape[0]}"
    return Row(name, dtype, impls, conv.conv_flops(x_shape, w_shape, param))


def conv_rows(sizes, dtype):
    rows = []
    for label, (C, H, F) in (("first", sizes.first), ("inner", sizes.inner)):
        for k, stride, dilation in KERNELS:
            size = H - 1 if stride > 1 else H  # odd: the stride tiles the padded input
            rows.append(conv_row(label, (sizes.batch, C, size, size), (F, C, k, k), stride,
                                 dilation, dtype))
    return rows


def pool_rows(sizes, dtype):
    rows = []
    C, H = sizes.pool
    for kind, ours_f, ours_b, torch_f in (
            ("max", fast_layers.max_pool_forward_fast, fast_layers.max_pool_backward_fast,
             TF.max_pool2d if torch else None),
            ("avg", fast_layers.avg_pool_forward_fast, fast_layers.avg_pool_backward_fast,
             TF.avg_pool2d if torch else None)):
        for k, size in ((2, H), (3, H + 1)):  # 3x3/2 on an odd size: the windows tile it
            x, = _rng_arrays(dtype, (sizes.batch, C, size, size))
            param = {"pool_height": k, "pool_width": k, "stride": 2}
            impls = {"ours": _ours(ours_f, lambda d, c, b=ours_b: (b(d, c),), (x, param))}
            if torch is not None:
                impls["torch"] = _torch(lambda xt, f=torch_f, k=k: f(xt, k, 2), (x,))
            rows.append(Row(f"{kind} pool {k}x{k}/2 {C}x{size}x{size}", dtype, impls))
    return rows


def affine_row(sizes, dtype):
    N, D, M = sizes.affine
    x, w, b = _rng_arrays(dtype, (N, D), (D, M), (M,))
    impls = {"ours": _ours(layers.affine_forward, layers.affine_backward, (x, w, b))}
    if torch is not None:  # torch keeps the weight as (M, D)
        impls["torch"] = _torch(TF.linear, (x, np.ascontiguousarray(w.T), b))
    return Row(f"affine {N}x{D}->{M}", dtype, impls, 2.0 * N * D * M)


def relu_row(sizes, dtype):
    x, = _rng_arrays(dtype, sizes.relu)
    impls = {"ours": _ours(lambda a: layers.relu_forward(a),
                           lambda d, c: (layers.relu_backward(d, c),), (x,))}
    if torch is not None:
        impls["torch"] = _torch(TF.relu, (x,))
    return Row("relu " + "x".join(map(str, sizes.relu)), dtype, impls)


def batchnorm_row(sizes, dtype):
    C = sizes.bn[1]
    x, = _rng_arrays(dtype, sizes.bn)
    gamma, beta = _rng_arrays(dtype, (C,), (C,), seed=2)
    impls = {"ours": _ours(lambda *a: layers.spatial_batchnorm_forward(*a, {"mode": "train"}),
                           layers.spatial_batchnorm_backward, (x, gamma, beta))}
    if torch is not None:
        mean, var = torch.zeros(C).to(torch.tensor(gamma).dtype), torch.ones(C)
        var = var.to(mean.dtype)
        impls["torch"] = _torch(
            lambda xt, g, bt: TF.batch_norm(xt, mean, var, g, bt, training=True, momentum=0.1,
                                            eps=1e-5), (x, gamma, beta))
    return Row("spatial batchnorm train " + "x".join(map(str, sizes.bn)), dtype, impls)


def softmax_rows(sizes, dtype):
    rows = []
    for N, classes in sizes.softmax:
        x, = _rng_arrays(dtype, (N, classes))
        y = np.random.default_rng(3).integers(0, classes, N)
        impls = {"ours": conv.Impl(lambda x=x, y=y: layers.softmax_loss(x, y), lambda: None)}
        if torch is not None:
            xt, yt = torch.tensor(x, requires_grad=True), torch.tensor(y)

            def step(xt=xt, yt=yt):
                loss = TF.cross_entropy(xt, yt)
                return torch.autograd.grad(loss, xt)

            impls["torch"] = conv.Impl(step, lambda: None)
        rows.append(Row(f"softmax loss {N}x{classes}", dtype, impls, fused=True))
    return rows


def build_rows(sizes, dtypes, pattern):
    rows = []
    for dtype in dtypes:
        rows += conv_rows(sizes, dtype) + pool_rows(sizes, dtype)
        rows += [affine_row(sizes, dtype), relu_row(sizes, dtype), batchnorm_row(sizes, dtype)]
        rows += softmax_rows(sizes, dtype)
    return [row for row in rows if pattern is None or re.search(pattern, row.name)]


def gemm_rates(dtypes, n, calls=GEMM_CALLS):
    """numpy's matrix multiply rate (GFLOP/s) per dtype: the best of ``calls`` n x n x n
    products (the best, as a machine busy with other work slows some calls down)."""
    rates = {}
    for dtype in dtypes:
        a, b = _rng_arrays(dtype, (n, n), (n, n))
        conv._busy_wait(conv.SETTLE)
        best, _ = conv.timed(lambda a=a, b=b: a @ b, calls)
        rates[dtype] = 2.0 * n ** 3 / best / 1e9
    return rates


def run(rows, rounds, skip_parts):
    """Time every implementation of every row once per round, in a new random order each
    round (as bench/conv.py does)."""
    impls = [impl for row in rows for impl in row.impls.values()]
    order = np.random.default_rng(0)
    for _ in tqdm(range(rounds), desc="interleaved rounds"):
        for k in order.permutation(len(impls)):
            impl = impls[k]
            conv._busy_wait(conv.SETTLE)
            for part, fn in (("fwd", impl.forward), ("bwd", impl.backward)):
                if part not in skip_parts[id(impl)]:
                    impl.times[part].append(conv.timed(fn, conv.CALLS)[0])


def round_ratios(row, part):
    """ours / torch in each round (``conv.round_ratios``)."""
    return conv.round_ratios(row.impls["ours"].times[part], row.impls["torch"].times[part])


def _cells(row, part, rates):
    """ours ms, torch ms, ratio (of the medians), its range over the rounds, and each side's
    share of the GEMM rate (strings)."""
    times = {name: impl.median(part) for name, impl in row.impls.items()}
    flops = row.flops * (2 if part == "bwd" else 1)
    cells = [f"{1e3 * times['ours']:.4g}"]
    if "torch" in times:
        ratios = round_ratios(row, part)
        cells += [f"{1e3 * times['torch']:.4g}", f"{times['ours'] / times['torch']:.2f}",
                  f"{min(ratios):.2f}-{max(ratios):.2f}"]
    else:
        cells += ["-", "-", "-"]
    for name in ("ours", "torch"):
        if flops and name in times:
            cells.append(f"{100 * flops / times[name] / 1e9 / rates[row.dtype]:.0f}%")
        else:
            cells.append("-")
    return cells


def report(rows, rates, rounds, sizes):
    version = torch.__version__ if torch else "not installed"
    plural = "s" if rounds != 1 else ""
    print(f"\n{conv.THREADS} threads, {rounds} interleaved round{plural}, median over rounds of "
          f"the best of {conv.CALLS} calls; torch {version}")
    print(conv.machine())
    print(conv.blas_kernel())
    print(f"numpy GEMM ({sizes.gemm}^3): " + ", ".join(
        f"{np.dtype(dt).name} {rate:.0f} GFLOP/s" for dt, rate in rates.items()))
    width = max(len(row.name) for row in rows) + 2
    header = ["dtype", "pass", "ours ms", "torch ms", "ratio", "range", "ours%GEMM",
              "torch%GEMM"]
    print(f"\n{'layer':<{width}}{header[0]:<8}{header[1]:<8}"
          + "".join(f" {h:>10}" for h in header[2:]))
    slow = []
    for row in rows:
        for part in (("fwd+bwd",) if row.fused else ("fwd", "bwd")):
            cells = _cells(row, "fwd" if row.fused else part, rates)
            flag = ""
            if cells[2] != "-" and float(cells[2]) > LIMIT:
                flag = f"  > {LIMIT}x"
                total = {name: impl.median("fwd") if row.fused else impl.total
                         for name, impl in row.impls.items()}
                over = sum(r > LIMIT for r in round_ratios(row, "fwd" if row.fused else part))
                slow.append(f"{row.name} {np.dtype(row.dtype).name} {part}: {cells[2]}x, over "
                            f"in {over} of {rounds} rounds "
                            f"(forward + backward: {total['ours'] / total['torch']:.2f}x)")
            print(f"{row.name:<{width}}{np.dtype(row.dtype).name:<8}{part:<8}"
                  + "".join(f" {c:>10}" for c in cells) + flag)
    print(f"\nratio = ours / torch (lower is better; of the medians over rounds); target <= "
          f"{LIMIT} on every row. range: the lowest and highest ratio of one round's times. "
          "%GEMM: useful FLOPs per second (a convolution's taps on the zero padding not "
          "counted) as a share of numpy's GEMM rate above.")
    print("Dilated convolution (d2): the first layer on the window path, the inner one as one "
          "Winograd convolution per phase (3x3 filters on 32 channels or more).")
    if sizes is QUICK:
        print("(--quick: tiny sizes, one round: the ratios say nothing about speed)")
    if torch is None:
        print("(torch not installed: no baseline; `make bench` installs it)")
    elif slow:
        print(f"Rows over {LIMIT}x torch ({len(slow)}):")
        for text in slow:
            print(f"  {text}")
    else:
        print(f"Every row within {LIMIT}x torch.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes, one round (the smoke test)")
    parser.add_argument("--dtype", choices=[*DTYPES, "both"], default="both")
    parser.add_argument("--filter", default=None,
                        help="regular expression: only the layers whose name matches")
    parser.add_argument("--rounds", type=argtypes.positive_int, default=None,
                        help="interleaved rounds")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.quick:  # tiny layers: short pauses are enough
        conv.SETTLE, conv.WARMUP = 0.0, 0.0
    dtypes = list(DTYPES.values()) if args.dtype == "both" else [DTYPES[args.dtype]]
    rows = build_rows(sizes, dtypes, args.filter)
    if not rows:
        parser.error(f"--filter {args.filter!r} matches no layer")
    rounds = args.rounds or sizes.rounds
    skip = {id(impl): ({"bwd"} if row.fused else set())
            for row in rows for impl in row.impls.values()}
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    rates = gemm_rates(dtypes, sizes.gemm)
    run(rows, rounds, skip)
    rates = {dt: max(rate, again) for (dt, rate), again in
             zip(rates.items(), gemm_rates(dtypes, sizes.gemm).values(), strict=True)}
    report(rows, rates, rounds, sizes)
    load_after = os.getloadavg()[0]
    print(f"\n{time.perf_counter() - start:.0f} s; 1-minute load average: {load_before:.1f} "
          f"before, {load_after:.1f} after, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
