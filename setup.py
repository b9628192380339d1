"""Build hook: a wheel carries the course with it (everything else is in pyproject.toml).

A checkout (or an editable install) reads ``assignments/`` and ``datasets/`` where they are. A
wheel has no checkout beside it, so ``build_py`` copies them into the installed packages:

- ``datasets/*.npz`` (and the licences) -> ``cs231n_lib/data/datasets/`` (``load_dataset`` with
  only the base install; see ``cs231n_lib.data.files.default_data_dir``);
- ``assignments/<NN_name>/*.ipynb`` -> ``cs231n_grading/packaged_course/assignments/`` and the
  course config ``grading/nbgrader_config.py`` -> ``cs231n_grading/packaged_course/course/``,
  beside the installed course config ``cs231n_grading/packaged_course/nbgrader_config.py`` (which
  loads it) that ``cs231n_grading.config.default_config`` picks when there is no checkout;
- ``course_src/locale/<lang>/*.po`` (the notebooks' translation catalogues) ->
  ``cs231n_grading/packaged_course/locale/``, beside ``assignments/`` there, where
  ``cs231n_grading.config.default_locale_dir`` finds them (``release --lang zh``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent

# (folder in the checkout, glob patterns inside it, destination inside the installed packages)
COURSE_FILES = [
    ("datasets", ["*.npz", "LICENSES.md", "README.md"], "cs231n_lib/data/datasets"),
    ("assignments", ["*/*.ipynb"], "cs231n_grading/packaged_course/assignments"),
    ("grading", ["nbgrader_config.py"], "cs231n_grading/packaged_course/course"),
    ("course_src/locale", ["*/*.po"], "cs231n_grading/packaged_course/locale"),
]


def course_files(root: Path = ROOT) -> list[tuple[Path, Path]]:
    """(source file, destination relative to the build folder) of every file a wheel ships
    from outside the packages; ValueError if a source folder has none (a broken checkout)."""
    pairs = []
    for folder, patterns, dest in COURSE_FILES:
        found = sorted({p for pattern in patterns for p in (root / folder).glob(pattern)
                        if p.is_file() and ".ipynb_checkpoints" not in p.parts})
        if not found:
            raise ValueError(f"no {patterns} in {root / folder}: cannot build the course wheel")
        pairs += [(p, Path(dest) / p.relative_to(root / folder)) for p in found]
    return pairs


class BuildPyWithCourse(build_py):
    """``build_py`` that also copies the course files (not in editable installs, which read
    the checkout)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for src, rel in course_files():
            dest = Path(self.build_lib) / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildPyWithCourse})
