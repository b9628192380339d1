"""Real-browser tests: JupyterLab and nbgrader's formgrader driven in headless Chromium.

Student: ``cs231n-course lab`` on a released 01_convolution; the part 1 markdown renders its
formula; the visible test of part 1 fails on the release stub; a solution typed into the solution
cell's editor passes it; Ctrl+S saves it; ``cs231n-course check`` on the saved file passes part 1.
Instructor: ``jupyter lab`` in a course directory; the formgrader lists the autograded class of
the fixture course; a manual grade typed for a written answer shows in ``cs231n-course export``.

Needs Playwright for Python and Debian's Chromium (``make test`` installs both as root); without
them every test here is skipped with a reason that says what to install. Screenshots of every step
go to ``$CS231N_ARTEFACTS/browser/<test>/`` or, without that variable, to the test's tmp_path;
their folder is printed.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import secrets
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from browser_utils import (
    BIN,
    CHROMIUM,
    CHROMIUM_ARGS,
    UI_WAIT_MS,
    LabNotebook,
    Server,
    Shots,
    free_port,
    require_browser,
    server_env,
)

from cs231n_grading.config import load_config
from cs231n_grading.restore import nbg
from cs231n_grading.samples import solution_text, write_submission

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "course_small"
A = "01_convolution"  # the student flow's notebook
PART1 = ("conv_param_counts", "test_conv_param_counts")  # solution cell, its visible test cell
FORMULA_MATH = "K(F2C+1)"  # part 1's $K (F^2 C + 1)$ as MathJax's text (its MathML)
FORMULA_SOURCE = "$K (F^2 C + 1)$"  # the same before MathJax typesets it
B = "01_basics"  # the instructor flow's fixture notebook; written answer relu_why (1 point)
CLASS = {"alice": "correct", "carol": "partial"}
MANUAL = ("alice", "relu_why", 0.5)  # student, written answer, score typed in the formgrader
CLI_TIMEOUT = 240  # seconds for one cs231n-course command


def cli(*args, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``cs231n-course ARGS`` (the installed script), capturing its output."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])  # nbgrader runs `alembic`
    return subprocess.run([str(BIN / "cs231n-course"), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def cli_ok(*args) -> str:
    """``cli(*args)``'s output; fails the test with the output when the command fails."""
    done = cli(*args)
    assert done.returncode == 0, f"cs231n-course {args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, with a fresh profile (Playwright's own temporary one)."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True, timeout=UI_WAIT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context (no cookies, no storage), 60 s per action at most."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_WAIT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def shots(request, page, tmp_path, capsys):
    """Numbered screenshots of the test's steps; their folder is printed at the end."""
    root = os.environ.get("CS231N_ARTEFACTS")
    folder = Path(root) / "browser" / request.node.name if root else tmp_path / "screenshots"
    shutil.rmtree(folder, ignore_errors=True)
    take = Shots(page, folder)
    try:
        yield take
    finally:
        with capsys.disabled():
            print(f"\n[{request.node.name}] {take.n} screenshot(s) in {folder}")


def cell_index(nb, grade_id: str) -> int:
    """Index of the cell with nbgrader ``grade_id`` (the same index in JupyterLab's page)."""
    return next(i for i, c in enumerate(nb.cells) if nbg(c).get("grade_id") == grade_id)


def section_index(nb, number: int) -> int:
    """Index of the markdown cell that opens part ``number`` (``## N. ...``)."""
    return next(i for i, c in enumerate(nb.cells)
                if c.cell_type == "markdown" and c.source.startswith(f"## {number}. "))


def section_report(report: str, number: int) -> str:
    """The lines of ``check``'s report for part ``number`` (up to the next part or total)."""
    found = re.search(rf"^{number}\. .*?(?=^\d+\. |^Total|\Z)", report, re.M | re.S)
    assert found, f"no part {number} in check's report:\n{report}"
    return found.group()


def assert_formula_rendered(nb: LabNotebook, index: int) -> None:
    """Part 1's markdown as rendered: the formula as MathJax text (or its TeX source while
    MathJax has not typeset it), no numbered list."""
    rendered = nb.cell(index).locator(".jp-RenderedMarkdown")
    with contextlib.suppress(Exception):
        rendered.locator("mjx-container").first.wait_for(timeout=30_000)
    maths = ["".join(t.split()) for t in rendered.locator("mjx-assistive-mml").all_text_contents()]
    text = rendered.text_content()
    assert FORMULA_MATH in maths or FORMULA_SOURCE in text, (
        f"part 1's formula is neither {FORMULA_MATH!r} (MathJax) nor {FORMULA_SOURCE!r}: "
        f"math {maths}, text {text!r}")
    assert rendered.locator("ol").count() == 0, rendered.inner_html()


def assert_passes(output: str, pass_line: bool) -> None:
    """A passing test cell: no error; it ends with a pass line when the release's cell has one."""
    assert not re.search(r"Traceback|\w+Error\b|not implemented yet", output), output
    if pass_line:
        last = ([ln for ln in output.splitlines() if ln.strip()] or [""])[-1]
        assert re.search(r"\bpassed\b", last), f"no pass line at the end of:\n{output}"


