"""Read what students submitted without following links: ``<course>/submitted/...``.

Everything below the course's ``submitted/`` folder is student-controlled. A symbolic link there
(``submitted/S/A/nb.ipynb -> ../../../released_source/A/nb.ipynb``, or the folder ``submitted/S``
itself pointing elsewhere) would make the grader read instructor files as the student's work. So
every path is walked one component at a time from a descriptor of ``submitted/`` with
``O_NOFOLLOW`` (folders also ``O_DIRECTORY``), each entry is checked with ``lstat`` before it is
opened and with ``fstat`` after (same inode, right type), and reads stop at a size cap. Only
regular files and regular folders are read; a refusal raises :class:`RefusedFile`, whose message
names the entry and why (``01_basics.ipynb is a symbolic link``).

Not covered here (see the README's "Not defended"): a hard link is a regular file and is read
like one (making one needs write access to the host's course filesystem and read access to its
target, which already allows copying the target); ``submitted/`` itself and the folders above it
are the instructor's and are followed.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path, PurePath

MAX_COPY_BYTES = 100_000_000  # all files copied from one submission folder, together
MAX_COPY_FILES = 10_000
MAX_COPY_DEPTH = 32
_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a named pipe",
          stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder",
          stat.S_IFREG: "a regular file"}
_NOFOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


class RefusedFile(ValueError):
    """A path below ``submitted/`` the grader will not read (link, not regular, too big...)."""


class MissingFile(RefusedFile):
    """A path below ``submitted/`` that does not exist."""


class TooLarge(RefusedFile):
    """A file below ``submitted/`` over its size cap (``size`` bytes, ``limit`` bytes)."""

    def __init__(self, message: str, size: int, limit: int):
        super().__init__(message)
        self.size, self.limit = size, limit


# Entries of a submission folder that stay out of the grading folder (the notebooks themselves,
# which the grader restores and writes, and Jupyter's checkpoints); a shutil.copytree ``ignore``.
IGNORED = shutil.ignore_patterns(".ipynb_checkpoints", "*.ipynb")


def _kind(mode: int) -> str:
    """'a symbolic link', 'a named pipe', ... for a stat mode."""
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def relative_parts(rel: str | PurePath) -> tuple[str, ...]:
    """Components of a relative path; ValueError for absolute paths, '.', '..' or empty ones."""
    text = str(rel)
    parts = tuple(text.split("/"))
    if text.startswith("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise ValueError(f"path {text!r} must be relative, without '.', '..' or empty parts")
    return parts


def _open_entry(dir_fd: int, name: str, shown: str, *, folder: bool) -> int:
    """Open ``name`` in ``dir_fd`` without following links; a folder or a regular file only."""
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise MissingFile(f"{shown} does not exist") from None
    want = stat.S_IFDIR if folder else stat.S_IFREG
    if stat.S_IFMT(before.st_mode) != want:
        hint = "" if stat.S_ISLNK(before.st_mode) else (
            " (not a folder)" if folder else " (not a regular file)")
        raise RefusedFile(f"{shown} is {_kind(before.st_mode)}{hint}")
    flags = _NOFOLLOW | (os.O_DIRECTORY if folder else os.O_NONBLOCK)
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise MissingFile(f"{shown} does not exist") from None
    except OSError as err:  # ELOOP/ENOTDIR: swapped for a link or a file since the lstat
        raise RefusedFile(f"{shown} changed while being opened ({err.strerror})") from None
    after = os.fstat(fd)
    if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino) \
            or stat.S_IFMT(after.st_mode) != want:
        os.close(fd)
        raise RefusedFile(f"{shown} changed while being opened")
    return fd


def open_folder(root: Path, rel: str | PurePath) -> int:
    """Descriptor of the folder ``root/rel``, no link followed below ``root`` (caller closes)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = relative_parts(rel) if str(rel) not in ("", ".") else ()
        for i, name in enumerate(parts):
            child = _open_entry(fd, name, "folder " + "/".join(parts[:i + 1]), folder=True)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, shown: str, max_bytes: int) -> bytes:
    """All bytes of the open regular file ``fd``; RefusedFile past ``max_bytes``."""
    size = os.fstat(fd).st_size
    if size > max_bytes:
        raise TooLarge(f"{shown} is {size} bytes (limit {max_bytes})", size, max_bytes)
    chunks, total = [], 0
    while chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:  # it grew since the fstat
            raise TooLarge(f"{shown} is over {max_bytes} bytes", total, max_bytes)
    return b"".join(chunks)


