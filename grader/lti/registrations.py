"""LMS registrations (issuer, client id, deployments, endpoints) and the tool's signing key.

``auth.lti13`` of the platform YAML, checked beyond what the schema says; several registrations
side by side, each keyed by a short name the records and the command line use::

    auth:
      type: lti13
      lti13:
        username_claim: email          # or sub: the LMS's opaque user id
        registrations:
          moodle:
            issuer: https://moodle.example.org
            client_id: q8bU3sjFRW6mZ1K
            deployment_ids: ["3"]
            authorize_url: https://moodle.example.org/mod/lti/auth.php
            token_url: https://moodle.example.org/mod/lti/token.php
            jwks_url: https://moodle.example.org/mod/lti/certs.php
            course: ai101              # the hub course of this registration's launches
            contexts: {"42": ai102}    # or per LMS course (context id)

The tool's private key (RS256) signs deep-linking answers and the client assertions of the
Advantage services; it lives in ``<data_dir>/lti/tool_key.pem`` (made at the first start, 0600,
refused if others can read it). Its public half is served as a JWKS at ``/hub/lti13/jwks``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from jwcrypto.jwk import JWK

from grader import regular_files

USERNAME_CLAIMS = ("email", "sub")
DEFAULT_LTI13 = {"username_claim": "email", "registrations": {}}
KEY_FILE = "tool_key.pem"
ROSTER_TOKEN_FILE = "roster_token"


class RegistrationError(ValueError):
    """A registration the hub cannot use; the message names the key."""


@dataclass(frozen=True)
class Registration:
    """One LMS's registration of this hub as a tool."""

    name: str
    issuer: str
    client_id: str
    deployment_ids: tuple[str, ...]
    authorize_url: str
    token_url: str
    jwks_url: str
    course: str = ""
    contexts: tuple[tuple[str, str], ...] = ()
    # The audience of the client assertion at the token endpoint; "" is the token URL (LTI's rule).
    token_audience: str = ""

    def course_for(self, context_id: str, custom: Mapping[str, Any]) -> str:
        """The hub course of a launch: the link's custom ``course``, else the context's, else the registration's."""
        return str(custom.get("course") or dict(self.contexts).get(context_id) or self.course)


@dataclass(frozen=True)
class Lti13Settings:
    username_claim: str = DEFAULT_LTI13["username_claim"]
    registrations: tuple[Registration, ...] = ()
    # Seconds an id_token may be old (iat); also how long a nonce is remembered.
    max_age: int = 600
    # `grader autograde` and `grader feedback` end with `grader lti push` (grader.cli.lti_commands.push_after_grading).
    push_after_grading: bool = False

    def by_issuer(self, issuer: str, client_id: str = "") -> Registration | None:
        """The registration of ``issuer`` (and ``client_id`` when several share the issuer)."""
        found = [r for r in self.registrations if r.issuer == issuer and (not client_id or r.client_id == client_id)]
        return found[0] if len(found) == 1 else None

    def by_name(self, name: str) -> Registration:
        for registration in self.registrations:
            if registration.name == name:
                return registration
        raise RegistrationError(f"no LTI registration {name!r} (known: {', '.join(r.name for r in self.registrations)})")


