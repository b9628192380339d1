"""CIFAR-10 fetcher and loader, on a tiny archive built here in the exact format; no network."""

import gzip
import hashlib
import io
import pickle
import runpy
import socket
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import cs231n_lib.data.fetch as fetch_mod
import cs231n_lib.data.loaders as loaders
from cs231n_lib.data import (
    ARCHIVE_MD5,
    ChecksumError,
    CorruptDataError,
    DatasetNotFoundError,
    download_file,
    fetch_cifar10,
    get_CIFAR10_data,
    load_dataset,
)
from cs231n_lib.data.__main__ import main as cli_main
from cs231n_lib.data.cifar10 import FILES, FOLDER, unpickle

ROOT = Path(__file__).resolve().parents[1]
PER_BATCH = 4  # images per tiny batch: 5 x 4 = 20 training, 4 test
NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
         b"ship", b"truck"]


class NetworkBlocked(AssertionError):
    """Raised by the guards below if anything tries to reach the network."""


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test in this file runs with urlopen and sockets made to raise."""
    def refuse(*args, **kwargs):
        target = getattr(args[0], "full_url", args[0]) if args else kwargs
        raise NetworkBlocked(f"network access attempted: {target!r}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


class _Py2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2 wrote the real CIFAR-10 files: protocol 2, byte strings
    as Python 2 ``str`` (SHORT_BINSTRING/BINSTRING) and numpy's ``numpy.core`` module name."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        n = len(obj)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else (
            pickle.BINSTRING + n.to_bytes(4, "little"))
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct":
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def tiny_files(seed=0) -> dict[str, bytes]:
    """The seven CIFAR-10 files, each batch holding PER_BATCH random images."""
    rng = np.random.default_rng(seed)
    files = {}
    for i, name in enumerate(FILES[:-1]):
        files[name] = py2_pickle({
            b"batch_label": f"batch {i + 1} of 6".encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, PER_BATCH)],
            b"data": rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}_{k}.png".encode() for k in range(PER_BATCH)],
        })
    files["batches.meta"] = py2_pickle({b"label_names": NAMES, b"num_cases_per_batch": PER_BATCH,
                                        b"num_vis": 3072})
    return files


def make_tar_gz(members: dict[str, bytes], folders=(FOLDER,)) -> bytes:
    """A .tar.gz with fixed mtimes and owners, so the same members give the same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def tiny():
    """The tiny archive's bytes, its md5 and the md5 of each of its files."""
    files = tiny_files()
    members = {f"{FOLDER}/{n}": d for n, d in files.items()}
    members[f"{FOLDER}/readme.html"] = b"<html>tiny</html>"
    archive = make_tar_gz(members)
    return archive, md5(archive), {n: md5(d) for n, d in files.items()}


def serve(blob: bytes, calls: list):
    """An injected download that writes ``blob`` and records each call."""
    def download(url, dest, progress=True):
        calls.append((url, Path(dest)))
        Path(dest).write_bytes(blob)
    return download


