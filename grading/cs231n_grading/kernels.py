"""Local (unsandboxed) kernel managers with the same call shape as ``cs231n_grading.sandbox``.

Used when the course config says ``sandbox = False`` (self-checks, tests, machines without
bubblewrap). The kernel runs as the grader's user: only for trusted notebooks or one's own work.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from jupyter_client import AsyncKernelManager

from cs231n_grading import jupyter_compat
from cs231n_grading.provisioner import LocalDirProvisioner
from cs231n_grading.sandbox_argv import DEFAULT_MEMORY_MB, SandboxLimits

# Variables of the grader's environment that must not leak into the kernel's imports.
_DROP = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "JPY_PARENT_PID")


class LocalKernelManager(AsyncKernelManager):
    """An AsyncKernelManager starting its kernel in ``workdir`` with a fixed environment, through
    a ``cs231n_grading.provisioner.LocalDirProvisioner`` (ZeroMQ over unix sockets in a private
    folder, removed by ``cleanup_resources``)."""

    def __init__(self, *, workdir: Path, kernel_env: dict, **kw):
        super().__init__(transport="ipc", kernel_id=str(uuid.uuid4()), **kw)
        self.provisioner = LocalDirProvisioner(workdir=workdir, kernel_env=kernel_env,
                                               kernel_id=self.kernel_id,
                                               kernel_spec=self.kernel_spec, parent=self)


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
    from cs231n_grading.sandbox import make_kernel_manager as make_sandboxed

    limits = SandboxLimits(cpu_seconds=int(notebook_timeout) + 60, memory_mb=int(memory_mb))
    return lambda: make_sandboxed(workdir, library_dir=library_dir, limits=limits, env=env,
                                  **extra)


def check_sandbox(sandbox: bool, memory_mb: int = DEFAULT_MEMORY_MB) -> str:
    """Raise RuntimeError with the reason when the kernel managers cannot work here (an
    incompatible jupyter_client, or a sandbox requested that cannot run); else return the
    start-up line saying which caps hold for each notebook's kernel."""
    jupyter_compat.check()
    if not sandbox:
        return "caps: none, kernels run unsandboxed (sandbox off: trusted notebooks only)"
    from cs231n_grading.sandbox_argv import sandbox_available
    from cs231n_grading.sandbox_cgroup import describe

    ok, why = sandbox_available()
    if not ok:
        raise RuntimeError(f"the grading sandbox is unavailable: {why}. Install it, or grade "
                           "without isolation (trusted submissions only) with --no-sandbox")
    return describe(memory_mb, SandboxLimits().nproc)
