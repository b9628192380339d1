"""Helpers for the real-browser tests (tests/test_browser.py): headless Chromium driven by
Playwright, Jupyter servers started and stopped by their own process group, JupyterLab notebook
actions (run a cell, replace its source through the editor, save) and numbered screenshots.

Chromium is Debian's (``/usr/bin/chromium``, package ``chromium``), never a browser downloaded by
``playwright install``; Playwright for Python drives it through ``executable_path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CS231N_CHROMIUM", "/usr/bin/chromium"))
# Flags for a closed network and a root user (see /work/.library/env/machines/python.md):
# without the background-networking ones Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
BIN = Path(sys.executable).parent  # the venv's scripts: cs231n-course, jupyter, alembic
SERVER_START = 120.0  # seconds for a Jupyter server to print its URL
STOP_WAIT = 20.0  # seconds for a server to stop on SIGTERM before SIGKILL
UI_WAIT_MS = 60_000  # the longest any single wait for the page may take (ms)
CELL_WAIT_MS = 90_000  # the longest a cell may run (ms)
# JupyterLab settings of the tests' servers: every cell in the page (no windowing), no news toast.
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"}}


def missing_browser() -> str | None:
    """Why the browser tests cannot run here (what is missing and how to install it), or None."""
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append(f"the Python package playwright is not installed: `{BIN / 'pip'} install "
                        "-e .[test]` (never `playwright install`: the tests use Debian's "
                        "Chromium)")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no Chromium at {CHROMIUM}: `apt-get install chromium` as root (`make "
                        "test` does it), or set CS231N_CHROMIUM to a Chromium binary")
    return "; ".join(problems) or None


def require_browser() -> None:
    """Skip, loudly, when Playwright or Chromium is missing."""
    why = missing_browser()
    if why:
        pytest.skip(f"REAL-BROWSER TESTS NOT RUN: {why}")


def free_port() -> int:
    """A port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """Environment for a Jupyter server under test: the venv's scripts first on PATH (nbgrader
    runs ``alembic``), JupyterLab settings and workspaces in ``home`` (so neither the user's
    settings, e.g. a vim keymap, nor saved layouts change what the browser sees), plus ``extra``.
    """
    settings = home / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "JUPYTER_TOKEN")}
    env.update({"PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
                "JUPYTERLAB_SETTINGS_DIR": str(settings),
                "JUPYTERLAB_WORKSPACES_DIR": str(home / "lab-workspaces")}, **extra)
    return env


class Server:
    """A server started in its own process group; its output goes to ``log``."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path):
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = SERVER_START) -> re.Match:
        """The first match of ``pattern`` in the server's output, within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), re.M)
            if found:
                return found
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.25)
        raise AssertionError(f"no {pattern!r} within {timeout:g} s:\n{self.text()[-4000:]}")

    def stop(self) -> None:
        """SIGTERM to the server's own process group, SIGKILL after STOP_WAIT s."""
        if self.proc.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_WAIT), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class Shots:
    """Numbered full-page screenshots in ``folder``, one per step, and ``steps.txt``: the time
    each step (with or without a screenshot) was reached."""

    def __init__(self, page, folder: Path):
        self.page, self.folder, self.n = page, folder, 0
        self.t0 = time.monotonic()
        folder.mkdir(parents=True, exist_ok=True)

    def mark(self, step: str) -> None:
        """Note that ``step`` is done, with the seconds since the test started."""
        with (self.folder / "steps.txt").open("a", encoding="utf-8") as f:
            f.write(f"{time.monotonic() - self.t0:7.1f} s  {step}\n")

    def __call__(self, step: str) -> Path:
        self.n += 1
        path = self.folder / f"{self.n:02d}_{step}.png"
        self.page.screenshot(path=str(path), full_page=True, timeout=UI_WAIT_MS)
        self.mark(path.name)
        return path

    @contextlib.contextmanager
    def on_failure(self):
        """Take a screenshot ``failed`` when the body raises, then let the error through."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self("failed")
            raise


class LabNotebook:
    """The notebook open in a JupyterLab page; cells addressed by their index in the file."""

    def __init__(self, page, n_cells: int):
        self.page = page
        self.cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        deadline = time.monotonic() + UI_WAIT_MS / 1000
        while self.cells.count() != n_cells:
            assert time.monotonic() < deadline, (f"JupyterLab shows {self.cells.count()} cells, "
                                                 f"the notebook has {n_cells}")
            time.sleep(0.25)
        self.wait_idle()

    def wait_idle(self) -> None:
        """Wait for the kernel to be idle (the toolbar's execution indicator)."""
        self.page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                    timeout=CELL_WAIT_MS)

    def cell(self, index: int):
        return self.cells.nth(index)

    def run(self, index: int) -> str:
        """Run cell ``index`` (select it, Ctrl+Enter) and return its output's text."""
        prompt = self.cell(index).locator(".jp-InputPrompt")
        before = prompt.text_content()
        prompt.click()
        self.page.keyboard.press("Control+Enter")
        self.page.wait_for_function(
            "([el, before]) => /^\\[\\d+\\]:$/.test(el.textContent.trim()) "
            "&& el.textContent !== before", arg=[prompt.element_handle(), before],
            timeout=CELL_WAIT_MS)
        self.wait_idle()
        return self.output(index)

    def output(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()

    def editor_text(self, index: int) -> str:
        """The text in the cell's CodeMirror 6 editor (its document, not the rendered lines)."""
        return self.cell(index).locator(".cm-content").evaluate(
            "el => el.cmView.view.state.doc.toString()")

    def replace_source(self, index: int, text: str) -> None:
        """Click into the cell's editor, select all and enter ``text`` as typed input.

        ``insert_text`` sends the text as one input event, as a paste would: CodeMirror's
        auto-indent and bracket closing apply to key presses and would re-indent typed code."""
        self.cell(index).locator(".cm-content").click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")  # back to command mode

    def save(self, path: Path, index: int, expect: str, timeout: float = 30) -> None:
        """Ctrl+S, then wait until cell ``index`` of ``path`` on disk has the source ``expect``."""
        self.page.keyboard.press("Control+s")
        deadline = time.monotonic() + timeout
        while _cell_source(path, index) != expect:
            assert time.monotonic() < deadline, f"{path} not saved within {timeout:g} s"
            time.sleep(0.25)


def _cell_source(path: Path, index: int) -> str | None:
    """Source of cell ``index`` in the notebook file ``path`` (None while it is being written)."""
    try:
        source = json.loads(path.read_text(encoding="utf-8"))["cells"][index]["source"]
    except (ValueError, KeyError, IndexError):
        return None
    return "".join(source) if isinstance(source, list) else source
