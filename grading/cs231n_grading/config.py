"""Load the course configuration: an nbgrader config file with a ``CourseGrading`` section.

``CourseGrading`` is a traitlets ``Configurable``, as nbgrader's own apps are: its traits hold the
settings' types and defaults, traitlets checks every value (``sandbox = "false"`` is an error,
not True), and ``--CourseGrading.<name>=<value>`` on the command line overrides the file.
``load_config`` turns the loaded traits into a ``CourseConfig`` (paths resolved against the
config file's folder), what the grading layer uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from traitlets import Bool, Dict, Float, Int, List, TraitError, Unicode, default, validate
from traitlets.config import Config, Configurable
from traitlets.config.loader import KVArgParseConfigLoader, PyFileConfigLoader

from cs231n_grading.sandbox_argv import DEFAULT_MEMORY_MB

PACKAGE_DIR = Path(__file__).resolve().parent
TIMEOUT_KEYS = ("cell", "notebook")


class CourseGrading(Configurable):
    """The grading layer's course settings (the ``c.CourseGrading`` section)."""

    assignments_dir = Unicode("assignments", help="nbgrader source folder: "
                              "<assignments>/<NN_name>/<NN_name>.ipynb").tag(config=True)
    course_dir = Unicode("course", help="release/, submitted/, autograded/, feedback/, "
                         "gradebook.db").tag(config=True)
    library = List(Unicode(), help="packages whose student edition the kernels import"
                   ).tag(config=True)
    data_dir = Unicode(None, allow_none=True, help="datasets folder the kernels may read "
                       "($CS231N_DATA_DIR)").tag(config=True)
    cell_timeout = Float(300.0, min=0.001, help="seconds per cell").tag(config=True)
    notebook_timeout = Float(1200.0, min=0.001, help="seconds per notebook (wall clock)"
                             ).tag(config=True)
    timeouts = Dict(value_trait=Dict(value_trait=Float(min=0.001)), key_trait=Unicode(),
                    help='per-assignment overrides: {"06_training": {"cell": 600, '
                    '"notebook": 1800}}').tag(config=True)
    sandbox = Bool(True, help="run kernels through cs231n_grading.sandbox (bubblewrap)"
                   ).tag(config=True)
    env = Dict(value_trait=Unicode(), key_trait=Unicode(), help="extra kernel environment"
               ).tag(config=True)
    max_notebook_bytes = Int(20_000_000, min=1, help="larger submissions are not graded"
                             ).tag(config=True)
    max_output_bytes = Int(min=1, help="per cell, non-record outputs kept (default: "
                           "cs231n_grading.execute.MAX_OUTPUT_BYTES)").tag(config=True)
    max_notebook_output_bytes = Int(min=1, help="whole notebook, display updates included "
                                    "(default: cs231n_grading.execute.MAX_NOTEBOOK_OUTPUT_BYTES)"
                                    ).tag(config=True)
    memory_mb = Int(DEFAULT_MEMORY_MB, min=1, help="sandboxed kernel's memory limit"
                    ).tag(config=True)
    locale_dir = Unicode(None, allow_none=True, help="translation catalogues of the notebooks: "
                         "<locale_dir>/<lang>/<NN_name>.po (default: course_src/locale beside "
                         "the assignments folder in a checkout, locale/ beside it in a wheel)"
                         ).tag(config=True)

    # The output caps are defined beside the code that applies them; imported when first read,
    # so that loading this module does not load nbclient.
    @default("max_output_bytes")
    def _default_max_output_bytes(self) -> int:
        from cs231n_grading.execute import MAX_OUTPUT_BYTES

        return MAX_OUTPUT_BYTES

    @default("max_notebook_output_bytes")
    def _default_max_notebook_output_bytes(self) -> int:
        from cs231n_grading.execute import MAX_NOTEBOOK_OUTPUT_BYTES

        return MAX_NOTEBOOK_OUTPUT_BYTES

    @validate("timeouts")
    def _check_timeouts(self, proposal):
        """Each override names only 'cell' and 'notebook'."""
        for name, limits in proposal["value"].items():
            bad = set(limits) - set(TIMEOUT_KEYS)
            if bad:
                raise TraitError(f"timeouts[{name!r}] has unknown keys {sorted(bad)}; "
                                 f"allowed: {list(TIMEOUT_KEYS)}")
        return proposal["value"]


@dataclass
class CourseConfig:
    """Everything the grading layer needs, built by ``load_config`` from ``CourseGrading``."""

    config_file: Path
    assignments_dir: Path
    course_dir: Path
    library: list[Path]
    cell_timeout: float
    notebook_timeout: float
    timeouts: dict  # {assignment: {"cell": s, "notebook": s}}
    sandbox: bool
    env: dict
    max_notebook_bytes: int
    max_output_bytes: int
    max_notebook_output_bytes: int
    memory_mb: int
    data_dir: Path | None = None
    nbgrader: Config = field(default_factory=Config)  # the whole traitlets config
    locale_dir: Path | None = None  # <locale_dir>/<lang>/<NN_name>.po; None: no translations

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
        found = _english(snap.glob("*.ipynb")) if snap.is_dir() else []
        return found or self.source_notebooks(assignment)

    def source_notebooks(self, assignment: str) -> list[Path]:
        """Source notebooks of ``assignment``, sorted by name."""
        folder = self.assignments_dir / assignment
        if not folder.is_dir():
            raise ValueError(f"unknown assignment {assignment!r}: no folder {folder}")
        return _english(folder.glob("*.ipynb"))

    def catalogue(self, assignment: str, lang: str) -> Path:
        """The translation catalogue of ``assignment``'s notebook in ``lang`` (ValueError when
        the course has none)."""
        path = (self.locale_dir / lang / f"{assignment}.po") if self.locale_dir else None
        if path is None or not path.is_file():
            raise ValueError(f"no {lang} translation of {assignment}: "
                             f"{path or 'no locale folder'} does not exist (set "
                             "c.CourseGrading.locale_dir)")
        return path


