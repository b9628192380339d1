"""Folders as data: what a remote (Dask) grading worker receives instead of the instructor's disk.

A :class:`Bundle` is a tuple of :class:`Entry` (path, kind, bytes) with the sha256 it was made
with, checked before it is unpacked on the worker. Three kinds of folder travel this way:

- the instructor's own folders (the student library, the course data, the files given to
  students), read by :func:`folder_entries`: regular files and folders only;
- the material of one notebook (:func:`notebook_bundle`): the released source snapshot, the
  student version and the files given to students;
- one submission folder (:func:`submission_bundle`), student-controlled, read through
  ``safe_files`` without following any link: a link is sent as a ``link`` entry and recreated
  on the worker pointing to :data:`LINK_TARGET` (dangling, never followed), a pipe, socket or
  device as a named pipe, a file over the copy budgets as a ``sparse`` file of its size, so the
  worker's grader refuses each of them exactly as a local one would.

No Dask here: the backend that ships bundles is ``cs231n_grading.distributed``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePath

from cs231n_grading.safe_files import (
    IGNORED,
    MAX_COPY_BYTES,
    MAX_COPY_DEPTH,
    MAX_COPY_FILES,
    RefusedFile,
    open_folder,
    read_file,
    relative_parts,
    submission_root,
)
from cs231n_grading.tasks import GradingTask

LINK_TARGET = ".cs231n-link-not-followed"  # what a submitted link is recreated pointing to
DIR, FILE, SPARSE, LINK, SPECIAL = "dir", "file", "sparse", "link", "special"
KINDS = (DIR, FILE, SPARSE, LINK, SPECIAL)


@dataclass(frozen=True)
class Entry:
    """One entry of a folder sent to a worker.

    ``kind`` is ``dir``, ``file`` (with ``data``), ``sparse`` (a file too large to send,
    recreated with its ``size`` so that size checks give the same answer), ``link`` (a symbolic
    link, recreated dangling: the grader never follows one) or ``special`` (a pipe, socket or
    device, recreated as a named pipe).
    """

    path: str  # relative, '/'-separated
    kind: str
    data: bytes | None = None
    size: int = 0


def _digest(entries: Iterable[Entry]) -> str:
    """sha256 of entries (paths, kinds, sizes and contents)."""
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.path}\0{e.kind}\0{e.size}\0".encode())
        h.update(hashlib.sha256(e.data or b"").digest())
    return h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A folder as data, with the sha256 it was made with (checked before it is unpacked)."""

    entries: tuple[Entry, ...]
    sha256: str

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Bundle:
        """The bundle of ``entries`` (parents listed before their children)."""
        entries = tuple(entries)
        return cls(entries, _digest(entries))

    @property
    def nbytes(self) -> int:
        """Bytes of file contents carried."""
        return sum(len(e.data or b"") for e in self.entries)

    def verify(self) -> None:
        """ValueError when the contents do not match the checksum."""
        actual = _digest(self.entries)
        if actual != self.sha256:
            raise ValueError(f"bundle checksum mismatch: expected {self.sha256}, got {actual}")

    def unpack(self, dest: Path) -> Path:
        """Create the entries below ``dest`` (made if needed), checksum checked first;
        ValueError for a path that is not relative or a kind not in :data:`KINDS`."""
        self.verify()
        dest.mkdir(parents=True, exist_ok=True)
        for e in self.entries:
            path = dest.joinpath(*relative_parts(e.path))
            if e.kind == DIR:
                path.mkdir(exist_ok=True)
            elif e.kind == FILE:
                path.write_bytes(e.data or b"")
            elif e.kind == SPARSE:
                with open(path, "wb") as f:
                    f.truncate(e.size)
            elif e.kind == LINK:
                os.symlink(LINK_TARGET, path)
            elif e.kind == SPECIAL:
                os.mkfifo(path)
            else:
                raise ValueError(f"bundle entry {e.path!r} has unknown kind {e.kind!r}; "
                                 f"known: {list(KINDS)}")
        return dest


def folder_entries(folder: Path, prefix: str = "",
                   ignore: Callable[[str, list[str]], set[str]] | None = None) -> list[Entry]:
    """Entries of the regular files and folders below a trusted (instructor's) ``folder``;
    links and special files are left out, so are names ``ignore`` (shutil.ignore_patterns)
    returns. ``prefix`` goes before every path."""
    out = [Entry(prefix.rstrip("/"), DIR)] if prefix else []
    for here, dirs, files in os.walk(folder):
        rel = Path(here).relative_to(folder)
        left_out = set(ignore(here, dirs + files)) if ignore else set()
        dirs[:] = sorted(d for d in dirs if d not in left_out and d != "__pycache__"
                         and not os.path.islink(os.path.join(here, d)))
        base = prefix + ("" if rel == Path(".") else rel.as_posix() + "/")
        out += [Entry(base + d, DIR) for d in dirs]
        for name in sorted(set(files) - left_out):
            path = Path(here) / name
            if path.is_file() and not path.is_symlink():
                out.append(Entry(base + name, FILE, path.read_bytes()))
    return out


