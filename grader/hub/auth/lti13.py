"""LTI 1.3 launches into the hub: jupyterhub-ltiauthenticator's authenticator, for several LMSs at once.

``auth: {type: lti13, lti13: {...}}`` in the platform YAML selects it (registrations:
:mod:`grader.lti.registrations`; set-up per LMS: docs/lms-lti13.md). jupyterhub-ltiauthenticator
1.6 does the OIDC third-party login and the id_token checks (its handlers and
``LTI13LaunchValidator``, PyJWT underneath) for one issuer; this module adds what the platform needs:

- several registrations side by side: the login initiation picks the registration by ``iss`` (and
  ``client_id``), keeps its name in the signed state, and the callback verifies the id_token
  against *that* registration's JWKS, issuer, client id and deployments;
- replayed launches refused: each id_token's nonce is recorded (:class:`grader.lti.store.LtiStore`)
  for ``max_age`` seconds, on top of the library's nonce cookie;
- the launch mapped to the course (:mod:`grader.lti.launch`): Instructor -> ``formgrade-<course>``
  and ``lti-instructors-<course>`` (the ``instructor-<course>`` role, :func:`roles_with_lti_groups`),
  TeachingAssistant -> ``formgrade-<course>``, Learner -> ``nbgrader-<course>``; the person's
  other groups of that course are taken away (a role changed in the LMS changes here at the next
  launch). Groups are set in the hub's database by this handler, not with ``manage_groups``,
  so the roster sync (``grader lti sync-roster``) can still edit them through the hub's API;
- the landing: the link's lesson or assignment, through ``/hub/spawn/<name>?next=...``, so the
  server is started on the way;
- deep linking (``/hub/lti13/deep-link/<id>``): an instructor picks lessons and assignments of
  the course, and the answer (pylti1p3's ``DeepLink``, signed with the tool's key, whose public
  half is ``/hub/lti13/jwks``) gives the LMS each link with its custom parameters and, for an
  assignment, a line item with its max score.
"""

from __future__ import annotations

import asyncio
import html
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jwt
from jupyterhub import orm
from jupyterhub.handlers import BaseHandler
from jupyterhub.utils import url_path_join
from ltiauthenticator.lti13.auth import LTI13Authenticator
from ltiauthenticator.lti13.constants import LTI13_GENERAL_REQUIRED_CLAIMS
from ltiauthenticator.lti13.error import InvalidAudienceError, TokenError, ValidationError
from ltiauthenticator.lti13.handlers import (
    LTI13CallbackHandler,
    LTI13LoginInitHandler,
    _deserialize_state,
    _serialize_state,
)
from ltiauthenticator.lti13.validator import LTI13LaunchValidator
from ltiauthenticator.utils import convert_request_to_dict
from tornado import web
from tornado.httputil import url_concat
from traitlets import Any as AnyTrait
from traitlets import Dict, List, Unicode

from grader.lti import content
from grader.lti.launch import (
    DEEP_LINKING_CLAIM,
    MESSAGE_TYPE_CLAIM,
    Launch,
    LaunchRefused,
    all_course_groups,
    course_groups,
    landing_path,
    lti_instructor_group,
    read_launch,
)
from grader.lti.registrations import Lti13Settings, Registration, pylti_registration, roster_token, tool_key
from grader.lti.store import Context, LtiStore

DEEP_LINK_SECONDS = 3600


def roles_with_lti_groups(roles: list[dict]) -> list[dict]:
    """``load_roles`` with each ``instructor-<course>`` role also given to ``lti-instructors-<course>``."""
    extended = []
    for role in roles:
        if role["name"].startswith("instructor-"):
            group = lti_instructor_group(role["name"].removeprefix("instructor-"))
            role = {**role, "groups": list(dict.fromkeys([*role.get("groups", []), group]))}
        extended.append(role)
    return extended


ROSTER_SERVICE = "lti-roster"


def roster_services(auth, data_dir) -> list[dict]:
    """The token-only service ``grader lti sync-roster`` calls the hub's API as (token: :func:`roster_token`)."""
    if auth.type != "lti13":
        return []
    return [{"name": ROSTER_SERVICE, "api_token": roster_token(data_dir),
             "display": False, "info": {"description": "LTI roster sync (grader lti sync-roster)"}}]


def roster_roles(auth, course_ids) -> list[dict]:
    """Its role: create accounts, read and edit the course groups, nothing more."""
    if auth.type != "lti13":
        return []
    groups = sorted({group for course in course_ids for group in all_course_groups(course)})
    return [{"name": ROSTER_SERVICE, "description": "Bring LMS rosters into the course groups",
             "scopes": ["admin:users", "list:users", "read:users:name"]
             + [f"{scope}!group={group}" for group in groups for scope in ("read:groups", "groups")],
             "services": [ROSTER_SERVICE]}]


