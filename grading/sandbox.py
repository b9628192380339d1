"""Run a student's kernel inside a bubblewrap sandbox: the kernel manager and client.

The bwrap command line itself (filesystem, namespaces, limits, environment) is built by
``grading.sandbox_argv``; the jupyter_client internals overridden here are listed and checked in
``grading.jupyter_compat``.

The grader executes untrusted notebooks. ``make_kernel_manager`` returns a jupyter_client
``AsyncKernelManager`` (what ``nbclient.NotebookClient(km=...)`` drives) whose kernel runs under
bubblewrap (``bwrap``) with:

- its own PID, IPC, UTS, cgroup and network namespaces: no network at all (only a loopback of its
  own), no view of host processes, and when bwrap dies every process inside dies (the sandbox's
  pid 1 gets SIGKILL from ``--die-with-parent``; a PID namespace dies with its pid 1);
- a filesystem made only of read-only system directories (/usr, /etc, /lib*, the Python
  installation, the project's virtualenv) plus ``library_dir`` (the student edition of the library,
  first on PYTHONPATH) and optionally ``data_dir``, both read-only. The repository, the course
  directory, the gradebook and other students' work are simply not there;
- a private copy of ``workdir`` at ``/home/student/work`` (the cwd) on a tmpfs capped at
  ``disk_mb``, and ``/tmp`` and ``/dev/shm`` on capped tmpfs mounts too: the kernel cannot fill the
  host's disk, nor write anything the grader reads back;
- rlimits (address space, processes, CPU seconds, file size, open files, no core files) and
  ``oom_score_adj=1000``, so under memory pressure the kernel is killed before anything else; and
  where the machine allows it (grading/sandbox_cgroup.py), a memory cgroup capping the whole
  process tree at ``memory_mb`` (tmpfs pages included) and a pids cgroup;
- when the grader runs as root: a uid of its own (random, above 2,000,000, no capabilities) inside,
  because the kernel exempts uid 0 from RLIMIT_NPROC and a uid shared with other sandboxes would
  share their process budget. When the grader is an ordinary user, bubblewrap maps that user into
  a fresh user namespace, where Linux (>= 5.14) counts RLIMIT_NPROC per namespace.

The kernel talks to the grader over ZeroMQ ``ipc`` sockets (unix sockets in a small tmpfs inside
the sandbox, which the grader reaches through ``/proc/<sandbox pid 1>/root``), so it needs no
network and has no writable path on the host. Interrupts are sent as ``interrupt_request``
messages: the kernel is in its own session, out of reach of signals sent to the bwrap process
group. nbclient does not shut down a kernel whose manager it was given: use
``client.setup_kernel(cleanup_kc=True)`` or ``await km.shutdown_kernel()`` when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from pathlib import Path

import zmq
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec
from traitlets import Type
from zmq.utils.monitor import recv_monitor_message

from grading.jupyter_compat import bind_public_aliases, pending_state
from grading.sandbox_argv import (
    CONNECTION_IN,
    KERNEL_DIR,
    LAUNCHER,
    MB,
    SANDBOX_HOME,
    SUBMISSION_DIR,
    UID_BASE,
    UID_SPAN,
    WORK_DIR,
    SandboxLimits,
    bwrap_argv,
    kernel_env,
    privileged,
    sandbox_available,
)
from grading.sandbox_cgroup import Cgroup

__all__ = ["UID_BASE", "SandboxKernelClient", "SandboxKernelManager", "SandboxLimits",
           "make_kernel_manager", "sandbox_available"]

STDERR_TAIL = 16384
PIDS_SLACK = 4  # pids cgroup: bwrap, the sandbox's pid 1, and spare, on top of ``nproc``


def _share_read_only(top: Path) -> None:
    """Make ``top`` readable by the sandbox uid (o+r files, o+rx dirs); used as root only.

    ``top`` is the student edition of the library or the datasets: material every student has.
    """
    for p in [top, *top.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        extra = 0o005 if p.is_dir() else 0o004 | (0o001 if mode & 0o100 else 0)
        if mode & extra != extra:
            p.chmod(mode | extra)



@bind_public_aliases
class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel command is bwrap + launcher + ipykernel.

    Built by ``make_kernel_manager``. The kernel binds its ipc sockets in /run/kernel, a small
    tmpfs inside the sandbox; the grader reaches them through ``/proc/<sandbox pid 1>/root``
    (bwrap reports that pid on ``--info-fd``), so the kernel has no writable path on the host.
    ``sandbox_uid`` is the kernel's uid (None when the grader is not root), ``sandbox_pid`` the
    host pid of the sandbox's pid 1, ``stderr_tail()`` the last bytes the sandbox wrote to stderr.
    ``runtime_dir`` (connection file) is removed by ``cleanup_resources``.
    """

    sandbox_spec: KernelSpec | None = None
    sandbox_uid: int | None = None
    sandbox_pid: int | None = None
    sandbox_cgroup: Cgroup | None = None
    runtime_dir: Path | None = None
    max_message_bytes: int = SandboxLimits().message_mb * MB  # set by make_kernel_manager
    client_factory = Type("grading.sandbox.SandboxKernelClient",  # a public, configurable trait
                          klass="jupyter_client.asynchronous.AsyncKernelClient")
    _stderr: bytearray | None = None

    @property
    def kernel_spec(self) -> KernelSpec | None:
        return self.sandbox_spec

    def client(self, **kwargs):
        """A client whose sockets refuse any message over ``max_message_bytes`` (ZMQ_MAXMSGSIZE):
        one huge print must not make the grader allocate gigabytes before output capping. ZeroMQ
        then drops the connection for good, so the client kills the sandbox when its output
        channel disconnects: the caller sees a dead kernel instead of silently lost outputs.

        The client makes (and destroys) its own context; the cap is a default option of that
        context, so every socket the client opens carries it."""
        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        kc.on_output_lost = functools.partial(self._kill_now, self.sandbox_pid)
        return kc

    def _kill_now(self, sandbox_pid: int | None) -> None:
        """Kill the sandbox from any thread if it is still ``sandbox_pid`` (not a restarted one);
        the kernel manager then reports a dead kernel."""
        bwrap = self.provisioner.process if self.provisioner else None
        if bwrap is not None and sandbox_pid and sandbox_pid == self.sandbox_pid:
            _kill_sandbox(bwrap.pid, self.sandbox_pid, self.sandbox_cgroup)

    def stderr_tail(self) -> str:
        """The last STDERR_TAIL bytes the launcher/kernel wrote to stderr (startup failures)."""
        return bytes(self._stderr or b"").decode(errors="replace")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        assert self.runtime_dir is not None
        self.ip = str(self.runtime_dir / "kernel")  # what the connection file says (restarts)
        info_r, info_w = os.pipe()
        err_r, err_w = os.pipe()
        # bwrap reads its options from a memfd: the sandbox's pid 1 is bwrap, and its
        # /proc/1/cmdline would otherwise show the student the host paths it binds.
        split = kernel_cmd.index("--")
        args_fd = os.memfd_create("bwrap-args")
        os.write(args_fd, b"".join(a.encode() + b"\0" for a in kernel_cmd[1:split]))
        os.lseek(args_fd, 0, os.SEEK_SET)
        cmd = [kernel_cmd[0], "--info-fd", str(info_w), "--args", str(args_fd),
               *kernel_cmd[split:]]
        kw.update(pass_fds=(info_w, args_fd), stdout=subprocess.DEVNULL, stderr=err_w)
        if self.sandbox_cgroup is not None:
            kw["preexec_fn"] = self.sandbox_cgroup.enter  # bwrap and all it starts
        try:
            await super()._async_launch_kernel(cmd, **kw)
        finally:
            for fd in (info_w, err_w, args_fd):
                os.close(fd)
        self._stderr = bytearray()
        threading.Thread(target=_drain, args=(err_r, self._stderr), daemon=True).start()
        # No asyncio.to_thread here: in a worker forked from a process whose event loop already
        # had a default executor, that executor's threads are gone and the call never runs.
        self.sandbox_pid = _read_child_pid(info_r)
        self.ip = f"/proc/{self.sandbox_pid}/root{KERNEL_DIR}/kernel"
        # Safety net for a manager dropped without shutdown_kernel(): kill the sandbox when it is
        # garbage-collected or at interpreter exit.
        weakref.finalize(self, _kill_sandbox, self.provisioner.process.pid, self.sandbox_pid,
                         self.sandbox_cgroup, self.runtime_dir)

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        # SIGKILL the sandbox's pid 1 first: the PID namespace dies with it and bwrap, its parent,
        # reaps it and exits. Killing bwrap first would leave pid 1 a zombie for the host's init.
        bwrap = self.provisioner.process if self.provisioner else None
        if bwrap is not None and self.sandbox_pid:
            _kill_sandbox(bwrap.pid, self.sandbox_pid, self.sandbox_cgroup)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.provisioner.wait(), timeout=2)
        if self.has_kernel:
            await super()._async_kill_kernel(restart=restart)
            await self.provisioner.wait()

    @pending_state
    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Kill the sandbox at once (nothing in it needs a graceful exit). Safe to repeat, and
        after the kernel died: call it once nbclient is done, as nbclient leaves running a kernel
        whose manager it was given."""
        self.shutting_down = True
        if self.has_kernel:
            await self._async_kill_kernel(restart=restart)
        await self._async_cleanup_resources(restart=restart)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if not restart and self.sandbox_cgroup is not None:
            self.sandbox_cgroup.kill()
            for _ in range(100):  # its processes are SIGKILLed: gone within milliseconds
                if self.sandbox_cgroup.remove(wait=0):
                    break
                await asyncio.sleep(0.02)


class SandboxKernelClient(AsyncKernelClient):
    """An AsyncKernelClient calling ``on_output_lost()`` once its iopub connection drops."""

    on_output_lost = None

    def start_channels(self, *args, **kwargs) -> None:
        super().start_channels(*args, **kwargs)
        if self.on_output_lost is not None and self._iopub_channel is not None:
            address = f"inproc://iopub-monitor-{id(self)}"
            self.iopub_channel.socket.monitor(address, zmq.EVENT_DISCONNECTED)
            shadow = zmq.Context.shadow(self.context.underlying)
            threading.Thread(target=_watch_disconnect, daemon=True,
                             args=(shadow, address, self.on_output_lost)).start()


def _watch_disconnect(context: zmq.Context, address: str, callback) -> None:
    """Call ``callback`` on the first disconnect the socket monitor at ``address`` reports."""
    monitor = context.socket(zmq.PAIR)
    try:
        monitor.connect(address)
        while True:
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                callback()
                return
            if event == zmq.EVENT_MONITOR_STOPPED:
                return
    except zmq.ZMQError:  # the client's context is gone
        return
    finally:
        monitor.close(linger=0)


def _kill_sandbox(bwrap_pid: int, pid1: int, cgroup: Cgroup | None,
                  runtime_dir: Path | None = None) -> None:
    """SIGKILL the sandbox's pid 1 (if it is still bwrap's child: no pid reuse) and its cgroup;
    with ``runtime_dir``, also remove that and the cgroup (the garbage-collection path)."""
    if _parent_pid(pid1) == bwrap_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid1, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill()
    if runtime_dir is not None:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if cgroup is not None:
            cgroup.remove(wait=0.5)


def _parent_pid(pid: int) -> int | None:
    """The parent of host process ``pid``, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def _drain(fd: int, tail: bytearray) -> None:
    """Read pipe ``fd`` to its end, keeping only its last STDERR_TAIL bytes in ``tail``."""
    with os.fdopen(fd, "rb", buffering=0) as stream:
        for chunk in iter(lambda: stream.read(65536), b""):
            tail += chunk
            del tail[:-STDERR_TAIL]


