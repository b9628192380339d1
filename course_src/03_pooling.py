# Source of assignments/03_pooling/03_pooling.ipynb (build: python course_src/build.py).

# %% [markdown]
# # 3. Pooling
#
# Pooling (汇聚) summarises each window of a feature map, channel by channel, and so shrinks the
# volume (数据体) in width and height while keeping its depth. This notebook implements max and
# average pooling forward and backward, compares them on a photo and in a small trained network,
# adds L2-norm pooling and asks why max pooling won, and then drops pooling altogether, as the
# all-convolutional net does. Terms are defined in the
# [glossary of notebook 1](../01_convolution/01_convolution.ipynb).
#
# **How to work.** Write your code where the line `# YOUR CODE HERE` stands (remove the
# `raise NotImplementedError()` under it), run the test cell below each exercise, and fix what its
# message reports (type, then shape, then values). Hidden tests on random inputs run at grading
# time.
#
# | Part | Topic | Points |
# |---|---|---|
# | 1 | Max pooling: forward | 5 |
# | 2 | Max pooling: backward | 7 |
# | 3 | Average pooling: forward and backward | 6 |
# | 4 | Max vs average: a photo and a small trained network | 2 |
# | 5 | General pooling: L2-norm pooling | 5 |
# | 6 | Without pooling: the all-convolutional net | 10 |
#
# **Total: 35 points**
#
# Conventions: NCHW tensors; `pool_param` holds `pool_height`, `pool_width` and `stride`; windows
# may overlap (stride smaller than the window); the output size follows the rule
# `(H - pool_height) / stride + 1`, and a non-integer is an error (`shapes.pool_geometry` checks
# it for you).

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np

from cs231n_lib import architectures as arch
from cs231n_lib import shapes
from cs231n_lib.budget import budget
from cs231n_lib.call_trace import trace_call
from cs231n_lib.checks import assert_array, assert_value, record
from cs231n_lib.classifiers.convnet import ConvNet
from cs231n_lib.data import load_dataset, load_image
from cs231n_lib.fast_layers import (
    avg_pool_backward_fast,
    avg_pool_forward_fast,
    conv_forward_fast,
    max_pool_backward_fast,
    max_pool_forward_fast,
)
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error
from cs231n_lib.solver import Solver
from cs231n_lib.timing import time_layer
from cs231n_lib.vis_utils import plot_timings

plt.rcParams["figure.figsize"] = (9, 3.5)

# %% [markdown]
# ## 1. Max pooling: forward (5 points)
#
# Output `(n, c, i, j)` is the largest value of channel c of image n in the window whose top-left
# corner is at row `i * stride`, column `j * stride`. The common settings are 2 x 2 windows with
# stride 2 (non-overlapping) and 3 x 3 windows with stride 2 (overlapping, as in AlexNet). How
# much each keeps of a 224 x 224 x 64 volume (225 x 225 for the 3 x 3 windows, which must tile
# the input exactly):

# %%
for size, (F, S) in ((224, (2, 2)), (225, (3, 2))):
    _, _, _, H_out, W_out = shapes.pool_geometry(
        (1, 64, size, size), {"pool_height": F, "pool_width": F, "stride": S})
    kept = H_out * W_out / size**2
    print(f"{F}x{F} windows, stride {S}: {size}x{size}x64 -> {H_out}x{W_out}x64, keeps "
          f"{kept:.1%} of the activations, discards {1 - kept:.1%}; each input pixel is in up "
          f"to {((F + S - 1) // S) ** 2} windows")

# %% [markdown]
# The max of a window is kept and the rest discarded, so what reaches the next layer is "how
# strongly does this feature respond somewhere in the window", with a little tolerance to where.
#
# **Exercise.** Write `max_pool_forward_naive` with an explicit Python loop over the output rows
# (`for i in range(H_out)`); inside it, loop over the output columns too (the simplest) or
# vectorise across the columns of row `i`, and vectorise over N and C. Validate with
# `shapes.pool_geometry(x.shape, pool_param)`, which returns `(pool_height, pool_width, stride,
# H_out, W_out)`. Do not call `sliding_window_view`, `as_strided` or the course library's pooling
# layers. The grader checks both rules: a Python loop that runs at least once per output row,
# and none of these calls.

