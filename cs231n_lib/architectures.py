"""Architecture specs: a network as an input shape plus a tuple of small, frozen layer records.

A spec only *describes* a network. ``cs231n_lib.memory`` counts its activations, parameters and
multiply-accumulates; ``cs231n_lib.classifiers.convnet.ConvNet`` builds a runnable numpy model
from it. Each layer record knows its output shape and the shapes of its parameters, and every
conv/pool output size goes through ``cs231n_lib.shapes``.

Shapes are per example: ``(C, H, W)`` for volumes and ``(D,)`` after ``Flatten``. ``pad`` is zero
padding per side (CS231n's P). ``Dropout.p`` is the KEEP probability (CS231n's convention).

The classic specs reproduce the published parameter counts exactly (see tests). Where the
published shapes do not follow from the strict output-size rule ``(W - F + 2P) / S + 1``, the
spec says which assumption it makes (a 227 or 225 input, or the floor/ceil rounding of the
framework the numbers come from, via ``shapes.output_size_rounded``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import prod

from cs231n_lib.shapes import ROUNDINGS, check_int, output_size_rounded


def _volume(shape, layer) -> tuple[int, int, int]:
    """Return ``shape`` as (C, H, W) or raise ValueError naming the layer."""
    if len(shape) != 3:
        raise ValueError(f"{layer!r} needs a (C, H, W) input, got shape {tuple(shape)}")
    return shape


def _check_rounding(rounding: str) -> None:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r} must be one of {ROUNDINGS}")


@dataclass(frozen=True)
class Conv:
    """Convolution: ``filters`` filters of ``size`` x ``size``.

    ``groups`` splits the channels into independent convolutions (AlexNet's two GPUs).
    ``table`` (LeNet-5's C3 only) lists, for each output map, the input maps it is connected to.
    ``rounding`` other than "exact" is only for reproducing another framework's shapes.
    """

    filters: int
    size: int
    stride: int = 1
    pad: int = 0
    groups: int = 1
    dilation: int = 1
    bias: bool = True
    rounding: str = "exact"
    table: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self):
        check_int(self.filters, "filters", 1)
        check_int(self.size, "size", 1)
        check_int(self.groups, "groups", 1)
        _check_rounding(self.rounding)
        if self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide filters={self.filters}")
        if self.table is not None and len(self.table) != self.filters:
            raise ValueError(
                f"table has {len(self.table)} rows but filters={self.filters}: one row per map")

    def out_shape(self, shape):
        C, H, W = _volume(shape, self)
        if C % self.groups:
            raise ValueError(f"groups={self.groups} must divide the input channels C={C}")
        if self.table is not None and max(max(row) for row in self.table) >= C:
            raise ValueError(f"table refers to an input map >= C={C}")
        args = (self.size, self.stride, self.pad, self.dilation)
        return (self.filters,
                output_size_rounded(H, *args, axis="H", rounding=self.rounding),
                output_size_rounded(W, *args, axis="W", rounding=self.rounding))

    def connections(self, shape) -> int:
        """Input channels summed over the output maps (F * C / groups unless a table is set)."""
        if self.table is not None:
            return sum(len(row) for row in self.table)
        return self.filters * (shape[0] // self.groups)

    def param_shapes(self, shape) -> dict:
        if self.table is not None:
            raise ValueError("a connection table has no dense weight tensor (accounting only)")
        shapes = {"W": (self.filters, shape[0] // self.groups, self.size, self.size)}
        if self.bias:
            shapes["b"] = (self.filters,)
        return shapes

    def param_count(self, shape) -> tuple[int, int]:
        """(weights, biases)."""
        return self.connections(shape) * self.size ** 2, self.filters if self.bias else 0

    def macs(self, shape) -> int:
        _, Ho, Wo = self.out_shape(shape)
        return Ho * Wo * self.connections(shape) * self.size ** 2

    def label(self) -> str:
        s = f"conv{self.size}-{self.filters}"
        if self.stride != 1:
            s += f"/{self.stride}"
        return s + (f" g{self.groups}" if self.groups > 1 else "")


@dataclass(frozen=True)
class Pool:
    """Max or average pooling over ``size`` x ``size`` windows (``stride`` defaults to ``size``).

    ``pad`` pads with -inf (max) or zeros (avg). ``trainable`` is LeNet-5's subsampling layer:
    average times a learned coefficient plus a learned bias, per channel.
    """

    kind: str
    size: int
    stride: int | None = None
    pad: int = 0
    rounding: str = "exact"
    trainable: bool = False

    def __post_init__(self):
        if self.kind not in ("max", "avg"):
            raise ValueError(f"pool kind={self.kind!r} must be 'max' or 'avg'")
        check_int(self.size, "size", 1)
        _check_rounding(self.rounding)

    @property
    def step(self) -> int:
        return self.size if self.stride is None else self.stride

    def out_shape(self, shape):
        C, H, W = _volume(shape, self)
        args = (self.size, self.step, self.pad, 1)
        return (C, output_size_rounded(H, *args, axis="H", rounding=self.rounding),
                output_size_rounded(W, *args, axis="W", rounding=self.rounding))

    def param_shapes(self, shape) -> dict:
        return {"coef": (shape[0],), "b": (shape[0],)} if self.trainable else {}

    def macs(self, shape) -> int:
        # One multiply-add per output for the trainable subsampling; comparisons/sums are not MACs.
        return prod(self.out_shape(shape)) if self.trainable else 0

    def label(self) -> str:
        return f"{self.kind}pool{self.size}/{self.step}"


@dataclass(frozen=True)
class Activation:
    """Elementwise nonlinearity ("relu", "sigmoid" or "tanh").

    ``inplace=True`` overwrites its input (PyTorch's ``inplace=True``, and the notes' tables,
    which give ReLU no row): it adds no new activation memory.
    """

    fn: str = "relu"
    inplace: bool = True

    def __post_init__(self):
        if self.fn not in ("relu", "sigmoid", "tanh"):
            raise ValueError(f"activation fn={self.fn!r} must be 'relu', 'sigmoid' or 'tanh'")

    def label(self) -> str:
        return self.fn


def ReLU(inplace: bool = True) -> Activation:
    """A ReLU activation record."""
    return Activation("relu", inplace)


@dataclass(frozen=True)
class BatchNorm:
    """Batch normalisation with a learned scale and shift per channel (or per feature)."""

    eps: float = 1e-5

    def param_shapes(self, shape) -> dict:
        return {"gamma": (shape[0],), "beta": (shape[0],)}

    def label(self) -> str:
        return "batchnorm"


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout; ``p`` is the probability of KEEPING a unit."""

    p: float = 0.5

    def __post_init__(self):
        if not 0 < self.p <= 1:
            raise ValueError(f"dropout keep probability p={self.p} must be in (0, 1]")

    def label(self) -> str:
        return f"dropout{self.p:g}"


@dataclass(frozen=True)
class LRN:
    """Local response normalisation across ``size`` neighbouring channels (AlexNet, ZF Net)."""

    size: int = 5

    def out_shape(self, shape):
        return _volume(shape, self)

    def label(self) -> str:
        return "lrn"


@dataclass(frozen=True)
class Flatten:
    """(C, H, W) -> (C*H*W,). A view: no new memory."""

    def out_shape(self, shape):
        return (prod(shape),)

    def label(self) -> str:
        return "flatten"


@dataclass(frozen=True)
class GlobalAvgPool:
    """Average over all spatial positions: (C, H, W) -> (C,)."""

    def out_shape(self, shape):
        return (_volume(shape, self)[0],)

    def label(self) -> str:
        return "global-avgpool"


@dataclass(frozen=True)
class FC:
    """Fully connected (affine) layer with ``units`` outputs; needs a flat input."""

    units: int
    bias: bool = True

    def out_shape(self, shape):
        if len(shape) != 1:
            raise ValueError(f"FC needs a flat (D,) input (add Flatten()), got {tuple(shape)}")
        return (self.units,)

    def param_shapes(self, shape) -> dict:
        shapes = {"W": (shape[0], self.units)}
        if self.bias:
            shapes["b"] = (self.units,)
        return shapes

    def macs(self, shape) -> int:
        return shape[0] * self.units

    def label(self) -> str:
        return f"fc-{self.units}"


@dataclass(frozen=True)
class Residual:
    """``relu(body(x) + shortcut(x))``; an empty shortcut is the identity."""

    body: tuple
    shortcut: tuple = ()
    relu: bool = True

    def label(self) -> str:
        return "residual" + ("(proj)" if self.shortcut else "")


@dataclass(frozen=True)
class Inception:
    """Parallel branches on the same input, concatenated along channels."""

    branches: tuple

    def label(self) -> str:
        return "inception"


COMPOSITES = (Residual, Inception)


def out_shape(layer, shape):
    """Output shape of one layer (composites included) for a per-example input ``shape``."""
    if isinstance(layer, Residual):
        main = seq_shape(layer.body, shape)
        short = seq_shape(layer.shortcut, shape)
        if main != short:
            raise ValueError(f"residual body gives {main} but the shortcut gives {short}")
        return main
    if isinstance(layer, Inception):
        outs = [seq_shape(b, shape) for b in layer.branches]
        if len({o[1:] for o in outs}) != 1 or any(len(o) != 3 for o in outs):
            raise ValueError(f"inception branches must agree on (H, W), got {outs}")
        return (sum(o[0] for o in outs),) + outs[0][1:]
    if hasattr(layer, "out_shape"):
        return tuple(layer.out_shape(shape))
    return tuple(shape)  # elementwise layers keep the shape


def seq_shape(layers, shape):
    """Output shape of a sequence of layers."""
    for layer in layers:
        shape = out_shape(layer, shape)
    return tuple(shape)


def param_shapes(layer, shape) -> dict:
    """Parameter name -> shape for a leaf layer (empty for parameter-free layers)."""
    return layer.param_shapes(shape) if hasattr(layer, "param_shapes") else {}


def param_count(layer, shape) -> tuple[int, int]:
    """(weights, biases) of a leaf layer; BatchNorm's gamma counts as weight, beta as bias."""
    if isinstance(layer, Conv):
        return layer.param_count(shape)
    shapes = param_shapes(layer, shape)
    biases = sum(prod(s) for k, s in shapes.items() if k in ("b", "beta"))
    return sum(prod(s) for s in shapes.values()) - biases, biases


def layer_macs(layer, shape) -> int:
    """Multiply-accumulates of a leaf layer for one example."""
    return layer.macs(shape) if hasattr(layer, "macs") else 0


@dataclass(frozen=True)
class Spec:
    """A network: ``input`` shape (C, H, W), a tuple of ``layers`` and a ``note`` on assumptions."""

    name: str
    input: tuple
    layers: tuple
    note: str = ""

    def with_input(self, shape) -> Spec:
        """The same layers on a different input shape."""
        return replace(self, input=tuple(int(s) for s in shape))

    def out_shape(self):
        return seq_shape(self.layers, self.input)


# ----------------------------------------------------------------------------------------------
# Building blocks


def conv_bn_relu(filters, size, stride=1, pad=0, eps=1e-5, relu=True, rounding="exact"):
    """torchvision's conv (no bias) -> batchnorm -> in-place ReLU."""
    block = (Conv(filters, size, stride, pad, bias=False, rounding=rounding), BatchNorm(eps))
    return block + ((ReLU(),) if relu else ())


def _floor_if_strided(stride):
    # torchvision floors (W - F + 2P) / S + 1. For a stride-2 layer on an even input the exact
    # rule gives x.5; the floor only drops the unused last column of zero padding, i.e. it is
    # padding (P, P - 1). We keep P and state the rounding instead of faking the input size.
    return "floor" if stride > 1 else "exact"


def basic_block(in_channels, planes, stride=1):
    """ResNet basic block: two 3x3 convs; a 1x1 projection when the shape changes."""
    rounding = _floor_if_strided(stride)
    body = (conv_bn_relu(planes, 3, stride, 1, rounding=rounding)
            + conv_bn_relu(planes, 3, 1, 1, relu=False))
    shortcut = ()
    if stride != 1 or in_channels != planes:
        shortcut = conv_bn_relu(planes, 1, stride, 0, relu=False, rounding=rounding)
    return Residual(body, shortcut)


def bottleneck_block(in_channels, planes, stride=1, expansion=4):
    """ResNet bottleneck block (v1.5, stride on the 3x3): 1x1 reduce, 3x3, 1x1 expand."""
    rounding = _floor_if_strided(stride)
    out = planes * expansion
    body = (conv_bn_relu(planes, 1) + conv_bn_relu(planes, 3, stride, 1, rounding=rounding)
            + conv_bn_relu(out, 1, relu=False))
    shortcut = ()
    if stride != 1 or in_channels != out:
        shortcut = conv_bn_relu(out, 1, stride, 0, relu=False, rounding=rounding)
    return Residual(body, shortcut)


def inception_module(c1, r3, c3, r5, c5, pool_proj, size5=5, eps=1e-3, bn=True):
    """Four branches: 1x1 | 1x1 -> 3x3 | 1x1 -> size5 x size5 | 3x3 maxpool -> 1x1."""
    if bn:
        def unit(f, k, p=0):
            return conv_bn_relu(f, k, 1, p, eps=eps)
    else:
        def unit(f, k, p=0):
            return (Conv(f, k, 1, p), ReLU())
    return Inception((
        unit(c1, 1),
        unit(r3, 1) + unit(c3, 3, 1),
        unit(r5, 1) + unit(c5, size5, size5 // 2),
        # torchvision: MaxPool2d(3, 1, padding=1, ceil_mode=True); at stride 1 ceil == exact.
        (Pool("max", 3, 1, 1),) + unit(pool_proj, 1),
    ))


def _classifier(hidden=(4096, 4096), classes=1000, keep=0.5):
    """Flatten -> [dropout -> FC -> ReLU] * len(hidden) -> FC."""
    layers = [Flatten()]
    for units in hidden:
        if keep is not None:
            layers.append(Dropout(keep))
        layers += [FC(units), ReLU()]
    return tuple(layers) + (FC(classes),)


# ----------------------------------------------------------------------------------------------
# The classic networks


def lenet() -> Spec:
    """LeNet as in d2l: 28x28 input padded by 2, sigmoid, average pooling (61,706 parameters)."""
    sig = Activation("sigmoid", inplace=False)
    return Spec("lenet", (1, 28, 28), (
        Conv(6, 5, pad=2), sig, Pool("avg", 2),
        Conv(16, 5), sig, Pool("avg", 2),
        Flatten(), FC(120), sig, FC(84), sig, FC(10)),
        note="d2l variant: pad 2 turns 28x28 into LeNet-5's 32x32 geometry")


# LeNet-5's C3: which of the six S2 maps each of the 16 C3 maps sees (LeCun et al. 1998, Table I).
LENET5_C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def lenet5() -> Spec:
    """The original LeNet-5 (60,840 parameters)."""
    tanh = Activation("tanh", inplace=False)
    sig = Activation("sigmoid", inplace=False)
    return Spec("lenet5", (1, 32, 32), (
        Conv(6, 5), tanh,
        Pool("avg", 2, trainable=True), sig,                 # S2: 6 coefficients + 6 biases
        Conv(16, 5, table=LENET5_C3_TABLE), tanh,            # C3: 60 connections -> 1,516
        Pool("avg", 2, trainable=True), sig,                 # S4
        Conv(120, 5), tanh,                                  # C5: a 5x5 conv giving 1x1x120
        Flatten(), FC(84), tanh,
        FC(10, bias=False)),                                 # RBF output: 84 x 10 centres
        note="original LeNet-5: trainable subsampling, the C3 connection table, and Euclidean "
             "RBF output units counted as a bias-free FC layer (same weights and MACs)")


def _alexnet_features(groups=1):
    return (
        Conv(96, 11, 4), ReLU(), LRN(), Pool("max", 3, 2),
        Conv(256, 5, pad=2, groups=groups), ReLU(), LRN(), Pool("max", 3, 2),
        Conv(384, 3, pad=1), ReLU(),
        Conv(384, 3, pad=1, groups=groups), ReLU(),
        Conv(256, 3, pad=1, groups=groups), ReLU(), Pool("max", 3, 2))


_AX_NOTE = ("227x227 input: the paper's 224 gives (224 - 11) / 4 + 1 = 54.25 for conv1; 227 "
            "gives the published 55x55x96")


def alexnet() -> Spec:
    """AlexNet as one stream on 227x227 (62,378,344 parameters)."""
    return Spec("alexnet", (3, 227, 227), _alexnet_features() + _classifier(), note=_AX_NOTE)


def alexnet_grouped() -> Spec:
    """The original two-GPU AlexNet: conv2, conv4, conv5 see only their GPU's half (60,965,224)."""
    return Spec("alexnet_grouped", (3, 227, 227), _alexnet_features(groups=2) + _classifier(),
                note=_AX_NOTE + "; groups=2 on conv2, conv4 and conv5 (the two GPUs)")


def alexnet_torchvision() -> Spec:
    """torchvision's AlexNet variant (64-192-384-256-256 filters, no LRN; 61,100,840)."""
    return Spec("alexnet_torchvision", (3, 224, 224), (
        # torchvision floors (224 - 11 + 2*2) / 4 + 1 = 55.25 to 55: only the last column of
        # zero padding goes unused, so this is padding (2, 1); stated as rounding="floor".
        Conv(64, 11, 4, 2, rounding="floor"), ReLU(), Pool("max", 3, 2),
        Conv(192, 5, pad=2), ReLU(), Pool("max", 3, 2),
        Conv(384, 3, pad=1), ReLU(),
        Conv(256, 3, pad=1), ReLU(),
        Conv(256, 3, pad=1), ReLU(), Pool("max", 3, 2),
        # AdaptiveAvgPool2d((6, 6)) is the identity on the 6x6 map it receives: omitted.
        ) + _classifier(),
        note="224 input with torchvision's floor rounding on conv1")


def zfnet() -> Spec:
    """ZF Net (Zeiler & Fergus 2013): AlexNet with a 7x7/2 first layer, 110x110x96 after conv1."""
    return Spec("zfnet", (3, 225, 225), (
        Conv(96, 7, 2), ReLU(),
        # Caffe-style ceil rounding: (110 - 3) / 2 + 1 = 54.5 -> 55, the published 55x55x96.
        Pool("max", 3, 2, rounding="ceil"), LRN(),
        Conv(256, 5, 2), ReLU(),
        Pool("max", 3, 2, rounding="ceil"), LRN(),           # 26 -> 13
        Conv(384, 3, pad=1), ReLU(),
        Conv(384, 3, pad=1), ReLU(),
        Conv(256, 3, pad=1), ReLU(), Pool("max", 3, 2),      # 13 -> 6
        ) + _classifier(),
        note="225x225 input: the paper's 224 gives (224 - 7) / 2 + 1 = 109.5, not the published "
             "110 (the same puzzle as AlexNet's 224 vs 227); pools round up as in Caffe")


def vgg16() -> Spec:
    """VGG-16 (configuration D): 138,357,544 parameters, 15,470,264,320 MACs at 224x224."""
    layers = []
    for filters, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            layers += [Conv(filters, 3, pad=1), ReLU()]
        layers.append(Pool("max", 2, 2))
    return Spec("vgg16", (3, 224, 224), tuple(layers) + _classifier(keep=None),
                note="as in the notes' table: ReLU in place, no dropout rows (dropout has no "
                     "parameters); the rows sum to the 'input included' total above, not the "
                     "notes' printed 24M")


def googlenet(true_5x5: bool = False) -> Spec:
    """GoogLeNet as in torchvision, without the auxiliary classifiers (6,624,904 parameters).

    torchvision's "5x5" branch is a 3x3 convolution (a slip in its port of the network, kept
    for the pretrained weights), and so is this spec's by default, to match torchvision's
    published count. ``true_5x5=True`` gives the paper's 5x5 filters (pad 2) instead:
    7,005,832 parameters and 1,582,671,872 MACs per 224x224 image, against 6,624,904 and
    1,498,376,192. Neither is the CS231n notes' "4M" (see notebook 5, part 4).
    """
    # torchvision's BasicConv2d is conv (no bias) -> BatchNorm(eps=0.001) -> ReLU.
    size5 = 5 if true_5x5 else 3

    def module(*channels):
        return inception_module(*channels, size5=size5)

    ceil = {"rounding": "ceil"}  # torchvision's MaxPool2d(..., ceil_mode=True)
    branch = ("true 5x5 convolutions in the '5x5' branch" if true_5x5
              else "3x3 convolutions in the '5x5' branch, as torchvision has them")
    return Spec("googlenet_5x5" if true_5x5 else "googlenet", (3, 224, 224), (
        # (224 - 7 + 2*3) / 2 + 1 = 112.5, floored by torchvision (unused padding column).
        *conv_bn_relu(64, 7, 2, 3, eps=1e-3, rounding="floor"),
        Pool("max", 3, 2, **ceil),                                   # 112 -> 56
        *conv_bn_relu(64, 1, eps=1e-3), *conv_bn_relu(192, 3, 1, 1, eps=1e-3),
        Pool("max", 3, 2, **ceil),                                   # 56 -> 28
        module(64, 96, 128, 16, 32, 32), module(128, 128, 192, 32, 96, 64),
        Pool("max", 3, 2, **ceil),                                   # 28 -> 14
        module(192, 96, 208, 16, 48, 64), module(160, 112, 224, 24, 64, 64),
        module(128, 128, 256, 24, 64, 64), module(112, 144, 288, 32, 64, 64),
        module(256, 160, 320, 32, 128, 128),
        Pool("max", 2, 2, **ceil),                                   # 14 -> 7
        module(256, 160, 320, 32, 128, 128), module(384, 192, 384, 48, 128, 128),
        GlobalAvgPool(), Dropout(0.8), FC(1000)),
        note=f"torchvision layout: ceil-mode pools, floor on conv1, no auxiliary classifiers, "
             f"{branch}")


def _resnet(name, block, counts, expansion) -> Spec:
    layers = list(conv_bn_relu(64, 7, 2, 3, rounding="floor"))     # 224 -> 112 (floor)
    layers.append(Pool("max", 3, 2, pad=1, rounding="floor"))      # 112 -> 56 (floor)
    channels = 64
    for stage, (planes, n) in enumerate(zip((64, 128, 256, 512), counts, strict=True)):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            layers.append(block(channels, planes, stride))
            channels = planes * expansion
    layers += [GlobalAvgPool(), FC(1000)]
    return Spec(name, (3, 224, 224), tuple(layers),
                note="torchvision layout; stride-2 layers floor the output size (they only drop "
                     "an unused column of zero padding)")


def resnet18() -> Spec:
    """ResNet-18 (basic blocks 2-2-2-2): 11,689,512 parameters."""
    return _resnet("resnet18", basic_block, (2, 2, 2, 2), 1)


def resnet50() -> Spec:
    """ResNet-50 (bottleneck blocks 3-4-6-3): 25,557,032 parameters."""
    return _resnet("resnet50", bottleneck_block, (3, 4, 6, 3), 4)


def three_conv64() -> Spec:
    """The notes' memory example: three 3x3/64 convs, pad 1, on 224x224x3 -> three [224x224x64].

    No ReLU layers: in the notes ReLU is in place, while numpy's relu_forward allocates a new
    array, which would double the measured memory.
    """
    return Spec("three_conv64", (3, 224, 224), (Conv(64, 3, pad=1),) * 3,
                note="three [224x224x64] volumes, 9,633,792 activations")


def small_pool_net(input=(3, 32, 32), classes=10, width=16) -> Spec:
    """A small conv-relu-pool net (runnable with ConvNet)."""
    return Spec("small_pool_net", tuple(input), (
        Conv(width, 3, pad=1), ReLU(), Pool("max", 2, 2),
        Conv(2 * width, 3, pad=1), ReLU(), Pool("max", 2, 2),
        Flatten(), FC(classes)))


def all_conv_net(input=(3, 32, 32), classes=10, width=16) -> Spec:
    """The all-convolutional twin of ``small_pool_net``: each 2x2/2 max pool becomes a learned
    2x2/2 convolution (same window, same output size; Springenberg et al. 2015 use 3x3/2, which
    the strict output-size rule rejects on even inputs)."""
    return Spec("all_conv_net", tuple(input), (
        Conv(width, 3, pad=1), ReLU(), Conv(width, 2, 2), ReLU(),
        Conv(2 * width, 3, pad=1), ReLU(), Conv(2 * width, 2, 2), ReLU(),
        Flatten(), FC(classes)),
        note="downsampling by stride-2 convolutions, no pooling")


REGISTRY = {
    "lenet": lenet, "lenet5": lenet5, "alexnet": alexnet, "alexnet_grouped": alexnet_grouped,
    "alexnet_torchvision": alexnet_torchvision, "zfnet": zfnet, "vgg16": vgg16,
    "googlenet": googlenet, "resnet18": resnet18, "resnet50": resnet50,
    "three_conv64": three_conv64, "small_pool_net": small_pool_net, "all_conv_net": all_conv_net,
}


def get(name: str) -> Spec:
    """The spec registered under ``name``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]()
