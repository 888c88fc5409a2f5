"""OIDC single sign-on: the settings -> traits mapping on a bare Config, and real logins through a
real OpenID provider (oidc-provider-mock, started as its own process on loopback,
tests/support/oidc_provider.py) into a real hub: groups mapped at login and again before each
spawn and after auth_refresh_age, and a hub started while the provider is down."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import stat
import time
from pathlib import Path

import jwt
import pytest
import requests
import yaml
from traitlets.config import Config

from grader.hub.auth.oidc import (
    CRYPT_KEY_NAME,
    IdentityProviderUnavailable,
    IdpGroupMapping,
    PlatformOIDCAuthenticator,
    auth_state_keys,
    hub_groups_for,
)
from grader.hub.config import apply_settings
from grader.hub.layers import ConfigError
from grader.hub.settings import layered_config, load_settings, settings_from_config
from tests.support import hubfixture
from tests.support.hubfixture import free_port, stop_hub
from tests.support.oidc_provider import start_provider, stop_provider

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
    # Groups through OAuthenticator's own auth_state_groups_key, a callable on the claims it stores.
    assert isinstance(a.auth_state_groups_key, IdpGroupMapping) and a.auth_state_groups_key.groups_claim == "groups"
    assert a.auth_state_groups_key({"oauth_user": {"groups": ["ml-staff"]}}) == {"ml-staff", "formgrade-ai101"}
    # The IdP is asked again before every spawn and after five minutes, with the tokens it gave.
    assert a.enable_auth_state is True and a.refresh_pre_spawn is True and a.auth_refresh_age == 300
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


def _authenticator(tmp_path, **platform) -> PlatformOIDCAuthenticator:
    """The authenticator as the hub makes it: from the traits apply_settings sets."""
    entry = _platform(**platform)
    entry["auth"]["oidc"] = {key: value for key, value in entry["auth"]["oidc"].items() if value is not None}
    settings = _load(tmp_path, entry, SECRET)
    c = Config()
    apply_settings(c, settings)
    return PlatformOIDCAuthenticator(config=c)


def test_oauthenticator_maps_the_groups_claim_through_auth_state_groups_key(tmp_path):
    authenticator = _authenticator(tmp_path, groups_claim="roles")
    assert "get_user_groups" not in vars(PlatformOIDCAuthenticator)  # OAuthenticator's own, not ours

    def groups(auth_state):
        return asyncio.run(authenticator.get_user_groups(auth_state))

    assert groups({"oauth_user": {"roles": ["students", "elsewhere"]}}) == {"students", "nbgrader-ai101"}
    assert groups({"oauth_user": {"roles": "it-admins"}}) == {"it-admins"}  # one group, as a string
    assert groups({"oauth_user": {"groups": ["students"]}}) == set()  # another claim
    assert groups({"oauth_user": {}}) == set()


def test_claims_from_the_id_token_map_the_same_way(tmp_path):
    # With OAuthenticator's userdata_from_id_token the claims come from the ID token, not userinfo;
    # they land in the same place of auth_state, so the mapping and the admin and allowed groups apply.
    authenticator = _authenticator(tmp_path, issuer=None, authorize_url="http://idp/a", token_url="http://idp/t",
                                   userdata_url="http://idp/u")
    authenticator.userdata_url = ""
    authenticator.userdata_from_id_token = True
    id_token = jwt.encode({"aud": "hub", "exp": int(time.time()) + 60, "preferred_username": "ada",
                           "groups": ["it-admins", "students"]}, "k" * 32, algorithm="HS256")
    auth_model = asyncio.run(authenticator._token_to_auth_model(
        {"access_token": "x", "token_type": "Bearer", "id_token": id_token}))
    assert auth_model["name"] == "ada" and auth_model["admin"] is True
    assert set(auth_model["groups"]) == {"it-admins", "students", "nbgrader-ai101"}
    assert asyncio.run(authenticator.check_allowed("ada", auth_model)) is True


def test_the_auth_state_key_is_made_once_private_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    settings = _load(tmp_path, _platform(), SECRET)
    c = Config()
    apply_settings(c, settings)
    key_file = settings.data_dir / CRYPT_KEY_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    (key,) = c.CryptKeeper["keys"]
    assert len(bytes.fromhex(key)) == 32 and key_file.read_text().split() == [key]
    again = Config()
    apply_settings(again, settings)
    assert again.CryptKeeper["keys"] == [key]  # kept, not remade: sessions outlive a restart
    # Rotation: a new key first, the old one still decrypts.
    key_file.write_text(f"{'ab' * 32}\n{key}\n")
    assert auth_state_keys(settings.data_dir) == ["ab" * 32, key]
    os.chmod(key_file, 0o640)
    with pytest.raises(ConfigError, match=re.escape(f"{key_file}: holds the key that encrypts") + ".*chmod 600"):
        apply_settings(Config(), settings)


def test_jupyterhubs_own_crypt_key_variable_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_CRYPT_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    settings = _load(tmp_path, _platform(), SECRET)
    c = Config()
    apply_settings(c, settings)
    assert "keys" not in c.CryptKeeper and not (settings.data_dir / CRYPT_KEY_NAME).exists()


def test_local_accounts_keep_no_auth_state(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
    settings = _load(tmp_path, {"courses": {"ai101": {"formgrader_port": 9010}}})
    c = Config()
    apply_settings(c, settings)
    assert "CryptKeeper" not in c and not (settings.data_dir / CRYPT_KEY_NAME).exists()


def test_auth_refresh_age_comes_from_the_yaml(tmp_path):
    c = Config()
    apply_settings(c, _load(tmp_path, _platform(auth_refresh_age=60), SECRET))
    assert c.PlatformOIDCAuthenticator.auth_refresh_age == 60 and c.PlatformOIDCAuthenticator.refresh_pre_spawn


def test_discovery_fills_the_endpoints_not_given(tmp_path, provider):
    authenticator = _authenticator(tmp_path, issuer=provider.url, token_url="http://idp.example.org/token")
    assert authenticator.needs_discovery() and not authenticator.authorize_url
    asyncio.run(authenticator.ensure_endpoints())
    assert authenticator.authorize_url == f"{provider.url}/oauth2/authorize"
    assert authenticator.userdata_url == f"{provider.url}/userinfo"
    assert authenticator.token_url == "http://idp.example.org/token"  # given in the settings: kept


def test_without_the_provider_sign_in_says_so(tmp_path):
    down = f"http://127.0.0.1:{free_port()}"
    authenticator = _authenticator(tmp_path, issuer=down)
    with pytest.raises(IdentityProviderUnavailable) as raised:
        asyncio.run(authenticator.ensure_endpoints())
    assert raised.value.status_code == 503
    assert f"cannot read {down}/.well-known/openid-configuration" in raised.value.jupyterhub_message


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
    # 0 would turn off JupyterHub 6.1's refresh before spawns too.
    ({"auth_refresh_age": 0}, "auth.oidc.auth_refresh_age", "less than the minimum of 1"),
])
def test_schema_errors_in_the_auth_section_name_the_file_and_key(tmp_path, oidc, key, problem):
    platform = _platform()
    platform["auth"]["oidc"].update(oidc)
    config_file = _write(tmp_path / "platform.yaml", platform)
    with pytest.raises(ConfigError) as raised:
        load_settings({"AICOURSE_CONFIG": str(config_file), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert f"{config_file}: {key}: " in str(raised.value) and problem in str(raised.value)


# --- a real login through a real provider -----------------------------------------------------

# People at the identity provider and their groups there.
PEOPLE = {
    "ann": ["ml-staff", "gpu"],
    "sam": ["students"],
    "kim": ["students"],  # removed from the group while logged in
    "ada": ["it-admins"],
    "eve": ["visitors"],  # in no mapped group: refused
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """The provider, in its own process; clients must register (so the secret is checked)."""
    provider = start_provider(tmp_path_factory.mktemp("idp") / "idp.log", PEOPLE, port=free_port())
    yield provider
    stop_provider(provider)


@pytest.fixture(scope="module")
def oidc_hub(provider, tmp_path_factory):
    work = tmp_path_factory.mktemp("oidc-hub")
    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    client = requests.post(f"{provider.url}/oauth2/clients", json={"redirect_uris": [f"{hub_url}/hub/oauth_callback"]})
    assert client.status_code == 201, client.text
    platform = _platform(issuer=provider.url, client_id=client.json()["client_id"],
                         callback_url=f"{hub_url}/hub/oauth_callback", login_service="Example IdP")
    config_file = _write(work / "platform.yaml", platform)
    data_dir = work / "data"
    _write(data_dir / "secrets.yaml", {"auth": {"oidc": {"client_secret": client.json()["client_secret"]}}}, mode=0o600)
    # The client is registered for this exact callback, so the hub must get this port: start_hub
    # takes its public port from the first free_port() it calls.
    ports = iter([hub_port])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        patch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
        patch.setattr(hubfixture, "free_port", lambda: next(ports, None) or free_port())
        hub = hubfixture.start_hub(data_dir)
    assert hub.url == hub_url
    yield hub
    stop_hub(hub)


def sso_login(hub, provider, name: str) -> tuple[requests.Session, requests.Response]:
    """Log in as a browser does: the hub's button, the provider's form, back through the callback."""
    session = requests.Session()
    login_page = session.get(f"{hub.url}/hub/login")
    assert login_page.status_code == 200 and "Sign in with Example IdP" in login_page.text
    href = re.search(r"href='([^']*oauth_login[^']*)'", login_page.text).group(1)
    form = session.get(f"{hub.url}{href}")  # redirected to the provider's authorization form
    assert form.status_code == 200 and form.url.startswith(f"{provider.url}/oauth2/authorize"), form.url
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
    # The IdP's tokens are kept, encrypted with the key the hub made in its data folder.
    assert stat.S_IMODE((oidc_hub.data_dir / CRYPT_KEY_NAME).stat().st_mode) == 0o600
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


def _hub_user(hub, provider, name: str) -> dict:
    response = requests.get(f"{hub.url}/hub/api/users/{name}", headers=_admin_headers(hub, provider))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.slow
@pytest.mark.hub
def test_someone_removed_from_the_group_is_refused_at_the_next_spawn(oidc_hub, provider):
    session, answer = sso_login(oidc_hub, provider, "kim")
    assert answer.status_code == 200, answer.text[-2000:]
    assert set(_hub_user(oidc_hub, provider, "kim")["groups"]) == {"students", "nbgrader-ai101"}
    # The login went on to start kim's server (JupyterHub's default), past the same refresh; stop it.
    token = api_token(oidc_hub, session, "kim")
    deadline = time.monotonic() + 120
    while _hub_user(oidc_hub, provider, "kim")["pending"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "refused until a new login" not in oidc_hub.log()
    hubfixture.stop_server(oidc_hub, "kim", token)
    provider.set_groups("kim", ["visitors"])  # the IdP's admin takes kim out of the students
    # kim does not log out: the session still opens hub pages (younger than auth_refresh_age)...
    assert session.get(f"{oidc_hub.url}/hub/home").status_code == 200
    # ...but a start asks the IdP first (refresh_pre_spawn), and the answer is no longer allowed.
    spawn = session.post(f"{oidc_hub.url}/hub/spawn/kim", data={"_xsrf": session.cookies.get("_xsrf", path="/hub/")})
    assert spawn.status_code == 403, (spawn.status_code, spawn.url, spawn.text[-2000:])
    assert "kim is no longer in an allowed identity-provider group" in oidc_hub.log()
    kim = _hub_user(oidc_hub, provider, "kim")
    # The course groups went with the refresh (roles too, for kim's API tokens); no server started.
    assert kim["groups"] == [] and kim["server"] is None and not kim["servers"]
    _, again = sso_login(oidc_hub, provider, "kim")
    assert again.status_code == 403


# --- a hub started while its identity provider is down ----------------------------------------

LATE_PEOPLE = {"sam": ["students"], "lee": ["students", "gpu"], "ada": ["it-admins"]}
REFRESH_AGE = 2  # auth_refresh_age of that hub, in seconds


@pytest.fixture(scope="module")
def late_idp_hub(tmp_path_factory):
    """A hub whose IdP does not answer while the hub starts; the IdP comes up afterwards.

    Yields the hub, the provider, and what the hub's login button answered while the IdP was down."""
    work = tmp_path_factory.mktemp("late-idp")
    idp_port = free_port()
    platform = _platform(issuer=f"http://127.0.0.1:{idp_port}", login_service="Example IdP",
                         auth_refresh_age=REFRESH_AGE)
    config_file = _write(work / "platform.yaml", platform)
    data_dir = work / "data"
    # The provider is started after the hub, so the client cannot be registered first: this one
    # accepts any client (the module's other provider checks the secret).
    _write(data_dir / "secrets.yaml", {"auth": {"oidc": {"client_secret": "not-checked-here"}}}, mode=0o600)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        patch.delenv("JUPYTERHUB_CRYPT_KEY", raising=False)
        hub = hubfixture.start_hub(data_dir)  # returns once /hub/api answers
    provider = None
    try:
        while_down = requests.get(f"{hub.url}/hub/oauth_login", timeout=60)
        provider = start_provider(work / "idp.log", LATE_PEOPLE, port=idp_port, require_registration=False)
        yield hub, provider, while_down
    finally:
        if provider is not None:
            stop_provider(provider)
        stop_hub(hub)


