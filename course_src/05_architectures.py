# Source of assignments/05_architectures/05_architectures.ipynb (build: python course_src/build.py).

# %% [markdown]
# # 5. Classic architectures
#
# The networks the CS231n notes name, LeNet, AlexNet, ZF Net, GoogLeNet, VGGNet and ResNet, as
# *specs*: an input shape and a list of layer records from `cs231n_lib.architectures`. From a
# spec the library counts parameters, multiply-accumulates (MACs) and activations
# (`cs231n_lib.memory`, the calculator of notebook 4) and builds a runnable numpy network
# (`cs231n_lib.classifiers.convnet.ConvNet`). You write LeNet as a spec, find where each network
# keeps its parameters and its activations, compare a stack of 3x3 convolutions with one 7x7,
# count the operations an inception module saves with 1x1 bottlenecks, implement a residual
# block forward and backward, compare the design choices of the six networks, check them
# against the notes' layer patterns and sizing rules, and train LeNet with sigmoids and with ReLUs.
#
# **How to work.** Write your code where the line `# YOUR CODE HERE` stands (remove the
# `raise NotImplementedError()` under it), run the test cell below each exercise, and fix what its
# message reports (type, then shape, then values). Test cells are read-only. The grader runs
# further, hidden tests; passing the visible tests is necessary, not sufficient. Write your
# answers to the written questions in the cells marked "YOUR ANSWER HERE".
#
# | Part | Topic | Points |
# |---|---|---|
# | 1 | Networks as specs: LeNet, and the reference counts | 4 |
# | 2 | Where the parameters and the activations live | 3 |
# | 3 | Three 3x3 convolutions vs one 7x7 | 3 |
# | 4 | The inception module and its 1x1 bottlenecks | 6 |
# | 5 | Residual blocks | 7 |
# | 6 | Design choices across the six networks | 5 |
# | 7 | Layer patterns and sizing rules | 6 |
# | 8 | Training LeNet: sigmoid or ReLU | not graded |
#
# **Total: 34 points**
#
# **Conventions** (the whole course): NCHW tensors, shapes of one example (C, H, W); `pad` is
# zero padding per side; output sizes must be integers. One multiply-accumulate (MAC) is one
# `a += w * x`; model cards that quote "FLOPs" for these networks usually count MACs, true FLOPs
# are about twice as many. Terms of the Chinese notes: see the
# [glossary of notebook 1](../01_convolution/01_convolution.ipynb#Glossary).

# %% [markdown]
# ## Terms
#
# The terms of the Chinese notes that this notebook uses, as the translation writes them (the
# full list: [glossary of notebook 1](../01_convolution/01_convolution.ipynb#Glossary)):
#
# | 中文 | English | Meaning here |
# |---|---|---|
# | 卷积 | convolution | slide a filter over the input; multiply and sum at each position |
# | 滤波器 | filter | one set of weights (F x F x input depth) slid over the input |
# | 汇聚 | pooling | summarise each window of a feature map (max or average), per channel |
# | 步长 | stride | S, the step between neighbouring filter positions |
# | 零填充 | zero padding | P rows/columns of zeros added on each side of the input |
# | 数据体 | volume | a 3-D array of activations: width x height x depth (channels) |
# | 感受野 | receptive field | the input region that one output neuron sees |
# | 降采样 | down-sampling | reducing the spatial size (pooling, or a stride above 1) |
# | 激活数据 | activations | the values of an intermediate volume (a layer's output) |
# | 层的排列规律 | layer patterns | the order of CONV, RELU, POOL and FC layers (part 7) |
# | 层的尺寸设置规律 | layer sizing | filter, stride, padding, input, pool sizes (part 7) |

# %%
import matplotlib.pyplot as plt
import numpy as np

from cs231n_lib import architectures as arch
from cs231n_lib import memory
from cs231n_lib.checks import assert_array, assert_value, record
from cs231n_lib.classifiers.convnet import ConvNet
from cs231n_lib.fast_layers import (  # noqa: F401 (the residual block written out from the library uses them)
    conv_backward_fast,
    conv_forward_fast,
)
from cs231n_lib.gradient_check import (
    eval_numerical_gradient,
    eval_numerical_gradient_array,
    rel_error,
)
from cs231n_lib.layers import relu_backward, relu_forward  # noqa: F401 (as above)

plt.rcParams["figure.figsize"] = (9, 3.5)

# Reference counts, typed in as data (not computed here) for the specs to be checked against.
# Published as exact totals: the num_params of torchvision's model cards.
PUBLISHED_PARAMS = {
    "googlenet": 6_624_904,         # torchvision, without the auxiliary classifiers
    "vgg16": 138_357_544,           # torchvision (the VGG paper's Table 2 rounds it to 138M)
    "resnet18": 11_689_512,         # torchvision
    "resnet50": 25_557_032,         # torchvision
}
# Counted by hand from the layer sizes each source describes; the source prints a rounded total
# or per-layer counts, not these totals.
HAND_COUNTED_PARAMS = {
    "lenet": 61_706,                # d2l's LeNet (28x28 input padded by 2)
    "lenet5": 60_840,               # LeCun et al. 1998: the sum of its per-layer counts + the
                                    # 84 x 10 RBF centres (trainable subsampling, C3 table)
    "alexnet_grouped": 60_965_224,  # Krizhevsky et al. 2012, two GPUs (the paper: "60 million")
    "alexnet": 62_378_344,          # the same layers in one stream
    "zfnet": 62_357_608,            # Zeiler and Fergus 2013 (AlexNet, conv1 7x7/2, conv2 5x5/2)
}
# Counted by hand as well; torchvision's model card rounds it to "GFLOPS 15.47" (MACs, in fact).
VGG16_MACS = 15_470_264_320

# %% [markdown]
# ## 1. Networks as specs: LeNet, and the reference counts (4 points)
#
# A spec is `arch.Spec(name, input_shape, layers)`. The records used here:
# `arch.Conv(filters, size, stride=1, pad=0)`, `arch.Pool("max" or "avg", size, stride=None)`
# (stride defaults to the size), `arch.Activation("sigmoid", inplace=False)` (or `arch.ReLU()`),
# `arch.Flatten()` and `arch.FC(units)`. `memory.layer_table(spec)` lists every layer's output
# shape, activations, parameters and MACs; `memory.totals(spec)` adds them up.
#
# **Exercise.** Write `lenet_spec()`: LeNet as in d2l, on a 1 x 28 x 28 input. A 5x5
# convolution with 6 filters and padding 2, a sigmoid, a 2x2 average pool (stride 2); a 5x5
# convolution with 16 filters (no padding), a sigmoid, a 2x2 average pool; then flatten and
# fully connected layers of 120, 84 and 10 units with a sigmoid after the first two.

