"""A training step split between this process and a worker process: each computes the loss and
the gradients of half of the minibatch (data parallelism), for ``Solver(..., processes=2)``.

Why processes: a small network's layers (notebook 6's, 10-40M multiply-adds each) are many numpy
calls on small arrays, which hold the GIL, so the layers' own threads (``parallel``) gain little
from a second core (measured on this project's 2-core VM: 1.07-1.12x for notebook 6's networks,
against 1.74x for ThreeLayerConvNet 32/7/100). Two processes do not share a GIL. Measured with
bench/train_step.py (batch 50, Adam; four runs), a step against the unsplit one's:
small_pool_net 0.60-0.74, all_conv_net 0.68-0.95, notebook 6's ThreeLayerConvNet 16/5/100
0.91-0.97 (the two halves compete for the shared cache and memory, and its 313,600-weight layer
is copied, averaged and updated every step). For large networks it does not pay: copying
ThreeLayerConvNet 32/3/500's 4.1M parameters every step made its step 1.14-1.26x slower. Hence
an option, not the default.

Same numbers: the halves' losses and gradients are averaged with the halves' sizes as weights.
For a model whose loss is the mean of per-example losses plus a term of the parameters only
(regularisation), that is the whole batch's loss and gradient, up to rounding (``why_not``
says which models are such). Batch normalisation (the batch's statistics) and dropout (random
masks) are not, and run unsplit.

How: the worker is a fresh interpreter, ``python -m cs231n_lib.split_step`` (not a fork of a
process that runs threads, and not multiprocessing's spawn, which would import the caller's
own script again in the worker), with its own copy of the model, one layer thread and one BLAS
thread. Every step copies the parameters and the second half of the batch into shared memory,
sends the go through a pipe, computes the first half here (in this thread: the worker has the
other core), and reads the worker's gradients from shared memory.

Nothing is lost when the worker cannot help. Until it is ready (it starts in the background),
when it cannot be started (a sandbox's process limit, no shared memory, a model that does not
pickle), when it fails, dies or does not answer in ``REPLY_TIMEOUT`` seconds, the step is
computed here, and after a failure the split stays off: ``status`` says why.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import weakref
from multiprocessing import resource_tracker, shared_memory
from multiprocessing.connection import Connection

import numpy as np

from cs231n_lib import heap, parallel

ALIGN = 64  # bytes: each array in shared memory starts on a cache line
READY_TIMEOUT = 60.0  # seconds the worker may take to start before the split gives up
REPLY_TIMEOUT = 60.0  # seconds a step's half may take in the worker before it is given up
POLL = 0.05  # seconds between checks that the worker is alive while waiting for it


def why_not(model) -> str | None:
    """None when ``model``'s loss splits over the batch (the mean of per-example losses plus
    a term of the parameters only), else the reason it does not or may not."""
    from cs231n_lib.classifiers.cnn import ThreeLayerConvNet
    from cs231n_lib.classifiers.convnet import ConvNet
    from cs231n_lib.classifiers.fc_net import FullyConnectedNet

    if type(model) is ThreeLayerConvNet:
        return None
    if type(model) is ConvNet:
        kinds = _kinds(model.nodes)
        if kinds & {"bn", "dropout"}:
            return "its batch normalisation or dropout depends on the whole batch"
        return None
    if type(model) is FullyConnectedNet:
        if model.normalization is not None or model.use_dropout:
            return "its batch normalisation or dropout depends on the whole batch"
        return None
    return (f"{type(model).__name__} is not one of the library's classifiers, whose losses "
            "are known to be means over the examples")


def _kinds(nodes) -> set:
    """The layer kinds of ConvNet nodes, residual and inception blocks' inside included."""
    kinds = set()
    for node in nodes:
        kinds.add(node.kind)
        for child in node.children:
            kinds |= _kinds(child)
    return kinds


