"""Where the hub finds the lessons and assignments: the checkout by default, ``content_dir`` otherwise."""

from __future__ import annotations

import pytest
import yaml

from grader.hub.layers import ConfigError, read_layer
from grader.hub.settings import layered_config, settings_from_config
from grader.resources import ASSIGNMENTS_SOURCE_DIR, COURSES_DIR, REPO_ROOT, checkout_root

COURSE = {"courses": {"ai101": {"formgrader_port": 9010}}}


def _settings(admin, environ=None):
    return settings_from_config(layered_config(secrets={}, admin=admin, environ=environ or {}),
                                source="platform.yaml")


def test_a_checkout_serves_its_own_content_as_before():
    settings = _settings(COURSE)
    assert checkout_root() == REPO_ROOT
    assert settings.content_dir == REPO_ROOT
    assert settings.lessons_dir == COURSES_DIR
    assert settings.course("ai101").source_dir == ASSIGNMENTS_SOURCE_DIR


def test_an_installed_package_has_no_checkout(tmp_path):
    package = tmp_path / "lib" / "python3.11" / "site-packages" / "grader"
    package.mkdir(parents=True)
    assert checkout_root(package) is None


def test_content_dir_in_the_file_is_relative_to_it_and_the_environment_wins(tmp_path):
    path = tmp_path / "site" / "platform.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump({**COURSE, "content_dir": "../content"}))
    settings = _settings(read_layer(path, required=True))
    assert settings.content_dir == tmp_path / "content"
    assert settings.course("ai101").source_dir == tmp_path / "content" / "assignments" / "source"
    assert settings.lessons_dir == tmp_path / "content" / "courses"
    moved = _settings(read_layer(path, required=True), {"AICOURSE_CONTENT_DIR": str(tmp_path / "elsewhere")})
    assert moved.content_dir == tmp_path / "elsewhere"


def test_courses_without_content_are_refused_naming_the_setting():
    # As from a wheel: no checkout to default to.
    with pytest.raises(ConfigError, match=r"^platform.yaml: content_dir: not set"):
        _settings({**COURSE, "content_dir": ""})


def test_a_hub_without_courses_needs_no_content():
    settings = _settings({"content_dir": ""})
    assert settings.content_dir is None and settings.lessons_dir is None


def test_a_home_gets_no_lessons_when_there_is_no_content(tmp_path):
    from grader.hub.spawn.homes import prepare_home

    prepare_home(tmp_path / "home", username="student", course_ids=[], exchange_root=tmp_path / "exchange",
                 courses_dir=None)
    assert (tmp_path / "home" / ".jupyter" / "nbgrader_config.py").is_file()
    assert not (tmp_path / "home" / "courses").exists()
