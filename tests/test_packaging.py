"""Packaging: extras that match the imports, environment.yml in agreement, and a wheel that works
without the checkout (built, installed into a fresh venv, run from another folder)."""

import ast
import email
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from cs231n_grading import config as grading_config
from cs231n_lib.data import files

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]
# What `make` installs, and what environment.yml mirrors.
MAKE_EXTRAS = ("course", "grading", "cluster", "test")
# Import name -> distribution name where they differ.
DIST_OF = {"IPython": "ipython", "zmq": "pyzmq", "yaml": "pyyaml", "skimage": "scikit-image",
           "sklearn": "scikit-learn"}
# A learner's `pip install .` must pull none of these, directly or transitively.
JUPYTER = re.compile(r"^(jupyter.*|nbgrader|nbclient|nbconvert|nbformat|notebook|ipykernel|"
                     r"ipython|ipywidgets|traitlets|pyzmq|tornado)$")


def _norm(req: str) -> tuple[str, str]:
    """(normalised name, specifier without spaces) of a pip or conda requirement."""
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _merged(groups) -> dict[str, str]:
    """name -> spec over several requirement lists; a name listed twice must have one spec."""
    out: dict[str, str] = {}
    for reqs in groups:
        for name, spec in map(_norm, reqs):
            assert out.setdefault(name, spec) == spec, f"{name}: {out[name]} vs {spec}"
    return out


def _declared(*extras: str) -> set[str]:
    """Distribution names declared by the base dependencies plus ``extras``."""
    return set(_merged([PROJECT["dependencies"], *(EXTRAS[e] for e in extras)]))


# import name -> folder (relative to the checkout) that holds it
PACKAGE_ROOTS = {"cs231n_lib": "", "cs231n_grading": "grading"}
PROJECT_PACKAGES = set(PACKAGE_ROOTS)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Third-party distributions a Python file imports (absolute imports outside the project)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if top_level_only and getattr(node, "col_offset", 0) != 0:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in PROJECT_PACKAGES:
                found.add(_norm(DIST_OF.get(top, top))[0])
    return found


def _imports_under(folder: str, **kw) -> set[str]:
    """Third-party imports of every Python file under ``folder`` (its own modules left out)."""
    paths = list((ROOT / folder).rglob("*.py"))
    local = {_norm(name)[0] for p in paths for name in (p.stem, p.parent.name)}
    return set().union(*(_imports(p, **kw) for p in paths)) - local


def _grading_closure(module: str) -> set[str]:
    """Third-party imports of a grading module and of every project module it imports."""
    seen, todo, found = set(), [module], set()
    while todo:
        name = todo.pop()
        path = ROOT / PACKAGE_ROOTS.get(name.split(".")[0], "") / (name.replace(".", "/") + ".py")
        if name in seen or not path.is_file():
            continue
        seen.add(name)
        found |= _imports(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and n.module and n.module.split(".")[0] in PROJECT_PACKAGES]
    return found


