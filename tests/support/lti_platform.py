"""A real LTI 1.3 platform (an LMS stand-in) for tests: lti1p3platform, served by tornado on loopback.

lti1p3platform (PyPI, independent of this project and of pylti1p3) implements the platform's side
of LTI 1.3 Advantage but no web framework of its own beyond Django and FastAPI adapters; this
module is its small tornado adapter (as its Django one: a request wrapper, a launch form) plus an
in-memory LMS: registrations with their own RSA keys and issuers, courses with rosters, line items
and a gradebook. It runs on its own IOLoop in a thread; :func:`stop_platform` stops it.

The browser part of a launch is driven by the test's ``requests.Session``: ``GET /<reg>/launch``
(a person clicking a link in the LMS) answers with the OIDC login initiation to the hub; the hub
sends the browser to ``/<reg>/authorize``, which answers with the auto-submitting form holding
the signed id_token (:func:`form_fields` reads it, the test posts it as the browser would).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import threading
import typing as t
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from jwcrypto.jwk import JWK
from lti1p3platform.exceptions import LtiException
from lti1p3platform.ltiplatform import LTI1P3PlatformConfAbstract
from lti1p3platform.message_launch import LTIAdvantageMessageLaunchAbstract
from lti1p3platform.oidc_login import OIDCLoginAbstract
from lti1p3platform.registration import Registration
from lti1p3platform.request import Request
from lti1p3platform.score import UpdateScoreStatus
from lti1p3platform.service_connector import AssignmentsGradesService, NamesRoleProvisioningService
from tornado import web
from tornado.httpserver import HTTPServer

from tests.support.hubfixture import free_port

ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
ROLES = {"Instructor": [ROLE + "Instructor"], "Learner": [ROLE + "Learner"],
         "TeachingAssistant": [ROLE + "Instructor", "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"]}


def private_pem() -> str:
    return JWK.generate(kty="RSA", size=2048).export_to_pem(private_key=True, password=None).decode()


def public_pem(private: str) -> str:
    return JWK.from_pem(private.encode()).export_to_pem().decode()


@dataclass
class Person:
    user_id: str
    email: str
    name: str
    role: str  # Instructor, TeachingAssistant, Learner
    status: str = "Active"

    def member(self) -> dict:
        given, _, family = self.name.partition(" ")
        return {"user_id": self.user_id, "roles": ROLES[self.role], "status": self.status, "email": self.email,
                "name": self.name, "given_name": given, "family_name": family}


@dataclass
class Course:
    context_id: str
    title: str
    people: dict[str, Person] = field(default_factory=dict)  # user_id -> person
    lineitems: dict[str, dict] = field(default_factory=dict)  # line item URL -> line item
    scores: dict[str, dict[str, dict]] = field(default_factory=dict)  # line item URL -> user_id -> last score
    score_posts: list[tuple[str, str, float]] = field(default_factory=list)  # every score POST accepted
    links: dict[str, dict] = field(default_factory=dict)  # resource link id -> content item
    fail_next_score_posts: int = 0


@dataclass
class LmsRegistration:
    """One tool registration in the LMS: its issuer, client id, deployment and platform key."""

    name: str
    base: str  # this platform's URL
    hub_url: str
    client_id: str
    deployment_id: str = "1"
    key: str = field(default_factory=private_pem, repr=False)
    courses: dict[str, Course] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"{self.base}/{self.name}"

    def url(self, path: str) -> str:
        return f"{self.base}/{self.name}/{path}"

    def yaml_entry(self, **extra) -> dict:
        """What an admin pastes into the hub's ``auth.lti13.registrations``."""
        return {"issuer": self.issuer, "client_id": self.client_id, "deployment_ids": [self.deployment_id],
                "authorize_url": self.url("authorize"), "token_url": self.url("token"),
                "jwks_url": self.url("jwks"), **extra}

    def registration(self) -> Registration:
        return (Registration().set_iss(self.issuer).set_client_id(self.client_id).set_deployment_id(self.deployment_id)
                .set_oidc_login_url(f"{self.hub_url}/hub/lti13/oauth_login")
                .set_launch_url(f"{self.hub_url}/hub/lti13/oauth_callback")
                .set_deeplink_launch_url(f"{self.hub_url}/hub/lti13/oauth_callback")
                .set_tool_key_set_url(f"{self.hub_url}/hub/lti13/jwks")
                .set_platform_public_key(public_pem(self.key)).set_platform_private_key(self.key))


class PlatformConf(LTI1P3PlatformConfAbstract):
    def init_platform_config(self, **kwargs) -> None:
        self._registration = kwargs["registration"]

    def get_registration_by_params(self, **kwargs) -> Registration:
        return self._registration


