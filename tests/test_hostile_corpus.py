"""A class of hostile submissions graded through the real, sandboxed ``autograde``.

Fixture course tests/fixtures/course_small, assignment 01_basics (3 points: test_relu 2, test_add
1, cell timeout 3 s). Every submission starts from the correct solution and changes one thing.

- Probes attempt one escape inside ``relu``; their ``relu`` is correct only if the attempt fails
  (raises), and deliberately wrong if it succeeds. So each probe scores 3 exactly when the
  sandbox holds, and a leak shows up as a lost test with the student's name on it.
- Disruptors attack the grading run itself (kill things, exhaust resources, rewrite or blank
  later cells with input transformers and pre/post_run_cell hooks, patch numpy or builtins,
  forge records). Their expected score is what their honest part earns, never more.
- Tamperers edit the notebook's structure (test cells edited, deleted, reordered, duplicated,
  turned into markdown, re-flagged, their points raised; outputs forged in the file). The grader
  restores the instructor's cells, notes the tampering, and grades what the student solved.
- Malformed submissions (corrupt or absurdly nested JSON, not a notebook, no notebook, one over
  the size cap, bytes that are not UTF-8, lone surrogate escapes) get a ``not graded: <reason>``
  status and are flagged in the gradebook; a large notebook under the cap is graded.
- Honest students (correct, correct with warnings, partially correct, untouched) are graded
  before, among and after them and must get exactly their due, with no tampering noted.

- Issue 13's attacks (tests/hostile_issue13.py; some on 02_loops, graded in the same run): forged
  records (a hook swapping the student's value for the test's expected one, with stub answers,
  plainly and written to evade a naive AST check), symlinks in submitted/, pathological records,
  a bad timestamp.txt, output amplification through display updates, hidden tests printed in
  many encodings, student HTML and JavaScript, tracing switched off around a forbidden call.
  Each earns no unearned point; feedback pages carry no hidden-test line and no executable
  student HTML; honest solutions in several styles get full marks.

After the run: every notebook has an explicit status (in the results and the status store), the
grader and the other students are unharmed, the host is untouched (no file written, no connection
received, source intact), the gradebook opens, passes SQLite's integrity check and holds exactly
the corpus with the scores of the results, and no sandbox process is left.
"""

import copy
import hashlib
import json
import os
import secrets
import socket
import sqlite3
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from hostile_issue13 import (
    CASES,
    HTML_MARK,
    POINTS,
    STAMP,
    L,
    executable_html,
    expected_value_problems,
    hidden_lines,
    leaked,
    write_submission,
)
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from sandbox_procs import running_with_uid

from cs231n_grading.autograde import autograde
from cs231n_grading.config import load_config
from cs231n_grading.feedback import feedback
from cs231n_grading.release import release
from cs231n_grading.restore import nbg
from cs231n_grading.samples import KINDS, fill
from cs231n_grading.sandbox import UID_BASE, sandbox_available
from cs231n_grading.status import StatusStore
from cs231n_lib.checks import RECORD_MIME, encode_value

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
A = "01_basics"
SOURCE = FIXTURE / "assignments" / A / f"{A}.ipynb"
SOURCES = {a: FIXTURE / "assignments" / a / f"{a}.ipynb" for a in (A, L)}
REPO = Path(__file__).resolve().parents[1]
HOST_MARK = Path.home() / ".cs231n-hostile-corpus-was-here"  # the /tmp inside is private


def probe(attack: str) -> str:
    """relu_impl source: correct iff ``attack`` (one expression or statement) raises.

    Probes test the sandbox, so they keep to what the grader's source rules allow (plain
    imports; a notebook path is not spelled as one string).
    """
    return ("import os\nimport pkgutil\nimport socket\n\nimport numpy as np\n\n"
            "def relu(x):\n"
            "    try:\n"
            f"        {attack}\n"
            "    except Exception:\n"
            "        return np.maximum(0, x)\n"
            "    return -np.abs(x)  # the attack worked: wrong on purpose\n")


