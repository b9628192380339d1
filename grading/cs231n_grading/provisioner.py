"""Kernel provisioners: how the grader's kernels start, die and are cleaned up.

jupyter_client (>= 7) delegates a kernel's process to a *kernel provisioner*
(``jupyter_client.provisioning.LocalProvisioner`` by default): ``pre_launch`` prepares the
command and the connection file, ``launch_kernel`` starts the process, ``kill``/``terminate``
end it and ``cleanup`` releases what it held. The grader's kernel managers
(``cs231n_grading.sandbox.make_kernel_manager``, ``cs231n_grading.kernels.make_kernel_manager``)
are given one of the two below as their ``provisioner`` before the kernel starts, so everything
the grader changes about a kernel's life goes through that public interface:

- ``SandboxProvisioner``: the kernel command is bubblewrap (options passed in a memfd), started
  inside the sandbox's cgroup or systemd scope (``cs231n_grading.sandbox_cgroup``); killing it
  kills the sandbox's pid 1 (its PID namespace dies with it) and the group; cleanup removes the
  runtime folder (connection file) and the group.
- ``LocalDirProvisioner``: an unsandboxed kernel in ``workdir`` with a fixed environment,
  talking over unix sockets in a private folder removed at cleanup.

That a manager uses the provisioner it was given is checked at start-up by
``cs231n_grading.jupyter_compat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from cs231n_grading.sandbox_argv import CONNECTION_COPY, KERNEL_DIR
from cs231n_grading.sandbox_cgroup import Cgroup, SystemdScope

STDERR_TAIL = 16384
KILL_WAIT = 2.0  # seconds bwrap gets to exit after the sandbox's pid 1 is killed


class SandboxProvisioner(LocalProvisioner):
    """Starts, kills and cleans up one bubblewrap sandbox (see the module docstring).

    ``runtime_dir`` holds the grader's connection file (removed by ``cleanup``); ``caps`` is
    the sandbox's cgroup or systemd scope (None: rlimits only). After launch, ``sandbox_pid`` is
    the host pid of the sandbox's pid 1 and ``stderr`` the last bytes the sandbox wrote there.
    """

    def __init__(self, *, runtime_dir: Path, caps: Cgroup | SystemdScope | None, **kw):
        super().__init__(**kw)
        self.runtime_dir = runtime_dir
        self.caps = caps
        self.sandbox_pid: int | None = None
        self.stderr = bytearray()

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        """Point the connection file at the runtime folder (again, on a restart)."""
        self.parent.ip = str(self.runtime_dir / "kernel")
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        """Start bwrap; return the connection info the grader uses: ipc sockets reached through
        ``/proc/<sandbox pid 1>/root``."""
        # bwrap binds a copy of the connection file: the kernel manager rewrites the file
        # itself with the /proc address below, possibly while bwrap is still binding.
        copy = self.runtime_dir / CONNECTION_COPY
        shutil.copyfile(self.runtime_dir / "kernel.json", copy)
        os.chmod(copy, 0o600)
        info_r, info_w = os.pipe()
        err_r, err_w = os.pipe()
        # bwrap reads its options from a memfd: the sandbox's pid 1 is bwrap, and its
        # /proc/1/cmdline would otherwise show the student the host paths it binds.
        split = cmd.index("--")
        args_fd = os.memfd_create("bwrap-args")
        os.write(args_fd, b"".join(a.encode() + b"\0" for a in cmd[1:split]))
        os.lseek(args_fd, 0, os.SEEK_SET)
        prefix = list(self.caps.command_prefix) if self.caps is not None else []
        cmd = [*prefix, cmd[0], "--info-fd", str(info_w), "--args", str(args_fd), *cmd[split:]]
        kwargs.update(pass_fds=(info_w, args_fd), stdout=subprocess.DEVNULL, stderr=err_w)
        if self.caps is not None and self.caps.preexec is not None:
            kwargs["preexec_fn"] = self.caps.preexec  # bwrap and all it starts
        try:
            info = await super().launch_kernel(cmd, **kwargs)
        finally:
            for fd in (info_w, err_w, args_fd):
                os.close(fd)
        self.stderr = bytearray()
        threading.Thread(target=_drain, args=(err_r, self.stderr), daemon=True).start()
        # No asyncio.to_thread here: in a worker forked from a process whose event loop already
        # had a default executor, that executor's threads are gone and the call never runs.
        self.sandbox_pid = _read_child_pid(info_r)
        info["ip"] = self.parent.ip = f"/proc/{self.sandbox_pid}/root{KERNEL_DIR}/kernel"
        # Safety net for a manager dropped without shutdown_kernel(): kill the sandbox when it is
        # garbage-collected or at interpreter exit.
        weakref.finalize(self, _kill_sandbox, self.process.pid, self.sandbox_pid, self.caps,
                         self.runtime_dir)
        return info

    def kill_now(self, sandbox_pid: int | None) -> None:
        """Kill the sandbox from any thread if it is still ``sandbox_pid`` (not a restarted one);
        the kernel manager then reports a dead kernel."""
        bwrap = self.process
        if bwrap is not None and sandbox_pid and sandbox_pid == self.sandbox_pid:
            _kill_sandbox(bwrap.pid, self.sandbox_pid, self.caps)

    async def kill(self, restart: bool = False) -> None:
        """SIGKILL the sandbox's pid 1 first: the PID namespace dies with it and bwrap, its
        parent, reaps it and exits. Killing bwrap first would leave pid 1 a zombie for the
        host's init. bwrap itself is SIGKILLed if it has not exited within KILL_WAIT."""
        if self.process is not None and self.sandbox_pid:
            _kill_sandbox(self.process.pid, self.sandbox_pid, self.caps)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wait(), timeout=KILL_WAIT)
        if self.process is not None:
            await super().kill(restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        """Nothing in the sandbox needs a graceful exit: the same as ``kill``."""
        await self.kill(restart=restart)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the runtime folder and the sandbox's group (not on a restart). Safe to repeat."""
        await super().cleanup(restart=restart)
        if restart:
            return
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        if self.caps is not None:
            self.caps.kill()
            for _ in range(100):  # its processes are SIGKILLed: gone within milliseconds
                if self.caps.remove(wait=0):
                    break
                await asyncio.sleep(0.02)


class LocalDirProvisioner(LocalProvisioner):
    """An unsandboxed kernel in ``workdir`` with exactly ``kernel_env`` as its environment.

    ZeroMQ runs over unix sockets in a private folder, not TCP: kernels started at the same
    moment by parallel workers cannot race for the same free port. The folder is made when the
    kernel starts (a manager that never starts leaves nothing behind), kept across restarts and
    removed by the final ``cleanup``.
    """

    def __init__(self, *, workdir: Path, kernel_env: dict, **kw):
        super().__init__(**kw)
        self.workdir = str(workdir)
        self.kernel_env = kernel_env
        self.ipc_dir: str | None = None
        self._ipc_finalizer = None

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        if self.ipc_dir is None:
            self.ipc_dir = tempfile.mkdtemp(prefix="cs231n-k")
            self.parent.ip = os.path.join(self.ipc_dir, "k")
            # safety net for a manager dropped without cleanup: remove it when collected
            self._ipc_finalizer = weakref.finalize(self, shutil.rmtree, self.ipc_dir,
                                                   ignore_errors=True)
        kwargs["env"] = dict(self.kernel_env)
        kwargs["cwd"] = self.workdir
        kwargs["stdout"] = kwargs["stderr"] = subprocess.DEVNULL  # kernel chatter is not ours
        return await super().pre_launch(**kwargs)

    async def cleanup(self, restart: bool = False) -> None:
        await super().cleanup(restart=restart)
        if not restart and self.ipc_dir is not None:
            self._ipc_finalizer()  # removes the folder, once
            self.ipc_dir = None


def _kill_sandbox(bwrap_pid: int, pid1: int, caps: Cgroup | SystemdScope | None,
                  runtime_dir: Path | None = None) -> None:
    """SIGKILL the sandbox's pid 1 (if it is still bwrap's child: no pid reuse) and its group;
    with ``runtime_dir``, also remove that and the group (the garbage-collection path)."""
    if _parent_pid(pid1) == bwrap_pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid1, signal.SIGKILL)
    if caps is not None:
        caps.kill()
    if runtime_dir is not None:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        if caps is not None:
            caps.remove(wait=0.5)


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