class TornadoRequest(Request):
    def build_metadata(self, request) -> dict:
        content_type = request.headers.get("Content-Type", "")
        body_json = json.loads(request.body) if request.body and "json" in content_type else None

        def flat(arguments):
            return {key: values[0].decode() for key, values in arguments.items()}
        return {"method": request.method, "form_data": flat(request.body_arguments), "get_data": flat(request.query_arguments),
                "headers": request.headers, "content_type": content_type, "path": request.path, "json": body_json}


class OidcLogin(OIDCLoginAbstract):
    def set_lti_message_hint(self, **kwargs) -> None:
        self._lti_message_hint = kwargs["hint"]

    def get_redirect(self, url: str) -> str:
        return url


class MessageLaunch(LTIAdvantageMessageLaunchAbstract):
    """A launch as the LMS builds it for the pending click named by ``lti_message_hint``."""

    def __init__(self, request, platform_config, lms: "Lms", reg: LmsRegistration):
        super().__init__(request, platform_config)
        self.lms, self.reg = lms, reg

    def prepare_launch(self, preflight_response) -> None:
        click = self.lms.clicks.pop(preflight_response.get("lti_message_hint", ""), None)
        if click is None:
            raise LtiException("unknown or used lti_message_hint")
        self.click = click
        course = self.reg.courses[click["context_id"]]
        person = course.people[preflight_response["login_hint"]]
        self.set_user_data(person.user_id, ROLES[person.role], full_name=person.name, email_address=person.email)
        self.set_launch_context_claim(course.context_id, context_title=course.title, context_label=course.context_id)
        base = self.reg.url(f"contexts/{course.context_id}")
        self.set_nrps(f"{base}/memberships")
        if click["kind"] == "deep_link":
            self.set_dl(self.reg.url(f"contexts/{course.context_id}/deep-link-return"), accept_types={"ltiResourceLink"})
            self.set_ags(f"{base}/lineitems", allow_creating_lineitems=True)
            return
        link = course.links.get(click["link"], {})
        self.set_resource_link_claim(click["link"], title=link.get("title"))
        self.set_custom_parameters_claim({**link.get("custom", {}), **click.get("custom", {})})
        lineitem = next((url for url, item in course.lineitems.items() if item.get("resourceLinkId") == click["link"]), None)
        self.set_ags(f"{base}/lineitems", lineitem_url=lineitem, allow_creating_lineitems=True)
        if click.get("tamper") == "audience":
            self.set_extra_claims({"aud": "another-tool", "azp": "another-tool"})
        if click.get("tamper") == "expired":
            self.set_id_token_expiration(-120)

    def generate_launch_request(self):
        launch = super().generate_launch_request()
        if self.click.get("tamper") == "signature":  # the same claims and kid, signed by another key
            claims = jwt_claims(launch["id_token"])
            launch["id_token"] = Registration.encode_and_sign(
                claims, private_pem(), headers={"kid": self._registration.get_kid()})
        self.lms.issued_tokens.append(launch["id_token"])
        return launch

    def render_launch_form(self, launch_data, **kwargs) -> str:
        inputs = "".join(f'<input type="hidden" name="{name}" value="{html.escape(str(launch_data[name]))}">'
                         for name in ("id_token", "state"))
        return (f'<form id="launch" action="{html.escape(launch_data["launch_url"])}" method="post">{inputs}</form>'
                '<script>document.getElementById("launch").submit()</script>')


def jwt_claims(token: str) -> dict:
    import jwt
    return jwt.decode(token, options={"verify_signature": False})


class Ags(AssignmentsGradesService):
    def __init__(self, request, conf, course: Course, lineitems_url: str):
        super().__init__(request, conf, lineitems_url)
        self.course = course

    def find_lineitems(self, **kwargs):
        items = list(self.course.lineitems.values())
        for key, field_name in (("resource_id", "resourceId"), ("tag", "tag"), ("resource_link_id", "resourceLinkId")):
            if kwargs.get(key):
                items = [item for item in items if item.get(field_name) == kwargs[key]]
        return {"content": items, "has_next": False, "next": None}

    def find_lineitem(self, line_item_id):
        from lti1p3platform.exceptions import LineItemNotFoundException
        if line_item_id not in self.course.lineitems:
            raise LineItemNotFoundException()
        return self.course.lineitems[line_item_id]

    def create_lineitem(self, creation_data):
        url = f"{self.ags.lineitems_url}/{len(self.course.lineitems) + 1}"
        self.course.lineitems[url] = {**creation_data, "id": url}
        return self.course.lineitems[url]

    def update_lineitem(self, update_data):
        self.course.lineitems[update_data["id"]].update(update_data)
        return self.course.lineitems[update_data["id"]]

    def delete_lineitem(self, line_item_id):
        self.course.lineitems.pop(line_item_id)

    def update_score(self, line_item_id, score):
        self.find_lineitem(line_item_id)
        if score["userId"] not in self.course.people:
            return UpdateScoreStatus.NOTAPPLIED
        self.course.scores.setdefault(line_item_id, {})[score["userId"]] = score
        self.course.score_posts.append((line_item_id, score["userId"], score["scoreGiven"]))
        return UpdateScoreStatus.SUCCESS

    def get_results(self, line_item_id, page=1, limit=None, user_id=None):
        results = [{"userId": user, "resultScore": score["scoreGiven"], "resultMaximum": score["scoreMaximum"]}
                   for user, score in self.course.scores.get(line_item_id, {}).items()]
        return {"content": results, "has_next": False, "next": None}


