"""Benchmark: one training step of the course's networks against the same networks in torch.

Run ``python bench/train_step.py`` (``make bench`` runs it after bench/conv.py). A step is
``Solver._step``, what ``Solver.train`` does per minibatch: ``model.loss`` (forward and
backward; the first layer skips its input gradient, as torch's does) and the update rule on
every parameter. torch runs the same network (Conv2d, ReLU, MaxPool2d, Flatten, Linear, cross
entropy) with the same optimizer (``torch.optim.SGD``, with momentum, or ``Adam``), started
from the same weights: the first step's losses are printed side by side, and so is the largest
relative difference of the parameter gradients of that step (computed again in float64), to
show it is the same computation. Timing follows bench/conv.py (its helpers are imported):
2 BLAS threads, interleaved rounds in a fresh random order, a pause and a warm-up before each
timing, the best of a few calls per round and the median over rounds; what counts is the ratio.

The rows (float32):

* ``ThreeLayerConvNet`` in the project's issue's three configurations (num_filters,
  filter_size, hidden_dim) on batches of 128 CIFAR-shaped images, plain SGD;
* the networks notebook 6 (course_src/06_training.py) trains on Fashion-MNIST (1x28x28),
  with its batch size (50) and update rule (Adam, learning rate 1e-3): part 3's
  ``train_convnet`` (a ``ThreeLayerConvNet``, 16 5x5 filters, 100 hidden units) and part 6's
  ``train_spec`` (``ConvNet`` on ``arch.small_pool_net`` and ``arch.all_conv_net``, width 8).

The "split" columns time the same step with ``Solver(..., processes=2)``: the batch split
between this process and a worker process (``cs231n_lib/split_step.py``), which notebook 6's
small networks, whose layers two threads barely speed up, gain from, and which notebook 6's
solutions use (``--no-split`` leaves the columns out; ``--single-thread`` does too).

``--batch``, ``--size`` and ``--rounds`` shrink every row; ``--quick`` shrinks them to what the
smoke test runs (those of the three given with it stay as given). Each ratio comes with its
range over the rounds (each round's own ratio). ``--single-thread`` holds numpy's BLAS, the
library (``parallel``) and torch to one thread and times the CPU time of that thread instead of
the wall time: the work per step, steadier than wall time on a machine busy with other work
(which preempts the threads and makes spinning thread pools wait for each other), though it
says nothing about using two cores.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import argtypes  # noqa: E402
import conv  # noqa: E402  (first: it fixes the thread counts before numpy and torch load)
import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cs231n_lib import architectures as arch  # noqa: E402
from cs231n_lib import parallel  # noqa: E402
from cs231n_lib.classifiers.cnn import ThreeLayerConvNet  # noqa: E402
from cs231n_lib.classifiers.convnet import ConvNet  # noqa: E402
from cs231n_lib.shapes import same_pad  # noqa: E402
from cs231n_lib.solver import Solver  # noqa: E402

torch = conv.torch
CONFIGS = ((32, 7, 100), (32, 3, 500), (64, 3, 256))  # (num_filters, filter_size, hidden_dim)
CLASSES = 10
QUICK = {"batch": 4, "size": 4, "rounds": 1}  # --quick: tiny, for the smoke test


@dataclass(frozen=True)
class Row:
    """One network of the table, trained as its source trains it."""

    label: str
    kind: str  # "three_layer" (ThreeLayerConvNet) or a name in arch.REGISTRY (ConvNet)
    channels: int
    size: int
    batch: int
    update_rule: str
    learning_rate: float
    model: tuple = ()  # ThreeLayerConvNet: (num_filters, filter_size, hidden_dim, weight_scale)


NB6 = {"channels": 1, "size": 28, "batch": 50, "update_rule": "adam", "learning_rate": 1e-3}
ROWS = (*(Row(f"3-layer {F}/{HH}/{hidden} sgd", "three_layer", 3, 32, 128, "sgd", 1e-3,
              (F, HH, hidden, 1e-2)) for F, HH, hidden in CONFIGS),
        Row("nb6 train_convnet 16/5/100 adam", "three_layer", model=(16, 5, 100, 5e-2), **NB6),
        Row("nb6 ConvNet small_pool_net adam", "small_pool_net", **NB6),
        Row("nb6 ConvNet all_conv_net adam", "all_conv_net", **NB6))


def build_model(row: Row, size: int):
    """Our model for ``row`` on images of ``size`` x ``size`` and the layers of its torch twin
    (``arch`` records; their conv/FC layers hold W1, b1, W2, ... in order)."""
    input_dim = (row.channels, size, size)
    if row.kind == "three_layer":
        F, HH, hidden, scale = row.model
        model = ThreeLayerConvNet(input_dim=input_dim, num_filters=F, filter_size=HH,
                                  hidden_dim=hidden, weight_scale=scale, dtype=np.float32, seed=0)
        layers = (arch.Conv(F, HH, pad=same_pad(HH)), arch.ReLU(), arch.Pool("max", 2),
                  arch.Flatten(), arch.FC(hidden), arch.ReLU(), arch.FC(CLASSES))
        return model, layers
    spec = arch.REGISTRY[row.kind](input_dim, classes=CLASSES, width=8)
    return ConvNet(spec, dtype=np.float32, seed=0), spec.layers


def torch_module(layer, channels):
    """The torch module of one ``arch`` layer with ``channels`` input channels (or features)."""
    nn = torch.nn
    if isinstance(layer, arch.Conv):
        return nn.Conv2d(channels, layer.filters, layer.size, stride=layer.stride,
                         padding=layer.pad, dilation=layer.dilation, groups=layer.groups,
                         bias=layer.bias)
    if isinstance(layer, arch.Pool):
        pool = nn.MaxPool2d if layer.kind == "max" else nn.AvgPool2d
        return pool(layer.size, stride=layer.step, padding=layer.pad)
    if isinstance(layer, arch.Activation):
        return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[layer.fn]()
    if isinstance(layer, arch.Flatten):
        return nn.Flatten()
    if isinstance(layer, arch.FC):
        return nn.Linear(channels, layer.units, bias=layer.bias)
    raise ValueError(f"no torch twin for {layer!r}")


def torch_twin(model, layers, input_dim, row: Row):
    """The torch network equal to ``model`` (same weights, float32) and its optimizer."""
    modules, shape = [], tuple(input_dim)
    for layer in layers:
        modules.append(torch_module(layer, int(np.prod(shape)) if isinstance(
            layer, arch.FC) else shape[0]))
        shape = arch.out_shape(layer, shape)
    net = torch.nn.Sequential(*modules)
    weighted = [m for m in modules if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for i, module in enumerate(weighted, start=1):
            w = torch.tensor(model.params[f"W{i}"])
            module.weight.copy_(w.T if isinstance(module, torch.nn.Linear) else w)  # (out, in)
            if module.bias is not None:
                module.bias.copy_(torch.tensor(model.params[f"b{i}"]))
    if row.update_rule == "adam":
        opt = torch.optim.Adam(net.parameters(), lr=row.learning_rate, eps=1e-8)
    else:
        opt = torch.optim.SGD(net.parameters(), lr=row.learning_rate)
    return net, opt, weighted


def torch_step(net, opt, X, y):
    """One torch training step: forward, cross entropy, backward, update; the loss."""
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(X), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def torch_grads(weighted):
    """The gradients of the twin's parameters under our names and in our layouts."""
    grads = {}
    for i, module in enumerate(weighted, start=1):
        g = module.weight.grad.numpy()
        grads[f"W{i}"] = g.T if isinstance(module, torch.nn.Linear) else g
        if module.bias is not None:
            grads[f"b{i}"] = module.bias.grad.numpy()
    return grads


