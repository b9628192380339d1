"""The errata of issue 15: every number the fixes show is computed by the notebooks' own cells and
checked here against an independent computation, and the reference answers quote those numbers.

The notebook cells run on the reference solutions (the setup cell, the solution cells, and the
cells in order up to the one under test), with ``record`` silenced and their output captured.
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import subprocess
import sys
import urllib.error
import urllib.request

import matplotlib
import notebook_utils as nbu
import pytest

from cs231n_lib import architectures as arch
from cs231n_lib import memory, train_demo
from cs231n_lib.data import fetch as fetch_mod
from cs231n_lib.data.__main__ import main as data_cli

matplotlib.use("Agg")
MIB = 2**20


@functools.cache
def cells(name: str) -> tuple:
    """The cells of ``course_src/<name>.py`` as built into the notebook."""
    path = nbu.COURSE_SRC / f"{name}.py"
    return tuple(nbu.load_build().parse_cells(path.read_text(encoding="utf-8"), path.name))


def cell_text(name: str, marker: str) -> str:
    """The source of the one cell of notebook ``name`` that contains ``marker``."""
    found = [c.source for c in cells(name) if marker in c.source]
    assert len(found) == 1, f"{name}: {len(found)} cells contain {marker!r}"
    return found[0]


@functools.cache
def run_until(name: str, marker: str, only_setup: bool = False) -> tuple[dict, str]:
    """Run the code cells of notebook ``name`` in order up to the cell containing ``marker``
    (after only the setup cell if ``only_setup``); return the namespace and the printed text."""
    code = [c for c in cells(name) if c.cell_type == "code"]
    last = next(i for i, c in enumerate(code) if marker in c.source)
    chosen = [code[0], code[last]] if only_setup else code[:last + 1]
    ns: dict = {"__name__": f"errata_{name}"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for k, cell in enumerate(chosen):
            exec(compile(cell.source, f"{name}:{cell.id}", "exec"), ns)  # noqa: S102
            if k == 0:
                ns["record"] = lambda *args, **kwargs: None
    matplotlib.pyplot.close("all")
    return ns, out.getvalue()


def answer_text(name: str, grade_id: str) -> str:
    """The reference answer of written question ``grade_id``."""
    return next(c.source for c in cells(name) if c.id == grade_id)


def quoted(answer: str, numbers: list[str], output: str) -> None:
    """Every string of ``numbers`` is in the reference ``answer`` and in the computed ``output``."""
    for number in numbers:
        assert number in answer, f"the reference answer does not quote {number}"
        assert number in output, f"the notebook does not compute {number}"


# ------------------------------------------------------------------------------ 04_memory
def test_04_93mb_is_roughly_not_exactly_24m():
    """24M x 4 B = 96 MB = 91.55 MiB: the printed 93 is 1.6% and 3.1% off, as the answer says."""
    ns, out = run_until("04_memory", "notes_count, notes_mb")
    nbytes = 24_000_000 * 4
    assert f"{nbytes:,} B = {nbytes / 1e6:.2f} MB = {nbytes / MIB:.2f} MiB" in out
    assert f"{93 / (nbytes / MIB) - 1:+.1%}" == "+1.6%" and f"{93 / 96 - 1:+.1%}" == "-3.1%"
    assert f"{93 * 1024 * 1024 // 4:,}" == "24,379,392"
    answer = answer_text("04_memory", "q_vgg_total")
    assert "is consistent with" not in answer
    quoted(answer, ["96,000,000 B", "96.00 MB", "91.55 MiB", "1.6%", "3.1%", "24,379,392"], out)


def test_04_readings_of_72mb():
    """Each reading's bytes against the arithmetic done here; exactly two readings give 72."""
    ns, out = run_until("04_memory", "readings_72 = {}")
    volume = 224 * 224 * 64
    expected = {  # reading -> bytes, float32 (4 B), gradients doubling
        "3 volumes, exact, with gradients (English notes)": 3 * volume * 8,
        "3 volumes, exact, activations only": 3 * volume * 4,
        "1 volume, exact, with gradients (the translation)": volume * 8,
        "1 volume, exact, activations only": volume * 4,
        "3 volumes of 3.0M = 3 x 10^6, with gradients": 72_000_000,
        "3 volumes of 3 Mi = 3 x 2^20, with gradients": 72 * MIB,
        "'about 10 million' activations, with gradients": 80_000_000,
    }
    readings = ns["readings_72"]
    assert set(readings) == set(expected)
    for reading, nbytes in expected.items():
        assert readings[reading] == (nbytes, nbytes / 1e6, nbytes / MIB), reading
        assert f"{reading:<51}{nbytes:>12,}" in out, reading
    exact_72 = {r for r, (_, mb, mib) in readings.items() if 72 in (mb, mib)}
    assert exact_72 == {"3 volumes of 3.0M = 3 x 10^6, with gradients",
                        "3 volumes of 3 Mi = 3 x 2^20, with gradients"}
    assert readings["3 volumes, exact, with gradients (English notes)"][0] == 77_070_336