class Nrps(NamesRoleProvisioningService):
    def __init__(self, request, conf, course: Course, url: str):
        super().__init__(request, conf, url)
        self.course = course

    def get_member_data_page(self, page=1, limit=None, role=None, since=None, **kwargs):
        return {"content": [person.member() for person in self.course.people.values()], "has_next": False}

    def get_context_by_id(self):
        from lti1p3platform.membership import Context
        return Context(id=self.course.context_id, label=self.course.context_id, title=self.course.title)


class Lms:
    """The platform's state and its tornado application."""

    def __init__(self, hub_url: str, port: int):
        self.port, self.base, self.hub_url = port, f"http://127.0.0.1:{port}", hub_url
        self.registrations: dict[str, LmsRegistration] = {}
        self.clicks: dict[str, dict] = {}
        self.issued_tokens: list[str] = []
        self.deep_link_responses: list[dict] = []
        self._ids = itertools.count(1)

    def add_registration(self, name: str, client_id: str) -> LmsRegistration:
        reg = LmsRegistration(name=name, base=self.base, hub_url=self.hub_url, client_id=client_id)
        self.registrations[name] = reg
        return reg

    def conf(self, reg: LmsRegistration) -> PlatformConf:
        return PlatformConf(registration=reg.registration())

    def click_url(self, reg: str, context_id: str, user_id: str, *, link: str = "", kind: str = "launch",
                  custom: dict | None = None, tamper: str = "") -> str:
        """The URL of a person's click in the LMS: a link (launch) or "add content" (deep link)."""
        hint = uuid.uuid4().hex
        self.clicks[hint] = {"context_id": context_id, "link": link or f"link-{next(self._ids)}", "kind": kind,
                             "custom": custom or {}, "tamper": tamper}
        return f"{self.base}/{reg}/click?" + urlencode({"hint": hint, "user": user_id})

    def app(self) -> web.Application:
        lms = self

        class Base(web.RequestHandler):
            def reg(self, name: str) -> LmsRegistration:
                if name not in lms.registrations:
                    raise web.HTTPError(404)
                return lms.registrations[name]

            def answer(self, response) -> None:
                self.set_status(response.code)
                if response.code >= 300 or response.result is None:
                    self.finish({"message": response.message})
                    return
                result = response.result
                if isinstance(result, dict) and "content" in result and "has_next" in result:
                    result = result["content"]  # a page: the body is the list (AGS), links in headers
                self.set_header("Content-Type", response.media_type)
                self.finish(json.dumps(result))

        class Click(Base):
            def get(self, name):
                reg = self.reg(name)
                login = OidcLogin(None, lms.conf(reg))
                login.set_lti_message_hint(hint=self.get_argument("hint"))
                self.redirect(login.initiate_login(self.get_argument("user")))

        class Authorize(Base):
            def get(self, name):
                reg = self.reg(name)
                launch = MessageLaunch(TornadoRequest(self.request), lms.conf(reg), lms, reg)
                try:
                    self.finish(launch.lti_launch())
                except Exception as error:  # the LMS's error page
                    self.set_status(400)
                    self.finish(f"launch refused: {error!r}")

        class Jwks(Base):
            def get(self, name):
                self.finish({"keys": self.reg(name).registration().get_jwks()})

        class Token(Base):
            def post(self, name):
                conf = lms.conf(self.reg(name))
                conf.get_registration()
                try:
                    self.finish(dict(conf.get_access_token(TornadoRequest(self.request).form_data)))
                except Exception as error:
                    self.set_status(400)
                    self.finish({"error": "invalid_client", "error_description": repr(error)})

        def course_of(handler, name, context_id) -> tuple[LmsRegistration, Course]:
            reg = handler.reg(name)
            if context_id not in reg.courses:
                raise web.HTTPError(404)
            return reg, reg.courses[context_id]

        class Memberships(Base):
            def get(self, name, context_id):
                reg, course = course_of(self, name, context_id)
                conf = lms.conf(reg)
                conf.get_registration()
                service = Nrps(TornadoRequest(self.request), conf, course, reg.url(f"contexts/{context_id}/memberships"))
                self.answer(service.handle_resp(service.handle_get_members))

        class LineItems(Base):
            def service(self, name, context_id):
                reg, course = course_of(self, name, context_id)
                conf = lms.conf(reg)
                conf.get_registration()
                return Ags(TornadoRequest(self.request), conf, course, reg.url(f"contexts/{context_id}/lineitems"))

            def get(self, name, context_id):
                service = self.service(name, context_id)
                self.answer(service.handle_resp(service.handle_get_lineitems))

            def post(self, name, context_id):
                service = self.service(name, context_id)
                self.answer(service.handle_resp(service.handle_create_lineitem))

        class OneLineItem(LineItems):
            def get(self, name, context_id, number):
                service = self.service(name, context_id)
                url = lms.registrations[name].url(f"contexts/{context_id}/lineitems/{number}")
                self.answer(service.handle_resp(service.handle_get_lineitem, line_item_id=url))

        class Scores(LineItems):
            def post(self, name, context_id, number):
                service = self.service(name, context_id)
                course = service.course
                if course.fail_next_score_posts:
                    course.fail_next_score_posts -= 1
                    self.set_status(503)
                    self.finish({"message": "try again later"})
                    return
                line_item = lms.registrations[name].url(f"contexts/{context_id}/lineitems/{number}")
                self.answer(service.handle_resp(service.handle_update_score, line_item_id=line_item))

        class DeepLinkReturn(Base):
            def post(self, name, context_id):
                reg, course = course_of(self, name, context_id)
                conf = lms.conf(reg)
                conf.get_registration()
                try:
                    items = conf.validate_deeplinking_resp(TornadoRequest(self.request).form_data)
                except Exception as error:
                    self.set_status(400)
                    self.finish({"error": repr(error)})
                    return
                created = []
                for item in items:
                    link_id = f"link-{next(lms._ids)}"
                    course.links[link_id] = item
                    if item.get("lineItem"):
                        url = reg.url(f"contexts/{context_id}/lineitems/{len(course.lineitems) + 1}")
                        course.lineitems[url] = {**item["lineItem"], "id": url, "resourceLinkId": link_id}
                    created.append(link_id)
                lms.deep_link_responses.append({"registration": name, "items": items, "links": created})
                self.finish({"links": created})

        return web.Application([
            (r"/(\w+)/click", Click), (r"/(\w+)/authorize", Authorize), (r"/(\w+)/jwks", Jwks),
            (r"/(\w+)/token", Token), (r"/(\w+)/contexts/([\w-]+)/memberships", Memberships),
            (r"/(\w+)/contexts/([\w-]+)/lineitems", LineItems),
            (r"/(\w+)/contexts/([\w-]+)/lineitems/(\d+)", OneLineItem),
            (r"/(\w+)/contexts/([\w-]+)/lineitems/(\d+)/scores", Scores),
            (r"/(\w+)/contexts/([\w-]+)/deep-link-return", DeepLinkReturn),
        ])


