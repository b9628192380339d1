"""cgroup v2 and systemd-run caps (grading/cs231n_grading/sandbox_cgroup.py) on a fake tree.

This machine has cgroup v1 and an empty v2 hierarchy, so v2 cannot run for real here: the v2
code runs against a directory tree in tmp_path whose mkdir/rmdir behave like cgroupfs's
(interface files appear with the group; a group holding processes cannot be removed). What a
real kernel would do with the limits (OOM kill inside the group, fork refused at pids.max) is
not tested here; the real v1 path is (tests/test_sandbox.py). The systemd-run path runs a real
sandboxed kernel through a fake ``systemd-run`` that records its arguments and execs the rest,
as ``systemd-run --scope`` does.
"""

import asyncio
import errno
import os
import pathlib
import shutil
import signal
import subprocess
import textwrap
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from cs231n_grading import kernels, sandbox, sandbox_cgroup
from cs231n_grading.sandbox_cgroup import Cgroup, Mechanism, SystemdScope

MB = 2**20
INTERFACE = {"cgroup.procs": "", "cgroup.kill": "", "memory.max": "max",
             "memory.swap.max": "max", "pids.max": "max", "cgroup.subtree_control": ""}


def _fake_mkdir(path):
    """mkdir as cgroupfs does it: the group comes with its interface files."""
    os.mkdir(path)
    parent = Path(path).parent
    enabled = (parent / "cgroup.subtree_control").read_text().replace("+", "")
    (Path(path) / "cgroup.controllers").write_text(enabled)
    for name, text in INTERFACE.items():
        (Path(path) / name).write_text(text)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fake_rmdir(path):
    """rmdir as cgroupfs does it: refused while the group holds a live process (a process that
    wrote "0" into cgroup.procs and exited has left it)."""
    if any(pid > 0 and _alive(pid)
           for pid in map(int, (Path(path) / "cgroup.procs").read_text().split())):
        raise OSError(errno.EBUSY, "busy", str(path))
    shutil.rmtree(path)


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """A fake cgroup2 mount with the grader's cgroup ``grader`` (memory and pids offered)."""
    monkeypatch.setattr(sandbox_cgroup, "_mkdir", _fake_mkdir)
    monkeypatch.setattr(sandbox_cgroup, "_rmdir", _fake_rmdir)
    root = tmp_path / "cgroup2"
    base = root / "grader"
    base.mkdir(parents=True)
    (root / "cgroup.subtree_control").write_text("cpu memory pids")
    (base / "cgroup.controllers").write_text("cpu memory pids")
    (base / "cgroup.subtree_control").write_text("")
    (base / "cgroup.procs").write_text("")
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("0::/grader\n")
    return {"root": root, "base": base, "proc": proc}


# --------------------------------------------------------------------------- finding the base


