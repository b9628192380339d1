"""Memory accounting (theory) and tracemalloc measurements (practice)."""

import json
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from cs231n_lib import architectures as arch
from cs231n_lib import memory, memory_cli, memory_plot
from cs231n_lib import memory_measure as mm

matplotlib.use("Agg")
MIB = 2 ** 20

# The notes' VGG-16 table: (label, shape, activations, weights without biases).
VGG_NOTES = [
    ("input", (3, 224, 224), 150_528, 0),
    ("conv3-64", (64, 224, 224), 3_211_264, 1_728),
    ("conv3-64", (64, 224, 224), 3_211_264, 36_864),
    ("maxpool2/2", (64, 112, 112), 802_816, 0),
    ("conv3-128", (128, 112, 112), 1_605_632, 73_728),
    ("conv3-128", (128, 112, 112), 1_605_632, 147_456),
    ("maxpool2/2", (128, 56, 56), 401_408, 0),
    ("conv3-256", (256, 56, 56), 802_816, 294_912),
    ("conv3-256", (256, 56, 56), 802_816, 589_824),
    ("conv3-256", (256, 56, 56), 802_816, 589_824),
    ("maxpool2/2", (256, 28, 28), 200_704, 0),
    ("conv3-512", (512, 28, 28), 401_408, 1_179_648),
    ("conv3-512", (512, 28, 28), 401_408, 2_359_296),
    ("conv3-512", (512, 28, 28), 401_408, 2_359_296),
    ("maxpool2/2", (512, 14, 14), 100_352, 0),
    ("conv3-512", (512, 14, 14), 100_352, 2_359_296),
    ("conv3-512", (512, 14, 14), 100_352, 2_359_296),
    ("conv3-512", (512, 14, 14), 100_352, 2_359_296),
    ("maxpool2/2", (512, 7, 7), 25_088, 0),
    ("fc-4096", (4096,), 4_096, 102_760_448),
    ("fc-4096", (4096,), 4_096, 16_777_216),
    ("fc-1000", (1000,), 1_000, 4_096_000),
]


def test_vgg16_table_row_by_row_and_the_erratum():
    """The notes' table, row by row; its rows sum to 15,237,608 activations, not "24M"."""
    table = memory.notes_table(arch.vgg16())
    assert table == VGG_NOTES
    total = sum(row[2] for row in table)
    assert total == 15_237_608
    assert total < 16e6  # the notes print "24M * 4 bytes ~= 93MB"
    assert sum(row[3] for row in table) == 138_344_128
    nbytes, mb, mib = memory.activation_bytes(total, "float32")
    assert nbytes == 60_950_432 and round(mb, 1) == 61.0 and round(mib, 1) == 58.1


def test_three_volume_example_and_the_translations_missing_three():
    """Three [224x224x64] volumes: 9,633,792 activations, 77,070,336 B = 73.5 MiB with
    gradients; a single volume is 3,211,264 = 12.25 MiB (24.5 MiB with gradients)."""
    ex = memory.memory_example()
    assert ex["volumes"] == 3
    assert ex["activations"] == 9_633_792
    assert ex["train_bytes"] == 77_070_336 and ex["train_bytes"] / MIB == 73.5
    assert ex["reading_72MB_decimal"] == 72e6  # MB = 10^6 bytes
    assert ex["reading_72MB_binary"] == 72 * MIB  # MB = MiB, as the notes' table divides
    assert ex["single_volume"] == 3_211_264
    assert ex["single_bytes"] / MIB == 12.25 and ex["single_train_bytes"] / MIB == 24.5


def test_first_layer_compromises():
    """First conv layer activations: VGG 3x3/1, ZF Net 7x7/2, AlexNet 11x11/4."""
    assert memory.first_layer_activations() == {
        "VGG 3x3/1": 3_211_264, "ZF Net 7x7/2": 1_161_600, "AlexNet 11x11/4": 290_400}


TINY = arch.Spec("tiny", (1, 5, 5), (arch.Conv(2, 3), arch.ReLU(), arch.Flatten(), arch.FC(3)))


@pytest.mark.parametrize("optimizer, state", [
    ("sgd", 0), ("momentum", 1), ("adagrad", 1), ("rmsprop", 1), ("adam", 2)])
def test_training_memory_formula(optimizer, state):
    """train = 2 x activations + params x (2 + state) + data, counted by hand for a tiny net."""
    # conv: 2x3x3 = 18 activations, 2*9 + 2 = 20 params; ReLU in place, Flatten a view;
    # fc: 3 activations, 18*3 + 3 = 57 params; input 25
    batch, item = 4, 8
    b = memory.memory_budget(TINY, batch, "float64", optimizer)
    assert b["train_bytes"] == item * (2 * 21 * batch + 77 * (2 + state) + 25 * batch)
    assert b["optimizer_state_bytes"] == item * 77 * state
    # inference peak at the FC layer: the input (the caller holds it), the conv output (ReLU'd
    # in place, flattened as a view) and the FC output
    assert b["inference_bytes"] == item * (77 + batch * (25 + 18 + 3))