# %% solution: max_pool_forward
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes; require loop
def max_pool_forward_naive(x, pool_param):
    """
    Naive forward pass of a max-pooling layer.

    Inputs:
    - x: input of shape (N, C, H, W)
    - pool_param: dict with 'pool_height', 'pool_width' and 'stride'

    Returns a tuple of:
    - out: output of shape (N, C, H_out, W_out), dtype of x
    - cache: what your max_pool_backward_naive needs, e.g. (x, pool_param)
    """
    ### BEGIN SOLUTION
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    out = np.empty(x.shape[:2] + (H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = window.max(axis=(2, 3))
    cache = (x, pool_param)
    ### END SOLUTION
    return out, cache


# %% [markdown]
# A hand-checkable case with overlapping 3 x 3 windows at stride 2 on a 5 x 5 image: the windows
# cover rows (and columns) 0-2 and 2-4, so row and column 2 belong to two windows each. The 9 at
# row 1, column 2 is the maximum of both top windows.

# %% tests: test_max_pool_forward (2 points)
"""max_pool_forward_naive: overlapping 3x3/2 windows by hand, and 2x2/2 against a reshape."""
X5 = np.array([[1.0, 5, 2, 0, 3],
               [4, 0, 9, 1, 1],
               [2, 8, 3, 7, 6],
               [0, 1, 2, 5, 4],
               [3, 6, 1, 0, 2]])[None, None]  # (1, 1, 5, 5)
pool3 = {"pool_height": 3, "pool_width": 3, "stride": 2}
out, _ = max_pool_forward_naive(X5, pool3)
record("max_forward_overlap", out, kind="equal")
assert_array("out (3x3 windows, stride 2)", out, np.array([[[[9.0, 9], [8, 7]]]]))
rng = np.random.default_rng(0)
x = rng.standard_normal((2, 3, 6, 4)).astype(np.float32)
out, _ = max_pool_forward_naive(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
record("max_forward_2x2", out, kind="equal")
# non-overlapping 2x2 windows: split H and W into (blocks, 2) and take the max over the 2s
assert_array("out (2x2 windows, stride 2)", out, x.reshape(2, 3, 3, 2, 2, 2).max(axis=(3, 5)))
assert_value("dtype for float32 input", str(out.dtype), "float32")

# %% tests: test_max_pool_forward_hidden (3 points)
"""max_pool_forward_naive on random shapes and windows; loops, no library call (hidden tests)."""
### BEGIN HIDDEN TESTS
def _random_pool_case(rng, integers=False):
    """Random (x, pool_param, out_shape, label) with a valid output size: out_shape is the
    (N, C, H_out, W_out) drawn first, label names the case; integer-valued x has many ties."""
    N, C = (int(v) for v in rng.integers(1, 4, size=2))
    ph, pw, stride = (int(v) for v in rng.integers(1, 4, size=3))
    H_out, W_out = (int(v) for v in rng.integers(1, 5, size=2))
    shape = (N, C, (H_out - 1) * stride + ph, (W_out - 1) * stride + pw)
    x = rng.integers(0, 3, size=shape).astype(float) if integers else rng.standard_normal(shape)
    label = f"x {shape}, {ph}x{pw} windows, stride {stride}" + (", ties" if integers else "")
    return x, {"pool_height": ph, "pool_width": pw, "stride": stride}, (N, C, H_out, W_out), label


rng = np.random.default_rng(41)
for case in range(6):
    x, pool_param, _, label = _random_pool_case(rng)
    out, _ = max_pool_forward_naive(x, pool_param)
    record(f"max_forward_hidden_{case} ({label})", out, kind="equal")
x = rng.standard_normal((2, 3, 13, 13))
_, trace = trace_call(max_pool_forward_naive, x, {"pool_height": 3, "pool_width": 3, "stride": 2})
record("max_forward_loop_over_the_6_output_rows", trace.lines, kind="at_least", bound=6)
record("max_forward_no_library_shortcut", trace.shortcuts(), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Max pooling: backward (7 points)
#
# Only the maximum of a window affects the output, so the window's upstream gradient goes to the
# pixel that held it, and to no other. Two details:
#
# * **Ties**: when several pixels share the maximum, send the whole gradient to the *first* of
#   them in row-major order within the window (what `np.argmax` of the flattened window returns;
#   PyTorch and the library's fast layers do the same). Giving the whole gradient to every tied
#   pixel would count it several times; choosing one is a valid (sub)gradient, and a fixed rule
#   makes the result reproducible.
# * **Overlapping windows**: a pixel that is the maximum of several windows receives the **sum**
#   of their gradients.
#
# **Exercise.** Write `max_pool_backward_naive`.

# %% solution: max_pool_backward
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes; require loop
def max_pool_backward_naive(dout, cache):
    """
    Naive backward pass of a max-pooling layer.

    Inputs:
    - dout: upstream gradient of shape (N, C, H_out, W_out)
    - cache: the cache your max_pool_forward_naive returned

    Returns:
    - dx: gradient with respect to x, shape (N, C, H, W)
    """
    ### BEGIN SOLUTION
    x, pool_param = cache
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    N, C = x.shape[:2]
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    for i in range(H_out):
        for j in range(W_out):
            rows = slice(i * stride, i * stride + ph)
            cols = slice(j * stride, j * stride + pw)
            first = x[:, :, rows, cols].reshape(N, C, ph * pw).argmax(axis=2)  # (N, C)
            mask = np.arange(ph * pw) == first[:, :, None]  # (N, C, ph*pw): one True each
            dx[:, :, rows, cols] += mask.reshape(N, C, ph, pw) * dout[:, :, i, j, None, None]
    ### END SOLUTION
    return dx


# %% tests: test_max_pool_backward (3 points)
"""max_pool_backward_naive: overlapping windows and ties by hand; numerical gradient."""
_, cache = max_pool_forward_naive(X5, pool3)
dx = max_pool_backward_naive(np.array([[[[1.0, 2], [3, 4]]]]), cache)
record("max_backward_overlap", dx, kind="equal")
expected = np.zeros((1, 1, 5, 5))
expected[0, 0, 1, 2] = 1 + 2  # the 9: maximum of both top windows, gradients add up
expected[0, 0, 2, 1] = 3  # the 8: maximum of the bottom-left window
expected[0, 0, 2, 3] = 4  # the 7: maximum of the bottom-right window
assert_array("dx (3x3 windows, stride 2)", dx, expected)
ties = np.array([[3.0, 3, 0, 1], [1, 3, 1, 0]])[None, None]  # (1, 1, 2, 4)
_, cache = max_pool_forward_naive(ties, {"pool_height": 2, "pool_width": 2, "stride": 2})
dx = max_pool_backward_naive(np.array([[[[5.0, 7]]]]), cache)
record("max_backward_ties", dx, kind="equal")
# left window: three 3s tie, the first in row-major order (row 0, column 0) gets all of 5;
# right window: 0 1 / 1 0, the first 1 (row 0, column 3) gets 7
assert_array("dx with ties", dx, np.array([[[[5.0, 0, 0, 7], [0, 0, 0, 0]]]]))
rng = np.random.default_rng(1)
x = rng.standard_normal((2, 2, 5, 5))
dout = rng.standard_normal((2, 2, 2, 2))
_, cache = max_pool_forward_naive(x, pool3)
dx = max_pool_backward_naive(dout, cache)
record("max_backward_random", dx, rtol=1e-10, atol=1e-12)
dx_num = eval_numerical_gradient_array(lambda v: max_pool_forward_naive(v, pool3)[0], x, dout)
print(f"dx relative error vs numerical gradient: {rel_error(dx, dx_num):.2e}")
assert_array("dx vs numerical gradient", dx, dx_num, rtol=1e-6, atol=1e-8)

# %% tests: test_max_pool_backward_hidden (4 points)
"""max_pool_backward_naive on random shapes, with and without ties (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(42)
for case in range(8):
    x, pool_param, out_shape, label = _random_pool_case(rng, integers=case % 2 == 1)
    _, cache = max_pool_forward_naive(x, pool_param)
    dout = rng.standard_normal(out_shape)
    dx = max_pool_backward_naive(dout, cache)
    record(f"max_backward_hidden_{case} ({label})", dx, rtol=1e-12, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Average pooling: forward and backward (6 points)
#
# Average pooling outputs the mean of each window; in the backward pass each window's gradient is
# spread evenly, `dout / (pool_height * pool_width)`, over its pixels, and a pixel covered by
# several overlapping windows receives the sum of their shares. Average pooling is linear, so
# its backward pass is its transpose: `<avg_pool(x), y> = <x, avg_pool^T(y)>`.
#
# **Exercise.** Write `avg_pool_forward_naive` and `avg_pool_backward_naive`.

# %% solution: avg_pool
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes; require loop
def avg_pool_forward_naive(x, pool_param):
    """
    Naive forward pass of an average-pooling layer.

    Inputs and outputs as max_pool_forward_naive (the cache is yours to choose).
    """
    ### BEGIN SOLUTION
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    out = np.empty(x.shape[:2] + (H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = window.mean(axis=(2, 3))
    cache = (x.shape, pool_param)
    ### END SOLUTION
    return out, cache


def avg_pool_backward_naive(dout, cache):
    """
    Naive backward pass of an average-pooling layer.

    Inputs:
    - dout: upstream gradient of shape (N, C, H_out, W_out)
    - cache: the cache your avg_pool_forward_naive returned

    Returns:
    - dx: gradient with respect to x, shape (N, C, H, W)
    """
    ### BEGIN SOLUTION
    x_shape, pool_param = cache
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x_shape, pool_param)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i in range(H_out):
        for j in range(W_out):
            share = dout[:, :, i, j, None, None] / (ph * pw)  # (N, C, 1, 1)
            dx[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw] += share
    ### END SOLUTION
    return dx


# %% tests: test_avg_pool (2 points)
"""avg_pool forward and backward on the 5x5 example with overlapping 3x3/2 windows."""
out, cache = avg_pool_forward_naive(X5, pool3)
record("avg_forward_overlap", out, rtol=1e-12, atol=1e-12)
assert_array("out", out, np.array([[[[(1 + 5 + 2 + 4 + 0 + 9 + 2 + 8 + 3) / 9,
                                      (2 + 0 + 3 + 9 + 1 + 1 + 3 + 7 + 6) / 9],
                                     [(2 + 8 + 3 + 0 + 1 + 2 + 3 + 6 + 1) / 9,
                                      (3 + 7 + 6 + 2 + 5 + 4 + 1 + 0 + 2) / 9]]]]), rtol=1e-12)
dx = avg_pool_backward_naive(np.ones((1, 1, 2, 2)), cache)
record("avg_backward_overlap", dx, rtol=1e-12, atol=1e-12)
# with dout = 1 everywhere, dx counts the windows covering each pixel, divided by 9: along each
# axis rows 0, 1 are in one window, row 2 in two, rows 3, 4 in one
coverage = np.array([1.0, 1, 2, 1, 1])
assert_array("dx for dout = 1", dx, (np.outer(coverage, coverage) / 9)[None, None], rtol=1e-12)

# %% tests: test_avg_pool_hidden (4 points)
"""avg_pool forward and backward on random shapes and windows (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(43)
for case in range(6):
    x, pool_param, out_shape, label = _random_pool_case(rng)
    out, cache = avg_pool_forward_naive(x, pool_param)
    y = rng.standard_normal(out_shape)
    dx = avg_pool_backward_naive(y, cache)
    record(f"avg_forward_hidden_{case} ({label})", out, rtol=1e-10, atol=1e-12)
    record(f"avg_backward_hidden_{case} ({label})", dx, rtol=1e-10, atol=1e-12)
x = rng.standard_normal((2, 3, 13, 13))
pool3_2 = {"pool_height": 3, "pool_width": 3, "stride": 2}
(_, cache), fwd = trace_call(avg_pool_forward_naive, x, pool3_2)
_, bwd = trace_call(avg_pool_backward_naive, rng.standard_normal((2, 3, 6, 6)), cache)
record("avg_no_library_shortcut", fwd.shortcuts() + bwd.shortcuts(), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Max vs average: a photo and a small trained network (2 points)
#
# The notes: average pooling was common historically, but max pooling works better in practice.
# First, what each does to a photo. Both shrink the 512 x 512 image 8 times in each direction;
# the edge strength (mean absolute response of a Sobel filter, a measure of how much fine detail
# survives) is computed on the results.

# %%
camera = load_image("camera").astype(np.float64)[None, None] / 255.0  # (1, 1, 512, 512)
pool8 = {"pool_height": 8, "pool_width": 8, "stride": 8}
sobel = np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])[None, None]
pooled = {"input": camera}
pooled["max 8x8/8"], _ = max_pool_forward_naive(camera, pool8)
pooled["average 8x8/8"], _ = avg_pool_forward_naive(camera, pool8)
fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
for ax, (name, image) in zip(axes, pooled.items(), strict=True):
    edges = np.abs(conv_forward_fast(image, sobel, np.zeros(1), {"pad": 1})[0]).mean()
    ax.imshow(image[0, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(f"{name}: {image.shape[2]}x{image.shape[3]}")
    ax.axis("off")
    print(f"{name:>14}: mean brightness {image.mean():.3f}, edge strength {edges:.3f}")
plt.show()

# %% [markdown]
# Now inside a network. Two copies of the same small net, conv-relu-pool twice then a
# fully connected layer, differ only in the kind of pooling. Both train on the embedded
# Fashion-MNIST subset (28 x 28 grey images, 10 classes) with the same seed and budget.

# %%
data = load_dataset("fashion_small", num_training=budget(full=5000, graded=500),
                    num_validation=budget(full=1000, graded=500))
for split in ("X_train", "X_val", "X_test"):
    data[split] = data[split] / 255.0  # mean-subtracted already; now on a unit scale
TRAIN = {"update_rule": "adam", "optim_config": {"learning_rate": 2e-3}, "batch_size": 50,
         "num_epochs": budget(full=5, graded=2), "seed": 0, "verbose": False}


def train(spec):
    """Train a ConvNet built from spec with the settings above; return (model, solver)."""
    model = ConvNet(spec, seed=0)
    solver = Solver(model, data, **TRAIN)
    solver.train()
    return model, solver


specs = {"max pooling": arch.small_pool_net(input=(1, 28, 28), width=8)}
specs["average pooling"] = replace(specs["max pooling"], layers=tuple(
    replace(layer, kind="avg") if isinstance(layer, arch.Pool) else layer
    for layer in specs["max pooling"].layers))
results = {name: train(spec) for name, spec in specs.items()}
for name, (_, solver) in results.items():
    print(f"{name:>16}: best validation accuracy {solver.best_val_acc:.3f} "
          f"({len(data['X_train'])} training images, {TRAIN['num_epochs']} epochs, "
          f"{solver.train_seconds:.1f} s)")
for name, (_, solver) in results.items():
    plt.plot(solver.val_acc_history, "o-", label=name)
plt.xlabel("accuracy check (after the first step, then every epoch)")
plt.ylabel("validation accuracy")
plt.legend()
plt.show()

# %% [markdown]
# Use the printed numbers: what does max pooling keep that average pooling loses, on the photo and
# for a classifier? Is one run on a small data set enough to conclude that max pooling "works
# better"? What would you run to find out?

# %% [markdown] answer: q_max_vs_avg (2 points)
# **Reference answer.** Max pooling keeps the strongest response in each window: on the photo it
# keeps thin bright structures and more edge strength (and raises the mean brightness), where
# averaging blurs them; for a classifier it keeps "is this feature present anywhere in the
# window" rather than diluting a strong, localised feature with the weak responses around it.
# One run on a small subset is weak evidence: the difference can be within the run-to-run
# variation. Repeat with several seeds (and the full budget), report the mean and spread, and
# compare on held-out data.

# %% [markdown]
# ## 5. General pooling: L2-norm pooling (5 points)
#
# The notes: besides max pooling, a pooling unit can compute other functions, such as average
# pooling or **L2-norm pooling** (L-2范式汇聚), which outputs the Euclidean length of each window:
#
# $$y_{ij} = \sqrt{\textstyle\sum_{(r, s) \in \text{window}(i, j)} x_{rs}^2}.$$
#
# Its backward pass follows from $\partial y_{ij} / \partial x_{rs} = x_{rs} / y_{ij}$: each
# window's upstream gradient is shared among all its pixels in proportion to their values (a
# negative pixel gets a negative share), and a pixel in several overlapping windows receives the
# sum of its shares. A window of zeros has $y = 0$, where the norm has a corner (like $|x|$
# at $x = 0$) and no derivative: send its pixels a gradient of **0** there, a valid subgradient
# and what the hidden tests expect (never divide by zero: that gives NaN).
#
# **Exercise.** Write `l2_pool_forward_naive` and `l2_pool_backward_naive` under the same rules
# as the other pooling layers of this notebook: an explicit Python loop over the output rows (at
# least; vectorise over N and C), `shapes.pool_geometry` for the geometry, and no
# `sliding_window_view`, `as_strided` or course library layer. The grader checks both rules
# (a loop is required: the naive layers are the ones compared with the library's vectorised
# pooling at the end of this part).

# %% solution: l2_pool
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes; require loop
def l2_pool_forward_naive(x, pool_param):
    """
    Naive forward pass of an L2-norm pooling layer.

    Inputs and outputs as max_pool_forward_naive: out[n, c, i, j] is the L2 norm of the window
    of channel c of image n at row i * stride, column j * stride; dtype of x. The cache is
    yours to choose.
    """
    ### BEGIN SOLUTION
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    out = np.empty(x.shape[:2] + (H_out, W_out), dtype=x.dtype)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw]
            out[:, :, i, j] = np.sqrt((window * window).sum(axis=(2, 3)))
    cache = (x, out, pool_param)
    ### END SOLUTION
    return out, cache


def l2_pool_backward_naive(dout, cache):
    """
    Naive backward pass of an L2-norm pooling layer.

    Inputs:
    - dout: upstream gradient of shape (N, C, H_out, W_out)
    - cache: the cache your l2_pool_forward_naive returned

    Returns:
    - dx: gradient with respect to x, shape (N, C, H, W); 0 for the pixels of an all-zero
      window
    """
    ### BEGIN SOLUTION
    x, out, pool_param = cache
    ph, pw, stride, H_out, W_out = shapes.pool_geometry(x.shape, pool_param)
    dx = np.zeros(x.shape, dtype=np.result_type(x, dout))
    nonzero = out != 0
    scale = np.divide(dout, out, out=np.zeros(dx.shape[:2] + out.shape[2:], dx.dtype),
                      where=nonzero)  # dout / y, 0 where the window is all zeros
    for i in range(H_out):
        for j in range(W_out):
            rows = slice(i * stride, i * stride + ph)
            cols = slice(j * stride, j * stride + pw)
            dx[:, :, rows, cols] += x[:, :, rows, cols] * scale[:, :, i, j, None, None]
    ### END SOLUTION
    return dx


# %% [markdown]
# A case to check by hand: 2 x 2 windows at stride 2 on a 2 x 6 image. The left window holds 3, 4
# and two zeros (norm 5), the middle one four 1s (norm 2), the right one zeros (norm 0). With
# upstream gradients 10, 1 and 7, the left window sends 10 x 3/5 = 6 and 10 x 4/5 = 8, the middle
# one 1 x 1/2 to each pixel, the zero window nothing.

# %% tests: test_l2_pool (2 points)
"""l2_pool forward and backward by hand (with an all-zero window); numerical gradient."""
x = np.array([[3.0, 0, 1, 1, 0, 0],
              [0, 4, 1, 1, 0, 0]])[None, None]  # (1, 1, 2, 6)
pool2 = {"pool_height": 2, "pool_width": 2, "stride": 2}
out, cache = l2_pool_forward_naive(x, pool2)
record("l2_forward_by_hand", out, rtol=1e-12, atol=1e-12)
assert_array("out (2x2 windows, stride 2)", out, np.array([[[[5.0, 2.0, 0.0]]]]), rtol=1e-12)
dx = l2_pool_backward_naive(np.array([[[[10.0, 1.0, 7.0]]]]), cache)
record("l2_backward_by_hand", dx, rtol=1e-12, atol=1e-12)
assert_array("dx (the zero window gets 0, not NaN)", dx,
             np.array([[[[6.0, 0, 0.5, 0.5, 0, 0], [0, 8, 0.5, 0.5, 0, 0]]]]), rtol=1e-12)
out32, _ = l2_pool_forward_naive(x.astype(np.float32), pool2)
assert_value("dtype for float32 input", str(out32.dtype), "float32")
rng = np.random.default_rng(5)
x = rng.standard_normal((2, 2, 5, 5))  # pool3: the overlapping 3x3 windows at stride 2 of part 1
dout = rng.standard_normal((2, 2, 2, 2))
_, cache = l2_pool_forward_naive(x, pool3)
dx = l2_pool_backward_naive(dout, cache)
record("l2_backward_random", dx, rtol=1e-10, atol=1e-12)
dx_num = eval_numerical_gradient_array(lambda v: l2_pool_forward_naive(v, pool3)[0], x, dout)
print(f"dx relative error vs numerical gradient: {rel_error(dx, dx_num):.2e}")
assert_array("dx vs numerical gradient (3x3 windows, stride 2)", dx, dx_num, rtol=1e-6,
             atol=1e-8)

# %% tests: test_l2_pool_hidden (3 points)
"""l2_pool forward and backward on random shapes, windows and zero windows (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(44)
for case in range(8):  # odd cases: integers 0..2, so small windows may be all zeros
    x, pool_param, out_shape, label = _random_pool_case(rng, integers=case % 2 == 1)
    out, cache = l2_pool_forward_naive(x, pool_param)
    dx = l2_pool_backward_naive(rng.standard_normal(out_shape), cache)
    record(f"l2_forward_hidden_{case} ({label})", out, rtol=1e-10, atol=1e-12)
    record(f"l2_backward_hidden_{case} ({label})", dx, rtol=1e-10, atol=1e-12)
x = rng.standard_normal((2, 3, 13, 13))
(_, cache), fwd = trace_call(l2_pool_forward_naive, x, pool3)
_, bwd = trace_call(l2_pool_backward_naive, rng.standard_normal((2, 3, 6, 6)), cache)
record("l2_forward_loop_over_the_6_output_rows", fwd.lines, kind="at_least", bound=6)
record("l2_no_library_shortcut", fwd.shortcuts() + bwd.shortcuts(), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# **Max, average and L2 side by side.** For the $n$ values of a window that are all $\ge 0$, as
# after a ReLU, $\text{mean} \le \text{L2}/\sqrt{n} \le \max \le \text{L2} \le \sqrt{n}\,\max$:
# the L2 norm divided by $\sqrt{n}$ (the root mean square) lies between the average and the
# max. It weighs large values more than the mean does, yet still counts every pixel. A feature
# map to pool: the vertical-edge (Sobel) response of the photo of part 4 after a ReLU, pooled
# with 8 x 8 windows by your three layers:

# %%
edge_map = np.maximum(conv_forward_fast(camera, sobel, np.zeros(1), {"pad": 1})[0], 0)
n = pool8["pool_height"] * pool8["pool_width"]
pooled_maps = {"max": max_pool_forward_naive(edge_map, pool8)[0],
               "average": avg_pool_forward_naive(edge_map, pool8)[0],
               "L2 / sqrt(n)": l2_pool_forward_naive(edge_map, pool8)[0] / np.sqrt(n)}
print(f"feature map {edge_map.shape[2]}x{edge_map.shape[3]}, {n} pixels per window, "
      f"{np.mean(edge_map > 0):.1%} of its pixels > 0")
for name, values in pooled_maps.items():
    print(f"{name:>13}: mean over the {values.size} windows {values.mean():.3f}")
ordered = (pooled_maps["average"] <= pooled_maps["L2 / sqrt(n)"] + 1e-12) & \
    (pooled_maps["L2 / sqrt(n)"] <= pooled_maps["max"] + 1e-12)
print(f"windows with average <= L2 / sqrt(n) <= max: {ordered.mean():.0%}")
fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
axes[0].imshow(edge_map[0, 0], cmap="gray", interpolation="nearest")
axes[0].set_title("feature map: ReLU(Sobel)")
for ax, (name, values) in zip(axes[1:], pooled_maps.items(), strict=True):
    ax.imshow(values[0, 0], cmap="gray", vmin=0, vmax=pooled_maps["max"].max(),
              interpolation="nearest")
    ax.set_title(f"{name}, 8x8/8")
for ax in axes:
    ax.axis("off")
fig.suptitle("the three pooled maps on one grey scale (0 to the largest max)")
plt.show()

# %% [markdown]
# What a pooling unit should report is whether its feature is present in the window. Two 8 x 8
# windows with the same energy (sum of squares 1): one strong response at a single pixel, and a
# faint response of 1/8 everywhere. And how the backward pass of each layer spreads a gradient
# of 1 per window over the feature map above:

# %%
strong = np.zeros((1, 1, 8, 8))
strong[0, 0, 3, 5] = 1.0
windows = {"one strong pixel": strong, "faint everywhere": np.full((1, 1, 8, 8), 1 / 8)}
layers = {"max": (max_pool_forward_naive, max_pool_backward_naive),
          "average": (avg_pool_forward_naive, avg_pool_backward_naive),
          "L2": (l2_pool_forward_naive, l2_pool_backward_naive)}
for name, (forward, backward) in layers.items():
    strong_out, faint_out = (float(forward(w, pool8)[0][0, 0, 0, 0]) for w in windows.values())
    out, cache = forward(edge_map, pool8)
    reached = np.mean(backward(np.ones_like(out), cache) != 0)
    print(f"{name:>7}: strong {strong_out:.4f}, faint {faint_out:.4f} (ratio "
          f"{strong_out / faint_out:5.3f}); gradient reaches {reached:6.1%} of the feature map")

# %% [markdown]
# Max pooling reports the strong, localised response far above the faint texture (the ratios
# printed above); average pooling does the opposite, diluting a strong response by the window's
# area, and L2 pooling cannot tell the two apart. In the backward pass max sends each window's
# gradient to one pixel (the position of the maximum, the notes' "switches"), average and L2 to
# every pixel that contributed. This is why max pooling suits a convolutional network, whose
# filters detect features, and why average pooling "has recently fallen out of favor compared to
# the max pooling operation, which has been shown to work better in practice", as the notes say;
# in the seed's translation:
#
# > 平均汇聚历史上比较常用,但是现在已经很少使用了。因为实践证明,最大汇聚的效果比平均汇聚要好。
#
# The evidence is empirical (e.g. Scherer, Müller and Behnke, 2010, found max pooling clearly
# better than subsampling on object recognition benchmarks): the arithmetic above explains the
# finding, it does not prove it.
#
# **What pooling costs.** Your loops against the library's vectorised pooling
# (`cs231n_lib.fast_layers`), forward and backward, with 2 x 2 windows at stride 2, timed as in
# notebook 1 (best of several runs after a warm-up call); the library has no L2 pooling.

# %%
rng = np.random.default_rng(7)
x = rng.standard_normal((budget(full=8, graded=2), 16, 32, 32))
repeats = budget(full=7, graded=3)
fast = {"max": (max_pool_forward_fast, max_pool_backward_fast),
        "average": (avg_pool_forward_fast, avg_pool_backward_fast)}
pool_times = {"your loops": {}, "library fast": {}}  # {implementation: {"max forward": s, ...}}
for name, implementations in (("your loops", layers), ("library fast", fast)):
    for kind, (forward, backward) in implementations.items():
        for p, seconds in time_layer(forward, backward, (x, pool2), repeats).items():
            pool_times[name][f"{kind} {p}"] = seconds
for group, loops in pool_times["your loops"].items():
    library = pool_times["library fast"].get(group)
    print(f"{group:>16}: your loops {1e3 * loops:7.3f} ms, " + (
        f"library fast {1e3 * library:7.3f} ms ({loops / library:5.1f}x faster)"
        if library else "no library version"))
plot_timings(pool_times, repeats, title=f"Pooling 2x2/2 on x {x.shape}")
plt.show()

# %% [markdown]
# ## 6. Without pooling: the all-convolutional net (10 points)
#
# "Striving for Simplicity: The All Convolutional Net" (Springenberg et al., 2015) replaces every
# pooling layer with a convolution of the same window and stride: the network *learns* how to
# down-sample instead of taking a fixed max or mean. The notes add that discarding pooling has
# also been found important for training good generative models (VAEs, GANs), and that future
# architectures may have few or no pooling layers.
#
# **Exercise.** Write `pool_to_conv(spec)`: the same network with every `arch.Pool` layer
# replaced by an `arch.Conv` with as many filters as the volume entering the pool has channels,
# the pool's window size, stride (`layer.step`) and padding, followed by an `arch.ReLU()`. Track
# the shape through the layers with `arch.out_shape(layer, shape)`, starting from `spec.input`.
# Return `replace(spec, name=spec.name + "_allconv", layers=new_layers)`.

# %% solution: pool_to_conv
def pool_to_conv(spec):
    """
    The all-convolutional version of a network spec.

    Inputs:
    - spec: an arch.Spec

    Returns:
    - a new arch.Spec in which each Pool layer is a Conv (same window, stride and padding, as
      many filters as input channels) followed by a ReLU
    """
    ### BEGIN SOLUTION
    layers, shape = [], tuple(spec.input)
    for layer in spec.layers:
        if isinstance(layer, arch.Pool):
            layers += [arch.Conv(shape[0], layer.size, layer.step, layer.pad), arch.ReLU()]
        else:
            layers.append(layer)
        shape = arch.out_shape(layer, shape)
    return replace(spec, name=spec.name + "_allconv", layers=tuple(layers))
    ### END SOLUTION


# %% tests: test_pool_to_conv (2 points)
"""pool_to_conv turns the small pooling net into the library's all-convolutional twin."""
allconv = pool_to_conv(arch.small_pool_net(input=(1, 28, 28), width=8))
record("pool_to_conv_small", [repr(layer) for layer in allconv.layers], kind="equal")
# small_pool_net: [conv3-8, relu, maxpool 2/2, conv3-16, relu, maxpool 2/2, flatten, fc10];
# each pool becomes a 2x2 stride-2 conv with as many filters as channels enter it, and a ReLU
expected = [arch.Conv(8, 3, pad=1), arch.ReLU(), arch.Conv(8, 2, 2), arch.ReLU(),
            arch.Conv(16, 3, pad=1), arch.ReLU(), arch.Conv(16, 2, 2), arch.ReLU(),
            arch.Flatten(), arch.FC(10)]
assert_value("number of layers", len(allconv.layers), len(expected))
for k, (got, want) in enumerate(zip(allconv.layers, expected, strict=True)):
    assert_value(f"layer {k}", got, want)
assert_value("name", allconv.name, "small_pool_net_allconv")

# %% tests: test_pool_to_conv_hidden (2 points)
"""pool_to_conv on random specs with max/avg, overlapping and padded pools (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(51)
for case in range(4):
    layers, size_out = [], 1 + int(rng.integers(0, 3))
    for _ in range(int(rng.integers(1, 4))):
        channels = int(rng.integers(2, 9))
        size, stride, pad = [(2, 2, 0), (3, 2, 1), (3, 1, 0)][int(rng.integers(0, 3))]
        layers += [arch.Conv(channels, 3, pad=1), arch.ReLU(),
                   arch.Pool(["max", "avg"][int(rng.integers(0, 2))], size, stride, pad=pad)]
    for pool in layers[2::3][::-1]:  # the input size that every pool tiles, found top-down
        size_out = (size_out - 1) * pool.step + pool.size - 2 * pool.pad
    spec = arch.Spec(f"random_{case}", (1, size_out, size_out), tuple(layers))
    new = pool_to_conv(spec)
    record(f"pool_to_conv_hidden_{case} ({' '.join(layer.label() for layer in layers)})",
           [repr(layer) for layer in new.layers], kind="equal")
    record(f"pool_to_conv_hidden_{case}_name", new.name, kind="equal")
### END HIDDEN TESTS

# %% tests: test_allconv_trains (3 points)
"""Your all-convolutional net (from pool_to_conv) learns: validation accuracy well above chance."""
allconv_spec = pool_to_conv(arch.small_pool_net(input=(1, 28, 28), width=8))
allconv_model, allconv_solver = train(allconv_spec)
record("allconv_val_acc", allconv_solver.best_val_acc, kind="at_least", bound=0.5)
record("allconv_params", sum(p.size for p in allconv_model.params.values()), kind="equal")
assert allconv_solver.best_val_acc >= 0.5, \
    f"best validation accuracy {allconv_solver.best_val_acc:.3f} < 0.5 (chance is 0.1)"

# %% [markdown]
# The three networks side by side: output shape of every layer, parameters and validation
# accuracy after the same training.

# %%
specs["all-convolutional"] = allconv_spec
results["all-convolutional"] = (allconv_model, allconv_solver)
for name, spec in specs.items():
    shape, rows = tuple(spec.input), []
    for layer in spec.layers:
        shape = arch.out_shape(layer, shape)
        rows.append(f"{layer.label()} -> {'x'.join(map(str, shape))}")
    model, solver = results[name]
    n_params = sum(p.size for p in model.params.values())
    print(f"{name}: {n_params:,} parameters, best validation accuracy "
          f"{solver.best_val_acc:.3f}\n    " + "\n    ".join(rows))
names = list(results)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].bar(names, [sum(p.size for p in results[n][0].params.values()) for n in names])
axes[0].set_title("parameters")
axes[1].bar(names, [results[n][1].best_val_acc for n in names])
axes[1].set_ylim(0, 1)
axes[1].set_title("best validation accuracy")
plt.show()

# %% [markdown]
# When does dropping pooling matter? Explain, in a few sentences, why generative models such as
# VAEs and GANs are trained without pooling (think of what the backward pass of max pooling sends
# to a generator, and of what an up-sampling path would need), and name one cost of the
# all-convolutional alternative visible in the table above.

# %% [markdown] answer: q_generative (3 points)
# **Reference answer.** A generator must produce every pixel, and its training signal comes
# through the discriminator's gradients (a GAN) or the reconstruction loss (a VAE's decoder). Max
# pooling passes gradient to one pixel per window and zero to the rest, a sparse and
# position-jumping signal; a fixed down-sampling also has no learned inverse for the decoder /
# generator to mirror. Strided (and transposed) convolutions learn their own down- and
# up-sampling, keep gradients dense, and make the encoder and decoder symmetric (DCGAN's
# guidelines replace pooling by strided convolutions for this reason). The cost: the learned
# down-sampling layers add parameters and multiply-adds (the all-convolutional net above has more
# parameters than the pooling nets) and lose the small translation invariance that max pooling
# gives for free.
