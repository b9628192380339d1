"""What the parent process hands a grading worker: frozen, picklable dataclasses.

``KernelSettings`` holds what every kernel of an assignment runs with (taken from the course
config, whose ``CourseGrading`` traits hold the defaults); ``ReferenceTask`` is one reference run
of a source notebook, ``GradingTask`` one submitted notebook to grade. Built by
``cs231n_grading.autograde`` and ``cs231n_grading.verify``, run by ``cs231n_grading.worker``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cs231n_grading.config import CourseConfig


@dataclass(frozen=True)
class KernelSettings:
    """How the kernels of one assignment run: isolation, limits, timeouts, environment."""

    sandbox: bool
    library_dir: Path
    env: dict[str, str]
    cell_timeout: float
    notebook_timeout: float
    max_output_bytes: int
    max_notebook_bytes: int
    max_notebook_output_bytes: int
    memory_mb: int
    data_dir: Path | None = None
    threads: int | None = None  # the kernel's share of the CPUs; set by the pool, not in keys

    @classmethod
    def for_assignment(cls, cfg: CourseConfig, assignment: str) -> KernelSettings:
        """The settings of ``assignment``'s kernels under ``cfg`` (its timeout overrides)."""
        return cls(sandbox=cfg.sandbox, library_dir=cfg.student_library_dir, env=dict(cfg.env),
                   cell_timeout=cfg.cell_timeout_for(assignment),
                   notebook_timeout=cfg.notebook_timeout_for(assignment),
                   max_output_bytes=cfg.max_output_bytes,
                   max_notebook_bytes=cfg.max_notebook_bytes,
                   max_notebook_output_bytes=cfg.max_notebook_output_bytes,
                   memory_mb=cfg.memory_mb, data_dir=cfg.data_dir)

    def key_text(self) -> str:
        """Canonical JSON of the settings that decide a run's outcome (``threads`` left out)."""
        fields = dataclasses.asdict(self)
        del fields["threads"]
        return json.dumps(fields, sort_keys=True, default=str)


@dataclass(frozen=True)
class ReferenceTask:
    """Execute a source notebook (solutions and hidden tests) to collect its test records."""

    settings: KernelSettings
    source: Path  # the source notebook as released
    source_dir: Path  # the folder whose files the kernel works in
    executed_path: Path | None = None  # where the executed notebook is written, if anywhere
    key: str = ""  # hash of everything the records depend on (the cache key)


@dataclass(frozen=True)
class GradingTask:
    """Grade one submitted notebook against its reference records."""

    settings: KernelSettings
    student: str
    assignment: str
    notebook: str  # the notebook's stem
    submission: Path  # the submitted notebook, below the course's submitted/
    source: Path  # the source notebook as released
    release: Path  # the student version given out
    release_dir: Path  # files given to students (they win over the student's copies)
    reference: dict = field(repr=False)  # the reference run's result (cs231n_grading.worker)
    autograded: Path | None = None  # where the executed notebook is written, if anywhere
    key: str = ""  # resume key (submission and reference hashes, timeouts)


def with_threads(task, threads: int):
    """``task`` with its kernel's CPU share set to ``threads``; other objects unchanged."""
    if isinstance(task, (ReferenceTask, GradingTask)):
        return dataclasses.replace(task, settings=dataclasses.replace(task.settings,
                                                                      threads=threads))
    return task
