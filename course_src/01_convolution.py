# Source of assignments/01_convolution/01_convolution.ipynb (build: python course_src/build.py).

# %% [markdown]
# # 1. Convolution
#
# A convolutional layer from first principles in numpy: what it computes, how many parameters it
# needs, a naive implementation with loops, its backward pass, a vectorised implementation, and
# what convolution does to real photos.
#
# **How to work.** Write your code where the line `# YOUR CODE HERE` stands (remove the
# `raise NotImplementedError()` under it), run the test cell below each exercise, and fix what its
# message reports (type, then shape, then values). Test cells are read-only. The grader runs
# further, hidden tests on random shapes; passing the visible tests is necessary, not sufficient.
# Write your answers to the written questions in the cells marked "YOUR ANSWER HERE".
#
# | Part | Topic | Points |
# |---|---|---|
# | 1 | Neurons in three dimensions; local connectivity and parameter sharing | 5 |
# | 2 | Naive convolution: forward | 8 |
# | 3 | Naive convolution: backward | 7 |
# | 4 | Vectorised convolution: im2col and col2im | 8 |
# | 5 | Filters on real photos; learning a kernel | 3 |
# | 6 | 1x1 convolution as a matrix product | 3 |
# | 7 | From fully connected to convolutional | 3 |
# | 8 | Dilation and receptive field | 3 |
#
# **Total: 40 points**
#
# **Conventions** (the whole course): tensors are NCHW (batch, channels, height, width); `pad` is
# zero padding *per side* (the notes' P); the output size `(W - F + 2P) / S + 1` must be an
# integer, otherwise the layer raises `ValueError`; `dilation=1` is a contiguous filter (the
# PyTorch convention; the notes call that "dilation 0").

# %% [markdown]
# ## Glossary
#
# The course follows the CS231n notes and their authorised Chinese translation. Key terms:
#
# | 中文 | English | Meaning here |
# |---|---|---|
# | 卷积 | convolution | slide a filter over the input; multiply and sum at each position |
# | 汇聚 | pooling | summarise each window of a feature map (max, mean, L2 norm), per channel |
# | 零填充 | zero padding | P rows/columns of zeros added on each side of the input |
# | 步长 | stride | S, the step between neighbouring filter positions |
# | 数据体 | volume | a 3-D array of activations: width x height x depth (channels) |
# | 感受野 | receptive field | the input region that one output neuron sees |
# | 参数共享 | parameter sharing | all positions of one depth slice use the same filter weights |
# | 滤波器 | filter | F x F x C weights (and a bias) slid over the input |
# | 局部连接 | local connectivity | a neuron sees only its receptive field, not the whole input |
# | 深度切片 | depth slice | the 2-D slice of a volume at one depth: one feature map |
# | 降采样 | down-sampling | shrinking width and height (pooling, or a stride above 1) |
# | 最大汇聚 | max pooling | pooling that keeps the largest value of each window |
# | 平均汇聚 | average pooling | pooling that keeps the mean of each window |
# | L-2范式汇聚 | L2-norm pooling | keeps the L2 norm of each window (范数 in most texts) |

# %%
import matplotlib.pyplot as plt
import numpy as np

from cs231n_lib import shapes
from cs231n_lib.budget import budget
from cs231n_lib.call_trace import trace_call
from cs231n_lib.checks import assert_array, assert_value, record
from cs231n_lib.data import load_image
from cs231n_lib.fast_layers import conv_backward_fast, conv_forward_fast
from cs231n_lib.gradient_check import eval_numerical_gradient_array, rel_error
from cs231n_lib.timing import time_layer
from cs231n_lib.vis_utils import plot_filters, plot_timings

plt.rcParams["figure.figsize"] = (9, 3.5)

# %% [markdown]
# ## 1. Neurons in three dimensions; local connectivity and parameter sharing (5 points)
#
# A convolutional layer arranges its neurons in a **volume** of width x height x depth. Each
# neuron looks only at a small **receptive field** of the input: F x F pixels across *all* C input
# channels (local connectivity). All neurons of one depth slice use the *same* F x F x C weights
# and one bias (parameter sharing): the weights are a **filter** slid across the input, and the
# depth slice is that filter's **feature map**. A layer with $K$ filters therefore has
# $K (F^2 C + 1)$ parameters, however large the image; a *locally connected* layer without sharing
# would give every output neuron its own $F^2 C + 1$ parameters.
#
# **Exercise.** Write `conv_param_counts`, using `shapes.output_size` for the output size (it
# rejects invalid settings). The test uses AlexNet's first layer: 227 x 227 x 3 input, K = 96
# filters of 11 x 11, stride 4, no padding.

# %% solution: conv_param_counts
# rules: forbid cs231n_lib; allow cs231n_lib.shapes
def conv_param_counts(input_shape, num_filters, field, stride=1, pad=0):
    """
    Parameter counts of a conv layer with and without parameter sharing.

    Inputs:
    - input_shape: (C, H, W) of the input volume
    - num_filters: K, the number of filters (the output depth)
    - field: F, the filter height and width
    - stride, pad: S and P

    Returns a tuple (unshared, shared) of Python ints:
    - unshared: parameters of a locally connected layer (every output neuron has its own
      weights and bias)
    - shared: parameters of the conv layer (K filters, each with one bias)
    """
    ### BEGIN SOLUTION
    C, H, W = input_shape
    H_out = shapes.output_size(H, field, stride, pad, axis="H")
    W_out = shapes.output_size(W, field, stride, pad, axis="W")
    per_neuron = field * field * C + 1  # weights of one receptive field + one bias
    shared = num_filters * per_neuron
    unshared = H_out * W_out * shared
    ### END SOLUTION
    return unshared, shared


# %% tests: test_conv_param_counts (2 points)
"""conv_param_counts on AlexNet conv1 and on a small layer."""
unshared, shared = conv_param_counts((3, 227, 227), 96, 11, stride=4, pad=0)
record("param_counts_alexnet", (unshared, shared), kind="equal")
# 55 x 55 x 96 output neurons, each with 11*11*3 weights + 1 bias; shared: 96 filters.
assert_value("shared (AlexNet conv1)", shared, 96 * (11 * 11 * 3 + 1))
assert_value("unshared (AlexNet conv1)", unshared, 55 * 55 * 96 * (11 * 11 * 3 + 1))
small = conv_param_counts((2, 5, 5), 4, 3, stride=2, pad=1)
record("param_counts_small", small, kind="equal")
assert_value("counts for a 5x5x2 input, 4 filters 3x3, S=2, P=1", small,
             (3 * 3 * 4 * (3 * 3 * 2 + 1), 4 * (3 * 3 * 2 + 1)))