def _english(paths) -> list[Path]:
    """The English notebooks among ``paths``, sorted: not ``<name>.<lang>.ipynb`` editions."""
    from cs231n_grading.editions import edition_language

    return sorted(p for p in paths if edition_language(p) == "en")


def default_locale_dir(assignments_dir: Path) -> Path | None:
    """Where a course keeps its notebook catalogues when the config does not say:
    ``course_src/locale`` beside the assignments folder (a checkout), else ``locale`` beside it
    (a wheel's packaged course, the fixture course); None when neither exists."""
    for path in (assignments_dir.parent / "course_src" / "locale",
                 assignments_dir.parent / "locale"):
        if path.is_dir():
            return path
    return None


def default_config(package_dir: Path = PACKAGE_DIR) -> Path:
    """The course config used without ``--course``: ``grading/nbgrader_config.py`` in a checkout
    or editable install (the package lives in ``grading/cs231n_grading/``, ``assignments/`` beside
    ``grading/``), else the course a wheel ships (``cs231n_grading/packaged_course/``); ValueError
    when neither has the source notebooks."""
    checkout = package_dir.parent.parent
    if (checkout / "assignments").is_dir():
        return package_dir.parent / "nbgrader_config.py"
    installed = package_dir / "packaged_course"
    if (installed / "assignments").is_dir():
        return installed / "nbgrader_config.py"
    raise ValueError(f"no course found: neither {checkout / 'assignments'} (a "
                     f"checkout) nor {installed / 'assignments'} (an installed wheel) exists; "
                     "pass --course PATH (a course folder holding nbgrader_config.py)")


def command_line_config(argv: list[str]) -> Config:
    """The traitlets config of ``--CourseGrading.<name>=<value>`` arguments (ValueError for
    another argument or an unknown setting; values are parsed by each trait's type)."""
    for arg in argv:
        name = arg.split("=", 1)[0]
        if not name.startswith("--CourseGrading."):
            raise ValueError(f"{arg!r} is not a --CourseGrading.<setting>=<value> argument")
        _check_names([name.removeprefix("--CourseGrading.")], "the command line")
    return KVArgParseConfigLoader(argv, classes=[CourseGrading]).load_config()


def _check_names(names, where: str) -> None:
    """ValueError naming the settings of ``names`` that CourseGrading does not have."""
    known = sorted(CourseGrading.class_trait_names(config=True))
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown CourseGrading settings {unknown} in {where}; known: {known}")


def course_grading(cfg: Config, where: str) -> CourseGrading:
    """The CourseGrading of a loaded config; ValueError for an unknown or ill-typed setting."""
    _check_names(cfg.get("CourseGrading", {}), where)
    try:
        return CourseGrading(config=cfg)
    except TraitError as err:
        raise ValueError(f"bad CourseGrading setting in {where}: {err}") from err


def load_config(path: str | os.PathLike | None = None, *, course_dir=None,
                sandbox: bool | None = None, argv: list[str] | None = None) -> CourseConfig:
    """Read an nbgrader config file; ``argv`` (``--CourseGrading.x=y`` arguments) overrides its
    settings, and ``course_dir``/``sandbox`` override both."""
    path = Path(path or default_config()).resolve()
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    cfg = PyFileConfigLoader(path.name, str(path.parent)).load_config()
    if argv:
        cfg.merge(command_line_config(argv))
    settings = course_grading(cfg, str(path) + (" and the command line" if argv else ""))
    base = path.parent

    def rel(p):
        return (base / p).resolve()

    assignments_dir = rel(settings.assignments_dir)
    return CourseConfig(
        config_file=path,
        assignments_dir=assignments_dir,
        locale_dir=(rel(settings.locale_dir) if settings.locale_dir
                    else default_locale_dir(assignments_dir)),
        course_dir=Path(course_dir).resolve() if course_dir else rel(settings.course_dir),
        library=[rel(p) for p in settings.library],
        data_dir=rel(settings.data_dir) if settings.data_dir else None,
        cell_timeout=settings.cell_timeout, notebook_timeout=settings.notebook_timeout,
        timeouts={k: dict(v) for k, v in settings.timeouts.items()},
        sandbox=settings.sandbox if sandbox is None else sandbox,
        env=dict(settings.env), max_notebook_bytes=settings.max_notebook_bytes,
        max_output_bytes=settings.max_output_bytes,
        max_notebook_output_bytes=settings.max_notebook_output_bytes,
        memory_mb=settings.memory_mb, nbgrader=cfg)
