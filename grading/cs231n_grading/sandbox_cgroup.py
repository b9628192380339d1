"""A cap on a sandbox's whole process tree: memory (tmpfs pages included) and process count.

rlimits are per process: RLIMIT_AS caps each process, so ``nproc`` processes may together use
``nproc * memory_mb``, and tmpfs pages are nobody's address space. A memory cgroup charges all of
it (anonymous memory, tmpfs pages, kernel memory for inodes) to the sandbox and OOM-kills inside
the sandbox when it is full; a pids cgroup caps its processes whatever their uid.

Which mechanism a machine allows is probed once per process (``mechanism()``), in this order:

1. **cgroup v2, delegated subtree**: ``$CS231N_CGROUP``, or else the grader's own cgroup, is
   writable and offers the ``memory`` and ``pids`` controllers. Each sandbox gets a child
   ``cs231n-<pid>-<n>`` with ``memory.max``, ``memory.swap.max`` (0) and ``pids.max``; ``+memory
   +pids`` are enabled in the parent's ``cgroup.subtree_control`` when they are not yet. v2's
   no-internal-processes rule forbids that in a cgroup that holds processes (the grader's own
   usually does, unless it is the root cgroup), so on a systemd machine point
   ``$CS231N_CGROUP`` at an empty cgroup delegated to the grader's user.
2. **systemd-run scope**: ``systemd-run [--user] --scope -p MemoryMax= -p MemorySwapMax=0
   -p TasksMax=`` wraps the sandbox command (``--user`` unless the grader is root).
3. **cgroup v1**: ``memory`` and ``pids`` groups below the grader's own (root, with the v1
   hierarchies mounted, as on the course's reference VM).
4. **rlimits only**: ``create`` returns None; the sandbox relies on per-process rlimits plus
   ``oom_score_adj=1000`` (the kernel's OOM killer then picks sandbox processes first).

Every mechanism is probed by running ``/bin/true`` under it, so a group the grader may create
but not move processes into (v2's delegation rules) counts as unusable. ``describe()`` is the
one sentence ``cs231n-course autograde``/``verify`` print about it. The v2 code takes its
filesystem root as a parameter: tests run it against a fake cgroup tree.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import itertools
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")  # where the v1 hierarchies are mounted
ENV_VAR = "CS231N_CGROUP"  # a delegated v2 cgroup to create the sandboxes' groups in
V2_CONTROLLERS = ("memory", "pids")
PROBE_BYTES = 256 * 1024 * 1024  # limits of the probe's group: enough for /bin/true
PROBE_PIDS = 8
LABELS = {
    "v2": "cgroup v2, delegated subtree",
    "systemd": "systemd-run scope",
    "v1": "cgroup v1",
    "rlimits": "per-process rlimits only",
}
_names = itertools.count()


def group_name() -> str:
    """A fresh group name for this process: ``cs231n-<pid>-<n>``."""
    return f"cs231n-{os.getpid()}-{next(_names)}"


# --------------------------------------------------------------------------- groups


# Filesystem hooks: in cgroupfs, mkdir populates the interface files and rmdir removes a group
# that holds no process. Tests replace them to make a plain directory tree behave the same way.
_mkdir = os.mkdir
_rmdir = os.rmdir


@dataclass(frozen=True)
class Cgroup:
    """A sandbox's cgroup directories: v1 memory and pids groups, or one v2 group."""

    dirs: tuple[Path, ...]
    version: int = 1

    command_prefix: tuple[str, ...] = ()  # nothing wraps the sandbox command

    @classmethod
    def create(cls, name: str, *, memory_bytes: int, pids: int,
               root: Path = ROOT) -> Cgroup | None:
        """Make v1 groups ``name`` with their limits, or None if this machine does not allow it."""
        limits = {"memory": ("memory.limit_in_bytes", memory_bytes), "pids": ("pids.max", pids)}
        made: list[Path] = []
        try:
            for controller, (knob, value) in limits.items():
                parent = _own_v1_dir(controller, root)
                if parent is None:
                    raise OSError(f"no cgroup v1 {controller} hierarchy")
                _mkdir(parent / name)
                made.append(parent / name)
                (parent / name / knob).write_text(str(value))
        except OSError:
            cls(tuple(made)).remove(wait=0)
            return None
        return cls(tuple(made))

    @classmethod
    def create_v2(cls, base: Path, name: str, *, memory_bytes: int,
                  pids: int) -> Cgroup | None:
        """Make v2 group ``base/name`` with its limits, or None (see ``v2_problem`` for why)."""
        if v2_problem(base) is not None:
            return None
        group = base / name
        try:
            _mkdir(group)
        except OSError:
            return None
        made = cls((group,), version=2)
        try:
            (group / "memory.max").write_text(str(memory_bytes))
            (group / "pids.max").write_text(str(pids))
            if (group / "memory.swap.max").exists():  # absent without swap accounting
                (group / "memory.swap.max").write_text("0")
        except OSError:
            made.remove(wait=0)
            return None
        return made

    @property
    def preexec(self):
        """What the sandbox's first process runs before exec: ``enter``."""
        return self.enter

    def enter(self) -> None:
        """Move the calling process into the groups (run in the child, before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text("0")

    def kill(self) -> None:
        """SIGKILL every process still in the groups (v2: ``cgroup.kill`` where there is one)."""
        for d in self.dirs:
            if self.version == 2 and (d / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (d / "cgroup.kill").write_text("1")
            with contextlib.suppress(OSError):
                for pid in map(int, (d / "cgroup.procs").read_text().split()):
                    if pid > 0:  # never 0 or -1: those mean "my group" and "everyone"
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)

    def remove(self, wait: float = 2.0) -> bool:
        """Remove the groups once their processes are gone (kill() first), trying for ``wait``
        seconds; whether they are gone."""
        deadline = time.monotonic() + wait
        while True:
            for d in self.dirs:
                with contextlib.suppress(OSError):
                    _rmdir(d)
            if not any(d.exists() for d in self.dirs) or time.monotonic() >= deadline:
                return not any(d.exists() for d in self.dirs)
            time.sleep(0.02)


@dataclass(frozen=True)
class SystemdScope:
    """A transient systemd scope around the sandbox command (systemd applies the limits)."""

    unit: str
    command_prefix: tuple[str, ...]
    user: bool
    dirs: tuple[Path, ...] = ()  # systemd owns the cgroup; ``--collect`` removes it
    version: int = 2
    preexec = None

    def kill(self) -> None:
        """SIGKILL whatever is left in the scope (the PID namespace usually took it already)."""
        cmd = ["systemctl", *(["--user"] if self.user else []), "kill", "--signal=SIGKILL",
               f"{self.unit}.scope"]
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(cmd, capture_output=True, timeout=10)

    def remove(self, wait: float = 2.0) -> bool:
        """Nothing to remove: systemd collects an empty scope by itself."""
        return True


def systemd_run_argv(unit: str, *, memory_bytes: int, pids: int, user: bool) -> list[str]:
    """The ``systemd-run`` words put in front of the sandbox command."""
    return ["systemd-run", *(["--user"] if user else []), "--scope", "--quiet", "--collect",
            f"--unit={unit}", "-p", f"MemoryMax={memory_bytes}", "-p", "MemorySwapMax=0",
            "-p", f"TasksMax={pids}", "--"]


# --------------------------------------------------------------------------- finding the groups


def _proc_cgroup_lines(proc_cgroup: Path) -> list[list[str]]:
    """``/proc/self/cgroup`` as [hierarchy, controllers, path] rows ([] if unreadable)."""
    try:
        return [line.split(":", 2) for line in proc_cgroup.read_text().splitlines()]
    except OSError:
        return []


def _own_v1_dir(controller: str, root: Path = ROOT,
                proc_cgroup: Path = Path("/proc/self/cgroup")) -> Path | None:
    """This process's v1 cgroup directory for ``controller``, if that hierarchy is mounted."""
    for _, controllers, path in _proc_cgroup_lines(proc_cgroup):
        if controller in controllers.split(","):
            d = root / controller / path.lstrip("/")
            return d if (d / "cgroup.procs").is_file() else None
    return None