def _probes(course_dir: Path, port: int) -> dict:
    """student -> relu_impl source; ``course_dir`` and ``port`` are the host's secrets."""
    def notebook(path: Path) -> str:  # an expression for the path, without ".ipynb" in one piece
        return f"{str(path.with_suffix(''))!r} + '.ipy' + 'nb'"

    return {
        "p_source": probe(f"open({notebook(SOURCE)}).read()"),
        "p_gradebook": probe(f"open({str(course_dir / 'gradebook.db')!r}, 'rb').read()"),
        "p_write_gradebook": probe(
            f"open({str(course_dir / 'gradebook.db')!r}, 'r+b').write(b'\\0' * 4096)"),
        "p_other_student": probe(
            f"open({notebook(course_dir / 'submitted' / 'honest_a' / A / f'{A}.ipynb')}).read()"),
        "p_autograded": probe(f"os.listdir({str(course_dir / 'autograded')!r})"),
        "p_reference_lib": probe(f"open({str(FIXTURE / 'fixturelib' / 'ops.py')!r}).read()"),
        "p_repo": probe(f"os.listdir({str(REPO / 'grading')!r})"),
        "p_write_host": probe(f"open({str(HOST_MARK)!r}, 'w').write('x')"),
        "p_write_course": probe(f"open({str(course_dir / 'pwned.txt')!r}, 'w').write('x')"),
        "p_write_library": probe(
            "open(pkgutil.get_loader('fixturelib').get_filename(), 'a')"
            ".write('\\nrelu = lambda x: x\\n')"),
        "p_network_host": probe(
            f"socket.create_connection(('127.0.0.1', {port}), timeout=1)"),
        "p_network_out": probe("socket.create_connection(('8.8.8.8', 53), timeout=1)"),
        "p_dns": probe("socket.getaddrinfo('pypi.org', 443)"),
        "p_host_processes": probe("[p for p in os.listdir('/proc') if p.isdigit()][20]"),
        "p_host_paths": probe(
            "[p for p in os.listdir('/proc') if p.isdigit() and b'pytest-of' in "
            "open(f'/proc/{p}/cmdline', 'rb').read()][0]"),
        "p_symlink": probe("open('gradebook_link').read()"),
        "p_setuid": probe("os.setuid(0)"),
    }


WRONG_RELU = "def relu(x):\n    return x  # wrong on purpose\n"
# a pre_run_cell hook that, before test_relu, disables record() and displays a forged record
PRE_RUN_FORGE = WRONG_RELU + """
from IPython.display import display
from cs231n_lib.checks import encode_value, record as _record


def _forge(info):
    ns = get_ipython().user_ns
    if "relu_small" in (info.raw_cell or ""):
        ns["record"] = lambda *args, **kwargs: None
        display({"application/vnd.cs231n.record+json": {
            "id": "relu_small", "kind": "close",
            "value": encode_value(np.array([0.0, 0.0, 2.5]))}}, raw=True)
    else:
        ns["record"] = _record


get_ipython().events.register("pre_run_cell", _forge)
"""
# a pre_run_cell hook that blanks test cells through an input transformer (ipykernel transforms
# a cell before its pre_run_cell, so blanking starts with the cell after the first hook call)
PRE_RUN_BLANK = WRONG_RELU + """

def _wipe(lines):
    return ["pass\\n"] if any("record(" in line for line in lines) else lines


def _blank(info):
    shell = get_ipython()
    if _wipe not in shell.input_transformers_post:
        shell.input_transformers_post.append(_wipe)


get_ipython().events.register("pre_run_cell", _blank)
"""
# a post_run_cell hook that wipes test_relu's outputs and leaves a forged record instead
POST_RUN_REWRITE = WRONG_RELU + """
from IPython.display import clear_output, display
from cs231n_lib.checks import encode_value


def _rewrite(result):
    if "relu_small" in (result.info.raw_cell or ""):
        clear_output()
        display({"application/vnd.cs231n.record+json": {
            "id": "relu_small", "kind": "close",
            "value": encode_value(np.array([0.0, 0.0, 2.5]))}}, raw=True)


get_ipython().events.register("post_run_cell", _rewrite)
"""

