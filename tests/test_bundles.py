"""Folders as data for remote grading workers (cs231n_grading.bundles): what a submission,
a notebook's material or an instructor's folder becomes on the worker. Quick, no Dask."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cs231n_grading import bundles
from cs231n_grading.bundles import LINK_TARGET, Bundle, Entry
from cs231n_grading.safe_files import MAX_COPY_BYTES
from cs231n_grading.tasks import GradingTask, KernelSettings

A = "01_basics"
NB = f"{A}.ipynb"
SECRET = b"instructor's secret\n"


def _submission(root: Path) -> Path:
    """submitted/zoe/01_basics with a notebook, a data file, a link to a file outside, a pipe,
    a nested folder, an extra notebook and a checkpoint folder."""
    folder = root / "submitted" / "zoe" / A
    (folder / "sub" / "deeper").mkdir(parents=True)
    (root / "outside.txt").write_bytes(SECRET)
    (folder / NB).write_text("{}")
    (folder / "data.csv").write_text("1,2\n")
    (folder / "sub" / "deeper" / "w.npy").write_bytes(b"\x00" * 10)
    (folder / "secret.txt").symlink_to(root / "outside.txt")
    os.mkfifo(folder / "pipe")
    (folder / "other.ipynb").write_text("{}")
    (folder / ".ipynb_checkpoints").mkdir()
    return folder


def test_submission_round_trip_recreates_what_the_grader_sees(tmp_path):
    folder = _submission(tmp_path / "here")
    bundle = bundles.submission_bundle(folder, NB, max_notebook_bytes=1000)
    kinds = {e.path: e.kind for e in bundle.entries}
    assert kinds == {"zoe": "dir", f"zoe/{A}": "dir", f"zoe/{A}/{NB}": "file",
                     f"zoe/{A}/data.csv": "file", f"zoe/{A}/secret.txt": "link",
                     f"zoe/{A}/pipe": "special", f"zoe/{A}/sub": "dir",
                     f"zoe/{A}/sub/deeper": "dir", f"zoe/{A}/sub/deeper/w.npy": "file"}
    # the link was not followed: its target's bytes are nowhere in the bundle
    assert not any(SECRET in (e.data or b"") for e in bundle.entries)
    there = bundle.unpack(tmp_path / "there" / "submitted") / "zoe" / A
    assert (there / "data.csv").read_text() == "1,2\n"
    assert (there / NB).read_text() == "{}"
    assert (there / "sub" / "deeper" / "w.npy").read_bytes() == b"\x00" * 10
    link = there / "secret.txt"
    assert link.is_symlink() and os.readlink(link) == LINK_TARGET and not link.exists()
    assert (there / "pipe").is_fifo()
    assert not (there / "other.ipynb").exists() and not (there / ".ipynb_checkpoints").exists()


def test_oversized_files_travel_as_their_size(tmp_path):
    folder = tmp_path / "submitted" / "max" / A
    folder.mkdir(parents=True)
    (folder / NB).write_bytes(b"x" * 5000)
    with open(folder / "huge.bin", "wb") as f:  # sparse: no disk used
        f.truncate(MAX_COPY_BYTES + 1)
    bundle = bundles.submission_bundle(folder, NB, max_notebook_bytes=1000)
    sparse = {e.path: (e.kind, e.size, e.data) for e in bundle.entries if e.kind == "sparse"}
    assert sparse == {f"max/{A}/{NB}": ("sparse", 5000, None),
                      f"max/{A}/huge.bin": ("sparse", MAX_COPY_BYTES + 1, None)}
    assert bundle.nbytes == 0
    out = bundle.unpack(tmp_path / "out") / "max" / A
    assert (out / NB).stat().st_size == 5000  # the worker refuses it on its size, as here
    assert (out / "huge.bin").stat().st_size == MAX_COPY_BYTES + 1


def test_a_linked_student_folder_is_sent_as_a_link_and_nothing_below(tmp_path):
    real = tmp_path / "submitted" / "max" / A
    real.mkdir(parents=True)
    (real / NB).write_text("{}")
    (tmp_path / "submitted" / "eve").symlink_to(tmp_path / "submitted" / "max")
    linked = bundles.submission_bundle(tmp_path / "submitted" / "eve" / A, NB, 1000)
    assert [(e.path, e.kind) for e in linked.entries] == [("eve", "link")]
    missing = bundles.submission_bundle(tmp_path / "submitted" / "ivan" / A, NB, 1000)
    assert missing.entries == ()


def test_checksum_mismatch_is_detected_before_anything_is_written(tmp_path):
    good = Bundle.of([Entry("a.txt", "file", b"hi", 2)])
    good.verify()
    for forged in (Bundle((Entry("a.txt", "file", b"ho", 2),), good.sha256),
                   Bundle((Entry("b.txt", "file", b"hi", 2),), good.sha256),
                   Bundle((Entry("a.txt", "link"),), good.sha256),
                   Bundle((*good.entries, Entry("c", "dir")), good.sha256)):
        with pytest.raises(ValueError, match="checksum mismatch"):
            forged.unpack(tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert good.unpack(tmp_path / "y").joinpath("a.txt").read_bytes() == b"hi"


@pytest.mark.parametrize("path", ["../evil", "/abs", "a//b", "a/./b", ""])
def test_paths_must_be_relative(tmp_path, path):
    with pytest.raises(ValueError, match="must be relative"):
        Bundle.of([Entry(path, "file", b"", 0)]).unpack(tmp_path / "y")
    assert not (tmp_path / "evil").exists()


def test_unknown_kind_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown kind 'door'"):
        Bundle.of([Entry("a", "door")]).unpack(tmp_path)


def test_folder_entries_keeps_regular_files_only(tmp_path):
    src = tmp_path / "lib"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text("x = 1\n")
    (src / "pkg" / "__pycache__" / "m.pyc").write_bytes(b"\0")
    (src / "pkg" / "notes.ipynb").write_text("{}")
    (src / "link.py").symlink_to(src / "pkg" / "m.py")
    (src / "linked_dir").symlink_to(src / "pkg")
    entries = bundles.folder_entries(src, "given/", ignore=bundles.IGNORED)
    assert [(e.path, e.kind) for e in entries] == [
        ("given", "dir"), ("given/pkg", "dir"), ("given/pkg/m.py", "file")]
    out = Bundle.of(entries).unpack(tmp_path / "out")
    assert (out / "given" / "pkg" / "m.py").read_text() == "x = 1\n"
    assert {e.path for e in bundles.folder_entries(src)} == {"pkg", "pkg/m.py",
                                                              "pkg/notes.ipynb"}


def test_notebook_bundle_carries_source_release_and_given_files(tmp_path):
    given = tmp_path / "release" / A
    given.mkdir(parents=True)
    (given / NB).write_text("student version")
    (given / "data.csv").write_text("1\n")
    source = tmp_path / "source.ipynb"
    source.write_text("source version")
    settings = KernelSettings(sandbox=False, library_dir=tmp_path, env={}, cell_timeout=1,
                              notebook_timeout=1, max_output_bytes=1, max_notebook_bytes=1,
                              max_notebook_output_bytes=1, memory_mb=1)
    task = GradingTask(settings=settings, student="zoe", assignment=A, notebook=A,
                       submission=tmp_path / "submitted" / "zoe" / A / NB, source=source,
                       release=given / NB, release_dir=given, reference={})
    files = {e.path: e.data for e in bundles.notebook_bundle(task).entries if e.kind == "file"}
    assert files == {"given/data.csv": b"1\n", "source.ipynb": b"source version",
                     "release.ipynb": b"student version"}
    (given / NB).unlink()
    unreleased = bundles.notebook_bundle(task)
    assert "release.ipynb" not in {e.path for e in unreleased.entries}


def test_bundles_import_no_dask():
    """Usable without the cluster extra: importing the module loads neither dask nor
    distributed."""
    code = ("import sys, cs231n_grading.bundles; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