def _read_child_pid(fd: int, timeout: float = 60) -> int:
    """The host pid of the sandbox's pid 1, from bwrap's --info-fd JSON; closes ``fd``.

    Reads until the JSON is complete (or EOF: bwrap failed), not until EOF: a process forked
    meanwhile by the grader may hold the pipe's write end open."""
    text, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], deadline - time.monotonic())[0]:
                break
            chunk = os.read(fd, 4096)
            text += chunk
            with contextlib.suppress(ValueError, KeyError):
                return int(json.loads(text)["child-pid"])
            if not chunk:
                break
    finally:
        os.close(fd)
    raise RuntimeError(f"bubblewrap did not start the sandbox (info: {text.decode()!r})")


def make_kernel_manager(
    workdir: Path, *, library_dir: Path, limits: SandboxLimits, env: dict,
    data_dir: Path | None = None,
) -> SandboxKernelManager:
    """A kernel manager for one sandboxed run of a notebook in ``workdir``.

    Inputs:
    - workdir: the submission's files; the kernel gets a private copy at /home/student/work (its
      cwd), so nothing it writes reaches the host. At most ``limits.disk_mb`` in total.
    - library_dir: directory holding the student edition ``cs231n_lib/``; read-only, first on
      PYTHONPATH. When the grader is root it is made world-readable (o+rX) for the sandbox uid.
    - limits: SandboxLimits.
    - env: extra environment variables for the kernel (e.g. ``{"CS231N_GRADING": "1"}``); the
      grader's own environment is not passed on.
    - data_dir: optional datasets directory, read-only, exported as $CS231N_DATA_DIR.

    Returns:
    - km: a SandboxKernelManager to hand to ``nbclient.NotebookClient(nb, km=km)``; shutting it
      down kills every process of the sandbox.
    """
    ok, why = sandbox_available()
    if not ok:
        raise RuntimeError(f"cannot sandbox the kernel: {why}")
    dirs = {"workdir": workdir, "library_dir": library_dir}
    if data_dir is not None:
        dirs["data_dir"] = data_dir
    for name, d in dirs.items():
        if not Path(d).is_dir():
            raise ValueError(f"{name}={str(d)!r} is not a directory")
    workdir, library_dir = Path(workdir).resolve(), Path(library_dir).resolve()
    data_dir = None if data_dir is None else Path(data_dir).resolve()

    uid = UID_BASE + secrets.randbelow(UID_SPAN) if privileged() else None
    if uid is not None:
        for d in filter(None, (library_dir, data_dir)):
            _share_read_only(d)
    runtime_dir = Path(tempfile.mkdtemp(prefix="cs231n-kernel-"))  # 0700: the grader's only

    plan = {
        "source": SUBMISSION_DIR, "home": SANDBOX_HOME, "work": WORK_DIR,
        "connection_in": CONNECTION_IN, "kernel_dir": KERNEL_DIR, "uid": uid, "gid": uid,
        "rlimits": limits.rlimits(), "env": kernel_env(env, data_dir),
    }
    argv = bwrap_argv(workdir=workdir, library_dir=library_dir, data_dir=data_dir,
                      runtime_dir=runtime_dir, limits=limits)
    argv += [sys.executable, "-I", LAUNCHER, json.dumps(plan)]
    argv += [sys.executable, "-m", "ipykernel_launcher"]  # the launcher adds -f <its copy>

    km = SandboxKernelManager(kernel_name="python3", transport="ipc",
                              ip=str(runtime_dir / "kernel"),
                              connection_file=str(runtime_dir / "kernel.json"))
    km.sandbox_spec = KernelSpec(argv=argv, display_name="Python 3 (sandboxed)",
                                 language="python", interrupt_mode="message", env={})
    km.sandbox_uid = uid
    km.sandbox_cgroup = Cgroup.create(runtime_dir.name, pids=limits.nproc + PIDS_SLACK,
                                      memory_bytes=limits.memory_mb * MB)
    km.runtime_dir = runtime_dir
    km.max_message_bytes = limits.message_mb * MB
    return km