def grad_error(model, layers, input_dim, row: Row, X, y):
    """Largest over parameters of max |ours - torch's| / max |torch's| for the gradients of one
    step on (X, y), both networks in float64 (in float32 a pre-activation within rounding of 0
    may pass the ReLU in one network and not in the other)."""
    ours = copy.deepcopy(model)
    ours.dtype = np.dtype(np.float64)
    ours.params = {k: v.astype(np.float64) for k, v in model.params.items()}
    net, _, weighted = torch_twin(ours, layers, input_dim, row)
    net.double()
    torch.nn.functional.cross_entropy(net(torch.tensor(X, dtype=torch.float64)),
                                      torch.tensor(y)).backward()
    theirs, grads = torch_grads(weighted), ours.loss(X.astype(np.float64), y)[1]
    return max(float(np.abs(grads[k] - theirs[k]).max() / max(np.abs(theirs[k]).max(), 1e-300))
               for k in theirs)


@dataclass
class Case:
    """A row's implementations: name -> step callable, plus the first step's figures."""

    row: Row
    batch: int
    steps: dict
    losses: dict
    grad_err: float | None = None
    split_status: str = ""  # Solver(processes=2)'s, when the case has a "split" step
    solvers: tuple = ()


def make_case(row: Row, batch: int, size: int, rng, split: bool = False) -> Case:
    """Our Solver step and torch's for ``row``, from the same weights, checked on one step;
    split: also our step with ``Solver(..., processes=2)`` (its own model, the same weights)."""
    X = rng.standard_normal((batch, row.channels, size, size)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch)
    model, layers = build_model(row, size)
    case = Case(row, batch, {}, {})
    if torch is not None:  # built first: our first step changes the weights
        input_dim = (row.channels, size, size)
        net, opt, _ = torch_twin(model, layers, input_dim, row)
        Xt, yt = torch.tensor(X), torch.tensor(y)
        case.losses["torch"] = torch_step(net, opt, Xt, yt)
        case.grad_err = grad_error(model, layers, input_dim, row, X, y)
        case.steps["torch"] = lambda: torch_step(net, opt, Xt, yt)
    data = {"X_train": X, "y_train": y, "X_val": X[:1], "y_val": y[:1]}

    def solver_of(model, processes=1):
        return Solver(model, data, update_rule=row.update_rule, batch_size=batch, verbose=False,
                      optim_config={"learning_rate": row.learning_rate}, processes=processes)

    solver = solver_of(model)
    every = np.arange(batch)
    case.losses["ours"] = solver._step(every)
    case.steps = {"ours": lambda: solver._step(every), **case.steps}
    if split:
        twin = solver_of(build_model(row, size)[0], processes=2)
        case.split_status = twin.start_split(wait=True)
        case.losses["split"] = twin._step(every)
        case.steps["split"] = lambda: twin._step(every)
        case.solvers = (solver, twin)
    return case


