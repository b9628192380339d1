"""Work done in a grading worker process: reference runs and grading one submitted notebook.

Both take a task (cs231n_grading.tasks: frozen dataclasses) and return a plain dict (picklable
across processes); statuses are cs231n_grading.outcome texts. Nothing here writes the gradebook;
the parent process does that. The parent runs these functions in worker processes it starts with
``forkserver`` or ``spawn``: they only need to be importable.

A submission's notes, verdicts and 'not graded' reasons are in the language of its edition
(``NN_name.zh.ipynb``: Chinese); the ``tampering: `` prefix of the notes on restored cells stays
English, a key that ``verify`` filters on and feedback pages translate when they show it
(``cs231n_grading.editions.shown_note``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from pathlib import Path

import nbformat

from cs231n_grading.editions import TAMPERING, edition_language
from cs231n_grading.execute import EVENT_KEY, run_notebook
from cs231n_grading.judge import cell_error, cell_records, judge_cell
from cs231n_grading.kernels import kernel_factory, thread_env
from cs231n_grading.locale import tr
from cs231n_grading.outcome import GRADED, Status
from cs231n_grading.restore import InvalidSubmission, is_test, load_notebook_text, restore
from cs231n_grading.rules import check as check_rules
from cs231n_grading.safe_files import (
    IGNORED,
    MissingFile,
    RefusedFile,
    TooLarge,
    copy_files,
    read_file,
    submission_root,
)
from cs231n_grading.sanitize import sanitize_notebook
from cs231n_grading.tasks import GradingTask, KernelSettings, ReferenceTask
from cs231n_grading.timestamps import refuse_linked_timestamp
from cs231n_lib.i18n import using_language

MAX_SKIP_NOTES = 5


def _skip_name(name: str) -> bool:
    """Whether a submission folder entry stays out of the grading folder (notebooks)."""
    return bool(IGNORED("", [name]))


def _workdir(folder: Path | None, given: Path | None, *, submitted: bool) -> tuple[Path, list[str]]:
    """Private temp folder with the files given to students and a copy of ``folder``.

    Given files win over the student's. A ``submitted`` folder is a student's, below the
    course's ``submitted/``: only its regular files are copied, no link followed
    (safe_files.copy_files); the second item lists what was skipped.
    """
    work = Path(tempfile.mkdtemp(prefix="cs231n-grade-"))
    if given is not None and given.is_dir():
        shutil.copytree(given, work, symlinks=True, dirs_exist_ok=True, ignore=IGNORED)
    skipped: list[str] = []
    if folder is not None and submitted:
        skipped = copy_files(*submission_root(folder), work, skip=_skip_name)
    elif folder is not None and folder.is_dir():
        shutil.copytree(folder, work, symlinks=True, dirs_exist_ok=True, ignore=IGNORED)
    return work, skipped


def _skip_notes(skipped: list[str]) -> list[str]:
    """Notes on the submission files not copied to the grading folder (a few, then a count)."""
    notes = [tr("not copied for grading: {entry} (only regular files are)", entry=s)
             for s in skipped[:MAX_SKIP_NOTES]]
    if len(skipped) > MAX_SKIP_NOTES:
        notes.append(tr("not copied for grading: {count} more entries",
                        count=len(skipped) - MAX_SKIP_NOTES))
    return notes


def _execute(nb, settings: KernelSettings, folder: Path | None, *,
             given: Path | None = None, submitted: bool = False):
    """Run ``nb`` in a fresh kernel working in a private copy of ``folder`` (plus the files
    ``given`` to students, which win).

    Returns the RunResult and the notes on files of a ``submitted`` folder left out.
    """
    work, skipped = _workdir(folder, given, submitted=submitted)
    make_km = kernel_factory(sandbox=settings.sandbox, workdir=work,
                             library_dir=Path(settings.library_dir),
                             env=thread_env(settings.threads) | settings.env,
                             notebook_timeout=settings.notebook_timeout,
                             memory_mb=settings.memory_mb, data_dir=settings.data_dir)
    try:
        run = run_notebook(nb, make_km, cwd=str(work), cell_timeout=settings.cell_timeout,
                           notebook_timeout=settings.notebook_timeout,
                           max_output_bytes=settings.max_output_bytes,
                           max_notebook_output_bytes=settings.max_notebook_output_bytes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return run, _skip_notes(skipped)


def _cell_summary(nb) -> dict:
    """{grade_id: {"records", "error", "event", "points"}} for every test cell."""
    out = {}
    for cell in nb.cells:
        if is_test(cell):
            m = cell.metadata["nbgrader"]
            out[m["grade_id"]] = {"records": cell_records(cell), "error": cell_error(cell),
                                  "event": cell.metadata.get(EVENT_KEY, {}).get("event"),
                                  "points": float(m.get("points", 0) or 0)}
    return out


def run_reference(task: ReferenceTask) -> dict:
    """Execute a source notebook (solutions + hidden tests) and collect its test records."""
    t0 = time.monotonic()
    source = Path(task.source)
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    run, _ = _execute(nb, task.settings, Path(task.source_dir))
    errors = [f"cell {i}: {cell_error(c)}" for i, c in enumerate(nb.cells)
              if c.cell_type == "code" and cell_error(c)]
    if task.executed_path is not None:
        Path(task.executed_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, task.executed_path)
    return {"key": task.key, "notebook": source.name, "cells": _cell_summary(nb),
            "events": run.events, "finished": run.finished, "errors": errors,
            "duration": time.monotonic() - t0}


def judge_notebook(nb, reference: dict) -> list[dict]:
    """TestResult dicts for the test cells of an executed grading notebook."""
    mine = _cell_summary(nb)
    results = []
    for gid, ref in reference["cells"].items():
        cell = mine.get(gid, {"records": [], "error": None, "event": "test cell missing"})
        results.append(judge_cell(gid, ref["points"], ref["records"], cell["records"],
                                  error=cell["error"], event=cell["event"]).to_dict())
    return results


def not_graded_result(reason: str, notes: list[str] | None = None) -> dict:
    """The result of a notebook that could not be graded (no verdicts)."""
    return {"status": str(Status.not_graded(reason)), "notes": list(notes or []), "tests": []}


def grade_submission(task: GradingTask) -> dict:
    """Grade one submitted notebook; never raises (failures become a 'not graded' status).
    Notes, verdicts and reasons are in the language of the submitted edition."""
    t0 = time.monotonic()
    lang = edition_language(task.submission)
    with using_language(lang):
        try:
            result = _grade(task)
        except Exception as err:  # noqa: BLE001 - one broken submission must not stop the run
            result = not_graded_result(tr("grader error ({error})",
                                          error=f"{type(err).__name__}: {err}"),
                                       [traceback.format_exc(limit=3)])
    result.update(student=task.student, assignment=task.assignment,
                  notebook=task.notebook, key=task.key, lang=lang,
                  duration=time.monotonic() - t0)
    result["score"] = sum(t["points"] for t in result["tests"])
    result["max_score"] = sum(c["points"] for c in task.reference["cells"].values())
    return result


def _read_submission(task: GradingTask) -> tuple[bytes | None, dict | None]:
    """(notebook bytes, None), or (None, a 'not graded' result) when it cannot be read.

    The notebook is read below the course's ``submitted/`` without following any link
    (safe_files.read_file), within the notebook size cap. A timestamp.txt that is a link or
    not a regular file makes the notebook not graded too (a bad date is only a note, made by
    the parent process).
    """
    path = Path(task.submission)
    root, rel = submission_root(path.parent)
    try:
        data = read_file(root, rel / path.name, max_bytes=task.settings.max_notebook_bytes)
        refuse_linked_timestamp(root, rel)
        return data, None
    except MissingFile:
        reason = tr("missing notebook {name}", name=path.name)
    except TooLarge as err:
        reason = tr("notebook is {size} MB (limit {limit} MB)", size=f"{err.size / 1e6:.1f}",
                    limit=f"{err.limit / 1e6:.1f}")
    except RefusedFile as err:
        reason = str(err)
    return None, not_graded_result(reason)


def _grade(task: GradingTask) -> dict:
    """Grade one submitted notebook (may raise; see grade_submission), in the current
    language (grade_submission sets the edition's)."""
    path = Path(task.submission)
    data, refused = _read_submission(task)
    if refused:
        return refused
    try:
        submission = load_notebook_text(data)
    except InvalidSubmission as err:
        return not_graded_result(f"{path.name}: {err}")
    source = nbformat.read(task.source, as_version=4)
    release = (nbformat.read(task.release, as_version=4) if Path(task.release).is_file()
               else None)
    restored = restore(submission, source, release)
    run, skipped = _execute(restored.nb, task.settings, path.parent,
                            given=Path(task.release_dir), submitted=True)
    tests = judge_notebook(restored.nb, task.reference)
    tests, broken = check_rules(tests, submission, source)  # "how" rules, on the source
    if task.autograded is not None:
        out = Path(task.autograded)
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(sanitize_notebook(restored.nb), out)  # formgrader renders it unsanitised
    notes = [TAMPERING + n for n in restored.notes] + skipped + broken + run.events
    status = GRADED if run.finished else Status.not_graded(run.stop_reason)
    return {"status": str(status), "notes": notes, "tests": tests}
