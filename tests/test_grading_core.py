"""The grading core's single definitions and types: markers, status, tasks, course settings,
the gradebook's creation without PATH, the jupyter_client adapter and the worker start method."""

from __future__ import annotations

import os
import pickle
import re
import sqlite3
import subprocess
import sys
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from cs231n_grading import cli, markers
from cs231n_grading.config import CourseGrading, load_config
from cs231n_grading.outcome import GRADED, Status, is_graded
from cs231n_grading.sandbox_argv import DEFAULT_MEMORY_MB, SandboxLimits
from cs231n_grading.status import StatusStore
from cs231n_grading.tasks import GradingTask, KernelSettings, with_threads

REPO = Path(__file__).resolve().parents[1]
GRADING = REPO / "grading" / "cs231n_grading"
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"


def _literal_hits(pattern: str, allowed: set[str]) -> list[str]:
    """grading/*.py files outside ``allowed`` whose code (comments and ``literal`` mentions in
    docstrings left out) matches ``pattern``."""
    def code(path: Path) -> str:
        text = re.sub(r"``[^`]*``", "", path.read_text())
        return "\n".join(ln.split("#  ")[0] for ln in text.splitlines())
    return sorted(p.name for p in GRADING.glob("*.py")
                  if p.name not in allowed and re.search(pattern, code(p)))


# --------------------------------------------------------------------------- one definition

def test_markers_and_memory_limit_are_defined_once():
    assert _literal_hits(r"BEGIN (SOLUTION|HIDDEN TESTS)", {"markers.py"}) == []
    assert _literal_hits(r"\b3072\b", {"sandbox_argv.py"}) == []
    assert SandboxLimits().memory_mb == CourseGrading().memory_mb == DEFAULT_MEMORY_MB


def test_marker_regions_and_stripping():
    text = ("x = 1\n### BEGIN SOLUTION\ny = 2\n\n### END SOLUTION\n"
            "    ## BEGIN HIDDEN TESTS\nassert y\n    ## END HIDDEN TESTS\n")
    assert markers.regions(text, markers.SOLUTION) == [["y = 2"]]
    assert markers.regions(text, markers.HIDDEN_TESTS) == [["assert y"]]
    assert markers.has_hidden_tests(text)
    assert markers.strip_solution_markers(text).splitlines()[:3] == ["x = 1", "y = 2", ""]
    with pytest.raises(ValueError, match="unknown region kind 'SOLUTIONS'"):
        markers.regions(text, "SOLUTIONS")


# --------------------------------------------------------------------------- status

def test_status_text_round_trips_and_rejects_other_strings():
    assert str(GRADED) == "graded" and GRADED.graded
    bad = Status.not_graded("missing notebook a.ipynb")
    assert str(bad) == "not graded: missing notebook a.ipynb" and not bad.graded
    assert Status.parse(str(bad)) == bad and Status.parse("graded") is GRADED
    assert is_graded("graded") and not is_graded(str(bad))
    for text in ("", "Graded", "not graded", "incomplete: x"):
        with pytest.raises(ValueError, match="not a grading status"):
            Status.parse(text)
    with pytest.raises(ValueError, match="needs a reason"):
        Status.not_graded("  ")


def test_status_store_refuses_a_status_that_is_no_status(tmp_path):
    store = StatusStore(tmp_path)
    row = {"student": "s", "assignment": "a", "notebook": "n", "notes": [], "tests": []}
    store.put(row | {"status": "not graded: broken"})
    with pytest.raises(ValueError, match="not a grading status: 'not graded:'"):
        store.put(row | {"status": "not graded:"})
    assert store.get("s", "a", "n")["status"] == "not graded: broken"
    store.close()


