"""``cs231n-course lab [FOLDER]``: JupyterLab on a student's notebooks, with the student library.

For students and self-paced learners, after ``make demo`` (or ``cs231n-course release``). Starts
``jupyter lab`` on FOLDER (default: the course's ``release/``) with

- one kernel, named ``python3`` so that every notebook opens with it, whose ``PYTHONPATH`` puts the
  student edition of the library first: the same edition ``cs231n-course check`` runs, so what
  passes in the lab passes in ``check`` and tracebacks point into the student's own code. It is
  checked before the server starts (the editable install of the reference library must not win);
- nbgrader's server and JupyterLab extensions switched off: formgrader, course list and Create
  Assignment are the instructor's; the Assignments list needs an nbgrader exchange this course does
  not use; Validate runs a notebook differently from the grader (no restore of the locked test
  cells, the server's kernel), so students use ``cs231n-course check`` instead;
- a private Jupyter config folder and kernelspec folder, made for this run and removed after it,
  so no nbgrader or user configuration changes the above (JupyterLab's user settings and
  workspaces stay where they are, so a student's theme and layout are kept).

Uses Jupyter's documented settings only: ``ServerApp.jpserver_extensions`` and
``KernelSpecManager.allowed_kernelspecs`` in ``jupyter_server_config.json``,
``disabledExtensions`` in ``labconfig/page_config.json``, a kernelspec on ``JUPYTER_PATH``, the
token in ``JUPYTER_TOKEN``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cs231n_grading.config import CourseConfig
from cs231n_grading.locale import tr

KERNEL_NAME = "python3"  # the name the notebooks' metadata asks for: they open with this kernel
KERNEL_DISPLAY_NAME = "Python 3 (student edition of the course library)"
NBGRADER_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader",
                              "nbgrader.server_extensions.course_list",
                              "nbgrader.server_extensions.assignment_list",
                              "nbgrader.server_extensions.validate_assignment")
NBGRADER_LAB_EXTENSION = "@jupyter/nbgrader"  # all its plugins: formgrader, create-assignment, ...
DEFAULT_PORT = 8888
START_TIMEOUT = 120.0  # seconds for the server to answer
# Variables of the student's environment that would change the kernel's imports.
_DROP = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "JPY_PARENT_PID", "JUPYTER_CONFIG_DIR")
_FIRST = "run `make demo` or `cs231n-course release` first"


def add_parser(subparsers):
    """Add the ``lab`` sub-command (folder, --library, --port, --no-browser) to ``subparsers``."""
    p = subparsers.add_parser(
        "lab", help=tr("JupyterLab on your notebooks with the student edition of the library"),
        description=tr("Start JupyterLab on your notebooks with one kernel: the student edition "
                       "of the library, the one `cs231n-course check` runs. nbgrader's "
                       "instructor tools are off; check your work with `cs231n-course check "
                       "NOTEBOOK`. A release may hold both editions of each notebook, "
                       "NN_name.ipynb (English) and NN_name.zh.ipynb (Chinese): open either."))
    p.add_argument("folder", nargs="?", type=Path,
                   help=tr("folder of notebooks (default: <course-dir>/release, made by `make "
                           "demo` or `cs231n-course release`)"))
    p.add_argument("--library", type=Path, metavar="DIR",
                   help=tr("the student edition of the library, as given by your instructor "
                           "(default: <course-dir>/student_library)"))
    p.add_argument("--port", type=int,
                   help=tr("port to serve on (default: {port}, or a free one if taken)",
                           port=DEFAULT_PORT))
    p.add_argument("--no-browser", dest="browser", action="store_false",
                   help=tr("do not open a browser; open the printed URL yourself"))
    return p


def notebook_folder(cfg: CourseConfig, folder: Path | None) -> Path:
    """The folder to serve: ``folder`` or the course's release; ValueError when it is unusable."""
    path = Path(folder) if folder is not None else cfg.course_dir / "release"
    if path.suffix == ".ipynb" and path.is_file():
        path = path.parent  # `cs231n-course lab 01_convolution.ipynb`: serve its folder
    if not path.is_dir():
        raise ValueError(f"no notebook folder {path}: {_FIRST}, or name the folder holding "
                         "your notebooks (cs231n-course lab FOLDER)")
    if not notebook_dirs(path):
        raise ValueError(f"{path} holds no notebooks (*.ipynb, in it or one folder down): "
                         f"{_FIRST}, or name the folder holding your notebooks")
    return path.resolve()


