"""Plot of ``cs231n_lib.memory``'s per-layer accounting: bytes of activations vs parameters."""

from __future__ import annotations

import numpy as np

from cs231n_lib import architectures as arch
from cs231n_lib.memory import itemsize, layer_table


def plot_memory(spec: arch.Spec, batch: int = 1, dtype="float32"):
    """Bar chart of bytes per layer: activations vs parameters (log scale). Returns the figure."""
    import matplotlib.pyplot as plt

    rows = [r for r in layer_table(spec)[1:] if r.activations or r.params]
    item = itemsize(dtype)
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(rows)), 4))
    ax.bar(x - 0.2, [item * batch * r.activations for r in rows], 0.4, label="activations")
    ax.bar(x + 0.2, [item * r.params for r in rows], 0.4, label="parameters")
    ax.set_yscale("log")
    ax.set_xticks(x, [r.label for r in rows], rotation=90, fontsize=7)
    ax.set_ylabel(f"bytes ({np.dtype(dtype).name}, batch {batch})")
    ax.set_title(f"{spec.name}: memory per layer")
    ax.legend()
    fig.tight_layout()
    return fig
