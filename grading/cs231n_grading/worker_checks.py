"""May this machine grade for the instructor? The start-up check of a remote grading worker.

A worker must run the instructor's ``cs231n-course`` version and the same grading code (a
sha256 over :func:`grader_files`, the modules that decide a grade there) and, unless the
instructor ran with ``--no-sandbox``, have a working bubblewrap sandbox. :func:`worker_problem`
gives the reason a worker must refuse tasks, or None. No Dask here: the plugin that runs the
check on each Dask worker is in ``cs231n_grading.distributed``.
"""

from __future__ import annotations

import ast
import hashlib
from importlib import metadata
from pathlib import Path

from cs231n_grading.kernels import check_sandbox
from cs231n_grading.sandbox_argv import DEFAULT_MEMORY_MB

PACKAGE = __name__.split(".")[0]
PACKAGE_DIR = Path(__file__).resolve().parent
# What a worker runs: the Dask backend (its bundles, these checks) and the grading itself.
GRADER_ROOTS = (f"{PACKAGE}.distributed", f"{PACKAGE}.worker")


def _project_imports(path: Path) -> set[str]:
    """Modules of this package that the Python file ``path`` imports (anywhere in it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in found if n.startswith(PACKAGE + ".")}


def grader_files() -> list[Path]:
    """The package's files that decide a grade on a worker: the modules of GRADER_ROOTS and
    those they import, transitively, and the sandbox's files (its launcher is run, not
    imported)."""
    files, todo = set(PACKAGE_DIR.glob("sandbox*.py")), list(GRADER_ROOTS)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        path = PACKAGE_DIR / (name.removeprefix(PACKAGE + ".").replace(".", "/") + ".py")
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        files.add(path)
        todo += _project_imports(path)
    return sorted(files)


def grader_fingerprint() -> tuple[str, str]:
    """(installed cs231n-course version, sha256 of the grader's files, grader_files)."""
    try:
        version = metadata.version("cs231n-course")
    except metadata.PackageNotFoundError:
        version = "not installed"
    h = hashlib.sha256()
    for p in grader_files():
        h.update(p.relative_to(PACKAGE_DIR).as_posix().encode() + b"\0" + p.read_bytes())
    return version, h.hexdigest()


def worker_problem(*, sandbox: bool, version: str, code: str,
                   memory_mb: int = DEFAULT_MEMORY_MB) -> str | None:
    """Why this machine must not grade for an instructor running ``version`` with grader code
    digest ``code`` (sandboxed kernels of ``memory_mb`` if ``sandbox``), or None."""
    mine, my_code = grader_fingerprint()
    if mine != version:
        return (f"this worker has cs231n-course {mine}, the instructor {version}: install the "
                "instructor's version on every worker")
    if my_code != code:
        return (f"this worker's grading code differs from the instructor's (digest "
                f"{my_code[:12]} vs {code[:12]}): install the same cs231n-course build")
    try:
        check_sandbox(sandbox, memory_mb)
    except RuntimeError as err:
        return str(err)
    return None
