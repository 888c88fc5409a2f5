"""OIDC single sign-on: the settings -> traits mapping on a bare Config, and a real login through a
real OpenID provider (oidc-provider-mock, started as its own process on loopback) into a real hub."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from traitlets.config import Config

from grader.hub.auth.oidc import PlatformOIDCAuthenticator, hub_groups_for
from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError
from grader.hub.settings import layered_config, load_settings, settings_from_config
from tests.support import hubfixture
from tests.support.hubfixture import free_port, stop_hub

GROUP_ROLES = {
    "ml-staff": {"courses": {"ai101": "instructor"}},
    "tutors": {"courses": {"ai101": "grader"}},
    "students": {"courses": {"ai101": "student"}},
    "gpu": {"groups": ["gpu-users"]},
    "it-admins": "admin",
    "cohort-leads": "cohort-admin",
}


def _platform(issuer: str = "http://127.0.0.1:9400", **oidc) -> dict:
    return {
        "idle_culler": {"enabled": False},
        "groups": {"gpu-users": []},
        "profiles": {},
        "courses": {"ai101": {"formgrader_port": 9010, "instructors": [], "students": []}},
        "auth": {"type": "oidc", "oidc": {"issuer": issuer, "client_id": "hub", "group_roles": GROUP_ROLES, **oidc}},
    }


def _write(path: Path, data: dict, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    os.chmod(path, mode)
    return path


def _load(tmp_path, platform: dict, secrets: dict | None = None):
    config_file = _write(tmp_path / "platform.yaml", platform)
    if secrets is not None:
        _write(tmp_path / "data" / "secrets.yaml", secrets, mode=0o600)
    return load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")})


SECRET = {"auth": {"oidc": {"client_secret": "s3cret-from-the-secrets-file"}}}


# --- settings -> traits (no hub) --------------------------------------------------------------


def test_oidc_settings_set_generic_oauthenticator_traits(tmp_path):
    settings = _load(tmp_path, _platform(username_claim="email", scopes=["openid", "email"]), SECRET)
    c = Config()
    apply_settings(c, settings)
    a = c.PlatformOIDCAuthenticator
    assert c.JupyterHub.authenticator_class == "grader.hub.auth.oidc.PlatformOIDCAuthenticator"
    assert (a.client_id, a.client_secret) == ("hub", "s3cret-from-the-secrets-file")
    assert a.oidc_issuer == "http://127.0.0.1:9400" and a.username_claim == "email" and a.scope == ["openid", "email"]
    assert a.manage_groups is True and c.Authenticator.allow_all is False and a.allow_existing_users is False
    # Only members of a mapped IdP group get in; it-admins are JupyterHub admins.
    assert a.allowed_groups == set(GROUP_ROLES) and a.admin_groups == {"it-admins"}
    # The IdP owns membership: JupyterHub refuses load_groups together with manage_groups.
    assert c.JupyterHub.load_groups == {}
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert "ml-staff" in roles["instructor-ai101"]["groups"] and "tutors" not in roles["instructor-ai101"]["groups"]
    assert roles["cohort-admin"]["groups"] == ["cohort-leads"]
    assert roles["grader-ai101"]["groups"] == ["formgrade-ai101"]
    assert "PlatformAuthenticator" not in c


def test_local_accounts_stay_the_default(tmp_path):
    settings = _load(tmp_path, {"courses": {"ai101": {"formgrader_port": 9010, "instructors": ["ian"]}}})
    c = Config()
    apply_settings(c, settings)
    assert c.JupyterHub.authenticator_class == "grader.hub.auth.local.PlatformAuthenticator"
    assert c.PlatformAuthenticator.signup_mode == "invitation" and c.Authenticator.allow_all is True
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert "groups" not in roles["instructor-ai101"] and c.JupyterHub.load_groups["formgrade-ai101"]["users"] == ["ian"]


def test_idp_groups_map_to_hub_groups():
    settings = settings_from_config(layered_config(secrets=SECRET, admin=_platform(), environ={}))
    oidc = settings.auth.oidc
    assert hub_groups_for(["ml-staff", "gpu", "unrelated"], oidc) == {"ml-staff", "formgrade-ai101", "gpu", "gpu-users"}
    assert hub_groups_for(["tutors"], oidc) == {"tutors", "formgrade-ai101"}
    assert hub_groups_for(["students"], oidc) == {"students", "nbgrader-ai101"}
    assert hub_groups_for(["unrelated"], oidc) == set()


def test_the_authenticator_maps_the_groups_claim():
    authenticator = PlatformOIDCAuthenticator(
        manage_groups=True, group_roles=GROUP_ROLES, groups_claim="roles", allowed_groups=set(GROUP_ROLES),
        authorize_url="http://idp/a", token_url="http://idp/t", userdata_url="http://idp/u")
    groups = asyncio.run(authenticator.get_user_groups({"oauth_user": {"roles": ["students", "elsewhere"]}}))
    assert groups == {"students", "nbgrader-ai101"}
    assert asyncio.run(authenticator.get_user_groups({"oauth_user": {"roles": "it-admins"}})) == {"it-admins"}
    assert asyncio.run(authenticator.get_user_groups({"oauth_user": {}})) == set()


@pytest.mark.parametrize("change, secrets, message", [
    ({"client_id": None}, SECRET, "auth.oidc.client_id: required when auth.type is oidc"),
    ({}, None, "auth.oidc.client_secret: required when auth.type is oidc (put it in <data_dir>/secrets.yaml"),
    ({"issuer": None}, SECRET, "auth.oidc.issuer: required when auth.type is oidc, unless auth.oidc.authorize_url"),
    ({"group_roles": {"x": {"courses": {"ml999": "student"}}}}, SECRET, "auth.oidc.group_roles.x.courses: no course 'ml999'"),
    ({"group_roles": {"x": {"groups": ["gpu-user"]}}}, SECRET, "auth.oidc.group_roles.x.groups: no group 'gpu-user'"),
    ({"group_roles": {}}, SECRET, "auth.oidc.group_roles: map at least one"),
])
def test_incomplete_oidc_settings_name_the_key(tmp_path, change, secrets, message):
    platform = _platform()
    platform["auth"]["oidc"] = {k: v for k, v in {**platform["auth"]["oidc"], **change}.items() if v is not None}
    with pytest.raises(ConfigError, match=re.escape(message)):
        _load(tmp_path, platform, secrets)


@pytest.mark.parametrize("oidc, key, problem", [
    ({"client_idd": "x"}, "auth.oidc.client_idd", "unknown setting"),
    ({"group_roles": {"x": "teacher"}}, "auth.oidc.group_roles.x", "is not valid under any of the given schemas"),
    ({"issuer": "idp.example.org"}, "auth.oidc.issuer", "does not match"),
])
def test_schema_errors_in_the_auth_section_name_the_file_and_key(tmp_path, oidc, key, problem):
    platform = _platform()
    platform["auth"]["oidc"].update(oidc)
    config_file = _write(tmp_path / "platform.yaml", platform)
    with pytest.raises(ConfigError) as raised:
        load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert f"{config_file}: {key}: " in str(raised.value) and problem in str(raised.value)


# --- a real login through a real provider -----------------------------------------------------

# People at the identity provider: their claims, as its userinfo endpoint returns them.
PEOPLE = {
    "ann": ["ml-staff", "gpu"],
    "sam": ["students"],
    "ada": ["it-admins"],
    "eve": ["visitors"],  # in no mapped group: refused
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """oidc-provider-mock in its own process; clients must register (so the secret is checked)."""
    port = free_port()
    log = tmp_path_factory.mktemp("idp") / "idp.log"
    command = [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--require-registration", "true"]
    for name, groups in PEOPLE.items():
        command += ["--user-claims", json.dumps({"sub": f"{name}-id", "preferred_username": name,
                                                   "email": f"{name}@example.org", "groups": groups})]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(f"{url}/.well-known/openid-configuration", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


@pytest.fixture(scope="module")
def oidc_hub(provider, tmp_path_factory):
    work = tmp_path_factory.mktemp("oidc-hub")
    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    client = requests.post(f"{provider}/oauth2/clients", json={"redirect_uris": [f"{hub_url}/hub/oauth_callback"]})
    assert client.status_code == 201, client.text
    platform = _platform(issuer=provider, client_id=client.json()["client_id"], callback_url=f"{hub_url}/hub/oauth_callback",
                         login_service="Example IdP")
    config_file = _write(work / "platform.yaml", platform)
    data_dir = work / "data"
    _write(data_dir / "secrets.yaml", {"auth": {"oidc": {"client_secret": client.json()["client_secret"]}}}, mode=0o600)
    # The client is registered for this exact callback, so the hub must get this port: start_hub
    # takes its public port from the first free_port() it calls.
    ports = iter([hub_port])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        patch.setattr(hubfixture, "free_port", lambda: next(ports, None) or free_port())
        hub = hubfixture.start_hub(data_dir)
    assert hub.url == hub_url
    yield hub
    stop_hub(hub)


def sso_login(hub, provider: str, name: str) -> tuple[requests.Session, requests.Response]:
    """Log in as a browser does: the hub's button, the provider's form, back through the callback."""
    session = requests.Session()
    login_page = session.get(f"{hub.url}/hub/login")
    assert login_page.status_code == 200 and "Sign in with Example IdP" in login_page.text
    href = re.search(r"href='([^']*oauth_login[^']*)'", login_page.text).group(1)
    form = session.get(f"{hub.url}{href}")  # redirected to the provider's authorization form
    assert form.status_code == 200 and form.url.startswith(f"{provider}/oauth2/authorize"), form.url
    answer = session.post(form.url, data={"sub": f"{name}-id"})  # follows the redirects back to the hub
    return session, answer


def api_token(hub, session: requests.Session, username: str) -> str:
    """A token made with the logged-in session (the hub's _xsrf cookie: a service may set its own)."""
    response = session.post(f"{hub.url}/hub/api/users/{username}/tokens", json={"note": "test", "expires_in": 600},
                            headers={"X-XSRFToken": session.cookies.get("_xsrf", path="/hub/")})
    response.raise_for_status()
    return response.json()["token"]


def _admin_headers(hub, provider) -> dict:
    session, answer = sso_login(hub, provider, "ada")
    assert answer.status_code == 200, answer.text[-2000:]
    return {"Authorization": f"token {api_token(hub, session, 'ada')}"}



@pytest.mark.slow
@pytest.mark.hub
def test_an_instructor_logs_in_through_the_provider_and_opens_the_formgrader(oidc_hub, provider):
    session, answer = sso_login(oidc_hub, provider, "ann")
    assert answer.status_code == 200 and answer.url.startswith(f"{oidc_hub.url}/hub/"), answer.url
    headers = _admin_headers(oidc_hub, provider)
    ann = requests.get(f"{oidc_hub.url}/hub/api/users/ann", headers=headers).json()
    assert set(ann["groups"]) == {"ml-staff", "formgrade-ai101", "gpu", "gpu-users"} and not ann["admin"]
    formgrader = session.get(f"{oidc_hub.url}/services/ai101/formgrader")
    assert formgrader.status_code == 200 and "formgrader" in formgrader.url
    # The instructor role reached ann through the mirrored IdP group: she may read the course's students.
    token = api_token(oidc_hub, session, "ann")
    assert requests.get(f"{oidc_hub.url}/hub/api/groups/nbgrader-ai101", headers={"Authorization": f"token {token}"}).status_code == 200


@pytest.mark.slow
@pytest.mark.hub
def test_a_student_lands_in_the_course_group_and_not_in_the_formgrader(oidc_hub, provider):
    session, answer = sso_login(oidc_hub, provider, "sam")
    assert answer.status_code == 200, answer.text[-2000:]
    sam = requests.get(f"{oidc_hub.url}/hub/api/users/sam", headers=_admin_headers(oidc_hub, provider)).json()
    assert set(sam["groups"]) == {"students", "nbgrader-ai101"} and not sam["admin"]
    assert session.get(f"{oidc_hub.url}/services/ai101/formgrader").status_code == 403
    token = api_token(oidc_hub, session, "sam")
    assert requests.get(f"{oidc_hub.url}/hub/api/groups/nbgrader-ai101", headers={"Authorization": f"token {token}"}).status_code in (403, 404)


@pytest.mark.slow
@pytest.mark.hub
def test_an_idp_admin_group_makes_a_hub_admin(oidc_hub, provider):
    headers = _admin_headers(oidc_hub, provider)
    assert requests.get(f"{oidc_hub.url}/hub/api/user", headers=headers).json()["admin"] is True


@pytest.mark.slow
@pytest.mark.hub
def test_someone_outside_the_allowed_groups_is_refused(oidc_hub, provider):
    _, answer = sso_login(oidc_hub, provider, "eve")
    assert answer.status_code == 403
    response = requests.get(f"{oidc_hub.url}/hub/api/users/eve", headers=_admin_headers(oidc_hub, provider))
    assert response.status_code == 404  # never created
