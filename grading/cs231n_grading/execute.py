"""Execute a grading notebook with nbclient: timeouts, capped outputs, kernel-death recovery.

Each code cell runs with a per-cell timeout (never past the notebook's wall-clock deadline).
When a cell times out, the kernel dies or it sends a message the grader cannot read, the event
is noted on the cell (``metadata.cs231n_grading.event``), a fresh kernel is started, the
non-test cells before the next test cell are re-run (without the failing one) and execution
continues from that test cell, so later tests still count.

Events and notes are written in the current language (``cs231n_lib.i18n``; the grading worker
and ``check`` set the graded edition's), from the grader's catalogue.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async
from nbformat.v4 import new_output

from cs231n_grading.locale import tr
from cs231n_grading.restore import is_test
from cs231n_lib.checks import RECORD_MIME

MAX_RESTARTS = 5
EVENT_KEY = "cs231n_grading"
# Output limits. Ordinary outputs (prints, plots, displays) have a budget per cell (bytes the
# cell produced, display updates included) and one for the whole notebook (bytes kept, counted
# after display updates and clears). Records have budgets of their own, so a flood of ordinary
# output cannot push them out.
# (The reference runs of the course keep under 0.2 MB of records and 10 KB of other output.)
MAX_OUTPUT_BYTES = 2_000_000             # per cell, ordinary output produced
MAX_NOTEBOOK_OUTPUT_BYTES = 8_000_000    # whole notebook, ordinary output kept
MAX_RECORDS_PER_CELL = 500
MAX_RECORD_BYTES_PER_CELL = 4_000_000    # records as JSON
MAX_NOTEBOOK_RECORD_BYTES = 8_000_000
MAX_OUTPUT_DEPTH = 100                   # JSON nesting of one output message
MAX_OUTPUT_NODES = 1_000_000             # JSON values in one output message


def _json_problem(obj) -> str | None:
    """Why ``obj`` (parsed JSON) is too deep or too big to keep, or None. Iterative."""
    stack, nodes = [(obj, 0)], 0
    while stack:
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_OUTPUT_DEPTH:
            return tr("nested more than {count} levels deep", count=MAX_OUTPUT_DEPTH)
        if nodes > MAX_OUTPUT_NODES:
            return tr("more than {count} JSON values", count=MAX_OUTPUT_NODES)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, depth + 1) for v in value)
    return None


def _size(obj) -> int:
    """Bytes of ``obj`` as JSON (call only on values _json_problem accepted)."""
    return len(json.dumps(obj, default=str))


class CappedClient(NotebookClient):
    """NotebookClient that caps outputs per cell and per notebook, display updates included.

    nbclient applies ``update_display_data`` (and a new ``display_data`` with a known
    display_id) to every earlier output with that display_id, in every cell; here an update is
    applied only if the notebook's kept output stays within ``max_notebook_output_bytes``, and
    never to or from a record. Widgets are not emulated (no comm state is kept), so every output
    lands in its cell, where it is counted. A grader note marks each cell where something was
    dropped.
    """

    max_output_bytes = MAX_OUTPUT_BYTES
    max_notebook_output_bytes = MAX_NOTEBOOK_OUTPUT_BYTES

    def __init__(self, nb, **kw):
        super().__init__(nb, **kw)
        self._budget: dict[int, dict] = {}
        self._kept = {i: sum(_size(o) for o in c.get("outputs", [])
                             if not self._is_record(o.get("data")))
                      for i, c in enumerate(nb.cells) if c.cell_type == "code"}
        self._record_bytes = 0
        self._sizes: dict[tuple[int, int], int] = {}  # (cell, output index) -> size, display ids
        self._now = 0

    def reset_budget(self, index: int) -> None:
        """Start a fresh output budget for cell ``index`` (its old outputs are about to go)."""
        self._budget[index] = {"bytes": 0, "records": 0, "record_bytes": 0, "notes": set()}
        self._kept[index] = 0

    def _cell_budget(self, index: int) -> dict:
        if index not in self._budget:
            self.reset_budget(index)
        return self._budget[index]

    @staticmethod
    def _is_record(data) -> bool:
        """Output data that is a record (counted in the record budgets, not the others)."""
        return isinstance(data, dict) and RECORD_MIME in data

    def _note_once(self, index: int, key: str, text: str) -> None:
        """Append grader note ``text`` to cell ``index`` unless a note ``key`` is there."""
        notes = self._cell_budget(index)["notes"]
        if key not in notes:
            notes.add(key)
            self.nb.cells[index].outputs.append(_note(text))

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        """nbclient's loop over the cell's iopub messages, except that a message the grader
        cannot parse (e.g. JSON nested past the recursion limit) or process is dropped with a
        note instead of ending the run."""
        while True:
            try:
                msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
                if msg["parent_header"].get("msg_id") == parent_msg_id:
                    self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                return
            except (ValueError, LookupError, TypeError, RecursionError) as err:
                self._note_once(cell_index, "unreadable", tr(
                    "[a message from the kernel the grader could not read was dropped "
                    "({error})]", error=type(err).__name__))
                await asyncio.sleep(0)  # never a busy loop that starves the kernel watchdog

    def process_message(self, msg, cell, cell_index):
        """nbclient's handling, remembering which cell is running (for notes on updates)."""
        self._now = cell_index
        return super().process_message(msg, cell, cell_index)

    def output(self, outs, msg, display_id, cell_index):
        """Keep the output unless it is malformed or a budget is spent."""
        b = self._cell_budget(cell_index)
        content = msg.get("content")
        data = content.get("data") if isinstance(content, dict) else None
        record = self._is_record(data)
        if not record and b["bytes"] > self.max_output_bytes:
            return None  # already over: not even measured
        problem = _json_problem(content)
        if problem:
            self._note_once(cell_index, "bad", tr("[an output {problem} was dropped by the "
                                                  "grader]", problem=problem))
            return None
        size = _size(content)
        if record:
            b["records"] += 1
            b["record_bytes"] += size
            self._record_bytes += size
            if (b["records"] > MAX_RECORDS_PER_CELL or b["record_bytes"] > MAX_RECORD_BYTES_PER_CELL
                    or self._record_bytes > MAX_NOTEBOOK_RECORD_BYTES):
                self._note_once(cell_index, "records", tr(
                    "[too many or too large records: the rest were dropped by the grader]"))
                return None
        elif not self._room(cell_index, b, size, size):
            return None
        if self.clear_before_next_output:
            self._kept[cell_index] = 0  # nbclient clears the cell before adding this output
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None and not record:
            self._kept[cell_index] += size
            if display_id:
                self._sizes[(cell_index, len(outs) - 1)] = size
        return out

    def _room(self, index: int, b: dict, size: int, growth: int) -> bool:
        """Count ``size`` bytes produced by cell ``index`` that grow the notebook's kept output
        by ``growth``; False (and a note) if that passes a cap."""
        b["bytes"] += size
        if b["bytes"] > self.max_output_bytes:
            self._note_once(index, "cell", tr("[output over {count} bytes: the rest was "
                                              "dropped by the grader]",
                                              count=self.max_output_bytes))
            return False
        if sum(self._kept.values()) + growth > self.max_notebook_output_bytes:
            self._note_once(index, "notebook", tr(
                "[the notebook's output is over {count} bytes: the rest was dropped by the "
                "grader]", count=self.max_notebook_output_bytes))
            return False
        return True

    def _update_display_id(self, display_id, msg):
        """Apply a display update to the outputs with ``display_id`` if the caps allow it."""
        targets = self._display_targets(display_id)
        if not targets:
            return
        b = self._cell_budget(self._now)
        if b["bytes"] > self.max_output_bytes:
            return
        content = msg.get("content")
        data = content.get("data") if isinstance(content, dict) else None
        problem = _json_problem(content) or (
            tr("that is not a display") if not isinstance(data, dict) else
            tr("that would change a record") if RECORD_MIME in data else None)
        if problem:
            self._note_once(self._now, "bad", tr("[a display update {problem} was dropped by "
                                                 "the grader]", problem=problem))
            return
        size = _size(content)
        growth = sum(size - self._sizes.get(t, 0) for t in targets)
        if not self._room(self._now, b, size, growth):
            return
        try:
            new = new_output("display_data", data=data, metadata=content.get("metadata", {}))
        except Exception:  # noqa: BLE001 - a malformed update is dropped, never fatal
            self._note_once(self._now, "bad", tr("[a malformed display update was dropped "
                                                 "by the grader]"))
            return
        for c, i in targets:
            self.nb.cells[c].outputs[i]["data"] = new["data"]
            self.nb.cells[c].outputs[i]["metadata"] = new["metadata"]
            self._kept[c] += size - self._sizes.get((c, i), 0)
            self._sizes[(c, i)] = size

    def _display_targets(self, display_id) -> list[tuple[int, int]]:
        """(cell, output index) of the displays an update of ``display_id`` may change."""
        found = []
        for c, idxs in self._display_id_map.get(display_id, {}).items():
            outputs = self.nb.cells[c].outputs
            found += [(c, i) for i in idxs if i < len(outputs)
                      and outputs[i].get("output_type") in ("display_data", "execute_result")
                      and not self._is_record(outputs[i].get("data"))]
        return found

    def clear_output(self, outs, msg, cell_index):
        """nbclient's clear_output, keeping the count of the notebook's output in step."""
        super().clear_output(outs, msg, cell_index)
        if not outs:
            self._kept[cell_index] = 0

    def handle_comm_msg(self, outs, msg, cell_index):
        """Ignore comm (widget) messages: the grader keeps no widget state."""


