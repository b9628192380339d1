"""A class of hostile submissions graded through the real, sandboxed ``autograde``.

Fixture course tests/fixtures/course_small, assignment 01_basics (3 points: test_relu 2, test_add
1, cell timeout 3 s). Every submission starts from the correct solution and changes one thing.

- Probes attempt one escape inside ``relu``; their ``relu`` is correct only if the attempt fails
  (raises), and deliberately wrong if it succeeds. So each probe scores 3 exactly when the
  sandbox holds, and a leak shows up as a lost test with the student's name on it.
- Disruptors attack the grading run itself (kill things, exhaust resources, rewrite later cells,
  forge records). Their expected score is what their honest part earns, never more.
- Honest students are graded before, among and after them and must keep full marks.

After the run: every notebook has an explicit status, the grader and the other students are
unharmed, the host is untouched (no file written, no connection received, gradebook and source
intact) and no sandbox process is left.
"""

import hashlib
import os
import secrets
import socket
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell
from sandbox_procs import running_with_uid

from grading.autograde import autograde
from grading.config import load_config
from grading.release import release
from grading.restore import nbg
from grading.samples import fill
from grading.sandbox import UID_BASE, sandbox_available

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"
SOURCE = FIXTURE / "assignments" / A / f"{A}.ipynb"
REPO = Path(__file__).resolve().parents[1]
HOST_MARK = Path.home() / ".cs231n-hostile-corpus-was-here"  # the /tmp inside is private


def probe(attack: str) -> str:
    """relu_impl source: correct iff ``attack`` (one expression or statement) raises."""
    return ("import numpy as np\n\n"
            "def relu(x):\n"
            "    try:\n"
            f"        {attack}\n"
            "    except Exception:\n"
            "        return np.maximum(0, x)\n"
            "    return -np.abs(x)  # the attack worked: wrong on purpose\n")


def _probes(course_dir: Path, port: int) -> dict:
    """student -> relu_impl source; ``course_dir`` and ``port`` are the host's secrets."""
    return {
        "p_source": probe(f"open({str(SOURCE)!r}).read()"),
        "p_gradebook": probe(f"open({str(course_dir / 'gradebook.db')!r}, 'rb').read()"),
        "p_other_student": probe(
            f"open({str(course_dir / 'submitted' / 'honest_a' / A / f'{A}.ipynb')!r}).read()"),
        "p_autograded": probe(f"__import__('os').listdir({str(course_dir / 'autograded')!r})"),
        "p_reference_lib": probe(
            "__import__('importlib.util').util.spec_from_file_location("
            f"'ref', {str(FIXTURE / 'fixturelib' / 'ops.py')!r}).loader.load_module()"),
        "p_repo": probe(f"__import__('os').listdir({str(REPO / 'grading')!r})"),
        "p_write_host": probe(f"open({str(HOST_MARK)!r}, 'w').write('x')"),
        "p_write_course": probe(f"open({str(course_dir / 'pwned.txt')!r}, 'w').write('x')"),
        "p_write_library": probe(
            "open(__import__('fixturelib').__file__, 'a').write('\\nrelu = lambda x: x\\n')"),
        "p_network_host": probe(
            f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=1)"),
        "p_network_out": probe(
            "__import__('socket').create_connection(('8.8.8.8', 53), timeout=1)"),
        "p_dns": probe("__import__('socket').getaddrinfo('pypi.org', 443)"),
        "p_host_processes": probe(
            "[p for p in __import__('os').listdir('/proc') if p.isdigit()][20]"),
        "p_host_paths": probe(
            "[p for p in __import__('os').listdir('/proc') if p.isdigit() and b'pytest-of' in "
            "open(f'/proc/{p}/cmdline', 'rb').read()][0]"),
        "p_symlink": probe("open('gradebook_link').read()"),
        "p_setuid": probe("__import__('os').setuid(0)"),
    }


