"""Benchmark: one SGD training step of ``ThreeLayerConvNet`` against the same network in torch.

Run ``python bench/train_step.py`` (``make bench`` runs it after bench/conv.py). A step is what
``Solver`` does per minibatch: ``model.loss`` (forward and backward; the first layer skips its
input gradient, as torch's does) and the ``optim.sgd`` update of every parameter. torch runs the
same network (Conv2d with same padding, ReLU, 2x2 max pool, Linear, ReLU, Linear, cross entropy,
``torch.optim.SGD``), started from the same weights: the first step's losses are printed side by
side to show it is the same computation. Timing follows bench/conv.py (its helpers are imported):
2 BLAS threads, interleaved rounds in a fresh random order, a pause and a warm-up before each
timing, the best of a few calls per round and the median over rounds; what counts is the ratio.

The configurations (num_filters, filter_size, hidden_dim) are those of the project's issue, on a
float32 batch of 128 CIFAR-shaped images; ``--batch``, ``--size`` and ``--rounds`` shrink it
(the smoke test runs it tiny).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv  # noqa: E402  (first: it fixes the thread counts before numpy and torch load)
import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from cs231n_lib import optim  # noqa: E402
from cs231n_lib.classifiers.cnn import ThreeLayerConvNet  # noqa: E402

torch = conv.torch
CONFIGS = ((32, 7, 100), (32, 3, 500), (64, 3, 256))  # (num_filters, filter_size, hidden_dim)
LEARNING_RATE = 1e-3
CLASSES = 10


def numpy_step(model, X, y):
    """One ``Solver`` step without the bookkeeping: loss and gradients, then SGD; the loss."""
    loss, grads = model.loss(X, y)
    config = {"learning_rate": LEARNING_RATE}
    for name, w in model.params.items():
        model.params[name], _ = optim.sgd(w, grads[name], config)
    return loss


def torch_twin(model):
    """The torch network equal to ``model`` (same weights, float32) and its SGD optimizer."""
    nn = torch.nn
    p = {k: torch.tensor(v) for k, v in model.params.items()}
    F, C, HH, _ = p["W1"].shape
    net = nn.Sequential(nn.Conv2d(C, F, HH, padding=model.conv_param["pad"]), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(*p["W2"].shape), nn.ReLU(),
                        nn.Linear(*p["W3"].shape))
    with torch.no_grad():
        for layer, i in ((net[0], 1), (net[4], 2), (net[6], 3)):
            w = p[f"W{i}"]
            layer.weight.copy_(w if i == 1 else w.T)  # ours are (in, out), torch's (out, in)
            layer.bias.copy_(p[f"b{i}"])
    return net, torch.optim.SGD(net.parameters(), lr=LEARNING_RATE)


def torch_step(net, opt, X, y):
    """One torch training step: forward, cross entropy, backward, SGD; the loss."""
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(X), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def make_case(config, batch, size, rng):
    """The implementations of one configuration as {name: (step callable, first loss)}."""
    F, HH, hidden = config
    X = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
    y = rng.integers(0, CLASSES, batch)
    model = ThreeLayerConvNet(input_dim=(3, size, size), num_filters=F, filter_size=HH,
                              hidden_dim=hidden, weight_scale=1e-2, dtype=np.float32, seed=0)
    impls = {}
    if torch is not None:  # built first: the numpy step changes the weights
        net, opt = torch_twin(model)
        Xt, yt = torch.tensor(X), torch.tensor(y)
        impls["torch"] = (lambda: torch_step(net, opt, Xt, yt), torch_step(net, opt, Xt, yt))
    impls = {"ours": (lambda: numpy_step(model, X, y), numpy_step(model, X, y)), **impls}
    return impls


def run(cases, rounds):
    """Median over ``rounds`` interleaved rounds of each step's best time (seconds)."""
    order = [(c, name) for c, impls in enumerate(cases) for name in impls]
    times = {key: [] for key in order}
    shuffle = np.random.default_rng(0)
    for _ in tqdm(range(rounds), desc="interleaved rounds"):
        for k in shuffle.permutation(len(order)):
            c, name = order[k]
            conv._busy_wait(conv.SETTLE)
            best, _ = conv.timed(cases[c][name][0], conv.CALLS)
            times[order[k]].append(best)
    return {key: float(np.median(ts)) for key, ts in times.items()}


def report(cases, medians, batch, size, rounds):
    version = torch.__version__ if torch else "not installed"
    print(f"\n{conv.THREADS} BLAS threads, {rounds} interleaved rounds, median over rounds of "
          f"the best of {conv.CALLS} calls; torch {version}")
    print(conv.blas_kernel())
    print(f"One SGD step of ThreeLayerConvNet, float32 batch of {batch} images 3x{size}x{size}")
    print(f"\n{'config (F, HH, hidden)':<24} {'ours ms':>9} {'torch ms':>9} {'ratio':>7} "
          f"{'ours img/s':>11} {'loss ours':>10} {'loss torch':>10}")
    for config, impls in zip(CONFIGS, cases, strict=True):
        ours = medians[(cases.index(impls), "ours")]
        line = f"{str(config):<24} {1e3 * ours:9.2f}"
        if "torch" in impls:
            theirs = medians[(cases.index(impls), "torch")]
            line += f" {1e3 * theirs:9.2f} {ours / theirs:7.2f}"
        else:
            line += f" {'-':>9} {'-':>7}"
        line += f" {batch / ours:11.0f} {impls['ours'][1]:10.4f}"
        line += f" {impls['torch'][1]:10.4f}" if "torch" in impls else f" {'-':>10}"
        print(line)
    print("\nratio = ours / torch (lower is better; the issue's target is <= 1.0)")
    if torch is None:
        print("  (torch not installed: no baseline; `make bench` installs it)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="images per step")
    parser.add_argument("--size", type=int, default=32, help="image height and width (even)")
    parser.add_argument("--rounds", type=int, default=conv.ROUNDS, help="interleaved rounds")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    cases = [make_case(config, args.batch, args.size, rng) for config in CONFIGS]
    load_before = os.getloadavg()[0]
    medians = run(cases, args.rounds)
    report(cases, medians, args.batch, args.size, args.rounds)
    load_after = os.getloadavg()[0]
    print(f"\n1-minute load average: {load_before:.1f} before, {load_after:.1f} after, on "
          f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
