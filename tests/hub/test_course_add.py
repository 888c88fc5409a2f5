"""`grader course add`: a new course lands in the platform YAML, comments kept, checked, no hand edit."""

from __future__ import annotations

import difflib
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


HAND_WRITTEN = """\
# The hub of the evening school.   (comments anywhere must survive the edit)
port: 8100    # behind the school's proxy
groups:
    gpu-users:
        - ann      # the lab's GPU owner
        - "bob"
courses:
    # the autumn course
    ai101:
        title: 'AI: the autumn course'
        formgrader_port: 8010
        instructors: [ann]
        graders: []
        students: []
    # a comment after the last course
idle_culler:
    enabled: true
    timeout: 7200   # two hours: evening sessions are long
# The end of the file.
"""


def test_comments_key_order_quoting_and_other_sections_survive(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text(HAND_WRITTEN)
    add_course("ml201", instructors=["ivy"], students=["sue"], title="ML: 201", config_file=path)
    before, after = HAND_WRITTEN.splitlines(), path.read_text().splitlines()
    # The edit only inserts lines: every line the admin wrote is there, unchanged and in order.
    changes = difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes()
    assert {tag for tag, *_ in changes} == {"equal", "insert"}
    inserted = [line for tag, _, _, j1, j2 in changes if tag == "insert" for line in after[j1:j2]]
    # In the file's own indentation, inside courses:, before the sections that follow it.
    assert inserted == ["    ml201:", "        title: 'ML: 201'", "        formgrader_port: 8012",
                        "        instructors: [ivy]", "        graders: []", "        students: [sue]"]
    assert after.index("    ml201:") < after.index("idle_culler:")
    settings = yaml.safe_load(path.read_text())
    assert list(settings) == ["port", "groups", "courses", "idle_culler"]
    assert list(settings["courses"]) == ["ai101", "ml201"]
    assert settings["groups"] == {"gpu-users": ["ann", "bob"]}


def test_an_inline_empty_courses_mapping_grows_into_a_block(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("port: 8100\ncourses: {}   # none yet\n")
    add_course("c1", instructors=["ivy"], config_file=path)
    lines = path.read_text().splitlines()
    assert lines[0] == "port: 8100" and lines[1].startswith("courses: ") and lines[1].endswith("# none yet")
    assert lines[2:4] == ["  c1:", "    formgrader_port: 8010"]
    assert yaml.safe_load(path.read_text())["courses"] == {"c1": {
        "formgrader_port": 8010, "instructors": ["ivy"], "graders": [], "students": []}}


def test_a_file_of_comments_only_keeps_them(tmp_path):
    path = tmp_path / "platform.yaml"
    path.write_text("# settings to come\n# (nothing yet)")
    add_course("c1", instructors=["ivy"], config_file=path)
    assert path.read_text().startswith("# settings to come\n# (nothing yet)\ncourses:\n  c1:\n")


@pytest.mark.parametrize("text, message", [
    ("port: 8100\ncourses:\n  ai101: {formgrader_port: 8010, instructors: [ann]\n", "not valid YAML"),
    ("port: 8100\n  ip: 127.0.0.1\n", "not valid YAML"),
    # PyYAML lets the second key win; the round trip refuses to guess which one the admin meant.
    ("port: 8100\nport: 8200\ncourses: {}\n", "cannot be edited as YAML"),
], ids=["unclosed-flow-mapping", "bad-indentation", "duplicate-key"])
def test_bad_yaml_is_refused_naming_the_file_and_loses_nothing(tmp_path, text, message):
    path = tmp_path / "platform.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as refused:
        add_course("c1", instructors=["ivy"], config_file=path)
    assert str(refused.value).startswith(f"{path}: ")
    assert path.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["platform.yaml"]  # no temporary file left behind