# %% solution: lenet_spec
# rules: forbid cs231n_lib; allow cs231n_lib.architectures.{Spec,Conv,Pool,Activation,Flatten,FC}
def lenet_spec():
    """LeNet (d2l variant) as an arch.Spec on a (1, 28, 28) input."""
    ### BEGIN SOLUTION
    sig = arch.Activation("sigmoid", inplace=False)
    return arch.Spec("my_lenet", (1, 28, 28), (
        arch.Conv(6, 5, pad=2), sig, arch.Pool("avg", 2),
        arch.Conv(16, 5), sig, arch.Pool("avg", 2),
        arch.Flatten(), arch.FC(120), sig, arch.FC(84), sig, arch.FC(10)))
    ### END SOLUTION


# %% tests: test_lenet_spec (4 points)
"""lenet_spec: shapes of every layer and d2l's LeNet's 61,706 parameters (counted by hand)."""
spec = lenet_spec()
rows = memory.layer_table(spec)
shapes = [tuple(int(s) for s in r.shape) for r in rows]
mine = memory.totals(spec)
record("lenet_shapes", shapes, kind="equal")
record("lenet_params", int(mine["params"]), kind="equal")
record("lenet_macs", int(mine["macs"]), kind="equal")
# d2l's LeNet, worked out by hand: the input row, then one row per layer.
expected_shapes = [(1, 28, 28), (6, 28, 28), (6, 28, 28), (6, 14, 14),  # (28 - 5 + 2*2) + 1 = 28
                   (16, 10, 10), (16, 10, 10), (16, 5, 5),              # 14 - 5 + 1 = 10
                   (16 * 5 * 5,), (120,), (120,), (84,), (84,), (10,)]
assert_value("number of rows (input + 12 layers)", len(rows), len(expected_shapes))
for i, (got, shape) in enumerate(zip(rows, expected_shapes, strict=True)):
    assert_value(f"row {i} ({got.label}) output shape", tuple(got.shape), shape)
assert_value("parameters", mine["params"], HAND_COUNTED_PARAMS["lenet"])
# MACs: one dot product per output value of the conv and FC layers (pooling and sigmoids: none)
assert_value("MACs", mine["macs"], 6 * 28 * 28 * (1 * 5 * 5) + 16 * 10 * 10 * (6 * 5 * 5)
             + 120 * 400 + 84 * 120 + 10 * 84)

# %% [markdown]
# Your LeNet layer by layer, then the library's specs of all the classic networks against
# the reference counts of the setup cell. Only torchvision's model cards publish exact totals;
# the papers print rounded totals ("60 million" for AlexNet) or per-layer counts (LeNet-5), so
# the other references are counts by hand of the layers the sources describe (column
# "source"). Where a published shape does not follow from the strict rule
# `(W - F + 2P) / S + 1` (AlexNet's 224 input, framework rounding), the spec's note says which
# assumption it makes.

# %%
print(memory.format_table(spec))
print()
print(f"{'network':<17}{'input':>12}{'parameters':>14}{'reference':>14}{'':>3}"
      f"{'source':>12}{'MACs':>16}{'activations':>13}")
references = [(name, count, "hand count") for name, count in HAND_COUNTED_PARAMS.items()]
references += [(name, count, "torchvision") for name, count in PUBLISHED_PARAMS.items()]
for name, reference, source in references:
    s = arch.get(name)
    t = memory.totals(s)
    mark = "ok" if t["params"] == reference else "!!"
    print(f"{name:<17}{'x'.join(map(str, s.input)):>12}{t['params']:>14,}{reference:>14,}"
          f"{mark:>3}{source:>12}{t['macs']:>16,}{t['activations']:>13,}")
vgg_macs = memory.totals(arch.vgg16())["macs"]
print(f"\nVGG-16 MACs {vgg_macs:,} vs the hand count {VGG16_MACS:,}: "
      f"{'ok' if vgg_macs == VGG16_MACS else '!!'} ({vgg_macs / 1e9:.2f} G, torchvision's "
      f"\"GFLOPS 15.47\"; true FLOPs about {2 * vgg_macs / 1e9:.1f} G)")
for name in ("alexnet", "zfnet", "googlenet", "resnet50"):
    print(f"{name}: {arch.get(name).note}")

# %% [markdown]
# ## 2. Where the parameters and the activations live (3 points)
#
# **Exercise.** Write `cumulative_shares(rows)`: given the rows of `memory.layer_table(spec)`
# without the input row (each has `.activations` and `.params`), return two float arrays, the
# fraction of all activations and the fraction of all parameters held by the layers up to and
# including each row. Both end at 1.0.

# %% solution: cumulative_shares
# rules: forbid cs231n_lib
def cumulative_shares(rows):
    """
    Cumulative fractions of activations and parameters, layer by layer.

    Inputs:
    - rows: sequence of objects with integer attributes ``activations`` and ``params``

    Returns a tuple (activation_share, param_share) of float64 arrays of shape (len(rows),).
    """
    ### BEGIN SOLUTION
    acts = np.cumsum([r.activations for r in rows], dtype=np.float64)
    params = np.cumsum([r.params for r in rows], dtype=np.float64)
    return acts / acts[-1], params / params[-1]
    ### END SOLUTION


# %% tests: test_cumulative_shares (3 points)
"""cumulative_shares on VGG-16 and ResNet-18 rows."""
for name in ("vgg16", "resnet18"):
    rows = memory.layer_table(arch.get(name))[1:]
    act_share, param_share = cumulative_shares(rows)
    record(f"shares_{name}", (act_share, param_share), rtol=1e-10, atol=1e-12)
    acts = np.array([r.activations for r in rows], dtype=np.float64)
    params = np.array([r.params for r in rows], dtype=np.float64)
    assert_array(f"{name}: activation share", act_share, np.cumsum(acts) / acts.sum(),
                 rtol=1e-10, atol=1e-12)
    assert_array(f"{name}: parameter share", param_share, np.cumsum(params) / params.sum(),
                 rtol=1e-10, atol=1e-12)
