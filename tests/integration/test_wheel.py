"""The built wheel works without the repository: installed into a fresh venv, it starts a hub.

The wheel is built from a copy of only what it is built from (pyproject.toml, README.md,
grader/), so nothing can be read from the checkout by accident. The fresh venv gets the wheel
alone (``pip install --no-deps``, no editable install); the dependencies already installed in this
checkout's venv are made visible by a ``.pth`` file listing its site-packages. A directory listed
in a ``.pth`` is only appended to ``sys.path``: the ``.pth`` files *inside* it (among them the
editable finder of this checkout) are not processed, so ``grader`` can only come from the wheel,
and the test checks that it does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest
import requests
import yaml

from grader.resources import REPO_ROOT
from tests.support.hubfixture import free_port, start_hub, stop_hub

pytestmark = pytest.mark.slow


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    shutil.copytree(REPO_ROOT / "grader", source / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    dist = tmp_path_factory.mktemp("dist")
    # Offline: the build backend (setuptools, wheel) is this venv's, not downloaded into an isolated one.
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist),
                  str(source)])
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = dist.glob("ai_course_platform-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel; this checkout's dependencies visible through a .pth file."""
    root = tmp_path_factory.mktemp("venv")
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                      str(wheel)])
    assert installed.returncode == 0, installed.stderr[-3000:]
    site_packages = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
                              ).stdout.strip())
    (site_packages / "aicourse-test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root


def _environ(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("AICOURSE_")}
    return {**env, **extra}


def _python(venv: Path, code: str, *, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return _run([str(venv / "bin" / "python"), "-c", textwrap.dedent(code)], cwd=cwd, env=_environ(**env))


def test_grader_and_its_package_data_come_from_the_wheel(venv, tmp_path):
    shown = _python(venv, """
        import grader, grader.resources as resources
        print(grader.__file__)
        print(resources.checkout_root())
        for path in (resources.SCHEMA_PATH, resources.TEMPLATES_DIR / "login.html",
                     resources.JUPYTER_CONFIG_DIRS / "student" / "labconfig" / "page_config.json"):
            print(path.is_file(), path)
        """, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    package, checkout, *data = shown.stdout.splitlines()
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(REPO_ROOT)
    assert checkout == "None"
    for line in data:
        found, path = line.split(" ", 1)
        assert found == "True" and Path(path).is_relative_to(venv), line


def test_the_schema_refuses_a_bad_key_naming_the_file(venv, tmp_path):
    bad = tmp_path / "platform.yaml"
    bad.write_text("port: 8000\nno_such_setting: 1\n")
    loaded = _python(venv, "from grader.hub.settings import load_settings; load_settings()", cwd=tmp_path,
                     AICOURSE_CONFIG=str(bad), AICOURSE_DATA_DIR=str(tmp_path / "data"))
    assert loaded.returncode != 0
    assert f"{bad}: no_such_setting: unknown setting" in loaded.stderr


def test_courses_without_content_are_refused_with_what_to_set(venv, tmp_path):
    # No repository to find the lessons and assignments in: the admin must say where they are.
    (tmp_path / "platform.yaml").write_text(yaml.safe_dump({"courses": {"ai101": {"formgrader_port": 9010}}}))
    loaded = _python(venv, "from grader.hub.settings import load_settings; load_settings()", cwd=tmp_path,
                     AICOURSE_DATA_DIR=str(tmp_path / "data"))
    assert loaded.returncode != 0
    assert f"{tmp_path / 'platform.yaml'}: content_dir: not set" in loaded.stderr


def test_a_hub_starts_from_the_wheel(venv, tmp_path):
    # What an admin with the wheel keeps: a two-line jupyterhub_config.py, platform.yaml beside it
    # (found in the folder the hub starts in), and the course content wherever content_dir says.
    site = tmp_path / "site"
    content = tmp_path / "content"
    (content / "courses" / "01_intro").mkdir(parents=True)
    (content / "courses" / "01_intro" / "README.md").write_text("a lesson\n")
    (content / "assignments" / "source" / "ps1").mkdir(parents=True)
    site.mkdir()
    (site / "jupyterhub_config.py").write_text(
        "from grader.hub.config import configure_hub\n\nconfigure_hub(get_config())  # noqa: F821\n")
    (site / "platform.yaml").write_text(yaml.safe_dump({
        "content_dir": "../content",
        # approval: the login page links to the sign-up page, which only our template adds.
        "accounts": {"signup": "approval"},
        "idle_culler": {"enabled": False},
        "courses": {"ai101": {"formgrader_port": free_port(), "instructors": ["instructor"],
                              "students": ["student"]}},
    }))
    data_dir = tmp_path / "data"
    hub = start_hub(data_dir, python=venv / "bin" / "python", config_file=site / "jupyterhub_config.py", cwd=site,
                    extra_env={"PYTHONPATH": "", "AICOURSE_CONFIG": ""})
    try:
        assert requests.get(f"{hub.url}/hub/api", timeout=10).json()["version"]
        login_page = requests.get(f"{hub.url}/hub/login", timeout=10)
        assert login_page.status_code == 200
        assert 'id="signup-link"' in login_page.text
        # The course directory links to the assignments of the configured content, not a repository.
        assert (data_dir / "courses" / "ai101" / "source").resolve() == (content / "assignments" / "source").resolve()
        assert set(hub.passwords) == {"instructor", "student"}
    finally:
        stop_hub(hub)