def lti13_settings_from_config(auth: Mapping[str, Any], *, course_ids: set[str]) -> Lti13Settings:
    """``auth.lti13`` of the merged configuration; :class:`RegistrationError` names a wrong key."""
    entry = {**DEFAULT_LTI13, **(auth.get("lti13") or {})}
    if entry["username_claim"] not in USERNAME_CLAIMS:
        raise RegistrationError(f"auth.lti13.username_claim: {entry['username_claim']!r} is not one of "
                                f"{', '.join(USERNAME_CLAIMS)}")
    if not entry["registrations"]:
        raise RegistrationError("auth.lti13.registrations: add at least one LMS registration, or nobody can log in")
    registrations = []
    for name, reg in entry["registrations"].items():
        where = f"auth.lti13.registrations.{name}"
        for key in ("issuer", "client_id", "deployment_ids", "authorize_url", "token_url", "jwks_url"):
            if not reg.get(key):
                raise RegistrationError(f"{where}.{key}: required (the LMS shows it when the tool is added)")
        contexts = tuple((str(context), course) for context, course in (reg.get("contexts") or {}).items())
        for course in [reg.get("course", "")] + [course for _, course in contexts]:
            if course and course not in course_ids:
                raise RegistrationError(f"{where}: no course {course!r} on this hub "
                                        f"(known: {', '.join(sorted(course_ids)) or 'none'})")
        registrations.append(Registration(
            name=name, issuer=reg["issuer"], client_id=str(reg["client_id"]),
            deployment_ids=tuple(str(d) for d in reg["deployment_ids"]), authorize_url=reg["authorize_url"],
            token_url=reg["token_url"], jwks_url=reg["jwks_url"], course=reg.get("course", ""), contexts=contexts,
            token_audience=reg.get("token_audience", "")))
    pairs = [(r.issuer, r.client_id) for r in registrations]
    if len(set(pairs)) != len(pairs):
        raise RegistrationError("auth.lti13.registrations: two registrations have the same issuer and client_id")
    return Lti13Settings(username_claim=entry["username_claim"], registrations=tuple(registrations),
                         max_age=int(entry.get("max_age", 600)), push_after_grading=bool(entry.get("push_after_grading", False)))


# --- the tool's key --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolKey:
    private_pem: str = field(repr=False)
    public_pem: str

    @property
    def kid(self) -> str:
        return self.jwk()["kid"]

    def jwk(self) -> dict:
        key = JWK.from_pem(self.public_pem.encode())
        return {**key.export_public(as_dict=True), "alg": "RS256", "use": "sig"}

    def jwks(self) -> dict:
        return {"keys": [self.jwk()]}


def lti_dir(data_dir: Path) -> Path:
    path = Path(data_dir) / "lti"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_file(path: Path, make, what: str) -> bytes:
    """:func:`grader.regular_files.private_file`, its refusal a :class:`RegistrationError`."""
    try:
        return regular_files.private_file(path, make, what)
    except regular_files.PrivateFileError as error:
        raise RegistrationError(str(error)) from None


def tool_key(data_dir: Path) -> ToolKey:
    """The tool's RSA key from ``<data_dir>/lti/tool_key.pem``: made once (2048 bits, 0600)."""
    pem = private_file(lti_dir(data_dir) / KEY_FILE,
                       lambda: JWK.generate(kty="RSA", size=2048).export_to_pem(private_key=True, password=None),
                       "the LTI tool's private key")
    private = JWK.from_pem(pem)
    return ToolKey(private_pem=private.export_to_pem(private_key=True, password=None).decode(),
                   public_pem=private.export_to_pem().decode())


def roster_token(data_dir: Path) -> str:
    """The hub API token of the ``lti-roster`` service (``<data_dir>/lti/roster_token``, 0600), with
    which ``grader lti sync-roster`` edits the course groups."""
    return private_file(lti_dir(data_dir) / ROSTER_TOKEN_FILE, lambda: secrets.token_hex(32).encode(),
                        "the LTI roster service's hub token").decode().strip()


def pylti_registration(registration: Registration, key: ToolKey):
    """The registration as pylti1p3's ``Registration`` (service calls, deep-linking answers)."""
    from pylti1p3.registration import Registration as PyltiRegistration

    return (PyltiRegistration().set_issuer(registration.issuer).set_client_id(registration.client_id)
            .set_auth_login_url(registration.authorize_url).set_auth_token_url(registration.token_url)
            .set_key_set_url(registration.jwks_url).set_auth_audience(registration.token_audience or None)
            .set_tool_private_key(key.private_pem).set_tool_public_key(key.public_pem))