def student_library(cfg: CourseConfig, library: Path | None) -> Path:
    """The student library folder, holding every configured package; ValueError otherwise."""
    path = Path(library) if library is not None else cfg.student_library_dir
    if not cfg.library:
        raise ValueError(f"the course config {cfg.config_file} lists no library packages "
                         "(CourseGrading.library)")
    missing = [p.name for p in cfg.library if not (path / p.name / "__init__.py").is_file()]
    if missing:
        raise ValueError(f"no student edition of {', '.join(missing)} in {path}: {_FIRST} "
                         "(it builds <course-dir>/student_library), or pass the folder your "
                         "instructor gave you with --library DIR")
    return path.resolve()


def kernel_env(cfg: CourseConfig, library: Path) -> dict[str, str]:
    """Kernelspec environment: the student library first on the path, the course's data folder.

    The grading environment (``cfg.env``, e.g. the small training budget) is not applied: in the
    lab the notebooks use the full budget; ``cs231n-course check`` runs them as the grader does.
    """
    env = {"PYTHONPATH": str(library), "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    data = os.environ.get("CS231N_DATA_DIR") or (str(cfg.data_dir) if cfg.data_dir else "")
    if data and Path(data).is_dir():
        env["CS231N_DATA_DIR"] = data
    return env


def imported_from(packages: list[str], env: dict[str, str], folders: list[Path]
                  ) -> dict[tuple[Path, str], Path]:
    """Where a kernel started in each of ``folders`` with ``env`` finds each package (found, not
    imported: a kernel's folder comes first on its path, then ``PYTHONPATH``, then the venv)."""
    code = ("import importlib.util, json, sys\n"
            "names, out = json.loads(sys.argv[1]), []\n"
            "for folder in json.loads(sys.argv[2]):\n"
            "    sys.path[0] = folder\n"
            "    sys.path_importer_cache.clear()\n"
            "    for name in names:\n"
            "        spec = importlib.util.find_spec(name)\n"
            "        out.append(spec.origin if spec and spec.origin else '')\n"
            "print(json.dumps(out))\n")
    run = subprocess.run([sys.executable, "-c", code, json.dumps(packages),
                          json.dumps([str(f) for f in folders])], env=env, check=True,
                         capture_output=True, text=True, timeout=60)
    keys = [(f, name) for f in folders for name in packages]
    return {k: Path(origin) for k, origin in zip(keys, json.loads(run.stdout), strict=True)}


def notebook_dirs(folder: Path) -> list[Path]:
    """Folders holding a notebook (where kernels start): ``folder`` and one level down, the
    layout of a release (``NN_name/NN_name.ipynb``); a home folder is not searched through."""
    found = {p.parent for pattern in ("*.ipynb", "*/*.ipynb") for p in folder.glob(pattern)}
    return sorted(found)


def check_kernel_imports(cfg: CourseConfig, library: Path, env: dict[str, str],
                         folder: Path) -> None:
    """RuntimeError unless every library package resolves to the student edition in every
    folder of ``folder`` where a notebook's kernel would start."""
    names = [p.name for p in cfg.library]
    folders = sorted(set(notebook_dirs(folder)) | {folder})
    for (where, name), origin in imported_from(names, env, folders).items():
        if not origin.resolve().is_relative_to(library):
            raise RuntimeError(f"the lab's kernel in {where} would import {name} from {origin}, "
                               f"not from the student edition in {library}; remove what "
                               f"shadows it (e.g. a {name} folder beside your notebooks)")


def write_kernelspec(data_dir: Path, env: dict[str, str]) -> Path:
    """Kernelspec ``python3`` in ``data_dir/kernels``: this interpreter's ipykernel with ``env``."""
    folder = data_dir / "kernels" / KERNEL_NAME
    folder.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_DISPLAY_NAME, "language": "python", "env": env,
            "metadata": {"debugger": True}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return folder


def write_jupyter_config(config_dir: Path) -> None:
    """Server config (nbgrader off, only our kernel) and page config (nbgrader's lab UI off)."""
    server = {"ServerApp": {"jpserver_extensions": dict.fromkeys(NBGRADER_SERVER_EXTENSIONS,
                                                                 False)},
              "KernelSpecManager": {"allowed_kernelspecs": [KERNEL_NAME]},
              "MappingKernelManager": {"default_kernel_name": KERNEL_NAME}}
    (config_dir / "labconfig").mkdir(parents=True)
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(server, indent=1),
                                                           encoding="utf-8")
    page = {"disabledExtensions": {NBGRADER_LAB_EXTENSION: True}}
    (config_dir / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=1),
                                                               encoding="utf-8")