class LaunchValidator(LTI13LaunchValidator):
    """Upstream's checks, but a deep-linking request needs the claims LTI Deep Linking 2.0 requires.

    jupyterhub-ltiauthenticator 1.6.3 asks a deep-linking request for every *optional* claim as
    well (``tool_platform``, ``launch_presentation``, ``azp``...), which platforms need not send,
    and not for ``deep_linking_settings``, which they must.
    """

    def validate_id_token(self, id_token: dict[str, Any]) -> None:
        if id_token.get(MESSAGE_TYPE_CLAIM) != "LtiDeepLinkingRequest":
            return super().validate_id_token(id_token)
        self._check_arg_not_missing(id_token, [*LTI13_GENERAL_REQUIRED_CLAIMS, DEEP_LINKING_CLAIM])
        self._check_lti_version(id_token)
        self._check_context_label(id_token)
        self._check_if_iat_is_too_old(id_token)


class LoginInitHandler(LTI13LoginInitHandler):
    """Step 1-2 of the launch: the LMS's login initiation, sent on to *its* registration's authorize URL."""

    def get_state(self):
        if self._state is None:
            # The landing comes from the launch's claims, never from the initiation's target_link_uri.
            self._state = _serialize_state({"state_id": secrets.token_hex(16), "next_url": None,
                                            "registration": self._registration.name})
        return self._state

    def post(self):
        args = convert_request_to_dict(self.request.arguments)
        try:
            LTI13LaunchValidator(parent=self.app).validate_login_request(args)
        except ValidationError as error:
            raise web.HTTPError(400, str(error)) from None
        registration = self.authenticator.lti.by_issuer(args["iss"], args.get("client_id", ""))
        if registration is None:
            raise web.HTTPError(400, f"no LTI registration on this hub for issuer {args['iss']!r}"
                                     f"{' and client_id ' + repr(args['client_id']) if args.get('client_id') else ''}")
        deployment = args.get("lti_deployment_id")
        if deployment and deployment not in registration.deployment_ids:
            raise web.HTTPError(400, f"deployment {deployment!r} of {registration.issuer} is not registered on this hub")
        self._registration = registration
        # OIDC's authentication request, to this registration's authorize URL (upstream's
        # authorize_redirect knows one URL only); state and nonce as upstream makes them.
        query = {"response_type": "id_token", "scope": "openid", "response_mode": "form_post", "prompt": "none",
                 "client_id": registration.client_id, "redirect_uri": self.get_redirect_uri(),
                 "login_hint": args["login_hint"], "nonce": self.generate_nonce(), "state": self.generate_state()}
        if args.get("lti_message_hint"):
            query["lti_message_hint"] = args["lti_message_hint"]
        self.redirect(url_concat(registration.authorize_url, query))

    get = post


class CallbackHandler(LTI13CallbackHandler):
    """Step 3 of the launch: the id_token checked against its registration, then the person logged in and placed."""

    def registration(self) -> Registration:
        name = _deserialize_state(self._get_state_from_url()).get("registration", "")
        try:
            return self.authenticator.lti.by_name(name)
        except ValueError:
            raise web.HTTPError(400, "the launch's state names no LTI registration of this hub") from None

    async def decode_and_validate_launch_request(self) -> dict[str, Any]:
        args = convert_request_to_dict(self.request.arguments)
        validator = LaunchValidator(parent=self.app, max_age=self.authenticator.lti.max_age)
        validator.validate_auth_response(args)
        self.check_state()
        registration = self.registration()
        # The JWKS may be fetched: off the event loop.
        claims = await asyncio.to_thread(self.authenticator.verify_id_token, args["id_token"], registration)
        validator.validate_id_token(claims)
        validator.validate_azp_claim(claims, {registration.client_id})
        self.check_nonce(claims)
        if not self.authenticator.store.use_nonce(registration.name, str(claims["nonce"]), self.authenticator.lti.max_age):
            raise TokenError("this launch was used already (replayed nonce); launch again from the LMS")
        self._registration = registration
        return claims

    async def post(self):
        try:
            claims = await self.decode_and_validate_launch_request()
        except InvalidAudienceError as error:
            raise web.HTTPError(401, f"LTI launch refused: {error}") from None
        except ValidationError as error:
            raise web.HTTPError(400, f"LTI launch refused: {error}") from None
        authenticator = self.authenticator
        try:
            launch = read_launch(claims, self._registration, username_claim=authenticator.lti.username_claim,
                                 course_ids=set(authenticator.course_ids))
        except LaunchRefused as error:
            raise web.HTTPError(403, f"LTI launch refused: {error}") from None
        user = await self.login_user({"launch": launch})
        if user is None:
            raise web.HTTPError(403, "LTI launch refused: not allowed on this hub")
        self.place_in_course(user, launch)
        await asyncio.to_thread(authenticator.remember, launch, claims)
        if launch.is_deep_linking:
            if launch.role != "instructor":
                raise web.HTTPError(403, "only the course's instructors may add content from the hub")
            token = authenticator.open_deep_link(launch, claims.get(DEEP_LINKING_CLAIM) or {})
            self.redirect(url_path_join(self.hub.base_url, "lti13", "deep-link", token))
            return
        landing = url_path_join(user.url, landing_path(launch))
        self.redirect(url_path_join(self.hub.base_url, "spawn", quote(user.name)) + "?" + urlencode({"next": landing}))

    def place_in_course(self, user, launch: Launch) -> None:
        """The course groups of the launch's role; the person's other groups of that course go."""
        wanted = course_groups(launch.course, launch.role)
        orm_user = user.orm_user
        for name in sorted(all_course_groups(launch.course)):
            group = orm.Group.find(self.db, name)
            if name in wanted:
                if group is None:
                    group = orm.Group(name=name)
                    self.db.add(group)
                if group not in orm_user.groups:
                    orm_user.groups.append(group)
            elif group is not None and group in orm_user.groups:
                orm_user.groups.remove(group)
        self.db.commit()