def test_04_translation_answer_has_both_slips_and_the_computed_numbers():
    """The answer names the lost "three" and 激活函数 ("activation functions"), and quotes the
    table's numbers; the quoted Chinese sentence holds the slip and the glossary both terms."""
    _, out = run_until("04_memory", "readings_72 = {}")
    answer = answer_text("04_memory", "q_translation")
    assert '"three"' in answer and "激活函数和梯度" in answer and "激活数据" in answer
    assert "激活函数和梯度都是" in cell_text("04_memory", "## 4. The \"10 million activations")
    terms = cell_text("04_memory", "## Terms")
    assert "| 激活数据 | activations |" in terms and "| 激活函数 | activation function |" in terms
    volume = 224 * 224 * 64
    assert f"{volume * 4 / MIB:.2f}" == "12.25" and f"{2 * volume * 4 / MIB:.2f}" == "24.50"
    assert f"{3e6 / volume - 1:+.1%}" == "-6.6%" and f"{3 * MIB / volume - 1:+.1%}" == "-2.0%"
    quoted(answer, ["3,211,264", "9,633,792", "77,070,336", "77.07", "73.50", "72,000,000",
                    "72.00", "12.25", "24.50", "-2.0%", "-6.6%"], out)


# ----------------------------------------------------------------------- 05_architectures
def test_05_slide_358m_counts_the_3x3_row_twice():
    """The six rows of the slide sum to 271,351,808; 358,055,936 adds the 3x3 row again."""
    ns, out = run_until("05_architectures", "slide_rows = {")
    rows = {"1x1 64": 28 * 28 * 64 * 256, "1x1 64 b": 28 * 28 * 64 * 256,
            "1x1 128": 28 * 28 * 128 * 256, "3x3 192": 28 * 28 * 192 * 9 * 64,
            "5x5 96": 28 * 28 * 96 * 25 * 64, "pool proj": 28 * 28 * 64 * 256}
    assert sorted(ns["slide_macs"].values()) == sorted(rows.values())
    assert ns["slide_sum"] == sum(rows.values()) == 271_351_808
    assert ns["twice_3x3"] == sum(rows.values()) + rows["3x3 192"] == 358_055_936
    assert ns["naive_macs"] == 854_196_224
    for number in ("271,351,808", "86,704,128", "358,055,936", "854,196,224"):
        assert number in out


def test_05_googlenet_variants_and_the_notes_4m():
    """The notebook prints both GoogLeNets' counts, with and without the final FC layer."""
    _, out = run_until("05_architectures", "alexnet_params = ")
    for params, macs in ((6_624_904, 1_498_376_192), (7_005_832, 1_582_671_872)):
        head = 1024 * 1000 + 1000
        assert f"{params:,} parameters ({params - head:,} without the final FC layer), " \
               f"{macs:,} MACs" in out
    assert "5,000,000" in out  # 60 million / 12
    text = cell_text("05_architectures", "**GoogLeNet's \"5x5\" branch.**")
    assert "true_5x5=True" in text and '"4M"' in text
    assert "5x5" in arch.googlenet.__doc__ and "7,005,832" in arch.googlenet.__doc__


def test_05_reference_counts_say_where_they_come_from():
    """Only torchvision's counts are called published; all nine specs match their reference."""
    ns, out = run_until("05_architectures", "references = [")
    published, hand = ns["PUBLISHED_PARAMS"], ns["HAND_COUNTED_PARAMS"]
    assert set(published) == {"googlenet", "vgg16", "resnet18", "resnet50"}
    assert set(hand) == {"lenet", "lenet5", "alexnet", "alexnet_grouped", "zfnet"}
    for name, count in {**published, **hand}.items():
        assert memory.totals(arch.get(name))["params"] == count, name
    setup = cell_text("05_architectures", "PUBLISHED_PARAMS = {")
    assert "Published (data, not computed)" not in setup
    sources = re.findall(r" ok +(hand count|torchvision) ", out)
    assert sorted(sources) == ["hand count"] * 5 + ["torchvision"] * 4 and "!!" not in out