DISRUPTORS = {
    # student: (cell to replace, its source, expected score)
    "d_exit": ("relu_impl", "import os\nos._exit(1)", 1),
    "d_kill_all": ("relu_impl", "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\n"
                   "except OSError:  # nothing but the kernel itself is in reach\n    pass\n\n"
                   "def relu(x):\n    return np.maximum(0, x)", 3),
    "d_kill_group": ("relu_impl", "import os, signal\nos.killpg(0, signal.SIGKILL)", 1),
    "d_kill_parent": ("relu_impl", "import os, signal\ntry:\n    os.kill(os.getppid(), 9)\n"
                      "except OSError:\n    pass\n\ndef relu(x):\n    return np.maximum(0, x)", 3),
    "d_memory_bomb": ("relu_impl", "def relu(x):\n    junk = bytearray(64 * 1024**3)\n"
                      "    return np.maximum(0, x)", 1),
    "d_fork_bomb": ("relu_impl", "import subprocess, sys\nsubprocess.Popen([sys.executable, "
                    "'-c', 'import os, time\\nwhile True:\\n    try: os.fork()\\n    except "
                    "OSError: time.sleep(0.2)'])\n\ndef relu(x):\n    return np.maximum(0, x)",
                    3),  # the bomb holds every process the uid may have; the kernel still runs
    "d_loop": ("add_impl", "def add(a, b):\n    while True:\n        pass", 2),
    "d_loop_no_sigint": ("relu_impl", "import signal\nsignal.signal(signal.SIGINT, "
                         "signal.SIG_IGN)\n\ndef relu(x):\n    while True:\n        pass", 1),
    "d_sleep": ("relu_impl", "import time\ntime.sleep(10**6)", 1),
    "d_disk_fill": ("relu_impl", "i = 0\ntry:\n    while True:\n        open(f'fill{i}', 'wb')"
                    ".write(b'x' * 2**24)\n        i += 1\nexcept OSError:\n    pass\n\n"
                    "def relu(x):\n    return np.maximum(0, x)", 3),
    "d_huge_output": ("relu_impl", "print('x' * 200_000_000)\n\ndef relu(x):\n"
                      "    return np.maximum(0, x)", 1),
    "d_output_flood": ("relu_impl", "for _ in range(400):\n    print('y' * 10_000)\n\n"
                       "def relu(x):\n    return np.maximum(0, x)", 3),
    "d_env": ("relu_impl", "import os\nprint(sorted(os.environ))\nprint(os.environ['"
              "HOSTILE_CORPUS_RUN'])\n\ndef relu(x):\n    return np.maximum(0, x)", 3),
    "d_stderr": ("relu_impl", "import sys, warnings\nwarnings.warn('noise')\n"
                 "print('noise', file=sys.stderr)\n\ndef relu(x):\n    return np.maximum(0, x)",
                 3),
    "d_eq_true": ("relu_impl", "class Anything(np.ndarray):\n    def __eq__(self, other):\n"
                  "        return True\n\ndef relu(x):\n    return np.zeros_like(x).view(Anything)",
                  1),
    "d_no_record": ("relu_impl", "record = lambda *args, **kwargs: None\n\ndef relu(x):\n"
                    "    return x", 0),
    "d_blank_cells": ("relu_impl", "get_ipython().input_transformers_cleanup.append("
                      "lambda lines: ['pass\\n'])", 0),
    "d_forge_records": ("relu_impl", "from IPython.display import display\n\ndef relu(x):\n"
                        "    display({'application/vnd.cs231n.record+json': {'id': 'relu_small',"
                        " 'kind': 'close', 'value': [0.0, 0.0, 2.5]}}, raw=True)\n"
                        "    return x", 1),
    "d_fake_score": ("relu_impl", "get_ipython().events.register('post_run_cell', "
                     "lambda result: display(100.0))\n\ndef relu(x):\n    return x", 1),
    "d_patch_numpy": ("relu_impl", "import numpy.testing\nnumpy.testing.assert_allclose = "
                      "lambda *a, **k: None\nnp.allclose = lambda *a, **k: True\n\n"
                      "def relu(x):\n    return x", 1),
}
HONEST = ("honest_a", "honest_m", "honest_z")  # sorted before, among and after the others


RUN_TOKEN = f"HOSTILE_CORPUS_RUN={secrets.token_hex(8)}"  # in this run's kernel environments


