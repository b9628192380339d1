"""Architecture specs: exact parameter counts, published shapes, and the assumptions they need."""

import pytest

from cs231n_lib import architectures as arch
from cs231n_lib import memory
from cs231n_lib.shapes import output_size_rounded

PARAMS = {
    "lenet": 61_706,
    "lenet5": 60_840,
    "alexnet": 62_378_344,
    "alexnet_grouped": 60_965_224,
    "alexnet_torchvision": 61_100_840,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
}


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_match_the_published_numbers(name):
    """Each classic spec has exactly the published number of parameters."""
    assert memory.totals(arch.get(name))["params"] == PARAMS[name]


def test_vgg16_weights_biases_and_macs():
    """VGG-16: 138,344,128 weights + 13,416 biases; 15,470,264,320 MACs at 224x224."""
    t = memory.totals(arch.vgg16())
    assert (t["weights"], t["biases"]) == (138_344_128, 13_416)
    assert t["macs"] == 15_470_264_320


def test_every_registered_spec_ends_in_class_scores():
    """Every classic spec maps its input to 1000 (ImageNet) or 10 scores."""
    for name in PARAMS:
        assert arch.get(name).out_shape() in ((1000,), (10,)), name


def _shapes(spec):
    """Output shapes of the top-level layers."""
    shape, out = spec.input, []
    for layer in spec.layers:
        shape = arch.out_shape(layer, shape)
        out.append(shape)
    return out


def test_alexnet_and_zfnet_first_layers_have_the_published_shapes():
    """AlexNet conv1 55x55x96 (227 input); ZF Net conv1 110x110x96, pool 55, conv2 26x26."""
    assert _shapes(arch.alexnet())[0] == (96, 55, 55)
    zf = _shapes(arch.zfnet())
    assert zf[0] == (96, 110, 110)
    assert zf[2] == (96, 55, 55)
    assert zf[4] == (256, 26, 26)
    assert zf[6] == (256, 13, 13)
    assert (256, 6, 6) in zf


@pytest.mark.parametrize("build, message", [(arch.alexnet, "54.25"), (arch.zfnet, "109.5")])
def test_the_papers_224_input_is_rejected_with_the_arithmetic(build, message):
    """On 224x224 the strict rule rejects AlexNet's conv1 (54.25) and ZF Net's (109.5)."""
    with pytest.raises(ValueError, match=message):
        build().with_input((3, 224, 224)).out_shape()


def test_googlenet_and_resnet_follow_torchvisions_shapes():
    """GoogLeNet: 3a gives 256x28x28, 5b 1024x7x7; ResNets: stages at 56, 28, 14, 7."""
    g = _shapes(arch.googlenet())
    assert (256, 28, 28) in g and (480, 28, 28) in g and (1024, 7, 7) in g
    assert g[3] == (64, 56, 56)
    for build, widths in ((arch.resnet18, (64, 128, 256, 512)),
                          (arch.resnet50, (256, 512, 1024, 2048))):
        shapes = _shapes(build())
        for width, size in zip(widths, (56, 28, 14, 7), strict=True):
            assert (width, size, size) in shapes


def test_grouped_alexnet_saves_exactly_the_cross_gpu_weights():
    """groups=2 halves the weights of conv2, conv4 and conv5 (and keeps every shape)."""
    full = memory.layer_table(arch.alexnet())
    grouped = memory.layer_table(arch.alexnet_grouped())
    assert [r.shape for r in full] == [r.shape for r in grouped]
    saved = sum(f.weights - g.weights for f, g in zip(full, grouped, strict=True))
    assert saved == 256 * 48 * 25 + 384 * 192 * 9 + 256 * 192 * 9
    assert saved == PARAMS["alexnet"] - PARAMS["alexnet_grouped"]


def test_lenet5_c3_connection_table():
    """LeNet-5's C3 sees 60 of the 96 possible (map, input) pairs: 60*25 + 16 = 1,516."""
    c3 = arch.lenet5().layers[4]
    assert c3.connections((6, 14, 14)) == 60
    assert sum(c3.param_count((6, 14, 14))) == 1_516


# GoogLeNet's nine inception modules: (output H = W, 5x5 reduction r5, 5x5 filters c5), from the
# paper's Table 1 (3a-3b at 28x28, 4a-4e at 14x14, 5a-5b at 7x7).
GOOGLENET_5X5 = [(28, 16, 32), (28, 32, 96), (14, 16, 48), (14, 24, 64), (14, 24, 64),
                 (14, 32, 64), (14, 32, 128), (7, 32, 128), (7, 48, 128)]


