"""``cs231n-course``: the course's grading command line (release, autograde, feedback, ...).

Any course setting can be overridden for one run, anywhere on the line, with
``--CourseGrading.<setting>=<value>`` (e.g. ``cs231n-course autograde
--CourseGrading.cell_timeout=60``); traitlets checks the value against the setting's type.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cs231n_grading.config import load_config
from cs231n_grading.editions import LANG_CHOICES
from cs231n_grading.locale import tr
from cs231n_grading.startup import skip_exit_collection, start_worker_server


def _parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    p = argparse.ArgumentParser(prog="cs231n-course", description=__doc__)
    p.add_argument("--course", metavar="PATH",
                   help="course config (an nbgrader_config.py, or a folder holding one); "
                        "default: grading/nbgrader_config.py")
    p.add_argument("--course-dir", metavar="DIR",
                   help="where release/, submitted/, gradebook.db, ... live (default: course/)")
    p.add_argument("--no-sandbox", dest="sandbox", action="store_false", default=None,
                   help="run kernels without isolation (trusted notebooks only)")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("release", help="student notebooks + student library, leak-checked")
    r.add_argument("assignments", nargs="*")
    r.add_argument("--lang", choices=LANG_CHOICES, default="en",
                   help="editions to release: en (default), zh (中文版: NN_name.zh.ipynb) or "
                        "all (both, side by side)")
    a = sub.add_parser("autograde", help="grade submitted/ in parallel (resumes)")
    a.add_argument("assignment", nargs="?")
    a.add_argument("--students", nargs="+")
    a.add_argument("--jobs", type=int, help="worker processes (default: number of cores)")
    a.add_argument("--force", action="store_true", help="re-grade unchanged submissions too")
    a.add_argument("--scheduler", metavar="ADDRESS",
                   help="grade on a Dask cluster: a scheduler address (tcp://host:8786) or "
                        "local:N (N local worker processes); default: local processes (--jobs)")
    f = sub.add_parser("feedback", help="per-student HTML: the submission as submitted, verdicts, "
                                        "points from the gradebook (no hidden tests)")
    f.add_argument("assignment", nargs="?")
    f.add_argument("--students", nargs="+")
    e = sub.add_parser("export", help="CSV and table of gradebook scores and statuses")
    e.add_argument("--csv", type=Path,
                   help="output file (default: <course-dir>/grades_with_status.csv)")
    c = sub.add_parser("check", help=tr("run your notebook's visible tests as the grader would"))
    c.add_argument("notebook", type=Path,
                   help=tr("your notebook (NN_name.ipynb, or the Chinese edition "
                           "NN_name.zh.ipynb)"))
    v = sub.add_parser("verify", help="solutions score full marks, student versions 0")
    v.add_argument("assignments", nargs="*")
    v.add_argument("--jobs", type=int)
    v.add_argument("--lang", choices=LANG_CHOICES, default="en",
                   help="editions to verify: en (default), zh or all")
    d = sub.add_parser("demo", help="release, sample class, autograde, grades, feedback")
    d.add_argument("--jobs", type=int)
    from cs231n_grading import lab
    lab.add_parser(sub)
    return p


def _config_path(course: str | None) -> Path | None:
    """The config file named by ``--course`` (a file, or a folder holding one)."""
    if course is None:
        return None
    path = Path(course)
    return path / "nbgrader_config.py" if path.is_dir() else path


OVERRIDE_PREFIX = "--CourseGrading."


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(other arguments, ``--CourseGrading.x=y`` overrides); ``--CourseGrading.x y`` is taken as
    ``--CourseGrading.x=y``."""
    rest, overrides = [], []
    args = iter(argv)
    for arg in args:
        if not arg.startswith(OVERRIDE_PREFIX):
            rest.append(arg)
        elif "=" in arg:
            overrides.append(arg)
        else:
            overrides.append(f"{arg}={next(args, '')}")
    return rest, overrides


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code. Run as the program (``argv`` None: the
    console script, ``python -m cs231n_grading``) it ends with
    ``startup.skip_exit_collection``: the interpreter then exits without a garbage collection
    of everything the command imported and built."""
    try:
        return _main(sys.argv[1:] if argv is None else list(argv))
    finally:
        if argv is None:
            skip_exit_collection()


def _main(argv: list[str]) -> int:
    """main's work: parse ``argv``, load the course config, run the command."""
    rest, overrides = split_overrides(argv)
    parser = _parser()
    parser.epilog = (f"Course settings: {OVERRIDE_PREFIX}<setting>=<value> anywhere on the line "
                     "overrides the config file (see grading/nbgrader_config.py).")
    args = parser.parse_args(rest)
    if _grades_locally(args):
        start_worker_server()  # imports the workers' modules while the config loads here
    sandbox = args.sandbox
    if args.command == "check" and sandbox is None:
        sandbox = False  # your own notebook on your own machine
    try:
        cfg = load_config(_config_path(args.course), course_dir=args.course_dir, sandbox=sandbox,
                          argv=overrides)
        return _run(args, cfg)
    except (ValueError, RuntimeError) as err:
        print(f"cs231n-course {args.command}: error: {err}", file=sys.stderr)
        return 2


def _grades_locally(args) -> bool:
    """Whether the command runs notebooks in local worker processes (autograde without
    --scheduler, verify): those start their fork server before loading the course config."""
    return (args.command == "verify"
            or (args.command == "autograde" and args.scheduler is None))


def _run(args, cfg) -> int:
    """Dispatch one parsed command."""
    if args.command == "release":
        from cs231n_grading.release import release
        release(cfg, args.assignments or None, lang=args.lang)
    elif args.command == "autograde":
        from cs231n_grading.autograde import autograde
        from cs231n_grading.export import export
        autograde(cfg, args.assignment, students=args.students, jobs=args.jobs, force=args.force,
                  scheduler=args.scheduler)
        export(cfg)
    elif args.command == "feedback":
        from cs231n_grading.feedback import feedback
        feedback(cfg, args.assignment, students=args.students)
    elif args.command == "export":
        from cs231n_grading.export import export
        export(cfg, args.csv)
    elif args.command == "check":
        from cs231n_grading.selfcheck import check
        return check(cfg, args.notebook)
    elif args.command == "verify":
        from cs231n_grading.verify import verify
        return 1 if verify(cfg, args.assignments or None, jobs=args.jobs, lang=args.lang) else 0
    elif args.command == "demo":
        from cs231n_grading.class_demo import demo
        demo(cfg, jobs=args.jobs)
    elif args.command == "lab":
        from cs231n_grading.lab import run
        return run(cfg, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
