"""Train a small ConvNet on the embedded Fashion-MNIST subset and report its test accuracy.

    python -m cs231n_lib.train_demo [--epochs 10] [--seed 0] [--time-budget 75] [--dataset NAME]

``train_small_convnet`` is the reusable part (``make train`` and the tests call it). The training
notebook (06) shares only ``prepare_data``: it builds and trains its own models.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from .classifiers.cnn import ThreeLayerConvNet
from .data import load_dataset
from .solver import Solver

# Architecture and hyperparameters, chosen by measurement on 2 cores: conv 5x5 x 16 (same
# padding) - relu - 2x2 max pool - affine 200 - relu - affine 10, Adam. On the 5,000 training
# images, 10 epochs take 10-12 s on an idle machine; test accuracy 0.865 / 0.860 / 0.852 for
# seeds 0 / 1 / 2. 32 filters gained ~1 point (0.876, 0.877) for twice the time.
MODEL = {"num_filters": 16, "filter_size": 5, "hidden_dim": 200, "weight_scale": 3e-2}
TRAINING = {"update_rule": "adam", "optim_config": {"learning_rate": 2e-3}, "lr_decay": 0.8,
            "batch_size": 100}
PIXEL_SCALE = 1 / 255  # load_dataset gives mean-subtracted pixels on the 0..255 scale
DEFAULT_EPOCHS = 10
# The command line's default training time limit: the demo ends within two minutes even on a
# busy machine (it then reports the accuracy reached when the budget ran out).
DEFAULT_TIME_BUDGET = 75.0


def prepare_data(dataset="fashion_small", num_training=None, dtype=np.float32):
    """``load_dataset(dataset)`` with pixels rescaled by PIXEL_SCALE (to about [-1, 1])."""
    data = load_dataset(dataset, num_training=num_training, dtype=dtype)
    for split in ("train", "val", "test"):
        data[f"X_{split}"] = data[f"X_{split}"] * data[f"X_{split}"].dtype.type(PIXEL_SCALE)
    return data


def train_small_convnet(dataset="fashion_small", epochs=DEFAULT_EPOCHS, seed=0,
                        time_budget=None, num_training=None, data=None, verbose=True):
    """
    Train the demo ConvNet and measure it on the test split.

    Inputs:
    - dataset: name for ``load_dataset`` (ignored when ``data`` is given)
    - epochs: passes over the training set
    - seed: seeds the initial weights and the minibatch order
    - time_budget: seconds after which training stops cleanly (None: no limit)
    - num_training: use only the first num_training training images (None: all)
    - data: an already loaded dict (X_train, y_train, X_val, y_val, X_test, y_test)
    - verbose: progress bar and per-epoch lines

    Returns a tuple of:
    - solver: the trained Solver (its model holds the best-validation parameters)
    - test_acc: accuracy on X_test, y_test
    - seconds: wall-clock time of training and testing
    """
    start = time.perf_counter()
    if data is None:
        data = prepare_data(dataset, num_training=num_training)
    num_classes = (len(data["class_names"]) if "class_names" in data
                   else int(max(data["y_train"].max(), data["y_val"].max())) + 1)
    model = ThreeLayerConvNet(input_dim=data["X_train"].shape[1:], num_classes=num_classes,
                              dtype=data["X_train"].dtype, seed=seed, **MODEL)
    solver = Solver(model, data, num_epochs=epochs, seed=seed, time_budget=time_budget,
                    verbose=verbose, print_every=10**9, **TRAINING)
    solver.train()
    test_acc = solver.check_accuracy(data["X_test"], data["y_test"])
    return solver, test_acc, time.perf_counter() - start


def main(argv=None):
    """Command-line entry point: train, then print the test accuracy and the time taken."""
    parser = argparse.ArgumentParser(prog="python -m cs231n_lib.train_demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--time-budget", type=float, default=DEFAULT_TIME_BUDGET,
                        help="stop training after this many seconds (default %(default)s)")
    parser.add_argument("--dataset", default="fashion_small",
                        help="fashion_small (default), digits, shapes or cifar10")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    data = prepare_data(args.dataset)
    N, C, H, W = data["X_train"].shape
    print(f"{args.dataset}: {N} training, {len(data['X_val'])} validation, "
          f"{len(data['X_test'])} test images of shape (C, H, W) = ({C}, {H}, {W})")
    cpu_start = time.process_time()
    solver, test_acc, seconds = train_small_convnet(
        epochs=args.epochs, seed=args.seed, time_budget=args.time_budget, data=data,
        verbose=not args.quiet)
    n_params = sum(p.size for p in solver.model.params.values())
    stopped = " (stopped early by the time budget)" if solver.stopped_early else ""
    print(f"model: {type(solver.model).__name__} {MODEL}, {n_params:,} parameters")
    print(f"trained {solver.epoch} epoch(s), {len(solver.loss_history)} steps{stopped}; "
          f"best validation accuracy {solver.best_val_acc:.3f}")
    print(f"test accuracy: {test_acc:.3f} ({round(test_acc * len(data['y_test']))}/"
          f"{len(data['y_test'])}) in {seconds:.1f} s "
          f"(process CPU time {time.process_time() - cpu_start:.1f} s)")
    print(f"training speed: {solver.images_per_second:,.0f} images/s (forward, backward and "
          f"update of {solver.images_seen:,} images in {solver.step_seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
