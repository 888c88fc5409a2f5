"""Two courses on one real hub: what each role may open, and what each course's students see.

The hub is configured by a temporary platform YAML (``AICOURSE_CONFIG``) naming an admin, a cohort
admin, and two courses with their instructors, graders and students.
"""

from __future__ import annotations

import json

import pytest
import requests
import yaml

from tests.support.hubfixture import api_token, free_port, login, start_hub, start_server, stop_hub

pytestmark = [pytest.mark.slow, pytest.mark.hub]

PEOPLE = {
    "admin": "ada",
    "cohort-admin": "cora",
    "instructor": "ian",   # ai101
    "grader": "gus",       # ai101
    "student": "sam",      # ai101
    "other-instructor": "ivy",  # ml201
    "other-student": "stu",     # ml201
}


def _platform_yaml(path) -> None:
    path.write_text(yaml.safe_dump({
        "admins": ["ada"],
        "cohort_admins": ["cora"],
        # These tests lay out releases as nbgrader's file exchange does (the hub's default is http).
        "exchange": {"backend": "files"},
        "courses": {
            # start_hub gives the first course a free port through AICOURSE_FORMGRADER_PORT.
            "ai101": {"formgrader_port": 8010, "instructors": ["ian"], "graders": ["gus"], "students": ["sam"]},
            "ml201": {"formgrader_port": free_port(), "instructors": ["ivy"], "students": ["stu"]},
        },
    }))


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    _platform_yaml(config_file)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


@pytest.fixture(scope="module")
def sessions(hub):
    return {role: login(hub, name) for role, name in PEOPLE.items()}


@pytest.fixture(scope="module")
def tokens(hub):
    # Fresh sessions: one that has visited a service holds a second _xsrf cookie for its path.
    return {role: api_token(hub, login(hub, name), name) for role, name in PEOPLE.items()}


@pytest.fixture(scope="module")
def student_servers(hub, tokens):
    """Both courses' students' servers, started once (each start costs seconds of CPU)."""
    for role in ("student", "other-student"):
        start_server(hub, PEOPLE[role], tokens[role])
    return {role: f"{hub.url}/user/{PEOPLE[role]}" for role in ("student", "other-student")}


def _get(hub, tokens, role, path):
    return requests.get(f"{hub.url}{path}", headers={"Authorization": f"token {tokens[role]}"}, allow_redirects=False)


# --- the role matrix --------------------------------------------------------------------------

ROLES = list(PEOPLE)


# JupyterHub answers 404 rather than 403 for a user or group the caller may not even see.
DENIED = (403, 404)


def _expect(allowed: set[str], ok: int = 200) -> list:
    return [(role, ok if role in allowed else DENIED) for role in ROLES]


def _matches(status: int, expected) -> bool:
    return status in expected if isinstance(expected, tuple) else status == expected


@pytest.mark.parametrize("role, expected", _expect({"admin"}))
def test_only_admins_open_the_admin_page(hub, sessions, role, expected):
    assert _matches(sessions[role].get(f"{hub.url}/hub/admin").status_code, expected)


@pytest.mark.parametrize("role, expected", _expect({"admin", "instructor", "grader"}))
def test_the_formgrader_opens_for_its_course_staff_and_admins_only(hub, sessions, role, expected):
    response = sessions[role].get(f"{hub.url}/services/ai101/formgrader")
    assert _matches(response.status_code, expected)
    if expected == 200:
        assert "/services/ai101/formgrader" in response.url


@pytest.mark.parametrize("role, expected", _expect({"admin", "cohort-admin", "instructor", "other-instructor"}))
def test_who_may_list_users(hub, tokens, role, expected):
    assert _matches(_get(hub, tokens, role, "/hub/api/users").status_code, expected)


def test_an_instructor_lists_only_their_own_students(hub, tokens):
    names = {user["name"] for user in _get(hub, tokens, "instructor", "/hub/api/users").json()}
    assert names == {"sam"}
    everyone = {user["name"] for user in _get(hub, tokens, "cohort-admin", "/hub/api/users").json()}
    assert set(PEOPLE.values()) <= everyone


@pytest.mark.parametrize("role, expected", _expect({"admin", "cohort-admin", "instructor", "student"}))
def test_who_may_read_a_students_record(hub, tokens, role, expected):
    assert _matches(_get(hub, tokens, role, "/hub/api/users/sam").status_code, expected)


@pytest.mark.parametrize("role, expected", _expect({"admin", "instructor"}))
def test_only_the_course_instructor_and_admins_enrol_students(hub, tokens, role, expected):
    response = requests.post(f"{hub.url}/hub/api/groups/nbgrader-ai101/users", json={"users": ["sam"]},
                             headers={"Authorization": f"token {tokens[role]}"})
    assert _matches(response.status_code, expected)


