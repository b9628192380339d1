"""``cs231n-course release``: student notebooks (nbgrader) + student library edition + leak scan.

``--lang en`` (default) releases the English notebooks, ``--lang zh`` the Chinese editions
(``<NN_name>.zh.ipynb``, cs231n_grading.translation), ``--lang all`` both, side by side in
``release/<assignment>/``. nbgrader's generate_assignment always runs on the English source
notebook (the gradebook knows that one); a Chinese edition is generated from its translated
source in a throw-away course (its own gradebook), so it has the same grade ids and points, and
its translated source is kept in ``released_source/`` beside the English one for grading.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from cs231n_grading.config import CourseConfig
from cs231n_grading.editions import edition_name, languages
from cs231n_grading.gradebook import create_gradebook
from cs231n_grading.leakscan import scan_release
from cs231n_grading.student_edition import build_student_edition


class LeakError(RuntimeError):
    """The release contains reference solutions or hidden tests."""


def link_source(cfg: CourseConfig) -> Path:
    """Make ``<course>/source`` a symlink to the assignments folder (nbgrader's source)."""
    link = cfg.course_dir / "source"
    target = cfg.assignments_dir
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return link
        link.unlink()
    elif link.exists():
        raise ValueError(f"{link} exists and is not a symlink to {target}; move it away")
    link.symlink_to(target, target_is_directory=True)
    return link


def write_course_config(cfg: CourseConfig) -> Path:
    """``<course>/nbgrader_config.py`` so plain nbgrader (formgrader, export) finds the course."""
    path = cfg.course_dir / "nbgrader_config.py"
    path.write_text(
        '"""Written by cs231n-course release: the course config plus this course root."""\n'
        "c = get_config()  # noqa: F821\n"
        f"load_subconfig({str(cfg.config_file)!r})  # noqa: F821\n"
        f"c.CourseDirectory.root = {str(cfg.course_dir)!r}\n"
        f"c.CourseDirectory.db_url = {cfg.gradebook_url!r}\n", encoding="utf-8")
    return path


def build_library(cfg: CourseConfig) -> dict[Path, Path]:
    """Student editions of the configured packages in ``<course>/student_library``."""
    out = cfg.student_library_dir
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    editions = {}
    for package in cfg.library:
        build_student_edition(package, out)
        editions[package] = out / package.name
    return editions


def generate(cfg: CourseConfig, assignment: str) -> None:
    """nbgrader generate_assignment (fills the gradebook with notebooks, cells, points)."""
    from nbgrader.apps import NbGraderAPI

    api = NbGraderAPI(config=cfg.nbgrader_config())
    result = api.generate_assignment(assignment, force=True, create=True)
    if not result.get("success"):
        if "there are submissions associated" in (result.get("log") or ""):
            raise ValueError(f"{assignment}: its source notebook gained or lost cells after "
                             "students submitted, and nbgrader cannot re-release it. Grading "
                             f"keeps using the released version ({cfg.course_dir}/released_source"
                             "); re-release only as a new assignment")
        # nbgrader's log names the cause; its error is only the final traceback
        log = (result.get("log") or "").strip().splitlines()[-20:]
        raise RuntimeError(f"nbgrader generate_assignment {assignment} failed:\n"
                           + "\n".join(log) + f"\n{result.get('error') or ''}".rstrip())


def generate_edition(cfg: CourseConfig, assignment: str, lang: str) -> list[Path]:
    """The ``lang`` edition of ``assignment``: translated sources in ``released_source/``, and
    their student versions, made by nbgrader in a throw-away course, in ``release/``."""
    from nbgrader.apps import NbGraderAPI

    from cs231n_grading.translation import translate_file

    written = []
    with tempfile.TemporaryDirectory(prefix="cs231n-edition-") as tmp:
        course = Path(tmp)
        for nb in cfg.source_notebooks(assignment):
            name = edition_name(nb.stem, lang)
            translated = translate_file(nb, cfg.catalogue(nb.stem, lang), lang,
                                        cfg.course_dir / "released_source" / assignment / name)
            (course / "source" / assignment).mkdir(parents=True, exist_ok=True)
            shutil.copy2(translated, course / "source" / assignment / name)
        config = cfg.nbgrader_config()
        config.CourseDirectory.root = str(course)
        config.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
        create_gradebook(config.CourseDirectory.db_url)
        result = NbGraderAPI(config=config).generate_assignment(assignment, force=True,
                                                                create=True)
        if not result.get("success"):
            tail = (result.get("log") or "").strip().splitlines()[-20:]
            raise RuntimeError(f"nbgrader generate_assignment {assignment} ({lang}) failed:\n"
                               + "\n".join(tail) + f"\n{result.get('error') or ''}".rstrip())
        for made in sorted((course / "release" / assignment).glob(f"*.{lang}.ipynb")):
            dest = cfg.course_dir / "release" / assignment / made.name
            shutil.copy2(made, dest)
            written.append(dest)
    return written


def release(cfg: CourseConfig, assignments: list[str] | None = None, log=print,
            lang: str = "en") -> list[str]:
    """Build the release of ``assignments`` (default all) in the editions ``lang`` names
    ("en", "zh" or "all") and check it for leaks."""
    langs = languages(lang)
    assignments = assignments or cfg.assignments()
    cfg.course_dir.mkdir(parents=True, exist_ok=True)
    create_gradebook(cfg.gradebook_url)  # schema from alembic's API: nbgrader runs no command
    link_source(cfg)
    write_course_config(cfg)
    editions = build_library(cfg)
    for name in assignments:
        generate(cfg, name)
        snap = cfg.course_dir / "released_source" / name  # grading uses the released version
        if snap.exists():
            shutil.rmtree(snap)
        snap.mkdir(parents=True)
        for nb in cfg.source_notebooks(name):
            shutil.copy2(nb, snap / nb.name)
            if "en" not in langs:  # students get only the editions asked for
                (cfg.course_dir / "release" / name / nb.name).unlink(missing_ok=True)
        for other in langs:
            if other != "en":
                generate_edition(cfg, name, other)
        log(f"released {name} ({', '.join(langs)}) -> {cfg.course_dir / 'release' / name}")
    leaks = scan_release(
        [cfg.course_dir / "release" / a for a in assignments] + [cfg.student_library_dir],
        [nb for a in assignments for nb in cfg.source_notebooks(a)], editions)
    if leaks:
        raise LeakError("the release leaks reference material:\n  " + "\n  ".join(leaks))
    log(f"student library edition -> {cfg.student_library_dir} (leak scan: clean)")
    return assignments