def _environ(pid) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def _sandbox_processes() -> list[int]:
    """Host pids of running sandbox processes from this run (other runs may be going on)."""
    return [pid for pid in running_with_uid(lambda uid: uid >= UID_BASE)
            if RUN_TOKEN.encode() in _environ(pid)]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    ok, why = sandbox_available()
    assert ok, why  # this corpus is about the sandbox: no bubblewrap is a failure, not a skip
    HOST_MARK.unlink(missing_ok=True)
    course_dir = tmp_path_factory.mktemp("hostile") / "course"
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course_dir, sandbox=True)
    cfg.env = {**cfg.env, **dict([RUN_TOKEN.split("=")])}
    release(cfg, [A], log=lambda *_: None)
    correct = fill(nbformat.read(course_dir / "release" / A / f"{A}.ipynb", 4),
                   nbformat.read(SOURCE, 4))
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()

    def submit(student, edit=None):
        nb = nbformat.from_dict(correct)
        if edit:
            edit(nb)
        folder = course_dir / "submitted" / student / A
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{A}.ipynb")
        return folder

    def replace(grade_id, source):
        def edit(nb):
            next(c for c in nb.cells if nbg(c).get("grade_id") == grade_id).source = source
        return edit

    for student in HONEST:
        submit(student)
    for student, source in _probes(course_dir, server.getsockname()[1]).items():
        folder = submit(student, replace("relu_impl", source))
        (folder / "gradebook_link").symlink_to(course_dir / "gradebook.db")
    for student, (grade_id, source, _) in DISRUPTORS.items():
        submit(student, replace(grade_id, source))
    fake = new_code_cell("print('free points')", metadata={"nbgrader": {
        "schema_version": 3, "grade": True, "solution": False, "locked": True,
        "grade_id": "bonus", "points": 100}})
    submit("d_fake_cell", lambda nb: nb.cells.insert(2, fake))

    source_hash = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    started = time.monotonic()
    os.environ["GRADER_ONLY_SECRET"] = "s3cret"  # the workers inherit it; kernels must not
    try:
        results = autograde(cfg, A, jobs=2, log=lambda *_: None)
    finally:
        del os.environ["GRADER_ONLY_SECRET"]
    elapsed = time.monotonic() - started
    server.close()
    return {"cfg": cfg, "results": {r["student"]: r for r in results}, "accepted": accepted,
            "source_hash": source_hash, "elapsed": elapsed}


def test_corpus_is_large_enough():
    assert len(_probes(Path("/x"), 1)) + len(DISRUPTORS) + 1 >= 25


def test_every_notebook_has_an_explicit_status(graded):
    results = graded["results"]
    expected = set(HONEST) | set(_probes(Path("/x"), 1)) | set(DISRUPTORS) | {"d_fake_cell"}
    assert set(results) == expected
    for student, r in results.items():
        assert r["status"] == "graded" or r["status"].startswith("not graded: "), (student, r)
        assert r["max_score"] == 3, student


def test_honest_students_keep_full_marks(graded):
    for student in HONEST:
        assert graded["results"][student]["score"] == 3, graded["results"][student]


@pytest.mark.parametrize("student", sorted(_probes(Path("/x"), 1)))
def test_probe_finds_the_sandbox_closed(graded, student):
    r = graded["results"][student]
    assert r["status"] == "graded" and r["score"] == 3, (r["status"], r["tests"])


@pytest.mark.parametrize("student", sorted(DISRUPTORS))
def test_disruptor_earns_only_its_honest_part(graded, student):
    r = graded["results"][student]
    assert r["status"] == "graded", r["status"]
    assert r["score"] == DISRUPTORS[student][2], (r["tests"], r["notes"])


def test_fake_graded_cell_earns_nothing(graded):
    r = graded["results"]["d_fake_cell"]
    assert r["score"] == 3 and r["max_score"] == 3
    assert any("bonus" in note for note in r["notes"])


def test_host_is_untouched(graded):
    cfg = graded["cfg"]
    assert not HOST_MARK.exists()
    assert not (cfg.course_dir / "pwned.txt").exists()
    assert graded["accepted"] == []  # the host's listening socket never saw a connection
    assert hashlib.sha256(SOURCE.read_bytes()).hexdigest() == graded["source_hash"]
    lib = (cfg.student_library_dir / "fixturelib" / "__init__.py").read_text()
    assert "relu = lambda" not in lib
    from nbgrader.api import Gradebook
    with Gradebook(cfg.gradebook_url) as gb:
        assert gb.find_submission_notebook(A, A, "honest_a").score == 3


def test_no_sandbox_process_survives_the_run(graded):
    assert graded["results"]["d_fork_bomb"]["status"] == "graded"  # a bomb went off in this run
    env = nbformat.read(graded["cfg"].course_dir / "autograded" / "d_env" / A / f"{A}.ipynb", 4)
    printed = "".join(o.get("text", "") for c in env.cells if c.cell_type == "code"
                      for o in c.outputs)
    assert RUN_TOKEN.split("=")[1] in printed  # so the search below can find this run's processes
    assert "PATH" in printed and "GRADER_ONLY_SECRET" not in printed  # the grader's env stays out
    deadline = time.monotonic() + 10
    while _sandbox_processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sandbox_processes() == []