def test_inference_live_set_counts_open_skip_connections():
    """A residual block holds its input while the body runs; the peak is at the add."""
    block = arch.Residual((arch.Conv(4, 3, pad=1), arch.ReLU(), arch.Conv(4, 3, pad=1)))
    spec = arch.Spec("res", (4, 6, 6), (arch.Conv(4, 1), block))
    v = 4 * 6 * 6
    # input (held by the caller) + conv out (held by the block) + body's last conv + sum
    assert memory.inference_live(spec) == 4 * v
    assert memory.inference_live(spec, include_input=False) == 3 * v
    # a projection shortcut adds its output at the moment of the add
    proj = arch.Residual(block.body, (arch.Conv(4, 1),))
    assert memory.inference_live(arch.Spec("p", (4, 6, 6), (arch.Conv(4, 1), proj))) == 5 * v


def test_vgg16_inference_keeps_the_input_and_two_big_volumes():
    """VGG-16 inference peak: input + conv1_1 out + conv1_2 out."""
    assert memory.inference_live(arch.vgg16()) == 150_528 + 2 * 3_211_264


@pytest.mark.parametrize("mode", ["train", "test"])
def test_max_batch_is_the_largest_that_fits(mode):
    """max_batch(budget) fits the budget and one more example would not."""
    spec, budget = arch.vgg16(), 4 * 2 ** 30
    n = memory.max_batch(spec, budget, "float32", "adam", mode)
    key = "train_bytes" if mode == "train" else "inference_bytes"
    assert n >= 1
    assert memory.memory_budget(spec, n, "float32", "adam")[key] <= budget
    assert memory.memory_budget(spec, n + 1, "float32", "adam")[key] > budget
    assert memory.max_batch(spec, 10 ** 6) == 0  # not even the parameters fit


def test_bad_arguments_raise_valueerror():
    """Unknown optimizer, non-numeric dtype, bad batch and bad mode are ValueErrors."""
    with pytest.raises(ValueError, match="optimizer"):
        memory.memory_budget(TINY, 1, "float32", "lbfgs")
    with pytest.raises(ValueError, match="dtype"):
        memory.memory_budget(TINY, 1, "U8")
    with pytest.raises(ValueError, match="batch"):
        memory.memory_budget(TINY, 0)
    with pytest.raises(ValueError, match="mode"):
        memory.max_batch(TINY, 10 ** 9, mode="eval")


def test_table_has_a_row_per_layer_and_blocks_expanded():
    """ResNet-18's table: input row, nested rows for blocks, and an add row per block."""
    rows = memory.layer_table(arch.resnet18())
    assert rows[0].name == "input"
    assert sum(r.label == "add" for r in rows) == 8
    assert any(r.depth == 1 and r.name.endswith(".short.0") for r in rows)
    assert sum(r.params for r in rows) == 11_689_512