def cpu_timed(fn, calls):
    """Best CPU time of the calling thread (``time.thread_time``) over ``calls`` calls of fn,
    after a warm-up as in ``conv.timed``: with every library held to this one thread, the
    work of a step, which other processes on a busy machine do not inflate (they preempt the
    thread, which wall time counts and CPU time does not)."""
    end = time.perf_counter() + conv.WARMUP
    fn()
    while time.perf_counter() < end:
        fn()
    best = float("inf")
    for _ in range(calls):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best, None


def run(cases, rounds, timer=conv.timed):
    """Each step's best time (seconds) in each of ``rounds`` interleaved rounds."""
    order = [(c, name) for c, case in enumerate(cases) for name in case.steps]
    times = {key: [] for key in order}
    shuffle = np.random.default_rng(0)
    for _ in tqdm(range(rounds), desc="interleaved rounds"):
        for k in shuffle.permutation(len(order)):
            c, name = order[k]
            conv._busy_wait(conv.SETTLE)
            best, _ = timer(cases[c].steps[name], conv.CALLS)
            times[order[k]].append(best)
    return times


def _ratio_cells(times, medians, c, name):
    """The ratio of step ``name``'s median to torch's and its range over the rounds
    (``conv.round_ratios``)."""
    rounds = conv.round_ratios(times[(c, name)], times[(c, "torch")])
    ratio = medians[(c, name)] / medians[(c, "torch")]
    return f" {ratio:6.2f} {min(rounds):4.2f}-{max(rounds):4.2f}"