# %% tests: test_conv_param_counts_hidden (1 points)
"""conv_param_counts on random layers (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(11)
for case in range(5):
    C, K, F, S = (int(v) for v in rng.integers(1, 5, size=4))
    P = int(rng.integers(0, 3))
    H_out, W_out = (int(v) for v in rng.integers(1, 9, size=2))
    H, W = (H_out - 1) * S + F - 2 * P, (W_out - 1) * S + F - 2 * P
    if min(H, W) < 1:
        H, W, P = H + 2 * P, W + 2 * P, 0
    counts = conv_param_counts((C, H, W), K, F, stride=S, pad=P)
    record(f"param_counts_hidden_{case}_C{C}_H{H}_W{W}_K{K}_F{F}_S{S}_P{P}", counts,
           kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# The numbers for AlexNet's first layer, and the ratio:

# %%
unshared, shared = conv_param_counts((3, 227, 227), 96, 11, stride=4, pad=0)
print(f"output volume: {shapes.output_size(227, 11, 4)} x {shapes.output_size(227, 11, 4)} x 96")
print(f"without parameter sharing: {unshared:,} parameters")
print(f"with parameter sharing:    {shared:,} parameters ({96 * 11 * 11 * 3:,} weights "
      f"+ 96 biases), {unshared / shared:,.0f} times fewer")

# %% [markdown]
# Parameter sharing assumes that a feature worth detecting at one position is worth detecting at
# every other position. Give one kind of input where this assumption is weak, say what layer
# you would use instead, and what it costs.

# %% [markdown] answer: q_sharing (2 points)
# **Reference answer.** When the input is centred and aligned, e.g. cropped face images, different
# positions need different features (eye features at the top, mouth features at the bottom).
# A locally connected layer (no sharing) can learn position-specific filters; it costs
# H' x W' times more parameters (the ratio printed above), more data to fit them, and the
# translation equivariance of convolution is lost.

# %% [markdown]
# ## 2. Naive convolution: forward (8 points)
#
# Output neuron `(n, f, i, j)` is the dot product of filter `w[f]` (all C channels) with the input
# window whose top-left corner is at row `i * stride`, column `j * stride` of the zero-padded
# input, plus `b[f]`. With `dilation = d` the filter taps are `d` pixels apart, so a filter of
# size HH spans `d * (HH - 1) + 1` rows.
#
# **Exercise.** Write `conv_forward_naive` with an explicit Python loop over the output rows
# (`for i in range(H_out)`); inside it, loop over the output columns too (the simplest) or
# vectorise across the columns of row `i`, and vectorise over N, C and F as you like. Validate
# the shapes and read stride, pad and dilation with `shapes.conv_geometry(x.shape, w.shape,
# conv_param)`: it returns `(stride, pad, dilation, H_out, W_out)` and raises `ValueError` for
# invalid settings. Do not call a library convolution (scipy, `np.convolve`, `np.correlate`, the
# course's fast layers, `sliding_window_view`, `as_strided`). The grader checks both rules:
# a Python loop that runs at least once per output row, and none of these calls.

# %% solution: conv_forward_naive
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes; require loop
def conv_forward_naive(x, w, b, conv_param):
    """
    Naive forward pass of a convolutional layer.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filter weights of shape (F, C, HH, WW)
    - b: biases of shape (F,)
    - conv_param: dict with the optional keys 'stride' (default 1), 'pad' (zero padding per
      side, default 0) and 'dilation' (default 1)

    Returns a tuple of:
    - out: output of shape (N, F, H_out, W_out), dtype np.result_type(x, w, b)
    - cache: whatever your conv_backward_naive needs, e.g. (x, w, b, conv_param)
    """
    ### BEGIN SOLUTION
    stride, pad, dilation, H_out, W_out = shapes.conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, C, H + 2P, W + 2P)
    out = np.zeros((x.shape[0], F, H_out, W_out), dtype=np.result_type(x, w, b))
    span_h, span_w = dilation * (HH - 1) + 1, dilation * (WW - 1) + 1
    for i in range(H_out):
        for j in range(W_out):
            r, c = i * stride, j * stride
            field = x_pad[:, :, r:r + span_h:dilation, c:c + span_w:dilation]  # (N, C, HH, WW)
            out[:, :, i, j] = np.tensordot(field, w, axes=([1, 2, 3], [1, 2, 3])) + b  # (N, F)
    cache = (x, w, b, conv_param)
    ### END SOLUTION
    return out, cache


# %% [markdown]
# **The notes' numpy walk-through.** The notes use an input volume `X` of shape (11, 11, 4)
# indexed `X[x, y, d]` (column, row, depth), filters of size 5 and stride 2, so the output `V` is
# 4 x 4 x 2 and, for example, `V[0, 0, 0] = np.sum(X[:5, :5, :] * W0) + b0` and
# `V[1, 0, 0] = np.sum(X[2:7, :5, :] * W0) + b0` (moving along x by the stride). In NCHW the
# same volume is `X.transpose(2, 1, 0)[None]` and `V[x, y, d]` is `out[0, d, y, x]`. The first
# test reproduces the walk-through with the notes' formulas.

# %% tests: test_conv_forward_walkthrough (2 points)
"""conv_forward_naive reproduces the notes' walk-through: X (11, 11, 4), F = 5, S = 2."""
rng = np.random.default_rng(0)
X = rng.standard_normal((11, 11, 4))  # the notes' X[x, y, d]
W0, W1 = rng.standard_normal((2, 5, 5, 4))  # the notes' filters W0[x, y, d], W1[x, y, d]
b0, b1 = 1.0, 0.0
x_nchw = X.transpose(2, 1, 0)[None]  # (1, 4, 11, 11)
w_nchw = np.stack([W0.transpose(2, 1, 0), W1.transpose(2, 1, 0)])  # (2, 4, 5, 5)
out, _ = conv_forward_naive(x_nchw, w_nchw, np.array([b0, b1]), {"stride": 2, "pad": 0})
record("walkthrough_out", out, rtol=1e-10, atol=1e-10)
# The notes' formula for every activation: V[0,0,0] = np.sum(X[:5,:5,:] * W0) + b0,
# V[1,0,0] = np.sum(X[2:7,:5,:] * W0) + b0, ..., V[x,y,d] uses X[2x:2x+5, 2y:2y+5, :] and Wd.
V = np.zeros((4, 4, 2))
for (xx, yy, d), _ in np.ndenumerate(V):
    V[xx, yy, d] = np.sum(X[2 * xx:2 * xx + 5, 2 * yy:2 * yy + 5, :] * (W0, W1)[d]) + (b0, b1)[d]