def test_googlenet_true_5x5_costs_exactly_the_larger_filters():
    """true_5x5=True turns torchvision's 3x3 "5x5" convolutions into 5x5 ones: 16 more weights
    per (filter, input channel) pair in each module, and nothing else changes."""
    tv, true = arch.googlenet(), arch.googlenet(true_5x5=True)
    assert _shapes(tv) == _shapes(true) and true.name == "googlenet_5x5" and "5x5" in true.note
    extra_weights = sum(r5 * c5 * (25 - 9) for _, r5, c5 in GOOGLENET_5X5)
    extra_macs = sum(hw * hw * r5 * c5 * (25 - 9) for hw, r5, c5 in GOOGLENET_5X5)
    t_tv, t_true = memory.totals(tv), memory.totals(true)
    assert t_true["params"] - t_tv["params"] == extra_weights == 380_928
    assert t_true["macs"] - t_tv["macs"] == extra_macs == 84_295_680
    assert (t_true["params"], t_true["macs"]) == (7_005_832, 1_582_671_872)
    assert t_tv["params"] == PARAMS["googlenet"]
    sizes = {layer.size for m in true.layers if isinstance(m, arch.Inception)
             for layer in m.branches[2] if isinstance(layer, arch.Conv)}
    assert sizes == {1, 5}


def test_inception_and_residual_blocks():
    """Inception concatenates channels; residual blocks project only when the shape changes."""
    module = arch.inception_module(64, 96, 128, 16, 32, 32)
    assert arch.out_shape(module, (192, 28, 28)) == (256, 28, 28)
    assert arch.basic_block(64, 64).shortcut == ()
    assert arch.basic_block(64, 128, 2).shortcut != ()
    assert arch.out_shape(arch.bottleneck_block(64, 64), (64, 56, 56)) == (256, 56, 56)


def test_bad_specs_raise_valueerror_naming_the_problem():
    """Mismatched blocks, bad groups, FC on a volume and unknown names are ValueErrors."""
    with pytest.raises(ValueError, match="shortcut"):
        arch.out_shape(arch.Residual((arch.Conv(8, 3, pad=1),)), (4, 8, 8))
    with pytest.raises(ValueError, match="inception"):
        arch.out_shape(arch.Inception(((arch.Conv(2, 1),), (arch.Conv(2, 3),))), (4, 8, 8))
    with pytest.raises(ValueError, match="groups=3"):
        arch.out_shape(arch.Conv(6, 3, groups=3), (4, 8, 8))
    with pytest.raises(ValueError, match="groups=4"):
        arch.Conv(6, 3, groups=4)
    with pytest.raises(ValueError, match="Flatten"):
        arch.out_shape(arch.FC(10), (4, 8, 8))
    with pytest.raises(ValueError, match="unknown architecture"):
        arch.get("vgg19")
    with pytest.raises(ValueError, match="pool kind"):
        arch.Pool("min", 2)
    with pytest.raises(ValueError, match="rounding"):
        arch.Conv(4, 3, rounding="round")
    with pytest.raises(ValueError, match="keep probability"):
        arch.Dropout(0.0)


def test_with_input_changes_only_the_input():
    """with_input keeps the layers; VGG-16 on 32x32 ends its conv stack at 512x1x1."""
    small = arch.vgg16().with_input((3, 32, 32))
    assert small.layers == arch.vgg16().layers
    assert (512, 1, 1) in _shapes(small)


@pytest.mark.parametrize("size, field, stride, pad, rounding, expected", [
    (224, 7, 2, 3, "floor", 112),    # ResNet conv1: 112.5 -> 112
    (112, 3, 2, 0, "ceil", 56),      # GoogLeNet maxpool1: 55.5 -> 56
    (14, 2, 2, 0, "ceil", 7),        # exact stays exact
    (5, 2, 2, 1, "ceil", 3),         # ceil would give 4, but that window starts in the padding
    (7, 3, 2, 0, "exact", 3),
])
def test_output_size_rounded(size, field, stride, pad, rounding, expected):
    """Floor and ceil (PyTorch's ceil_mode) output sizes, for describing other frameworks."""
    assert output_size_rounded(size, field, stride, pad, rounding=rounding) == expected


def test_output_size_rounded_rejects_bad_values():
    """Exact mode still rejects non-integers; an unknown rounding or a huge filter is an error."""
    with pytest.raises(ValueError, match="112.5"):
        output_size_rounded(224, 7, 2, 3)
    with pytest.raises(ValueError, match="rounding"):
        output_size_rounded(224, 7, 2, 3, rounding="nearest")
    with pytest.raises(ValueError, match="larger than the padded input"):
        output_size_rounded(4, 7, 1, 1, rounding="floor")