def test_student_solves_part_1_in_jupyterlab(page, shots, tmp_path):
    course = tmp_path / "course"
    cli_ok("--course-dir", course, "release", A)
    shots.mark("released")
    path = course / "release" / A / f"{A}.ipynb"
    released = nbformat.read(path, as_version=4)
    source = nbformat.read(ROOT / "assignments" / A / f"{A}.ipynb", as_version=4)
    solution_at, test_at = (cell_index(released, g) for g in PART1)
    answer = solution_text(source.cells[cell_index(source, PART1[0])])
    pass_line = bool(re.search(r"\bpassed\b", released.cells[test_at].source))  # prints one
    setup = [i for i, c in enumerate(released.cells[:solution_at]) if c.cell_type == "code"]

    server = Server([str(BIN / "cs231n-course"), "--course-dir", str(course), "lab",
                     "--no-browser", "--port", str(free_port())], cwd=tmp_path,
                    env=server_env(tmp_path), log=tmp_path / "lab.log")
    try:
        url = server.wait_for(r"JupyterLab: (http://127\.0\.0\.1:\d+)/lab\?token=(\w+)")
        shots.mark("lab started")
        with shots.on_failure():
            page.goto(f"{url[1]}/lab/tree/{A}/{A}.ipynb?reset&token={url[2]}")
            nb = LabNotebook(page, len(released.cells))
            shots("opened")

            assert_formula_rendered(nb, section_index(released, 1))
            nb.cell(section_index(released, 1)).screenshot(
                path=str(shots.folder / "part1_markdown.png"))

            for i in setup:
                nb.run(i)
            shots.mark("setup cells run")
            nb.run(solution_at)  # the release's stub
            failing = nb.run(test_at)
            nb.cell(test_at).scroll_into_view_if_needed()
            shots("test_fails_on_the_stub")
            assert re.search(r"NotImplementedError|not implemented yet", failing), failing

            nb.replace_source(solution_at, answer)
            assert nb.editor_text(solution_at) == answer
            shots("solution_typed")
            nb.run(solution_at)
            passing = nb.run(test_at)
            nb.cell(test_at).scroll_into_view_if_needed()
            shots("test_passes")
            assert_passes(passing, pass_line)
            shots.mark("pass line " + ("asserted" if pass_line else "not in the release's cell"))

            nb.save(path, solution_at, answer)
            shots("saved")
    finally:
        server.stop()

    done = cli("--course-dir", course, "check", path)
    shots.mark("checked")
    (shots.folder / "check.txt").write_text(done.stdout + done.stderr, encoding="utf-8")
    assert done.returncode == 1, done.stdout + done.stderr  # later parts are still stubs
    part1 = section_report(done.stdout, 1)
    line = next((ln for ln in part1.splitlines() if re.search(rf"\b{PART1[1]}\b", ln)), "")
    assert re.match(r"\s*ok\b", line) and "FAIL" not in part1, part1
    assert "FAIL" in section_report(done.stdout, 2), done.stdout  # the check can fail


def test_instructor_grades_a_written_answer_in_formgrader(page, shots, tmp_path):
    course = tmp_path / "course"
    cli_ok("--course", FIXTURE, "--course-dir", course, "release", B)
    cfg = load_config(FIXTURE / "nbgrader_config.py", course_dir=course)
    for student, kind in CLASS.items():
        write_submission(course, student, B, kind, cfg.source_notebooks(B))
    cli_ok("--course", FIXTURE, "--course-dir", course, "autograde", B)
    shots.mark("released and autograded")
    student, grade_id, score = MANUAL
    before = export_scores(course)
    assert set(before) == set(CLASS), before
    shots.mark("exported")

    token = secrets.token_hex(24)
    port = free_port()
    command = [str(BIN / "jupyter"), "lab", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
               "--ServerApp.open_browser=False"]
    if os.geteuid() == 0:
        command.append("--ServerApp.allow_root=True")
    env = server_env(tmp_path, JUPYTER_TOKEN=token,
                     JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"))
    server = Server(command, cwd=course, env=env, log=tmp_path / "formgrader.log")
    try:
        server.wait_for(r"Jupyter Server \S+ is running at")
        shots.mark("jupyter lab started")
        base = f"http://127.0.0.1:{port}"
        with shots.on_failure():
            page.goto(f"{base}/lab?token={token}")  # the printed URL: logs the browser in
            page.goto(f"{base}/formgrader/manage_submissions/{B}")
            rows = page.locator("#main-table tr")
            for name in CLASS:
                rows.filter(has_text=name).first.wait_for()
            shots("formgrader_lists_the_class")
            for name, (points, out_of) in before.items():  # autograded: scores shown
                row = rows.filter(has_text=name).first.inner_text()
                assert f"{points:g} / {out_of:g}" in row, row

            page.goto(f"{base}/formgrader/manage_students/{student}/{B}")
            with page.expect_navigation():
                page.locator("#main-table tr a").filter(has_text=B).first.click()
            # the page binds its score boxes once it has fetched the grades: typing earlier is lost
            page.wait_for_function("() => window.formgrader && formgrader.grades.loaded")
            box = page.locator(f"input.score#{grade_id}")
            box.fill(f"{score:g}")
            with page.expect_response(lambda r: "/formgrader/api/grade/" in r.url
                                      and r.request.method == "PUT") as saved:
                box.press("Tab")
            assert saved.value.ok, saved.value.status
            box.scroll_into_view_if_needed()
            shots("manual_grade_entered")
    finally:
        server.stop()

    after = export_scores(course)
    shots.mark("exported")
    assert after[student] == (before[student][0] + score, before[student][1]), (before, after)
    assert {s: v for s, v in after.items() if s != student} == \
        {s: v for s, v in before.items() if s != student}


def export_scores(course: Path) -> dict[str, tuple[float, float]]:
    """Each student's (score, max score) for ``B`` in ``cs231n-course export``'s CSV."""
    out = course / "grades.csv"
    cli_ok("--course", FIXTURE, "--course-dir", course, "export", "--csv", out)
    with out.open(newline="") as f:
        return {r["student"]: (float(r["score"]), float(r["max_score"]))
                for r in csv.DictReader(f) if r["notebook"] == B}