class _Layout:
    """Where each parameter (or its gradient) lives in one shared buffer: name -> (byte offset,
    shape, dtype)."""

    def __init__(self, params):
        self.entries, offset = {}, 0
        for name, value in params.items():
            value = np.asarray(value)
            self.entries[name] = (offset, value.shape, value.dtype.str)
            offset += -(-value.nbytes // ALIGN) * ALIGN
        self.nbytes = max(offset, 1)

    def matches(self, params) -> bool:
        return params.keys() == self.entries.keys() and all(
            np.shape(v) == self.entries[k][1] and np.asarray(v).dtype.str == self.entries[k][2]
            for k, v in params.items())

    def views(self, buf) -> dict:
        return {name: np.ndarray(shape, np.dtype(dtype), buf, offset)
                for name, (offset, shape, dtype) in self.entries.items()}


class _Shared:
    """The shared buffers of one split: parameters, gradients, the second half's X and y."""

    def __init__(self, layout, x_shape, x_dtype, y_dtype):
        x_shape, x_dtype, y_dtype = tuple(x_shape), np.dtype(x_dtype), np.dtype(y_dtype)
        sizes = (layout.nbytes, layout.nbytes, max(1, int(np.prod(x_shape)) * x_dtype.itemsize),
                 max(1, x_shape[0] * y_dtype.itemsize))
        self.blocks = []
        try:
            for size in sizes:
                self.blocks.append(shared_memory.SharedMemory(create=True, size=size))
        except BaseException:
            self.close()
            raise
        self.spec = (layout, [b.name for b in self.blocks], x_shape, x_dtype.str, y_dtype.str)
        self.params, self.grads, self.X, self.y = _views(self.blocks, layout, x_shape,
                                                         x_dtype.str, y_dtype.str)

    def close(self):
        # numpy keeps no export of the blocks' buffers, so closing them leaves any view of them
        # pointing at unmapped memory: drop ours first (nothing else keeps one)
        self.params = self.grads = self.X = self.y = None
        for block in self.blocks:
            block.close()
            block.unlink()
        self.blocks = []


def _views(blocks, layout, x_shape, x_dtype, y_dtype):
    """Arrays over the four shared blocks: parameters and gradients (dicts), X and y."""
    return (layout.views(blocks[0].buf), layout.views(blocks[1].buf),
            np.ndarray(x_shape, np.dtype(x_dtype), blocks[2].buf),
            np.ndarray((x_shape[0],), np.dtype(y_dtype), blocks[3].buf))


def _attach(name):
    """The trainer's shared block ``name``, which this process must not unlink when it ends."""
    try:
        return shared_memory.SharedMemory(name, track=False)  # Python 3.13+
    except TypeError:  # older: the block is registered with this process's resource tracker,
        block = shared_memory.SharedMemory(name)  # which would unlink it at exit
        resource_tracker.unregister(block._name, "shared_memory")
        return block


def _worker_main(inbox, outbox):
    """The worker process: the model's loss on the second half of each step's batch. The first
    message holds the pickled model and the shared buffers' spec."""
    blocks = []
    try:
        _, model_bytes, (layout, names, x_shape, x_dtype, y_dtype) = inbox.recv()
        parallel.set_num_threads(1)
        heap.keep_freed_memory()  # as the trainer's steps do (see heap)
        blocks = [_attach(name) for name in names]
        params, grads, X, y = _views(blocks, layout, x_shape, x_dtype, y_dtype)
        model = pickle.loads(model_bytes)
        model.params = dict(params)
        outbox.send(("ready",))
    except BaseException as e:  # noqa: BLE001 - reported to the trainer, which runs unsplit
        outbox.send(("error", f"the worker could not start: {type(e).__name__}: {e}"))
        return
    try:
        with parallel.blas_held():
            while True:
                message = inbox.recv()
                if message[0] == "stop":
                    break
                n = message[1]
                try:
                    loss, step_grads = model.loss(X[:n], y[:n])
                    for name, target in grads.items():
                        np.copyto(target, step_grads[name])
                    outbox.send(("done", float(loss)))
                except Exception as e:  # noqa: BLE001 - the trainer computes this half itself
                    outbox.send(("error", f"the worker's step failed: {type(e).__name__}: {e}"))
    except (EOFError, OSError):
        pass  # the trainer has gone
    finally:
        for block in blocks:
            block.close()


def _start_worker(model_bytes, spec):
    """Start ``python -m cs231n_lib.split_step`` with two pipes; returns (process, outbox to
    it, inbox from it) after sending it the model and the spec."""
    to_child, from_parent = os.pipe()[::-1]  # (write end, read end)
    from_child, to_parent = os.pipe()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1", parallel.ENV_VAR: "1",
           # this process's import path, so that the worker finds the same cs231n_lib and the
           # model's classes where they came from (a notebook may add a folder at run time)
           "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "cs231n_lib.split_step", str(from_parent), str(to_parent)],
            pass_fds=(from_parent, to_parent), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except BaseException:
        for fd in (to_child, from_parent, from_child, to_parent):
            os.close(fd)
        raise
    os.close(from_parent)
    os.close(to_parent)
    outbox, inbox = Connection(to_child, readable=False), Connection(from_child, writable=False)
    try:
        outbox.send(("init", model_bytes, spec))
    except BaseException:  # (the worker ended at once)
        _release(process, outbox, inbox, None)
        raise
    return process, outbox, inbox


class SplitStep:
    """One worker process for a model's training steps (see the module docstring).

    ``status``: "starting", "on", or "off: <reason>". ``loss(X, y)``: the model's
    ``(loss, grads)`` on the batch, split when the worker is ready, else computed here.
    ``close()``: stop the worker and free the shared memory (also done when the object is
    collected or the interpreter exits)."""

    def __init__(self, model, x_shape, x_dtype, y_dtype):
        """model: the model to train (copied into the worker now: its later parameters reach
        the worker through shared memory at every step, nothing else does); x_shape: the
        largest half-batch of X the worker must hold, (n, ...); x_dtype, y_dtype: of the
        batches' X and y."""
        self.model = model
        self.layout = _Layout(model.params)
        self.status, self._shared = "starting", None
        self._process = self._outbox = self._conn = None
        reason = why_not(model)
        if reason is not None:
            self.status = f"off: {reason}"
            return
        try:
            self._shared = _Shared(self.layout, x_shape, x_dtype, y_dtype)
            self._process, self._outbox, self._conn = _start_worker(pickle.dumps(model),
                                                                    self._shared.spec)
        except Exception as e:  # noqa: BLE001 - no worker: train in this process
            self._stop(f"no worker process could be started: {type(e).__name__}: {e}")
            return
        self._started = time.monotonic()
        self._finalizer = weakref.finalize(self, _release, self._process, self._outbox,
                                           self._conn, self._shared)

    # ------------------------------------------------------------------------- the worker
    def wait_ready(self, timeout=READY_TIMEOUT) -> str:
        """Block until the worker is ready or has failed (at most ``timeout`` seconds);
        returns ``status``."""
        if self.status == "starting":
            self._check_ready(timeout)
        return self.status

    def _check_ready(self, timeout=0.0) -> bool:
        if self.status != "starting":
            return self.status == "on"
        if timeout or self._conn.poll() or self._process.poll() is not None:
            reply = self._receive(timeout)
            if reply is not None and reply[0] == "ready":
                self.status = "on"
            elif reply is not None:
                self._stop(reply[1])
        if self.status == "starting" and time.monotonic() - self._started > READY_TIMEOUT:
            self._stop(f"the worker was not ready after {READY_TIMEOUT:g} s")
        return self.status == "on"

    def _receive(self, timeout):
        """The worker's next message, or None when ``timeout`` passed first; a dead worker or
        a broken pipe stops the split (and returns None)."""
        end = time.monotonic() + timeout
        try:
            while not self._conn.poll(min(POLL, max(0.0, end - time.monotonic()))):
                if self._process.poll() is not None and not self._conn.poll():
                    self._stop(f"the worker process ended (exit code {self._process.returncode})")
                    return None
                if time.monotonic() >= end:
                    return None
            return self._conn.recv()
        except (EOFError, OSError) as e:
            self._stop(f"the pipe from the worker broke: {type(e).__name__}: {e}")
            return None

    def _stop(self, reason):
        self.status = f"off: {reason}"
        self.close()

    def close(self):
        """Stop the worker and free the shared memory; the model trains unsplit from now on."""
        if self.status in ("starting", "on"):
            self.status = "off: closed"
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer()
        elif self._shared is not None:
            self._shared.close()
        self._shared = None

    # --------------------------------------------------------------------------- the step
    def loss(self, X, y):
        """``model.loss(X, y)``: split when the worker is ready and the batch fits."""
        n = len(X)
        second = n // 2
        first = n - second
        if (second == 0 or not self._check_ready() or second > len(self._shared.X)
                or not self.layout.matches(self.model.params)):
            return self.model.loss(X, y)
        shared = self._shared
        for name, value in self.model.params.items():
            np.copyto(shared.params[name], value)
        np.copyto(shared.X[:second], X[first:])
        np.copyto(shared.y[:second], y[first:])
        try:
            self._outbox.send(("step", second))
        except (OSError, ValueError) as e:
            self._stop(f"the pipe to the worker broke: {type(e).__name__}: {e}")
            return self.model.loss(X, y)
        try:
            with parallel.serial():  # the worker runs on the other core
                loss_a, grads = self.model.loss(X[:first], y[:first])
        except BaseException:  # (an interrupt): the worker's reply to this step must not be
            self._stop("a step was interrupted")  # taken for the next step's
            raise
        reply = self._receive(REPLY_TIMEOUT)
        if reply is not None and reply[0] == "done":
            loss_b, grads_b = reply[1], shared.grads
        else:
            if reply is None and self.status == "on":
                self._stop(f"the worker did not answer within {REPLY_TIMEOUT:g} s")
            elif reply is not None:
                self._stop(reply[1])
            loss_b, grads_b = self.model.loss(X[first:], y[first:])  # the half, here
        a, b = first / n, second / n
        for name, g in grads.items():  # a * g + b * g_b, in g (a fresh array of this step)
            if first != second:  # (equal halves: a / b == 1, a pass that changes nothing)
                g *= a / b
            g += grads_b[name]
            g *= b
        return a * loss_a + b * loss_b, grads


def _release(process, outbox, inbox, shared):
    """Stop the worker process and free the shared memory (the finalizer of a SplitStep)."""
    try:
        outbox.send(("stop",))
    except (OSError, ValueError):
        pass
    try:
        process.wait(2)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(2)
    outbox.close()
    inbox.close()
    if shared is not None:
        shared.close()


if __name__ == "__main__":  # the worker: python -m cs231n_lib.split_step <inbox fd> <outbox fd>
    _worker_main(Connection(int(sys.argv[1]), writable=False),
                 Connection(int(sys.argv[2]), readable=False))
