"""Memory accounting for any architecture spec: activations, parameters, MACs and bytes.

The three sources of memory in the CS231n notes:

* activations: every layer's output, kept for the backward pass, plus a gradient of the same size;
* parameters: weights and biases, their gradients, and the optimizer's per-parameter state
  (0 copies for SGD, 1 for momentum/Adagrad/RMSProp, 2 for Adam);
* the data batch.

Training memory = activations x 2 + parameters x (2 + optimizer state) + data batch.
Inference memory = parameters + the largest set of activations alive at once: a layer's input
and output, plus any tensor held by an open skip connection or inception branch ("keep only the
current layer"). All counts are per example unless a batch is given. "MB" in the notes is MiB
(2^20 bytes); we print both.

Command line: ``cs231n-memory vgg16 --batch 32 --optimizer adam`` (the code is in
``memory_cli``); the per-layer bar chart is ``memory_plot.plot_memory``.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from math import prod

import numpy as np

from cs231n_lib import architectures as arch
from cs231n_lib.exercise import exercise
from cs231n_lib.shapes import output_size

MB = 10 ** 6
MIB = 2 ** 20

# Extra per-parameter copies an optimizer keeps (beyond the weights and their gradients).
OPTIMIZER_STATE = {"sgd": 0, "sgd_momentum": 1, "momentum": 1, "adagrad": 1, "rmsprop": 1,
                   "adam": 2}


@dataclass(frozen=True)
class Row:
    """One line of the per-layer table (counts per example).

    ``activations`` is the NEW storage the layer's output takes (0 for an in-place ReLU or a
    Flatten view); ``size`` is the number of elements in the output either way.
    """

    name: str
    label: str
    shape: tuple
    size: int
    activations: int
    weights: int
    biases: int
    macs: int
    depth: int = 0

    @property
    def params(self) -> int:
        return self.weights + self.biases


def _leaf_row(layer, shape, name, depth):
    out = arch.out_shape(layer, shape)
    view = isinstance(layer, arch.Flatten) or getattr(layer, "inplace", False)
    w, b = arch.param_count(layer, shape)
    return Row(name, layer.label(), out, prod(out), 0 if view else prod(out), w, b,
               arch.layer_macs(layer, shape), depth), out


def _rows(layers, shape, prefix, depth, rows):
    for i, layer in enumerate(layers):
        name = f"{prefix}{i}"
        if isinstance(layer, arch.Residual):
            _rows(layer.body, shape, f"{name}.body.", depth + 1, rows)
            _rows(layer.shortcut, shape, f"{name}.short.", depth + 1, rows)
            out = arch.out_shape(layer, shape)
            rows.append(Row(f"{name}.add", "add", out, prod(out), prod(out), 0, 0, 0, depth + 1))
            if layer.relu:
                rows.append(Row(f"{name}.relu", "relu", out, prod(out), 0, 0, 0, 0, depth + 1))
        elif isinstance(layer, arch.Inception):
            for k, branch in enumerate(layer.branches):
                _rows(branch, shape, f"{name}.b{k}.", depth + 1, rows)
            out = arch.out_shape(layer, shape)
            rows.append(Row(f"{name}.cat", "concat", out, prod(out), prod(out), 0, 0, 0,
                            depth + 1))
        else:
            row, out = _leaf_row(layer, shape, name, depth)
            rows.append(row)
            shape = out
            continue
        shape = out
    return shape


def layer_table(spec: arch.Spec) -> list[Row]:
    """Per-layer rows, starting with the input; composite blocks are expanded (depth > 0)."""
    size = prod(spec.input)
    rows = [Row("input", "input", tuple(spec.input), size, size, 0, 0, 0)]
    _rows(spec.layers, tuple(spec.input), "", 0, rows)
    return rows


def totals(spec: arch.Spec) -> dict:
    """Per-example totals: params (weights, biases), activations (excluding the input), MACs."""
    rows = layer_table(spec)
    body = rows[1:]
    return {
        "input": rows[0].size,
        "activations": sum(r.activations for r in body),
        "weights": sum(r.weights for r in body),
        "biases": sum(r.biases for r in body),
        "params": sum(r.params for r in body),
        "macs": sum(r.macs for r in body),
    }


# ----------------------------------------------------------------------------------------------
# Inference: the largest set of activations alive at once


def _is_view(layer):
    """Layers whose output shares the input's storage at inference (dropout is the identity)."""
    return isinstance(layer, (arch.Flatten, arch.Dropout))