assert_array("out (compared with the notes' V[x, y, d] = out[0, d, y, x])", out,
             V.transpose(2, 1, 0)[None], rtol=1e-10, atol=1e-10)

# %% [markdown]
# A case small enough to check by hand: `x` holds 0..24 in a 5 x 5 image (row-major), pad 1,
# stride 2, so the output is 3 x 3. Filter 0 is all ones (it sums the 3 x 3 window, bias +1);
# filter 1 is 2 at the centre tap only (it doubles the centre pixel, bias -1). The window of
# output (0, 0) covers rows and columns -1..1 of `x`, of which only `x[0:2, 0:2]` is inside the
# image: 0 + 1 + 5 + 6 = 12, so `out[0, 0, 0, 0]` = 13; each next window starts 2 rows or columns
# further on. (Deep-learning libraries do not flip the filter: strictly, this is a
# cross-correlation.)

# %% tests: test_conv_forward_small (2 points)
"""conv_forward_naive on a 5x5 image that can be checked by hand (pad 1, stride 2)."""
x = np.arange(25.0).reshape(1, 1, 5, 5)
w = np.zeros((2, 1, 3, 3))
w[0] = 1.0  # box filter
w[1, 0, 1, 1] = 2.0  # doubles the centre pixel
b = np.array([1.0, -1.0])
out, _ = conv_forward_naive(x, w, b, {"stride": 2, "pad": 1})
record("small_out", out, rtol=1e-12, atol=1e-12)
box = [[0 + 1 + 5 + 6, 1 + 2 + 3 + 6 + 7 + 8, 3 + 4 + 8 + 9],  # windows centred on row 0
       [5 + 6 + 10 + 11 + 15 + 16, 6 + 7 + 8 + 11 + 12 + 13 + 16 + 17 + 18,
        8 + 9 + 13 + 14 + 18 + 19],  # centred on row 2
       [15 + 16 + 20 + 21, 16 + 17 + 18 + 21 + 22 + 23, 18 + 19 + 23 + 24]]  # row 4
centre = [[0, 2, 4], [10, 12, 14], [20, 22, 24]]  # x at rows/columns 0, 2, 4
expected = np.array([[np.array(box) + 1.0, 2.0 * np.array(centre) - 1.0]])
assert_array("out", out, expected)
out32, _ = conv_forward_naive(x.astype(np.float32), w.astype(np.float32),
                              b.astype(np.float32), {"stride": 2, "pad": 1})
assert_value("dtype for float32 inputs", str(out32.dtype), "float32")

# %% tests: test_conv_forward_hidden (4 points)
"""conv_forward_naive on random shapes, strides, pads and dilations; loops, no library call."""
### BEGIN HIDDEN TESTS
def _random_conv_case(rng):
    """Random (x, w, b, conv_param, out_shape, label) with a valid output size: out_shape is
    the (N, F, H_out, W_out) drawn first, label names the case."""
    N, C, F = (int(v) for v in rng.integers(1, 4, size=3))
    HH, WW = (int(v) for v in rng.integers(1, 5, size=2))
    stride, pad, dilation = (int(rng.integers(lo, hi)) for lo, hi in ((1, 4), (0, 3), (1, 3)))
    H_out, W_out = (int(v) for v in rng.integers(1, 6, size=2))
    H = (H_out - 1) * stride + dilation * (HH - 1) + 1 - 2 * pad
    W = (W_out - 1) * stride + dilation * (WW - 1) + 1 - 2 * pad
    if min(H, W) < 1:
        H, W, pad = H + 2 * pad, W + 2 * pad, 0
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((F, C, HH, WW))
    b = rng.standard_normal(F)
    label = f"x {x.shape}, w {w.shape}, S={stride}, P={pad}, D={dilation}"
    conv_param = {"stride": stride, "pad": pad, "dilation": dilation}
    return x, w, b, conv_param, (N, F, H_out, W_out), label


rng = np.random.default_rng(2024)
for case in range(6):
    x, w, b, conv_param, _, label = _random_conv_case(rng)
    out, _ = conv_forward_naive(x, w, b, conv_param)
    record(f"conv_forward_hidden_{case} ({label})", out, rtol=1e-9, atol=1e-10)
x, w, b = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3)), np.zeros(4)
_, trace = trace_call(conv_forward_naive, x, w, b, {"stride": 1, "pad": 1})
record("conv_forward_loop_over_the_9_output_rows", trace.lines, kind="at_least", bound=9)
record("conv_forward_no_library_convolution", trace.shortcuts(), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Naive convolution: backward (7 points)
#
# Every product `field * w[f]` that made `out[n, f, i, j]` sends the upstream gradient
# `dout[n, f, i, j]` back to both factors: `dw[f] += dout[n, f, i, j] * field` and
# `dx[window] += dout[n, f, i, j] * w[f]`. Windows overlap when the stride is smaller than the
# filter, so the contributions to `dx` must be **added**, not assigned. Work on a padded `dx` and
# crop the padding off at the end.
#
# Two checks tell you whether your backward pass is right:
#
# * the **numerical gradient**: centred differences `(f(x + h) - f(x - h)) / 2h`
#   (`eval_numerical_gradient_array` from `cs231n_lib.gradient_check`);
# * the **adjoint identity**: without the bias, convolution is linear in `x`, and `dx` is the
#   transposed operator applied to `dout`, so `<conv(x), y> = <x, conv^T(y)>` for every `x`, `y`
#   (likewise for `w`).
#
# **Exercise.** Write `conv_backward_naive`.

# %% solution: conv_backward_naive
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes; require loop
def conv_backward_naive(dout, cache):
    """
    Naive backward pass of a convolutional layer.

    Inputs:
    - dout: upstream gradient of shape (N, F, H_out, W_out)
    - cache: the cache your conv_forward_naive returned

    Returns a tuple of:
    - dx: gradient with respect to x, shape (N, C, H, W)
    - dw: gradient with respect to w, shape (F, C, HH, WW)
    - db: gradient with respect to b, shape (F,)
    """
    ### BEGIN SOLUTION
    x, w, b, conv_param = cache
    stride, pad, dilation, H_out, W_out = shapes.conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    H, W = x.shape[2:]
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))  # (N, C, H + 2P, W + 2P)
    dx_pad = np.zeros(x_pad.shape, dtype=np.result_type(x, dout))
    dw = np.zeros(w.shape, dtype=np.result_type(w, dout))
    span_h, span_w = dilation * (HH - 1) + 1, dilation * (WW - 1) + 1
    for i in range(H_out):
        for j in range(W_out):
            rows = slice(i * stride, i * stride + span_h, dilation)
            cols = slice(j * stride, j * stride + span_w, dilation)
            g = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(g, x_pad[:, :, rows, cols], axes=([0], [0]))  # (F, C, HH, WW)
            dx_pad[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))  # (N, C, HH, WW)
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    db = dout.sum(axis=(0, 2, 3))
    ### END SOLUTION
    return dx, dw, db


