"""Load the course configuration (an nbgrader config file with a ``CourseGrading`` section)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from grading.execute import MAX_NOTEBOOK_OUTPUT_BYTES, MAX_OUTPUT_BYTES

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = PACKAGE_DIR / "nbgrader_config.py"

_KEYS = {"assignments_dir", "course_dir", "library", "cell_timeout", "notebook_timeout",
         "timeouts", "sandbox", "env", "max_notebook_bytes", "max_output_bytes", "data_dir",
         "memory_mb", "max_notebook_output_bytes"}


@dataclass
class CourseConfig:
    """Everything the grading layer needs; built by ``load_config``."""

    config_file: Path
    assignments_dir: Path          # nbgrader source folder: <assignments>/<NN_name>/<NN_name>.ipynb
    course_dir: Path               # release/, submitted/, autograded/, feedback/, gradebook.db
    library: list[Path]            # packages whose student edition the kernels import
    cell_timeout: float = 300.0    # seconds per cell
    notebook_timeout: float = 1200.0  # seconds per notebook (wall clock, all cells)
    timeouts: dict = field(default_factory=dict)  # {assignment: {"cell": s, "notebook": s}}
    sandbox: bool = True           # run kernels through grading.sandbox (bubblewrap)
    env: dict = field(default_factory=dict)       # extra kernel environment
    max_notebook_bytes: int = 20_000_000          # larger submissions are not graded
    max_output_bytes: int = MAX_OUTPUT_BYTES      # per cell, non-record outputs kept
    max_notebook_output_bytes: int = MAX_NOTEBOOK_OUTPUT_BYTES  # whole notebook, display updates
    memory_mb: int = 3072          # sandboxed kernel's address-space limit
    data_dir: Path | None = None   # datasets folder the kernels may read ($CS231N_DATA_DIR)
    nbgrader: Config = field(default_factory=Config)  # the whole traitlets config

    def cell_timeout_for(self, assignment: str) -> float:
        """Per-cell timeout of ``assignment`` (its override, else the default)."""
        return float(self.timeouts.get(assignment, {}).get("cell", self.cell_timeout))

    def notebook_timeout_for(self, assignment: str) -> float:
        """Per-notebook wall-clock timeout of ``assignment``."""
        return float(self.timeouts.get(assignment, {}).get("notebook", self.notebook_timeout))

    @property
    def gradebook_url(self) -> str:
        """SQLAlchemy URL of nbgrader's gradebook in the course directory."""
        return f"sqlite:///{self.course_dir / 'gradebook.db'}"

    @property
    def student_library_dir(self) -> Path:
        """Folder holding the student edition of each library package (goes on PYTHONPATH)."""
        return self.course_dir / "student_library"

    def nbgrader_config(self) -> Config:
        """The nbgrader config with the course root and gradebook set."""
        cfg = Config(self.nbgrader)
        cfg.CourseDirectory.root = str(self.course_dir)
        cfg.CourseDirectory.db_url = self.gradebook_url
        cfg.CourseDirectory.source_directory = "source"
        return cfg

    def assignments(self) -> list[str]:
        """Assignment names: folders of the source directory holding a notebook."""
        if not self.assignments_dir.is_dir():
            raise ValueError(f"assignments folder {self.assignments_dir} does not exist")
        return sorted(p.name for p in self.assignments_dir.iterdir()
                      if p.is_dir() and any(p.glob("*.ipynb")))

    def released(self) -> list[str]:
        """Assignments with a release in the course directory (ValueError when there is none)."""
        root = self.course_dir / "release"
        names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if not names:
            raise ValueError(f"nothing released in {self.course_dir}; run "
                             "`cs231n-course release` first")
        return names

    def graded_notebooks(self, assignment: str) -> list[Path]:
        """The source notebooks as they were at release time (what grading must use)."""
        snap = self.course_dir / "released_source" / assignment
        found = sorted(snap.glob("*.ipynb")) if snap.is_dir() else []
        return found or self.source_notebooks(assignment)

    def source_notebooks(self, assignment: str) -> list[Path]:
        """Source notebooks of ``assignment``, sorted by name."""
        folder = self.assignments_dir / assignment
        if not folder.is_dir():
            raise ValueError(f"unknown assignment {assignment!r}: no folder {folder}")
        return sorted(folder.glob("*.ipynb"))


def ensure_tools_on_path() -> None:
    """Put this interpreter's bin folder on PATH (nbgrader runs ``alembic`` for a new gradebook)."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def load_config(path: str | os.PathLike | None = None, *, course_dir=None,
                sandbox: bool | None = None) -> CourseConfig:
    """Read an nbgrader config file; ``course_dir``/``sandbox`` override its settings."""
    ensure_tools_on_path()
    path = Path(path or DEFAULT_CONFIG).resolve()
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    cfg = PyFileConfigLoader(path.name, str(path.parent)).load_config()
    section = dict(cfg.get("CourseGrading", {}))
    unknown = set(section) - _KEYS
    if unknown:
        raise ValueError(f"unknown CourseGrading settings {sorted(unknown)} in {path}; "
                         f"known: {sorted(_KEYS)}")
    base = path.parent

    def rel(p):
        return (base / p).resolve()

    out = CourseConfig(
        config_file=path,
        assignments_dir=rel(section.get("assignments_dir", "assignments")),
        course_dir=Path(course_dir).resolve() if course_dir else rel(
            section.get("course_dir", "course")),
        library=[rel(p) for p in section.get("library", [])],
        nbgrader=cfg,
    )
    if section.get("data_dir"):
        out.data_dir = rel(section["data_dir"])
    for key in ("cell_timeout", "notebook_timeout", "max_notebook_bytes", "max_output_bytes",
                "sandbox", "memory_mb", "max_notebook_output_bytes"):
        if key in section:
            setattr(out, key, type(getattr(out, key))(section[key]))
    out.timeouts = {str(k): dict(v) for k, v in dict(section.get("timeouts", {})).items()}
    for name, limits in out.timeouts.items():
        bad = set(limits) - {"cell", "notebook"}
        if bad:
            raise ValueError(f"timeouts[{name!r}] has unknown keys {sorted(bad)}; "
                             "allowed: 'cell', 'notebook'")
    out.env = {str(k): str(v) for k, v in dict(section.get("env", {})).items()}
    if sandbox is not None:
        out.sandbox = sandbox
    return out
