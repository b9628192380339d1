"""The grading sandbox (grading/cs231n_grading/sandbox.py) with real bubblewrap and real kernels.

Each test builds a tiny notebook with nbformat, runs it through nbclient in a sandboxed kernel and
checks what the student's code could and could not do, and that nothing of the sandbox outlives
the kernel manager's shutdown.
"""

import asyncio
import atexit
import errno
import json
import multiprocessing
import os
import shutil
import socket
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from sandbox_procs import running, running_with_uid, status

from cs231n_grading import sandbox, sandbox_argv, sandbox_cgroup
from cs231n_grading.sandbox import SandboxLimits, make_kernel_manager, sandbox_available

REPO = Path(__file__).resolve().parents[1]
SMALL = SandboxLimits(memory_mb=1024, nproc=64, disk_mb=32, file_size_mb=16)


@pytest.fixture
def course(tmp_path):
    """A submission dir, a fake student-edition library and planted secrets next to them."""
    work = tmp_path / "submitted" / "alice"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("alice's notes")
    lib = tmp_path / "student_lib"
    (lib / "cs231n_lib").mkdir(parents=True)
    (lib / "cs231n_lib" / "__init__.py").write_text('EDITION = "student"\n')
    (tmp_path / "gradebook.db").write_text("grades")
    (tmp_path / "submitted" / "bob").mkdir()
    (tmp_path / "submitted" / "bob" / "answers.txt").write_text("bob's answers")
    return {"work": work, "lib": lib, "root": tmp_path}


def _uid_processes(uid):
    """Host pids of running processes whose real uid is ``uid``."""
    return running_with_uid(lambda u: u == uid)


def _shutdown(km):
    """Stop the sandbox (nbclient leaves a kernel it did not create running)."""
    asyncio.run(km.shutdown_kernel())


def _assert_gone(km):
    """Nothing of the sandbox runs: no process of its uid, no pid 1, bwrap reaped, no files.
    The kernel finishes tearing down a SIGKILLed process in its own time (once in CI, pid 1
    of a sandbox that had just filled its memory still ran after its uid had no process
    left): both are given the same few seconds."""
    pid = km.sandbox_pid
    deadline = time.monotonic() + 5
    while ((_uid_processes(km.sandbox_uid) or (pid is not None and running(pid)))
           and time.monotonic() < deadline):
        time.sleep(0.05)
    assert _uid_processes(km.sandbox_uid) == []
    assert pid is None or not running(pid), f"pid 1 ({pid}) still runs: {status(pid)}"
    assert km.provisioner is None or not km.provisioner.has_process
    assert not km.runtime_dir.exists()


def _outputs(cell):
    """A cell's stdout text, or its error's ename."""
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    errors = [o.ename for o in cell.outputs if o.output_type == "error"]
    return text + "".join(f"!{e}" for e in errors)


def run_cells(course, sources, limits=SMALL, timeout=20, env=None, **client_kw):
    """Execute ``sources`` (one cell each) in a fresh sandbox; return (outputs, km, error)."""
    cells = [nbformat.v4.new_code_cell(textwrap.dedent(s)) for s in sources]
    nb = nbformat.v4.new_notebook(cells=cells)
    km = make_kernel_manager(course["work"], library_dir=course["lib"], limits=limits,
                             env=env or {"CS231N_GRADING": "1"})
    client = NotebookClient(nb, km=km, timeout=timeout, allow_errors=True, **client_kw)
    error = None
    try:
        client.execute()
    except (DeadKernelError, CellTimeoutError) as e:
        error = e
    finally:
        _shutdown(km)
    _assert_gone(km)
    return [_outputs(c) for c in nb.cells], km, error


def _probe(paths):
    """Cell source printing, as JSON, what reading each of ``paths`` gives."""
    return f"""
        import json, os
        seen = {{}}
        for p in {[str(p) for p in paths]!r}:
            try:
                seen[p] = os.listdir(p) if os.path.isdir(p) else open(p).read()
            except OSError as e:
                seen[p] = type(e).__name__
        print(json.dumps(seen))
    """


def test_sandbox_is_available_here():
    ok, why = sandbox_available()
    assert ok, why
    assert "bubblewrap" in why


