# Source of assignments/02_padding_stride/02_padding_stride.ipynb (build: course_src/build.py).

# %% [markdown]
# # 2. Padding and stride
#
# How zero padding (零填充) and stride (步长) set the size of a convolution's output, which
# settings are valid, how padding modes differ, and why the notes recommend stride 1 and zero
# padding. Terms are defined in the
# [glossary of notebook 1](../01_convolution/01_convolution.ipynb).
#
# **How to work.** Write your code where the line `# YOUR CODE HERE` stands (remove the
# `raise NotImplementedError()` under it), run the test cell below each exercise, and fix what its
# message reports (type, then shape, then values). Hidden tests on random inputs run at grading
# time.
#
# | Part | Topic | Points |
# |---|---|---|
# | 1 | The output-size rule | 6 |
# | 2 | Same padding and padding modes | 7 |
# | 3 | Why zero padding: the border experiment | 8 |
# | 4 | The AlexNet 224 vs 227 puzzle | 3 |
# | 5 | Why stride 1; a strided convolution is a stride-1 convolution plus down-sampling | 6 |
#
# **Total: 30 points**
#
# Conventions: NCHW tensors; `P` is zero padding **per side** (the notes' convention; some books
# count both sides); stride `S`; filter size `F`; a non-integer output size is an error, not a
# floor.

# %%
import matplotlib.pyplot as plt
import numpy as np

from cs231n_lib.call_trace import trace_call
from cs231n_lib.checks import assert_array, assert_value, record
from cs231n_lib.data import load_image
from cs231n_lib.fast_layers import conv_backward_fast, conv_forward_fast

plt.rcParams["figure.figsize"] = (9, 3.5)

# %% [markdown]
# ## 1. The output-size rule (6 points)
#
# Along one axis, an input of size W, padded with P zeros on each side, holds W + 2P pixels; a
# filter of size F fits at W + 2P - F + 1 positions, and a stride S keeps every S-th of them
# starting with the first, so the output has `(W - F + 2P) / S + 1` pixels. When S does not
# divide `W - F + 2P`, the filter positions do not tile the input symmetrically: the notes call
# the setting invalid, and so do we (a library that floors the result silently ignores the last
# rows and columns).
#
# **Exercise.** Write `conv_output_size` without the course library (this function *is* the
# library's rule). Raise `ValueError` for a setting that is not an integer (a bool is not one
# either), for W, F or S below 1 (so a stride S = 0 is an error too) or P below 0, for a filter
# larger than the padded input, and for a non-integer output size; the message must name the
# values and the rule, and show the fractional result, e.g. for W=10, F=3, S=2, P=0:
# `(W - F + 2P) / S + 1 = (10 - 3 + 2*0) / 2 + 1 = 4.5 is not an integer`.