@pytest.mark.parametrize("role, expected", _expect({"admin"}, ok=201))
def test_only_admins_create_users(hub, tokens, role, expected):
    response = requests.post(f"{hub.url}/hub/api/users/new-{role}", headers={"Authorization": f"token {tokens[role]}"})
    assert _matches(response.status_code, expected)


@pytest.mark.parametrize("role, visible", [
    ("admin", {"formgrade-ai101", "nbgrader-ai101", "formgrade-ml201", "nbgrader-ml201"}),
    ("cohort-admin", {"formgrade-ai101", "nbgrader-ai101", "formgrade-ml201", "nbgrader-ml201"}),
    ("instructor", {"nbgrader-ai101"}),
    ("other-instructor", {"nbgrader-ml201"}),
    ("grader", None), ("student", None), ("other-student", None),
])
def test_who_sees_which_groups(hub, tokens, role, visible):
    response = _get(hub, tokens, role, "/hub/api/groups")
    if visible is None:
        assert response.status_code in DENIED
    else:
        assert response.status_code == 200 and {group["name"] for group in response.json()} == visible


@pytest.mark.parametrize("role, expected", _expect({"admin", "student"}))
def test_a_students_server_answers_only_its_owner_and_admins(hub, tokens, student_servers, role, expected):
    response = requests.get(f"{student_servers['student']}/api/status",
                            headers={"Authorization": f"token {tokens[role]}"}, allow_redirects=False)
    assert _matches(response.status_code, expected)


# --- each course's students see only their course ---------------------------------------------

NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def released(hub):
    """One assignment in each course's part of the exchange, laid out as nbgrader's release does."""
    for course_id, assignment_id in [("ai101", "ai_only"), ("ml201", "ml_only")]:
        outbound = hub.data_dir / "exchange" / course_id / "outbound" / assignment_id
        outbound.mkdir(parents=True)
        (outbound / "hello.ipynb").write_text(json.dumps(NOTEBOOK))
    return {"student": ("ai101", "ai_only"), "other-student": ("ml201", "ml_only")}


def _nbgrader(student_servers, tokens, role, path, **form):
    url = f"{student_servers[role]}{path}"
    headers = {"Authorization": f"token {tokens[role]}"}
    response = requests.post(url, data=form, headers=headers) if form else requests.get(url, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("role", ["student", "other-student"])
def test_a_student_lists_only_their_own_course(hub, tokens, student_servers, released, role):
    own_course, own_assignment = released[role]
    assert _nbgrader(student_servers, tokens, role, "/courses") == {"success": True, "value": [own_course]}
    for course_id in ("ai101", "ml201"):
        listing = _nbgrader(student_servers, tokens, role, f"/assignments?course_id={course_id}")
        assert listing["success"]
        expected = [own_assignment] if course_id == own_course else []
        assert [item["assignment_id"] for item in listing["value"]] == expected


def test_a_student_cannot_fetch_another_courses_assignment(hub, tokens, student_servers, released):
    home = hub.data_dir / "homes" / "sam"
    # nbgrader's handler answers with the course's listing whether or not the fetch was allowed.
    refused = _nbgrader(student_servers, tokens, "student", "/assignments/fetch", course_id="ml201", assignment_id="ml_only")
    assert refused["value"] == [] and not (home / "ml201").exists()
    fetched = _nbgrader(student_servers, tokens, "student", "/assignments/fetch", course_id="ai101", assignment_id="ai_only")
    assert [(item["assignment_id"], item["status"]) for item in fetched["value"]] == [("ai_only", "fetched")]
    assert (home / "ai101" / "ai_only" / "hello.ipynb").is_file()


def test_each_course_has_its_own_course_directory_and_formgrader(hub, sessions):
    for course_id in ("ai101", "ml201"):
        config = (hub.data_dir / "courses" / course_id / "nbgrader_config.py").read_text()
        assert f"course_id = {course_id!r}" in config
    assert sessions["other-instructor"].get(f"{hub.url}/services/ml201/formgrader").status_code == 200
    assert sessions["other-instructor"].get(f"{hub.url}/services/ai101/formgrader").status_code in DENIED
    assert sessions["instructor"].get(f"{hub.url}/services/ml201/formgrader").status_code in DENIED


def test_the_admin_page_says_the_hub_runs_in_demo_mode(hub, sessions):
    # start_hub runs these hubs in demo mode (as root only through spawner.allow_root_demo).
    page = sessions["admin"].get(f"{hub.url}/hub/admin")
    assert page.status_code == 200
    assert 'id="demo-mode-banner"' in page.text and "Demo mode:" in page.text