def _live(layers, shape, x_count, x_owned, held):
    """Walk a sequence in inference order.

    ``x_count`` is the storage attributed to the current input, ``x_owned`` whether this
    sequence may overwrite/free it (False for the network input and for a block's input, which
    its block keeps for the shortcut or the other branches), ``held`` everything else alive.
    Returns (out_shape, out_count, out_owned, peak). This mirrors ``ConvNet.infer`` exactly.
    """
    peak = held + x_count
    for layer in layers:
        out_shape = arch.out_shape(layer, shape)
        if isinstance(layer, (arch.Residual, arch.Inception)):
            if isinstance(layer, arch.Residual):
                # an empty shortcut is the identity: the block input itself, nothing new
                branches = (layer.body,) + ((layer.shortcut,) if layer.shortcut else ())
            else:
                branches = layer.branches
            outs = []
            for branch in branches:  # earlier branch outputs stay alive until the add/concat
                _, count, _, inner = _live(branch, shape, x_count, False, held + sum(outs))
                outs.append(count)
                peak = max(peak, inner)
            out_count = prod(out_shape)
            peak = max(peak, held + x_count + sum(outs) + out_count)  # the add / concat
            # (a residual's ReLU runs in place on the freshly added output: nothing new)
        elif _is_view(layer) or (getattr(layer, "inplace", False) and x_owned):
            shape = out_shape  # same storage as the input
            continue
        else:
            out_count = prod(out_shape)
            peak = max(peak, held + x_count + out_count)
        if not x_owned:
            held += x_count  # someone else still holds the old input
        shape, x_count, x_owned = out_shape, out_count, True
    return shape, x_count, x_owned, peak


def inference_live(spec: arch.Spec, include_input: bool = True) -> int:
    """Per-example elements alive at the worst moment of an inference pass.

    With ``include_input=False`` the input batch is not counted (it belongs to the caller; this
    is what ``memory_measure`` can see).
    """
    x = prod(spec.input) if include_input else 0
    return _live(spec.layers, tuple(spec.input), x, False, 0)[3]


# ----------------------------------------------------------------------------------------------
# Bytes


def itemsize(dtype) -> int:
    """Bytes per element of ``dtype`` (ValueError for a non-numeric dtype)."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ValueError(f"dtype={dtype!r} is not a numpy dtype") from err
    if dt.kind not in "fiuc":
        raise ValueError(f"dtype={dtype!r} must be numeric")
    return dt.itemsize


def optimizer_state(optimizer: str) -> int:
    """Extra per-parameter copies kept by ``optimizer``."""
    if optimizer not in OPTIMIZER_STATE:
        raise ValueError(f"optimizer={optimizer!r} must be one of {sorted(OPTIMIZER_STATE)}")
    return OPTIMIZER_STATE[optimizer]


def memory_budget(spec: arch.Spec, batch: int = 1, dtype="float32", optimizer="sgd") -> dict:
    """Bytes of each part of training and inference memory for ``batch`` examples."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch={batch!r} must be an integer >= 1")
    t = totals(spec)
    item = itemsize(dtype)
    copies = 2 + optimizer_state(optimizer)
    parts = {
        "activation_bytes": item * batch * t["activations"],
        "activation_grad_bytes": item * batch * t["activations"],
        "param_bytes": item * t["params"],
        "param_grad_bytes": item * t["params"],
        "optimizer_state_bytes": item * t["params"] * (copies - 2),
        "data_bytes": item * batch * t["input"],
    }
    train = sum(parts.values())
    inference = item * (t["params"] + batch * inference_live(spec))
    return {**parts, "train_bytes": train, "inference_bytes": inference}


