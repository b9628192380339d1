"""An optional cgroup around one sandbox: a memory cap for its whole process tree, a process cap.

rlimits are per process: RLIMIT_AS caps each process, so ``nproc`` processes may together use
``nproc * memory_mb``, and tmpfs pages are nobody's address space. A memory cgroup charges all of
it (anonymous memory, tmpfs pages, kernel memory for inodes) to the sandbox and OOM-kills inside
the sandbox when it is full; a pids cgroup caps its processes whatever their uid.

Used when the grader can create cgroup v1 ``memory`` and ``pids`` groups below its own (root on a
machine with the v1 hierarchies mounted, as on the course's reference VM). Elsewhere ``create``
returns None and the sandbox relies on rlimits plus ``oom_score_adj=1000`` (the kernel's OOM killer
then picks sandbox processes first). cgroup v2 is not attempted: a child of the grader's own
cgroup cannot get controllers while the grader lives in it (v2's no-internal-processes rule);
``systemd-run --scope -p MemoryMax=...`` would be the way there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own_dir(controller: str) -> Path | None:
    """This process's v1 cgroup directory for ``controller``, if that hierarchy is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            d = ROOT / controller / path.lstrip("/")
            return d if (d / "cgroup.procs").is_file() else None
    return None


@dataclass(frozen=True)
class Cgroup:
    """The sandbox's v1 memory and pids groups (directories below the grader's own)."""

    dirs: tuple[Path, ...]

    @classmethod
    def create(cls, name: str, *, memory_bytes: int, pids: int) -> Cgroup | None:
        """Make the groups with their limits, or return None if this machine does not allow it."""
        limits = {"memory": ("memory.limit_in_bytes", memory_bytes), "pids": ("pids.max", pids)}
        made: list[Path] = []
        try:
            for controller, (knob, value) in limits.items():
                parent = _own_dir(controller)
                if parent is None:
                    raise OSError(f"no cgroup v1 {controller} hierarchy")
                (parent / name).mkdir()
                made.append(parent / name)
                (parent / name / knob).write_text(str(value))
        except OSError:
            cls(tuple(made)).remove()
            return None
        return cls(tuple(made))

    def enter(self) -> None:
        """Move the calling process into the groups (run in the child, before exec)."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text("0")

    def kill(self) -> None:
        """SIGKILL every process still in the groups."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                for pid in (d / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)

    def remove(self, wait: float = 2.0) -> bool:
        """Remove the groups once their processes are gone (kill() first), trying for ``wait``
        seconds; whether they are gone."""
        deadline = time.monotonic() + wait
        while True:
            for d in self.dirs:
                with contextlib.suppress(OSError):
                    d.rmdir()
            if not any(d.exists() for d in self.dirs) or time.monotonic() >= deadline:
                return not any(d.exists() for d in self.dirs)
            time.sleep(0.02)
