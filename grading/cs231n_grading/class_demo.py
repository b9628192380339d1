"""``cs231n-course demo``: release, a sample class, parallel autograde, table, feedback, CSV.

The sample class: alice (correct, from the reference solutions), bob (the untouched student
version), carol (half the exercises done), dave (correct, but printing warnings and writing to
stderr) and erin (a notebook file cut in half: invalid JSON).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from pathlib import Path

from cs231n_grading.autograde import autograde
from cs231n_grading.config import CourseConfig
from cs231n_grading.export import export
from cs231n_grading.feedback import feedback
from cs231n_grading.release import release
from cs231n_grading.samples import write_submission

CLASS = {"alice": "correct", "bob": "untouched", "carol": "partial", "dave": "warnings",
         "erin": "broken"}


MARKER = ".cs231n-demo"


def fresh_course_dir(path: Path) -> None:
    """Empty ``path`` for the demo: only if the demo made it (marker file), never a real course."""
    if path.exists() and any(path.iterdir()):
        if not (path / MARKER).is_file():
            raise ValueError(f"{path} holds a course the demo did not make; run the demo with "
                             "--course-dir pointing to an empty or new folder")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by `cs231n-course demo`; the demo may delete this folder\n")


def demo(cfg: CourseConfig, *, jobs: int | None = None, log=print) -> None:
    """Run the whole pipeline on a sample class and say where everything is."""
    t0 = time.monotonic()
    assignments = cfg.assignments()
    if not assignments:
        raise ValueError(f"no assignments in {cfg.assignments_dir}")
    fresh_course_dir(cfg.course_dir)
    if cfg.sandbox:
        from cs231n_grading.sandbox_argv import sandbox_available

        ok, why = sandbox_available()
        if not ok:  # the demo grades its own sample submissions: trusted code
            log(f"note: {why}; the demo's sample submissions are graded without the sandbox")
            cfg = dataclasses.replace(cfg, sandbox=False)
    log(f"== 1. release {len(assignments)} assignment(s), English and Chinese editions -> "
        f"{cfg.course_dir / 'release'}")
    release(cfg, assignments, log=log, lang="all")
    log(f"== 2. sample class {', '.join(f'{s} ({k})' for s, k in CLASS.items())}")
    for student, kind in CLASS.items():
        for a in assignments:
            write_submission(cfg.course_dir, student, a, kind, cfg.graded_notebooks(a))
    log("== 3. autograde in parallel")
    t1 = time.monotonic()
    results = autograde(cfg, jobs=jobs, log=log)
    graded = [r for r in results if r.get("duration")]
    if graded:
        per = sum(r["duration"] for r in graded) / len(graded)
        log(f"autograded {len(results)} notebook(s) in {time.monotonic() - t1:.1f} s "
            f"(mean {per:.1f} s per notebook in a worker)")
    log("== 4. grades")
    csv_path = export(cfg, log=log)
    log("== 5. feedback")
    pages = feedback(cfg, log=log)
    log(f"\nDone in {time.monotonic() - t0:.0f} s. Where everything is:\n"
        f"  student notebooks:      {cfg.course_dir / 'release'} (NN_name.ipynb, and the Chinese "
        "edition NN_name.zh.ipynb)\n"
        f"  student library:        {cfg.student_library_dir}\n"
        f"  submissions:            {cfg.course_dir / 'submitted'}\n"
        f"  executed (instructor):  {cfg.course_dir / 'autograded'}\n"
        f"  gradebook (nbgrader):   {cfg.course_dir / 'gradebook.db'}\n"
        f"  grades CSV:             {csv_path}\n"
        f"  feedback HTML:          {cfg.course_dir / 'feedback'} ({len(pages)} pages)\n"
        "Open next:\n"
        f"  a feedback page:        {pages[0] if pages else csv_path} (in a browser)\n"
        "  the student's view:     `make lab` (JupyterLab on the released notebooks with the "
        "student library)\n"
        f"  nbgrader's formgrader:  `cd {cfg.course_dir} && {Path(sys.prefix, 'bin', 'jupyter')} "
        "lab` (written answers need a human grade)")
