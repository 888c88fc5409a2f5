"""What a launch means on the hub (grader.lti.launch), the registrations' checks and the tool's key
(grader.lti.registrations), the records (grader.lti.store): no hub, no LMS."""

from __future__ import annotations

import os
import stat

import pytest
from traitlets.config import Config

from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError
from grader.hub.settings import layered_config, settings_from_config
from grader.lti.launch import (
    AGS_CLAIM,
    CONTEXT_CLAIM,
    CUSTOM_CLAIM,
    DEPLOYMENT_CLAIM,
    NRPS_CLAIM,
    ROLES_CLAIM,
    LaunchRefused,
    course_groups,
    course_role,
    landing_path,
    read_launch,
)
from grader.lti.registrations import RegistrationError, lti13_settings_from_config, tool_key
from grader.lti.store import LtiStore

M = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
TA = "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"


def registration(**entry) -> dict:
    return {"issuer": "https://moodle.example.org", "client_id": "abc", "deployment_ids": ["3"],
            "authorize_url": "https://moodle.example.org/mod/lti/auth.php",
            "token_url": "https://moodle.example.org/mod/lti/token.php",
            "jwks_url": "https://moodle.example.org/mod/lti/certs.php", "course": "ai101", **entry}


def lti(**registrations):
    return lti13_settings_from_config({"type": "lti13", "lti13": {"registrations": registrations}},
                                      course_ids={"ai101", "ai102"})


def claims(**extra) -> dict:
    return {"sub": "u-1", "email": "Lea@Example.org", DEPLOYMENT_CLAIM: "3", ROLES_CLAIM: [M + "Learner"],
            CONTEXT_CLAIM: {"id": "42", "title": "Intro", "label": "AI"}, **extra}


