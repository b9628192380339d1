"""Start-up of the grading commands (cs231n_grading.startup): deferred third-party imports, the
worker fork server started before the course config loads, workers that never import nbgrader.

No timing here (bench/grading.py shows the speed): each test checks what the speed comes from,
and that the behaviour is the same as without it."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from cs231n_grading import cli, startup
from cs231n_grading.safe_files import RefusedFile
from cs231n_grading.timestamps import read_timestamp, refuse_linked_timestamp

HAS_RFC3987_SYNTAX = importlib.util.find_spec("rfc3987_syntax") is not None
IRIS = ["http://例え.jp/パス?q=1#f", "https://example.org/a b", "http://[bad", "no scheme",
        "relative/ref", "", "mailto:ünï@example.org"]


def run_python(code: str, *, path: Path | None = None) -> str:
    """stdout of ``code`` run by a fresh interpreter (``path`` first on sys.path)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    return out.stdout


# ----------------------------------------------------------------------------- deferred imports

@pytest.mark.skipif(not HAS_RFC3987_SYNTAX, reason="rfc3987_syntax is not installed")
def test_importing_the_grader_then_nbformat_compiles_no_iri_parser():
    """The ~40 Lark parsers of rfc3987_syntax are not built by importing nbformat (jsonschema)
    once cs231n_grading is imported; without the stand-in they are."""
    code = """
        import sys
        {first}
        import nbformat
        print("rfc3987_syntax.syntax_helpers" in sys.modules, "lark" in sys.modules)
    """
    assert run_python(code.format(first="import cs231n_grading")).split() == ["False", "False"]
    assert run_python(code.format(first="")).split() == ["True", "True"]


@pytest.mark.skipif(not HAS_RFC3987_SYNTAX, reason="rfc3987_syntax is not installed")
def test_deferred_iri_checks_answer_as_the_real_ones():
    """jsonschema's iri and iri-reference format checks give the same answers with the stand-in
    (which then loads the real package) as without it."""
    code = f"""
        import json, sys
        {{first}}
        from jsonschema import FormatChecker
        fc = FormatChecker()
        answers = [[fc.conforms(v, f) for v in {IRIS!r}] for f in ("iri", "iri-reference")]
        import rfc3987_syntax
        print(json.dumps([answers, "rfc3987_syntax.syntax_helpers" in sys.modules,
                          rfc3987_syntax.RFC3987_SYNTAX_TERMS[0]]))
    """
    deferred = json.loads(run_python(code.format(first="import cs231n_grading")))
    real = json.loads(run_python(code.format(first="")))
    assert deferred == real
    assert deferred[1] is True  # the check loaded the real parsers
    assert {True, False} <= set(deferred[0][0])  # the checks ran: some values pass, some fail