@pytest.mark.slow
@pytest.mark.hub
def test_the_hub_starts_while_the_provider_is_down_and_login_works_once_it_is_up(late_idp_hub):
    hub, provider, while_down = late_idp_hub
    # While the IdP was down, the login button said so instead of sending people nowhere.
    assert while_down.status_code == 503
    assert f"cannot read {provider.url}/.well-known/openid-configuration" in while_down.text
    # The hub kept trying in the background, waiting longer each time.
    delays = [float(d) for d in re.findall(r"OIDC: cannot read .*; next try in ([\d.]+)s", hub.log())]
    assert delays[:2] == [1.0, 2.0], hub.log()[-3000:]
    session, answer = sso_login(hub, provider, "sam")
    assert answer.status_code == 200 and answer.url.startswith(f"{hub.url}/hub/"), answer.text[-2000:]
    assert set(_hub_user(hub, provider, "sam")["groups"]) == {"students", "nbgrader-ai101"}


@pytest.mark.slow
@pytest.mark.hub
def test_groups_follow_the_provider_between_logins_after_auth_refresh_age(late_idp_hub):
    hub, provider, _ = late_idp_hub
    session, answer = sso_login(hub, provider, "lee")
    assert answer.status_code == 200, answer.text[-2000:]
    assert set(_hub_user(hub, provider, "lee")["groups"]) == {"students", "nbgrader-ai101", "gpu", "gpu-users"}
    provider.set_groups("lee", ["students"])
    time.sleep(REFRESH_AGE + 0.5)
    # The next page lee opens asks the IdP again: still in, without the GPU group.
    assert session.get(f"{hub.url}/hub/home").status_code == 200
    assert set(_hub_user(hub, provider, "lee")["groups"]) == {"students", "nbgrader-ai101"}
    provider.set_groups("lee", ["visitors"])
    time.sleep(REFRESH_AGE + 0.5)
    # Out of every allowed group: the session no longer counts, and the course groups are gone.
    home = session.get(f"{hub.url}/hub/home", allow_redirects=False)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"], (home.status_code, home.headers)
    assert _hub_user(hub, provider, "lee")["groups"] == []