def leftovers(root: Path) -> list[str]:
    """Temporary extraction folders or partial downloads left in ``root``."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".extract-")
                  or p.name.endswith(".part"))


def fetch_tiny(root, tiny, **kwargs):
    """fetch_cifar10 on the tiny archive (overridable by ``kwargs``)."""
    archive, archive_md5, file_md5s = tiny
    args = dict(url="https://example.invalid/cifar.tgz", archive_md5=archive_md5,
                file_md5s=file_md5s, download=serve(archive, []), progress=False)
    return fetch_cifar10(root, **{**args, **kwargs})


# --- the fixture itself --------------------------------------------------------------------

def test_tiny_archive_is_byte_stable(tiny):
    """Two builds of the tiny archive are identical, so its md5 is a constant."""
    assert make_tar_gz({f"{FOLDER}/{n}": d for n, d in tiny_files().items()}) == \
        make_tar_gz({f"{FOLDER}/{n}": d for n, d in tiny_files().items()})
    assert md5(tiny[0]) == tiny[1]


def test_tiny_batches_are_python2_style_pickles(tmp_path):
    """Protocol 2 with keys as Python 2 str: bytes keys under encoding='bytes', str under
    'latin1'; the loader accepts both and returns str keys."""
    blob = tiny_files()["data_batch_1"]
    assert blob[:2] == b"\x80\x02"
    assert b"U\x04data" in blob  # SHORT_BINSTRING 'data', as Python 2 wrote it
    assert b"numpy.core.multiarray\n_reconstruct" in blob
    assert b"data" in pickle.loads(blob, encoding="bytes")
    assert "data" in pickle.loads(blob, encoding="latin1")
    (tmp_path / "b").write_bytes(blob)
    d = unpickle(tmp_path / "b")
    assert set(d) == {"batch_label", "labels", "data", "filenames"}
    assert d["data"].dtype == np.uint8 and d["data"].shape == (PER_BATCH, 3072)


# --- happy path ------------------------------------------------------------------------------

def test_fetch_then_load_happy_path(tmp_path, tiny):
    calls = []
    folder = fetch_tiny(tmp_path, tiny, download=serve(tiny[0], calls))
    assert folder == tmp_path / FOLDER
    assert len(calls) == 1 and calls[0][1].name.endswith(".part")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*FILES, "readme.html"])
    assert leftovers(tmp_path) == []
    assert not (tmp_path / "cifar-10-python.tar.gz").exists()  # deleted unless keep_archive

    d = load_dataset("cifar10", data_dir=tmp_path, file_md5s=tiny[2], num_training=15,
                     num_validation=3, num_test=4, subtract_mean=False)
    assert set(d) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "class_names"}
    assert d["X_train"].shape == (15, 3, 32, 32) and d["X_train"].dtype == np.float32
    assert d["X_val"].shape == (3, 3, 32, 32) and d["X_test"].shape == (4, 3, 32, 32)
    assert all(d[f"y_{s}"].dtype == np.int64 for s in ("train", "val", "test"))
    assert list(d["class_names"]) == [n.decode() for n in NAMES]

    # Values and labels are the pickled ones: batch data rows are R, G, B planes of 32x32.
    batches = [pickle.loads(tiny_files()[n], encoding="bytes") for n in FILES[:5]]
    data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([b[b"labels"] for b in batches])
    np.testing.assert_array_equal(d["X_train"], data[:15])
    np.testing.assert_array_equal(d["X_val"], data[15:18])  # CS231n: val follows train
    np.testing.assert_array_equal(d["y_train"], labels[:15])
    np.testing.assert_array_equal(d["y_val"], labels[15:18])
    test = pickle.loads(tiny_files()["test_batch"], encoding="bytes")
    np.testing.assert_array_equal(d["y_test"], test[b"labels"])

    # The options that make fashion_small CIFAR-shaped are no-ops on CIFAR-10, so a notebook
    # switches data sets by the name alone.
    same = load_dataset("cifar10", data_dir=tmp_path, file_md5s=tiny[2], num_training=15,
                        num_validation=3, num_test=4, subtract_mean=False, pad_to=32, channels=3)
    for key in d:
        np.testing.assert_array_equal(same[key], d[key])


def test_get_CIFAR10_data_is_CS231n_compatible(tmp_path, tiny, monkeypatch):
    """Positional CS231n signature; mean-subtracted by default; float64 on request."""
    fetch_tiny(tmp_path, tiny)
    monkeypatch.setitem(loaders.OPTIONS, "cifar10", {"file_md5s": tiny[2]})
    d = get_CIFAR10_data(16, 4, 4, data_dir=tmp_path)
    assert d["X_train"].shape == (16, 3, 32, 32) and d["X_train"].dtype == np.float32
    np.testing.assert_allclose(d["X_train"].mean(axis=0), 0, atol=1e-4)
    raw = load_dataset("cifar10", data_dir=tmp_path, subtract_mean=False, num_training=16,
                       num_validation=4, num_test=4)
    np.testing.assert_allclose(d["X_val"], raw["X_val"] - raw["X_train"].mean(axis=0),
                               atol=1e-4)
    d64 = get_CIFAR10_data(16, 4, 4, subtract_mean=False, dtype=np.float64, data_dir=tmp_path)
    assert d64["X_test"].dtype == np.float64
    np.testing.assert_array_equal(d64["X_test"], raw["X_test"])
    with pytest.raises(ValueError, match="num_training \\+ num_validation = 18 \\+ 4"):
        get_CIFAR10_data(18, 4, 4, data_dir=tmp_path)


def test_missing_cifar10_says_how_to_fetch(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        get_CIFAR10_data(data_dir=tmp_path)
    msg = str(e.value)
    assert "python -m cs231n_lib.data fetch cifar10" in msg and str(tmp_path) in msg
    assert "work offline" in msg and "fashion_small" in msg


# --- checksums and damaged files ---------------------------------------------------------------

def test_archive_md5_mismatch_raises_before_extraction(tmp_path, tiny, monkeypatch):
    extracted = []
    monkeypatch.setattr(fetch_mod, "extract", lambda *a, **k: extracted.append(a))
    with pytest.raises(ChecksumError) as e:
        fetch_tiny(tmp_path, tiny, archive_md5="0" * 32)
    msg = str(e.value)
    assert "cifar-10-python.tar.gz.part" in msg and "0" * 32 in msg and tiny[1] in msg
    assert extracted == []
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # bad download deleted


def test_default_archive_md5_is_the_real_one(tmp_path, tiny):
    """Without archive_md5 the real CIFAR-10 md5 is expected, so the tiny archive is refused."""
    with pytest.raises(ChecksumError, match=ARCHIVE_MD5):
        fetch_cifar10(tmp_path, download=serve(tiny[0], []), progress=False)


def test_truncated_archive(tmp_path, tiny):
    archive, _, file_md5s = tiny
    cut = archive[:len(archive) // 2]
    with pytest.raises(ChecksumError):  # with the expected md5: caught by the checksum
        fetch_tiny(tmp_path, tiny, download=serve(cut, []))
    # Even if its md5 were trusted, extraction fails with an error naming the archive and leaves
    # no half-extracted data behind.
    with pytest.raises(CorruptDataError, match="cifar-10-python.tar.gz is corrupt or truncated"):
        fetch_cifar10(tmp_path, url="x", archive_md5=md5(cut), file_md5s=file_md5s,
                      download=serve(cut, []), progress=False)
    assert not (tmp_path / FOLDER).exists() and leftovers(tmp_path) == []


def test_member_md5_mismatch_leaves_nothing_behind(tmp_path, tiny):
    bad = dict(tiny[2], data_batch_3="f" * 32)
    with pytest.raises(ChecksumError, match=f"{FOLDER}/data_batch_3 .*expected md5 f{{32}}"):
        fetch_tiny(tmp_path, tiny, file_md5s=bad)
    assert not (tmp_path / FOLDER).exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("evil", ["../evil.txt", f"{FOLDER}/../../evil.txt", "/tmp/evil.txt"])
def test_path_escaping_member_is_blocked(tmp_path, evil):
    root = tmp_path / "root"
    root.mkdir()
    members = {f"{FOLDER}/{n}": d for n, d in tiny_files().items()}
    members[evil] = b"pwned"
    archive = make_tar_gz(members)
    with pytest.raises(CorruptDataError, match="unsafe member"):
        fetch_cifar10(root, url="x", archive_md5=md5(archive), file_md5s={},
                      download=serve(archive, []), progress=False)
    assert not (tmp_path / "evil.txt").exists() and not (root / "evil.txt").exists()
    assert not (root / FOLDER).exists()
    assert leftovers(root) == []


@pytest.mark.skipif(not fetch_mod.HAS_DATA_FILTER,
                    reason="this Python (< 3.11.4) has no tarfile extraction filters; the "
                           "member checks alone guard it (tested below)")
def test_tar_data_filter_is_a_second_guard(tmp_path, monkeypatch):
    """With the member check switched off, tarfile's "data" filter still blocks ``../``."""
    monkeypatch.setattr(fetch_mod, "_check_member", lambda archive, member: None)
    members = {f"{FOLDER}/{n}": d for n, d in tiny_files().items()}
    members[f"{FOLDER}/../../evil.txt"] = b"pwned"
    (tmp_path / "root").mkdir()
    archive = tmp_path / "root" / "a.tar.gz"
    archive.write_bytes(make_tar_gz(members))
    with pytest.raises(CorruptDataError, match="blocked unsafe member"):
        fetch_mod.extract(archive, tmp_path / "root", {})
    assert not (tmp_path / "root" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert leftovers(tmp_path / "root") == []


@pytest.fixture
def no_data_filter(monkeypatch):
    """Extraction as on Python 3.11.0-3.11.3, which have no tarfile filters."""
    monkeypatch.setattr(fetch_mod, "HAS_DATA_FILTER", False)


def test_fallback_extraction_without_data_filter(tmp_path, tiny, no_data_filter, monkeypatch):
    """Without tarfile's filters the checked members are written as plain files and folders: the
    same files and bytes, no mode bits from the archive, and tarfile's own extractall unused."""
    def refuse(*args, **kwargs):
        raise AssertionError("extractall must not run without the data filter")
    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    files = tiny_files()
    members = {f"{FOLDER}/{n}": d for n, d in files.items()}
    raw = io.BytesIO()  # one member with setuid and world-writable bits
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(make_tar_gz(members))), mode="r") as src:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            for m in src.getmembers():
                if m.name.endswith("test_batch"):
                    m.mode = 0o4777
                tar.addfile(m, src.extractfile(m) if m.isfile() else None)
    (tmp_path / "root").mkdir()
    archive = tmp_path / "root" / "a.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    folder = fetch_mod.extract(archive, tmp_path / "root", {n: md5(d) for n, d in files.items()})
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
    for name, data in files.items():
        assert (folder / name).read_bytes() == data
        assert not (folder / name).is_symlink()
    assert (folder / "test_batch").stat().st_mode & 0o7022 == 0
    assert leftovers(tmp_path / "root") == []