def report(cases, times, size, rounds, single_thread=False):
    medians = {key: float(np.median(ts)) for key, ts in times.items()}
    version = torch.__version__ if torch else "not installed"
    how = ("1 thread (numpy's BLAS, the library's and torch's), CPU time of that thread"
           if single_thread else f"{conv.THREADS} BLAS threads, wall time")
    plural = "s" if rounds != 1 else ""
    print(f"\n{how}, {rounds} interleaved round{plural}, median over rounds of the best of "
          f"{conv.CALLS} calls; torch {version}")
    print(conv.machine())
    print(conv.blas_kernel())
    print("One training step (Solver._step: forward, backward, update), float32"
          + (f", images {size}x{size}" if size else ""))
    split = any("split" in case.steps for case in cases)
    print(f"\n{'network and update rule':<34} {'batch':>5} {'ours ms':>8} {'torch ms':>9} "
          f"{'ratio':>6} {'range':>9} {'ours img/s':>10} {'loss ours':>9} {'loss torch':>10} "
          f"{'grad err':>8}" + (f" {'split ms':>8} {'ratio':>6} {'range':>9}" if split else ""))
    for c, case in enumerate(cases):
        ours = medians[(c, "ours")]
        line = f"{case.row.label:<34} {case.batch:>5} {1e3 * ours:8.2f}"
        if "torch" in case.steps:
            line += f" {1e3 * medians[(c, 'torch')]:9.2f}" + _ratio_cells(times, medians, c, "ours")
        else:
            line += f" {'-':>9} {'-':>6} {'-':>9}"
        line += f" {case.batch / ours:10.0f} {case.losses['ours']:9.4f}"
        if "torch" in case.steps:
            line += f" {case.losses['torch']:10.4f} {case.grad_err:8.1e}"
        else:
            line += f" {'-':>10} {'-':>8}"
        if "split" in case.steps:
            mine = medians[(c, "split")]
            line += f" {1e3 * mine:8.2f}"
            line += (_ratio_cells(times, medians, c, "split") if "torch" in case.steps
                     else f" {'-':>6} {'-':>9}")
            if case.split_status != "on":
                line += f"  (split {case.split_status})"
        print(line)
    print("\nratio = ours / torch (lower is better; the issue's target is <= 1.0), of the medians "
          "over rounds; range: the lowest and highest ratio of one round's times (this VM moves a "
          "step's time 20-40% between runs); grad err = largest max|ours - torch| / max|torch| "
          "over the parameter gradients of the first step, in float64")
    if split:
        print("split = ours with Solver(..., processes=2): each step's batch split between this "
              "process and a worker process (cs231n_lib/split_step.py); ratio = split / torch")
    if torch is None:
        print("  (torch not installed: no baseline; `make bench` installs it)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=argtypes.positive_int,
                        help="images per step (default: each row's own)")
    parser.add_argument("--size", type=argtypes.multiple_of(4),
                        help="image height and width, a multiple of 4 (default: each row's own)")
    parser.add_argument("--rounds", type=argtypes.positive_int,
                        help=f"interleaved rounds (default {conv.ROUNDS})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny batches and images, one round (the smoke test)")
    parser.add_argument("--single-thread", action="store_true",
                        help="time the CPU work of one thread instead of 2 threads' wall time "
                             "(steadier on a machine busy with other work)")
    parser.add_argument("--no-split", action="store_true",
                        help="leave out the split column (Solver(..., processes=2))")
    args = parser.parse_args(argv)
    if args.quick:  # (what is given explicitly stays)
        for key, value in QUICK.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    if args.rounds is None:
        args.rounds = conv.ROUNDS
    rng = np.random.default_rng(0)
    split = not (args.no_split or args.single_thread)  # (one thread: no second process)
    cases = [make_case(row, args.batch or row.batch, args.size or row.size, rng, split)
             for row in ROWS]
    load_before = os.getloadavg()[0]
    if args.single_thread:
        parallel.set_num_threads(1)
        if torch is not None:
            torch.set_num_threads(1)
        with threadpool_limits(1, user_api="blas"):
            times = run(cases, args.rounds, cpu_timed)
    else:
        times = run(cases, args.rounds)
    for case in cases:
        for solver in case.solvers:
            solver.stop_split()
    report(cases, times, args.size, args.rounds, args.single_thread)
    load_after = os.getloadavg()[0]
    print(f"\n1-minute load average: {load_before:.1f} before, {load_after:.1f} after, on "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