# %% tests: test_conv_backward_gradcheck (3 points)
"""conv_backward_naive against numerical gradients of your conv_forward_naive (float64)."""
rng = np.random.default_rng(1)
x = rng.standard_normal((2, 3, 7, 7))
w = rng.standard_normal((4, 3, 3, 3))
b = rng.standard_normal(4)
conv_param = {"stride": 2, "pad": 1}
dout = rng.standard_normal((2, 4, 4, 4))
out, cache = conv_forward_naive(x, w, b, conv_param)
dx, dw, db = conv_backward_naive(dout, cache)
record("gradcheck_dx", dx, rtol=1e-8, atol=1e-10)
record("gradcheck_dw", dw, rtol=1e-8, atol=1e-10)
record("gradcheck_db", db, rtol=1e-8, atol=1e-10)
assert_array("db (the sum of dout over N, H_out and W_out)", db, dout.sum(axis=(0, 2, 3)),
             rtol=1e-10, atol=1e-12)
numerical = {  # centred differences of your forward pass, one input at a time
    "dx": eval_numerical_gradient_array(lambda v: conv_forward_naive(v, w, b, conv_param)[0],
                                        x.copy(), dout),
    "dw": eval_numerical_gradient_array(lambda v: conv_forward_naive(x, v, b, conv_param)[0],
                                        w.copy(), dout),
}
for name, got in (("dx", dx), ("dw", dw)):
    assert_value(f"{name} shape", got.shape, numerical[name].shape)
    error = rel_error(got, numerical[name])
    print(f"{name} relative error vs numerical gradient: {error:.2e}")
    assert error < 1e-7, f"{name} differs from the numerical gradient: relative error " \
                         f"{error:.2e} > 1e-7 (if your forward pass fails its tests, fix it first)"

# %% tests: test_conv_backward_hidden (4 points)
"""conv_backward_naive on random shapes, strides, pads and dilations (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(77)
for case in range(4):
    x, w, b, conv_param, out_shape, label = _random_conv_case(rng)
    _, cache = conv_forward_naive(x, w, b, conv_param)
    y = rng.standard_normal(out_shape)
    dx, dw, db = conv_backward_naive(y, cache)
    for name, value in (("dx", dx), ("dw", dw), ("db", db)):
        record(f"conv_backward_hidden_{name}_{case} ({label})", value, rtol=1e-8, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# The adjoint identity on a random case, with your functions:

# %%
rng = np.random.default_rng(5)
x, w = rng.standard_normal((2, 3, 9, 9)), rng.standard_normal((4, 3, 3, 3))
conv_param = {"stride": 2, "pad": 1, "dilation": 1}
lin, cache = conv_forward_naive(x, w, np.zeros(4), conv_param)
y = rng.standard_normal(lin.shape)
dx, dw, _ = conv_backward_naive(y, cache)
print(f"<conv(x), y> = {np.vdot(lin, y):.12f}")
print(f"<x, conv^T(y)> = {np.vdot(x, dx):.12f}")
print(f"<w, dw>        = {np.vdot(w, dw):.12f}")

# %% [markdown]
# ## 4. Vectorised convolution: im2col and col2im (8 points)
#
# Loops in Python are slow. **im2col** copies each receptive field into one column of a matrix
# `X_col`; the whole layer is then one matrix product `W_row @ X_col` with the filters as the
# rows of `W_row = w.reshape(F, -1)`. Layouts (as in `cs231n_lib.im2col`): `X_col` has shape
# `(C * HH * WW, N * H_out * W_out)`, its rows ordered (c, i, j) like `w[f].ravel()` and its
# columns ordered (n, h_out, w_out). **col2im** is the adjoint: it adds each column back onto the
# pixels it came from, which is exactly `dx` when the columns hold gradients.
#
# **Exercise.** Write `im2col`, `col2im`, `conv_forward_im2col` and `conv_backward_im2col`. Loop
# over the HH x WW filter taps if you like (a strided slice per tap), but not over output
# positions: a hidden test counts the Python lines your code runs. Do not use
# `sliding_window_view`, `as_strided` or the course library's vectorisation helpers.

# %% solution: im2col
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes
def im2col(x, HH, WW, stride=1, pad=0, dilation=1):
    """
    Copy every receptive field of x into one column of a matrix.

    Inputs:
    - x: input of shape (N, C, H, W)
    - HH, WW: filter height and width
    - stride, pad, dilation: as in conv_param

    Returns:
    - X_col: array of shape (C * HH * WW, N * H_out * W_out), dtype of x; rows ordered
      (c, i, j), columns ordered (n, h_out, w_out)
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    H_out = shapes.output_size(H, HH, stride, pad, dilation, axis="H")
    W_out = shapes.output_size(W, WW, stride, pad, dilation, axis="W")
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((C, HH, WW, N, H_out, W_out), dtype=x.dtype)
    for i in range(HH):
        for j in range(WW):
            r, c = i * dilation, j * dilation
            tap = x_pad[:, :, r:r + stride * H_out:stride, c:c + stride * W_out:stride]
            cols[:, i, j] = tap.transpose(1, 0, 2, 3)  # (C, N, H_out, W_out)
    X_col = cols.reshape(C * HH * WW, N * H_out * W_out)
    ### END SOLUTION
    return X_col


def col2im(X_col, x_shape, HH, WW, stride=1, pad=0, dilation=1):
    """
    Adjoint of im2col: add every column back onto the input pixels it was copied from.

    Inputs:
    - X_col: array of shape (C * HH * WW, N * H_out * W_out), laid out as im2col returns it
    - x_shape: (N, C, H, W) of the unpadded input
    - HH, WW, stride, pad, dilation: as passed to im2col

    Returns:
    - x: array of shape (N, C, H, W), dtype of X_col
    """
    ### BEGIN SOLUTION
    N, C, H, W = x_shape
    H_out = shapes.output_size(H, HH, stride, pad, dilation, axis="H")
    W_out = shapes.output_size(W, WW, stride, pad, dilation, axis="W")
    cols = X_col.reshape(C, HH, WW, N, H_out, W_out)
    x_pad = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=X_col.dtype)
    for i in range(HH):
        for j in range(WW):
            r, c = i * dilation, j * dilation
            x_pad[:, :, r:r + stride * H_out:stride, c:c + stride * W_out:stride] += \
                cols[:, i, j].transpose(1, 0, 2, 3)  # (N, C, H_out, W_out)
    x = x_pad[:, :, pad:pad + H, pad:pad + W]
    ### END SOLUTION
    return x


