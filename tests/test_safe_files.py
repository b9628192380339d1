"""cs231n_grading.safe_files: files below ``submitted/`` are read without following links (fast)."""

import os
import time
from pathlib import Path

import pytest

from cs231n_grading.autograde import run_pool
from cs231n_grading.safe_files import (
    MissingFile,
    RefusedFile,
    TooLarge,
    copy_files,
    read_file,
    submission_root,
)
from cs231n_grading.timestamps import read_timestamp


@pytest.fixture
def tree(tmp_path):
    """``<tmp>/submitted/alice/A`` with a notebook, and an instructor file outside it."""
    root = tmp_path / "course" / "submitted"
    folder = root / "alice" / "A"
    folder.mkdir(parents=True)
    (folder / "A.ipynb").write_text("student work")
    secret = tmp_path / "course" / "released_source" / "A" / "A.ipynb"
    secret.parent.mkdir(parents=True)
    secret.write_text("instructor solution")
    return root, folder, secret


def test_a_regular_file_is_read(tree):
    root, _, _ = tree
    assert read_file(root, "alice/A/A.ipynb", max_bytes=100) == b"student work"


def test_a_relative_symlink_to_the_solution_is_refused(tree):
    root, folder, _ = tree
    (folder / "A.ipynb").unlink()
    (folder / "A.ipynb").symlink_to("../../../released_source/A/A.ipynb")
    assert (folder / "A.ipynb").read_text() == "instructor solution"  # what the attack reads
    with pytest.raises(RefusedFile, match=r"^A\.ipynb is a symbolic link$"):
        read_file(root, "alice/A/A.ipynb", max_bytes=100)


@pytest.mark.parametrize("linked", ["alice", "alice/A"])
def test_a_linked_student_or_assignment_folder_is_refused(tree, linked):
    root, _, secret = tree
    target = root / "mallory" / "A"
    target.parent.mkdir()
    if linked == "alice":
        (root / "mallory").rmdir()
        (root / "mallory").symlink_to(secret.parents[1])  # released_source: has A/A.ipynb
    else:
        target.symlink_to(secret.parent)
    with pytest.raises(RefusedFile, match=r"^folder mallory(/A)? is a symbolic link$"):
        read_file(root, "mallory/A/A.ipynb", max_bytes=100)


def test_pipes_folders_missing_and_oversized_files_are_refused(tree):
    root, folder, _ = tree
    os.mkfifo(folder / "pipe")
    (folder / "dir").mkdir()
    with pytest.raises(RefusedFile, match="pipe is a named pipe"):  # and does not block
        read_file(root, "alice/A/pipe", max_bytes=100)
    with pytest.raises(RefusedFile, match="dir is a folder"):
        read_file(root, "alice/A/dir", max_bytes=100)
    with pytest.raises(MissingFile, match="nope does not exist"):
        read_file(root, "alice/A/nope", max_bytes=100)
    with pytest.raises(MissingFile, match="folder bob does not exist"):
        read_file(root, "bob/A/A.ipynb", max_bytes=100)
    with pytest.raises(TooLarge, match=r"A\.ipynb is 12 bytes \(limit 5\)") as err:
        read_file(root, "alice/A/A.ipynb", max_bytes=5)
    assert (err.value.size, err.value.limit) == (12, 5)


@pytest.mark.parametrize("rel", ["../x", "alice/../../x", "/etc/passwd", "alice//A", "./a"])
def test_paths_leaving_the_root_are_rejected(tree, rel):
    root, _, _ = tree
    with pytest.raises(ValueError, match="must be relative"):
        read_file(root, rel, max_bytes=100)


def test_submission_root_splits_nbgraders_layout_lexically(tree):
    root, folder, _ = tree
    assert submission_root(folder) == (root, Path("alice/A"))