@pytest.mark.parametrize(("roles", "role"), [
    ([M + "Instructor"], "instructor"),
    ([M + "Instructor", TA], "grader"),
    ([TA], "grader"),
    ([M + "Learner"], "student"),
    (["Learner"], "student"),
    ([M + "Administrator"], "instructor"),
    (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor", M + "Learner"], "student"),
    (["http://purl.imsglobal.org/vocab/lis/v2/institution/person#Instructor"], ""),
    ([M + "Mentor"], ""),
])
def test_lti_roles_map_to_course_roles(roles, role):
    assert course_role(roles) == role


def test_course_roles_are_nbgrader_groups_and_the_instructors_group():
    assert course_groups("ai101", "student") == {"nbgrader-ai101"}
    assert course_groups("ai101", "grader") == {"formgrade-ai101"}
    assert course_groups("ai101", "instructor") == {"formgrade-ai101", "lti-instructors-ai101"}


def test_a_launch_names_the_person_course_role_and_services():
    settings = lti(moodle=registration(contexts={"77": "ai102"}))
    reg = settings.registrations[0]
    launch = read_launch(claims(**{NRPS_CLAIM: {"context_memberships_url": "https://m/members"},
                                   AGS_CLAIM: {"lineitems": "https://m/li", "scope": ["s"]}}),
                         reg, username_claim="email", course_ids={"ai101", "ai102"})
    assert (launch.username, launch.lti_user_id, launch.course, launch.role) == ("lea@example.org", "u-1", "ai101", "student")
    assert (launch.memberships_url, launch.lineitems_url, launch.ags_scopes) == ("https://m/members", "https://m/li", ("s",))
    # The context map, then the link's custom parameter, choose the course.
    assert read_launch(claims(**{CONTEXT_CLAIM: {"id": "77", "label": "x"}}), reg, username_claim="sub",
                       course_ids={"ai101", "ai102"}).course == "ai102"
    custom = read_launch(claims(**{CUSTOM_CLAIM: {"course": "ai102", "assignment": "a1"}}), reg, username_claim="sub",
                         course_ids={"ai101", "ai102"})
    assert custom.course == "ai102" and custom.username == "u-1"
    assert landing_path(custom) == "lab/tree/ai102/a1"


@pytest.mark.parametrize(("extra", "message"), [
    ({DEPLOYMENT_CLAIM: "9"}, "deployment '9'"),
    ({ROLES_CLAIM: [M + "Mentor"]}, "neither Instructor"),
    ({"email": ""}, "no e-mail address"),
    ({CUSTOM_CLAIM: {"course": "nope"}}, "not linked to a course on the hub"),
])
def test_launches_the_hub_cannot_honour_say_why(extra, message):
    reg = lti(moodle=registration()).registrations[0]
    with pytest.raises(LaunchRefused, match=message):
        read_launch(claims(**extra), reg, username_claim="email", course_ids={"ai101"})


def test_a_lesson_path_cannot_leave_the_courses_folder():
    reg = lti(moodle=registration()).registrations[0]
    launch = read_launch(claims(**{CUSTOM_CLAIM: {"lesson": "../../etc/passwd"}}), reg, username_claim="sub",
                         course_ids={"ai101"})
    assert landing_path(launch) == "lab/tree/courses"


@pytest.mark.parametrize(("entry", "message"), [
    ({"jwks_url": ""}, "jwks_url: required"),
    ({"course": "ai999"}, "no course 'ai999'"),
    ({"contexts": {"1": "ai999"}}, "no course 'ai999'"),
])
def test_wrong_registrations_name_the_key(entry, message):
    with pytest.raises(RegistrationError, match=message):
        lti(moodle=registration(**entry))


def test_two_registrations_of_one_issuer_are_told_apart_by_client_id():
    settings = lti(a=registration(), b=registration(client_id="other"))
    assert settings.by_issuer("https://moodle.example.org", "other").name == "b"
    assert settings.by_issuer("https://moodle.example.org") is None  # ambiguous without the client id
    with pytest.raises(RegistrationError, match="same issuer and client_id"):
        lti(a=registration(), b=registration())


def test_lti13_settings_set_the_authenticator_and_the_roster_service(tmp_path):
    config = layered_config(secrets={}, admin={
        "data_dir": str(tmp_path / "data"), "idle_culler": {"enabled": False}, "profiles": {},
        "courses": {"ai101": {"formgrader_port": 9010}},
        "auth": {"type": "lti13", "lti13": {"registrations": {"moodle": registration()}}}}, environ={})
    settings = settings_from_config(config)
    c = Config()
    apply_settings(c, settings)
    assert c.JupyterHub.authenticator_class == "grader.hub.auth.lti13.Lti13PlatformAuthenticator"
    assert c.Lti13PlatformAuthenticator.lti.registrations[0].name == "moodle"
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert "lti-instructors-ai101" in roles["instructor-ai101"]["groups"]
    assert roles["lti-roster"]["services"] == ["lti-roster"] and "admin:groups" not in roles["lti-roster"]["scopes"]
    assert "lti-roster" in {service["name"] for service in c.JupyterHub.services}
    token = tmp_path / "data" / "lti" / "roster_token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600


def test_lti13_settings_errors_are_config_errors():
    config = layered_config(secrets={}, admin={"courses": {"ai101": {"formgrader_port": 9010}},
                                               "auth": {"type": "lti13", "lti13": {"registrations": {
                                                   "moodle": registration(course="ai9")}}}}, environ={})
    with pytest.raises(ConfigError, match="auth.lti13.registrations.moodle: no course 'ai9'"):
        settings_from_config(config)


def test_the_tool_key_is_made_once_private_and_refused_when_others_can_read_it(tmp_path):
    key = tool_key(tmp_path)
    path = tmp_path / "lti" / "tool_key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tool_key(tmp_path).kid == key.kid and key.jwks()["keys"][0]["alg"] == "RS256"
    assert "d" not in key.jwks()["keys"][0]  # the public half only
    os.chmod(path, 0o644)
    with pytest.raises(RegistrationError, match="readable by others; run: chmod 600"):
        tool_key(tmp_path)


def test_a_nonce_is_used_once_per_registration(tmp_path):
    store = LtiStore.of(tmp_path)
    assert store.use_nonce("moodle", "n1", 600) is True
    assert store.use_nonce("moodle", "n1", 600) is False
    assert store.use_nonce("canvas", "n1", 600) is True
    assert store.use_nonce("moodle", "n2", -1) is True  # already expired: forgotten at the next call
    assert store.use_nonce("moodle", "n3", 600) is True
    assert store.use_nonce("moodle", "n2", 600) is True
    assert stat.S_IMODE((tmp_path / "lti" / "lti.sqlite").stat().st_mode) == 0o600
