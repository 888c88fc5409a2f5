"""The hub side of seats: who may log in and start a server, with which profiles, and metering.

One :class:`SeatEnforcement` lives in the hub process (built by :mod:`grader.hub.services.seats`):

- :meth:`SeatEnforcement.post_auth_hook` runs after a password (or OIDC) login succeeded. It first
  turns invitations sent to the user's e-mail into active seats, then refuses the login with a
  403 whose message says why and whom to contact. JupyterHub shows that message on its login form
  (``LoginHandler.render_template`` puts an ``HTTPError``'s message into ``login_error``).
- As the :class:`grader.hub.spawn.profiles.SpawnPolicy` of the spawn form it refuses a server start
  (checked at every start, so a revoked seat stops new servers at once, even for someone holding a
  valid login cookie or API token), narrows the profiles to those the user's open cohorts include,
  and records each start and stop as a usage record.

Metering is done here, in the hub's own spawn hooks, rather than by polling the hub API: the hub
knows the exact moment and profile of each start and stop, a poll would miss servers that live
shorter than its period and round every run to it. The seats service's sweep
(:mod:`grader.seats.sweep`) closes records a crashed hub left open.

Staff (hub admins, instructors and graders of any course, cohort admins) need no seat while
``staff_bypass`` is on; their runs are still metered, billed to no cohort.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Callable, Iterable

from sqlalchemy.orm import sessionmaker
from tornado import web

from grader.seats.store import (
    Access,
    access_for,
    claim_invitations,
    organisations_administered_by,
    record_server_start,
    record_server_stop,
)


def utc_today() -> date:
    """The calendar day cohorts are opened and closed by: UTC, as the usage records are."""
    return datetime.now(timezone.utc).date()


def refusal_message(access: Access, *, fallback_contact: str = "") -> str:
    """What a refused user reads on the login form or the spawn page."""
    message = f"You cannot use this hub now: {access.reason}."
    if not access.contact and fallback_contact:
        message += f" Contact: {fallback_contact}."
    return message


def refusal(message: str) -> web.HTTPError:
    """A 403 whose message JupyterHub shows as it is: on the login form, the spawn page and in API
    errors. ``jupyterhub_message`` keeps the hub from replacing it with its generic "Failed to start
    your server" text, which it does for any error raised while a server starts."""
    error = web.HTTPError(403, message)
    error.jupyterhub_message = message
    return error


def is_course_staff(groups: Iterable[str]) -> bool:
    """An instructor or grader of some course: in a ``formgrade-<course>`` group (nbgrader's name)."""
    return any(name.startswith("formgrade-") for name in groups)


@dataclass
class SeatEnforcement:
    """Seat checks and metering for one hub; ``sessions`` opens the seats database."""

    sessions: sessionmaker
    # Accounts the settings name as staff (admins, cohort admins, instructors, graders).
    staff_names: frozenset[str] = frozenset()
    staff_bypass: bool = True
    # Shown when the refused user belongs to no organisation.
    contact: str = ""
    today: Callable[[], date] = utc_today

    def __deepcopy__(self, memo) -> SeatEnforcement:
        # traitlets deep-copies config values (the hooks are bound methods of this object): the
        # copies must share this one database engine, which cannot be copied anyway.
        return self

    # --- decisions ---

    def is_staff(self, *, username: str, admin: bool = False, groups: Iterable[str] = ()) -> bool:
        if not self.staff_bypass:
            return False
        if admin or username in self.staff_names or is_course_staff(groups):
            return True
        # Cohort admins named only in the seats database (grader seats org admin ...).
        with self.sessions() as session:
            return bool(organisations_administered_by(session, username=username))

    def access(self, username: str) -> Access:
        with self.sessions() as session:
            return access_for(session, username=username, today=self.today())

    def refuse_unless_allowed(self, access: Access) -> None:
        if not access.allowed:
            raise refusal(refusal_message(access, fallback_contact=self.contact))

    # --- JupyterHub's Authenticator.post_auth_hook ---

    def post_auth_hook(self, authenticator, handler, authentication: dict) -> dict:
        username = authentication["name"]
        email = _email_of(authentication)
        if email:
            with self.sessions() as session:
                claimed = claim_invitations(session, username=username, email=email)
            for seat in claimed:
                authenticator.log.info("seats: %s claimed seat %s (cohort %s) sent to %s", username, seat.id,
                                       seat.cohort_id, email)
        user = handler.find_user(username) if handler is not None else None
        groups = [group.name for group in user.groups] if user is not None else []
        admin = bool(authentication.get("admin")) or bool(user is not None and user.admin)
        if self.is_staff(username=username, admin=admin, groups=groups):
            return authentication
        access = self.access(username)
        if not access.allowed:
            authenticator.log.warning("seats: login of %s refused (%s)", username, access.code)
        self.refuse_unless_allowed(access)
        return authentication

    # --- grader.hub.spawn.profiles.SpawnPolicy ---

    def profiles_for(self, spawner) -> frozenset[str] | None:
        user = spawner.user
        if self.is_staff(username=user.name, admin=user.admin, groups=[g.name for g in user.groups]):
            return None
        access = self.access(user.name)
        if not access.allowed:
            spawner.log.warning("seats: server start of %s refused (%s)", user.name, access.code)
        self.refuse_unless_allowed(access)
        return access.profiles

    def started(self, spawner, profile: str, gpus: int) -> None:
        with self.sessions() as session:
            record_server_start(session, username=spawner.user.name, profile=profile, gpus=gpus)

    def stopped(self, spawner) -> None:
        with self.sessions() as session:
            record_server_stop(session, username=spawner.user.name)


def _email_of(authentication: dict) -> str | None:
    """The user's e-mail address: from the identity provider (OIDC's ``email`` claim, unless it says
    the address is unverified: anyone could then claim anyone's invitation), or the login name
    itself when accounts are named by address (an admin created them)."""
    auth_state = authentication.get("auth_state") or {}
    for claims in (authentication.get("user_info") or {}, auth_state.get("oauth_user") or {}):
        email = claims.get("email")
        if isinstance(email, str) and "@" in email and claims.get("email_verified", True) is not False:
            return email
    name = authentication["name"]
    return name if "@" in name else None
