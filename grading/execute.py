"""Execute a grading notebook with nbclient: timeouts, capped outputs, kernel-death recovery.

Each code cell runs with a per-cell timeout (never past the notebook's wall-clock deadline).
When a cell times out or the kernel dies, the event is noted on the cell
(``metadata.cs231n_grading.event``), a fresh kernel is started, the non-test cells before the
next test cell are re-run (without the failing one) and execution continues from that test cell,
so later tests still count.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from cs231n_lib.checks import RECORD_MIME
from grading.restore import is_test

MAX_RESTARTS = 5
MAX_RECORDS_PER_CELL = 500
MAX_RECORD_BYTES = 50_000_000
EVENT_KEY = "cs231n_grading"


class CappedClient(NotebookClient):
    """NotebookClient that keeps at most ``max_output_bytes`` of ordinary output per cell.

    Record outputs have their own (larger) budget, so a flood of prints cannot push them out.
    """

    max_output_bytes = 2_000_000
    _budget: dict

    def reset_budget(self, index: int) -> None:
        """Start a fresh output budget for cell ``index``."""
        if not hasattr(self, "_budget"):
            self._budget = {}
        self._budget[index] = {"bytes": 0, "records": 0, "record_bytes": 0, "cut": False}

    def output(self, outs, msg, display_id, cell_index):
        """Keep the output unless the cell's budget is spent."""
        content = msg.get("content", {})
        data = content.get("data") if isinstance(content.get("data"), dict) else {}
        size = len(json.dumps(content, default=str))
        b = self._budget.setdefault(cell_index, {"bytes": 0, "records": 0, "record_bytes": 0,
                                                 "cut": False})
        if RECORD_MIME in data:
            b["records"] += 1
            b["record_bytes"] += size
            if b["records"] > MAX_RECORDS_PER_CELL or b["record_bytes"] > MAX_RECORD_BYTES:
                return None
        else:
            b["bytes"] += size
            if b["bytes"] > self.max_output_bytes:
                if not b["cut"]:
                    b["cut"] = True
                    outs.append(_note(f"[output over {self.max_output_bytes} bytes: the rest "
                                      "was dropped by the grader]"))
                return None
        return super().output(outs, msg, display_id, cell_index)


def _note(text: str):
    """A stderr stream output carrying a grader note."""
    from nbformat.v4 import new_output
    return new_output("stream", name="stderr", text=text + "\n")


@dataclass
class RunResult:
    """What happened while executing a notebook."""

    events: list[str] = field(default_factory=list)  # human-readable, in order
    finished: bool = True  # False: stopped early (time limit, too many restarts)
    stop_reason: str = ""


def _mark(cell, text: str) -> None:
    """Note an execution event on a cell's metadata."""
    cell.metadata.setdefault(EVENT_KEY, {})["event"] = text


def _label(nb, i: int) -> str:
    """'cell N (grade_id)' for messages."""
    gid = nb.cells[i].metadata.get("nbgrader", {}).get("grade_id")
    return f"cell {i}" + (f" ({gid})" if gid else "")


def run_notebook(nb, make_km, *, cwd: str, cell_timeout: float, notebook_timeout: float,
                 max_output_bytes: int = 2_000_000, startup_timeout: float = 60) -> RunResult:
    """Execute ``nb`` in place; ``make_km()`` returns a fresh (unstarted) kernel manager."""
    result = RunResult()
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    tests = [i for i in code if is_test(nb.cells[i])]
    queue = list(code)
    skip: set[int] = set()
    restarts = 0
    deadline = time.monotonic() + notebook_timeout
    while queue:
        client = CappedClient(nb, km=make_km(), timeout=int(cell_timeout), allow_errors=True,
                              interrupt_on_timeout=False, startup_timeout=int(startup_timeout),
                              shutdown_kernel="immediate", kernel_name="python3",
                              resources={"metadata": {"path": cwd}})
        client.max_output_bytes = max_output_bytes
        try:
            with client.setup_kernel(cleanup_kc=True):
                while queue:
                    i = queue[0]
                    remaining = deadline - time.monotonic()
                    if remaining <= 1:
                        raise _WallClock(i)
                    wall_bound = remaining < cell_timeout
                    client.timeout = max(1, int(min(cell_timeout, remaining)))
                    client.reset_budget(i)
                    try:
                        client.execute_cell(nb.cells[i], i)
                    except CellTimeoutError:
                        if wall_bound:
                            raise _WallClock(i) from None
                        event = f"timed out after {client.timeout} s"
                    except DeadKernelError:
                        event = "the kernel died (crash, os._exit or memory limit)"
                    else:
                        queue.pop(0)
                        continue
                    _mark(nb.cells[i], event)
                    result.events.append(f"{_label(nb, i)}: {event}; kernel restarted")
                    skip.add(i)
                    nxt = [t for t in tests if t > i]
                    queue = ([c for c in code if c < nxt[0] and c not in skip and c not in tests]
                             + [c for c in code if c >= nxt[0]]) if nxt else []
                    restarts += 1
                    if restarts > MAX_RESTARTS and queue:
                        _stop(nb, result, queue, tests, f"more than {MAX_RESTARTS} kernel "
                                                         "restarts")
                        queue = []
                    break
        except _WallClock as wc:
            _mark(nb.cells[wc.index], f"notebook time limit ({notebook_timeout:g} s) reached")
            _stop(nb, result, queue, tests,
                  f"notebook time limit ({notebook_timeout:g} s) reached in {_label(nb, wc.index)}")
            queue = []
    return result


class _WallClock(Exception):
    """The notebook's wall-clock limit was reached before cell ``index``."""
    def __init__(self, index):
        super().__init__(index)
        self.index = index


def _stop(nb, result: RunResult, queue, tests, reason: str) -> None:
    """Stop execution early: reason recorded, remaining test cells marked not run."""
    result.finished = False
    result.stop_reason = reason
    result.events.append(reason)
    for t in queue:
        if t in tests and not nb.cells[t].metadata.get(EVENT_KEY):
            _mark(nb.cells[t], f"not run: {reason}")
