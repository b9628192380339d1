"""Run a student's kernel inside a bubblewrap sandbox: the kernel manager and client.

The bwrap command line itself (filesystem, namespaces, limits, environment) is built by
``cs231n_grading.sandbox_argv``; the kernel's process (start, kill, cleanup) is handled by the
kernel provisioner ``cs231n_grading.provisioner.SandboxProvisioner``, jupyter_client's public
extension point, and ``cs231n_grading.jupyter_compat`` checks the installed release fits it.

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
  where the machine allows it (``cs231n_grading.sandbox_cgroup``: cgroup v2, a systemd-run
  scope or cgroup v1), a memory cap on the whole process tree at ``memory_mb`` (tmpfs pages
  included) and a cap on its process count;
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
import secrets
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import zmq
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec
from traitlets import Type
from zmq.utils.monitor import recv_monitor_message

from cs231n_grading.provisioner import SandboxProvisioner
from cs231n_grading.sandbox_argv import (
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
from cs231n_grading.sandbox_cgroup import Cgroup, SystemdScope, group_name, mechanism

__all__ = ["UID_BASE", "SandboxKernelClient", "SandboxKernelManager", "SandboxLimits",
           "make_kernel_manager", "sandbox_available"]

PIDS_SLACK = 4  # pids cap: bwrap, the sandbox's pid 1, and spare, on top of ``nproc``


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


class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel command is bwrap + launcher + ipykernel, started, killed
    and cleaned up by its ``provisioner``, a ``cs231n_grading.provisioner.SandboxProvisioner``.

    Built by ``make_kernel_manager``. The kernel binds its ipc sockets in /run/kernel, a small
    tmpfs inside the sandbox; the grader reaches them through ``/proc/<sandbox pid 1>/root``
    (bwrap reports that pid on ``--info-fd``), so the kernel has no writable path on the host.
    ``sandbox_uid`` is the kernel's uid (None when the grader is not root), ``sandbox_pid`` the
    host pid of the sandbox's pid 1, ``sandbox_cgroup`` its group or scope (None: rlimits only),
    ``stderr_tail()`` the last bytes the sandbox wrote to stderr. ``runtime_dir`` (connection
    file) is removed by ``cleanup_resources``.
    """

    sandbox_spec: KernelSpec | None = None
    sandbox_uid: int | None = None
    sandbox_cgroup: Cgroup | SystemdScope | None = None
    runtime_dir: Path | None = None
    max_message_bytes: int = SandboxLimits().message_mb * MB  # set by make_kernel_manager
    # a public, configurable trait
    client_factory = Type("cs231n_grading.sandbox.SandboxKernelClient",
                          klass="jupyter_client.asynchronous.AsyncKernelClient")

    @property
    def kernel_spec(self) -> KernelSpec | None:
        return self.sandbox_spec

    @property
    def sandbox_pid(self) -> int | None:
        """The host pid of the sandbox's pid 1 (None before the first start)."""
        return getattr(self.provisioner, "sandbox_pid", None)

    def client(self, **kwargs):
        """A client whose sockets refuse any message over ``max_message_bytes`` (ZMQ_MAXMSGSIZE):
        one huge print must not make the grader allocate gigabytes before output capping. ZeroMQ
        then drops the connection for good, so the client kills the sandbox when its output
        channel disconnects: the caller sees a dead kernel instead of silently lost outputs.

        The client makes (and destroys) its own context; the cap is a default option of that
        context, so every socket the client opens carries it."""
        kc = super().client(**kwargs)
        kc.context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        kc.on_output_lost = functools.partial(self.provisioner.kill_now, self.sandbox_pid)
        return kc

    def stderr_tail(self) -> str:
        """The last bytes (``provisioner.STDERR_TAIL``) the launcher/kernel wrote to stderr
        (startup failures)."""
        return bytes(getattr(self.provisioner, "stderr", b"")).decode(errors="replace")

    async def shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Kill the sandbox at once, whatever ``now`` says (nothing in it needs a graceful exit),
        then clean up. Safe to repeat, and after the kernel died: call it once nbclient is done,
        as nbclient leaves running a kernel whose manager it was given."""
        self.shutting_down = True
        if self.has_kernel:
            await self.provisioner.kill(restart=restart)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.provisioner.wait(), timeout=5)
        await self.cleanup_resources(restart=restart)


class SandboxKernelClient(AsyncKernelClient):
    """An AsyncKernelClient calling ``on_output_lost()`` once its iopub connection drops."""

    on_output_lost = None

    def start_channels(self, shell: bool = True, iopub: bool = True, stdin: bool = True,
                       hb: bool = True, control: bool = True) -> None:
        super().start_channels(shell=shell, iopub=iopub, stdin=stdin, hb=hb, control=control)
        if self.on_output_lost is not None and iopub:
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

    km = SandboxKernelManager(kernel_name="python3", transport="ipc", kernel_id=str(uuid.uuid4()),
                              ip=str(runtime_dir / "kernel"),
                              connection_file=str(runtime_dir / "kernel.json"))
    km.sandbox_spec = KernelSpec(argv=argv, display_name="Python 3 (sandboxed)",
                                 language="python", interrupt_mode="message", env={})
    km.sandbox_uid = uid
    km.sandbox_cgroup = mechanism().create(group_name(), pids=limits.nproc + PIDS_SLACK,
                                           memory_bytes=limits.memory_mb * MB)
    km.runtime_dir = runtime_dir
    km.max_message_bytes = limits.message_mb * MB
    km.provisioner = SandboxProvisioner(runtime_dir=runtime_dir, caps=km.sandbox_cgroup,
                                        kernel_id=km.kernel_id, kernel_spec=km.sandbox_spec,
                                        parent=km)
    return km
