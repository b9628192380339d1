"""Run a student's kernel inside a bubblewrap sandbox.

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
from dataclasses import asdict, dataclass
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import in_pending_state
from zmq.utils.monitor import recv_monitor_message

from grading.sandbox_cgroup import Cgroup

SANDBOX_HOME = "/home/student"
WORK_DIR = f"{SANDBOX_HOME}/work"  # the kernel's cwd: private copy of ``workdir``
LIBRARY_DIR = "/opt/cs231n/lib"  # ``library_dir``, read-only, first on PYTHONPATH
DATA_DIR = "/opt/cs231n/datasets"  # ``data_dir``, read-only, $CS231N_DATA_DIR
SUBMISSION_DIR = "/opt/cs231n/in/submission"  # ``workdir``, read-only, in a root-only directory
CONNECTION_IN = "/opt/cs231n/in/kernel.json"  # the grader's connection file, read-only
KERNEL_DIR = "/run/kernel"  # the kernel's ipc sockets and connection file (tmpfs)
KERNEL_DIR_MB = 1
STDERR_TAIL = 16384
LAUNCHER = "/opt/cs231n/launcher.py"
UID_BASE = 2_000_000  # sandbox uids (grader running as root): UID_BASE + random below UID_SPAN
UID_SPAN = 1_000_000
DEV_SHM_MB = 64  # /dev/shm cap (POSIX shared memory: multiprocessing locks, not bulk data)
MB = 1024 * 1024
PIDS_SLACK = 4  # pids cgroup: bwrap, the sandbox's pid 1, and spare, on top of ``nproc``
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource caps for one sandboxed kernel and every process it starts."""

    memory_mb: int = 3072  # RLIMIT_AS of each process; the whole tree's cap where cgroups allow
    nproc: int = 256  # RLIMIT_NPROC: processes + threads of the sandbox uid (fork bombs)
    cpu_seconds: int = 900  # RLIMIT_CPU of each process
    file_size_mb: int = 64  # RLIMIT_FSIZE: largest file a process may write
    disk_mb: int = 256  # size of the tmpfs holding the student's dir, and of the one on /tmp
    open_files: int = 256  # RLIMIT_NOFILE
    message_mb: int = 64  # largest ZeroMQ message the grader accepts from the kernel

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SandboxLimits.{name}={value!r} must be a positive int")

    def rlimits(self) -> dict[str, int]:
        """The ``resource`` module's names and values the launcher applies."""
        return {
            "RLIMIT_AS": self.memory_mb * MB,
            "RLIMIT_NPROC": self.nproc,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_FSIZE": self.file_size_mb * MB,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
        }


def _privileged() -> bool:
    """bwrap run by root sets up mounts itself; anyone else goes through a user namespace."""
    return os.geteuid() == 0


def _parents(dest: str) -> list[str]:
    """``--dir`` arguments making the ancestors of ``dest`` traversable (bwrap's default: 0700)."""
    args: list[str] = []
    for parent in reversed(Path(dest).parents[:-1]):
        args += ["--perms", "0755", "--dir", str(parent)]
    return args


def _ro_system(paths) -> list[str]:
    """bwrap arguments exposing host ``paths`` read-only at the same place (symlinks as such)."""
    args: list[str] = []
    for p in paths:
        if os.path.islink(p):
            args += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            args += [*_parents(p), "--ro-bind", p, p]
    return args


def _python_dirs() -> list[str]:
    """The interpreter's installation and the virtualenv, unless already under a system dir."""
    dirs = {sys.prefix, sys.base_prefix, str(Path(sys.executable).resolve().parent.parent)}
    return sorted(d for d in dirs if not any(Path(d).is_relative_to(s) for s in SYSTEM_DIRS))


def _namespace_args() -> list[str]:
    """New namespaces for everything; a user namespace only when bwrap is not run by root."""
    if not _privileged():
        return ["--unshare-all"]  # includes the user namespace and the network
    unshare = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    caps = [a for c in CAPABILITIES for a in ("--cap-add", c)]  # for the launcher; dropped by it
    return unshare + ["--unshare-cgroup-try"] + caps


def _tmpfs(path: str, size_mb: int, perms: str) -> list[str]:
    return ["--perms", perms, "--size", str(size_mb * MB), "--tmpfs", path]


