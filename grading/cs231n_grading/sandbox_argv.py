"""The bubblewrap command line of a sandboxed kernel: its filesystem, namespaces and limits.

No jupyter_client here: ``SandboxLimits`` (the caps), ``bwrap_argv`` (bwrap's options: the
sandbox's whole filesystem), ``kernel_env`` (the kernel's whole environment) and
``sandbox_available`` (whether bubblewrap runs on this machine). ``cs231n_grading.sandbox``
builds the kernel manager that launches this command; see its docstring for what the sandbox
guarantees.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_MEMORY_MB = 3072  # a kernel's memory cap unless the course config says otherwise
SANDBOX_HOME = "/home/student"
WORK_DIR = f"{SANDBOX_HOME}/work"  # the kernel's cwd: private copy of ``workdir``
LIBRARY_DIR = "/opt/cs231n/lib"  # ``library_dir``, read-only, first on PYTHONPATH
DATA_DIR = "/opt/cs231n/datasets"  # ``data_dir``, read-only, $CS231N_DATA_DIR
SUBMISSION_DIR = "/opt/cs231n/in/submission"  # ``workdir``, read-only, in a root-only directory
CONNECTION_IN = "/opt/cs231n/in/kernel.json"  # the grader's connection file, read-only
CONNECTION_COPY = "kernel-in.json"  # in ``runtime_dir``: the copy of it bound at CONNECTION_IN
KERNEL_DIR = "/run/kernel"  # the kernel's ipc sockets and connection file (tmpfs)
KERNEL_DIR_MB = 1
LAUNCHER = "/opt/cs231n/launcher.py"
LAUNCHER_SOURCE = Path(__file__).with_name("sandbox_launcher.py")  # bound at LAUNCHER
UID_BASE = 2_000_000  # sandbox uids (grader running as root): UID_BASE + random below UID_SPAN
UID_SPAN = 1_000_000
DEV_SHM_MB = 64  # /dev/shm cap (POSIX shared memory: multiprocessing locks, not bulk data)
MB = 1024 * 1024
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
CAPABILITIES = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID")


@dataclass(frozen=True)
class SandboxLimits:
    """Resource caps for one sandboxed kernel and every process it starts."""

    memory_mb: int = DEFAULT_MEMORY_MB  # RLIMIT_AS per process; whole tree where cgroups allow
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


def privileged() -> bool:
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
    if not privileged():
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
    argv += ["--ro-bind", str(runtime_dir / CONNECTION_COPY), CONNECTION_IN]
    argv += ["--ro-bind", str(library_dir), LIBRARY_DIR]
    if data_dir is not None:
        argv += ["--ro-bind", str(data_dir), DATA_DIR]
    argv += ["--ro-bind", str(LAUNCHER_SOURCE), LAUNCHER]
    argv += ["--remount-ro", "/", "--chdir", "/", "--"]
    return argv



def kernel_env(env: dict, data_dir: Path | None) -> dict[str, str]:
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
        hint = "" if privileged() else (" (run as root, or enable unprivileged user namespaces: "
                                         "sysctl kernel.unprivileged_userns_clone=1 / "
                                         "user.max_user_namespaces)")
        return False, f"bubblewrap failed: {r.stderr.strip()}{hint}"
    return True, "bubblewrap " + ("as root, one uid per sandbox" if privileged()
                                  else "in an unprivileged user namespace")

