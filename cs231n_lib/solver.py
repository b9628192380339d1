"""Minibatch training of a classification model (CS231n's Solver, made reproducible).

What a model must provide
-------------------------
* ``model.params``: a dict mapping parameter names to numpy arrays. The Solver replaces each
  entry by the optimizer's next value after every step (and by the best parameters at the end).
* ``model.loss(X, y=None)``:

  - ``y is None`` (test time): return the class scores, an array of shape (N, C) where
    ``scores[i, c]`` is the score of class c for ``X[i]``;
  - otherwise (training): return ``(loss, grads)``, a scalar and a dict with the same keys as
    ``model.params`` giving the gradient of the loss with respect to each parameter.

* Optional: ``model.bn_params``, a list of batchnorm parameter dicts whose ``running_mean`` and
  ``running_var`` are saved in and restored from checkpoints with the parameters.

Example::

    solver = Solver(model, data, update_rule="adam", optim_config={"learning_rate": 1e-3},
                    lr_decay=0.95, num_epochs=5, batch_size=100, seed=0)
    solver.train()
    solver.best_val_acc, solver.loss_history

``data`` holds X_train, y_train, X_val, y_val (other keys, e.g. X_test from ``load_dataset``, are
ignored). After ``train()``, ``model.params`` holds the parameters with the best validation
accuracy seen at any epoch boundary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from numbers import Real

import numpy as np
from tqdm import tqdm

from . import heap, optim, parallel
from .shapes import check_int, check_keys
from .split_step import SplitStep

# Keyword arguments of Solver with their defaults (CS231n's plus seed and time_budget).
DEFAULTS = {
    "update_rule": "sgd",  # name in optim.UPDATE_RULES, or a callable update(w, dw, config)
    "optim_config": None,  # hyperparameters given to the update rule (copied per parameter)
    "lr_decay": 1.0,  # learning_rate is multiplied by this after every epoch
    "batch_size": 100,  # examples per gradient step
    "num_epochs": 10,  # passes over the training set
    "num_train_samples": 1000,  # training examples used to estimate train accuracy (None: all)
    "num_val_samples": None,  # validation examples used for val accuracy (None: all)
    "checkpoint_name": None,  # if set, save "<name>_epoch_<k>.npz" after every epoch
    "print_every": 10,  # print the loss every this many iterations (when verbose)
    "verbose": True,  # progress bar and printed lines on stdout
    "seed": None,  # seed of the minibatch/subsampling generators (None: not reproducible)
    "time_budget": None,  # seconds; stop training cleanly once exceeded (None: no limit)
    "processes": 1,  # 2: each step's batch split with a worker process (see split_step)
}
DATA_KEYS = ("X_train", "y_train", "X_val", "y_val")
CHECKPOINT_FORMAT = 1


class Solver:
    """Trains ``model`` on ``data`` with minibatch gradient descent.

    Inputs:
    - model: an object meeting the contract in the module docstring.
    - data: dict with X_train (N_train, ...), y_train (N_train,), X_val (N_val, ...),
      y_val (N_val,).
    - **kwargs: the keys of ``DEFAULTS`` (an unknown keyword raises ValueError).

    Attributes after ``train()``: loss_history (one entry per step), train_acc_history and
    val_acc_history (one entry per accuracy check: after the first step, after every epoch,
    after the last step), best_val_acc, best_params, epoch (completed epochs), stopped_early
    (True when time_budget ended training), train_seconds, and the throughput
    ``images_per_second`` (from ``images_seen`` and ``step_seconds``).

    processes=2 splits every step's batch between this process and a worker process that
    holds a copy of the model (``split_step``; ``split_status`` says whether it is on): the
    same loss and gradients up to rounding, for the library's classifiers without batch
    normalisation or dropout; faster for small networks, whose layers two threads barely
    speed up. Any other model, or a worker that cannot start or fails, trains unsplit.

    Minibatches: every epoch draws a fresh permutation of the training set from a
    ``np.random.Generator`` seeded by ``seed`` and walks through it ``batch_size`` examples at a
    time (``N_train // batch_size`` steps per epoch, at least one).
    """

    def __init__(self, model, data, **kwargs):
        check_keys(kwargs, DEFAULTS, "Solver keyword arguments")
        if not hasattr(model, "params") or not callable(getattr(model, "loss", None)):
            raise ValueError("model must have a params dict and a loss(X, y=None) method")
        self.model = model
        self._set_data(data)
        opts = {**DEFAULTS, **kwargs}
        self.update_rule_name = opts["update_rule"]
        self.update_rule = _resolve_update_rule(opts["update_rule"])
        self.optim_config = dict(opts["optim_config"] or {})
        self.lr_decay = _check_real(opts["lr_decay"], "lr_decay", positive=True)
        self.batch_size = check_int(opts["batch_size"], "batch_size", 1)
        self.num_epochs = check_int(opts["num_epochs"], "num_epochs", 0)
        self.num_train_samples = _optional_int(opts["num_train_samples"], "num_train_samples")
        self.num_val_samples = _optional_int(opts["num_val_samples"], "num_val_samples")
        self.checkpoint_name = opts["checkpoint_name"]
        self.print_every = check_int(opts["print_every"], "print_every", 1)
        self.verbose = bool(opts["verbose"])
        self.seed = opts["seed"]
        self.time_budget = (None if opts["time_budget"] is None
                            else _check_real(opts["time_budget"], "time_budget"))
        self.processes = check_int(opts["processes"], "processes", 1)
        if self.processes > 2:
            raise ValueError(f"processes={self.processes} must be 1 (this process) or 2 (this "
                             "process and one worker, each computing half of every batch)")
        # A dry run on a 1-element array rejects a bad optim_config now rather than at step 1.
        self.update_rule(np.zeros(1), np.zeros(1), dict(self.optim_config))
        self._reset()

    def _set_data(self, data):
        missing = [k for k in DATA_KEYS if k not in data]
        if missing:
            raise ValueError(f"data is missing {missing}; it needs the keys {list(DATA_KEYS)}")
        for split in ("train", "val"):
            X, y = data[f"X_{split}"], data[f"y_{split}"]
            if len(X) != len(y) or len(X) == 0:
                raise ValueError(f"X_{split} has {len(X)} examples and y_{split} has {len(y)}; "
                                 "they must be equal and non-zero")
        self.X_train, self.y_train = data["X_train"], data["y_train"]
        self.X_val, self.y_val = data["X_val"], data["y_val"]

    def _reset(self):
        """Set up the book-keeping (called by the constructor; not meant to be called again)."""
        self.epoch = 0
        self.best_val_acc = 0.0
        self.best_params = {}
        self.loss_history = []
        self.train_acc_history = []
        self.val_acc_history = []
        self.stopped_early = False
        self.train_seconds = 0.0
        self.step_seconds = 0.0  # in gradient steps only (forward, backward, update)
        self.images_seen = 0  # examples that went through a gradient step
        self._split = None  # the worker process of processes=2, started at the first step
        self._split_ended = "not started"  # split_status once it has been stopped
        self.optim_configs = {p: dict(self.optim_config) for p in self.model.params}
        batch_seq, eval_seq = np.random.SeedSequence(self.seed).spawn(2)
        self.rng = np.random.default_rng(batch_seq)  # minibatch permutations
        self.eval_rng = np.random.default_rng(eval_seq)  # accuracy subsampling

    def _step(self, batch_idx):
        """One gradient step on the examples ``batch_idx``; returns the loss."""
        heap.keep_freed_memory()  # the next step reuses this one's memory (see heap)
        if self.processes > 1 and self._split is None:
            self.start_split()
        loss_of = self.model.loss if self._split is None else self._split.loss
        start = time.perf_counter()
        with parallel.blas_held():  # the layers' own threads use the cores (see parallel)
            loss, grads = loss_of(self.X_train[batch_idx], self.y_train[batch_idx])
            self.loss_history.append(float(loss))
            missing = [p for p in self.model.params if p not in grads]
            if missing:
                raise ValueError(f"model.loss returned no gradient for parameter(s) {missing}")
            for p, w in self.model.params.items():
                next_w, self.optim_configs[p] = self.update_rule(w, grads[p],
                                                                 self.optim_configs[p])
                self.model.params[p] = next_w
        self.step_seconds += time.perf_counter() - start
        self.images_seen += len(batch_idx)
        return float(loss)

    def start_split(self, wait=False):
        """Start the worker process of ``processes=2`` (``split_step.SplitStep``; the first
        step does it otherwise): it holds a copy of the model and computes half of every
        batch once it is ready, which takes a fraction of a second; until then the steps run
        here. wait=True: return once it is ready or has failed. Returns ``split_status``."""
        if self._split is None and self.processes > 1:
            half = (max(self.batch_size // 2, 1), *np.shape(self.X_train)[1:])
            self._split = SplitStep(self.model, half, np.asarray(self.X_train[:1]).dtype,
                                    np.asarray(self.y_train[:1]).dtype)
        if wait and self._split is not None:
            self._split.wait_ready()
        return self.split_status

    @property
    def split_status(self) -> str:
        """How the steps run: "off: processes=1"; "not started" (before the first step of
        processes=2); "starting"; "on" (split with the worker); "off: <why>" (the model does
        not split over the batch, the worker could not start or failed: each step then runs
        whole in this process); after ``train()`` returns, "stopped (was: <the status then>)"."""
        if self._split is None:
            return "off: processes=1" if self.processes == 1 else self._split_ended
        return self._split.status

    def stop_split(self):
        """Stop the worker process of ``processes=2`` (``train()`` does when it returns; the
        next step starts a new one)."""
        if self._split is not None:
            self._split_ended = f"stopped (was: {self._split.status})"
            self._split.close()
            self._split = None

    @property
    def images_per_second(self) -> float:
        """Training throughput: examples per second of gradient steps (forward, backward and
        update; accuracy checks, checkpoints and the progress bar not counted); 0 before any."""
        return self.images_seen / self.step_seconds if self.step_seconds > 0 else 0.0

    def check_accuracy(self, X, y, num_samples=None, batch_size=100):
        """Fraction of examples whose highest-scoring class is the label.

        Inputs:
        - X: array of shape (N, ...); y: labels of shape (N,).
        - num_samples: if given and < N, evaluate on that many examples drawn without
          replacement (from the Solver's own evaluation generator).
        - batch_size: examples per forward pass (bounds the memory used).

        Returns:
        - acc: float in [0, 1].
        """
        N = len(X)
        batch_size = check_int(batch_size, "batch_size", 1)
        if num_samples is not None and check_int(num_samples, "num_samples", 1) < N:
            mask = self.eval_rng.choice(N, num_samples, replace=False)
            X, y, N = X[mask], y[mask], num_samples
        y_pred = [np.argmax(self.model.loss(X[i:i + batch_size]), axis=1)
                  for i in range(0, N, batch_size)]
        return float(np.mean(np.concatenate(y_pred) == np.asarray(y)))

    def _record_accuracy(self):
        train_acc = self.check_accuracy(self.X_train, self.y_train, self.num_train_samples)
        val_acc = self.check_accuracy(self.X_val, self.y_val, self.num_val_samples)
        self.train_acc_history.append(train_acc)
        self.val_acc_history.append(val_acc)
        if val_acc > self.best_val_acc or not self.best_params:
            self.best_val_acc = val_acc
            self.best_params = {k: v.copy() for k, v in self.model.params.items()}
        return train_acc, val_acc

    def _log(self, bar, text):
        if self.verbose:
            bar.write(text, file=sys.stdout)

    def train(self):
        """Run the remaining epochs (all of them, or those left after ``load_checkpoint``).

        Stops early, after finishing the current step, once ``time_budget`` seconds have
        passed; then records a final accuracy check and sets ``stopped_early``. Calling
        ``train()`` again then starts a fresh epoch. Returns self.
        """
        num_train = len(self.X_train)
        per_epoch = max(num_train // self.batch_size, 1)
        total = max(self.num_epochs - self.epoch, 0) * per_epoch
        start = time.perf_counter()
        checked_at = None  # iteration of the latest accuracy check in this call
        it = 0
        bar = tqdm(total=total, disable=not self.verbose, file=sys.stdout, unit="step",
                   desc=f"{type(self.model).__name__}", dynamic_ncols=True)
        try:
            with bar:
                while it < total:
                    if (self.time_budget is not None
                            and time.perf_counter() - start >= self.time_budget):
                        self.stopped_early = True
                        self._log(bar, f"time budget of {self.time_budget:g} s reached after "
                                  f"{it} of {total} steps: stopping")
                        break
                    if it % per_epoch == 0:
                        order = self.rng.permutation(num_train)
                    k = it % per_epoch
                    loss = self._step(order[k * self.batch_size:(k + 1) * self.batch_size])
                    it += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                    if (it - 1) % self.print_every == 0:
                        self._log(bar, f"(Iteration {it} / {total}) loss: {loss:f}")
                    epoch_end = it % per_epoch == 0
                    if epoch_end:
                        self.epoch += 1
                        for config in self.optim_configs.values():
                            if "learning_rate" in config:
                                config["learning_rate"] *= self.lr_decay
                    first_step = len(self.loss_history) == 1
                    if first_step or it == total or epoch_end:
                        train_acc, val_acc = self._record_accuracy()
                        checked_at = it
                        self._log(bar, f"(Epoch {self.epoch} / {self.num_epochs}) "
                                  f"train acc: {train_acc:f}; val_acc: {val_acc:f}")
                        bar.set_postfix(loss=f"{loss:.3f}", val_acc=f"{val_acc:.3f}")
                        if epoch_end and self.checkpoint_name is not None:
                            self.save_checkpoint(f"{self.checkpoint_name}_epoch_{self.epoch}.npz")
                if it > 0 and checked_at != it:
                    self._record_accuracy()
        finally:  # the worker process of processes=2 (also on an interrupt)
            if self._split is not None:
                self._log(bar, f"steps split with a worker process: {self._split.status}")
                self.stop_split()
        self.train_seconds = time.perf_counter() - start
        heap.release_freed_memory()  # what the steps kept for each other
        if self.best_params:
            self.model.params.update({k: v.copy() for k, v in self.best_params.items()})
        return self

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path):
        """Save everything needed to resume training to ``path`` (an ``.npz`` file).

        Saved: the current (not the best) parameters, the best parameters, batchnorm running
        statistics if the model has ``bn_params``, each parameter's optimizer config (including
        its state), the histories, the epoch, the generators' states and the Solver's settings.
        No pickle is used, so loading a checkpoint cannot run code. Returns ``path``.
        """
        arrays = {}
        meta = {"format": CHECKPOINT_FORMAT, "epoch": self.epoch,
                "best_val_acc": self.best_val_acc, "loss_history": self.loss_history,
                "train_acc_history": self.train_acc_history,
                "val_acc_history": self.val_acc_history, "stopped_early": self.stopped_early,
                "rng": self.rng.bit_generator.state,
                "eval_rng": self.eval_rng.bit_generator.state, "settings": self._settings(),
                "optim_scalars": {}, "bn_keys": []}
        for name, value in self.model.params.items():
            arrays[f"params/{name}"] = value
        for name, value in self.best_params.items():
            arrays[f"best_params/{name}"] = value
        for name, config in self.optim_configs.items():
            meta["optim_scalars"][name] = {}
            for key, value in config.items():
                if isinstance(value, np.ndarray):
                    arrays[f"optim/{name}/{key}"] = value
                else:
                    meta["optim_scalars"][name][key] = _json_scalar(value, key)
        for i, bn in enumerate(getattr(self.model, "bn_params", None) or []):
            for key in ("running_mean", "running_var"):
                if key in bn:
                    arrays[f"bn/{i}/{key}"] = bn[key]
                    meta["bn_keys"].append([i, key])
        directory = os.path.dirname(os.fspath(path))
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(meta)), **arrays)
        return path

    def _settings(self):
        rule = self.update_rule_name
        return {"update_rule": rule if isinstance(rule, str) else getattr(rule, "__name__", "?"),
                "optim_config": {k: _json_scalar(v, k) for k, v in self.optim_config.items()},
                "lr_decay": self.lr_decay, "batch_size": self.batch_size,
                "num_epochs": self.num_epochs, "num_train_samples": self.num_train_samples,
                "num_val_samples": self.num_val_samples, "checkpoint_name": self.checkpoint_name,
                "print_every": self.print_every, "verbose": self.verbose, "seed": self.seed,
                "time_budget": self.time_budget, "processes": self.processes}

    @classmethod
    def load_checkpoint(cls, path, model, data, **kwargs):
        """Rebuild a Solver from ``save_checkpoint``'s file, ready to ``train()`` on.

        ``model`` must have parameters with the saved names and shapes; its ``params`` are
        overwritten with the saved current parameters. ``kwargs`` override saved settings (e.g.
        a larger ``num_epochs`` to train longer, ``verbose``, or ``update_rule`` when the saved
        rule was a custom callable).
        """
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(f["__meta__"].item())
            arrays = {k: f[k] for k in f.files if k != "__meta__"}
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: checkpoint format {meta.get('format')!r} is not "
                             f"{CHECKPOINT_FORMAT}")
        settings = {**meta["settings"], **kwargs}
        if settings["update_rule"] not in optim.UPDATE_RULES and "update_rule" not in kwargs:
            raise ValueError(f"{path} was trained with the custom update rule "
                             f"{settings['update_rule']!r}; pass update_rule=<callable>")
        solver = cls(model, data, **settings)
        saved = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("params/")}
        if {k: v.shape for k, v in saved.items()} != {
                k: np.shape(v) for k, v in model.params.items()}:
            raise ValueError(
                f"{path} holds parameters {sorted((k, v.shape) for k, v in saved.items())} but "
                f"the model has {sorted((k, np.shape(v)) for k, v in model.params.items())}")
        model.params.update(saved)
        solver.best_params = {k.split("/", 1)[1]: v for k, v in arrays.items()
                              if k.startswith("best_params/")}
        solver.optim_configs = {name: dict(scalars)
                                for name, scalars in meta["optim_scalars"].items()}
        for key, value in arrays.items():
            if key.startswith("optim/"):
                _, name, state = key.split("/", 2)
                solver.optim_configs[name][state] = value
        for i, key in meta["bn_keys"]:
            model.bn_params[i][key] = arrays[f"bn/{i}/{key}"]
        for name in ("epoch", "best_val_acc", "loss_history", "train_acc_history",
                     "val_acc_history", "stopped_early"):
            setattr(solver, name, meta[name])
        solver.rng.bit_generator.state = meta["rng"]
        solver.eval_rng.bit_generator.state = meta["eval_rng"]
        return solver


def _resolve_update_rule(rule):
    if callable(rule):
        return rule
    if isinstance(rule, str):
        return optim.get_update_rule(rule)
    raise ValueError(f"update_rule={rule!r} must be a name in {sorted(optim.UPDATE_RULES)} "
                     "or a callable")


def _check_real(value, name, positive=False):
    if isinstance(value, bool) or not isinstance(value, Real) or value < 0 or (
            positive and value == 0):
        rule = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r} must be a number {rule}")
    return float(value)


def _optional_int(value, name):
    return None if value is None else check_int(value, name, 1)


def _json_scalar(value, key):
    """A config value as a JSON-safe Python scalar (ValueError for anything else)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"cannot save optimizer config entry {key}={value!r} in a checkpoint")