def bwrap_argv(
    *, workdir: Path, library_dir: Path, data_dir: Path | None, runtime_dir: Path,
    limits: SandboxLimits,
) -> list[str]:
    """bwrap and its options, up to and including ``--``: the sandbox's whole filesystem."""
    argv = ["bwrap", *_namespace_args(), "--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--hostname", "sandbox"]
    argv += _ro_system(SYSTEM_DIRS)
    argv += ["--proc", "/proc", "--dev", "/dev", *_tmpfs("/dev/shm", DEV_SHM_MB, "1777")]
    argv += ["--remount-ro", "/dev"]  # bwrap's /dev is an uncapped tmpfs; device nodes still work
    argv += _tmpfs("/tmp", limits.disk_mb, "1777")
    argv += [*_parents(KERNEL_DIR), *_tmpfs(KERNEL_DIR, KERNEL_DIR_MB, "0700")]
    argv += [*_parents(SANDBOX_HOME), *_tmpfs(SANDBOX_HOME, limits.disk_mb, "0755")]
    # The interpreter and the venv go on top of the tmpfs mounts: a checkout under /tmp (as CI
    # may use) would otherwise be hidden by the sandbox's own /tmp.
    argv += _ro_system(_python_dirs())
    argv += [*_parents(LAUNCHER), "--perms", "0700", "--dir", str(Path(SUBMISSION_DIR).parent)]
    argv += ["--ro-bind", str(workdir), SUBMISSION_DIR]
    argv += ["--ro-bind", str(runtime_dir / "kernel.json"), CONNECTION_IN]
    argv += ["--ro-bind", str(library_dir), LIBRARY_DIR]
    if data_dir is not None:
        argv += ["--ro-bind", str(data_dir), DATA_DIR]
    argv += ["--ro-bind", str(Path(__file__).with_name("sandbox_launcher.py")), LAUNCHER]
    argv += ["--remount-ro", "/", "--chdir", "/", "--"]
    return argv


def _kernel_env(env: dict, data_dir: Path | None) -> dict[str, str]:
    """The kernel's whole environment: nothing leaks in from the grader's."""
    venv_bin = str(Path(sys.executable).parent)
    out = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "USER": "student",
        "LOGNAME": "student",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "MPLBACKEND": "Agg",
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    if data_dir is not None:
        out["CS231N_DATA_DIR"] = DATA_DIR
    out.update({str(k): str(v) for k, v in env.items()})
    path = out.get("PYTHONPATH")
    out["PYTHONPATH"] = LIBRARY_DIR + (f":{path}" if path else "")
    return out


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


@functools.lru_cache(maxsize=1)
def sandbox_available() -> tuple[bool, str]:
    """Whether sandboxed kernels can run here, and if not, why (a sentence for the instructor)."""
    if not sys.platform.startswith("linux"):
        return False, f"the grading sandbox needs Linux (bubblewrap); this is {sys.platform}"
    if shutil.which("bwrap") is None:
        return False, ("bubblewrap is not installed: `apt-get install bubblewrap` "
                       "(or dnf/pacman install bubblewrap)")
    probe = ["bwrap", *_namespace_args(), "--die-with-parent", "--clearenv",
             *_ro_system(SYSTEM_DIRS), "--proc", "/proc", "--dev", "/dev", "--", "/bin/true"]
    try:
        r = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"bubblewrap could not start: {e}"
    if r.returncode != 0:
        hint = "" if _privileged() else (" (run as root, or enable unprivileged user namespaces: "
                                         "sysctl kernel.unprivileged_userns_clone=1 / "
                                         "user.max_user_namespaces)")
        return False, f"bubblewrap failed: {r.stderr.strip()}{hint}"
    return True, "bubblewrap " + ("as root, one uid per sandbox" if _privileged()
                                  else "in an unprivileged user namespace")


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
    max_message_bytes: int = 64 * 1024 * 1024
    _stderr: bytearray | None = None

    @property
    def kernel_spec(self) -> KernelSpec | None:
        return self.sandbox_spec

    def client(self, **kwargs):
        """A client whose sockets refuse any message over ``max_message_bytes`` (ZMQ_MAXMSGSIZE):
        one huge print must not make the grader allocate gigabytes before output capping. ZeroMQ
        then drops the connection for good, so the client kills the sandbox when its output
        channel disconnects: the caller sees a dead kernel instead of silently lost outputs."""
        context = zmq.asyncio.Context()
        context.setsockopt(zmq.MAXMSGSIZE, self.max_message_bytes)
        kc = SandboxKernelClient(**(self._client_kwargs() | {"context": context} | kwargs))
        kc._created_context = True  # destroyed with the client
        kc.on_output_lost = functools.partial(self._kill_now, self.sandbox_pid)
        return kc

    def _client_kwargs(self) -> dict:
        kw = dict(self.get_connection_info(session=True))
        kw.update(connection_file=self.connection_file, parent=self)
        return kw

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

    @in_pending_state
    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        """Kill the sandbox at once (nothing in it needs a graceful exit). Safe to repeat, and
        after the kernel died: call it once nbclient is done, as nbclient leaves running a kernel
        whose manager it was given."""
        self.shutting_down = True
        if self.has_kernel:
            await self._async_kill_kernel(restart=restart)
        await self._async_cleanup_resources(restart=restart)

    shutdown_kernel = _async_shutdown_kernel

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

    cleanup_resources = _async_cleanup_resources


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

    uid = UID_BASE + secrets.randbelow(UID_SPAN) if _privileged() else None
    if uid is not None:
        for d in filter(None, (library_dir, data_dir)):
            _share_read_only(d)
    runtime_dir = Path(tempfile.mkdtemp(prefix="cs231n-kernel-"))  # 0700: the grader's only

    plan = {
        "source": SUBMISSION_DIR, "home": SANDBOX_HOME, "work": WORK_DIR,
        "connection_in": CONNECTION_IN, "kernel_dir": KERNEL_DIR, "uid": uid, "gid": uid,
        "rlimits": limits.rlimits(), "env": _kernel_env(env, data_dir),
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