def max_batch(spec: arch.Spec, budget_bytes: int, dtype="float32", optimizer="sgd",
              mode: str = "train") -> int:
    """Largest batch whose training (or inference, ``mode="test"``) memory fits the budget."""
    if mode not in ("train", "test"):
        raise ValueError(f"mode={mode!r} must be 'train' or 'test'")
    one = memory_budget(spec, 1, dtype, optimizer)
    two = memory_budget(spec, 2, dtype, optimizer)
    key = "train_bytes" if mode == "train" else "inference_bytes"
    per_example = two[key] - one[key]   # memory is affine in the batch size
    fixed = one[key] - per_example
    return max(0, (int(budget_bytes) - fixed) // per_example)


def mb_mib(nbytes: int) -> str:
    """``"77.1 MB / 73.5 MiB"``."""
    return f"{nbytes / MB:,.1f} MB / {nbytes / MIB:,.2f} MiB"


# ----------------------------------------------------------------------------------------------
# The numbers in the notes


NOTES_KINDS = ("input", "conv", "pool", "fc")


def notes_table(spec: arch.Spec) -> list[tuple[str, tuple, int, int]]:
    """The notes' VGG-style table: (label, shape, activations, weights) for INPUT, CONV, POOL and
    FC rows (ReLU is in place; weights exclude biases, as in the notes)."""
    return [(r.label, r.shape, r.size, r.weights) for r in layer_table(spec)
            if r.label.startswith(NOTES_KINDS) or "pool" in r.label]


def memory_example(dtype="float32") -> dict:
    """The notes' three [224x224x64] volumes, and the Chinese translation's single volume."""
    rows = layer_table(arch.three_conv64())[1:]
    item = itemsize(dtype)
    three = sum(r.activations for r in rows)
    one = rows[0].activations
    return {
        "volumes": len(rows),
        "activations": three,                    # 9,633,792
        "train_bytes": 2 * item * three,         # with gradients: 77,070,336 B = 73.5 MiB
        # the notes' "72MB" read two ways (04_memory weighs them): 224*224*64 rounded to 3.0M
        # activations with MB = 10^6 bytes, or to 3 Mi activations with MB = MiB (the notes'
        # own unit); both give 72 for three volumes with gradients
        "reading_72MB_decimal": 3.0e6 * 3 * 2 * item,        # 72,000,000 B = 72 MB
        "reading_72MB_binary": 3 * 2**20 * 3 * 2 * item,     # 75,497,472 B = 72 MiB
        "single_volume": one,                    # 3,211,264 = 12.25 MiB
        "single_bytes": item * one,
        "single_train_bytes": 2 * item * one,    # 24.5 MiB
    }


def first_layer_activations() -> dict:
    """Activations of the first conv layer: the compromise early networks made for memory."""
    out = {}
    for label, build in (("VGG 3x3/1", arch.vgg16), ("ZF Net 7x7/2", arch.zfnet),
                         ("AlexNet 11x11/4", arch.alexnet)):
        out[label] = layer_table(build())[1].activations
    return out


# ----------------------------------------------------------------------------------------------
# Exercises for the memory notebook (standalone: nothing else in the library calls them)


@exercise("04_memory", "A memory calculator for a simple layer list")
def simple_layer_memory(input_shape, layers):
    """Output shape, activations and parameters of a plain list of layers.

    Inputs:
    - input_shape: (C, H, W)
    - layers: list of tuples ("conv", F, size, stride, pad), ("pool", size, stride) or
      ("fc", units); an "fc" layer flattens its input.

    Returns a list of (kind, output shape, activations, parameters incl. biases), one per layer;
    shapes are tuples of Python ints, counts are Python ints.
    """
    ### BEGIN SOLUTION
    shape, table = tuple(input_shape), []
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            F, size, stride, pad = layer[1:]
            C, H, W = shape
            shape = (F, output_size(H, size, stride, pad, axis="H"),
                     output_size(W, size, stride, pad, axis="W"))
            params = F * C * size * size + F
        elif kind == "pool":
            size, stride = layer[1:]
            C, H, W = shape
            shape = (C, output_size(H, size, stride, axis="H"),
                     output_size(W, size, stride, axis="W"))
            params = 0
        elif kind == "fc":
            params = int(np.prod(shape)) * layer[1] + layer[1]
            shape = (layer[1],)
        else:
            raise ValueError(f"unknown layer kind {kind!r}; use 'conv', 'pool' or 'fc'")
        table.append((kind, shape, int(np.prod(shape)), params))
    ### END SOLUTION
    return table


@exercise("04_memory", "Bytes, MB and MiB")
def activation_bytes(count, dtype="float32", with_gradients=False):
    """Bytes taken by ``count`` values of ``dtype`` (twice that with gradients), in B, MB, MiB.

    Returns a tuple (nbytes: int, megabytes: float, mebibytes: float).
    """
    nbytes = int(count) * np.dtype(dtype).itemsize * (2 if with_gradients else 1)
    return nbytes, nbytes / 10 ** 6, nbytes / 2 ** 20


# ----------------------------------------------------------------------------------------------
# Presentation


def format_table(spec: arch.Spec, batch: int = 1, dtype="float32", optimizer="sgd") -> str:
    """The per-layer table and the totals as text."""
    rows = layer_table(spec)
    lines = [f"{spec.name}: input {'x'.join(map(str, spec.input))}",
             f"{'layer':<24}{'output':>14}{'activations':>13}{'weights':>13}{'biases':>8}"
             f"{'MACs':>16}"]
    for r in rows:
        name = r.label if r.name == r.label else "  " * r.depth + f"{r.name} {r.label}"
        lines.append(f"{name[:24]:<24}{'x'.join(map(str, r.shape)):>14}{r.activations:>13,}"
                     f"{r.weights:>13,}{r.biases:>8,}{r.macs:>16,}")
    t = totals(spec)
    budget = memory_budget(spec, batch, dtype, optimizer)
    param_bytes = (budget["param_bytes"] + budget["param_grad_bytes"]
                   + budget["optimizer_state_bytes"])
    lines += [
        "-" * 88,
        f"params {t['params']:,} (weights {t['weights']:,} + biases {t['biases']:,}); "
        f"MACs {t['macs']:,} per example",
        f"activations {t['activations']:,} per example (+ input {t['input']:,} = "
        f"{t['activations'] + t['input']:,})",
        f"batch {batch}, {np.dtype(dtype).name}, {optimizer}:",
        f"  activations + gradients "
        f"{mb_mib(budget['activation_bytes'] + budget['activation_grad_bytes'])}",
        f"  params + grads + state  {mb_mib(param_bytes)}",
        f"  data batch              {mb_mib(budget['data_bytes'])}",
        f"  training memory         {mb_mib(budget['train_bytes'])}",
        f"  inference memory        {mb_mib(budget['inference_bytes'])}",
    ]
    if spec.note:
        lines.append(textwrap.fill(f"note: {spec.note}", 88, subsequent_indent="      "))
    return "\n".join(lines)


def summary(spec: arch.Spec, batch: int = 1, dtype="float32", optimizer="sgd") -> dict:
    """Totals and bytes as one JSON-friendly dict."""
    t = totals(spec)
    budget = memory_budget(spec, batch, dtype, optimizer)
    return {"name": spec.name, "input_shape": list(spec.input), "batch": batch,
            "dtype": np.dtype(dtype).name, "optimizer": optimizer, **t,
            "inference_live": inference_live(spec), **budget}
