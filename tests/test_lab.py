"""``cs231n-course lab``: JupyterLab for students on the student edition of the library.

The end-to-end test starts the real server on the released fixture course, talks to its REST and
kernel websocket API and checks: our kernel is the only and default one, a kernel started by the
server imports the student edition (stubs raise NotImplementedError), nbgrader's instructor
interface is off, and the log has no nbgrader course-directory warning."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from cs231n_grading import lab
from cs231n_grading.config import load_config
from cs231n_grading.release import release

FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"
LINE = re.compile(r"JupyterLab: (http://127\.0\.0\.1:(\d+))/lab\?token=(\w+)  folder: (.+?)  "
                  r"kernel: student edition of cs231n_lib \((.+?)\)(?=\s|$)", re.M)
# Runs `cs231n-course lab` through cs231n_grading.lab's own parser and run() (cli.py wires the
# same two).
LAUNCH = """
import argparse, sys
from cs231n_grading import lab
from cs231n_grading.config import load_config
p = argparse.ArgumentParser()
lab.add_parser(p.add_subparsers(dest="command"))
args = p.parse_args(sys.argv[3:])
sys.exit(lab.run(load_config(sys.argv[1], course_dir=sys.argv[2], sandbox=False), args))
"""
PROBE = """
import json, cs231n_lib, cs231n_lib.layers as layers, fixturelib.ops as ops
def stub(f, *a):
    try:
        f(*a)
    except NotImplementedError:
        return "NotImplementedError"
    return "ran"
print(json.dumps({"lib": cs231n_lib.__file__, "layers": layers.__file__, "ops": ops.__file__,
                  "conv": stub(layers.conv_forward_naive, None, None, None, {}),
                  "relu": stub(ops.relu, 1.0)}))