DISRUPTORS = {
    # student: (cell to replace, its source, expected score)
    "d_exit": ("relu_impl", "import os\nos._exit(1)", 1),
    "d_kill_all": ("relu_impl", "import os\ntry:\n    os.kill(-1, 9)  # SIGKILL\n"
                   "except OSError:  # nothing but the kernel itself is in reach\n    pass\n\n"
                   "def relu(x):\n    return np.maximum(0, x)", 3),
    "d_kill_group": ("relu_impl", "import os, signal\nos.killpg(0, signal.SIGKILL)", 1),
    "d_kill_parent": ("relu_impl", "import os\ntry:\n    os.kill(os.getppid(), 9)\n"
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
    "d_patch_builtins": ("relu_impl", "import builtins\n_isinstance = builtins.isinstance\n"
                         "builtins.isinstance = lambda obj, cls: cls is np.ndarray or "
                         "_isinstance(obj, cls)\nbuiltins.abs = lambda x: 0 * x\n"
                         "builtins.AssertionError = type('NeverRaised', (Warning,), {})\n\n"
                         "def relu(x):\n    return x", 1),
    "d_patch_isinstance": ("relu_impl", "import builtins\nbuiltins.isinstance = lambda obj, cls:"
                           " True  # the kernel dies of it\n\ndef relu(x):\n    return x", 1),
    "d_loose_tolerance": ("relu_impl", "import functools\nfrom cs231n_lib.checks import record "
                          "as _record\nrecord = functools.partial(_record, rtol=1e9, atol=1e9)"
                          "\n\ndef relu(x):\n    return x + 1.0", 1),
    "d_pre_run_forge": ("relu_impl", PRE_RUN_FORGE, 1),
    "d_pre_run_blank": ("relu_impl", PRE_RUN_BLANK, 0),
    "d_post_run_rewrite": ("relu_impl", POST_RUN_REWRITE, 1),
    "d_hardcoded": ("relu_impl", "def relu(x):  # the visible test's answer, whatever x is\n"
                    "    return np.array([0.0, 0.0, 2.5])", 1),
    "d_kill_self": ("relu_impl", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", 1),
}
FORGED_TEST = 'record("relu_small", np.array([0.0, 0.0, 2.5]))  # asserts removed\n'


def _cell(nb, grade_id):
    return next(c for c in nb.cells if nbg(c).get("grade_id") == grade_id)


def _flags(grade_id, **changes):
    """Edit that sets nbgrader flags of one cell."""
    return lambda nb: nbg(_cell(nb, grade_id)).update(changes)


def _wrong_relu(nb):
    _cell(nb, "relu_impl").source = WRONG_RELU


def _move(grade_id, before):
    def edit(nb):
        cell = _cell(nb, grade_id)
        nb.cells.remove(cell)
        nb.cells.insert(nb.cells.index(_cell(nb, before)), cell)
    return edit


def _then(*edits):
    def edit(nb):
        for e in edits:
            e(nb)
    return edit


def _forge_test(nb):
    _cell(nb, "test_relu").source = FORGED_TEST


def _delete(grade_id):
    return lambda nb: nb.cells.remove(_cell(nb, grade_id))


def _swap_tests(nb):
    i, j = nb.cells.index(_cell(nb, "test_relu")), nb.cells.index(_cell(nb, "test_add"))
    nb.cells[i], nb.cells[j] = nb.cells[j], nb.cells[i]


def _to_markdown(nb):
    cell = _cell(nb, "test_relu")
    nb.cells[nb.cells.index(cell)] = new_markdown_cell(cell.source, metadata=cell.metadata)


def _insert(cell, before):
    return lambda nb: nb.cells.insert(nb.cells.index(_cell(nb, before)), cell)


def _forge_outputs(nb):
    """Saved outputs of test_relu holding the exact records a correct relu would make."""
    hidden = np.maximum(0, np.random.default_rng(7).standard_normal((4, 5)))
    cell = _cell(nb, "test_relu")
    cell.execution_count = 5
    cell.outputs = [new_output("display_data", data={RECORD_MIME: {
        "id": rid, "kind": "close", "rtol": 1e-7, "atol": 1e-9, "bound": None,
        "value": encode_value(value)}, "text/plain": f"[recorded {rid}]"})
        for rid, value in (("relu_small", np.array([0.0, 0.0, 2.5])), ("relu_hidden_7", hidden))]


def _graded_meta(grade_id, points):
    return {"nbgrader": {"schema_version": 3, "grade": True, "solution": False, "locked": True,
                         "grade_id": grade_id, "points": points}}


TAMPERED = {
    # student: (edit of the correct notebook, expected score, tampering note expected)
    "t_edit_test": (_forge_test, 3, "test cell test_relu was edited (restored)"),
    "t_edit_test_wrong": (_then(_forge_test, _wrong_relu), 1,
                          "test cell test_relu was edited (restored)"),
    "t_delete_test": (_delete("test_add"), 3, "test cell test_add was deleted (restored)"),
    "t_delete_test_wrong": (_then(_delete("test_relu"), _wrong_relu), 1,
                            "test cell test_relu was deleted (restored)"),
    "t_test_first": (_move("test_relu", before="relu_impl"), 3,
                     "instructor cells were reordered (instructor order restored)"),
    "t_swap_tests": (_swap_tests, 3, "instructor cells were reordered"),
    "t_raise_points": (_then(_flags("test_relu", points=100), _flags("test_add", points=50)), 3,
                       "cell test_relu nbgrader metadata changed (restored)"),
    "t_test_to_markdown": (_to_markdown, 3,
                           "cell test_relu type changed from code to markdown (restored)"),
    "t_test_flags_off": (_flags("test_relu", grade=False, locked=False), 3,
                         "cell test_relu nbgrader metadata changed (restored)"),
    # if the grader took these flags at face value it would run the instructor's solution
    "t_solution_as_test": (_then(_wrong_relu, _flags("relu_impl", grade=True, solution=False,
                                                     locked=True, points=5)), 1,
                           "cell relu_impl nbgrader metadata changed (restored)"),
    # ... or keep the student's forged test as if it were an answer
    "t_test_as_solution": (_then(_forge_test, _wrong_relu, _flags(
        "test_relu", solution=True, locked=False)), 1,
        "cell test_relu nbgrader metadata changed (restored)"),
    # a kept copy of a test cell is a cell the student added that calls record(): the grader's
    # source rules cost the whole notebook (score 0, a "rule: " note)
    "t_duplicate_test": (_then(_wrong_relu, _insert(new_code_cell(
        FORGED_TEST, metadata=_graded_meta("test_relu", 2)), before="relu_impl")), 0,
        "duplicate of cell test_relu kept as an ordinary cell"),
    "t_fake_cell": (_insert(new_code_cell("print('free points')", metadata=_graded_meta(
        "bonus", 100)), before="relu_impl"), 3, "extra cell bonus marked for grading"),
    "t_bad_grade_id": (_insert(new_code_cell(FORGED_TEST, metadata=_graded_meta(
        ["test_relu"], 50)), before="test_add"), 0, "marked for grading is not part"),
    "t_forged_outputs": (_then(_wrong_relu, _forge_outputs), 1, None),
}


def _write(name="01_basics.ipynb", text=None, data=None):
    """Writer of one file (text as UTF-8, or raw bytes) into the submission folder."""
    def write(folder, nb):
        body = data(nb) if data else (text(nb) if text else nbformat.writes(nb)).encode()
        (folder / name).write_bytes(body)
    return write


def _with_output(size):
    """Notebook JSON whose test_relu cell carries a saved output of ``size`` characters."""
    def text(nb):
        _cell(nb, "test_relu").outputs = [new_output("stream", name="stdout", text="x" * size)]
        return nbformat.writes(nb)
    return text


def _with_comment(comment):
    """Notebook JSON with ``comment`` (inserted verbatim into the JSON) in relu_impl."""
    def text(nb):
        _cell(nb, "relu_impl").source += "\n# COMMENT"
        return nbformat.writes(nb).replace("COMMENT", comment)
    return text


CAP = load_config(FIXTURE / "nbgrader_config.py").max_notebook_bytes
MALFORMED = {
    # student: (writer(folder, correct notebook), expected score, expected status start)
    "m_corrupt_json": (_write(text=lambda nb: nbformat.writes(nb)[:2000]), 0,
                       f"not graded: {A}.ipynb: invalid JSON"),
    "m_not_a_notebook": (_write(text=lambda nb: json.dumps({"nbformat": 4, "cells": "none"})),
                         0, f"not graded: {A}.ipynb: not a notebook"),
    "m_missing": (lambda folder, nb: None, 0, f"not graded: missing notebook {A}.ipynb"),
    "m_misnamed": (_write(name=f"{A}-Copy1.ipynb"), 0, f"not graded: missing notebook {A}.ipynb"),
    "m_huge": (_write(text=_with_output(CAP + 1_000_000)), 0,
               f"not graded: notebook is {(CAP + 1e6) / 1e6:.1f} MB (limit {CAP / 1e6:.1f} MB)"),
    "m_large_ok": (_write(text=_with_output(CAP - 1_000_000)), 3, "graded"),  # outputs dropped
    "m_latin1": (_write(data=lambda nb: _with_comment("café")(nb).encode("latin-1")), 0,
                 f"not graded: {A}.ipynb: invalid JSON ('utf-8' codec can't decode byte 0xe9"),
    "m_invalid_bytes": (_write(data=lambda nb: _with_comment("COMMENT")(nb).encode().replace(
        b"COMMENT", b"\xff\xfe\x00")), 0, f"not graded: {A}.ipynb: invalid JSON"),
    "m_lone_surrogate": (_write(text=_with_comment("\\ud800")), 0,
                         f"not graded: {A}.ipynb: cell 3 holds text that is not valid Unicode"),
    "m_deep_json": (_write(text=lambda nb: '{"nbformat": 4, "cells": ' + "[" * 100_000
                           + "]" * 100_000 + "}"), 0,
                    f"not graded: {A}.ipynb: invalid JSON (maximum recursion depth"),
    "m_deep_metadata": (_write(text=lambda nb: nbformat.writes(nb).replace(
        '"metadata": {}', '"metadata": {"x": ' + '{"a": ' * 600 + "0" + "}" * 601, 1)), 0,
        f"not graded: {A}.ipynb: cell 0 has metadata nested deeper than 64 levels"),
}
HONEST = {  # student: (samples.KINDS entry, score); names sort before, among and after the rest
    "honest_a": ("correct", 3), "honest_m": ("correct", 3), "honest_partial": ("partial", 2),
    "honest_untouched": ("untouched", 0), "honest_warnings": ("warnings", 3),
    "honest_z": ("correct", 3),
}


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
    release(cfg, [A, L], log=lambda *_: None)
    released = {a: nbformat.read(course_dir / "release" / a / f"{a}.ipynb", 4) for a in (A, L)}
    sources = {a: nbformat.read(SOURCES[a], 4) for a in (A, L)}
    correct = fill(released[A], sources[A])
    server = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()

    def submit(student, edit=None, write=None, nb=correct):
        nb = nbformat.from_dict(copy.deepcopy(nb))
        if edit:
            edit(nb)
        folder = course_dir / "submitted" / student / A
        folder.mkdir(parents=True, exist_ok=True)
        (write or _write())(folder, nb)
        (folder / "timestamp.txt").write_text(STAMP)
        return folder

    def replace(grade_id, source):
        return lambda nb: setattr(_cell(nb, grade_id), "source", source)

    for student, (kind, _) in HONEST.items():
        submit(student, nb=KINDS[kind](released[A], sources[A]))
    for student, source in _probes(course_dir, server.getsockname()[1]).items():
        folder = submit(student, replace("relu_impl", source))
        (folder / "gradebook_link").symlink_to(course_dir / "gradebook.db")
    for student, (grade_id, source, _) in DISRUPTORS.items():
        submit(student, replace(grade_id, source))
    for student, (edit, _, _) in TAMPERED.items():
        submit(student, edit)
    for student, (write, _, _) in MALFORMED.items():
        submit(student, write=write)
    for student, case in CASES.items():
        a = case.assignment
        write_submission(course_dir, student, case, KINDS[case.base](released[a], sources[a]))

    source_hash = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    started = time.monotonic()
    os.environ["GRADER_ONLY_SECRET"] = "s3cret"  # the workers inherit it; kernels must not
    try:
        results = autograde(cfg, None, jobs=2, log=lambda *_: None)  # both assignments
    finally:
        del os.environ["GRADER_ONLY_SECRET"]
    elapsed = time.monotonic() - started
    server.close()
    by = {(r["student"], r["assignment"]): r for r in results}
    pages = feedback(cfg, A, students=FEEDBACK_STUDENTS, log=lambda *_: None)
    return {"cfg": cfg, "results": {s: r for (s, a), r in by.items() if a == A}, "by": by,
            "accepted": accepted, "source_hash": source_hash, "elapsed": elapsed,
            "pages": {p.parent.parent.name: p for p in pages}}


CORPUS = (set(HONEST) | set(_probes(Path("/x"), 1)) | set(DISRUPTORS) | set(TAMPERED)
          | set(MALFORMED) | {s for s, case in CASES.items() if case.assignment == A})
LOOPS_CORPUS = {s for s, case in CASES.items() if case.assignment == L} | {"s_link_student"}
SUBMISSIONS = {(s, A) for s in CORPUS} | {(s, L) for s in LOOPS_CORPUS}
FEEDBACK_STUDENTS = ["honest_a", "honest_partial", "o_amplify", "o_leak_hidden", "o_html",
                     "f_forge_cell_basics"]


def test_corpus_is_large_enough():
    assert len(SUBMISSIONS) >= 100


def test_every_notebook_has_an_explicit_status(graded):
    by = graded["by"]
    assert set(by) == SUBMISSIONS  # the run finished and nobody was lost
    for key, r in by.items():
        assert r["status"] == "graded" or r["status"].startswith("not graded: "), (key, r)
        assert r["max_score"] == 3, key  # points come from the instructor's copy
    store = StatusStore(graded["cfg"].course_dir)
    try:
        stored = {(r["student"], r["assignment"]): r for r in store.query()}
    finally:
        store.close()
    assert set(stored) == SUBMISSIONS
    assert all(stored[k]["status"] == by[k]["status"] for k in SUBMISSIONS)


def test_no_grader_error(graded):
    errors = {k: r["status"] for k, r in graded["by"].items() if "grader error" in r["status"]}
    assert errors == {}


@pytest.mark.parametrize("student", sorted(HONEST))
def test_honest_student_gets_exactly_their_due(graded, student):
    r = graded["results"][student]
    assert r["status"] == "graded" and r["score"] == HONEST[student][1], (r["status"], r["tests"])
    assert r["notes"] == []  # warnings, stderr and unanswered cells are not tampering


@pytest.mark.parametrize("student", sorted(_probes(Path("/x"), 1)))
def test_probe_finds_the_sandbox_closed(graded, student):
    r = graded["results"][student]
    assert r["status"] == "graded" and r["score"] == 3, (r["status"], r["tests"])


@pytest.mark.parametrize("student", sorted(DISRUPTORS))
def test_disruptor_earns_only_its_honest_part(graded, student):
    r = graded["results"][student]
    assert r["status"] == "graded", r["status"]
    assert r["score"] == DISRUPTORS[student][2], (r["tests"], r["notes"])


def _message(result, grade_id):
    return next(t["message"] for t in result["tests"] if t["grade_id"] == grade_id)


def test_hooks_patches_and_kernel_deaths_are_judged_on_records(graded):
    results = graded["results"]
    assert "relu_hidden_7: not recorded" in _message(results["d_pre_run_forge"], "test_relu")
    assert "add_ints: not recorded" in _message(results["d_pre_run_blank"], "test_add")
    assert "relu_hidden_7" in _message(results["d_post_run_rewrite"], "test_relu")
    assert "relu_hidden_7" in _message(results["d_hardcoded"], "test_relu")
    assert "wrong values" in _message(results["d_loose_tolerance"], "test_relu")
    assert "relu_small: wrong values" in _message(results["d_patch_builtins"], "test_relu")
    # the kernel dies (or hangs, for the isinstance patch) in relu_impl, which is then skipped
    for student, events in (("d_kill_self", ("kernel died",)),
                            ("d_patch_isinstance", ("kernel died", "timed out"))):
        notes = " | ".join(results[student]["notes"])
        assert "(relu_impl)" in notes and any(e in notes for e in events), (student, notes)
        assert "NameError" in _message(results[student], "test_relu"), student


@pytest.mark.parametrize("student", sorted(TAMPERED))
def test_tampering_is_undone_graded_and_reported(graded, student):
    r = graded["results"][student]
    _, score, note = TAMPERED[student]
    assert r["status"] == "graded" and r["score"] == score, (r["status"], r["tests"], r["notes"])
    if note:
        assert any(n.startswith("tampering: ") and note in n for n in r["notes"]), r["notes"]
    if 0 < score < 3:  # the wrong relu was judged by the instructor's test, on fresh records
        assert "relu_small" in _message(r, "test_relu")
    if score == 0:  # a forged record kept in an ordinary cell breaks the source rules
        assert any(n.startswith("rule: added cell") for n in r["notes"]), r["notes"]


@pytest.mark.parametrize("student", sorted(MALFORMED))
def test_malformed_submission_gets_a_reason(graded, student):
    r = graded["results"][student]
    _, score, status = MALFORMED[student]
    if status.startswith("not graded"):
        score = None  # no score at all, never a silent 0
    assert r["status"].startswith(status) and r["score"] == score, (r["status"], r["tests"])


def test_gradebook_is_intact_and_holds_the_results(graded):
    cfg = graded["cfg"]
    db = sqlite3.connect(cfg.course_dir / "gradebook.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    from nbgrader.api import Gradebook
    with Gradebook(cfg.gradebook_url) as gb:
        assert {s.id for s in gb.students} == CORPUS | LOOPS_CORPUS
        assert gb.find_notebook(A, A).max_score == 4  # + the written answer; never raised
        assert gb.find_notebook(L, L).max_score == 3
        for (student, a), r in graded["by"].items():
            nb = gb.find_submission_notebook(a, a, student)
            # nbgrader sums a notebook without scores to 0.0; the results say None
            assert nb.score == (r["score"] or 0.0) and nb.max_score == (4 if a == A else 3), \
                student
            assert nb.flagged == (r["status"] != "graded"), student
            auto = {g.name: g.auto_score for g in nb.grades}
            if r["status"] == "graded":
                assert {t["grade_id"]: t["points"] for t in r["tests"]} == {
                    k: v for k, v in auto.items() if k.startswith("test_")}, student
            else:
                assert set(auto.values()) == {None} and nb.needs_manual_grade, student


def test_host_is_untouched(graded):
    cfg = graded["cfg"]
    assert not HOST_MARK.exists()
    assert not (cfg.course_dir / "pwned.txt").exists()
    assert graded["accepted"] == []  # the host's listening socket never saw a connection
    assert hashlib.sha256(SOURCE.read_bytes()).hexdigest() == graded["source_hash"]
    lib = (cfg.student_library_dir / "fixturelib" / "__init__.py").read_text()
    assert "relu = lambda" not in lib


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




# ---- issue 13 (cases in tests/hostile_issue13.py) ----------------------------------------------

def _points(result) -> dict[str, float]:
    return {t["grade_id"]: t["points"] for t in result["tests"]}


@pytest.mark.parametrize("student", sorted(CASES))
def test_issue13_case_earns_only_its_honest_part(graded, student):
    case = CASES[student]
    r = graded["by"][(student, case.assignment)]
    assert r["status"].startswith(case.status), (r["status"], r["notes"])
    if case.status.startswith("not graded"):
        assert r["status"] != "not graded: " and r["score"] is None, r  # a reason, no points
    elif case.exact:
        assert r["score"] == case.score, (r["tests"], r["notes"])
    else:
        assert r["score"] <= case.score, (r["tests"], r["notes"])


@pytest.mark.parametrize("student", sorted(s for s in CASES if s.startswith("honest_")))
def test_honest_style_has_no_notes(graded, student):
    r = graded["by"][(student, CASES[student].assignment)]
    assert r["notes"] == [], r["notes"]  # extra cells, imports, plots and helpers are fine


@pytest.mark.parametrize("student, cell", [
    ("j_deep_json", "test_relu"), ("j_deep_seq", "test_relu"), ("j_bigint", "test_total_bound"),
    ("j_raw_deep_json", "test_relu"), ("j_raw_deep_seq", "test_relu")])
def test_pathological_record_costs_its_own_cell_only(graded, student, cell):
    case = CASES[student]
    got = _points(graded["by"][(student, case.assignment)])
    assert got == {**POINTS[case.assignment], cell: 0}, got


def test_bad_timestamp_is_a_note(graded):
    r = graded["results"]["t_bad_timestamp"]
    assert r["status"] == "graded" and r["score"] == 3, r
    assert any("timestamp" in n for n in r["notes"]), r["notes"]


SMALL = 12_000_000  # 15 MB shown in ten places is 150 MB uncapped; 8 MB of outputs are kept


def test_output_amplification_stays_small(graded):
    nb = graded["cfg"].course_dir / "autograded" / "o_amplify" / A / f"{A}.ipynb"
    assert nb.stat().st_size < SMALL, nb.stat().st_size
    assert graded["pages"]["o_amplify"].stat().st_size < SMALL


def _autograded_text(graded, student) -> str:
    return (graded["cfg"].course_dir / "autograded" / student / A / f"{A}.ipynb").read_text()


@pytest.mark.parametrize("student", FEEDBACK_STUDENTS)
def test_feedback_shows_no_hidden_test_line_in_any_encoding(graded, student):
    lines = hidden_lines(nbformat.read(SOURCE, 4))
    assert len(lines) == 3
    page = graded["pages"][student].read_text(encoding="utf-8")
    assert leaked(page, lines) == []


def test_leaking_student_did_capture_the_hidden_tests(graded):
    """The attack works in the kernel (so the feedback test above can fail)."""
    lines = hidden_lines(nbformat.read(SOURCE, 4))
    assert {enc for enc, _ in leaked(_autograded_text(graded, "o_leak_hidden"), lines)} >= {
        "b64", "hex", "reversed", "rot13"}


def test_feedback_has_no_executable_student_html(graded):
    page = graded["pages"]["o_html"].read_text(encoding="utf-8")
    assert executable_html(page, HTML_MARK) == []
    assert f"{HTML_MARK}_script" in _autograded_text(graded, "o_html")  # the outputs were made


@pytest.mark.parametrize("assignment", [A, L])
def test_fixture_tests_hold_no_computed_expected_value(assignment):
    """Hidden tests only record the student's outputs; visible expected values are literals."""
    cells = [c for c in nbformat.read(SOURCES[assignment], 4).cells
             if nbg(c).get("grade") and c.cell_type == "code"]
    assert cells and all("record(" in c.source for c in cells)
    assert {c.metadata.nbgrader.grade_id: expected_value_problems(c.source) for c in cells} == {
        c.metadata.nbgrader.grade_id: [] for c in cells}
    assert expected_value_problems(  # the check can fail
        'out = f(x)\nrecord("a", out)\nassert_array("f", out, np.maximum(0, x))\n'
        '### BEGIN HIDDEN TESTS\nassert_value("g", g(1), 2)\n### END HIDDEN TESTS') == [
        'visible: assert_array(\'f\', out, np.maximum(0, x))', "hidden: assert_value('g', g(1), 2)"]