# %% solution: conv_im2col
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes
def conv_forward_im2col(x, w, b, conv_param):
    """
    Vectorised forward pass of a convolutional layer: im2col, then one matrix product.

    Inputs and outputs as conv_forward_naive; the cache should keep X_col for the backward pass.
    """
    ### BEGIN SOLUTION
    stride, pad, dilation, H_out, W_out = shapes.conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    X_col = im2col(x, HH, WW, stride, pad, dilation)  # (C*HH*WW, N*H_out*W_out)
    out = w.reshape(F, -1) @ X_col + b[:, None]  # (F, N*H_out*W_out)
    out = out.reshape(F, x.shape[0], H_out, W_out).transpose(1, 0, 2, 3)  # (N, F, H_out, W_out)
    cache = (x, w, b, conv_param, X_col)
    ### END SOLUTION
    return out, cache


def conv_backward_im2col(dout, cache):
    """
    Vectorised backward pass of a convolutional layer.

    Inputs and outputs as conv_backward_naive (cache from conv_forward_im2col).
    """
    ### BEGIN SOLUTION
    x, w, b, conv_param, X_col = cache
    stride, pad, dilation, _, _ = shapes.conv_geometry(x.shape, w.shape, conv_param)
    F, _, HH, WW = w.shape
    d_rows = dout.transpose(1, 0, 2, 3).reshape(F, -1)  # (F, N*H_out*W_out)
    dw = (d_rows @ X_col.T).reshape(w.shape)
    dx = col2im(w.reshape(F, -1).T @ d_rows, x.shape, HH, WW, stride, pad, dilation)
    db = d_rows.sum(axis=1)
    ### END SOLUTION
    return dx, dw, db


# %% [markdown]
# A hand-checkable case: a 3 x 3 image holding 0..8 and 2 x 2 filters at stride 1 give four
# receptive fields; column k is the window of output pixel k in row-major order, flattened.

# %% tests: test_im2col_layout (2 points)
"""im2col layout on a 3x3 image; AlexNet conv1 shapes; col2im is im2col's adjoint."""
X_col = im2col(np.arange(9.0).reshape(1, 1, 3, 3), 2, 2)
record("im2col_small", X_col, kind="equal")
expected = np.array([[0.0, 1, 3, 4],   # tap (0, 0) of windows at (0,0) (0,1) (1,0) (1,1)
                     [1, 2, 4, 5],     # tap (0, 1)
                     [3, 4, 6, 7],     # tap (1, 0)
                     [4, 5, 7, 8]])    # tap (1, 1)
