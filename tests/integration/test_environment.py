"""pyproject.toml and environment.yml declare the same dependencies with the same version ranges."""

from __future__ import annotations

import re
import tomllib

import yaml

from grader.resources import REPO_ROOT

# conda-forge names that differ from PyPI's, by design (see the comments in environment.yml).
CONDA_TO_PYPI = {"pytorch": "torch", "tensorflow": "tensorflow-cpu"}
# conda packages that are tools, not Python dependencies.
CONDA_ONLY = {"python", "pip", "nodejs", "configurable-http-proxy"}

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _parse(requirement: str) -> tuple[str, str]:
    name, spec = _REQUIREMENT.match(re.sub(r"\[[^\]]*\]", "", requirement)).groups()
    return _normalise(name), spec.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_parse(r) for r in requirements)


def environment_requirements() -> dict[str, str]:
    entries = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())["dependencies"]
    found = {}
    for entry in entries:
        if isinstance(entry, dict):  # the pip: section uses PyPI names already
            found.update(_parse(r) for r in entry["pip"])
            continue
        name, spec = _parse(entry.replace("=", "==", 1) if re.match(r"^[\w\-]+=[^=]", entry) else entry)
        if name in CONDA_ONLY:
            continue
        found[_normalise(CONDA_TO_PYPI.get(name, name))] = spec
    return found


def test_the_same_packages_are_declared():
    pyproject, environment = pyproject_requirements(), environment_requirements()
    assert sorted(set(pyproject) - set(environment)) == [], "in pyproject.toml but not in environment.yml"
    assert sorted(set(environment) - set(pyproject)) == [], "in environment.yml but not in pyproject.toml"


def test_the_same_version_ranges_are_declared():
    pyproject, environment = pyproject_requirements(), environment_requirements()
    mismatched = {name: (pyproject[name], environment[name]) for name in pyproject if pyproject[name] != environment.get(name)}
    assert mismatched == {}


def test_python_version_agrees():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    entries = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())["dependencies"]
    assert "python=3.11" in entries and project["requires-python"] == ">=3.11,<3.12"


def test_constraints_pin_every_declared_package():
    pins = {
        _normalise(line.split("==")[0])
        for line in (REPO_ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert sorted(set(pyproject_requirements()) - pins) == []