FAKE_INIT = """
import os
RUNS = int(os.environ.get("FAKE_RUNS", "0")) + 1
os.environ["FAKE_RUNS"] = str(RUNS)
if os.environ.get("FAKE_FAIL") == "1":
    raise RuntimeError("init failed")
from .helpers import *
"""
FAKE_HELPERS = """
CONSTANT = 42

def double(x):
    return 2 * x
"""


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """An importable package ``cs231n_fake_pkg`` whose __init__ counts its runs in
    $FAKE_RUNS and fails while $FAKE_FAIL is 1; removed from sys.modules afterwards."""
    pkg = tmp_path / "cs231n_fake_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(FAKE_INIT)
    (pkg / "helpers.py").write_text(FAKE_HELPERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FAKE_RUNS", "0")
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    for name in ("cs231n_fake_pkg", "cs231n_fake_pkg.helpers"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield "cs231n_fake_pkg"
    for name in ("cs231n_fake_pkg", "cs231n_fake_pkg.helpers"):
        sys.modules.pop(name, None)


def test_deferred_package_runs_its_code_once_on_first_use(fake_package):
    assert startup.defer_import(fake_package, ("double",))
    double = importlib.import_module(fake_package).double  # the stand-in: nothing has run

    assert os.environ["FAKE_RUNS"] == "0"
    assert double(21) == 42
    assert os.environ["FAKE_RUNS"] == "1"
    pkg = sys.modules[fake_package]
    assert pkg.CONSTANT == 42 and pkg.double is not double  # the real objects now
    assert double(2) == 4 and os.environ["FAKE_RUNS"] == "1"
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        pkg.missing  # noqa: B018


def test_deferred_package_loads_on_any_other_attribute(fake_package):
    assert startup.defer_import(fake_package, ("double",))
    fake = importlib.import_module(fake_package)

    assert fake.CONSTANT == 42 and os.environ["FAKE_RUNS"] == "1"


def test_deferred_package_that_fails_raises_and_tries_again(fake_package, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    assert startup.defer_import(fake_package, ("double",))
    double = importlib.import_module(fake_package).double

    with pytest.raises(RuntimeError, match="init failed"):
        double(1)
    monkeypatch.setenv("FAKE_FAIL", "0")
    assert double(1) == 2  # the next use runs the package's code again, as a re-import would


def test_defer_import_leaves_imported_and_missing_packages_alone(fake_package):
    modules = {fake_package: "already there"}
    assert not startup.defer_import(fake_package, ("double",), modules)
    assert modules == {fake_package: "already there"}
    assert not startup.defer_import("cs231n_no_such_package", ("f",), {})


# ----------------------------------------------------------------------------- worker processes

def test_workers_never_import_nbgrader():
    """The fork server's modules (every worker's) leave nbgrader, its database layer and the
    IRI parsers out: a worker only checks that timestamp.txt is no link, it parses no date."""
    out = run_python(f"""
        import sys
        for m in {startup.WORKER_MODULES!r}:
            __import__(m)
        print(sorted({{m.split(".")[0] for m in sys.modules}}
                     & {{"nbgrader", "sqlalchemy", "alembic", "lark"}}))
    """)
    assert out.strip() == "[]"


@pytest.mark.parametrize("content", [b"2026-01-02 03:04:05 UTC", b"not a date", b"\xff\xfe",
                                     b"2026-01-02 03:04:05 /etc/passwd", b"", b"x" * 5000])
def test_refuse_linked_timestamp_accepts_every_regular_file(tmp_path, content):
    """Whatever a regular timestamp.txt says, the worker's check passes (the parent judges
    the date): read_timestamp gives a value or a problem, never an exception."""
    folder = tmp_path / "alice" / "A"
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_bytes(content)
    refuse_linked_timestamp(tmp_path, "alice/A")
    read_timestamp(tmp_path, "alice/A")
    refuse_linked_timestamp(tmp_path, "bob/A")  # missing: fine too


@pytest.mark.parametrize("kind", ["link", "dir", "fifo", "linked folder"])
def test_refuse_linked_timestamp_refuses_as_read_timestamp_does(tmp_path, kind):
    secret = tmp_path / "secret.txt"
    secret.write_text("2026-01-02 03:04:05 UTC")
    folder = tmp_path / "sub" / "alice" / "A"
    folder.mkdir(parents=True)
    stamp = folder / "timestamp.txt"
    rel = "alice/A"
    if kind == "link":
        stamp.symlink_to(secret)
    elif kind == "dir":
        stamp.mkdir()
    elif kind == "fifo":
        os.mkfifo(stamp)
    else:
        (tmp_path / "sub" / "bob").symlink_to(folder.parent, target_is_directory=True)
        rel = "bob/A"
    for check in (read_timestamp, refuse_linked_timestamp):
        with pytest.raises(RefusedFile):
            check(tmp_path / "sub", rel)


FORK_SERVER_SCRIPT = """
import sys
from concurrent.futures import ProcessPoolExecutor

from cs231n_grading.startup import WORKER_MODULES, start_worker_server, worker_context


def loaded(_):
    return [m for m in WORKER_MODULES if m in sys.modules]


if __name__ == "__main__":
    assert "cs231n_grading.worker" not in sys.modules
    print(start_worker_server())
    with ProcessPoolExecutor(1, mp_context=worker_context()) as pool:
        print(pool.submit(loaded, 0).result() == WORKER_MODULES)
"""


def test_fork_server_preloads_the_worker_modules(tmp_path):
    """Workers forked by start_worker_server's fork server find WORKER_MODULES imported."""
    script = tmp_path / "pool.py"
    script.write_text(FORK_SERVER_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], check=True, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path).stdout
    assert out.split() == ["True", "True"]


def test_a_fork_server_that_cannot_start_early_is_left_to_the_first_pool(monkeypatch):
    from multiprocessing import forkserver

    def refuse():
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(forkserver, "ensure_running", refuse)
    assert startup.start_worker_server() is False


# ----------------------------------------------------------------------------- the command line

class _Stop(ValueError):
    """Raised by the fake load_config: the test has seen what it wanted."""


def _config_stops(calls: list):
    """A load_config noting "config" in ``calls``, then failing (main returns 2)."""
    def load_config(*args, **kwargs):
        calls.append("config")
        raise _Stop("stop here")

    return load_config


@pytest.mark.parametrize("argv, starts", [
    (["autograde"], True),
    (["autograde", "01_x", "--jobs", "2", "--force"], True),
    (["verify"], True),
    (["autograde", "--scheduler", "local:2"], False),
    (["export"], False),
    (["release"], False),
    (["feedback"], False),
])
def test_local_grading_starts_the_fork_server_before_loading_the_config(monkeypatch, argv,
                                                                          starts):
    calls = []
    monkeypatch.setattr(cli, "start_worker_server", lambda: calls.append("fork server"))
    monkeypatch.setattr(cli, "load_config", _config_stops(calls))
    assert cli.main(argv) == 2  # the fake config's error
    assert calls == (["fork server", "config"] if starts else ["config"])


def test_the_program_skips_the_exit_collection_and_a_caller_keeps_it(monkeypatch):
    """``main()`` run as the program (no argv) freezes what it built for a fast exit, even
    when the command fails; ``main(argv)`` called by other code (tests) leaves the gc alone."""
    calls = []
    monkeypatch.setattr(cli, "skip_exit_collection", lambda: calls.append("freeze"))
    monkeypatch.setattr(cli, "load_config", _config_stops(calls))
    monkeypatch.setattr(sys, "argv", ["cs231n-course", "export"])
    assert cli.main() == 2 and calls == ["config", "freeze"]
    assert cli.main(["export"]) == 2 and calls == ["config", "freeze", "config"]


def test_skip_exit_collection_freezes_the_live_objects():
    import gc

    before = gc.get_freeze_count()
    try:
        startup.skip_exit_collection()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


# ----------------------------------------------------------------------------- the gradebook

def test_gradebook_opens_with_the_first_result_and_a_broken_one_stops_the_run(tmp_path,
                                                                               monkeypatch):
    """autograde's saver opens nbgrader's gradebook when the first result arrives (not on the
    way to the first notebook); one that cannot be opened raises there, nothing stored."""
    from cs231n_grading import autograde
    from cs231n_grading.status import StatusStore

    opened = []

    def cannot_open(url):
        opened.append(url)
        raise OSError(f"unable to open database file {url}")

    monkeypatch.setattr(autograde, "open_gradebook", cannot_open)
    store = StatusStore(tmp_path)
    task = SimpleNamespace(student="alice", assignment="01_a", notebook="01_a", key="k",
                           submission=tmp_path / "submitted" / "alice" / "01_a" / "01_a.ipynb")
    save = autograde._Saver(store, "sqlite:///nowhere/gradebook.db", [task], print)
    assert opened == [] and save.gb is None
    with pytest.raises(OSError, match="unable to open database file"):
        save(0, {"status": "graded", "notes": [], "tests": []})
    assert opened == ["sqlite:///nowhere/gradebook.db"]
    assert store.get("alice", "01_a", "01_a") is None and save.saved == {}
    save.close()
    store.close()


# ----------------------------------------------------------------------------- bench/grading.py

@pytest.fixture(scope="module")
def bench():
    """bench/grading.py as a module (bench/ is not a package)."""
    path = Path(__file__).resolve().parents[1] / "bench" / "grading.py"
    spec = importlib.util.spec_from_file_location("bench_grading_startup", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_fixed_costs_come_from_the_first_start_and_the_last_end(bench, tmp_path):
    """The benchmark's start-up and tail: command start to first notebook start, last
    notebook end to command exit; ours from grading_status.db rows of this run only."""
    from cs231n_grading.status import StatusStore

    for g, events in (("g0", [("pre", 105.0), ("post", 108.0), ("pre", 108.5)]),
                      ("g1", [("pre", 103.0), ("post", 109.0)]), ("g2", [])):
        (tmp_path / g).mkdir()
        (tmp_path / g / "hooks.jsonl").write_text("".join(
            json.dumps({"event": e, "t": t, "notebooks": ["x"]}) + "\n" for e, t in events))
    assert bench.nbgrader_window([tmp_path / g for g in ("g0", "g1", "g2")]) == (103.0, 109.0)
    assert bench.nbgrader_window([tmp_path / "g2"]) is None
    run = {"wall_s": 12.0, "started": 100.0, "ended": 112.0, "core_s": 20.0,
           "core_s_rusage": 20.0, "core_source": "rusage", "returncodes": [0]}
    out = bench.figures(run, {}, {}, lambda s: None, (103.0, 109.0))
    assert out["startup_s"] == 3.0 and out["tail_s"] == 3.0
    assert bench.figures(run, {}, {}, lambda s: None)["startup_s"] is None

    store = StatusStore(tmp_path)
    rows = [("old", 50.0, 2.0), ("a", 104.0, 3.0), ("b", 110.0, 4.0)]  # (student, saved, s)
    for student, saved, duration in rows:
        store.db.execute("INSERT INTO results (student, assignment, notebook, status, duration,"
                         " graded_at) VALUES (?, 'A', 'A', 'graded', ?, ?)",
                         (student, duration, saved))
    store.db.commit()
    store.close()
    cfg = SimpleNamespace(course_dir=tmp_path)
    assert bench.our_window(cfg, 100.0) == (101.0, 110.0)
    assert bench.our_window(cfg, 200.0) is None