def test_scores_and_exports_do_not_load_the_kernel_stack():
    code = ("import sys, cs231n_grading.gradebook, cs231n_grading.export, "
            "cs231n_grading.feedback, cs231n_grading.status\n"
            "print(sorted(m for m in ('cs231n_grading.worker', 'cs231n_grading.kernels', "
            "'cs231n_grading.sandbox', 'cs231n_grading.execute') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- tasks

def _settings(**kw) -> KernelSettings:
    base = dict(sandbox=False, library_dir=Path("/lib"), env={"A": "1"}, cell_timeout=1.0,
                notebook_timeout=2.0, max_output_bytes=3, max_notebook_bytes=4,
                max_notebook_output_bytes=5, memory_mb=6)
    return KernelSettings(**(base | kw))


def test_tasks_are_frozen_picklable_and_get_their_cpu_share():
    task = GradingTask(settings=_settings(), student="s", assignment="a", notebook="n",
                       submission=Path("/s"), source=Path("/src"), release=Path("/r"),
                       release_dir=Path("/rd"), reference={"cells": {}})
    assert pickle.loads(pickle.dumps(task)) == task
    with pytest.raises(FrozenInstanceError):
        task.key = "x"
    shared = with_threads(task, 3)
    assert shared.settings.threads == 3 and task.settings.threads is None
    assert shared.settings.key_text() == task.settings.key_text()  # not part of any key
    assert _settings(cell_timeout=9.0).key_text() != task.settings.key_text()
    assert with_threads({"n": 1}, 3) == {"n": 1}


def test_settings_come_from_the_course_config_with_overrides():
    cfg = load_config(FIXTURE / "nbgrader_config.py", sandbox=False)
    s = KernelSettings.for_assignment(cfg, "01_basics")
    assert (s.cell_timeout, s.memory_mb, s.sandbox) == (cfg.cell_timeout_for("01_basics"),
                                                        cfg.memory_mb, False)
    assert s.library_dir == cfg.student_library_dir


# --------------------------------------------------------------------------- course settings

def _config(tmp_path, body: str) -> Path:
    path = tmp_path / "nbgrader_config.py"
    path.write_text("c = get_config()\n" + body)
    return path


@pytest.mark.parametrize("body,message", [
    ('c.CourseGrading.sandbox = "false"\n', "'sandbox' trait .* expected a boolean"),
    ("c.CourseGrading.cell_timeout = '60'\n", "'cell_timeout' trait"),
    ("c.CourseGrading.memory_mb = 0\n", "'memory_mb' trait"),
    ("c.CourseGrading.env = {'A': 1}\n", "'env' trait"),
    ("c.CourseGrading.timeouts = {'a': {'cel': 1}}\n", r"timeouts\['a'\] has unknown keys"),
    ("c.CourseGrading.sandox = True\n", r"unknown CourseGrading settings \['sandox'\]"),
])
def test_config_values_are_type_checked(tmp_path, body, message):
    with pytest.raises(ValueError, match=message):
        load_config(_config(tmp_path, body))


def test_command_line_overrides_the_config_file(tmp_path, monkeypatch):
    path = _config(tmp_path, "c.CourseGrading.cell_timeout = 7\n")
    seen = []
    monkeypatch.setattr(cli, "_run", lambda args, cfg: seen.append((args, cfg)) or 0)
    assert cli.main(["--course", str(path), "autograde", "--CourseGrading.cell_timeout=60",
                     "--jobs", "2", "--CourseGrading.sandbox", "false"]) == 0
    args, cfg = seen[0]
    assert (cfg.cell_timeout, cfg.sandbox, args.jobs) == (60.0, False, 2)
    assert load_config(path).cell_timeout == 7.0


def test_a_bad_command_line_setting_is_an_error(tmp_path, capsys):
    path = _config(tmp_path, "")
    assert cli.main(["--course", str(path), "export", "--CourseGrading.cell_timeout=soon"]) == 2
    assert "cell_timeout" in capsys.readouterr().err
    assert cli.main(["--course", str(path), "export", "--CourseGrading.cel_timeout=1"]) == 2
    assert "unknown CourseGrading settings ['cel_timeout']" in capsys.readouterr().err


def test_loading_the_config_leaves_path_alone(tmp_path):
    before = os.environ.get("PATH")
    load_config(FIXTURE / "nbgrader_config.py")
    assert os.environ.get("PATH") == before


def test_a_new_gradebook_needs_no_alembic_command(tmp_path, monkeypatch):
    from nbgrader.api import get_alembic_version

    from cs231n_grading.gradebook import create_gradebook, open_gradebook

    monkeypatch.setenv("PATH", str(tmp_path))  # no `alembic` to run
    url = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with open_gradebook(url) as gb:
        gb.add_student("s")
    assert not create_gradebook(url)  # exists: left as it is
    stamped = sqlite3.connect(tmp_path / "gradebook.db").execute(
        "SELECT version_num FROM alembic_version").fetchall()
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert stamped == [(get_alembic_version(),)]  # what nbgrader's own command says


# --------------------------------------------------------------------------- worker processes

def test_workers_are_not_forked_from_the_threaded_parent():
    from cs231n_grading.autograde import _context

    assert _context().get_start_method() in ("forkserver", "spawn")