def test_v2_mount_is_read_from_mountinfo(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text("30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
                    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
    assert sandbox_cgroup.v2_mount(info) == Path("/sys/fs/cgroup/unified")
    info.write_text("30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    assert sandbox_cgroup.v2_mount(info) is None


def test_v2_base_is_the_env_var_or_the_own_cgroup(tree):
    root, proc = tree["root"], tree["proc"]
    assert sandbox_cgroup.v2_base(root, {}, proc) == tree["base"]
    assert sandbox_cgroup.v2_base(root, {"CS231N_CGROUP": "/grading/k"}, proc) == root / "grading/k"
    assert sandbox_cgroup.v2_base(root, {"CS231N_CGROUP": str(root / "x")}, proc) == root / "x"
    proc.write_text("4:memory:/a\n")  # v1 only: no "0::" line
    assert sandbox_cgroup.v2_base(root, {}, proc) is None


# --------------------------------------------------------------------------- delegated subtree


def test_v2_problem_enables_memory_and_pids_once(tree):
    base = tree["base"]
    assert sandbox_cgroup.v2_problem(base) is None
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids"
    (base / "cgroup.subtree_control").write_text("memory pids")  # as the kernel shows it
    assert sandbox_cgroup.v2_problem(base) is None
    assert (base / "cgroup.subtree_control").read_text() == "memory pids"  # not rewritten


def test_v2_problem_names_a_missing_controller(tree):
    (tree["base"] / "cgroup.controllers").write_text("cpu memory")
    assert "does not offer the pids controller" in sandbox_cgroup.v2_problem(tree["base"])
    assert "is not a cgroup v2 directory" in sandbox_cgroup.v2_problem(tree["base"] / "nope")


def test_v2_problem_explains_the_no_internal_processes_rule(tree, monkeypatch):
    write = pathlib.Path.write_text

    def busy(self, text, *a, **kw):
        if self.name == "cgroup.subtree_control":
            raise OSError(errno.EBUSY, "Device or resource busy")
        return write(self, text, *a, **kw)

    monkeypatch.setattr(pathlib.Path, "write_text", busy)
    why = sandbox_cgroup.v2_problem(tree["base"])
    assert "no-internal-processes" in why and "CS231N_CGROUP" in why


def test_v2_group_gets_its_limits_and_is_removed(tree):
    group = Cgroup.create_v2(tree["base"], "cs231n-1-0", memory_bytes=512 * MB, pids=68)
    assert group is not None and group.version == 2
    (d,) = group.dirs
    assert d == tree["base"] / "cs231n-1-0"
    assert (d / "memory.max").read_text() == str(512 * MB)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "68"
    group.enter()
    assert (d / "cgroup.procs").read_text() == "0"  # the kernel maps "0" to the writer
    (d / "cgroup.procs").write_text("")
    assert group.remove(wait=0) and not d.exists()


def test_v2_kill_takes_every_process_of_the_group(tree):
    group = Cgroup.create_v2(tree["base"], "cs231n-1-1", memory_bytes=64 * MB, pids=8)
    (d,) = group.dirs
    child = subprocess.Popen(["sleep", "60"])
    try:
        (d / "cgroup.procs").write_text(f"{child.pid}\n")
        assert not group.remove(wait=0)  # busy while it holds a process
        group.kill()
        assert child.wait(timeout=10) == -signal.SIGKILL
        assert (d / "cgroup.kill").read_text() == "1"
    finally:
        child.kill()
        child.wait()
    (d / "cgroup.procs").write_text("")
    assert group.remove(wait=0)


def test_v2_group_is_not_left_half_made(tree, monkeypatch):
    def mkdir_without_pids(path):
        _fake_mkdir(path)
        (Path(path) / "pids.max").unlink()
        (Path(path) / "pids.max").mkdir()  # writing the limit fails

    monkeypatch.setattr(sandbox_cgroup, "_mkdir", mkdir_without_pids)
    monkeypatch.setattr(sandbox_cgroup, "_rmdir", shutil.rmtree)
    assert Cgroup.create_v2(tree["base"], "cs231n-1-2", memory_bytes=MB, pids=8) is None
    assert not (tree["base"] / "cs231n-1-2").exists()


# --------------------------------------------------------------------------- choosing


def test_choose_probes_v2_for_real_on_the_fake_tree(tree):
    mech = sandbox_cgroup.choose(v2_root=tree["root"], environ={"CS231N_CGROUP": "/grader"},
                                 systemd=False)
    assert mech == Mechanism("v2", base=tree["base"])
    assert [p.name for p in tree["base"].iterdir() if p.is_dir()] == []  # probe group removed
    group = mech.create("cs231n-1-3", memory_bytes=3 * MB, pids=9)
    assert (group.dirs[0] / "pids.max").read_text() == "9"


@pytest.mark.parametrize("works,expected", [
    ({"v2", "systemd", "v1"}, "v2"),
    ({"systemd", "v1"}, "systemd"),
    ({"v1"}, "v1"),
    (set(), "rlimits"),
])
def test_choose_falls_back_in_order(tree, monkeypatch, works, expected):
    tried = []

    def fake_try(mech):
        tried.append(mech.kind)
        return mech.kind in works

    monkeypatch.setattr(sandbox_cgroup, "_try", fake_try)
    monkeypatch.setattr(sandbox_cgroup.shutil, "which", lambda name: f"/usr/bin/{name}")
    mech = sandbox_cgroup.choose(v2_root=tree["root"], environ={"CS231N_CGROUP": "grader"},
                                 systemd=True,
                                 privileged=False)
    assert mech.kind == expected
    order = ["v2", "systemd", "v1"]
    assert tried == order[:order.index(expected) + 1] if expected != "rlimits" else order
    if expected == "systemd":
        assert mech.user  # not root: the user's own systemd instance
    if expected == "rlimits":
        assert "systemd-run --scope failed" in mech.why


def test_choose_skips_what_is_not_there(monkeypatch):
    tried = []
    monkeypatch.setattr(sandbox_cgroup, "_try", lambda mech: tried.append(mech.kind))
    mech = sandbox_cgroup.choose(v2_root=None, environ={}, systemd=False)
    assert tried == ["v1"] and mech.kind == "rlimits"
    assert mech.why == ("no cgroup v2 hierarchy", "no systemd",
                        "no writable cgroup v1 memory and pids hierarchies")


def test_systemd_run_argv():
    argv = sandbox_cgroup.systemd_run_argv("cs231n-5-0", memory_bytes=3072 * MB, pids=260,
                                           user=True)
    assert argv == ["systemd-run", "--user", "--scope", "--quiet", "--collect",
                    "--unit=cs231n-5-0", "-p", f"MemoryMax={3072 * MB}", "-p", "MemorySwapMax=0",
                    "-p", "TasksMax=260", "--"]
    assert "--user" not in sandbox_cgroup.systemd_run_argv("u", memory_bytes=1, pids=1,
                                                            user=False)
    scope = Mechanism("systemd", user=False).create("u", memory_bytes=1, pids=1)
    assert isinstance(scope, SystemdScope) and scope.preexec is None
    assert scope.command_prefix[0] == "systemd-run" and scope.remove()


def test_describe_says_which_caps_hold():
    assert sandbox_cgroup.describe(3072, 256, Mechanism("v2", base=Path("/x"))) == (
        "caps: memory 3072 MB and 256 processes per notebook (cgroup v2, delegated subtree)")
    assert sandbox_cgroup.describe(3072, 256, Mechanism("v1")).endswith("(cgroup v1)")
    assert "systemd-run scope" in sandbox_cgroup.describe(1, 2, Mechanism("systemd"))
    assert sandbox_cgroup.describe(3072, 256, Mechanism("rlimits")) == (
        "caps: memory 3072 MB per process and 256 processes per notebook "
        "(per-process rlimits only: no writable cgroup)")


def test_start_up_line_of_autograde_and_verify():
    assert "unsandboxed" in kernels.check_sandbox(False)
    line = kernels.check_sandbox(True, 2048)
    assert line.startswith("caps: memory 2048 MB") and sandbox_cgroup.mechanism().kind in (
        "v1", "v2", "systemd", "rlimits")


# --------------------------------------------------------------------------- systemd-run, wrapped


def test_sandbox_command_runs_inside_the_scope_wrapper(tmp_path, monkeypatch):
    """A real sandboxed kernel started through a fake systemd-run (records, then execs)."""
    ok, why = sandbox.sandbox_available()
    if not ok:
        pytest.skip(why)
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for tool in ("systemd-run", "systemctl"):
        script = bin_dir / tool
        script.write_text(textwrap.dedent(f"""\
            #!/bin/sh
            echo "{tool} $*" >> {log}
            while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done
            [ "$#" -gt 0 ] && shift && exec "$@"
            exit 0
            """))
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(sandbox, "mechanism", lambda: Mechanism("systemd", user=False))
    work, lib = tmp_path / "work", tmp_path / "lib"
    work.mkdir()
    (lib / "cs231n_lib").mkdir(parents=True)
    limits = sandbox.SandboxLimits(memory_mb=1024, nproc=64, disk_mb=32)
    km = sandbox.make_kernel_manager(work, library_dir=lib, limits=limits, env={})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    try:
        NotebookClient(nb, km=km, timeout=20).execute()
    finally:
        asyncio.run(km.shutdown_kernel())
    assert nb.cells[0].outputs[0]["text"] == "42\n"
    run, *kills = log.read_text().splitlines()
    unit = km.sandbox_cgroup.unit
    assert run.startswith(f"systemd-run --scope --quiet --collect --unit={unit} -p "
                          f"MemoryMax={1024 * MB} -p MemorySwapMax=0 -p TasksMax=68 -- bwrap ")
    assert kills and set(kills) == {f"systemctl kill --signal=SIGKILL {unit}.scope"}
    assert not km.runtime_dir.exists() and not km.provisioner.has_process
