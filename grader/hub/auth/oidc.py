"""Single sign-on with OpenID Connect: OAuthenticator's generic OIDC client, groups mapped to roles.

``auth: {type: oidc, oidc: {...}}`` in the platform YAML selects it (the client secret belongs in
``<data_dir>/secrets.yaml``). The identity provider (IdP) decides who someone is and which of
its groups they are in; ``group_roles`` turns those groups into the platform's places:

    group_roles:
      ml-staff: {courses: {ai101: instructor}}   # formgrade-ai101, and the instructor-ai101 role
      students: {courses: {ai101: student}}      # nbgrader-ai101 (the student role)
      gpu: {groups: [gpu-users]}                 # any hub group, e.g. for the GPU profile
      admins: admin                              # JupyterHub admin
      cohort-leads: cohort-admin

It is built on the maintained mechanisms: JupyterHub's ``Authenticator.manage_groups`` (the
hub's groups follow the IdP at every login; the group API is then read-only) through
OAuthenticator's ``get_user_groups`` hook, ``allowed_groups`` (only members of a mapped IdP group
may log in) and ``admin_groups``. An IdP group named in ``group_roles`` is also kept as a hub
group of the same name, so roles reach its members through ``load_roles`` (see
:func:`roles_with_identity_groups`) and admins see it on the admin page. JupyterHub's
``manage_roles`` is not used: with it, ``load_roles`` may not give roles to groups at all, which
is how the student and grader roles reach the course groups.

This module does not import :mod:`grader.hub.settings` (which imports it).
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Mapping

from oauthenticator.generic import GenericOAuthenticator
from traitlets import Dict, Unicode

from grader.hub.layers import ConfigError

COURSE_ROLES = ("instructor", "grader", "student")
PLATFORM_ROLES = ("admin", "cohort-admin")
DEFAULT_OIDC = {
    "scopes": ["openid", "profile", "email"],
    "username_claim": "preferred_username",
    "groups_claim": "groups",
    "login_service": "your organisation's sign-in",
    "group_roles": {},
}


@dataclass(frozen=True)
class GroupRole:
    """What membership of one IdP group gives: a platform role, course places, hub groups."""

    platform_role: str = ""  # "admin", "cohort-admin" or ""
    courses: tuple[tuple[str, str], ...] = ()  # (course_id, instructor|grader|student)
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class OidcSettings:
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    # The issuer's /.well-known/openid-configuration gives the endpoints, unless they are given.
    issuer: str = ""
    authorize_url: str = ""
    token_url: str = ""
    userdata_url: str = ""
    # Where the IdP sends people back; "" lets OAuthenticator derive it from the request.
    callback_url: str = ""
    scopes: tuple[str, ...] = tuple(DEFAULT_OIDC["scopes"])
    username_claim: str = DEFAULT_OIDC["username_claim"]
    groups_claim: str = DEFAULT_OIDC["groups_claim"]
    login_service: str = DEFAULT_OIDC["login_service"]
    group_roles: tuple[tuple[str, GroupRole], ...] = ()
    # IdP groups whose members may log in; empty: those named in group_roles.
    allowed_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthSettings:
    type: str = "local"
    oidc: OidcSettings | None = None


def _group_role(key: str, value: Any) -> GroupRole:
    if isinstance(value, str):
        return GroupRole(platform_role=value)
    return GroupRole(courses=tuple((course_id, role) for course_id, role in value.get("courses", {}).items()),
                     groups=tuple(value.get("groups", ())))


def auth_settings_from_config(auth: Mapping[str, Any], *, course_ids: set[str], known_groups: set[str]) -> AuthSettings:
    """The ``auth:`` section of the merged configuration, checked beyond what the schema can say.

    The schema checks each file; what needs the merge (client id in the YAML, secret in the
    secrets file) or the other sections (courses, groups) is checked here, naming the key.
    """
    if auth.get("type", "local") != "oidc":
        return AuthSettings()
    entry = {**DEFAULT_OIDC, **auth.get("oidc", {})}
    for key in ("client_id", "client_secret"):
        if not entry.get(key):
            where = " (put it in <data_dir>/secrets.yaml, chmod 600)" if key == "client_secret" else ""
            raise ConfigError(f"auth.oidc.{key}: required when auth.type is oidc{where}")
    endpoints = ("authorize_url", "token_url", "userdata_url")
    if not entry.get("issuer") and not all(entry.get(key) for key in endpoints):
        missing = ", ".join(f"auth.oidc.{key}" for key in endpoints if not entry.get(key))
        raise ConfigError(f"auth.oidc.issuer: required when auth.type is oidc, unless {missing} are given")
    group_roles = tuple((name, _group_role(name, value)) for name, value in entry["group_roles"].items())
    for name, role in group_roles:
        for course_id, _ in role.courses:
            if course_id not in course_ids:
                raise ConfigError(f"auth.oidc.group_roles.{name}.courses: no course {course_id!r} "
                                  f"(known: {', '.join(sorted(course_ids)) or 'none'})")
        for group in role.groups:
            if group not in known_groups:
                raise ConfigError(f"auth.oidc.group_roles.{name}.groups: no group {group!r}; declare it under "
                                  f"groups: (known: {', '.join(sorted(known_groups)) or 'none'})")
    if not group_roles and not entry.get("allowed_groups"):
        raise ConfigError("auth.oidc.group_roles: map at least one identity-provider group, or nobody can log in")
    return AuthSettings(type="oidc", oidc=OidcSettings(
        client_id=entry["client_id"], client_secret=entry["client_secret"],
        issuer=entry.get("issuer", "").rstrip("/"), authorize_url=entry.get("authorize_url", ""),
        token_url=entry.get("token_url", ""), userdata_url=entry.get("userdata_url", ""),
        callback_url=entry.get("callback_url", ""), scopes=tuple(entry["scopes"]),
        username_claim=entry["username_claim"], groups_claim=entry["groups_claim"],
        login_service=entry["login_service"], group_roles=group_roles,
        allowed_groups=tuple(entry.get("allowed_groups", ())),
    ))


# --- the mapping, as pure functions -----------------------------------------------------------


def mirrored_groups(oidc: OidcSettings) -> set[str]:
    """IdP groups kept as hub groups of the same name: those mapped, and those allowed in."""
    return {name for name, _ in oidc.group_roles} | set(oidc.allowed_groups)


def hub_groups_for(idp_groups, oidc: OidcSettings) -> set[str]:
    """The hub groups a person in ``idp_groups`` belongs to (JupyterHub syncs them at each login)."""
    idp_groups = set(idp_groups)
    groups = idp_groups & mirrored_groups(oidc)
    for name, role in oidc.group_roles:
        if name not in idp_groups:
            continue
        groups.update(role.groups)
        for course_id, course_role in role.courses:
            # nbgrader's group names (docs: "Using nbgrader with JupyterHub").
            groups.add(f"nbgrader-{course_id}" if course_role == "student" else f"formgrade-{course_id}")
    return groups


def idp_groups_with(oidc: OidcSettings, *, platform_role: str = "", course_id: str = "", course_role: str = "") -> list[str]:
    """The IdP groups mapped to a platform role, or to a role in a course, in the YAML's order."""
    return [name for name, role in oidc.group_roles
            if (platform_role and role.platform_role == platform_role)
            or (course_id and (course_id, course_role) in role.courses)]


