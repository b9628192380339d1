"""Local (unsandboxed) kernel managers with the same call shape as ``grading.sandbox``.

Used when the course config says ``sandbox = False`` (self-checks, tests, machines without
bubblewrap). The kernel runs as the grader's user: only for trusted notebooks or one's own work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import weakref
from pathlib import Path

from jupyter_client import AsyncKernelManager

from grading import jupyter_compat
from grading.sandbox_argv import DEFAULT_MEMORY_MB

# Variables of the grader's environment that must not leak into the kernel's imports.
_DROP = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "JPY_PARENT_PID")


@jupyter_compat.bind_public_aliases
class LocalKernelManager(AsyncKernelManager):
    """An AsyncKernelManager starting its kernel in ``workdir`` with a fixed environment."""

    def __init__(self, *, workdir: Path, kernel_env: dict, **kw):
        # ZeroMQ over unix sockets in a private folder, not TCP: kernels started at the same
        # moment by parallel workers cannot race for the same free port. The folder is made
        # when the kernel starts (a manager that never starts leaves nothing behind).
        super().__init__(transport="ipc", **kw)
        self._ipc_dir: str | None = None
        self._workdir = str(workdir)
        self._kernel_env = kernel_env

    async def _async_pre_start_kernel(self, **kw):
        if self._ipc_dir is None:  # kept across restarts, removed at the final cleanup
            self._ipc_dir = tempfile.mkdtemp(prefix="cs231n-k")
            self.ip = os.path.join(self._ipc_dir, "k")
            # safety net for a manager dropped without cleanup: remove it when collected
            self._ipc_finalizer = weakref.finalize(self, shutil.rmtree, self._ipc_dir,
                                                   ignore_errors=True)
        kw["env"] = dict(self._kernel_env)
        kw["cwd"] = self._workdir
        kw["stdout"] = kw["stderr"] = subprocess.DEVNULL  # kernel chatter is not the grader's
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and self._ipc_dir is not None:
            self._ipc_finalizer()  # removes the folder, once
            self._ipc_dir = None

    # (bind_public_aliases: nbclient, cleaning up after a kernel that died, calls only
    # ``cleanup_resources``; without the alias the override above is skipped and the socket
    # folder is left behind.)


def kernel_env(library_dir: Path, env: dict) -> dict:
    """The kernel's environment: ours minus Python path tweaks, plus the library and ``env``."""
    out = {k: v for k, v in os.environ.items() if k not in _DROP}
    out.update({"PYTHONPATH": str(library_dir), "MPLBACKEND": "Agg",
                "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    out.update(env)
    return out


def make_kernel_manager(workdir: Path, *, library_dir: Path, limits=None,
                        env: dict | None = None, data_dir: Path | None = None
                        ) -> AsyncKernelManager:
    """A python3 kernel in ``workdir`` importing ``library_dir`` first; ``limits`` is ignored."""
    env = dict(env or {})
    if data_dir is not None:
        env["CS231N_DATA_DIR"] = str(data_dir)
    return LocalKernelManager(workdir=Path(workdir), kernel_env=kernel_env(library_dir, env),
                              kernel_name="python3")


THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
               "CS231N_NUM_THREADS")


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment giving a kernel ``threads`` threads for BLAS, OpenMP and the library's own
    parallel layers ({} for None: their defaults, one per CPU). Kernels graded side by side
    each get their share of the CPUs, so that they do not fight over them."""
    return {} if threads is None else dict.fromkeys(THREAD_VARS, str(max(1, int(threads))))


def kernel_factory(*, sandbox: bool, workdir: Path, library_dir: Path, env: dict,
                   notebook_timeout: float, memory_mb: int = DEFAULT_MEMORY_MB,
                   data_dir: Path | None = None):
    """A zero-argument callable returning a fresh kernel manager (sandboxed or local)."""
    extra = {"data_dir": data_dir} if data_dir is not None and Path(data_dir).is_dir() else {}
    if not sandbox:
        return lambda: make_kernel_manager(workdir, library_dir=library_dir, env=env, **extra)
    from grading.sandbox import make_kernel_manager as make_sandboxed
    from grading.sandbox_argv import SandboxLimits

    limits = SandboxLimits(cpu_seconds=int(notebook_timeout) + 60, memory_mb=int(memory_mb))
    return lambda: make_sandboxed(workdir, library_dir=library_dir, limits=limits, env=env,
                                  **extra)


def check_sandbox(sandbox: bool) -> None:
    """Raise RuntimeError with the reason when the kernel managers cannot work here: an
    incompatible jupyter_client, or a sandbox requested that cannot run."""
    jupyter_compat.check()
    if not sandbox:
        return
    from grading.sandbox_argv import sandbox_available

    ok, why = sandbox_available()
    if not ok:
        raise RuntimeError(f"the grading sandbox is unavailable: {why}. Install it, or grade "
                           "without isolation (trusted submissions only) with --no-sandbox")