def read_file(root: Path, rel: str | PurePath, *, max_bytes: int) -> bytes:
    """Bytes of the regular file ``root/rel``, no link followed below ``root``, at most
    ``max_bytes`` (RefusedFile, or MissingFile when something on the way does not exist)."""
    parts = relative_parts(rel)
    dir_fd = open_folder(root, PurePath(*parts[:-1]) if len(parts) > 1 else ".")
    try:
        fd = _open_entry(dir_fd, parts[-1], parts[-1], folder=False)
    finally:
        os.close(dir_fd)
    try:
        return _read_fd(fd, parts[-1], max_bytes)
    finally:
        os.close(fd)


class _Copier:
    """State of one copy_files call: byte and file budgets, and what was skipped."""

    def __init__(self, skip: Callable[[str], bool], max_bytes: int):
        self.skip, self.budget, self.left = skip, max_bytes, max_bytes
        self.files, self.skipped = 0, []

    def folder(self, dir_fd: int, dest: Path, shown: str, depth: int) -> None:
        """Copy the regular files and folders of ``dir_fd`` into ``dest`` (recursively)."""
        for name in sorted(os.listdir(dir_fd)):
            where, target = f"{shown}{name}", dest / name
            if self.skip(name) or target.is_symlink() or (target.exists()
                                                          and not target.is_dir()):
                continue  # what is already there (files given to students) wins
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode) and depth >= MAX_COPY_DEPTH:
                    raise RefusedFile(f"{where} (folders nested deeper than "
                                      f"{MAX_COPY_DEPTH} levels)")
                if stat.S_ISDIR(mode):
                    sub = _open_entry(dir_fd, name, where, folder=True)
                    try:
                        target.mkdir(exist_ok=True)
                        self.folder(sub, target, where + "/", depth + 1)
                    finally:
                        os.close(sub)
                elif not target.exists():
                    self.file(dir_fd, name, target, where)
            except RefusedFile as err:
                self.skipped.append(str(err))
            except OSError as err:
                self.skipped.append(f"{where} cannot be read ({err.strerror or err})")

    def file(self, dir_fd: int, name: str, target: Path, where: str) -> None:
        """Copy one regular file within the budgets (RefusedFile otherwise)."""
        if self.files >= MAX_COPY_FILES:
            raise RefusedFile(f"{where} (more than {MAX_COPY_FILES} files)")
        fd = _open_entry(dir_fd, name, where, folder=False)
        try:
            data = _read_fd(fd, where, self.left)
        except RefusedFile:
            raise RefusedFile(f"{where} (over the {self.budget} bytes copied per "
                              "submission)") from None
        finally:
            os.close(fd)
        target.write_bytes(data)
        self.left -= len(data)
        self.files += 1


def copy_files(root: Path, rel: str | PurePath, dest: Path, *,
               skip: Callable[[str], bool] = lambda name: False,
               max_bytes: int = MAX_COPY_BYTES) -> list[str]:
    """Copy the regular files below ``root/rel`` into ``dest`` (made if needed), following no
    link; returns why each other entry was skipped (links, pipes, devices, over the budgets).
    Entries whose name ``skip`` accepts are left out silently. RefusedFile if ``root/rel``
    itself cannot be read."""
    fd = open_folder(root, rel)
    try:
        dest.mkdir(parents=True, exist_ok=True)
        copier = _Copier(skip, max_bytes)
        copier.folder(fd, dest, "", 0)
    finally:
        os.close(fd)
    return copier.skipped


def submission_root(folder: Path) -> tuple[Path, PurePath]:
    """(``submitted/``, ``student/assignment``) for a submission folder in nbgrader's layout
    ``<course>/submitted/<student>/<assignment>`` (split lexically: nothing is resolved)."""
    folder = Path(folder)
    return folder.parents[1], PurePath(folder.parent.name, folder.name)