def _requirement_closure(reqs) -> set[str]:
    """Distributions that ``reqs`` pull, resolved transitively against this environment's
    installed metadata (markers evaluated without extras)."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in reqs]
    while todo:
        req = todo.pop()
        name = _norm(req.name)[0]
        if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        todo += [Requirement(r) for r in metadata.requires(name) or []]
    return seen


# --- declared dependencies ---------------------------------------------------------------------

def test_norm_parses_specs():
    assert _norm("numpy>=2.0") == ("numpy", ">=2.0")
    assert _norm("nbgrader == 0.9.6") == ("nbgrader", "==0.9.6")
    assert _norm("jupyter_client>=8.6,<9") == ("jupyter-client", ">=8.6,<9")


def test_environment_mirrors_what_make_installs():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    conda = _merged([[d for d in env["dependencies"] if isinstance(d, str)]])
    assert conda.pop("python") == PROJECT["requires-python"]
    conda.pop("pip")
    wanted = _merged([PROJECT["dependencies"], *(EXTRAS[e] for e in MAKE_EXTRAS)])
    assert conda == wanted, (f"environment.yml lacks {sorted(set(wanted) - set(conda))}, has "
                             f"extra {sorted(set(conda) - set(wanted))}, or a spec differs")
    makefile = (ROOT / "Makefile").read_text()
    assert f"'.[{','.join(MAKE_EXTRAS)}]'" in makefile


def test_test_tools_are_pinned_exactly():
    test = dict(map(_norm, EXTRAS["test"]))
    for tool in ("pytest", "pytest-timeout", "ruff", "setuptools"):
        assert test[tool].startswith("==") and "," not in test[tool], (tool, test[tool])
        assert metadata.version(tool) == test[tool][2:], f"installed {tool} is not the pin"


def test_library_needs_only_the_base_dependencies():
    assert _imports_under("cs231n_lib", top_level_only=True) <= _declared()
    # Lazy imports (IPython's display inside a notebook) come with the course's kernel.
    assert _imports_under("cs231n_lib") <= _declared("course")


def test_grader_imports_are_declared():
    missing = _imports_under("grading") - _declared("grading", "course", "cluster")
    assert not missing, f"grading imports undeclared {sorted(missing)}"
    grader_only = (_imports_under("grading") - _grading_closure("cs231n_grading.lab")
                   - {"jupyterlab"})
    # grading on a Dask cluster is the cluster extra's business: the modules importing dask or
    # distributed. What workers receive (bundles) and their checks (worker_checks) need neither.
    package = ROOT / "grading" / "cs231n_grading"
    modules = {"cs231n_grading." + ".".join(p.relative_to(package).with_suffix("").parts): p
               for p in package.rglob("*.py")}
    cluster = {m for m, p in modules.items() if _imports(p) & {"dask", "distributed"}}
    assert "cs231n_grading.distributed" in cluster, cluster
    assert not cluster & {"cs231n_grading.bundles", "cs231n_grading.worker_checks"}, cluster
    cluster_only = set().union(*(_imports(modules[m]) for m in cluster)) - _declared("grading")
    assert {"distributed", "dask"} <= cluster_only <= _declared("cluster")
    assert grader_only - cluster_only <= _declared("grading")
    # and no other module imports one of them at its top level (autograde does so lazily)
    for name, path in modules.items():
        if name not in cluster:
            assert not _top_level_modules(path) & cluster, f"{name} needs the cluster extra"


def _top_level_modules(path: Path) -> set[str]:
    """Modules a Python file imports at its top level (``from a import b``: ``a`` and ``a.b``)."""
    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return found


@pytest.mark.parametrize("module", [
    "cs231n_grading.lab",
    "cs231n_grading.selfcheck",
])
def test_student_commands_need_only_the_course_extra(module):
    missing = _grading_closure(module) - _declared("course")
    assert not missing, f"`cs231n-course {module.split('.')[1]}` imports {sorted(missing)}"


def test_tests_and_benchmarks_imports_are_declared():
    missing = _imports_under("tests") - _declared(*MAKE_EXTRAS)
    assert not missing, f"tests import undeclared {sorted(missing)}"
    assert _imports(ROOT / "bench" / "conv.py") <= _declared(*MAKE_EXTRAS, "bench")


def test_base_install_pulls_no_jupyter_or_nbgrader():
    pulled = _requirement_closure(PROJECT["dependencies"])
    assert {"numpy", "matplotlib"} <= pulled
    assert not {p for p in pulled if JUPYTER.match(p)}, sorted(pulled)
    # and the check can fail: the grading extra pulls them
    assert {"nbgrader", "jupyterlab"} <= _requirement_closure(EXTRAS["grading"])


# --- where an installed package finds its course and data --------------------------------------

def _layout(root: Path, *folders: str) -> Path:
    """Make ``folders`` under ``root``; the package folder (``grading/cs231n_grading``)."""
    for folder in folders:
        (root / folder).mkdir(parents=True)
    return root / "grading" / "cs231n_grading"


def test_default_config_in_a_checkout(tmp_path):
    package = _layout(tmp_path, "grading/cs231n_grading/packaged_course/assignments",
                      "assignments")
    assert grading_config.default_config(package) == tmp_path / "grading" / "nbgrader_config.py"


def test_default_config_in_an_installed_wheel(tmp_path):
    package = _layout(tmp_path, "grading/cs231n_grading/packaged_course/assignments")
    assert grading_config.default_config(package) == (
        package / "packaged_course" / "nbgrader_config.py")


def test_default_config_without_a_course_says_what_to_pass(tmp_path):
    with pytest.raises(ValueError, match="no course found.*--course PATH"):
        grading_config.default_config(_layout(tmp_path, "grading/cs231n_grading"))


def test_default_data_dir_prefers_the_packaged_data(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "CHECKOUT_DIR", tmp_path / "checkout")
    monkeypatch.setattr(files, "PACKAGED_DIR", tmp_path / "packaged")
    assert files.default_data_dir() == tmp_path / "checkout"
    (tmp_path / "packaged").mkdir()
    assert files.default_data_dir() == tmp_path / "packaged"


# --- the wheel ---------------------------------------------------------------------------------

SKIP = shutil.ignore_patterns(".git", ".venv", "course", "build", "*.egg-info", "__pycache__",
                              ".pytest_cache", ".ruff_cache", "cifar-10-*", ".ipynb_checkpoints")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built with `pip wheel --no-deps` from the sdist of a clean copy of the checkout
    (as pip builds one from a source release: what MANIFEST.in leaves out is missing), both with
    the test extra's pinned setuptools (no build isolation: nothing is downloaded)."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, tmp / "src", ignore=SKIP)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp / "sdist")],
                   cwd=tmp / "src", check=True, timeout=600, capture_output=True)
    (sdist,) = (tmp / "sdist").glob("cs231n_course-*.tar.gz")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp / "dist"), str(sdist)],
                   check=True, timeout=600)
    (built,) = (tmp / "dist").glob("cs231n_course-*.whl")
    return built


def _wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as z:
        (name,) = [n for n in z.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(z.read(name))


@pytest.mark.slow
def test_wheel_declares_the_base_and_the_extras(wheel):
    meta = _wheel_metadata(wheel)
    base = [r for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    assert dict(map(_norm, base)) == dict(map(_norm, PROJECT["dependencies"]))
    assert not {p for p in _requirement_closure(base) if JUPYTER.match(p)}
    assert set(meta.get_all("Provides-Extra")) == set(EXTRAS)


@pytest.mark.slow
def test_wheel_ships_the_course_and_the_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for nb in (ROOT / "assignments").glob("*/*.ipynb"):
        assert f"cs231n_grading/packaged_course/assignments/{nb.parent.name}/{nb.name}" in names
    for data in (ROOT / "datasets").glob("*.npz"):
        assert f"cs231n_lib/data/datasets/{data.name}" in names
    assert "cs231n_grading/packaged_course/nbgrader_config.py" in names
    # the course config of the checkout (grading/nbgrader_config.py), which the packaged one loads
    assert "cs231n_grading/packaged_course/course/nbgrader_config.py" in names
    # the Chinese edition: the notebooks' catalogues and the messages'
    for po in (ROOT / "course_src" / "locale").glob("*/*.po"):
        assert f"cs231n_grading/packaged_course/locale/{po.parent.name}/{po.name}" in names
    assert {"cs231n_lib/locale/zh.po", "cs231n_grading/locale/zh.po"} <= names
    assert len([n for n in names if n.startswith("cs231n_grading/packaged_course/locale/zh/")
                and n.endswith(".po")]) == len(list((ROOT / "assignments").glob("*/*.ipynb")))
    assert not [n for n in names if n.startswith(("tests/", "course_src/", "datasets/",
                                                  "grading/"))]


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel (no -e); its dependencies come from this environment's
    site-packages through a .pth file, so nothing is downloaded."""
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True, timeout=600)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path("
                           "'purelib'))"], check=True, capture_output=True, text=True)
    Path(site.stdout.strip(), "outer_env.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def _run_outside(venv: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run a command of the installed venv from ``cwd`` (not the checkout), with none of this
    environment's course variables; fails with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CS231N_", "PYTHON"))}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", ""),
                                   str(Path(sys.executable).parent)])  # alembic for nbgrader
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
def test_installed_wheel_loads_the_embedded_data(installed, tmp_path):
    code = ("import cs231n_lib; from cs231n_lib.data import load_dataset; "
            "d = load_dataset('fashion_small'); print(cs231n_lib.__file__); "
            "print(*d['X_train'].shape, sep='x')")
    out = _run_outside(installed, tmp_path, str(installed / "bin" / "python"), "-c", code)
    where, shape = out.stdout.split()
    assert Path(where).is_relative_to(installed), f"imported {where}, not the wheel"
    assert shape == "5000x1x28x28"


@pytest.mark.slow
def test_installed_wheel_releases_the_course(installed, tmp_path):
    course = tmp_path / "course"
    _run_outside(installed, tmp_path, str(installed / "bin" / "cs231n-course"), "--course-dir",
                 str(course), "release", "01_convolution")
    assert (course / "release" / "01_convolution" / "01_convolution.ipynb").is_file()
    student_lib = course / "student_library" / "cs231n_lib"
    assert (student_lib / "layers.py").is_file()
    assert "NotImplementedError" in (student_lib / "layers.py").read_text()
    # plain nbgrader (formgrader, export) run in the course folder reads the installed course
    code = ("from traitlets.config.loader import PyFileConfigLoader as L; "
            "c = L('nbgrader_config.py', '.').load_config(); "
            "print(c.CourseDirectory.course_id, c.CourseDirectory.root)")
    out = _run_outside(installed, course, str(installed / "bin" / "python"), "-c", code)
    assert out.stdout.split() == ["cs231n-cnn", str(course)]
