"""The grader as an ordinary user: release, sandboxed autograde and export of the fixture course
run by an unprivileged account (no root, bubblewrap in an unprivileged user namespace).

The rest of the suite runs as whoever runs it; on CI and the developers' machines that is root,
where each sandbox gets its own uid and cgroups may add caps. Instructors usually grade as a
normal user, so this test drops to ``nobody`` (as root) and grades a small class from the
command line, the way the README tells instructors to.
"""

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).parent / "fixtures" / "course_small"
NOBODY = 65534


def _runner() -> list[str]:
    """The command prefix that runs a program as ``nobody``."""
    tool = shutil.which("runuser") or shutil.which("setpriv")
    if tool is None:
        pytest.fail("runuser/setpriv missing: cannot drop to an unprivileged user")
    if tool.endswith("runuser"):
        return [tool, "-u", "nobody", "--"]
    return [tool, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def _system_python() -> str:
    """A Python 3.11+ that ``nobody`` can run: this one, or the system's (Debian 12: 3.11.2)."""
    for exe in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run([*_runner(), exe, "-c", "import sys; print(sys.version_info >= "
                                "(3, 11))"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return exe
    pytest.fail("no Python 3.11+ that an unprivileged user may run (the test environment's "
                "interpreter lives in a private folder and /usr/bin/python3 is missing or old)")


def _venv_for_nobody(home: Path) -> Path:
    """A venv of ``nobody``'s own on a Python it can run, holding this environment's packages.

    The packages are hard links to this environment's files (no download, no copy); the
    project itself is the same editable install, so the code under test is this checkout's.
    """
    venv = home / "venv"
    python = _system_python()
    if python == sys.executable:
        return Path(sys.prefix)
    subprocess.run([*_runner(), python, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)
    site = Path(sysconfig.get_paths()["purelib"])
    target = venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    subprocess.run(["cp", "-al", f"{site}/.", str(target)], check=True, timeout=300)
    for script in Path(sys.prefix, "bin").iterdir():  # console scripts (nbgrader runs alembic)
        lines = script.read_bytes().split(b"\n", 1) if script.is_file() else []
        if len(lines) == 2 and lines[0].startswith(b"#!") and b"python" in lines[0]:
            if not (venv / "bin" / script.name).exists():
                out = venv / "bin" / script.name
                out.write_bytes(b"#!" + bytes(venv / "bin" / "python") + b"\n" + lines[1])
                out.chmod(0o755)
    return venv


@pytest.fixture
def home():
    """A world-traversable folder owned by ``nobody`` (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="cs231n-unpriv-"))
    path.chmod(0o755)
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="already unprivileged: every grading test of this "
                    "suite runs as this user, so this case is covered by them")
def _sandboxed_config(home: Path) -> Path:
    """The fixture course's config with absolute paths and the sandbox on (the fixture's own
    config switches it off for tests that are not about the sandbox)."""
    text = (FIXTURE / "nbgrader_config.py").read_text()
    for rel in ('"assignments"', '"../../../cs231n_lib"', '"fixturelib"'):
        assert rel in text, rel
        text = text.replace(rel, repr(str((FIXTURE / rel.strip('"')).resolve())))
    assert "c.CourseGrading.sandbox = False" in text
    text = text.replace("c.CourseGrading.sandbox = False", "c.CourseGrading.sandbox = True")
    path = home / "nbgrader_config.py"
    path.write_text(text)
    return path


def test_release_autograde_export_as_an_unprivileged_user(home):
    course = home / "course"
    config = _sandboxed_config(home)
    python = _venv_for_nobody(home) / "bin" / "python"
    env = {"HOME": str(home), "PATH": f"{python.parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    base = [*_runner(), "env", "-i", *(f"{k}={v}" for k, v in env.items()),
            str(python), "-m", "cs231n_grading", "--course", str(config),
            "--course-dir", str(course)]

    def run(*args):
        proc = subprocess.run([*base, *args], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
        return proc.stdout

    run("release")
    assert course.stat().st_uid == NOBODY  # made by the unprivileged user
    write = (f"from pathlib import Path\nfrom cs231n_grading.config import load_config\n"
             f"from cs231n_grading.samples import write_submission\n"
             f"cfg = load_config(Path({str(config)!r}), "
             f"course_dir=Path({str(course)!r}))\n"
             f"for student, kind in (('alice', 'correct'), ('bob', 'untouched'), "
             f"('carol', 'partial')):\n"
             f"    write_submission(cfg.course_dir, student, '01_basics', kind, "
             f"cfg.source_notebooks('01_basics'))\n")
    subprocess.run([*_runner(), "env", "-i", *(f"{k}={v}" for k, v in env.items()),
                    str(python), "-c", write], check=True, timeout=120)
    # alice's notebook also says where it runs: the sandbox's host name and user
    alice = course / "submitted" / "alice" / "01_basics" / "01_basics.ipynb"
    nb = nbformat.read(alice, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, socket\nprint('WHERE', socket.gethostname(), os.getuid())"))
    nbformat.write(nb, alice)
    run("autograde", "01_basics", "--jobs", "2")
    graded = nbformat.read(course / "autograded" / "alice" / "01_basics" / "01_basics.ipynb",
                           as_version=4)
    said = "".join(o.get("text", "") for o in graded.cells[-1].outputs)
    assert said.split()[:2] == ["WHERE", "sandbox"], said  # bubblewrap's --hostname
    run("export", "--csv", str(course / "grades.csv"))
    with open(course / "grades.csv", newline="") as f:
        table = {r["student"]: r for r in csv.DictReader(f) if r["assignment"] == "01_basics"}
    assert set(table) == {"alice", "bob", "carol"}
    assert all(r["status"].startswith("graded") for r in table.values()), table
    assert float(table["alice"]["score"]) == 3.0
    assert float(table["bob"]["score"]) == 0.0
    assert 0.0 < float(table["carol"]["score"]) < 3.0
    # nothing the unprivileged run wrote belongs to root
    assert not [p for p in course.rglob("*") if p.lstat().st_uid != NOBODY]
