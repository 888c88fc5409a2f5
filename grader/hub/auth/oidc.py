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
hub's groups follow the IdP at every login; the group API is then read-only), OAuthenticator's
callable ``auth_state_groups_key`` (:class:`IdpGroupMapping`: the groups claim in the userinfo
answer, or in the ID token's claims, mapped to hub groups), ``allowed_groups`` (only members of a
mapped IdP group may log in) and ``admin_groups``. An IdP group named in ``group_roles`` is also
kept as a hub group of the same name, so roles reach its members through ``load_roles`` (see
:func:`roles_with_identity_groups`) and admins see it on the admin page. JupyterHub's
``manage_roles`` is not used: with it, ``load_roles`` may not give roles to groups at all, which
is how the student and grader roles reach the course groups.

The IdP's tokens are kept (``enable_auth_state``, encrypted with the key of
:func:`auth_state_keys`) so JupyterHub can ask the IdP again: before every spawn
(``refresh_pre_spawn``) and when a session's answer is older than ``auth_refresh_age``. Groups
then follow the IdP between logins too, and someone no longer in an allowed group is refused
(:meth:`PlatformOIDCAuthenticator.refresh_user`) without having to log out first.

The endpoints come from the issuer's discovery document, fetched in the background with back-off
from the hub's start (:meth:`PlatformOIDCAuthenticator.ensure_endpoints` says why).

This module does not import :mod:`grader.hub.settings` (which imports it).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from oauthenticator.generic import GenericOAuthenticator
from oauthenticator.oauth2 import OAuthLoginHandler
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Float, List, Unicode

from grader.hub.layers import ConfigError
from grader.regular_files import PrivateFileError, private_file