def v2_mount(mountinfo: Path = Path("/proc/self/mountinfo")) -> Path | None:
    """Where the cgroup2 filesystem is mounted (/sys/fs/cgroup, or .../unified on hybrid
    machines), if it is."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if " - cgroup2 " in line and len(fields) > 4:
            return Path(fields[4])
    return None


def v2_base(root: Path, environ=None, proc_cgroup: Path = Path("/proc/self/cgroup")
            ) -> Path | None:
    """The v2 cgroup to create sandbox groups in: ``$CS231N_CGROUP`` (a directory, or a path
    relative to ``root`` as /proc/self/cgroup writes it), else this process's own cgroup."""
    environ = os.environ if environ is None else environ
    wanted = environ.get(ENV_VAR)
    if wanted:
        path = Path(wanted)
        return path if path.is_relative_to(root) else root / wanted.lstrip("/")
    for hierarchy, controllers, path in _proc_cgroup_lines(proc_cgroup):
        if hierarchy == "0" and controllers == "":
            return root / path.lstrip("/")
    return None


def v2_problem(base: Path) -> str | None:
    """Why sandbox groups cannot be made below v2 cgroup ``base`` (None: they can); enables
    ``+memory +pids`` in its ``cgroup.subtree_control`` when needed."""
    try:
        offered = (base / "cgroup.controllers").read_text().split()
    except OSError:
        return f"{base} is not a cgroup v2 directory"
    missing = [c for c in V2_CONTROLLERS if c not in offered]
    if missing:
        return f"cgroup v2 {base} does not offer the {' and '.join(missing)} controller"
    if not os.access(base, os.W_OK):
        return f"{base} is not writable"
    control = base / "cgroup.subtree_control"
    try:
        if not set(V2_CONTROLLERS) <= set(control.read_text().split()):
            control.write_text(" ".join(f"+{c}" for c in V2_CONTROLLERS))
    except OSError as e:
        why = ("it holds processes (cgroup v2's no-internal-processes rule)"
               if e.errno == errno.EBUSY else e.strerror or str(e))
        return (f"cannot enable memory and pids below {base}: {why}; set ${ENV_VAR} to an "
                "empty cgroup delegated to this user")
    return None