class _SubmissionReader:
    """Reads a submission folder the way a local worker would see it, following no link.

    Only what the grader reads is sent: the graded notebook, the timestamp and the files it
    copies into the grading folder (other notebooks and checkpoints are left out). A file over
    the budgets becomes a ``sparse`` entry of its size: the worker refuses it on its size, as
    it would here. Folders deeper than the copy limit are sent empty (the grader refuses them).
    """

    def __init__(self, root: Path, notebook: str, max_notebook_bytes: int):
        self.root, self.notebook, self.max_notebook_bytes = root, notebook, max_notebook_bytes
        self.left = MAX_COPY_BYTES + max_notebook_bytes
        self.entries: list[Entry] = []

    def walk(self, rel: PurePath, depth: int) -> None:
        """Add the entries inside the folder ``root/rel`` (``depth`` levels below the
        submission folder)."""
        if len(self.entries) > 2 * MAX_COPY_FILES:
            return
        fd = open_folder(self.root, rel)
        try:
            listing = [(n, os.stat(n, dir_fd=fd, follow_symlinks=False).st_mode)
                       for n in sorted(os.listdir(fd))]
        finally:
            os.close(fd)
        for name, mode in listing:
            path = rel / name
            if IGNORED("", [name]) and not (depth == 0 and name == self.notebook):
                continue
            if stat.S_ISDIR(mode):
                self.entries.append(Entry(path.as_posix(), DIR))
                if depth < MAX_COPY_DEPTH:
                    self.walk(path, depth + 1)
            elif stat.S_ISREG(mode):
                self.entries.append(self.file(path, depth == 0 and name == self.notebook))
            else:
                self.entries.append(Entry(path.as_posix(), LINK if stat.S_ISLNK(mode)
                                          else SPECIAL))

    def file(self, path: PurePath, is_notebook: bool) -> Entry:
        """The entry of one regular file: its bytes, or its size when over the budgets."""
        try:
            limit = self.max_notebook_bytes if is_notebook else MAX_COPY_BYTES
            data = read_file(self.root, path, max_bytes=min(limit, self.left))
        except RefusedFile as err:
            size = getattr(err, "size", None)
            if size is None:  # changed while read: let the worker refuse it
                return Entry(path.as_posix(), SPECIAL)
            return Entry(path.as_posix(), SPARSE, size=size)
        except OSError:
            return Entry(path.as_posix(), SPECIAL)
        self.left -= len(data)
        return Entry(path.as_posix(), FILE, data, len(data))


def submission_bundle(folder: Path, notebook: str, max_notebook_bytes: int) -> Bundle:
    """Bundle of a submission folder ``<course>/submitted/<student>/<assignment>``, paths
    relative to ``submitted/``, for grading ``notebook`` (a file name) on another machine.

    The student's and the assignment's folder come first; where one of them is a link or not
    a folder, it is sent as such and nothing below it (the worker refuses it as here).
    """
    root, rel = submission_root(folder)
    reader = _SubmissionReader(root, notebook, max_notebook_bytes)
    for i in range(len(rel.parts)):
        part = PurePath(*rel.parts[:i + 1])
        try:
            mode = os.lstat(root / part).st_mode
        except FileNotFoundError:
            return Bundle.of(reader.entries)
        if not stat.S_ISDIR(mode):
            kind = LINK if stat.S_ISLNK(mode) else SPECIAL
            return Bundle.of([*reader.entries, Entry(part.as_posix(), kind)])
        reader.entries.append(Entry(part.as_posix(), DIR))
    reader.walk(rel, 0)
    return Bundle.of(reader.entries)


def notebook_bundle(task: GradingTask) -> Bundle:
    """What every submission of one notebook is graded with: the files given to students
    (``given/``), the released source snapshot (``source.ipynb``) and the student version
    (``release.ipynb``, when released)."""
    entries = [*folder_entries(Path(task.release_dir), "given/", ignore=IGNORED),
               Entry("source.ipynb", FILE, Path(task.source).read_bytes())]
    if Path(task.release).is_file():
        entries.append(Entry("release.ipynb", FILE, Path(task.release).read_bytes()))
    return Bundle.of(entries)