### BEGIN HIDDEN TESTS
rows = memory.layer_table(arch.googlenet())[1:]
record("shares_googlenet", cumulative_shares(rows), rtol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
for ax, name in zip(axes, ("vgg16", "alexnet", "resnet18"), strict=True):
    rows = memory.layer_table(arch.get(name))[1:]
    act_share, param_share = cumulative_shares(rows)
    depth = np.linspace(0, 1, len(rows))
    ax.plot(depth, act_share, label="activations")
    ax.plot(depth, param_share, label="parameters")
    ax.set_title(name)
    ax.set_xlabel("position in the network (0 = first layer, 1 = last)")
axes[0].set_ylabel("cumulative share")
axes[0].legend()
plt.show()
vgg_rows = memory.layer_table(arch.vgg16())[1:]
fc = [r for r in vgg_rows if r.label.startswith("fc")]
total = memory.totals(arch.vgg16())["params"]
print(f"VGG-16: the first FC layer holds {fc[0].params:,} of {total:,} parameters "
      f"({fc[0].params / total:.1%}); the three FC layers {sum(r.params for r in fc) / total:.1%}")
act_share, _ = cumulative_shares(vgg_rows)
first_block = next(i for i, r in enumerate(vgg_rows) if r.label.startswith("maxpool"))
print(f"VGG-16: the layers up to the first pool ({first_block + 1} rows) hold "
      f"{act_share[first_block]:.1%} of the activations")

# %% [markdown]
# ## 3. Three 3x3 convolutions vs one 7x7 (3 points)
#
# Three stacked 3x3 convolutions (stride 1) see a 7x7 region of the input, like one 7x7
# convolution. With C channels in and out (biases aside), the stack has 3 * 9 C^2 = 27 C^2
# weights, the single layer 49 C^2; the stack also puts three non-linearities where the single
# layer has one.
#
# **Exercise.** Write `conv_stack_cost(C, size, n, H, W)` for n stacked size x size convolutions
# with C input and C output channels, stride 1 and same padding (`(size - 1) // 2`, odd sizes),
# no biases, on an H x W input: return (weights, MACs, receptive field).

# %% solution: conv_stack_cost
# rules: forbid cs231n_lib, stack_spec, support_width
def conv_stack_cost(C, size, n, H, W):
    """
    Weights, multiply-accumulates and receptive field of n stacked same-padded convolutions.

    Returns a tuple of Python ints (weights, macs, receptive_field).
    """
    ### BEGIN SOLUTION
    weights = n * C * C * size * size
    macs = H * W * weights  # every layer keeps H x W; one dot product per output value
    return weights, macs, n * (size - 1) + 1
    ### END SOLUTION


# %% tests: test_conv_stack_cost (3 points)
"""conv_stack_cost: three 3x3 vs one 7x7 at C=64 on 56x56, and 2 x 5x5 on 9x7."""
# (C, size, n, H, W) -> (weights, MACs = H * W * weights, receptive field), worked out by hand
expected_costs = {
    (64, 3, 3, 56, 56): (27 * 64**2, 56 * 56 * 27 * 64**2, 7),  # 3 * 9 C^2; 3 -> 5 -> 7
    (64, 7, 1, 56, 56): (49 * 64**2, 56 * 56 * 49 * 64**2, 7),  # 49 C^2
    (5, 5, 2, 9, 7): (2 * 25 * 5**2, 9 * 7 * 2 * 25 * 5**2, 9),  # 5 -> 9
}
for (C, size, n, H, W), expected in expected_costs.items():
    got = conv_stack_cost(C, size, n, H, W)
    record(f"stack_cost_{C}_{size}_{n}", tuple(int(v) for v in got), kind="equal")
    assert_value(f"{n} x {size}x{size}, C={C}, {H}x{W}", tuple(got), expected)
### BEGIN HIDDEN TESTS
rng = np.random.default_rng(33)
for case in range(4):
    C, n, H, W = (int(v) for v in rng.integers(1, 20, size=4))
    size = int(rng.choice([1, 3, 5, 7]))
    got = conv_stack_cost(C, size, n, H, W)
    record(f"stack_cost_hidden_{case}", tuple(int(v) for v in got), kind="equal")
### END HIDDEN TESTS

# %%
C, H = 64, 56
w3, m3, r3 = conv_stack_cost(C, 3, 3, H, H)
w7, m7, r7 = conv_stack_cost(C, 7, 1, H, H)
print(f"three 3x3 layers: receptive field {r3}x{r3}, {w3:,} weights = {w3 // C**2} C^2, "
      f"{m3:,} MACs on {H}x{H}")
print(f"one 7x7 layer:    receptive field {r7}x{r7}, {w7:,} weights = {w7 // C**2} C^2, "
      f"{m7:,} MACs ({w7 / w3:.2f} times more)")

# %% [markdown]
# ## 4. The inception module and its 1x1 bottlenecks (6 points)
#
# An inception module runs four branches on the same input and concatenates their outputs along
# the depth: a 1x1 convolution, a 3x3, a 5x5 and a 3x3 max pool (stride 1, padded to keep the
# size). Run naively, the 3x3 and 5x5 filters see the full input depth, and the pool passes the
# full depth on. GoogLeNet puts 1x1 convolutions ("bottlenecks") in front of the 3x3 and 5x5
# (r3 and r5 filters) and after the pool (pool_proj filters).
#
# **Exercise.** Write `inception_macs(input_shape, c1, r3, c3, r5, c5, pool_proj, bottleneck)`:
# the MACs of one module for one example (convolutions only; pooling has no MACs) and its
# output depth. With `bottleneck=False` ignore r3, r5 and pool_proj: the 3x3 and 5x5 see all C
# input channels and the pool branch outputs C channels.

# %% solution: inception_macs
# rules: forbid cs231n_lib, library_inception, naive_inception
def inception_macs(input_shape, c1, r3, c3, r5, c5, pool_proj, bottleneck=True):
    """
    Multiply-accumulates and output depth of one inception module (stride 1, same padding).

    Inputs:
    - input_shape: (C, H, W)
    - c1: 1x1 filters; r3, c3: 1x1 reduction and 3x3 filters; r5, c5: 1x1 reduction and 5x5
      filters; pool_proj: 1x1 filters after the 3x3 max pool
    - bottleneck: False for the naive module (no reductions, no pool projection)

    Returns a tuple of Python ints (macs, output_depth).
    """
    ### BEGIN SOLUTION
    C, H, W = input_shape
    pixels = H * W
    if bottleneck:
        macs = pixels * (c1 * C + r3 * C + c3 * r3 * 9 + r5 * C + c5 * r5 * 25 + pool_proj * C)
        return macs, c1 + c3 + c5 + pool_proj
    return pixels * (c1 * C + c3 * C * 9 + c5 * C * 25), c1 + c3 + c5 + C
    ### END SOLUTION


# %% tests: test_inception_macs (3 points)
"""inception_macs on the lecture's 28x28x256 module, naive and with bottlenecks."""
lecture = ((256, 28, 28), (128, 64, 192, 64, 96, 64))  # c1, r3, c3, r5, c5, pool_proj
# The lecture's figures: 28 x 28 outputs per filter, (filters x C x size x size) MACs each.
expected = {
    False: (28 * 28 * (128 * 256 + 192 * 256 * 9 + 96 * 256 * 25),  # 1x1, 3x3, 5x5 on 256
            128 + 192 + 96 + 256),                                    # the pool passes 256 on
    True: (28 * 28 * (128 * 256 + 64 * 256 + 192 * 64 * 9 + 64 * 256 + 96 * 64 * 25
                      + 64 * 256),                                    # ... + pool projection
           128 + 192 + 96 + 64),
}
for bottleneck in (False, True):
    got = inception_macs(lecture[0], *lecture[1], bottleneck=bottleneck)
    record(f"inception_lecture_{bottleneck}", tuple(int(v) for v in got), kind="equal")
    assert_value(f"bottleneck={bottleneck}: (MACs, output depth)", tuple(got),
                 expected[bottleneck])
### BEGIN HIDDEN TESTS
googlenet_3a = ((192, 28, 28), (64, 96, 128, 16, 32, 32))
for bottleneck in (False, True):
    got = inception_macs(googlenet_3a[0], *googlenet_3a[1], bottleneck=bottleneck)
    record(f"inception_3a_{bottleneck}", tuple(int(v) for v in got), kind="equal")
rng = np.random.default_rng(44)
for case in range(3):
    shape = (int(rng.integers(1, 64)), int(rng.integers(1, 20)), int(rng.integers(1, 20)))
    channels = tuple(int(v) for v in rng.integers(1, 64, size=6))
    got = inception_macs(shape, *channels, bottleneck=bool(case % 2))
    record(f"inception_hidden_{case}", tuple(int(v) for v in got), kind="equal")
### END HIDDEN TESTS

# %%
naive_macs, naive_depth = inception_macs(lecture[0], *lecture[1], bottleneck=False)
bottle_macs, bottle_depth = inception_macs(lecture[0], *lecture[1], bottleneck=True)
C, H, W = lecture[0]
c1, r3, c3, r5, c5, pp = lecture[1]
branches = {
    "naive": {"1x1": H * W * c1 * C, "3x3": H * W * c3 * C * 9, "5x5": H * W * c5 * C * 25,
              "pool proj": 0},
    "bottleneck": {"1x1": H * W * c1 * C, "3x3": H * W * (r3 * C + c3 * r3 * 9),
                   "5x5": H * W * (r5 * C + c5 * r5 * 25), "pool proj": H * W * pp * C},
}
bottom = np.zeros(2)
for branch in branches["naive"]:
    values = np.array([branches[k][branch] for k in branches]) / 1e6
    plt.bar(list(branches), values, bottom=bottom, label=branch)
    bottom += values
plt.ylabel("million MACs")
plt.title(f"Inception module on {H}x{W}x{C}")
plt.legend()
plt.show()
print(f"naive module:      {naive_macs:>12,} MACs, output depth {naive_depth}")
print(f"with bottlenecks:  {bottle_macs:>12,} MACs, output depth {bottle_depth} "
      f"({naive_macs / bottle_macs:.1f} times fewer MACs)")

# %% [markdown]
# The 2017 CS231n lecture slide on this module quotes "854M ops" for the naive module and
# "358M ops" with bottlenecks. The naive figure is the one above; the bottleneck figure is not.
# The slide lists six convolutions; their MACs, row by row (output size x filters x filter
# size x input depth):

# %%
slide_rows = {  # (filters, size, input depth) of each convolution the slide lists
    "1x1 conv, 64 (before the 3x3)": (r3, 1, C),
    "1x1 conv, 64 (before the 5x5)": (r5, 1, C),
    "1x1 conv, 128": (c1, 1, C),
    "3x3 conv, 192": (c3, 3, r3),
    "5x5 conv, 96": (c5, 5, r5),
    "1x1 conv, 64 (pool projection)": (pp, 1, C),
}
slide_macs = {row: H * W * f * k * k * d for row, (f, k, d) in slide_rows.items()}
for row, (f, k, d) in slide_rows.items():
    print(f"{row:<32}{f'[{H}x{W}x{f}] x [{k}x{k}x{d}]':<26}{slide_macs[row]:>12,}")
slide_sum = sum(slide_macs.values())
twice_3x3 = slide_sum + slide_macs["3x3 conv, 192"]
print(f"{'sum of the six rows':<58}{slide_sum:>12,} (inception_macs: {bottle_macs:,})")
print(f"the slide's 358M: {slide_sum:,} + {slide_macs['3x3 conv, 192']:,} (the 3x3 row again) "
      f"= {twice_3x3:,}, i.e. the 3x3 row counted twice; naive {naive_macs:,} = the slide's 854M")

# %% [markdown]
# **GoogLeNet's "5x5" branch.** The library's `arch.googlenet()` follows torchvision, whose
# port of GoogLeNet uses a 3x3 convolution in the branch the paper gives 5x5 filters (kept so
# that its pretrained weights load); that is what reproduces torchvision's published count
# (`PUBLISHED_PARAMS["googlenet"]`). `arch.googlenet(true_5x5=True)` has the paper's 5x5
# filters. The CS231n notes give GoogLeNet "4M" parameters (against AlexNet's "60M") without
# saying what they count; the GoogLeNet paper says it uses 12 times fewer parameters than
# AlexNet. Neither figure matches a count of the network as specified, with or without its
# final classifier layer:

# %%
print(f"the notes: 4M; the GoogLeNet paper's '12 times fewer' than AlexNet's '60 million': "
      f"{60_000_000 / 12:,.0f}; the counts:")
alexnet_params = memory.totals(arch.alexnet_grouped())["params"]
for variant in (arch.googlenet(), arch.googlenet(true_5x5=True)):
    t = memory.totals(variant)
    classifier = variant.layers[-1]  # FC(1000) on the 1024 pooled features
    head = sum(arch.param_count(classifier, (1024,)))
    print(f"{variant.name:<14}: {t['params']:>9,} parameters ({t['params'] - head:>9,} without "
          f"the final FC layer), {t['macs']:>13,} MACs; AlexNet (two GPUs) has "
          f"{alexnet_params / t['params']:.1f} times more parameters")

# %% [markdown]
# **Question (3 points).**
# Why does the naive module get more expensive from one module to the next when modules are
# stacked, and how do the 1x1 bottlenecks fix both the cost and the growth? What do the
# bottlenecks give up?

# %% [markdown] answer: q_inception (3 points)
# **Reference answer.** The pool branch passes all C input channels through and the other
# branches add theirs, so the output depth is always larger than the input depth (256 -> 672
# here); the next module's 3x3 and 5x5 filters then see an even deeper input, and the MACs grow
# with the depth at every module. A 1x1 convolution to r3 or r5 channels first cuts the depth the
# expensive filters see (256 -> 64: about 3.1 times fewer MACs here), and the pool projection
# fixes the pool branch's depth, so the output depth (480 here) is a design choice. The price is
# a compression: the 3x3 and 5x5 filters only see a learned 64-dimensional summary of each
# pixel, which may lose information (in practice it works well, and adds a non-linearity).

# %% [markdown]
# ## 5. Residual blocks (7 points)
#
# A residual block learns a correction to its input: `out = relu(F(x) + x)`. In the basic
# block (ResNet-18/34), `F` is conv3x3 - ReLU - conv3x3 with C channels, stride 1 and pad 1 (the
# library's specs add batch normalisation after each convolution; we leave it out here). In the
# backward pass the addition copies its upstream gradient to both paths, so `dx` is the gradient
# through `F` **plus** the gradient that arrives through the skip connection. That one is the
# block's upstream gradient after the final ReLU's mask (zero where `F(x) + x <= 0`): it reaches
# `x` without passing through any weights, so the convolutions cannot shrink it.
#
# **Exercise.** Write `residual_block_forward` and `residual_block_backward` with the given
# `conv_forward_fast` / `conv_backward_fast` and `relu_forward` / `relu_backward`.

# %% solution: residual_block_forward
# rules: forbid cs231n_lib, library_block; allow cs231n_lib.{fast_layers,layers}
from cs231n_lib.classifiers.convnet import (  # solution from the library
    residual_block_backward,
    residual_block_forward,
)


# %%
def residual_case(seed, N=2, C=3, H=5, W=4):
    """Seeded float64 inputs (x, w1, b1, w2, b2) for a basic block."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, C, H, W)), 0.3 * rng.standard_normal((C, C, 3, 3)),
            0.1 * rng.standard_normal(C), 0.3 * rng.standard_normal((C, C, 3, 3)),
            0.1 * rng.standard_normal(C))

# %% tests: test_residual_forward (2 points)
"""residual_block_forward equals relu(conv2(relu(conv1(x))) + x) written out with the layers."""
x, w1, b1, w2, b2 = residual_case(0)
out, cache = residual_block_forward(x, w1, b1, w2, b2)
record("residual_out", out, rtol=1e-10, atol=1e-12)
same = {"stride": 1, "pad": 1}
F_x = conv_forward_fast(np.maximum(conv_forward_fast(x, w1, b1, same)[0], 0), w2, b2, same)[0]
assert_array("out", out, np.maximum(F_x + x, 0), rtol=1e-10, atol=1e-12)
x0 = np.zeros_like(w1)
out_zero_filters, _ = residual_block_forward(x, x0, 0 * b1, x0, 0 * b2)
assert_array("out with all-zero filters: relu(x)", out_zero_filters, np.maximum(x, 0))

# %% tests: test_residual_backward (3 points)
"""residual_block_backward against numerical gradients (float64)."""
x, w1, b1, w2, b2 = residual_case(1)
dout = np.random.default_rng(2).standard_normal(x.shape)
out, cache = residual_block_forward(x, w1, b1, w2, b2)
grads = residual_block_backward(dout, cache)
record("residual_grads", tuple(grads), rtol=1e-8, atol=1e-10)
numeric = [eval_numerical_gradient_array(lambda v, i=i: residual_block_forward(
    *[v if j == i else a for j, a in enumerate((x, w1, b1, w2, b2))])[0],
    (x, w1, b1, w2, b2)[i], dout) for i in range(5)]
for name, got, num in zip(("dx", "dw1", "db1", "dw2", "db2"), grads, numeric, strict=True):
    assert_array(name, got, num, rtol=1e-6, atol=1e-8)
    print(f"{name}: relative error {rel_error(got, num):.2e}")

# %% tests: test_residual_hidden (2 points)
"""The residual block on other seeds and shapes (hidden tests)."""
### BEGIN HIDDEN TESTS
for case, shape in enumerate(((1, 4, 6, 6), (3, 2, 3, 7))):
    x, w1, b1, w2, b2 = residual_case(50 + case, *shape)
    out, cache = residual_block_forward(x, w1, b1, w2, b2)
    record(f"residual_hidden_out_{case}", out, rtol=1e-10, atol=1e-12)
    dout = np.random.default_rng(60 + case).standard_normal(shape)
    record(f"residual_hidden_grads_{case}", tuple(residual_block_backward(dout, cache)),
           rtol=1e-8, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# **Bottleneck blocks.** ResNet-50 and deeper use a 1x1 - 3x3 - 1x1 body: reduce the depth
# (e.g. 256 -> 64), convolve at 64 channels, expand back (64 -> 256). At 256 channels a basic
# block would cost two 3x3 convolutions at full depth. The parameter counts of both blocks from
# the library's specs (batch normalisation included):

# %%
for name, block in (("basic, 256 channels", arch.basic_block(256, 256)),
                    ("bottleneck, 256 -> 64 -> 256", arch.bottleneck_block(256, 64)),
                    ("basic, 64 channels", arch.basic_block(64, 64))):
    t = memory.totals(arch.Spec(name, (256 if "256" in name else 64, 56, 56), (block,)))
    print(f"{name:<30}: {t['params']:>9,} parameters, {t['macs']:>13,} MACs on 56x56")

# %% [markdown]
# The library's `ConvNet` runs any spec forward and backward; a whole network made of a
# bottleneck block (with batch normalisation and a projection shortcut), global average pooling
# and a classifier passes a gradient check in float64:

# %%
spec = arch.Spec("bottleneck_net", (8, 4, 4), (arch.bottleneck_block(8, 4, stride=1),
                                              arch.GlobalAvgPool(), arch.FC(3)))
model = ConvNet(spec, dtype=np.float64, seed=0)
rng = np.random.default_rng(3)
X, y = rng.standard_normal((4, 8, 4, 4)), rng.integers(0, 3, size=4)
loss, grads = model.loss(X, y)
worst = 0.0
for key in sorted(model.params):
    num = eval_numerical_gradient(lambda _: model.loss(X, y)[0], model.params[key])
    worst = max(worst, rel_error(grads[key], num))
print(f"{len(model.params)} parameter arrays, loss {loss:.4f}; worst relative error "
      f"{worst:.2e}")

# %% [markdown]
# ## 6. Design choices across the six networks (5 points)
#
# The facts for the written comparison, computed from the specs: weight layers (conv and FC),
# the first layer, parameters, MACs, activations per image, the share of parameters in fully
# connected layers, and the share of activations produced before the first pooling layer.

# %%
def weight_layers(rows):
    return [r for r in rows if r.label.startswith(("conv", "fc"))]


print(f"{'network':<10}{'input':>11}{'weight layers':>15}{'first layer':>14}{'params':>14}"
      f"{'MACs':>16}{'activations':>13}{'FC params':>11}{'early acts':>12}")
for name in ("lenet", "alexnet", "zfnet", "googlenet", "vgg16", "resnet50"):
    s = arch.get(name)
    rows = memory.layer_table(s)[1:]
    t = memory.totals(s)
    weighted = weight_layers(rows)
    fc_share = sum(r.params for r in rows if r.label.startswith("fc")) / t["params"]
    first_pool = next(i for i, r in enumerate(rows) if "pool" in r.label)
    early = sum(r.activations for r in rows[:first_pool + 1]) / t["activations"]
    print(f"{name:<10}{'x'.join(map(str, s.input)):>11}{len(weighted):>15}"
          f"{weighted[0].label:>14}{t['params']:>14,}{t['macs']:>16,}{t['activations']:>13,}"
          f"{fc_share:>11.1%}{early:>12.1%}")
vgg, res = memory.totals(arch.vgg16()), memory.totals(arch.resnet50())
print(f"\nResNet-50 against VGG-16: {vgg['params'] / res['params']:.2f} times fewer parameters, "
      f"{res['macs'] / vgg['macs']:.3f} of the MACs, {res['activations'] / vgg['activations']:.2f} "
      "times the activations per image")

# %% [markdown]
# **Question (5 points).**
# Compare the six networks using the table: (a) how the first layer changed from AlexNet and ZF
# Net to VGG and ResNet, and why the early compromise could later be dropped; (b) where each
# network keeps its parameters, and what GoogLeNet and ResNet did about VGG's fully connected
# layers; (c) how depth was made trainable (bottlenecks, residual connections) and what it cost in
# MACs compared with parameters. Use numbers from the table.

# %% [markdown] answer: q_design (5 points)
# **Reference answer.** (a) AlexNet (11x11/4) and ZF Net (7x7/2, smaller stride and filter after
# visualising AlexNet's aliased first-layer filters, then a 5x5/2 conv2) shrink the image at once to
# save memory and compute; VGG uses 3x3/1 everywhere (small filters stacked, more non-linearities,
# fewer parameters per receptive field) and pays with the largest MACs in the table
# (15,470,264,320 per image, against ResNet-50's 4,089,184,256) and more activations (15,087,080
# per image) than every network in the table but ResNet-50; ResNet returns to a 7x7/2 stem plus
# a pool to cut the early activations (6.5% of its activations come before its first pool,
# against VGG's 47.9%).
# (b) In AlexNet, ZF Net and VGG most parameters sit in the FC layers (94.0%, 94.0% and 89.4%);
# GoogLeNet and ResNet replace the big FC layers by global average pooling and one classifier
# layer, so their FC share is small (15.5% and 8.0%) and their totals are 6.6M and 25.6M
# parameters against VGG's 138M. (c) GoogLeNet's 1x1 bottlenecks keep inception modules cheap;
# ResNet's identity shortcuts let gradients reach early layers so 50 (or 152) layers train, with
# bottleneck blocks keeping the 3x3 convolutions at a quarter of the depth. Depth costs MACs and
# activations rather than parameters: ResNet-50 has 5.41 times fewer parameters than VGG-16 and
# about a quarter of its MACs (0.264), yet 1.85 times its activations per image (27,951,080, the
# most in the table).


# %% [markdown]
# ## 7. Layer patterns and sizing rules (6 points)
#
# The notes sum up how ConvNets are laid out (层的排列规律, layer patterns) in one line:
#
# `INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC`
#
# where `*N` repeats a block N times and `POOL?` is an optional pooling layer, with N >= 0
# (usually N <= 3), M >= 0 and K >= 0 (usually K < 3). Their sizing rules (层的尺寸设置规律):
#
# - **Prefer a stack of small filters to one large one.** Three 3x3 convolutions (stride 1) see
#   the same 7x7 region as one 7x7 convolution, with fewer weights (27 C^2 against 49 C^2 for C
#   channels in and out), fewer MACs and three non-linearities instead of one. The price: the
#   stack keeps three activation volumes for backpropagation instead of one.
# - **Convolutions**: small filters (3x3, at most 5x5), stride 1, and the zero padding that keeps
#   the spatial size, P = (F - 1) / 2; the pooling layers alone then do the down-sampling.
# - **The input** should be divisible by 2 many times (32, 64, 96, 224, 384, 512), so that every
#   2x2, stride 2 pooling layer tiles it.
# - **Pooling**: 2x2 windows with stride 2 (most common) or 3x3 with stride 2; larger windows
#   are rare, because pooling then loses too much.
#
# The arithmetic of the first rule, from two specs counted by the library (C = 64 on 56x56, no
# biases; the receptive field is the support of the stacked filters' combined window):

# %%
C, H = 64, 56
small_vs_large = {
    "three 3x3": arch.Spec("3x3 stack", (C, H, H), (arch.Conv(C, 3, pad=1, bias=False),
                                                    arch.ReLU()) * 3),
    "one 7x7": arch.Spec("7x7", (C, H, H), (arch.Conv(C, 7, pad=3, bias=False), arch.ReLU())),
}
for label, s in small_vs_large.items():
    t = memory.totals(s)
    window = np.ones(1)
    for layer in s.layers:
        if isinstance(layer, arch.Conv):
            window = np.convolve(window, np.ones(layer.size))  # the window grows by size - 1
    nonlinear = sum(isinstance(layer, arch.Activation) for layer in s.layers)
    print(f"{label:<10}: receptive field {window.size}x{window.size}, {t['weights']:>7,} weights "
          f"= {t['weights'] // C**2} C^2, {t['macs']:>11,} MACs, non-linear layers: {nonlinear}, "
          f"{t['activations']:>7,} activations kept for the backward pass")

# %% [markdown]
# Why pools larger than 3 are rare: the share of a volume a pooling layer keeps, and how many
# input values each output summarises, on a 224x224 feature map (floor rounding where the
# windows do not tile it exactly):

# %%
for size, stride in ((2, 2), (3, 2), (4, 4), (5, 5)):
    pool = arch.Pool("max", size, stride, rounding="floor")
    _, Ho, Wo = pool.out_shape((1, 224, 224))
    kept = Ho * Wo / 224**2
    print(f"{size}x{size} pool, stride {stride}: 224x224 -> {Ho}x{Wo}, keeps {kept:.2%} "
          f"(discards {1 - kept:.2%}), {size * size} inputs per output")

# %% [markdown]
# **Exercise.** Write `layer_rules(spec)`: check a spec's top-level layers (`spec.layers`; do
# not look inside `Residual` or `Inception` blocks) against the rules, and return a dict mapping
# each name in `SIZING_RULES` to True (the spec follows the rule) or False:
#
# - `"pattern"`: the layers, skipping `BatchNorm`, `Dropout`, `LRN` and `Flatten`, follow the
#   pattern above, where any `Activation` counts as RELU, a `Pool` or a `GlobalAvgPool` as POOL;
#   any other record (a `Residual` or `Inception` block) breaks it. The network must end in FC;
#   INPUT is `spec.input`, not a layer.
# - `"small_filters"`: every `Conv` has a size of at most 5.
# - `"same_conv"`: every `Conv` has stride 1 and `2 * pad == size - 1`.
# - `"input_halvable"`: the input's height and width are both divisible by `2**MIN_HALVINGS`.
# - `"small_pools"`: every `Pool` has a size of at most 3 (`GlobalAvgPool` is not a `Pool`).
#
# A spec without any `Conv` (or `Pool`) follows the rules about them. Hint: with N >= 0, what
# sequences of CONV -> RELU blocks and POOL layers can `[[CONV -> RELU]*N -> POOL?]*M` produce?

# %%
SIZING_RULES = ("pattern", "small_filters", "same_conv", "input_halvable", "small_pools")
MIN_HALVINGS = 4  # "divisible by 2 many times": here, at least 4 times (by 16)

# %% solution: layer_rules
# rules: forbid cs231n_lib; allow cs231n_lib.architectures
import re


def layer_rules(spec):
    """
    Which of the notes' layer-pattern and sizing rules a spec's top-level layers follow.

    Returns a dict {rule name: bool} with the names of SIZING_RULES.
    """
    ### BEGIN SOLUTION
    letters = []
    for layer in spec.layers:
        if isinstance(layer, arch.Conv):
            letters.append("C")
        elif isinstance(layer, arch.Activation):
            letters.append("R")
        elif isinstance(layer, (arch.Pool, arch.GlobalAvgPool)):
            letters.append("P")
        elif isinstance(layer, arch.FC):
            letters.append("F")
        elif not isinstance(layer, (arch.BatchNorm, arch.Dropout, arch.LRN, arch.Flatten)):
            letters.append("X")  # a block the pattern has no place for
    convs = [layer for layer in spec.layers if isinstance(layer, arch.Conv)]
    pools = [layer for layer in spec.layers if isinstance(layer, arch.Pool)]
    _, H, W = spec.input
    # [[CONV -> RELU]*N -> POOL?]*M with N, M >= 0 is any sequence of CR blocks and P layers
    return {
        "pattern": re.fullmatch(r"(CR|P)*(FR)*F", "".join(letters)) is not None,
        "small_filters": all(conv.size <= 5 for conv in convs),
        "same_conv": all(conv.stride == 1 and 2 * conv.pad == conv.size - 1 for conv in convs),
        "input_halvable": H % 2**MIN_HALVINGS == 0 and W % 2**MIN_HALVINGS == 0,
        "small_pools": all(pool.size <= 3 for pool in pools),
    }
    ### END SOLUTION


# %% tests: test_layer_rules (4 points)
"""layer_rules on four small specs worked out by hand (hidden: the library's networks)."""
rule_cases = {
    # conv-relu-conv-relu-pool, conv-relu-pool, fc-relu, fc on 32x32: every rule holds
    "vgg_like": (arch.Spec("vgg_like", (3, 32, 32), (
        arch.Conv(8, 3, pad=1), arch.ReLU(), arch.Conv(8, 3, pad=1), arch.ReLU(),
        arch.Pool("max", 2), arch.Conv(16, 3, pad=1), arch.ReLU(), arch.Pool("max", 2),
        arch.Flatten(), arch.FC(64), arch.ReLU(), arch.Dropout(), arch.FC(10))),
        (True, True, True, True, True)),
    # ends in a ReLU; a 7x7 filter; a 3x3 conv without padding; 28 = 4 x 7; a 4x4 pool
    "breaks_all": (arch.Spec("breaks_all", (1, 28, 28), (
        arch.Conv(8, 7, pad=3), arch.ReLU(), arch.Pool("max", 4), arch.Conv(8, 3),
        arch.BatchNorm(), arch.ReLU(), arch.Flatten(), arch.FC(10), arch.ReLU())),
        (False, False, False, False, False)),
    # POOL first is allowed (N = 0); a sigmoid counts as RELU, global average pooling as POOL
    "pool_first": (arch.Spec("pool_first", (1, 64, 64), (
        arch.Pool("avg", 2), arch.Conv(4, 5, pad=2), arch.Activation("sigmoid", inplace=False),
        arch.GlobalAvgPool(), arch.FC(10))),
        (True, True, True, True, True)),
    # a stride-2 conv instead of pooling: small filters, but not "same"
    "strided": (arch.Spec("strided", (3, 32, 48), (
        arch.Conv(8, 3, pad=1), arch.ReLU(), arch.Conv(8, 3, stride=2, pad=1), arch.ReLU(),
        arch.Flatten(), arch.FC(10))),
        (True, True, False, True, True)),
}
for name, (spec, expected) in rule_cases.items():
    got = layer_rules(spec)
    record(f"rules_{name}", [bool(got[rule]) for rule in SIZING_RULES], kind="equal")
    assert_value(f"{name}: rule names", sorted(got), sorted(SIZING_RULES))
    assert_value(f"{name}: (pattern, small_filters, same_conv, input_halvable, small_pools)",
                 tuple(bool(got[rule]) for rule in SIZING_RULES), expected)
### BEGIN HIDDEN TESTS
for name in ("lenet", "alexnet", "zfnet", "vgg16", "googlenet", "resnet18", "all_conv_net"):
    got = layer_rules(arch.get(name))
    record(f"rules_hidden_{name}", [bool(got[rule]) for rule in SIZING_RULES], kind="equal")
### END HIDDEN TESTS

# %% [markdown]
# The classic networks against the rules (top-level layers only: the checker does not look
# inside residual and inception blocks), and how many times each input size halves exactly
# (each exact halving is one 2x2, stride 2 pooling layer that tiles the input):

# %%
print(f"{'network':<15}{'input':>12}  " + "".join(f"{rule:>16}" for rule in SIZING_RULES))
for name in ("lenet", "alexnet", "zfnet", "vgg16", "googlenet", "resnet18", "resnet50",
             "small_pool_net", "all_conv_net"):
    s = arch.get(name)
    verdict = layer_rules(s)
    print(f"{name:<15}{'x'.join(map(str, s.input)):>12}  "
          + "".join(f"{'follows' if verdict[rule] else 'BREAKS':>16}" for rule in SIZING_RULES))
print()
for size in (28, 32, 64, 96, 224, 225, 227, 384, 512):
    pyramid = [size]
    while pyramid[-1] % 2 == 0:
        pyramid.append(pyramid[-1] // 2)
    print(f"{size:>4}: halves exactly {len(pyramid) - 1} times ({' -> '.join(map(str, pyramid))})")

# %% [markdown]
# **Question (2 points).**
# Using the table: which rules do AlexNet, ZF Net, GoogLeNet and ResNet break at their first
# layer, and why did their designers accept that? Why do GoogLeNet and ResNet break the layer
# pattern, and does that make the pattern wrong?

# %% [markdown] answer: q_patterns (2 points)
# **Reference answer.** All four break the small-filter and same-padding rules with their first
# convolution (AlexNet 11x11 stride 4, ZF Net 7x7 stride 2, GoogLeNet's and ResNet's 7x7 stride
# 2 stems): this is the notes' compromise for memory, since a stride-1, same-padded first layer
# on a 224x224 image makes the largest activation volumes of the network (notebook 4). AlexNet's
# 227 and ZF Net's 225 inputs do not halve at all, because their strided first layers need
# (W - F) / S to be an integer rather than W to be even. GoogLeNet and ResNet replace the plain
# CONV -> RELU blocks by inception modules and residual blocks and end with global average
# pooling and one FC layer. That does not make the pattern wrong: it describes the plain
# networks up to VGG, and the notes themselves add that Inception and ResNet challenge the
# "linear list of layers". Inside their blocks these networks keep small filters (1x1 and 3x3).

# %% [markdown]
# ## 8. Training LeNet: sigmoid or ReLU
#
# LeNet as d2l trains it (the `lenet` spec of part 1: sigmoids and average pooling) against the
# same network with ReLUs, on the embedded Fashion-MNIST subset (28x28, the input LeNet was
# sized for), with the same initialisation seed, optimizer, learning rate, minibatches and
# number of epochs. The library's `ConvNet` runs both (He initialisation) and the `Solver` of
# notebook 6 trains them; `prepare_data` subtracts the mean image and scales the pixels to about
# [-1, 1]. Under the grader (`CS231N_GRADING=1`) the budget is small; run it on your machine for
# the full one. Not graded: read the curves.

# %%
import time
from dataclasses import replace

from cs231n_lib.budget import budget
from cs231n_lib.solver import Solver
from cs231n_lib.train_demo import prepare_data

LENET_TRAIN = budget(full=5000, graded=1000)  # training images
LENET_EPOCHS = budget(full=5, graded=2)
LENET_BATCH = 64
lenet_data = prepare_data("fashion_small", num_training=LENET_TRAIN)


def lenet_with(fn):
    """The library's LeNet spec with every activation replaced by ``fn``."""
    base = arch.get("lenet")
    return replace(base, name=f"lenet_{fn}", layers=tuple(
        replace(layer, fn=fn) if isinstance(layer, arch.Activation) else layer
        for layer in base.layers))


def images_per_second(model, X, y, repeats=3):
    """Training throughput: one forward and backward pass on (X, y), best of ``repeats``."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        model.loss(X, y)
        best = min(best, time.perf_counter() - start)
    return len(X) / best


lenet_runs = {}
for fn in ("sigmoid", "relu"):
    lenet_model = ConvNet(lenet_with(fn), seed=0)
    batch = (lenet_data["X_train"][:LENET_BATCH], lenet_data["y_train"][:LENET_BATCH])
    _, first_grads = lenet_model.loss(*batch)
    speed = images_per_second(lenet_model, *batch)
    lenet_runs[fn] = Solver(lenet_model, lenet_data, update_rule="sgd_momentum",
                            optim_config={"learning_rate": 0.05}, num_epochs=LENET_EPOCHS,
                            batch_size=LENET_BATCH, num_train_samples=500,
                            num_val_samples=budget(full=1000, graded=500), seed=0, verbose=False)
    lenet_runs[fn].train()
    print(f"{fn:<8}: first-layer gradient norm at the start "
          f"{np.linalg.norm(first_grads['W1']):.2e}; best validation accuracy "
          f"{lenet_runs[fn].best_val_acc:.1%} after {LENET_EPOCHS} epochs on {LENET_TRAIN:,} "
          f"images ({lenet_runs[fn].train_seconds:.1f} s with the accuracy checks; "
          f"{speed:,.0f} images/s forward and backward)")

# %%
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 3.6))
for fn, run in lenet_runs.items():
    ax_loss.plot(run.loss_history, label=fn, alpha=0.8)
    ax_acc.plot(run.val_acc_history, marker="o", label=f"{fn} (validation)")
ax_loss.set_xlabel("iteration")
ax_loss.set_ylabel("training loss")
ax_acc.set_xlabel("accuracy check (after the first step, then every epoch)")
ax_acc.set_ylabel("accuracy")
ax_loss.legend()
ax_acc.legend()
plt.show()

# %% [markdown]
# The sigmoid network starts with a much smaller gradient at its first layer (each sigmoid
# multiplies the gradient by its derivative, at most 1/4) and its loss stays near ln(10) for
# a while before it learns; the ReLU network, with the same budget, learns from the first
# epoch. That is why d2l's sigmoid LeNet needs a large learning rate and many epochs, and why
# every network after AlexNet uses ReLUs (and max pooling, which d2l's modernised LeNet also
# adopts).