def _note(text: str):
    """A stderr stream output carrying a grader note."""
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
    return tr("cell {index} ({id})", index=i, id=gid) if gid else tr("cell {index}", index=i)


def run_notebook(nb, make_km, *, cwd: str, cell_timeout: float, notebook_timeout: float,
                 max_output_bytes: int = MAX_OUTPUT_BYTES,
                 max_notebook_output_bytes: int = MAX_NOTEBOOK_OUTPUT_BYTES,
                 startup_timeout: float = 60) -> RunResult:
    """Execute ``nb`` in place; ``make_km()`` returns a fresh (unstarted) kernel manager.

    ``max_output_bytes`` caps each cell's ordinary output, ``max_notebook_output_bytes`` the
    whole notebook's (see CappedClient).
    """
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
        client.max_notebook_output_bytes = max_notebook_output_bytes
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
                        event = tr("timed out after {seconds} s", seconds=client.timeout)
                    except DeadKernelError:
                        event = tr("the kernel died (crash, os._exit or memory limit)")
                    except Exception as err:  # noqa: BLE001 - e.g. a message too deep to parse
                        event = tr("the grader could not read the kernel's output ({error})",
                                   error=f"{type(err).__name__}: {str(err)[:200]}")
                    else:
                        queue.pop(0)
                        continue
                    _mark(nb.cells[i], event)
                    result.events.append(tr("{cell}: {event}; kernel restarted",
                                            cell=_label(nb, i), event=event))
                    skip.add(i)
                    nxt = [t for t in tests if t > i]
                    queue = ([c for c in code if c < nxt[0] and c not in skip and c not in tests]
                             + [c for c in code if c >= nxt[0]]) if nxt else []
                    restarts += 1
                    if restarts > MAX_RESTARTS and queue:
                        _stop(nb, result, queue, tests, tr("more than {count} kernel "
                                                            "restarts", count=MAX_RESTARTS))
                        queue = []
                    break
        except _WallClock as wc:
            limit = f"{notebook_timeout:g}"
            _mark(nb.cells[wc.index], tr("notebook time limit ({seconds} s) reached",
                                         seconds=limit))
            _stop(nb, result, queue, tests,
                  tr("notebook time limit ({seconds} s) reached in {cell}", seconds=limit,
                     cell=_label(nb, wc.index)))
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
            _mark(nb.cells[t], tr("not run: {reason}", reason=reason))
