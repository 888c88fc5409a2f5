"""`grader course add`: a new course lands in the platform YAML, comments kept, checked, no hand edit."""

from __future__ import annotations

import shutil

import pytest
import yaml

from grader.cli import main
from grader.hub.course_add import add_course
from grader.hub.layers import ConfigError
from grader.hub.settings import DEFAULT_CONFIG_PATH, load_settings


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "platform.yaml"
    shutil.copy(DEFAULT_CONFIG_PATH, path)
    return path


def test_the_cli_adds_a_course_the_hub_then_serves(config_file, tmp_path, capsys):
    before = config_file.read_text()
    code = main(["course", "add", "ml201", "--instructor", "ivy", "--grader", "gus", "--student", "stu",
                 "--student", "sue", "--title", "Machine learning: 201", "--config", str(config_file)])
    # 8011 is the HTTP exchange's (the default exchange): the next free port.
    assert code == 0 and "port 8012" in capsys.readouterr().out
    after = config_file.read_text()
    # Everything the admin wrote, comments included, is still there, in the same order.
    assert after.startswith(before.rstrip("\n"))
    settings = load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
    ml201 = {course.course_id: course for course in settings.courses}["ml201"]
    assert (ml201.formgrader_port, ml201.instructors, ml201.graders, ml201.students, ml201.title) == (
        8012, ("ivy",), ("gus",), ("stu", "sue"), "Machine learning: 201")
    assert [course.course_id for course in settings.courses] == ["ai101", "ml201"]
    assert {"ivy", "gus", "stu", "sue"} <= set(settings.users())


def test_ports_are_not_reused_and_can_be_chosen(config_file):
    assert add_course("c2", instructors=["a1"], config_file=config_file)["formgrader_port"] == 8012
    assert add_course("c3", instructors=["a1"], formgrader_port=9500, config_file=config_file)["formgrader_port"] == 9500
    assert add_course("c4", instructors=["a1"], config_file=config_file)["formgrader_port"] == 9501


@pytest.mark.parametrize("course_id, kwargs, message", [
    ("ai101", {"instructors": ["x"]}, "courses.ai101: the course exists already"),
    ("Bad-Id", {"instructors": ["x"]}, "'Bad-Id' does not match"),
    ("c2", {"instructors": []}, "at least one instructor"),
    ("c2", {"instructors": ["Not Valid"]}, "courses.c2.instructors.0"),
    ("c2", {"instructors": ["x"], "formgrader_port": 8000}, "port 8000 is already used"),
])
def test_a_refused_course_leaves_the_file_untouched(config_file, course_id, kwargs, message):
    before = config_file.read_text()
    with pytest.raises(ConfigError, match=message):
        add_course(course_id, config_file=config_file, **kwargs)
    assert config_file.read_text() == before


def test_a_file_without_courses_gets_a_courses_block(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("# my hub\nport: 8100\n")
    add_course("c1", instructors=["ivy"], config_file=path)
    assert yaml.safe_load(path.read_text()) == {"port": 8100, "courses": {"c1": {
        "formgrader_port": 8010, "instructors": ["ivy"], "graders": [], "students": []}}}
    assert path.read_text().startswith("# my hub\n")


def test_the_cli_reports_a_refusal_with_exit_code_2(config_file, capsys):
    assert main(["course", "add", "ai101", "--instructor", "x", "--config", str(config_file)]) == 2
    assert "exists already" in capsys.readouterr().err
