"""grader.hub.config sets the traits the platform owns, on a bare traitlets Config (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from traitlets.config import Config

from grader.hub.config import apply_settings
from grader.hub.settings import HubSettings, settings_from_env


def _applied(tmp_path) -> tuple[Config, HubSettings]:
    settings = HubSettings(data_dir=tmp_path / "data", port=9000, course_id="demo1")
    config = Config()
    apply_settings(config, settings)
    return config, settings


def test_state_stays_in_the_data_folder_on_loopback(tmp_path):
    c, settings = _applied(tmp_path)
    assert c.JupyterHub.bind_url == "http://127.0.0.1:9000"
    assert c.JupyterHub.db_url == f"sqlite:///{tmp_path / 'data' / 'jupyterhub.sqlite'}"
    assert Path(c.JupyterHub.cookie_secret_file).parent == settings.data_dir
    assert Path(c.PlatformAuthenticator.accounts_db).parent == settings.data_dir


def test_the_course_service_is_open_to_instructors_only(tmp_path):
    c, settings = _applied(tmp_path)
    (service,) = c.JupyterHub.services
    assert service["name"] == "demo1" and service["cwd"] == str(settings.course.course_dir)
    (role,) = c.JupyterHub.load_roles
    assert role["scopes"] == ["access:services!service=demo1"]
    assert role["groups"] == ["formgrade-demo1"]
    assert c.JupyterHub.load_groups["formgrade-demo1"]["users"] == ["instructor"]
    assert c.JupyterHub.load_groups["nbgrader-demo1"]["users"] == ["student"]
    assert (settings.course.course_dir / "nbgrader_config.py").is_file()


def test_applying_twice_gives_the_same_config(tmp_path):
    first, settings = _applied(tmp_path)
    second = Config()
    apply_settings(second, settings)
    apply_settings(second, settings)
    for section in ("JupyterHub", "Spawner", "PlatformAuthenticator"):
        assert {k: v for k, v in first[section].items() if not callable(v)} == {
            k: v for k, v in second[section].items() if not callable(v)
        }


def test_environment_overrides_and_a_bad_value_names_the_variable(tmp_path):
    settings = settings_from_env({"AICOURSE_PORT": "8123", "AICOURSE_STUDENTS": "ann, ben"})
    assert settings.port == 8123 and settings.students == ("ann", "ben")
    with pytest.raises(ValueError, match="AICOURSE_PORT"):
        settings_from_env({"AICOURSE_PORT": "eighty"})