@pytest.mark.parametrize("bad", [f"{FOLDER}/../../evil.txt", "/tmp/evil.txt", "evil.txt"])
def test_fallback_extraction_refuses_escaping_members(tmp_path, no_data_filter, bad):
    """The member checks alone keep ``..``, absolute and foreign members out."""
    members = {f"{FOLDER}/{n}": d for n, d in tiny_files().items()}
    members[bad] = b"pwned"
    (tmp_path / "root").mkdir()
    archive = tmp_path / "root" / "a.tar.gz"
    archive.write_bytes(make_tar_gz(members))
    with pytest.raises(CorruptDataError, match="unsafe member"):
        fetch_mod.extract(archive, tmp_path / "root", {})
    assert not list(tmp_path.rglob("evil.txt"))
    assert leftovers(tmp_path / "root") == []


def test_fallback_extraction_refuses_links(tmp_path, no_data_filter):
    """A symbolic or hard link member is refused before anything is written."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in tiny_files().items():
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            link = tarfile.TarInfo(f"{FOLDER}/link{kind.decode()}")
            link.type, link.linkname = kind, "/etc/passwd"
            tar.addfile(link)
    (tmp_path / "root").mkdir()
    archive = tmp_path / "root" / "a.tar.gz"
    archive.write_bytes(gzip.compress(raw.getvalue()))
    with pytest.raises(CorruptDataError, match="unsafe member"):
        fetch_mod.extract(archive, tmp_path / "root", {})
    assert not (tmp_path / "root" / FOLDER).exists()


def test_load_checks_each_file_md5(tmp_path, tiny):
    fetch_tiny(tmp_path, tiny)
    batch = tmp_path / FOLDER / "data_batch_2"
    blob = bytearray(batch.read_bytes())
    blob[-100] ^= 1  # one flipped bit in the image data
    batch.write_bytes(bytes(blob))
    with pytest.raises(ChecksumError) as e:
        load_dataset("cifar10", data_dir=tmp_path, file_md5s=tiny[2], num_training=10,
                     num_validation=2, num_test=2)
    assert "data_batch_2" in str(e.value) and tiny[2]["data_batch_2"] in str(e.value)
    # Against the real md5s (the default), the tiny files are refused too.
    with pytest.raises(ChecksumError, match="c99cafc152244af753f735de768cd75f"):
        load_dataset("cifar10", data_dir=tmp_path, num_training=10, num_validation=2,
                     num_test=2)


def test_truncated_or_foreign_batch_names_the_file(tmp_path, tiny):
    fetch_tiny(tmp_path, tiny)
    batch = tmp_path / FOLDER / "data_batch_4"
    kwargs = dict(data_dir=tmp_path, file_md5s={}, num_training=10, num_validation=2, num_test=2)
    batch.write_bytes(tiny_files()["data_batch_4"][:300])
    with pytest.raises(CorruptDataError, match="data_batch_4 is corrupt or truncated"):
        load_dataset("cifar10", **kwargs)
    batch.write_bytes(pickle.dumps(print, protocol=2))  # a global no batch needs: refused
    with pytest.raises(CorruptDataError, match="data_batch_4 .*unexpected global .*print"):
        load_dataset("cifar10", **kwargs)
    batch.write_bytes(py2_pickle({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(CorruptDataError, match="data_batch_4: data is uint8 \\(2, 10\\)"):
        load_dataset("cifar10", **kwargs)


# --- skipping and resuming downloads ---------------------------------------------------------

def test_existing_valid_archive_skips_download(tmp_path, tiny):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(tiny[0])

    def must_not_download(*args, **kwargs):
        raise AssertionError("download called although a valid archive is present")

    fetch_tiny(tmp_path, tiny, download=must_not_download, keep_archive=True)
    assert (tmp_path / FOLDER / "data_batch_5").is_file()
    assert (tmp_path / "cifar-10-python.tar.gz").is_file()
    # A complete folder: nothing is downloaded or extracted again.
    (tmp_path / "cifar-10-python.tar.gz").unlink()
    fetch_tiny(tmp_path, tiny, download=must_not_download)


def test_stale_archive_is_downloaded_again(tmp_path, tiny):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    calls = []
    fetch_tiny(tmp_path, tiny, download=serve(tiny[0], calls))
    assert len(calls) == 1 and (tmp_path / FOLDER / "test_batch").is_file()


class FakeServer:
    """Stands in for ``urlopen``: serves ``blob``, honouring Range unless told not to, and can
    drop the connection after ``cut`` bytes."""

    def __init__(self, blob, honour_range=True, cut=None, clean_cut=False):
        self.blob, self.honour_range, self.cut, self.requests = blob, honour_range, cut, []
        self.clean_cut = clean_cut

    def __call__(self, request, timeout=None):
        self.requests.append(request.get_header("Range"))
        start = 0
        if request.get_header("Range") and self.honour_range:
            start = int(request.get_header("Range").split("=")[1].rstrip("-"))
            if start >= len(self.blob):
                raise urllib.error.HTTPError(request.full_url, 416, "Range Not Satisfiable",
                                             {}, None)
        return FakeResponse(self.blob, start, self.cut if start == 0 else None,
                            partial=bool(request.get_header("Range")) and self.honour_range,
                            clean_cut=self.clean_cut)


class FakeResponse:
    def __init__(self, blob, start, cut, partial, clean_cut=False):
        self.body = io.BytesIO(blob[start:])
        self.status = 206 if partial else 200
        self.headers = {"Content-Length": str(len(blob) - start)}
        if partial:
            self.headers["Content-Range"] = f"bytes {start}-{len(blob) - 1}/{len(blob)}"
        self.cut, self.clean_cut = cut, clean_cut

    def read(self, n):
        if self.cut is not None and self.body.tell() >= self.cut:
            if self.clean_cut:
                return b""  # the server closes the stream early without an error
            raise ConnectionResetError("connection dropped")
        return self.body.read(n if self.cut is None else min(n, self.cut - self.body.tell()))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_resumes_a_partial_file(tmp_path):
    blob = bytes(range(256)) * 40
    part = tmp_path / "x.part"
    part.write_bytes(blob[:3000])
    server = FakeServer(blob)
    download_file("https://example.invalid/x", part, progress=False, opener=server,
                  chunk_size=1000)
    assert server.requests == ["bytes=3000-"]
    assert part.read_bytes() == blob


@pytest.mark.parametrize("start", [3000, 10240, 20000], ids=["ignored", "complete", "too-long"])
def test_download_restarts_cleanly_when_resume_is_refused(tmp_path, start):
    """A server that ignores Range (200), or a .part at or past the end (416): start over."""
    blob = bytes(range(256)) * 40  # 10240 bytes
    part = tmp_path / "x.part"
    part.write_bytes((blob * 2)[:start])
    server = FakeServer(blob, honour_range=(start != 3000))
    download_file("https://example.invalid/x", part, progress=False, opener=server)
    assert part.read_bytes() == blob
    assert server.requests[0] == f"bytes={start}-"


@pytest.mark.parametrize("clean_cut", [False, True], ids=["reset", "closed-early"])
def test_interrupted_fetch_resumes_on_the_next_run(tmp_path, tiny, clean_cut):
    archive = tiny[0]

    def dropping(url, dest, progress=True):
        download_file(url, dest, progress=progress, chunk_size=256,
                      opener=FakeServer(archive, cut=1000, clean_cut=clean_cut))

    with pytest.raises(ConnectionError, match="again to resume"):
        fetch_tiny(tmp_path, tiny, download=dropping)
    part = tmp_path / "cifar-10-python.tar.gz.part"
    assert part.read_bytes() == archive[:1000] and not (tmp_path / FOLDER).exists()

    server = FakeServer(archive)

    def resuming(url, dest, progress=True):
        download_file(url, dest, progress=progress, opener=server)

    fetch_tiny(tmp_path, tiny, download=resuming)
    assert server.requests == ["bytes=1000-"]
    assert (tmp_path / FOLDER / "batches.meta").is_file() and leftovers(tmp_path) == []


# --- no network, command line ------------------------------------------------------------------

def test_network_is_blocked_and_the_default_download_uses_urlopen(tmp_path):
    """The guard is live, and the default downloader goes through urlopen (so the guard would
    catch any test that forgot to inject a download)."""
    with pytest.raises(NetworkBlocked):
        urllib.request.urlopen("https://www.cs.toronto.edu/")
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("www.cs.toronto.edu", 443))
    with pytest.raises(NetworkBlocked, match="cifar-10-python.tar.gz"):
        fetch_cifar10(tmp_path, progress=False)


def test_command_line_and_get_datasets_script(tmp_path, tiny, monkeypatch, capsys):
    seen = []

    def fake_fetch(root, **kwargs):
        seen.append((root, kwargs))
        return Path(root) / FOLDER

    monkeypatch.setattr("cs231n_lib.data.__main__.fetch_cifar10", fake_fetch)
    assert cli_main(["fetch", "cifar10", "--dir", str(tmp_path), "--no-progress"]) == 0
    assert seen[-1] == (str(tmp_path), {"keep_archive": False, "progress": False})
    assert f"CIFAR-10 is ready in {tmp_path / FOLDER}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["fetch", "mnist"])

    monkeypatch.setattr("sys.argv", ["get_datasets.py", "--dir", str(tmp_path)])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(ROOT / "datasets" / "get_datasets.py"), run_name="__main__")
    assert e.value.code == 0 and seen[-1][0] == str(tmp_path)