# %% solution: conv_output_size
# rules: forbid cs231n_lib
def conv_output_size(W, F, S=1, P=0):
    """
    Output size of a convolution or pooling layer along one axis.

    Inputs:
    - W: input size (integer >= 1)
    - F: filter size (integer >= 1)
    - S: stride (integer >= 1)
    - P: zero padding per side (integer >= 0)

    Returns:
    - the output size (W - F + 2P) / S + 1, an int

    Raises ValueError (naming the values and the rule) for invalid settings.
    """
    ### BEGIN SOLUTION
    for name, value, lowest in (("W", W, 1), ("F", F, 1), ("S", S, 1), ("P", P, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
            raise ValueError(f"{name}={value!r} must be an integer >= {lowest}")
    if F > W + 2 * P:
        raise ValueError(f"F={F} is larger than the padded input W + 2P = {W} + 2*{P}")
    span = W - F + 2 * P
    if span % S:
        raise ValueError(f"(W - F + 2P) / S + 1 = ({W} - {F} + 2*{P}) / {S} + 1 = "
                         f"{span / S + 1:g} is not an integer: stride S={S} does not tile the "
                         "padded input")
    return span // S + 1
    ### END SOLUTION


# %% tests: test_conv_output_size (3 points)
"""conv_output_size on the notes' examples, valid and invalid."""
valid = {(7, 3, 1, 0): 5, (7, 3, 2, 0): 3, (5, 3, 1, 1): 5, (5, 3, 2, 1): 3, (227, 11, 4, 0): 55}
sizes = [conv_output_size(*args) for args in valid]
record("output_size_valid", sizes, kind="equal")
for (args, expected), got in zip(valid.items(), sizes, strict=True):
    assert_value(f"conv_output_size(W={args[0]}, F={args[1]}, S={args[2]}, P={args[3]})",
                 got, expected)
messages = []
for args in [(10, 3, 2, 0), (5, 3, 3, 1), (3, 5, 1, 0), (5, 3, 0, 0), (5, 3, 1, -1)]:
    try:
        got = conv_output_size(*args)
    except ValueError as err:
        messages.append(str(err))
    else:
        raise AssertionError(f"conv_output_size{args} returned {got!r}: expected ValueError")
record("output_size_invalid_count", len(messages), kind="equal")
record("output_size_message_shows_4_5", "4.5" in messages[0], kind="equal")
assert "4.5" in messages[0] and "10" in messages[0], \
    f"the message for W=10, F=3, S=2, P=0 must show the values and 4.5: {messages[0]!r}"

# %% tests: test_conv_output_size_hidden (3 points)
"""conv_output_size on a random grid of settings, valid and invalid (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(12)
settings = [tuple(int(v) for v in rng.integers((1, 1, 1, 0), (40, 12, 6, 4))) for _ in range(60)]
outcomes = []
for W, F, S, P in settings:
    try:
        outcomes.append(conv_output_size(W, F, S, P))
    except ValueError:
        outcomes.append("invalid")
for setting, outcome in zip(settings, outcomes, strict=True):
    record(f"conv_output_size{setting}", outcome, kind="equal")
_, trace = trace_call(conv_output_size, 227, 11, 4, 0)
record("output_size_without_the_course_library", trace.used(["cs231n_lib."]), kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# Output size against input size for F = 3, P = 1 and three strides; crosses mark inputs that
# the stride does not tile.

# %%
widths = np.arange(5, 41)
for S, color in zip((1, 2, 3), ("C0", "C1", "C2"), strict=True):
    ok, bad = [], []
    for W in widths:
        try:
            ok.append((W, conv_output_size(int(W), 3, S, 1)))
        except ValueError:
            bad.append((W, (W - 3 + 2) / S + 1))
    plt.plot(*np.array(ok).T, "o", color=color, ms=4, label=f"S={S}")
    if bad:
        plt.plot(*np.array(bad).T, "x", color=color, ms=5)
    print(f"S={S}: {len(bad)} of {len(widths)} input sizes from 5 to 40 are invalid")
plt.xlabel("input size W")
plt.ylabel("output size")
plt.legend()
plt.title("F=3, P=1: valid (o) and invalid (x) settings")
plt.show()

# %% [markdown]
# ## 2. Same padding and padding modes (7 points)
#
# At stride 1, `P = (F - 1) / 2` keeps the output size equal to the input size ("same" padding);
# it needs an odd F. Zero padding is one way to fill the border; image-processing code also
# reflects the image at its edge (`reflect`: ... 2 1 | 0 1 2 ...), repeats the edge pixel
# (`replicate`: ... 0 0 | 0 1 2 ...), or wraps around (`circular`: ... W-2 W-1 | 0 1 2 ...).
#
# **Exercise.** Write `same_padding` and `pad_image` (with index arithmetic or slicing; not with
# `np.pad`: a hidden test checks that).

# %% solution: same_padding
# rules: forbid cs231n_lib, scipy, numpy.pad, numpy.lib._arraypad_impl
def same_padding(F):
    """
    Zero padding per side that keeps the size at stride 1.

    Inputs:
    - F: odd filter size

    Returns:
    - P = (F - 1) / 2, an int; raises ValueError for an even F
    """
    ### BEGIN SOLUTION
    if F % 2 == 0:
        raise ValueError(f"same padding needs an odd filter size, got F={F}")
    return (F - 1) // 2
    ### END SOLUTION


def pad_image(x, pad, mode="zero"):
    """
    Pad the last two axes of x (N, C, H, W) by `pad` pixels on every side.

    Inputs:
    - x: array of shape (N, C, H, W)
    - pad: pixels per side (integer >= 0); for 'reflect' at most H - 1 and W - 1
    - mode: 'zero', 'reflect', 'replicate' or 'circular'

    Returns:
    - array of shape (N, C, H + 2 pad, W + 2 pad), dtype of x; x is not modified
    """
    ### BEGIN SOLUTION
    modes = ("zero", "reflect", "replicate", "circular")
    if mode not in modes:
        raise ValueError(f"mode={mode!r} must be one of {modes}")
    H, W = x.shape[2:]
    if mode == "reflect" and pad > min(H, W) - 1:
        raise ValueError(f"reflect padding needs pad <= H - 1 and W - 1, got pad={pad}, "
                         f"H={H}, W={W}")
    if mode == "zero":
        out = np.zeros(x.shape[:2] + (H + 2 * pad, W + 2 * pad), dtype=x.dtype)
        out[:, :, pad:pad + H, pad:pad + W] = x
        return out
    idx = []
    for n in (H, W):
        i = np.arange(-pad, n + pad)  # source index of every padded position
        if mode == "reflect":
            i = np.abs(i)
            i = np.where(i > n - 1, 2 * (n - 1) - i, i)
        elif mode == "replicate":
            i = np.clip(i, 0, n - 1)
        else:  # circular
            i = i % n
        idx.append(i)
    return x[:, :, idx[0][:, None], idx[1][None, :]]
    ### END SOLUTION


# %% tests: test_same_padding (1 points)
"""same_padding for F = 1, 3, 5, 7, 11 and an even F."""
pads = [same_padding(F) for F in (1, 3, 5, 7, 11)]
record("same_padding", pads, kind="equal")
assert_value("same_padding for F = 1, 3, 5, 7, 11", pads, [0, 1, 2, 3, 5])
try:
    same_padding(4)
except ValueError:
    pass
else:
    raise AssertionError("same_padding(4) must raise ValueError: no integer P keeps the size")

# %% tests: test_pad_image (3 points)
"""pad_image on a 2x3 image, every mode, by hand."""
x = np.arange(1.0, 7.0).reshape(1, 1, 2, 3)  # [[1, 2, 3], [4, 5, 6]]
by_hand = {  # pad 1: one row above and below, one column left and right
    "zero": [[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 0, 0, 0, 0]],
    # row -1 is row 1 (the edge row is not repeated), column -1 is column 1, column 3 column 1
    "reflect": [[5, 4, 5, 6, 5], [2, 1, 2, 3, 2], [5, 4, 5, 6, 5], [2, 1, 2, 3, 2]],
    # every outside pixel copies the nearest edge pixel
    "replicate": [[1, 1, 2, 3, 3], [1, 1, 2, 3, 3], [4, 4, 5, 6, 6], [4, 4, 5, 6, 6]],
    # row -1 is the last row, column -1 the last column, column 3 the first
    "circular": [[6, 4, 5, 6, 4], [3, 1, 2, 3, 1], [6, 4, 5, 6, 4], [3, 1, 2, 3, 1]],
}
for mode, expected in by_hand.items():
    out = pad_image(x, 1, mode)
    record(f"pad_image_{mode}", out, kind="equal")
    assert_array(f"pad_image(x, 1, {mode!r})", out, np.array(expected, dtype=float)[None, None])
assert_array("x after padding (inputs must not change)", x,
             np.arange(1.0, 7.0).reshape(1, 1, 2, 3))
out32 = pad_image(x.astype(np.float32), 1, "circular")
assert_value("dtype of pad_image on a float32 input", str(out32.dtype), "float32")

# %% tests: test_pad_image_hidden (3 points)
"""pad_image on random shapes, pads and modes; no np.pad (hidden tests)."""
### BEGIN HIDDEN TESTS
MODES = ("zero", "reflect", "replicate", "circular")
rng = np.random.default_rng(21)
for case in range(8):
    N, C = (int(v) for v in rng.integers(1, 3, size=2))
    H, W = (int(v) for v in rng.integers(2, 7, size=2))
    mode = MODES[case % 4]
    pad = int(rng.integers(0, min(H, W)))
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    out = pad_image(x, pad, mode)  # kind "equal" compares the dtype too
    record(f"pad_image_hidden_{case} ({mode}, pad={pad}, x {x.shape} float32)", out, kind="equal")
x = rng.standard_normal((2, 3, 5, 6))
traces = [trace_call(pad_image, x, 2, mode)[1] for mode in MODES]
record("pad_image_no_np_pad", sorted({f for t in traces for f in t.used(["numpy.lib._arraypad"])}),
       kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# The four modes on a photo, with a wide border so that the difference is visible:

# %%
chelsea = load_image("chelsea")  # (300, 451, 3) uint8
x_photo = chelsea.transpose(2, 0, 1)[None].astype(np.float64) / 255.0  # (1, 3, 300, 451)
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
for ax, mode in zip(axes, ("zero", "reflect", "replicate", "circular"), strict=True):
    ax.imshow(pad_image(x_photo, 80, mode)[0].transpose(1, 2, 0))
    ax.set_title(mode)
    ax.axis("off")
plt.show()

# %% [markdown]
# ## 3. Why zero padding: the border experiment (8 points)
#
# The notes give two reasons for zero padding: it keeps the spatial size (so the sizes of a deep
# stack do not need bookkeeping), and without it "the information at the borders is washed away
# too quickly". Both can be measured. Without padding each 3 x 3 layer removes one pixel on every
# side. And even before the border pixels are cut away entirely, they reach fewer outputs: a
# pixel in the middle of the image lies in the receptive field of many output neurons, a corner
# pixel in few.
#
# **Exercise.** Write `influence_map(H, W, F, num_layers, pad)`: for a stack of `num_layers`
# convolutions with F x F filters, stride 1 and padding `pad`, return an (H, W) int array whose
# entry `[p, q]` counts the output neurons of the last layer whose receptive field contains input
# pixel (p, q). The output of L such layers has size `H + L * (2 * pad - F + 1)` (use your
# `conv_output_size`), and the receptive field of output row `o` is the `L * (F - 1) + 1` input
# rows starting at `o - L * pad`. Rows and columns are independent, so the count is a product.

# %% solution: influence_map
# rules: forbid cs231n_lib, scipy, measured_influence
def influence_map(H, W, F, num_layers, pad):
    """
    Number of last-layer output neurons that each input pixel can influence.

    Inputs:
    - H, W: input size
    - F: filter size of every layer (stride 1)
    - num_layers: L, the number of stacked layers
    - pad: zero padding per side of every layer

    Returns:
    - counts: int array of shape (H, W)
    """
    ### BEGIN SOLUTION
    def counts_1d(n):
        size = n
        for _ in range(num_layers):
            size = conv_output_size(size, F, 1, pad)
        field = num_layers * (F - 1) + 1
        start = np.arange(size)[None, :] - num_layers * pad  # (1, size): first row of each field
        p = np.arange(n)[:, None]  # (n, 1)
        return ((p >= start) & (p < start + field)).sum(axis=1)  # (n,)

    counts = np.outer(counts_1d(H), counts_1d(W))
    ### END SOLUTION
    return counts


# %% [markdown]
# The tests use small stacks that can be counted by hand, one axis at a time. For H = 6, F = 3,
# L = 2, P = 0: the output has 6 + 2 * (0 - 3 + 1) = 2 rows, with receptive fields of
# 2 * 2 + 1 = 5 rows starting at rows 0 and 1; input row 0 lies in one of them, rows 1 to 4 in
# both, row 5 in one: `[1, 2, 2, 2, 2, 1]`. With P = 1 the output has 6 rows, whose fields start
# at rows -2, -1, ..., 3, and row 0 lies in the fields starting at -2, -1 and 0: 3 of them.

# %% tests: test_influence_map (3 points)
"""influence_map on three small stacks, counted by hand one axis at a time."""
by_hand = {  # (H, W, F, L, pad): (counts along H, counts along W)
    (6, 5, 3, 2, 0): ([1, 2, 2, 2, 2, 1], [1, 1, 1, 1, 1]),  # 2 x 1 outputs
    (6, 5, 3, 2, 1): ([3, 4, 5, 5, 4, 3], [3, 4, 5, 4, 3]),  # 6 x 5 outputs
    (7, 7, 5, 1, 2): ([3, 4, 5, 5, 5, 4, 3], [3, 4, 5, 5, 5, 4, 3]),  # 7 x 7 outputs
}
for args, (rows, cols) in by_hand.items():
    counts = influence_map(*args)
    record(f"influence_{'_'.join(map(str, args))}", counts, rtol=0, atol=1e-9)
    assert_array(f"influence_map(H, W, F, L, pad = {args})", counts, np.outer(rows, cols))

# %% tests: test_influence_map_hidden (3 points)
"""influence_map on random stacks (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(33)
for case in range(5):
    F = int(rng.choice([1, 3, 5]))
    L = int(rng.integers(1, 4))
    pad = int(rng.integers(0, F // 2 + 2))
    H, W = (int(v) for v in rng.integers(L * (F - 1) + 1, L * (F - 1) + 6, size=2))
    counts = influence_map(H, W, F, L, pad)
    record(f"influence_hidden_{case} (H={H}, W={W}, F={F}, L={L}, pad={pad})", counts, rtol=0,
           atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# **How a stack of unpadded 3x3 convolutions eats the border** of a 32 x 32 image, and how many
# outputs each input pixel reaches after four layers, without and with padding:

# %%
depths = np.arange(1, 16)
valid_sizes = []
for L in depths:
    size = 32
    for _ in range(L):
        size = conv_output_size(size, 3, 1, 0)
    valid_sizes.append(size)
kept = (np.array(valid_sizes) / 32) ** 2
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
axes[0].plot(depths, 100 * kept, "o-")
axes[0].set_xlabel("unpadded 3x3 layers")
axes[0].set_ylabel("% of the image area left")
maps = {f"P={p}": influence_map(32, 32, 3, 4, p) for p in (0, 1)}
for ax, (name, m) in zip(axes[1:], maps.items(), strict=True):
    im = ax.imshow(m, cmap="viridis")
    ax.set_title(f"outputs reached after 4 layers, {name}")
    fig.colorbar(im, ax=ax)
plt.show()
print(f"after {depths[3]} unpadded layers: {valid_sizes[3]} x {valid_sizes[3]} "
      f"({100 * kept[3]:.0f}% of the area); after {depths[-1]}: {valid_sizes[-1]} x "
      f"{valid_sizes[-1]} ({100 * kept[-1]:.1f}%)")
for name, m in maps.items():
    print(f"{name}: centre pixel reaches {m[16, 16]} outputs, edge-centre pixel {m[0, 16]}, "
          f"corner pixel {m[0, 0]} ({m[0, 0] / m[16, 16]:.0%} of the centre)")

# %% [markdown]
# Using the numbers printed above, explain the two reasons the notes give for zero padding. Why
# does a corner pixel still reach fewer outputs than a centre pixel even with same padding?

# %% [markdown] answer: q_zero_padding (2 points)
# **Reference answer.** Without padding every 3x3 layer removes a one-pixel frame: after four
# layers the 32 x 32 image is 24 x 24 (56% of the area), after fifteen only 2 x 2, so a deep
# stack needs padding just to keep a usable size, and the sizes of all layers stay equal and easy
# to plan. Border information is also used less: with P=0 a corner pixel reaches 1 output while
# a centre pixel reaches 81, so the border is washed out quickly. With P=1 the corner reaches 25
# outputs (31% of the centre's 81): a pixel is seen by the outputs within L(F-1)/2 = 4 positions
# of it along each axis, 9 x 9 of them in the middle, but at a corner the outputs on the far side
# would lie outside the image, which same padding does not create: 5 x 5 remain.

# %% [markdown]
# ## 4. The AlexNet 224 vs 227 puzzle (3 points)
#
# The AlexNet paper states 224 x 224 x 3 inputs to a first layer with 96 filters of 11 x 11 at
# stride 4, and a 55 x 55 output. The notes point out that the numbers only work for 227 x 227.
#
# **Exercise.** Write `valid_input_sizes(F, S, P, sizes)`: the sizes, among `sizes`, for which
# your `conv_output_size` accepts the setting.

# %% solution: valid_input_sizes
# rules: forbid cs231n_lib
def valid_input_sizes(F, S, P, sizes):
    """
    The input sizes that a filter size F, stride S and padding P tile exactly.

    Inputs:
    - F, S, P: filter size, stride, zero padding per side
    - sizes: iterable of candidate input sizes

    Returns:
    - list of the valid sizes, in the order given
    """
    ### BEGIN SOLUTION
    valid = []
    for W in sizes:
        try:
            conv_output_size(W, F, S, P)
        except ValueError:
            continue
        valid.append(W)
    return valid
    ### END SOLUTION


# %% tests: test_valid_input_sizes (1 points)
"""valid_input_sizes around 224 for AlexNet's first layer."""
valid = valid_input_sizes(11, 4, 0, range(220, 232))
record("alexnet_valid_sizes", valid, kind="equal")
# (W - 11) / 4 must be an integer: W = 11 + 4k, i.e. 223, 227, 231 in 220..231
assert_value("valid sizes in 220..231 for F=11, S=4, P=0", valid, [223, 227, 231])

# %%
for P in range(4):
    try:
        print(f"224 with P={P}: output {conv_output_size(224, 11, 4, P)}")
    except ValueError as err:
        print(f"224 with P={P}: {err}")
print(f"227 with P=0: output {conv_output_size(227, 11, 4, 0)} -> 55 x 55 x 96 "
      f"= {conv_output_size(227, 11, 4, 0) ** 2 * 96:,} neurons")
print("input sizes in 200..260 that work with P=0:", valid_input_sizes(11, 4, 0, range(200, 261)))

# %% [markdown]
# Explain the puzzle with the printed numbers: why does no zero padding P make 224 work, and what
# must the real input have been?

# %% [markdown] answer: q_alexnet (2 points)
# **Reference answer.** With W=224, F=11, S=4: (224 - 11 + 2P) / 4 + 1 = (213 + 2P) / 4 + 1;
# 213 + 2P is odd for every integer P, so it is never divisible by 4 (P=0 gives 54.25). The
# output 55 needs (W - 11) / 4 = 54, i.e. W = 227 (or, equivalently, 224 with an uneven padding
# of 3 pixels, which the symmetric rule does not allow). The paper's 224 is the crop size before
# that adjustment; the implementation effectively used 227 x 227 inputs.

# %% [markdown]
# ## 5. Why stride 1; a strided convolution is a stride-1 convolution plus down-sampling (6 points)
#
# The notes: smaller strides work better in practice, and stride 1 leaves all spatial
# down-sampling to the pooling layers, so the conv layers only transform the volume in depth.
# The two operations are related exactly: a convolution with stride S equals the stride-1
# convolution sampled at every S-th row and column, `out_S = out_1[:, :, ::S, ::S]`, so a strided
# layer is just a cheaper way to compute a down-sampled stride-1 layer (it skips the positions it
# would throw away). In the backward pass, down-sampling becomes **zero insertion**: the gradient
# of the stride-1 output is `dout` at every S-th position and 0 elsewhere.
#
# **Exercise.** Write both functions with the given `conv_forward_fast` / `conv_backward_fast`
# at stride 1 only.

# %% solution: strided_via_stride1
def strided_conv_forward(x, w, b, conv_param):
    """
    Convolution with stride S computed as a stride-1 convolution followed by down-sampling.

    Inputs:
    - x, w, b: as for conv_forward_fast
    - conv_param: dict with 'stride' and 'pad'

    Returns:
    - out: the same array as conv_forward_fast(x, w, b, conv_param)[0]
    """
    ### BEGIN SOLUTION
    S = conv_param["stride"]
    out1, _ = conv_forward_fast(x, w, b, {"stride": 1, "pad": conv_param["pad"]})
    if (out1.shape[2] - 1) % S or (out1.shape[3] - 1) % S:
        raise ValueError(f"stride={S} does not tile the stride-1 output {out1.shape[2:]}")
    out = out1[:, :, ::S, ::S]
    ### END SOLUTION
    return out


def strided_conv_backward(dout, x, w, b, conv_param):
    """
    Gradients of strided_conv_forward: zero-insert dout, then the stride-1 backward pass.

    Inputs:
    - dout: upstream gradient of shape (N, F, H_out, W_out) of the strided output
    - x, w, b, conv_param: as for strided_conv_forward

    Returns:
    - dx, dw, db: the same arrays as conv_backward_fast gives for the strided layer
    """
    ### BEGIN SOLUTION
    S = conv_param["stride"]
    out1, cache1 = conv_forward_fast(x, w, b, {"stride": 1, "pad": conv_param["pad"]})
    dout1 = np.zeros_like(out1)
    dout1[:, :, ::S, ::S] = dout  # zero insertion: the adjoint of down-sampling
    dx, dw, db = conv_backward_fast(dout1, cache1)
    ### END SOLUTION
    return dx, dw, db


# %% [markdown]
# The visible tests use the hand-checkable case of notebook 1: `x` holds 0..24 in a 5 x 5 image,
# pad 1, stride 2 (a 3 x 3 output); filter 0 sums its 3 x 3 window (bias +1), filter 1 doubles
# the centre pixel (bias -1). In the backward pass, `dout` is 1 at every output of filter 0 and
# 0..8 (row-major) at the outputs of filter 1.

# %% tests: test_strided_forward (2 points)
"""strided_conv_forward on the 5x5 image of notebook 1, by hand (pad 1, stride 2)."""
x = np.arange(25.0).reshape(1, 1, 5, 5)
w = np.zeros((2, 1, 3, 3))
w[0] = 1.0  # box filter
w[1, 0, 1, 1] = 2.0  # doubles the centre pixel
b = np.array([1.0, -1.0])
conv_param = {"stride": 2, "pad": 1}
out = strided_conv_forward(x, w, b, conv_param)
record("strided_forward", out, rtol=1e-9, atol=1e-10)
box = [[0 + 1 + 5 + 6, 1 + 2 + 3 + 6 + 7 + 8, 3 + 4 + 8 + 9],  # windows centred on row 0
       [5 + 6 + 10 + 11 + 15 + 16, 6 + 7 + 8 + 11 + 12 + 13 + 16 + 17 + 18,
        8 + 9 + 13 + 14 + 18 + 19],  # centred on row 2
       [15 + 16 + 20 + 21, 16 + 17 + 18 + 21 + 22 + 23, 18 + 19 + 23 + 24]]  # row 4
centre = [[0, 2, 4], [10, 12, 14], [20, 22, 24]]  # x at rows/columns 0, 2, 4
assert_array("out", out, np.array([[np.array(box) + 1.0, 2.0 * np.array(centre) - 1.0]]),
             rtol=1e-9, atol=1e-10)

# %% tests: test_strided_backward (2 points)
"""strided_conv_backward on the same case, by hand."""
dout = np.stack([np.ones((3, 3)), np.arange(9.0).reshape(3, 3)])[None]  # (1, 2, 3, 3)
grads = strided_conv_backward(dout, x, w, b, conv_param)
for name, got in zip(("dx", "dw", "db"), grads, strict=True):
    record(f"strided_backward_{name}", got, rtol=1e-9, atol=1e-10)
dx, dw, db = grads
# dx, filter 0: each pixel collects 1 from every window covering it; along each axis the windows
# cover rows -1..1, 1..3 and 3..5, so rows 1 and 3 are in two windows, the others in one.
# Filter 1: the centre tap of output (i, j) is pixel (2i, 2j), which receives 2 * dout[0, 1, i, j].
dx_by_hand = np.outer([1.0, 2, 1, 2, 1], [1.0, 2, 1, 2, 1])
dx_by_hand[::2, ::2] += 2.0 * np.arange(9.0).reshape(3, 3)
assert_array("dx", dx, dx_by_hand[None, None], rtol=1e-9, atol=1e-10)
# dw[f, 0, a, b]: every output adds dout[0, f, i, j] times the padded pixel under tap (a, b),
# which is xp[2i + a, 2j + b]; db[f]: the sum of dout[0, f].
xp = np.zeros((7, 7))
xp[1:6, 1:6] = x[0, 0]  # the zero-padded image
dw_by_hand = [[[(dout[0, f] * xp[a:a + 5:2, c:c + 5:2]).sum() for c in range(3)]
               for a in range(3)] for f in range(2)]
assert_array("dw", dw, np.array(dw_by_hand)[:, None], rtol=1e-9, atol=1e-10)
assert_array("db", db, np.array([9.0, 36.0]), rtol=1e-9, atol=1e-10)

# %% tests: test_strided_hidden (2 points)
"""strided forward and backward on random shapes and strides (hidden tests)."""
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(55)
for case in range(4):
    S, F, pad = int(rng.integers(2, 4)), int(rng.choice([1, 3, 5])), int(rng.integers(0, 3))
    H_out, W_out = (int(v) for v in rng.integers(1, 5, size=2))
    H, W = (H_out - 1) * S + F - 2 * pad, (W_out - 1) * S + F - 2 * pad
    if min(H, W) < 1:
        H, W, pad = H + 2 * pad, W + 2 * pad, 0
    x, w, b = rng.standard_normal((2, 2, H, W)), rng.standard_normal((3, 2, F, F)), \
        rng.standard_normal(3)
    conv_param = {"stride": S, "pad": pad}
    label = f"x {x.shape}, w {w.shape}, S={S}, P={pad}"
    out = strided_conv_forward(x, w, b, conv_param)
    dout = rng.standard_normal((2, 3, H_out, W_out))
    grads = strided_conv_backward(dout, x, w, b, conv_param)
    record(f"strided_hidden_out_{case} ({label})", out, rtol=1e-9, atol=1e-10)
    for name, got in zip(("dx", "dw", "db"), grads, strict=True):
        record(f"strided_hidden_{name}_{case} ({label})", got, rtol=1e-9, atol=1e-10)
# How: the functions must call the given layers at stride 1 only. A spy replaces them briefly.
_given = {"conv_forward_fast": conv_forward_fast}
strides_used = []


def _spy_forward(x, w, b, conv_param):
    strides_used.append(conv_param.get("stride", 1))
    return _given["conv_forward_fast"](x, w, b, conv_param)


conv_forward_fast = _spy_forward
x, w, b = rng.standard_normal((1, 2, 9, 9)), rng.standard_normal((3, 2, 3, 3)), np.zeros(3)
try:
    out = strided_conv_forward(x, w, b, {"stride": 3, "pad": 0})
    strided_conv_backward(np.ones_like(out), x, w, b, {"stride": 3, "pad": 0})
finally:
    conv_forward_fast = _given["conv_forward_fast"]
record("strided_calls_conv_forward_fast_at_stride_1_only", sorted(set(strides_used)),
       kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# **Transposed convolution.** The gradient with respect to `x` is itself a convolution: insert
# S - 1 zeros between the entries of `dout` (as above), pad by `F - 1 - P`, and convolve at
# stride 1 with the filters flipped in both spatial axes and with their in/out channels swapped.
# This "transposed convolution" is the learned up-sampling layer of decoders and GAN generators.
# The exact-tiling rule is what makes its output size come out at exactly H x W:

# %%
rng = np.random.default_rng(6)
S, P = 2, 1
x, w = rng.standard_normal((2, 3, 9, 11)), rng.standard_normal((4, 3, 3, 3))
out, cache = conv_forward_fast(x, w, np.zeros(4), {"stride": S, "pad": P})
dout = rng.standard_normal(out.shape)
up = np.zeros(dout.shape[:2] + ((dout.shape[2] - 1) * S + 1, (dout.shape[3] - 1) * S + 1))
up[:, :, ::S, ::S] = dout  # zero insertion
w_t = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # (C, F, HH, WW): flipped, channels swapped
dx_transposed, _ = conv_forward_fast(up, w_t, np.zeros(3), {"stride": 1, "pad": 3 - 1 - P})
dx_backward = conv_backward_fast(dout, cache)[0]
print(f"dout {dout.shape} -> zero-inserted {up.shape} -> transposed conv {dx_transposed.shape}; "
      f"max |difference| to conv_backward_fast's dx: "
      f"{np.abs(dx_transposed - dx_backward).max():.1e}")

# %% [markdown]
# What the stride-1 route costs: it computes every position and throws most of them away.

# %%
for S in (1, 2, 4):
    full = conv_output_size(227, 11, 1, 0) ** 2
    kept = conv_output_size(227, 11, S, 0) ** 2
    print(f"stride {S}: {kept:,} of {full:,} stride-1 outputs kept ({kept / full:.1%})")