@dataclass
class RunningPlatform:
    lms: Lms
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    server: HTTPServer


def start_platform(hub_url: str, port: int | None = None) -> RunningPlatform:
    """Serve a new :class:`Lms` on ``127.0.0.1`` in a thread of its own; returns once it listens."""
    port = port or free_port()
    lms = Lms(hub_url, port)
    ready = threading.Event()
    holder: dict[str, t.Any] = {}

    def serve():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = HTTPServer(lms.app())
        server.listen(port, "127.0.0.1")
        holder.update(loop=loop, server=server)
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=serve, name="lti-platform", daemon=True)
    thread.start()
    assert ready.wait(30), "the LTI platform did not start"
    return RunningPlatform(lms=lms, thread=thread, loop=holder["loop"], server=holder["server"])


def stop_platform(platform: RunningPlatform) -> None:
    def shutdown():
        platform.server.stop()
        platform.loop.stop()
    platform.loop.call_soon_threadsafe(shutdown)
    platform.thread.join(30)
    assert not platform.thread.is_alive()


FORM_INPUT = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)"')
FORM_ACTION = re.compile(r'<form[^>]* action="([^"]+)"')


def form_fields(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of an auto-submitting form (a launch, a deep-linking answer)."""
    action = FORM_ACTION.search(page)
    assert action, page[:2000]
    return html.unescape(action.group(1)), {name: html.unescape(value) for name, value in FORM_INPUT.findall(page)}
