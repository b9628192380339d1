"""Host-side process inspection for the sandbox tests (test_sandbox, test_hostile_corpus)."""

from pathlib import Path


def status(pid):
    """{field: value} from /proc/<pid>/status, or {} once the process is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def running(pid):
    """Whether ``pid`` exists and is not a zombie (a zombie holds nothing but its pid; a sandbox
    whose kernel exited by itself leaves its pid 1 to the host's init to reap)."""
    state = status(pid).get("State", "").split()
    return bool(state) and state[0] != "Z"


def running_with_uid(accept):
    """Host pids of running processes whose real uid satisfies ``accept(uid)``."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [p for p in pids
            if accept(int(status(p).get("Uid", "-1").split()[0])) and running(p)]
