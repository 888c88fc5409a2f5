"""Seats in the hub's settings and config (no hub started): off by default, fully wired when on."""

from __future__ import annotations

import copy

import pytest
import yaml
from traitlets.config import Config

from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError
from grader.hub.roles import COHORT_ADMIN_SCOPES
from grader.hub.services.seats import SERVICE_SCOPES
from grader.hub.settings import HubSettings, Profile, SeatsSettings, load_settings
from grader.seats.enforcement import SeatEnforcement, _email_of, refusal_message
from grader.seats.store import Access


def _applied(tmp_path, **seats) -> tuple[Config, HubSettings]:
    settings = HubSettings(data_dir=tmp_path / "data", admins=("ada",), cohort_admins=("cora",),
                           profiles=(Profile("cpu", "CPU"),), seats=SeatsSettings(**seats))
    c = Config()
    apply_settings(c, settings)
    return c, settings


def test_seats_are_off_by_default_and_change_nothing(tmp_path):
    c, settings = _applied(tmp_path)
    assert not settings.seats.enabled
    assert "seats" not in [s["name"] for s in c.JupyterHub.services]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "seats-service" not in roles and "seats-admin" not in roles
    assert roles["cohort-admin"]["scopes"] == COHORT_ADMIN_SCOPES
    assert "post_auth_hook" not in c.Authenticator and "custom_scopes" not in c.JupyterHub
    assert c.Spawner.pre_spawn_hook.__self__.policy is None
    assert not (tmp_path / "data" / "seats.sqlite").exists()
    assert "AICOURSE_SEATS_LESSONS_URL" not in c.Spawner.environment
    assert not any("service=seats" in scope for scope in c.Spawner.server_token_scopes)


def test_enabled_seats_wire_the_service_the_scopes_the_roles_and_the_hooks(tmp_path):
    c, settings = _applied(tmp_path, enabled=True, service_port=9321, sweep_every=30, contact="help@example.org")
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "seats"]
    assert service["url"] == "http://127.0.0.1:9321"
    assert service["command"][1:3] == ["-m", "grader.seats.service"] and "--sweep-every=30" in service["command"]
    # Lessons run are reported by users' servers, not read from homes on the hub's disk.
    assert not any(part.startswith("--homes-dir") for part in service["command"])
    # The database URL travels in the environment, never on a command line others can list.
    assert service["environment"] == {"GRADER_SEATS_DB": f"sqlite:///{tmp_path / 'data' / 'seats.sqlite'}"}
    assert not any("sqlite" in part for part in service["command"])
    assert sorted(service["oauth_client_allowed_scopes"]) == ["custom:seats:read", "custom:seats:write"]

    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["seats-service"]["services"] == ["seats"] and roles["seats-service"]["scopes"] == SERVICE_SCOPES
    assert roles["seats-admin"]["users"] == ["ada"]
    assert roles["cohort-admin"]["scopes"] == COHORT_ADMIN_SCOPES + [
        "access:services!service=seats", "custom:seats:read", "custom:seats:write"]
    assert set(c.JupyterHub.custom_scopes) == {"custom:seats:read", "custom:seats:write"}
    # Students' servers report the lessons run to the service, with their own token.
    assert roles["seats-learner"]["scopes"] == ["access:services!service=seats"]
    assert roles["seats-learner"]["groups"] == [course.student_group for course in settings.courses]
    assert "access:services!service=seats" in c.Spawner.server_token_scopes
    assert c.Spawner.environment["AICOURSE_SEATS_LESSONS_URL"] == "http://127.0.0.1:9321/services/seats/api/lesson-runs"
    assert c.JupyterHub.custom_scopes["custom:seats:write"]["subscopes"] == ["custom:seats:read"]

    # One enforcement object behind the login hook and the spawn policy; the database is migrated.
    enforcement = c.Authenticator.post_auth_hook.__self__
    assert isinstance(enforcement, SeatEnforcement)
    assert c.Spawner.pre_spawn_hook.__self__.policy is enforcement
    assert enforcement.staff_names == {"ada", "cora"} and enforcement.contact == "help@example.org"
    assert (tmp_path / "data" / "seats.sqlite").is_file()
    # traitlets deep-copies config values; the copies keep the one database engine.
    assert copy.deepcopy(enforcement) is enforcement


def test_seats_settings_come_from_the_yaml_and_are_checked(tmp_path):
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"seats": {"enabled": True, "db_url": "postgresql://db/seats",
                                                     "service_port": 9400}}))
    settings = load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "d")})
    assert settings.seats_db_url == "postgresql://db/seats" and settings.seats.service_port == 9400
    assert "postgresql" not in repr(settings.seats)  # a URL may hold a password

    config_file.write_text(yaml.safe_dump({"seats": {"enabled": True, "service_prot": 1}}))
    with pytest.raises(ConfigError, match="seats.service_prot: unknown setting"):
        load_settings({"AICOURSE_CONFIG": str(config_file)})
    config_file.write_text(yaml.safe_dump({"seats": {"enabled": True, "service_port": 8000}}))
    with pytest.raises(ConfigError, match="seats.service_port: port 8000 is already used by port"):
        load_settings({"AICOURSE_CONFIG": str(config_file)})


def test_the_refusal_says_whom_to_ask():
    refused = Access(allowed=False, reason="you have no seat in any cohort; ask your organisation's cohort admin",
                     contact="", profiles=frozenset(), cohort_ids=(), code="no-seat")
    assert refusal_message(refused, fallback_contact="help@example.org") == (
        "You cannot use this hub now: you have no seat in any cohort; ask your organisation's cohort admin. "
        "Contact: help@example.org.")
    with_org = Access(allowed=False, reason="cohort 'x' ended on 2026-01-31; ask Acme (t@acme.example)",
                      contact="t@acme.example", profiles=frozenset(), cohort_ids=(), code="ended")
    assert "Contact:" not in refusal_message(with_org, fallback_contact="help@example.org")


@pytest.mark.parametrize("authentication, email", [
    ({"name": "bob"}, None),
    ({"name": "bob@corp.example"}, "bob@corp.example"),
    ({"name": "bob", "user_info": {"email": "bob@corp.example"}}, "bob@corp.example"),
    # An identity provider that says the address is unverified: nobody claims invitations with it.
    ({"name": "bob", "auth_state": {"oauth_user": {"email": "boss@corp.example", "email_verified": False}}}, None),
    ({"name": "bob", "auth_state": {"oauth_user": {"email": "bob@corp.example", "email_verified": True}}},
     "bob@corp.example"),
])
def test_the_address_invitations_are_claimed_with(authentication, email):
    assert _email_of(authentication) == email