class JwksHandler(BaseHandler):
    """The tool's public key, for the LMS (deep-linking answers and service requests are signed with it)."""

    async def get(self):
        self.set_header("Content-Type", "application/json")
        self.write(self.authenticator.key.jwks())


class DeepLinkHandler(BaseHandler):
    """The instructor's pick of lessons and assignments, answered to the LMS as signed content items."""

    def pending(self, token: str) -> dict:
        entry = self.authenticator.deep_links.get(token)
        if entry is None or entry["expires"] < time.time() or entry["launch"].username != self.current_user.name:
            raise web.HTTPError(404, "no such content selection (it is used once, within an hour of the LMS's request)")
        return entry

    def items(self, launch: Launch) -> list[content.Item]:
        a = self.authenticator
        return content.lessons(a.lessons_path()) + content.assignments(a.assignments_path())

    @web.authenticated
    async def get(self, token: str):
        entry = self.pending(token)
        launch = entry["launch"]
        rows = "".join(
            f'<li><label><input type="checkbox" name="item" value="{html.escape(item.kind + ":" + item.key)}"> '
            f'{html.escape(item.kind)}: {html.escape(item.title)} <code>{html.escape(item.key)}</code>'
            f'{" (max score " + format(item.max_score, "g") + ")" if item.max_score is not None else ""}</label></li>'
            for item in self.items(launch))
        self.write(f"<!doctype html><title>Add from the hub</title><h1>Add to {html.escape(launch.context_title)}"
                   f" ({html.escape(launch.course)})</h1><form method=post>{self.xsrf_form_html()}<ul>{rows}</ul>"
                   f"<button type=submit>Add to the LMS</button></form>")

    @web.authenticated
    async def post(self, token: str):
        entry = self.pending(token)
        launch = entry["launch"]
        chosen = set(self.get_arguments("item"))
        items = [item for item in self.items(launch) if f"{item.kind}:{item.key}" in chosen]
        if not items:
            raise web.HTTPError(400, "pick at least one lesson or assignment")
        self.authenticator.deep_links.pop(token, None)
        a = self.authenticator
        # The links' launch URL: the hub's LTI redirect URI, as registered in the LMS.
        launch_url = f"{a.get_uri_scheme(self.request)}://{self.request.host}{a.callback_url(self.hub.base_url)}"
        self.write(a.deep_link_answer(launch, entry["settings"], items, launch_url))