def test_05_design_answer_matches_the_table():
    """VGG-16 has the most MACs, ResNet-50 the most activations; the answer says so and quotes
    the ratios and shares the table cell prints."""
    _, out = run_until("05_architectures", "ResNet-50 against VGG-16")
    names = ("lenet", "alexnet", "zfnet", "googlenet", "vgg16", "resnet50")
    totals = {n: memory.totals(arch.get(n)) for n in names}
    assert max(names, key=lambda n: totals[n]["macs"]) == "vgg16"
    assert max(names, key=lambda n: totals[n]["activations"]) == "resnet50"
    vgg, res = totals["vgg16"], totals["resnet50"]
    assert abs(res["macs"] / vgg["macs"] - 0.25) < 0.02  # "about a quarter"
    assert (f"{vgg['params'] / res['params']:.2f}", f"{res['macs'] / vgg['macs']:.3f}",
            f"{res['activations'] / vgg['activations']:.2f}") == ("5.41", "0.264", "1.85")
    answer = answer_text("05_architectures", "q_design")
    assert "largest activations" not in answer
    quoted(answer, ["15,470,264,320", "4,089,184,256", "15,087,080", "27,951,080", "5.41",
                    "0.264", "1.85", "94.0%", "89.4%", "15.5%", "8.0%", "6.5%", "47.9%"], out)


# ------------------------------------------------------------------------- 01_convolution
def test_01_fc_to_conv_needs_four_passes_for_16px():
    """Crops every 16 px in a 384 image: 11 x 11; two passes reach 6 x 6 + 5 x 5, four all."""
    ns, out = run_until("01_convolution", "def crops_scored", only_setup=True)
    per_axis = (384 - 224) // 16 + 1                       # 0, 16, ..., 160
    even, odd = (384 - 224) // 32 + 1, (384 - 16 - 224) // 32 + 1
    assert (per_axis, even, odd) == (11, 6, 5)
    assert len(ns["every_16px"]) == per_axis**2 == 121
    assert len(ns["twice"]) == even**2 + odd**2 == 61
    assert len(ns["four_times"] & ns["every_16px"]) == 121 == even**2 + 2 * even * odd + odd**2
    assert len(ns["shifts"]) == 4
    assert "two passes (original, shifted along both axes) score 61, 4 passes score 121" in out
    text = cell_text("01_convolution", "**An erratum in the English notes.**")
    assert "*twice*" in text and "4$ passes" in text


# ------------------------------------------------------------------- library and commands
def test_train_demo_docstring_names_what_the_training_notebook_uses():
    """The functions the docstring says notebook 06 shares are the ones it imports."""
    shared = re.findall(r"notebook \(06\) shares only ``(\w+)``", train_demo.__doc__)
    source = (nbu.COURSE_SRC / "06_training.py").read_text(encoding="utf-8")
    imported = re.findall(r"from cs231n_lib\.train_demo import ([\w, ]+)", source)
    assert shared and sorted(shared) == sorted(n.strip() for line in imported
                                               for n in line.split(","))
    for name in re.findall(r"``(\w+)``", train_demo.__doc__):
        assert hasattr(train_demo, name), name


def _offline(*args, **kwargs):
    raise urllib.error.URLError("no network (test)")


def test_fetch_offline_prints_the_message_alone_and_exits_1(tmp_path, monkeypatch, capsys):
    """No network: exit status 1, one message on stderr that says how to resume, no traceback."""
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    assert data_cli(["fetch", "cifar10", "--dir", str(tmp_path), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert "no network (test)" in captured.err and "again to resume" in captured.err
    assert captured.err.count("\n") == 1


def test_python_dash_m_offline_exits_1_without_traceback(tmp_path):
    """The same through ``python -m cs231n_lib.data`` (runpy), in a fresh interpreter."""
    code = ("import runpy, sys, urllib.error, urllib.request\n"
            "def offline(*a, **k):\n    raise urllib.error.URLError('no network (test)')\n"
            "urllib.request.urlopen = offline\n"
            f"sys.argv = ['x', 'fetch', 'cifar10', '--dir', {str(tmp_path)!r}, '--no-progress']\n"
            "runpy.run_module('cs231n_lib.data', run_name='__main__', alter_sys=True)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=nbu.ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "no network (test)" in done.stderr


def test_fetch_checksum_mismatch_exits_1(tmp_path, monkeypatch, capsys):
    """A download whose md5 does not match: exit 1 with the checksum message."""
    def bad_download(url, dest, **kwargs):
        dest.write_bytes(b"not cifar")

    monkeypatch.setattr("cs231n_lib.data.__main__.fetch_cifar10",
                        functools.partial(fetch_mod.fetch_cifar10, download=bad_download))
    assert data_cli(["fetch", "cifar10", "--dir", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "Traceback" not in err


@pytest.mark.parametrize("error", [KeyError("bug"), TypeError("bug")])
def test_fetch_programming_errors_still_raise(tmp_path, monkeypatch, error):
    """Only the errors meant for the user are caught; a bug keeps its traceback."""
    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr("cs231n_lib.data.__main__.fetch_cifar10", broken)
    with pytest.raises(type(error)):
        data_cli(["fetch", "cifar10", "--dir", str(tmp_path)])