COURSE_ROLES = ("instructor", "grader", "student")
PLATFORM_ROLES = ("admin", "cohort-admin")
DEFAULT_OIDC = {
    "scopes": ["openid", "profile", "email"],
    "username_claim": "preferred_username",
    "groups_claim": "groups",
    "login_service": "your organisation's sign-in",
    "group_roles": {},
    # Seconds a session's answer from the IdP stays good before JupyterHub asks again (its own
    # default). Spawns always ask first (refresh_pre_spawn).
    "auth_refresh_age": 300,
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
    auth_refresh_age: int = DEFAULT_OIDC["auth_refresh_age"]


@dataclass(frozen=True)
class AuthSettings:
    type: str = "local"
    oidc: OidcSettings | None = None
    # grader.lti.registrations.Lti13Settings when type is lti13 (grader/hub/auth/lti13.py).
    lti13: Any = None


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
    if auth.get("type", "local") == "lti13":
        from grader.lti.registrations import RegistrationError, lti13_settings_from_config
        try:
            return AuthSettings(type="lti13", lti13=lti13_settings_from_config(auth, course_ids=course_ids))
        except RegistrationError as error:
            raise ConfigError(str(error)) from None
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
        allowed_groups=tuple(entry.get("allowed_groups", ())), auth_refresh_age=entry["auth_refresh_age"],
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
    if auth.type == "lti13":
        from grader.hub.auth.lti13 import roles_with_lti_groups
        return roles_with_lti_groups(roles)
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


# --- the IdP's groups, through OAuthenticator's auth_state_groups_key --------------------------


@dataclass(frozen=True)
class IdpGroupMapping:
    """OAuthenticator's callable ``auth_state_groups_key``: the person's hub groups from their claims.

    OAuthenticator calls it with the ``auth_state`` it built at login and at each refresh; the
    claims are under ``oauth_user`` (its ``user_auth_state_key``): the userinfo answer, or the ID
    token's claims with OAuthenticator's ``userdata_from_id_token``. Its ``allowed_groups`` and
    ``admin_groups`` then compare the hub groups returned here, which include the mirrored IdP groups.
    """

    groups_claim: str = DEFAULT_OIDC["groups_claim"]
    group_roles: tuple[tuple[str, GroupRole], ...] = ()
    allowed_groups: tuple[str, ...] = ()
    user_key: str = "oauth_user"

    def idp_groups(self, auth_state: Mapping[str, Any]) -> list[str]:
        claims = auth_state.get(self.user_key) or {}
        groups = claims.get(self.groups_claim) or []
        return [groups] if isinstance(groups, str) else list(groups)  # some IdPs send one group as a string

    def __call__(self, auth_state: Mapping[str, Any]) -> set[str]:
        oidc = OidcSettings(group_roles=self.group_roles, allowed_groups=self.allowed_groups)
        return hub_groups_for(self.idp_groups(auth_state), oidc)


# --- the key that encrypts auth_state ------------------------------------------------------------

CRYPT_KEY_NAME = "jupyterhub_crypt_key"


def auth_state_keys(data_dir: Path) -> list[str]:
    """The keys JupyterHub encrypts ``auth_state`` (the IdP's tokens) with, for ``c.CryptKeeper.keys``.

    Kept in ``<data_dir>/jupyterhub_crypt_key`` beside JupyterHub's cookie secret, never in the
    repository: made at the first call (32 random bytes, hex, created 0600), refused if others may
    read it, as the secrets file is. One key a line: the first encrypts, the others still decrypt
    (rotation). Losing it only costs a new login: JupyterHub drops state it cannot decrypt.
    ``JUPYTERHUB_CRYPT_KEY`` in the hub's environment, or the chart on Kubernetes, is used instead
    (the caller does not call this then).
    """
    path = Path(data_dir) / CRYPT_KEY_NAME
    try:
        private_file(path, lambda: (secrets.token_hex(32) + "\n").encode(),
                     "the key that encrypts users' identity-provider tokens")
    except PrivateFileError as error:
        raise ConfigError(str(error)) from None
    keys = path.read_text().split()
    if not keys:
        raise ConfigError(f"{path}: empty; delete it and a new key is made at the next start (users log in again)")
    return keys


# --- the authenticator --------------------------------------------------------------------------

# Seconds between tries of the discovery document while the IdP does not answer; the last repeats.
DISCOVERY_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
ENDPOINT_KEYS = {"authorize_url": "authorization_endpoint", "token_url": "token_endpoint",
                 "userdata_url": "userinfo_endpoint"}


class IdentityProviderUnavailable(web.HTTPError):
    """The IdP's discovery document could not be read yet: sign-in answers 503 until it can."""

    def __init__(self, message: str):
        super().__init__(503, message)
        self.jupyterhub_message = message  # shown on JupyterHub's error page


def endpoints_from_document(document: Any, url: str) -> dict[str, str]:
    """The authorize, token and userinfo URLs of an OpenID discovery document (trait name -> URL)."""
    if not isinstance(document, dict):
        raise ValueError(f"{url} is not a JSON object")
    missing = [key for key in ENDPOINT_KEYS.values() if not document.get(key)]
    if missing:
        raise ValueError(f"{url} has no {', '.join(missing)}")
    return {trait: document[key] for trait, key in ENDPOINT_KEYS.items()}


class DiscoveringLoginHandler(OAuthLoginHandler):
    """OAuthenticator's login redirect, once the endpoints are known (a clear 503 until then)."""

    async def get(self):
        await self.authenticator.ensure_endpoints()
        return super().get()


class PlatformOIDCAuthenticator(GenericOAuthenticator):
    """GenericOAuthenticator with OpenID discovery that survives an IdP outage, and a refresh
    that refuses someone no longer in an allowed group. Groups come from ``auth_state_groups_key``
    (:class:`IdpGroupMapping`, set by :func:`update_oidc_auth`)."""

    login_handler = DiscoveringLoginHandler

    oidc_issuer = Unicode("", config=True, help="OpenID issuer URL; its discovery document fills empty endpoint URLs.")
    discovery_retry_delays = List(Float(), default_value=list(DISCOVERY_RETRY_DELAYS), minlen=1, config=True,
                                  help="Seconds between tries of the discovery document; the last repeats.")
    discovery_timeout = Float(10, config=True, help="Seconds one try of the discovery document may take.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._discovery_lock = asyncio.Lock()
        self.discovery_error = ""
        self._discovery_task: asyncio.Task | None = None
        if self.needs_discovery():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # made outside a hub (a test): the first login discovers
                loop = None
            if loop is not None:
                self._discovery_task = loop.create_task(self._discover_until_it_works())

    def needs_discovery(self) -> bool:
        return bool(self.oidc_issuer) and not all(getattr(self, trait) for trait in ENDPOINT_KEYS)

    @property
    def discovery_url(self) -> str:
        return f"{self.oidc_issuer.rstrip('/')}/.well-known/openid-configuration"

    async def discover(self) -> bool:
        """One try of the discovery document: True once the endpoints are known."""
        async with self._discovery_lock:  # concurrent logins share one try
            if not self.needs_discovery():
                return True
            try:
                document = await self.httpfetch(self.discovery_url, label="reading the OpenID discovery document",
                                                method="GET", request_timeout=self.discovery_timeout,
                                                connect_timeout=self.discovery_timeout)
                endpoints = endpoints_from_document(document, self.discovery_url)
            except (HTTPClientError, OSError, ValueError) as error:
                self.discovery_error = f"cannot read {self.discovery_url}: {error}"
                return False
            for trait, url in endpoints.items():
                if not getattr(self, trait):  # endpoints given in the settings win
                    setattr(self, trait, url)
            self.discovery_error = ""
            self.log.info("OIDC: endpoints from %s", self.discovery_url)
            return True

    async def _discover_until_it_works(self) -> None:
        delays = iter(self.discovery_retry_delays)
        delay = 0.0
        while not await self.discover():
            delay = next(delays, delay)
            self.log.warning("OIDC: %s; sign-in answers 503 until it works; next try in %gs",
                             self.discovery_error, delay)
            await asyncio.sleep(delay)

    async def ensure_endpoints(self) -> None:
        """The endpoints, or :class:`IdentityProviderUnavailable` (503) naming what failed.

        Why the hub starts without them rather than failing or waiting: while the IdP does not
        answer nobody can log in whatever the hub does, but everything else still works (people
        already logged in, their servers, the formgrader and exchange services, the admin's API
        tokens). A hub that refuses to start, or blocks its start on retries, would turn a blip at
        the IdP into an outage of all that, and on Kubernetes into a crash loop. So the document
        is fetched in the background from the start with back-off (``discovery_retry_delays``,
        forever: a wrong issuer is logged at each try), and each login that finds no endpoints
        yet tries once more at once, answering a clear 503 if that fails too.
        """
        if self.needs_discovery() and not await self.discover():
            raise IdentityProviderUnavailable(
                f"Sign-in with {self.login_service} is unavailable: the identity provider does not answer "
                f"({self.discovery_error}). Try again in a minute.")

    # Tokens and userinfo need the endpoints too: a callback or a refresh may come before the
    # background discovery has succeeded (e.g. just after the hub restarted).
    async def get_token_info(self, handler, params):
        await self.ensure_endpoints()
        return await super().get_token_info(handler, params)

    async def token_to_user(self, token_info):
        await self.ensure_endpoints()
        return await super().token_to_user(token_info)

    async def refresh_user(self, user, handler=None, **kwargs):
        """OAuthenticator's refresh (the IdP asked again with the stored tokens), then the login's own
        ``check_allowed`` on the answer, which JupyterHub does not apply to refreshes.

        Someone still allowed gets their groups and admin flag from the fresh answer. Someone no
        longer allowed gets them too (so their course roles go at once, even for their API
        tokens) and then ``False``: no spawn, and the next request with their session cookie
        asks them to log in again, which the IdP's groups refuse. If the IdP does not answer, the
        last answer stands (and is retried after ``auth_refresh_age``) unless
        ``Authenticator.auth_refresh_strict`` is set: an IdP outage should not end every session.
        """
        refreshed = await self._refresh(user, handler, **kwargs)
        if refreshed is False and handler is not None and not hasattr(handler, "_token_authenticated"):
            # JupyterHub 6.1.1's BaseHandler.refresh_auth reads this attribute on a False answer,
            # but sets it only for token-authenticated requests: a browser's request would fail
            # with AttributeError (a 500) instead of a login. Not token-authenticated, then.
            handler._token_authenticated = False
        return refreshed

    async def _refresh(self, user, handler=None, **kwargs):
        try:
            refreshed = await super().refresh_user(user, handler, **kwargs)
        except (IdentityProviderUnavailable, OSError) as error:
            return self._idp_unreachable(user, error)
        except HTTPClientError as error:
            if error.code < 500:
                raise
            return self._idp_unreachable(user, error)
        if not isinstance(refreshed, dict):
            return refreshed
        refreshed["name"] = user.name
        if await self.check_allowed(user.name, refreshed):
            return refreshed
        self.log.warning("OIDC: %s is no longer in an allowed identity-provider group: refused until a new login",
                         user.name)
        if handler is not None and hasattr(handler, "auth_to_user"):
            await handler.auth_to_user(refreshed, user)
        return False

    def _idp_unreachable(self, user, error) -> bool:
        self.log.warning("OIDC: cannot refresh %s at the identity provider (%s); %s", user.name, error,
                         "refused (auth_refresh_strict)" if self.auth_refresh_strict else "the last answer stands")
        return not self.auth_refresh_strict


def update_oidc_auth(c, auth: AuthSettings) -> None:
    """Set the traits of :class:`PlatformOIDCAuthenticator` from the ``auth.oidc`` settings."""
    oidc = auth.oidc
    c.JupyterHub.authenticator_class = "grader.hub.auth.oidc.PlatformOIDCAuthenticator"
    a = c.PlatformOIDCAuthenticator
    # manage_groups: the hub's groups follow the IdP; OAuthenticator requires it for the group traits.
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
    a.auth_state_groups_key = IdpGroupMapping(groups_claim=oidc.groups_claim, group_roles=oidc.group_roles,
                                              allowed_groups=oidc.allowed_groups)
    # The hub groups include the mirrored IdP groups (IdpGroupMapping), so these compare like for like.
    a.allowed_groups = set(oidc.allowed_groups) or {name for name, _ in oidc.group_roles}
    a.admin_groups = set(idp_groups_with(oidc, platform_role="admin"))
    # Who may log in is the IdP's groups at each login: someone removed from them is refused at
    # the next one, even though the hub still lists them.
    a.allow_existing_users = False
    c.Authenticator.allow_all = False
    # And between logins: the IdP's tokens are kept (encrypted: c.CryptKeeper.keys, see
    # auth_state_keys) so the hub asks the IdP again before every spawn and when a session's
    # answer is older than auth_refresh_age (refresh_user). auth_refresh_age stays above 0: in
    # JupyterHub 6.1, 0 turns off the refresh before a spawn too (BaseHandler.refresh_auth).
    a.enable_auth_state = True
    a.refresh_pre_spawn = True
    a.auth_refresh_age = oidc.auth_refresh_age