class Lti13PlatformAuthenticator(LTI13Authenticator):
    """jupyterhub-ltiauthenticator's LTI 1.3 authenticator for several registrations (see the module's doc)."""

    login_handler = LoginInitHandler
    callback_handler = CallbackHandler

    lti = AnyTrait(Lti13Settings(), config=True, help="grader.lti.registrations.Lti13Settings: the registrations.")
    data_dir = Unicode(config=True, help="The hub's data folder: <data_dir>/lti/ holds the tool's key and records.")
    course_ids = List(Unicode(), config=True, help="The hub's courses.")
    lessons_dir = Unicode("", config=True, help="The lessons (courses/ of the content folder), for deep linking.")
    assignments_dir = Unicode("", config=True, help="nbgrader's source assignments, for deep linking.")
    deep_links = Dict(help="Pending content selections: id -> launch, LMS settings, expiry (in memory).")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._jwk_clients: dict[str, jwt.PyJWKClient] = {}
        self.key = tool_key(self.data_dir)
        self.store = LtiStore.of(self.data_dir)

    def get_handlers(self, app):
        return super().get_handlers(app) + [
            (r"/lti13/jwks", JwksHandler),
            (r"/lti13/deep-link/([A-Za-z0-9_-]+)", DeepLinkHandler),
        ]

    def lessons_path(self) -> Path | None:
        return Path(self.lessons_dir) if self.lessons_dir else None

    def assignments_path(self) -> Path | None:
        return Path(self.assignments_dir) if self.assignments_dir else None

    def verify_id_token(self, id_token: str, registration: Registration) -> dict[str, Any]:
        """Signature (the registration's JWKS, kept by PyJWT's client), expiry, issuer and audience."""
        client = self._jwk_clients.get(registration.name)
        if client is None:
            client = self._jwk_clients[registration.name] = jwt.PyJWKClient(registration.jwks_url, lifespan=300)
        try:
            key = client.get_signing_key_from_jwt(id_token).key
            return jwt.decode(id_token, key, algorithms=list(self.jwks_algorithms), audience=registration.client_id,
                              issuer=registration.issuer, options={"require": ["exp", "iat", "nonce", "sub"]})
        except jwt.InvalidAudienceError as error:
            raise InvalidAudienceError(f"{error} (expected {registration.client_id!r}, registration {registration.name})") from None
        except jwt.PyJWTError as error:
            raise TokenError(f"id_token refused: {error}") from None

    async def authenticate(self, handler, data=None):
        launch = (data or {}).get("launch")
        if launch is None:
            return None
        return {"name": launch.username}

    def remember(self, launch: Launch, claims: dict) -> None:
        self.store.remember_identity(launch.registration, launch.lti_user_id, launch.username,
                                     email=str(claims.get("email", "")), name=str(claims.get("name", "")))
        self.store.remember_context(Context(launch.registration, launch.context_id, launch.course, launch.deployment_id,
                                            launch.context_title, launch.memberships_url, launch.lineitems_url,
                                            launch.ags_scopes))
        assignment = str(launch.custom.get("assignment", ""))
        if assignment and launch.lineitem_url:
            self.store.remember_lineitem(launch.registration, launch.context_id, assignment, launch.lineitem_url)

    def open_deep_link(self, launch: Launch, settings: dict) -> str:
        now = time.time()
        for token in [t for t, entry in self.deep_links.items() if entry["expires"] < now]:
            self.deep_links.pop(token, None)
        token = secrets.token_urlsafe(24)
        self.deep_links[token] = {"launch": launch, "settings": settings, "expires": now + DEEP_LINK_SECONDS}
        return token

    def deep_link_answer(self, launch: Launch, settings: dict, items: list[content.Item], launch_url: str) -> str:
        """The auto-submitting form that returns the signed LtiDeepLinkingResponse to the LMS."""
        from pylti1p3.deep_link import DeepLink
        from pylti1p3.deep_link_resource import DeepLinkResource
        from pylti1p3.lineitem import LineItem

        registration = self.lti.by_name(launch.registration)
        resources = []
        for item in items:
            resource = (DeepLinkResource().set_url(launch_url).set_title(item.title)
                        .set_custom_params({**item.custom, "course": launch.course}))
            if item.kind == "assignment":
                resource.set_lineitem(LineItem().set_label(item.title).set_score_maximum(item.max_score or 0)
                                      .set_resource_id(item.key).set_tag(item.key))
            resources.append(resource)
        deep_link = DeepLink(pylti_registration(registration, self.key), launch.deployment_id, settings)
        return deep_link.output_response_form(resources)


def update_lti13_auth(c, *, lti: Lti13Settings, data_dir, course_ids, lessons_dir, assignments_dir) -> None:
    """Set the traits of :class:`Lti13PlatformAuthenticator` from the ``auth.lti13`` settings."""
    c.JupyterHub.authenticator_class = "grader.hub.auth.lti13.Lti13PlatformAuthenticator"
    a = c.Lti13PlatformAuthenticator
    a.lti = lti
    a.data_dir = str(data_dir)
    a.course_ids = list(course_ids)
    a.lessons_dir = str(lessons_dir or "")
    a.assignments_dir = str(assignments_dir or "")
    # Upstream's single-registration traits, for its /hub/lti13/config page: the first registration.
    first = lti.registrations[0]
    a.issuer, a.client_id, a.jwks_endpoint, a.authorize_url = first.issuer, {r.client_id for r in lti.registrations}, \
        first.jwks_url, first.authorize_url
    a.username_key = lti.username_claim
    # Only a verified launch from a registered LMS, with a course role, logs anyone in.
    c.Authenticator.allow_all = True
    # Course groups are set per launch by CallbackHandler (and by the roster sync through the API).
    a.manage_groups = False