def roles_with_identity_groups(roles: list[dict], auth: AuthSettings) -> list[dict]:
    """``load_roles`` with each role also given to the IdP groups mapped to it; unchanged for local accounts.

    The student and grader roles already reach the course groups; the instructor and cohort-admin
    roles are given to users by name, so under OIDC they are given to the mapped groups too.
    Returns new dicts; ``roles`` is not changed.
    """
    if auth.type != "oidc":
        return roles
    extended = []
    for role in roles:
        name = role["name"]
        groups: list[str] = []
        if name.startswith("instructor-"):
            groups = idp_groups_with(auth.oidc, course_id=name.removeprefix("instructor-"), course_role="instructor")
        elif name == "cohort-admin":
            groups = idp_groups_with(auth.oidc, platform_role="cohort-admin")
        extended.append({**role, "groups": list(dict.fromkeys([*role.get("groups", []), *groups]))} if groups else role)
    return extended


# --- the authenticator --------------------------------------------------------------------------


def discover_endpoints(issuer: str, *, timeout: float = 10) -> dict[str, str]:
    """The authorize, token and userinfo URLs from the issuer's OpenID discovery document."""
    url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.load(response)
    except (OSError, ValueError) as error:
        raise ConfigError(f"auth.oidc.issuer: cannot read {url}: {error}") from error
    try:
        return {"authorize_url": document["authorization_endpoint"], "token_url": document["token_endpoint"],
                "userdata_url": document["userinfo_endpoint"]}
    except KeyError as error:
        raise ConfigError(f"auth.oidc.issuer: {url} has no {error.args[0]}") from None


class PlatformOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with OpenID discovery and the platform's IdP-group mapping."""

    oidc_issuer = Unicode("", config=True, help="OpenID issuer URL; its discovery document fills empty endpoint URLs.")
    groups_claim = Unicode("groups", config=True, help="The userinfo claim listing the person's IdP groups.")
    group_roles = Dict(config=True, help="IdP group -> what it gives, as in the platform YAML's auth.oidc.group_roles.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.oidc_issuer and not (self.authorize_url and self.token_url and self.userdata_url):
            for key, url in discover_endpoints(self.oidc_issuer).items():
                if not getattr(self, key):
                    setattr(self, key, url)
        self._oidc = OidcSettings(
            group_roles=tuple((name, _group_role(name, value)) for name, value in self.group_roles.items()),
            allowed_groups=tuple(self.allowed_groups),
        )

    async def get_user_groups(self, auth_state: dict) -> set[str]:
        """OAuthenticator's hook for ``manage_groups``: the IdP's groups claim, mapped to hub groups."""
        claims = auth_state.get(self.user_auth_state_key) or {}
        idp_groups = claims.get(self.groups_claim) or []
        if isinstance(idp_groups, str):  # some providers send a single group as a string
            idp_groups = [idp_groups]
        return hub_groups_for(idp_groups, self._oidc)


def update_oidc_auth(c, auth: AuthSettings) -> None:
    """Set the traits of :class:`PlatformOIDCAuthenticator` from the ``auth.oidc`` settings."""
    oidc = auth.oidc
    c.JupyterHub.authenticator_class = "grader.hub.auth.oidc.PlatformOIDCAuthenticator"
    a = c.PlatformOIDCAuthenticator
    # manage_groups first: OAuthenticator refuses allowed_groups and admin_groups without it.
    a.manage_groups = True
    a.oidc_issuer = oidc.issuer
    a.authorize_url = oidc.authorize_url
    a.token_url = oidc.token_url
    a.userdata_url = oidc.userdata_url
    a.oauth_callback_url = oidc.callback_url
    a.client_id = oidc.client_id
    a.client_secret = oidc.client_secret
    # HTTP Basic at the token endpoint: the method every provider must accept (RFC 6749 2.3.1) and
    # OIDC's default for a registered client; OAuthenticator's default posts the secret instead.
    a.basic_auth = True
    a.scope = list(oidc.scopes)
    a.username_claim = oidc.username_claim
    a.login_service = oidc.login_service
    a.groups_claim = oidc.groups_claim
    # The YAML's own shape: a platform role's name, or {courses: {...}, groups: [...]}.
    a.group_roles = {name: role.platform_role or {"courses": dict(role.courses), "groups": list(role.groups)}
                     for name, role in oidc.group_roles}
    # Hub groups mirror the allowed IdP groups (get_user_groups), so these compare like for like.
    a.allowed_groups = set(oidc.allowed_groups) or {name for name, _ in oidc.group_roles}
    a.admin_groups = set(idp_groups_with(oidc, platform_role="admin"))
    # Who may log in is the IdP's groups at each login: someone removed from them is refused at
    # the next one, even though the hub still lists them.
    a.allow_existing_users = False
    c.Authenticator.allow_all = False