def test_copy_files_copies_regular_files_only_and_says_what_it_skipped(tree, tmp_path):
    root, folder, secret = tree
    (folder / "data").mkdir()
    (folder / "data" / "x.txt").write_text("mine")
    (folder / "data" / "solution").symlink_to(secret)
    (folder / "linked_dir").symlink_to(secret.parent, target_is_directory=True)
    (folder / "hard").hardlink_to(folder / "A.ipynb")  # a regular file: copied
    os.mkfifo(folder / "pipe")
    (folder / "given.txt").write_text("student version")
    dest = tmp_path / "work"
    dest.mkdir()
    (dest / "given.txt").write_text("instructor version")
    skipped = copy_files(root, "alice/A", dest, skip=lambda name: name.endswith(".ipynb"))
    assert sorted(skipped) == ["data/solution is a symbolic link",
                               "linked_dir is a symbolic link",
                               "pipe is a named pipe (not a regular file)"]
    files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert files == ["data", "data/x.txt", "given.txt", "hard"]
    assert (dest / "given.txt").read_text() == "instructor version"  # given files win
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_copy_files_does_not_write_through_a_given_link(tree, tmp_path):
    root, folder, _ = tree
    (folder / "data").mkdir()
    (folder / "data" / "x.txt").write_text("mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    dest = tmp_path / "work"
    dest.mkdir()
    (dest / "data").symlink_to(elsewhere, target_is_directory=True)
    copy_files(root, "alice/A", dest)
    assert list(elsewhere.iterdir()) == []


def test_copy_files_keeps_to_its_byte_budget(tree, tmp_path):
    root, folder, _ = tree
    (folder / "big.bin").write_bytes(b"x" * 50)
    (folder / "small.bin").write_bytes(b"y" * 5)
    skipped = copy_files(root, "alice/A", tmp_path / "work", max_bytes=20)
    assert skipped == ["big.bin (over the 20 bytes copied per submission)"]
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["A.ipynb", "small.bin"]


def test_copy_files_refuses_a_linked_submission_folder(tree, tmp_path):
    root, _, secret = tree
    (root / "mallory").symlink_to(secret.parents[1])
    with pytest.raises(RefusedFile, match="folder mallory is a symbolic link"):
        copy_files(root, "mallory/A", tmp_path / "work")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize(("content", "expected"), [
    ("2026-01-15 12:00:00.000000 UTC", ("2026-01-15 12:00:00.000000 UTC", None)),
    ("  2026-01-15T12:00:00+01:00\n", ("2026-01-15T12:00:00+01:00", None)),
    ("", (None, None)),
    ("not a date", (None, "timestamp.txt holds 'not a date', which is not a date")),
    ("2026-13-45 99:00:00", (None, "which is not a date")),
    ("99999999-01-01", (None, "which is not a date")),
    ("2026-01-15 12:00:00 /etc/passwd", (None, "time zone '/etc/passwd', a file path")),
    ("2026-01-15 12:00:00 ../../../../etc/passwd", (None, "a file path")),
    (b"\xff\xfe", (None, "timestamp.txt is not UTF-8 text")),
    ("x" * 2000, (None, "timestamp.txt is 2000 bytes (limit 1000)")),
])
def test_read_timestamp_validates_as_nbgrader_parses(tree, content, expected):
    root, folder, _ = tree
    path = folder / "timestamp.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    stamp, problem = read_timestamp(root, "alice/A")
    assert stamp == expected[0]
    assert (problem is None) if expected[1] is None else expected[1] in problem


def test_read_timestamp_of_a_missing_linked_or_special_file(tree):
    root, folder, secret = tree
    assert read_timestamp(root, "alice/A") == (None, None)
    (folder / "timestamp.txt").symlink_to(secret)
    with pytest.raises(RefusedFile, match="^timestamp.txt is a symbolic link$"):
        read_timestamp(root, "alice/A")
    (folder / "timestamp.txt").unlink()
    os.mkfifo(folder / "timestamp.txt")
    with pytest.raises(RefusedFile, match="timestamp.txt is a named pipe"):
        read_timestamp(root, "alice/A")


def _slow_task(task):
    """A pool task that takes a while and leaves a mark when it finished."""
    time.sleep(task["sleep"])
    Path(task["mark"]).write_text("done")
    return {"i": task["i"]}


def test_run_pool_stops_starting_tasks_when_interrupted(tmp_path):
    """Ctrl-C while saving a result: the run stops; queued tasks are not run."""
    tasks = [{"i": i, "sleep": 0.3, "mark": str(tmp_path / f"{i}.done")} for i in range(12)]
    seen = []

    def on_result(i, res):
        seen.append(i)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_pool(_slow_task, tasks, 1, desc="test", on_result=on_result)
    time.sleep(1.0)  # a task still queued would have finished by now
    assert len(list(tmp_path.glob("*.done"))) < 6  # not all twelve ran
