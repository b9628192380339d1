"""Fetch CIFAR-10 on request: resumable download, md5 check, safe extraction.

Nothing here runs unless asked (``python -m cs231n_lib.data fetch cifar10``). The archive is
downloaded to ``<name>.part`` (resumed with an HTTP Range request after an interruption), renamed
only once its md5 matches, and extracted into a temporary folder inside the target directory that
is renamed into place only after every file's md5 matches, so a failure leaves no half-extracted
data behind.
"""

from __future__ import annotations

import gzip
import http.client
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .cifar10 import ARCHIVE_MD5, ARCHIVE_NAME, FETCH_COMMAND, FILE_MD5S, FILES, FOLDER, URL
from .files import ChecksumError, CorruptDataError, data_dir, md5sum, verify_md5


def download_file(url: str, dest: Path, *, progress: bool = True, opener: Callable | None = None,
                  chunk_size: int = 1 << 20, timeout: float = 60.0) -> None:
    """Download ``url`` into ``dest``, resuming from the bytes ``dest`` already holds.

    A non-empty ``dest`` is resumed with ``Range: bytes=<size>-``; if the server answers with
    anything but the matching 206 Partial Content (it ignored the range, or answered 416 because
    the range is past the end), the download restarts from byte 0. ``opener`` defaults to
    ``urllib.request.urlopen``, looked up at call time.
    """
    opener = opener or urllib.request.urlopen
    for _ in range(2):  # at most one restart after a refused range
        start = dest.stat().st_size if dest.exists() else 0
        headers = {"Range": f"bytes={start}-"} if start else {}
        try:
            response = opener(urllib.request.Request(url, headers=headers), timeout=timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and start:  # the .part is complete or longer than the file
                dest.unlink()
                continue
            raise
        with response:
            content_range = response.headers.get("Content-Range") or ""
            if start and not (response.status == 206
                              and content_range.startswith(f"bytes {start}-")):
                start = 0  # the server sent the whole file: start over
            length = response.headers.get("Content-Length")
            total = start + int(length) if length else None
            with open(dest, "ab" if start else "wb") as f, tqdm(
                    total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
                    desc=Path(url).name, disable=not progress) as bar:
                while chunk := response.read(chunk_size):
                    f.write(chunk)
                    bar.update(len(chunk))
                if total is not None and f.tell() < total:  # keep the .part for a resume
                    raise ConnectionError(f"{url}: connection closed after {f.tell()} of "
                                          f"{total} bytes")
        return
    raise ConnectionError(f"{url}: the server refused to resume twice")


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse a member outside ``FOLDER/`` (absolute, ``..``) or one that is not a plain file or
    folder, before anything is extracted."""
    parts = PurePosixPath(member.name).parts
    if not parts or parts[0] != FOLDER or ".." in parts or not (member.isfile() or member.isdir()):
        raise CorruptDataError(
            f"{archive}: refusing unsafe member {member.name!r} (only plain files under "
            f"{FOLDER}/ are allowed)")


# Python 3.11.4 added tarfile's extraction filters; on older 3.11 releases the members, already
# checked by ``_check_member``, are written out one by one as plain files and folders.
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")
_FILTER_ERRORS = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


def _extract_members(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    """Write checked ``members`` under ``dest``: the "data" filter where Python has it, else only
    folders and regular files' bytes (no links, devices, owners or mode bits from the archive)."""
    if HAS_DATA_FILTER:
        tar.extractall(dest, members=members, filter="data")
        return
    for member in members:
        path = dest.joinpath(*PurePosixPath(member.name).parts)
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        with source, open(path, "xb") as out:
            shutil.copyfileobj(source, out)


def extract(archive: Path, root: Path, file_md5s: Mapping[str, str] = FILE_MD5S) -> Path:
    """Extract ``archive`` into ``root/FOLDER`` and check every file's md5.

    Extracts into a temporary folder inside ``root`` (after ``_check_member``, ``tarfile``'s
    filter "data" as a second guard against path escapes where Python has it), checks the md5s,
    then renames the folder into place, replacing an invalid earlier copy. On any failure the
    temporary folder is removed. Returns ``root/FOLDER``.
    """
    target = root / FOLDER
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=root))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                for member in members:
                    _check_member(archive, member)
                _extract_members(tar, members, tmp)
        except _FILTER_ERRORS as e:
            raise CorruptDataError(f"{archive}: blocked unsafe member: {e}") from e
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
            raise CorruptDataError(f"{archive} is corrupt or truncated: {e}") from e
        for name in FILES:
            if not (tmp / FOLDER / name).is_file():
                raise CorruptDataError(f"{archive} lacks {FOLDER}/{name}")
            actual, expected = md5sum(tmp / FOLDER / name), file_md5s.get(name)
            if expected is not None and actual != expected:
                raise ChecksumError(f"checksum mismatch for {FOLDER}/{name} in {archive}: "
                                    f"expected md5 {expected}, got {actual}")
        if target.exists():
            shutil.rmtree(target)
        (tmp / FOLDER).rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_complete(folder: Path, file_md5s: Mapping[str, str]) -> bool:
    """True if every CIFAR-10 file is in ``folder``, with its expected md5 if one is listed."""
    for name in FILES:
        path = folder / name
        if not path.is_file() or (name in file_md5s and md5sum(path) != file_md5s[name]):
            return False
    return True


def fetch_cifar10(root=None, *, url: str = URL, archive_md5: str = ARCHIVE_MD5,
                  file_md5s: Mapping[str, str] = FILE_MD5S, download: Callable = download_file,
                  progress: bool = True, keep_archive: bool = False) -> Path:
    """Make sure ``root/cifar-10-batches-py`` holds a verified CIFAR-10; return that folder.

    Inputs:
    - root: data directory (default: ``data_dir()``, i.e. $CS231N_DATA_DIR or ``datasets/``)
    - url, archive_md5, file_md5s: where to get the archive and the md5s to expect (defaults:
      the real CIFAR-10; tests pass their own tiny archive's)
    - download: ``download(url, dest, progress=...)`` writes or resumes ``dest``
    - progress: show a tqdm progress bar
    - keep_archive: keep the .tar.gz after extracting (it is deleted by default)

    Does nothing if the folder is already complete; skips the download if a valid archive is
    present. Raises ChecksumError (naming the file, expected and actual md5) if the download does
    not match, before extracting anything; the bad download is deleted so the next run restarts.
    """
    root = data_dir(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = root / FOLDER
    if is_complete(folder, file_md5s):
        return folder
    archive = root / ARCHIVE_NAME
    if archive.is_file() and md5sum(archive) != archive_md5:
        archive.unlink()  # only ever renamed here after a verified download: a stale copy
    if not archive.is_file():
        part = archive.with_name(archive.name + ".part")
        try:
            download(url, part, progress=progress)
        except (OSError, http.client.HTTPException) as e:  # URLError, timeouts, resets, ...
            raise ConnectionError(
                f"downloading {url} failed: {e}. Run `{FETCH_COMMAND} --dir {root}` again to "
                "resume. The embedded data sets work offline: load_dataset('fashion_small').",
            ) from e
        try:
            verify_md5(part, archive_md5)
        except ChecksumError as e:
            part.unlink()
            raise ChecksumError(f"{e}; deleted the download, run the command again") from e
        part.replace(archive)
    extract(archive, root, file_md5s)
    if not keep_archive:
        archive.unlink()
    return folder