def test_sandbox_available_explains_missing_bwrap(monkeypatch):
    monkeypatch.setattr(sandbox_argv.shutil, "which", lambda name: None)
    sandbox_available.cache_clear()
    try:
        ok, why = sandbox_available()
    finally:
        monkeypatch.undo()
        sandbox_available.cache_clear()
    assert not ok
    assert "apt-get install bubblewrap" in why


@pytest.mark.parametrize("field,value", [("memory_mb", 0), ("nproc", True), ("disk_mb", 1.5)])
def test_limits_reject_bad_values(field, value):
    with pytest.raises(ValueError, match=f"SandboxLimits.{field}="):
        SandboxLimits(**{field: value})


@pytest.mark.parametrize("root", [True, False], ids=["root", "user"])
def test_bwrap_argv_isolates_and_binds_only_what_is_given(course, monkeypatch, root):
    monkeypatch.setattr(sandbox_argv, "privileged", lambda: root)
    argv = sandbox_argv.bwrap_argv(workdir=course["work"], library_dir=course["lib"], data_dir=None,
                              runtime_dir=course["root"], limits=SMALL)
    assert argv[-1] == "--" and "--die-with-parent" in argv and "--new-session" in argv
    assert ("--unshare-all" in argv) != root  # a user namespace only without root
    assert ("--unshare-net" in argv) == root and ("--cap-add" in argv) == root
    binds = {argv[i + 1]: argv[i + 2] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")}
    assert "--bind" not in argv  # nothing of the host is writable
    assert binds[str(course["work"])] == sandbox_argv.SUBMISSION_DIR
    assert binds[str(course["lib"])] == sandbox_argv.LIBRARY_DIR
    from_repo = {src for src in binds if REPO in Path(src).parents}
    launcher = REPO / "grading" / "cs231n_grading" / "sandbox_launcher.py"
    assert from_repo == {str(REPO / ".venv"), str(launcher)}
    tmpfs = {argv[i + 3]: int(argv[i + 1]) // 2**20 for i, a in enumerate(argv) if a == "--size"}
    assert tmpfs == {"/dev/shm": sandbox_argv.DEV_SHM_MB, "/tmp": SMALL.disk_mb,
                     sandbox_argv.KERNEL_DIR: sandbox_argv.KERNEL_DIR_MB,
                     sandbox_argv.SANDBOX_HOME: SMALL.disk_mb}
    assert "--tmpfs" not in [a for i, a in enumerate(argv) if argv[i - 2] != "--size"]


def test_make_kernel_manager_rejects_missing_dir(course):
    with pytest.raises(ValueError, match="library_dir=.*is not a directory"):
        make_kernel_manager(course["work"], library_dir=course["root"] / "nope",
                            limits=SMALL, env={})


def test_kernel_runs_in_a_private_copy_with_its_own_env(course, monkeypatch):
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "hunter2")
    out, km, error = run_cells(course, [
        "print(6 * 7)",
        "import os; print(os.getcwd(), sorted(os.listdir('.')), os.getuid())",
        "print(os.environ.get('CS231N_GRADING'), os.environ.get('GRADER_SECRET_TOKEN'))",
        "open('written.txt', 'w').write('x'); print(open('notes.txt').read())",
    ])
    assert error is None
    assert out[0] == "42\n"
    cwd, files, uid = out[1].split(" ", 1)[0], out[1].split(" ", 1)[1].rsplit(" ", 1)[0], out[1]
    assert cwd == sandbox_argv.WORK_DIR and files == "['notes.txt']"
    assert int(uid.split()[-1]) == km.sandbox_uid >= sandbox_argv.UID_BASE
    assert out[2] == "1 None\n"
    assert out[3] == "alice's notes\n"
    assert sorted(p.name for p in course["work"].iterdir()) == ["notes.txt"]  # host copy intact


def test_nbclient_cleanup_kc_shuts_the_sandbox_down(course):
    """nbclient leaves running a kernel whose manager it was given, unless told cleanup_kc."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('hi')")])
    km = make_kernel_manager(course["work"], library_dir=course["lib"], limits=SMALL, env={})
    client = NotebookClient(nb, km=km, timeout=20, shutdown_kernel="immediate")
    with client.setup_kernel(cleanup_kc=True):
        client.execute_cell(nb.cells[0], 0)
        assert _uid_processes(km.sandbox_uid) != []
    _assert_gone(km)
    assert _outputs(nb.cells[0]) == "hi\n"


def _run_in_child(course):
    return run_cells(course, ["print(2)"])[0]


def test_works_in_a_worker_forked_after_kernels_ran_here(course):
    """autograde forks its workers from a process that may have run sandboxes already; the
    event loop they inherit has a default executor without threads: nothing may wait on it."""
    run_sync(asyncio.to_thread)(lambda: None)  # nbclient's loop here now has a default executor
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_run_in_child, (course,)).get(timeout=60) == ["2\n"]


def test_kernel_cannot_read_course_gradebook_or_other_students(course):
    secret = [REPO / "assignments", REPO / "cs231n_lib", REPO / "grading", Path("/work/shared"),
              course["root"] / "gradebook.db", course["root"] / "submitted" / "bob",
              course["work"], Path(sandbox_argv.SUBMISSION_DIR), Path("/root")]
    out, _, _ = run_cells(course, [_probe(secret), _probe([REPO, REPO / ".venv" / "bin"]), """
        import os
        pids = [p for p in os.listdir('/proc') if p.isdigit()]
        print(len(pids), any(b'submitted' in open(f'/proc/{p}/cmdline', 'rb').read() for p in pids))
    """])
    assert out[2] == "2 False\n"  # bwrap's reaper and the kernel; host paths not in cmdlines
    seen = json.loads(out[0])
    assert seen == {str(p): ("PermissionError" if str(p).startswith("/opt/cs231n/in")
                             else "FileNotFoundError") for p in secret} | {"/root": [".pyenv"]}
    visible = json.loads(out[1])
    assert visible[str(REPO)] == [".venv"]  # the virtualenv only, read-only
    assert "python" in visible[str(REPO / ".venv" / "bin")]


def test_kernel_imports_the_student_edition_only(course):
    out, _, _ = run_cells(course, ["""
        import sys
        import cs231n_lib
        print(cs231n_lib.EDITION, cs231n_lib.__file__)
        sys.path.remove('/opt/cs231n/lib')
        del sys.modules['cs231n_lib']
        try:
            import cs231n_lib.layers
        except ImportError as e:
            print(type(e).__name__)
        try:
            import cs231n_grading.sandbox
        except ImportError:
            print('no grading')
    """])
    assert out[0].splitlines() == [
        "student /opt/cs231n/lib/cs231n_lib/__init__.py",
        "ModuleNotFoundError",  # the editable install's finder points at a path absent inside
        "no grading",  # nor can it import the grader's code
    ]


def test_writes_outside_the_work_dir_fail(course):
    targets = ["/opt/cs231n/lib/x.py", "/opt/cs231n/lib/cs231n_lib/__init__.py",
               f"{REPO}/.venv/x", "/usr/x", "/etc/passwd", "/x", "/dev/x", "/home/x"]
    out, _, _ = run_cells(course, [f"""
        for p in {targets!r}:
            try:
                open(p, 'a').close()
                print(p, 'written')
            except OSError as e:
                print(p, type(e).__name__)
    """])
    results = dict(line.split() for line in out[0].splitlines())
    assert set(results) == set(targets)
    assert set(results.values()) <= {"PermissionError", "OSError"}  # EACCES / EROFS


def test_no_network(course):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        out, _, _ = run_cells(course, [f"""
            import socket
            print(sorted(name for _, name in socket.if_nameindex()))
            for host in ['127.0.0.1', '10.0.2.2', '8.8.8.8']:
                try:
                    socket.create_connection((host, {port}), timeout=2)
                    print(host, 'connected')
                except OSError as e:
                    print(host, type(e).__name__)
            try:
                socket.getaddrinfo('pypi.org', 443)
                print('dns ok')
            except OSError as e:
                print('dns', type(e).__name__)
        """])
    lines = out[0].splitlines()
    assert lines[0] == "['lo']"
    assert lines[1] == "127.0.0.1 ConnectionRefusedError"  # its own loopback, nobody listening
    assert all(line.split()[1] != "connected" for line in lines[2:4])
    assert lines[4] == "dns gaierror"


def test_memory_bomb_raises_memory_error_and_kernel_lives_on(course):
    out, _, error = run_cells(course, [
        "x = bytearray(8 * 1024**3)",
        "import numpy as np\nchunks = []\nwhile True:\n    chunks.append(np.ones(2**24))",
        "del chunks\nprint('alive')",
    ])
    assert error is None
    assert out == ["!MemoryError", "!MemoryError", "alive\n"]


def test_cgroup_is_used_wherever_the_machine_allows_it(course):
    """The real v1 path (this machine: cgroup v1 and an empty v2 hierarchy); v2 and systemd-run
    are tested against a fake tree in test_sandbox_cgroup_v2.py."""
    km = make_kernel_manager(course["work"], library_dir=course["lib"], limits=SMALL, env={})
    try:
        kind = sandbox_cgroup.mechanism().kind
        can = all(d is not None and os.access(d, os.W_OK)
                  for d in map(sandbox_cgroup._own_v1_dir, ("memory", "pids")))
        assert (km.sandbox_cgroup is not None) == (kind != "rlimits")
        assert (kind == "v1") == (can and kind not in ("v2", "systemd"))
        if kind == "v1":
            assert [d.parent for d in km.sandbox_cgroup.dirs] == [
                sandbox_cgroup._own_v1_dir("memory"), sandbox_cgroup._own_v1_dir("pids")]
            assert km.sandbox_cgroup.dirs[0].name.startswith(f"cs231n-{os.getpid()}-")
            memory, pids = km.sandbox_cgroup.dirs
            assert int((memory / "memory.limit_in_bytes").read_text()) == SMALL.memory_mb * 2**20
            assert int((pids / "pids.max").read_text()) > SMALL.nproc
    finally:
        _shutdown(km)
    _assert_gone(km)
    assert km.sandbox_cgroup is None or not any(d.exists() for d in km.sandbox_cgroup.dirs)


@pytest.mark.slow
def test_memory_of_many_processes_is_capped_together(course):
    """Three children of 300 MB each: under RLIMIT_AS (768 MB) one by one, over the cap together."""
    limits = SandboxLimits(memory_mb=768, nproc=64, disk_mb=32)
    out, km, error = run_cells(course, ["""
        import subprocess, sys, time
        code = 'import numpy as np, time; a = np.ones(300 * 2**20 // 8); time.sleep(60)'
        procs = [subprocess.Popen([sys.executable, '-c', code]) for _ in range(3)]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.1)
        print(sorted(str(p.poll()) for p in procs))
        for p in procs:
            p.kill()
        print(open('/proc/self/oom_score_adj').read().strip())
    """, "print('alive')"], limits=limits)
    assert error is None and out[1] == "alive\n"
    returncodes, oom_score_adj = out[0].splitlines()
    assert oom_score_adj == "1000"  # without a cgroup, the host's OOM killer takes us first
    if km.sandbox_cgroup is not None:  # cgroup v1 here: the tree shares one 768 MB cap
        assert "-9" in returncodes
        assert not any(d.exists() for d in km.sandbox_cgroup.dirs)


@pytest.mark.slow
def test_fork_bomb_is_contained_and_cleaned_up(course):
    out, km, error = run_cells(course, [
        """
        import os, time
        children = []
        try:
            while True:
                pid = os.fork()
                if pid == 0:
                    time.sleep(600)
                    os._exit(0)
                children.append(pid)
        except OSError as e:
            print(len(children), e.errno)
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        """,
        # a classic bomb: every process forks forever; it must not stop the grader
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import os, time\\nwhile True:\\n"
        "    try: os.fork()\\n    except OSError: time.sleep(0.2)'])\n"
        "time.sleep(1.5)\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))",
    ])
    assert error is None
    n_children, err = map(int, out[0].split())
    assert 0 < n_children < SMALL.nproc and err == errno.EAGAIN
    # the kernel still answers while the bomb holds every process it may have
    assert SMALL.nproc // 2 < int(out[1]) <= SMALL.nproc + 1  # + bwrap's reaper (root)
    # run_cells asserted that no process of the sandbox uid survived the shutdown


def test_interrupt_reaches_the_kernel_on_timeout(course):
    out, _, error = run_cells(course, ["while True:\n    pass", "print('next cell')"],
                              timeout=2, interrupt_on_timeout=True)
    assert error is None
    assert out == ["!KeyboardInterrupt", "next cell\n"]


def test_loop_ignoring_sigint_is_stopped_by_the_timeout(course):
    started = time.monotonic()
    out, _, error = run_cells(course, [
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
    ], timeout=2)
    assert isinstance(error, CellTimeoutError)
    assert time.monotonic() - started < 15


@pytest.mark.parametrize("hostile", [
    "import os; os._exit(3)",
    "import os, signal; os.kill(os.getppid(), signal.SIGKILL)",
    "import os, signal; os.kill(-1, signal.SIGKILL)",
    "import os, signal; os.killpg(0, signal.SIGKILL)",
    "import os, signal; os.kill(1, signal.SIGKILL)",
], ids=["exit", "kill-parent", "kill-all", "kill-group", "kill-pid1"])
def test_killing_things_inside_harms_nobody_outside(course, hostile):
    witness = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print('witness')")])
    km = make_kernel_manager(course["work"], library_dir=course["lib"], limits=SMALL, env={})
    client = NotebookClient(witness, km=km, timeout=20)
    try:
        with client.setup_kernel():  # another sandbox, running while the hostile one strikes
            out, _, _ = run_cells(course, [hostile, "print('survived')"])
            client.execute_cell(witness.cells[0], 0)
    finally:
        _shutdown(km)
    _assert_gone(km)
    assert out[1] in ("", "survived\n", "!PermissionError")  # dead, or the kill was refused
    assert _outputs(witness.cells[0]) == "witness\n"
    assert os.getppid() > 1 and Path(f"/proc/{os.getpid()}").exists()


def test_huge_output_message_is_refused_and_reported_as_a_dead_kernel(course):
    """ZeroMQ refuses a message over message_mb (the grader never holds it) and cuts the output
    channel; the sandbox is then killed, so the grader sees a dead kernel, not lost outputs."""
    limits = SandboxLimits(memory_mb=1024, nproc=64, disk_mb=32, message_mb=4)
    started = time.monotonic()
    out, _, error = run_cells(course, ["print('x' * 3_000_000)", "print('y' * 50_000_000)",
                                       "print('never')"], limits=limits)
    assert isinstance(error, DeadKernelError)
    assert out == ["x" * 3_000_000 + "\n", "", ""]
    assert time.monotonic() - started < 15


def test_disk_fill_stops_at_the_cap(course):
    out, _, _ = run_cells(course, [f"""
        import os
        print(os.statvfs('.').f_blocks * os.statvfs('.').f_frsize // 2**20)
        try:
            open('big', 'wb').write(b'x' * {(SMALL.file_size_mb + 1) * 2**20})
        except OSError as e:
            print('big', e.errno)
        for target in ['.', '/tmp', '/dev/shm', '/run/kernel']:
            written = 0
            try:
                for i in range(10_000):
                    with open(f'{{target}}/fill{{i}}', 'wb') as f:
                        for _ in range(8):
                            f.write(b'x' * 2**20)
                            f.flush()
                            written += 1
            except OSError as e:
                print(target, written, e.errno)
    """])
    lines = out[0].splitlines()
    assert int(lines[0]) == SMALL.disk_mb
    caps = {".": SMALL.disk_mb, "/tmp": SMALL.disk_mb, "/dev/shm": sandbox_argv.DEV_SHM_MB,
            "/run/kernel": sandbox_argv.KERNEL_DIR_MB}
    assert lines[1] == f"big {errno.EFBIG}"
    assert [line.split()[0] for line in lines[2:]] == list(caps)
    for line in lines[2:]:
        target, written, err = line.split()
        assert int(err) in (errno.ENOSPC, errno.EACCES) and int(written) <= caps[target]
    assert sorted(p.name for p in course["work"].iterdir()) == ["notes.txt"]


def test_launcher_reports_startup_failure(course, monkeypatch):
    bad = SandboxLimits(memory_mb=16)  # too small for Python itself to start
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    km = make_kernel_manager(course["work"], library_dir=course["lib"], limits=bad, env={})
    client = NotebookClient(nb, km=km, timeout=10, startup_timeout=20)
    with pytest.raises(RuntimeError, match="Kernel died"):
        client.execute()
    atexit.unregister(client._cleanup_kernel)  # nbclient forgets to when the start fails
    _shutdown(km)
    _shutdown(km)  # idempotent
    _assert_gone(km)
    assert "Traceback (most recent call last)" in km.stderr_tail()  # e.g. ImportError


def test_requires_bubblewrap_to_make_a_manager(course, monkeypatch):
    monkeypatch.setattr(sandbox, "sandbox_available", lambda: (False, "no bwrap here"))
    with pytest.raises(RuntimeError, match="no bwrap here"):
        make_kernel_manager(course["work"], library_dir=course["lib"], limits=SMALL, env={})
    assert shutil.which("bwrap")