def test_cli_prints_the_table_and_json():
    """The command line prints the per-layer table, and --json the keys other tools read."""
    # the installed console script (pyproject's [project.scripts]) beside this Python
    script = Path(sys.executable).parent / "cs231n-memory"
    out = subprocess.run([str(script), "vgg16"], capture_output=True, text=True,
                         check=True).stdout
    assert "138,357,544" in out and "15,470,264,320" in out and "MiB" in out
    assert "15,237,608" in out
    out = subprocess.run([sys.executable, "-m", "cs231n_lib.memory_cli", "resnet50", "--batch", "8",
                          "--optimizer", "adam", "--json"],
                         capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    budget = memory.memory_budget(arch.resnet50(), 8, "float32", "adam")
    assert data["params"] == 25_557_032
    assert data["train_bytes"] == budget["train_bytes"]
    assert data["inference_bytes"] == budget["inference_bytes"]
    assert data["activations"] == memory.totals(arch.resnet50())["activations"]
    assert data["macs"] == memory.totals(arch.resnet50())["macs"]


def test_cli_input_override_and_errors(capsys):
    """--input replaces the spec's input; a bad shape exits with status 2 and a message."""
    assert memory_cli.main(["vgg16", "--input", "3x32x32", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["input_shape"] == [3, 32, 32]
    assert data["params"] == 138_357_544 - (25_088 - 512) * 4096
    assert memory_cli.main(["alexnet", "--input", "3x224x224"]) == 2
    assert "54.25" in capsys.readouterr().err
    assert memory_cli.main(["vgg16", "--input", "3x224"]) == 2
    capsys.readouterr()
    assert memory_cli.main(["vgg16", "--budget", "8192", "--optimizer", "adam", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["max_batch_train"] == memory.max_batch(arch.vgg16(), 8192 * MIB, "float32",
                                                       "adam")
    assert data["max_batch_test"] > data["max_batch_train"] > 0


def test_accounting_module_loads_neither_the_command_line_nor_matplotlib():
    """memory.py is the accounting only: the CLI (memory_cli) and the plot (memory_plot) are
    separate modules, so importing it pulls in neither argparse nor matplotlib."""
    code = ("import sys, cs231n_lib.memory; "
            "print(sorted(m for m in ('argparse', 'matplotlib', 'cs231n_lib.memory_cli', "
            "'cs231n_lib.memory_plot') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    assert not hasattr(memory, "plot_memory") and not hasattr(memory, "main")


def test_plot_memory_returns_a_figure():
    """One bar per layer with activations or parameters, in two series."""
    fig = memory_plot.plot_memory(arch.vgg16(), batch=2)
    ax = fig.axes[0]
    n = sum(1 for r in memory.layer_table(arch.vgg16())[1:] if r.activations or r.params)
    assert len(ax.patches) == 2 * n
    matplotlib.pyplot.close(fig)


def test_simple_calculator_exercise_agrees_with_the_spec_accounting():
    """The notebook's simple calculator gives the same rows as layer_table on VGG-16."""
    simple = [("conv", f, 3, 1, 1) for f in (64, 64)] + [("pool", 2, 2)]
    simple += [("conv", f, 3, 1, 1) for f in (128, 128)] + [("pool", 2, 2)]
    for f in (256, 512, 512):
        simple += [("conv", f, 3, 1, 1)] * 3 + [("pool", 2, 2)]
    simple += [("fc", 4096), ("fc", 4096), ("fc", 1000)]
    got = memory.simple_layer_memory((3, 224, 224), simple)
    rows = [r for r in memory.layer_table(arch.vgg16())[1:]
            if r.label not in ("relu", "flatten")]
    assert [(g[1], g[2], g[3]) for g in got] == [(r.shape, r.size, r.params) for r in rows]
    with pytest.raises(ValueError, match="unknown layer kind"):
        memory.simple_layer_memory((3, 8, 8), [("lrn", 5)])
    assert memory.activation_bytes(9_633_792, with_gradients=True)[0] == 77_070_336


def test_three_volume_experiment_measured():
    """tracemalloc: training keeps the three volumes (36.75 MiB), inference one (12.25 MiB);
    the peak is well above both (the conv workspace), and the gap is reported."""
    r = mm.three_volume_experiment()
    assert r["train_retained_bytes"] / MIB == pytest.approx(36.75, rel=0.02)
    assert r["test_retained_bytes"] / MIB == pytest.approx(12.25, rel=0.02)
    assert r["test_live_bytes"] == pytest.approx(r["theory_inference_live_bytes"], rel=0.02)
    assert r["train_peak_gap"] > 0 and r["test_peak_gap"] > 0
    # The gap is the convolution's workspace: the same whether training or not, and smaller than
    # materialising the im2col matrix of the largest layer (64*3*3 rows x 224*224 columns, float32).
    assert r["train_peak_gap"] == pytest.approx(r["test_peak_gap"], rel=0.01)
    assert r["train_peak_gap"] < 64 * 3 * 3 * 224 * 224 * 4
    assert "train_peak_gap" in mm.report(r)


SMALL = arch.Spec("small", (3, 12, 12), (
    arch.Conv(8, 3, pad=1), arch.BatchNorm(), arch.ReLU(),
    arch.basic_block(8, 8), arch.basic_block(8, 16),
    arch.inception_module(4, 4, 8, 2, 4, 4, size5=3),
    arch.Pool("max", 2), arch.Conv(16, 3, pad=1), arch.ReLU(inplace=False),
    arch.GlobalAvgPool(), arch.Dropout(0.5), arch.FC(10)))


@pytest.mark.parametrize("cache_workspace", [False, True])
def test_small_spec_measured_against_theory(cache_workspace):
    """Training retains at least the theory (caches add to it); inference's live memory is
    within 5% of the theory; peaks are reported above both."""
    r = mm.compare(SMALL, batch=32, cache_workspace=cache_workspace)
    assert r["train_retained_bytes"] >= r["theory_train_bytes"]
    assert r["test_live_bytes"] == pytest.approx(r["theory_inference_live_bytes"], rel=0.05)
    assert r["test_retained_bytes"] < 0.05 * r["theory_inference_live_bytes"]
    assert r["train_peak_bytes"] >= r["train_retained_bytes"]
    assert r["test_peak_gap"] > 0


def test_workspace_cache_is_what_makes_training_retain_more():
    """Keeping the fast layer's workspace retains more than keeping only the activations."""
    lean = mm.compare(SMALL, batch=16, cache_workspace=False)
    fat = mm.compare(SMALL, batch=16, cache_workspace=True)
    assert fat["train_retained_bytes"] > lean["train_retained_bytes"]
    assert fat["test_live_bytes"] == pytest.approx(lean["test_live_bytes"], rel=0.01)


def test_measure_forward_rejects_a_bad_mode():
    """Only 'train' and 'test' can be measured."""
    from cs231n_lib.classifiers.convnet import ConvNet
    model = ConvNet(TINY)
    with pytest.raises(ValueError, match="mode"):
        mm.measure_forward(model, np.zeros((1, 1, 5, 5), np.float32), "eval")