"""


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    lab.add_parser(p.add_subparsers(dest="command"))
    return p.parse_args(["lab", *argv])


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The fixture course with 01_basics released (notebook + student library)."""
    course_dir = tmp_path_factory.mktemp("lab") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course_dir, sandbox=False)
    release(cfg, [A], log=lambda *_: None)
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def _post(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"token {token}",
                                              "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_for_line(log: Path, proc: subprocess.Popen, timeout: float = 60) -> re.Match:
    """The lab's "JupyterLab: URL  folder: ...  kernel: ..." line, once the server is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = LINE.search(log.read_text(errors="replace"))
        if found:
            return found
        assert proc.poll() is None, f"lab exited with {proc.returncode}:\n{log.read_text()}"
        time.sleep(0.25)
    raise AssertionError(f"no URL line within {timeout} s:\n{log.read_text()}")


async def _execute(base: str, token: str, kernel_id: str, code: str, timeout: float = 30) -> str:
    """Run ``code`` in a kernel of the server over its websocket; returns its stdout."""
    from tornado.websocket import websocket_connect

    ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?token={token}"
    ws = await websocket_connect(ws_url)
    msg_id = uuid.uuid4().hex
    ws.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    out = []
    try:
        while True:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), timeout))
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
    finally:
        ws.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the lab command (it stops its server), then the whole group as a backstop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.slow
def test_lab_serves_the_release_with_the_student_library(course, tmp_path):
    cfg = course
    port, log, scratch = _free_port(), tmp_path / "lab.log", tmp_path / "tmp"
    library = cfg.student_library_dir.resolve()
    scratch.mkdir()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, str(cfg.config_file), str(cfg.course_dir), "lab",
             "--no-browser", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=tmp_path, env={**os.environ, "TMPDIR": str(scratch)})
    try:
        line = _wait_for_line(log, proc)
        base, token = line[1], line[3]
        assert int(line[2]) == port
        assert Path(line[4]) == (cfg.course_dir / "release").resolve()
        assert Path(line[5]) == library / "cs231n_lib"

        status, body = _get(f"{base}/api/kernelspecs", token)
        specs = json.loads(body)
        assert status == 200 and specs["default"] == "python3"
        assert list(specs["kernelspecs"]) == ["python3"]  # the only kernel offered
        spec = specs["kernelspecs"]["python3"]["spec"]
        assert spec["display_name"] == lab.KERNEL_DISPLAY_NAME
        assert spec["env"]["PYTHONPATH"] == str(library)

        kernel = _post(f"{base}/api/kernels", token, {"name": "python3"})
        got = json.loads(asyncio.run(_execute(base, token, kernel["id"], PROBE)))
        for key in ("lib", "layers", "ops"):  # not the editable install's reference library
            assert Path(got[key]).resolve().is_relative_to(library), got
        assert got["conv"] == got["relu"] == "NotImplementedError"

        # nbgrader's instructor interface: no formgrader page, no nbgrader plugins in the lab
        assert _get(f"{base}/formgrader", token)[0] == 404
        status, page = _get(f"{base}/lab", token)
        config = re.search(rb'id="jupyter-config-data"[^>]*>(.*?)</script>', page, re.S)
        assert status == 200 and config, page[:500]
        assert lab.NBGRADER_LAB_EXTENSION in json.loads(config[1])["disabledExtensions"]
    finally:
        _stop(proc)
    text = log.read_text(errors="replace")
    assert "nbgrader_config.py" not in text and "nbgrader.server_extensions" not in text, text
    with pytest.raises(OSError):  # the server went down with the command
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert proc.returncode == 128 + signal.SIGTERM  # stopped cleanly, not by the backstop
    assert not [p.name for p in scratch.glob("cs231n-lab-*")]  # private config removed


def test_missing_release_or_library_says_what_to_do(course, tmp_path):
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=tmp_path / "none")
    with pytest.raises(ValueError, match=r"no notebook folder .*run `make demo` or "
                                         r"`cs231n-course release` first"):
        lab.notebook_folder(cfg, None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no notebooks"):
        lab.notebook_folder(cfg, tmp_path / "empty")
    notebook = course.course_dir / "release" / A / f"{A}.ipynb"
    assert lab.notebook_folder(cfg, notebook) == notebook.parent.resolve()  # a notebook: its folder
    with pytest.raises(ValueError, match=r"no student edition of cs231n_lib, fixturelib .*"
                                         r"--library DIR"):
        lab.student_library(cfg, None)
    assert lab.student_library(cfg, course.student_library_dir) == \
        course.student_library_dir.resolve()


def test_a_package_beside_the_notebooks_cannot_shadow_the_student_library(course, tmp_path):
    library = course.student_library_dir.resolve()
    env = {**os.environ, **lab.kernel_env(course, library)}
    part = tmp_path / "01_basics"
    part.mkdir()
    (part / "01_basics.ipynb").write_text("{}")
    lab.check_kernel_imports(course, library, env, tmp_path)  # clean folders: fine
    (part / "fixturelib").mkdir()
    (part / "fixturelib" / "__init__.py").write_text("")
    with pytest.raises(RuntimeError, match=r"kernel in .*01_basics would import fixturelib "
                                           r"from .*not from the student edition"):
        lab.check_kernel_imports(course, library, env, tmp_path)


def test_without_the_student_path_the_reference_library_is_found(course, tmp_path):
    """The check is not vacuous: this interpreter's editable install finds the reference."""
    library = course.student_library_dir.resolve()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with pytest.raises(RuntimeError, match="would import cs231n_lib from"):
        lab.check_kernel_imports(course, library, env, tmp_path)


@pytest.mark.slow
def test_a_busy_port_is_reported(course):
    """With --port taken the server cannot start: a clear message and exit code 1, no hang."""
    lines = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = lab.run(course, _args("--no-browser", "--port", str(port)), log=lines.append)
    assert code == 1
    assert lines == [f"JupyterLab did not start on port {port} (see its messages above); "
                     "try another --port"]