def server_env(private: Path, token: str) -> dict[str, str]:
    """Environment of ``jupyter lab``: private config and kernelspec, the student's lab settings."""
    from jupyterlab.commands import get_user_settings_dir, get_workspaces_dir

    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    env.update({
        "JUPYTERLAB_SETTINGS_DIR": get_user_settings_dir(),  # before JUPYTER_CONFIG_DIR changes
        "JUPYTERLAB_WORKSPACES_DIR": get_workspaces_dir(),
        "JUPYTER_CONFIG_DIR": str(private / "config"),
        "JUPYTER_PATH": os.pathsep.join([str(private / "data")]
                                        + [p for p in [os.environ.get("JUPYTER_PATH")] if p]),
        "JUPYTER_TOKEN": token,  # not on the command line, where other users could read it
    })
    return env


def free_port(preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` if it is free on the loopback interface, else a port the system picks."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def lab_command(folder: Path, port: int, browser: bool) -> list[str]:
    """The ``jupyter lab`` command line serving ``folder`` on 127.0.0.1:``port``."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.open_browser={browser}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--ServerApp.allow_root=True")  # e.g. a container where make demo ran as root
    return cmd


def wait_until_up(proc: subprocess.Popen, base_url: str, token: str,
                  timeout: float = START_TIMEOUT) -> bool:
    """Whether the server answers ``/api/status`` within ``timeout`` s (False if it exited)."""
    request = urllib.request.Request(f"{base_url}/api/status",
                                     headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


def prepare(cfg: CourseConfig, folder: Path, library: Path, private: Path) -> dict[str, str]:
    """Write the private kernelspec and config; returns the kernel's environment."""
    env = kernel_env(cfg, library)
    probe = {k: v for k, v in os.environ.items() if k not in _DROP} | env
    check_kernel_imports(cfg, library, probe, folder)
    write_kernelspec(private / "data", env)
    write_jupyter_config(private / "config")
    return env


def run(cfg: CourseConfig, args, log=print) -> int:
    """Start JupyterLab as ``args`` says and wait for it to end; returns its exit code."""
    folder = notebook_folder(cfg, args.folder)
    library = student_library(cfg, args.library)
    port = args.port if args.port is not None else free_port()
    token = secrets.token_hex(24)
    with tempfile.TemporaryDirectory(prefix="cs231n-lab-") as tmp:
        private = Path(tmp)
        prepare(cfg, folder, library, private)
        proc = subprocess.Popen(lab_command(folder, port, args.browser), cwd=folder,
                                env=server_env(private, token))
        try:
            base = f"http://127.0.0.1:{port}"
            if not wait_until_up(proc, base, token):
                log(f"JupyterLab did not start on port {port} (see its messages above)"
                    + ("; try another --port" if args.port is not None else ""))
                return 1
            package = cfg.library[0].name
            log(f"JupyterLab: {base}/lab?token={token}  folder: {folder}  kernel: student "
                f"edition of {package} ({library / package})  (Ctrl-C twice to stop)")
            return _wait(proc)
        finally:
            _stop(proc)


def _wait(proc: subprocess.Popen) -> int:
    """Wait for the server. Ctrl-C reaches it too (it asks to confirm), so keep waiting; on
    SIGTERM leave (the caller then stops the server) instead of dying without cleaning up."""
    def leave(signum, frame):
        raise SystemExit(128 + signum)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, leave) if main else None
    try:
        while True:
            try:
                return proc.wait()
            except KeyboardInterrupt:
                continue
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server if it still runs (it shuts its kernels down on SIGTERM)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