# --------------------------------------------------------------------------- choosing


@dataclass(frozen=True)
class Mechanism:
    """How sandboxes are capped on this machine: ``kind`` is a key of LABELS; ``base`` the v2
    cgroup (kind "v2"); ``user`` whether systemd-run needs --user; ``why`` the reasons the
    better mechanisms were not usable."""

    kind: str
    base: Path | None = None
    user: bool = False
    why: tuple[str, ...] = ()

    def create(self, name: str, *, memory_bytes: int, pids: int) -> Cgroup | SystemdScope | None:
        """A fresh group (or scope) for one sandbox, or None: rlimits only."""
        if self.kind == "v2":
            return Cgroup.create_v2(self.base, name, memory_bytes=memory_bytes, pids=pids)
        if self.kind == "systemd":
            return SystemdScope(name, tuple(systemd_run_argv(
                name, memory_bytes=memory_bytes, pids=pids, user=self.user)), self.user)
        if self.kind == "v1":
            return Cgroup.create(name, memory_bytes=memory_bytes, pids=pids)
        return None


def _runs_under(caps: Cgroup | SystemdScope | None) -> bool:
    """Whether ``/bin/true`` starts and exits 0 under ``caps`` (removed afterwards)."""
    if caps is None:
        return False
    try:
        r = subprocess.run([*caps.command_prefix, "/bin/true"], preexec_fn=caps.preexec,
                           capture_output=True, timeout=30)
        return r.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        caps.kill()
        caps.remove(wait=1)


def _try(mech: Mechanism) -> bool:
    """Probe ``mech`` with a throw-away group."""
    return _runs_under(mech.create(group_name(), memory_bytes=PROBE_BYTES, pids=PROBE_PIDS))


def choose(*, v2_root: Path | None, environ=None, systemd: bool | None = None,
           privileged: bool | None = None) -> Mechanism:
    """Probe the mechanisms in order (module docstring) and return the first that works.

    ``v2_root``: the cgroup2 mount (None: not mounted); ``systemd``: whether systemd manages
    this machine (None: look for /run/systemd/system); ``privileged``: root (None: ask)."""
    environ = os.environ if environ is None else environ
    privileged = os.geteuid() == 0 if privileged is None else privileged
    why: list[str] = []
    base = v2_base(v2_root, environ) if v2_root is not None else None
    if base is None:
        why.append("no cgroup v2 hierarchy")
    elif (problem := v2_problem(base)) is not None:
        why.append(problem)
    elif _try(Mechanism("v2", base=base)):
        return Mechanism("v2", base=base)
    else:
        why.append(f"cannot move a process into a group below {base}")
    if systemd is None:
        systemd = Path("/run/systemd/system").is_dir()
    if not systemd or shutil.which("systemd-run") is None:
        why.append("no systemd")
    elif _try(Mechanism("systemd", user=not privileged)):
        return Mechanism("systemd", user=not privileged, why=tuple(why))
    else:
        why.append("systemd-run --scope failed")
    if _try(Mechanism("v1")):
        return Mechanism("v1", why=tuple(why))
    why.append("no writable cgroup v1 memory and pids hierarchies")
    return Mechanism("rlimits", why=tuple(why))


@functools.lru_cache(maxsize=1)
def mechanism() -> Mechanism:
    """This machine's mechanism, probed once per process."""
    return choose(v2_root=v2_mount())


def describe(memory_mb: int, nproc: int, mech: Mechanism | None = None) -> str:
    """The start-up sentence: which caps hold for each notebook's kernel, and how."""
    mech = mech or mechanism()
    if mech.kind == "rlimits":
        return (f"caps: memory {memory_mb} MB per process and {nproc} processes per notebook "
                f"({LABELS['rlimits']}: no writable cgroup)")
    return f"caps: memory {memory_mb} MB and {nproc} processes per notebook ({LABELS[mech.kind]})"
