"""L2 regularisation of a classifier's weights, shared by the classifiers' ``loss`` methods."""

from __future__ import annotations

import numpy as np


def add_l2(reg, params, grads, names):
    """Add the L2 term ``0.5 * reg * sum(W**2)`` of the weights ``names`` to ``grads`` and
    return its loss.

    Each ``grads[name]`` gains ``reg * params[name]``, in place: the gradients are the
    classifier's own new arrays (from the backward pass), so nothing the caller holds changes.
    With ``reg == 0`` nothing is computed (no pass over the weights) and the loss is 0.0.

    Inputs:
    - reg: regularisation strength (>= 0)
    - params: dict name -> weight array
    - grads: dict name -> gradient array of the same shape (updated)
    - names: the weights to regularise

    Returns:
    - the regularisation loss, a float
    """
    if reg == 0:
        return 0.0
    loss = 0.0
    for name in names:
        w = params[name]
        loss += 0.5 * reg * float(np.sum(w * w))
        grads[name] += reg * w
    return loss
