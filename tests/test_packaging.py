"""pyproject.toml and environment.yml declare the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(req: str) -> tuple[str, str]:
    m = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"]) + list(
        data["project"]["optional-dependencies"]["test"])
    return dict(_norm(r) for r in reqs), data["project"]["requires-python"]


def _conda():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    return dict(_norm(d) for d in env["dependencies"] if isinstance(d, str))


def test_environment_mirrors_pyproject():
    py, requires_python = _pyproject()
    conda = _conda()
    assert conda.pop("python") == requires_python
    conda.pop("pip")
    assert conda == py, f"pyproject {py} != environment.yml {conda}"


def test_norm_parses_specs():
    assert _norm("numpy>=2.0") == ("numpy", ">=2.0")
    assert _norm("nbgrader == 0.9.6") == ("nbgrader", "==0.9.6")