assert_array("im2col(0..8 as 3x3, 2x2 filter)", X_col, expected)
X_col = im2col(np.zeros((1, 3, 227, 227)), 11, 11, stride=4)
record("im2col_alexnet_shape", X_col.shape, kind="equal")
assert_value("AlexNet conv1 X_col shape", X_col.shape, (11 * 11 * 3, 55 * 55))
rng = np.random.default_rng(3)
x, cols = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((3 * 3 * 2, 2 * 4 * 4))
counts = col2im(im2col(np.ones((1, 1, 3, 3)), 2, 2), (1, 1, 3, 3), 2, 2)
record("col2im_counts", counts, kind="equal")
# col2im(im2col(ones)) counts the windows that cover each pixel: 1 at the corners, 4 in the middle
assert_array("col2im(im2col(ones 3x3, 2x2 filter))", counts,
             np.array([[[[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]]]))
back = col2im(cols, x.shape, 3, 2, stride=2, pad=1)
record("col2im_random", back, rtol=1e-10, atol=1e-12)
lhs, rhs = np.vdot(im2col(x, 3, 2, stride=2, pad=1), cols), np.vdot(x, back)
assert abs(lhs - rhs) < 1e-10 * (1 + abs(lhs)), \
    f"col2im is not the adjoint of im2col: <im2col(x), c> = {lhs}, <x, col2im(c)> = {rhs}"

# %% tests: test_conv_im2col (2 points)
"""conv_forward_im2col / conv_backward_im2col equal your naive layer (parts 2 and 3)."""
rng = np.random.default_rng(4)
x, w, b = rng.standard_normal((3, 2, 8, 9)), rng.standard_normal((4, 2, 3, 4)), \
    rng.standard_normal(4)
conv_param = {"stride": 1, "pad": 1}
out, cache = conv_forward_im2col(x, w, b, conv_param)
dout = rng.standard_normal(out.shape)
dx, dw, db = conv_backward_im2col(dout, cache)
for name, value in (("out", out), ("dx", dx), ("dw", dw), ("db", db)):
    record(f"im2col_conv_{name}", value, rtol=1e-9, atol=1e-10)
# your loops (parts 2 and 3) are the reference here: pass their tests first
naive_out, naive_cache = conv_forward_naive(x, w, b, conv_param)
for name, got, ref in zip(("out", "dx", "dw", "db"), (out, dx, dw, db),
                          (naive_out, *conv_backward_naive(dout, naive_cache)), strict=True):
    assert_array(f"{name} (compared with your naive layer)", got, ref, rtol=1e-9, atol=1e-10)

# %% tests: test_conv_im2col_hidden (4 points)
"""im2col convolution on random shapes; no Python loop over output positions (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(99)
for case in range(5):
    x, w, b, conv_param, out_shape, label = _random_conv_case(rng)
    out, cache = conv_forward_im2col(x, w, b, conv_param)
    y = rng.standard_normal(out_shape)
    dx, dw, db = conv_backward_im2col(y, cache)
    for name, value in (("out", out), ("dx", dx), ("dw", dw), ("db", db)):
        record(f"im2col_hidden_{name}_{case} ({label})", value, rtol=1e-8, atol=1e-10)
x, w, b = rng.standard_normal((2, 3, 40, 40)), rng.standard_normal((8, 3, 3, 3)), np.zeros(8)
(out, cache), fwd = trace_call(conv_forward_im2col, x, w, b, {"stride": 1, "pad": 1})
_, bwd = trace_call(conv_backward_im2col, out, cache)
record("im2col_forward_lines_for_3200_outputs", fwd.lines, kind="at_most", bound=400)
record("im2col_backward_lines_for_3200_outputs", bwd.lines, kind="at_most", bound=400)
record("im2col_no_library_shortcut", fwd.shortcuts() + bwd.shortcuts(), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# **What im2col costs in memory.** Each input pixel is copied into every receptive field that
# contains it. For AlexNet's first layer (one 227 x 227 x 3 image, 11 x 11 filters at stride 4):

# %%
X_col = im2col(np.zeros((1, 3, 227, 227), dtype=np.float32), 11, 11, stride=4)
W_row = np.zeros((96, 11 * 11 * 3), dtype=np.float32)
print(f"X_col: {X_col.shape[0]} x {X_col.shape[1]}, W_row: {W_row.shape[0]} x {W_row.shape[1]}, "
      f"W_row @ X_col: {(W_row @ X_col).shape[0]} x {(W_row @ X_col).shape[1]}")
blowup = X_col.size / (3 * 227 * 227)
print(f"X_col holds {X_col.size:,} numbers, the image {3 * 227 * 227:,}: {blowup:.2f}x "
      f"({X_col.nbytes / 2**20:.2f} MiB vs {3 * 227 * 227 * 4 / 2**20:.2f} MiB in float32)")

# %% [markdown]
# **What it buys in speed.** The same layer with your loops, your im2col version and the
# library's fast layer, forward and backward. `time_layer` (from `cs231n_lib.timing`) times one
# call of each pass: the backward pass alone, on the cache of a forward call, after one untimed
# warm-up call, as the best of several runs (`timeit.repeat`, then the minimum: the run least
# disturbed by other programs). numpy's matrix product is held to one thread while timing: on a
# busy machine its idle threads can stall a small product for milliseconds in every run (the
# library's fast layer still splits the batch over its own threads). The numbers depend on the
# machine, the ratios much less. Pooling is timed the same way in notebook 3.

# %%
rng = np.random.default_rng(6)
N = budget(full=8, graded=2)  # a smaller batch under the grader
x, w, b = rng.standard_normal((N, 3, 32, 32)), rng.standard_normal((16, 3, 3, 3)), np.zeros(16)
conv_param = {"stride": 1, "pad": 1}
repeats = budget(full=7, graded=3)
layers = {"naive loops": (conv_forward_naive, conv_backward_naive),
          "im2col": (conv_forward_im2col, conv_backward_im2col),
          "library fast": (conv_forward_fast, conv_backward_fast)}
timings = {name: time_layer(forward, backward, (x, w, b, conv_param), repeats, blas_threads=1)
           for name, (forward, backward) in layers.items()}
for name, times in timings.items():
    print(f"{name:>12}: " + ", ".join(
        f"{p} {1e3 * s:8.3f} ms ({timings['naive loops'][p] / s:5.1f}x the loops' speed)"
        for p, s in times.items()))
plot_timings(timings, repeats, title=f"Conv layer: x {x.shape}, 16 filters 3x3, stride 1, pad 1")
plt.show()

# %% [markdown]
# ## 5. Filters on real photos; learning a kernel (3 points)
#
# Hand-made 3 x 3 filters applied to a photo with your vectorised convolution: a vertical-edge
# (Sobel) filter responds where brightness changes from left to right, a box blur averages a
# neighbourhood, and a sharpen filter adds the difference between a pixel and its neighbours
# back to it. Same padding (P = 1) keeps the size.

# %%
camera = load_image("camera").astype(np.float64) / 255.0  # (512, 512) grey, values in [0, 1]
kernels = {
    "vertical edges (Sobel)": np.array([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]]),
    "box blur": np.full((3, 3), 1 / 9),
    "sharpen": np.array([[0.0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
}
w_photo = np.stack([k[None] for k in kernels.values()])  # (3, 1, 3, 3)
filtered, _ = conv_forward_im2col(camera[None, None], w_photo, np.zeros(3), {"pad": 1})
fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
axes[0].imshow(camera, cmap="gray")
axes[0].set_title("input")
for ax, name, image in zip(axes[1:], kernels, filtered[0], strict=True):
    ax.imshow(image, cmap="gray")
    ax.set_title(name)
for ax in axes:
    ax.axis("off")
plt.show()
plot_filters(w_photo, title="the three filters, each on its own colour scale", names=kernels,
             scale="filter")
plt.show()

# %% [markdown]
# **Learning a kernel.** Given an image and the output of an unknown 3 x 3 filter, gradient
# descent on the filter recovers it: the loss `L = 0.5 * mean((conv(x, w) + b - target)^2)` is a
# quadratic in `(w, b)`, so with a small enough step it converges to its minimum, the true filter.
#
# **Exercise.** Write `learn_kernel` with your `conv_forward_im2col` / `conv_backward_im2col`.
# Start from `w = 0`, `b = 0`; each step computes the loss, `dout = (out - target) / out.size`,
# the gradients, and `w -= learning_rate * dw`, `b -= learning_rate * db`.

# %% solution: learn_kernel
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes
def learn_kernel(x, target, HH, WW, num_steps, learning_rate, pad):
    """
    Fit one filter and bias to (x, target) by gradient descent on the mean squared error.

    Inputs:
    - x: input of shape (N, C, H, W)
    - target: desired output of shape (N, 1, H_out, W_out)
    - HH, WW: filter size; pad: zero padding (stride 1)
    - num_steps, learning_rate: gradient-descent steps and step size

    Returns a tuple of:
    - w: learned filter of shape (1, C, HH, WW); b: learned bias of shape (1,)
    - losses: list of the num_steps losses, each computed before its update
    """
    ### BEGIN SOLUTION
    w = np.zeros((1, x.shape[1], HH, WW))
    b = np.zeros(1)
    losses = []
    for _ in range(num_steps):
        out, cache = conv_forward_im2col(x, w, b, {"stride": 1, "pad": pad})
        diff = out - target
        losses.append(0.5 * float(np.mean(diff ** 2)))
        _, dw, db = conv_backward_im2col(diff / diff.size, cache)
        w -= learning_rate * dw
        b -= learning_rate * db
    ### END SOLUTION
    return w, b, losses


# %% tests: test_learn_kernel (3 points)
"""learn_kernel recovers the Sobel filter from a 64x64 photo and its filtered version."""
small = camera[::8, ::8]
small = ((small - small.mean()) / small.std())[None, None]  # (1, 1, 64, 64), zero mean, unit std
sobel = kernels["vertical edges (Sobel)"][None, None]  # (1, 1, 3, 3)
target, _ = conv_forward_fast(small, sobel, np.zeros(1), {"pad": 1})
w_learned, b_learned, losses = learn_kernel(small, target, 3, 3, num_steps=800,
                                            learning_rate=0.2, pad=1)
record("learned_kernel", w_learned, rtol=0, atol=1e-3)
record("learned_final_loss", losses[-1], kind="at_most", bound=1e-6)
assert_value("number of losses", len(losses), 800)
assert_array("learned kernel", w_learned, sobel, atol=1e-3)
assert losses[-1] < 1e-6 < losses[0], f"loss went from {losses[0]:.3g} to {losses[-1]:.3g}"

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
axes[0].semilogy(losses)
axes[0].set_xlabel("step")
axes[0].set_ylabel("loss")
for ax, kernel, title in ((axes[1], sobel[0, 0], "true Sobel"),
                          (axes[2], w_learned[0, 0], "learned")):
    ax.imshow(kernel, cmap="RdBu", vmin=-2, vmax=2)
    ax.set_title(title)
    ax.axis("off")
plt.show()
print("learned kernel:\n", np.round(w_learned[0, 0], 4), "\nbias:", np.round(b_learned, 6))

# %% [markdown]
# ## 6. 1x1 convolution as a matrix product (3 points)
#
# A 1 x 1 filter sees one pixel across all C channels: every output pixel is `w @ x[:, i, j] + b`
# with `w` an F x C matrix. A 1x1 convolution is therefore a fully connected layer applied to
# every pixel, and changes only the depth of a volume (GoogLeNet uses it to shrink the depth
# before expensive 3x3 and 5x5 filters).
#
# **Exercise.** Write `conv1x1` with one matrix product (`@` or `np.matmul`): no loops, and no
# convolution function (neither yours from parts 2 and 4 nor the library's).

# %% solution: conv1x1
# rules: forbid @shortcuts, cs231n_lib; allow cs231n_lib.shapes
def conv1x1(x, w, b):
    """
    1x1 convolution as a matrix product.

    Inputs:
    - x: input of shape (N, C, H, W)
    - w: filter weights of shape (F, C, 1, 1)
    - b: biases of shape (F,)

    Returns:
    - out: output of shape (N, F, H, W)
    """
    ### BEGIN SOLUTION
    N, C, H, W = x.shape
    F = w.shape[0]
    out = w.reshape(F, C) @ x.reshape(N, C, H * W) + b[:, None]  # (N, F, H*W)
    out = out.reshape(N, F, H, W)
    ### END SOLUTION
    return out


# %% tests: test_conv1x1 (1 points)
"""conv1x1 equals the definition: out[n, :, i, j] = w[:, :, 0, 0] @ x[n, :, i, j] + b."""
rng = np.random.default_rng(8)
x, w, b = rng.standard_normal((2, 5, 4, 3)), rng.standard_normal((7, 5, 1, 1)), \
    rng.standard_normal(7)
out = conv1x1(x, w, b)
record("conv1x1_out", out, rtol=1e-10, atol=1e-12)
expected = np.zeros((2, 7, 4, 3))
for n, i, j in np.ndindex(2, 4, 3):  # the definition, one pixel at a time
    expected[n, :, i, j] = w[:, :, 0, 0] @ x[n, :, i, j] + b
assert_array("out", out, expected, rtol=1e-10, atol=1e-12)

# %% tests: test_conv1x1_hidden (2 points)
"""conv1x1 on random shapes, without loops or a convolution function (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(88)
for case in range(4):
    N, C, H, W, F = (int(v) for v in rng.integers(1, 7, size=5))
    x, w, b = rng.standard_normal((N, C, H, W)), rng.standard_normal((F, C, 1, 1)), \
        rng.standard_normal(F)
    out = conv1x1(x, w, b)
    record(f"conv1x1_hidden_{case} (x {x.shape}, w {w.shape})", out, rtol=1e-10, atol=1e-12)
x, w, b = rng.standard_normal((4, 8, 20, 20)), rng.standard_normal((6, 8, 1, 1)), np.zeros(6)
_, trace = trace_call(conv1x1, x, w, b)
record("conv1x1_lines_no_loops", trace.lines, kind="at_most", bound=40)
record("conv1x1_no_convolution_function", trace.shortcuts(), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. From fully connected to convolutional (3 points)
#
# A fully connected layer on a C x H x W volume is a convolution whose filters cover the whole
# volume (F = H, no padding): each of its M output neurons is one filter, and the output is
# M x 1 x 1. Converted this way, a network trained on fixed-size crops can slide over a larger
# image in one pass and produce a *map* of class scores, one per crop position, sharing all the
# computation of overlapping crops.
#
# **Exercise.** Write `fc_to_conv`: given the weights `w_fc` of shape (D, M) of an affine layer
# `out = x.reshape(N, D) @ w_fc + b` on inputs of shape (N, C, H, W) with D = C * H * W, return
# the (M, C, H, W) filters of the equivalent convolution.

# %% solution: fc_to_conv
# rules: forbid cs231n_lib; allow cs231n_lib.shapes
def fc_to_conv(w_fc, input_shape):
    """
    Filters of the convolution equivalent to an affine layer.

    Inputs:
    - w_fc: affine weights of shape (D, M), D = C * H * W
    - input_shape: (C, H, W) of one input

    Returns:
    - w_conv: filters of shape (M, C, H, W)
    """
    ### BEGIN SOLUTION
    C, H, W = input_shape
    w_conv = w_fc.T.reshape(w_fc.shape[1], C, H, W)
    ### END SOLUTION
    return w_conv


# %% tests: test_fc_to_conv (3 points)
"""fc_to_conv: the convolution equals the affine layer, and slides over a larger input."""
rng = np.random.default_rng(9)
x = rng.standard_normal((2, 4, 7, 7))
w_fc, b = rng.standard_normal((4 * 7 * 7, 10)), rng.standard_normal(10)
w_conv = fc_to_conv(w_fc, (4, 7, 7))
record("fc_to_conv_w", w_conv, kind="equal")
assert_value("type of w_conv", type(w_conv).__name__, "ndarray")
assert_value("w_conv shape", w_conv.shape, (10, 4, 7, 7))
scores_conv = conv_forward_fast(x, w_conv, b, {"stride": 1, "pad": 0})[0]  # (2, 10, 1, 1)
assert_array("conv scores", scores_conv[:, :, 0, 0], x.reshape(2, -1) @ w_fc + b, rtol=1e-10)
big = rng.standard_normal((1, 4, 9, 9))  # a 9x9 input: 3x3 positions of the 7x7 window
score_map = conv_forward_fast(big, w_conv, b, {"stride": 1, "pad": 0})[0]  # (1, 10, 3, 3)
crop = big[:, :, 2:9, 1:8].reshape(1, -1)  # the window of score-map position (2, 1)
assert_array("score map at (2, 1)", score_map[:, :, 2, 1], crop @ w_fc + b, rtol=1e-10)
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(999)
C, H, W, M = (int(v) for v in rng.integers(1, 6, size=4))
w_fc = rng.standard_normal((C * H * W, M))
w_conv = fc_to_conv(w_fc, (C, H, W))
record(f"fc_to_conv_hidden (C={C}, H={H}, W={W}, M={M})", w_conv, kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# In the notes' example, a network shrinks a 224 x 224 image by a factor of 32 to a 7 x 7 x 512
# volume, on which the first fully connected layer acts. As a 7 x 7 convolution it slides over
# the larger volume of a 384 x 384 image, one step per 32 input pixels:

# %%
total_stride, window = 32, 7
for size in (224, 384):
    volume = size // total_stride
    scores = shapes.output_size(volume, window, stride=1)
    print(f"{size} x {size} image -> {volume} x {volume} x 512 volume -> "
          f"{scores} x {scores} score map ({scores * scores} crop positions, "
          f"{total_stride} px apart)")
step, size, crop = 16, 384, 224
shifts = [(dy, dx) for dy in range(0, total_stride, step) for dx in range(0, total_stride, step)]
print(f"score positions every {step} px: {len(shifts)} passes, the input shifted by {shifts}")


def crops_scored(shift):
    """Top-left corners of the crops scored by one pass over the image shifted by (dy, dx),
    i.e. with its first dy rows and dx columns cut off (pixels past the last 32 px step unused)."""
    dy, dx = shift
    n_rows = (size - dy - crop) // total_stride + 1
    n_cols = (size - dx - crop) // total_stride + 1
    return {(dy + total_stride * i, dx + total_stride * j)
            for i in range(n_rows) for j in range(n_cols)}


grid = range(0, size - crop + 1, step)
every_16px = {(y, x) for y in grid for x in grid}
twice = crops_scored((0, 0)) | crops_scored((step, step))
four_times = set().union(*(crops_scored(shift) for shift in shifts))
print(f"crops of {crop} px every {step} px in a {size} x {size} image: {len(every_16px)}; "
      f"two passes (original, shifted along both axes) score {len(twice)}, "
      f"{len(shifts)} passes score {len(four_times & every_16px)}")

# %% [markdown]
# **An erratum in the English notes.** To score crops every 16 pixels, the notes say to forward
# the converted network *twice*, over the original image and over the image shifted by 16
# pixels along both width and height. The two passes score only the crops whose corner is
# shifted along both axes or along neither, about half of them (the count above); the crops
# shifted along one axis only need two more passes, one shifted along the width and one along
# the height: $(32 / 16)^2 = 4$ passes. The Chinese translation has it right: after the pass over
# the original image it shifts the image by 16 pixels along the width, along the height, and
# along both.

# %% [markdown]
# ## 8. Dilation and receptive field (3 points)
#
# Stacking layers grows the receptive field: three 3 x 3 convolutions (stride 1) see a 7 x 7
# region of the input, like one 7 x 7 convolution, with fewer weights and more non-linearities.
# A layer with stride S multiplies the step ("jump") between the receptive fields of the next
# layers' neighbouring neurons by S; a **dilated** filter (taps d pixels apart) spans
# `d * (F - 1) + 1` pixels with the same F x F weights. For layers listed bottom-up, with `j` the
# jump in input pixels between neighbouring neurons of the layer below (1 at the input):
#
#     r <- r + d * (F - 1) * j,    j <- j * S,    starting from r = 1, j = 1.
#
# **Exercise.** Write `receptive_field`.

# %% solution: receptive_field
# rules: forbid cs231n_lib
def receptive_field(layers):
    """
    Receptive field size, in input pixels along one axis, of one neuron of the last layer.

    Inputs:
    - layers: sequence of (F, S, d) tuples, bottom-up: filter size, stride and dilation

    Returns:
    - r: int, the receptive field size
    """
    ### BEGIN SOLUTION
    r, jump = 1, 1
    for field, stride, dilation in layers:
        r += dilation * (field - 1) * jump
        jump *= stride
    ### END SOLUTION
    return r


# %% tests: test_receptive_field (1 points)
"""receptive_field on three 3x3 convs, dilated convs and AlexNet's conv1 + pool1."""
cases = {"three 3x3 convs": ([(3, 1, 1)] * 3, 3 + 2 + 2),
         "3x3 convs with dilation 1, 2, 4": ([(3, 1, 1), (3, 1, 2), (3, 1, 4)], 3 + 4 + 8),
         "AlexNet conv1 11/4 + pool 3/2": ([(11, 4, 1), (3, 2, 1)], 11 + 2 * 4)}
for name, (layers, expected) in cases.items():
    r = receptive_field(layers)
    record(f"receptive_field_{name}", r, kind="equal")
    assert_value(name, r, expected)

# %% tests: test_receptive_field_hidden (2 points)
"""receptive_field on random stacks of (F, S, d) layers (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(31)
for case in range(6):
    layers = [tuple(int(v) for v in rng.integers(1, 4, size=3)) for _ in range(rng.integers(1, 5))]
    r = receptive_field(layers)
    record(f"receptive_field_hidden_{case} {layers}", r, kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# Receptive field against depth for 3x3 layers: plain, with dilation doubling at every layer
# (the context module of Yu and Koltun), and with a stride-2 layer first. Weights per layer (for
# C channels in and out) are the same, 9 C^2, in all three; a single 7x7 layer needs 49 C^2 for
# the 7 x 7 field that three 3x3 layers (27 C^2) reach.

# %%
depths = np.arange(1, 9)
curves = {
    "3x3, stride 1": [receptive_field([(3, 1, 1)] * L) for L in depths],
    "3x3, dilation 1, 2, 4, ...": [receptive_field([(3, 1, 2**k) for k in range(L)])
                                   for L in depths],
    "3x3, first layer stride 2": [receptive_field([(3, 2, 1)] + [(3, 1, 1)] * (L - 1))
                                  for L in depths],
}
for name, rs in curves.items():
    plt.plot(depths, rs, "o-", label=name)
plt.xlabel("layers")
plt.ylabel("receptive field (pixels)")
plt.legend()
plt.show()
for name, rs in curves.items():
    print(f"{name:>28}: {rs}")
print(f"three 3x3 layers: receptive field {receptive_field([(3, 1, 1)] * 3)}, "
      f"{3 * 3 * 3} C^2 weights; one 7x7 layer: {receptive_field([(7, 1, 1)])}, {7 * 7} C^2")
