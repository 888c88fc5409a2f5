"""What every request to the seats service shares: who is asking, what they may see, the database.

People are identified by the hub (``HubOAuthenticated``: the hub's OAuth login for pages, an API
token in the ``Authorization`` header for scripts). Reading needs the custom scope
``custom:seats:read`` and changing anything ``custom:seats:write``. A hub admin sees every
organisation; anyone else only those the seats database lists them as admin of (``OrgAdmin``).
An object of another organisation answers 404, as if it did not exist, so ids reveal nothing.

Forms are protected against cross-site requests by the hub's own rule for services: a login
cookie counts on a POST only with a valid ``_xsrf`` (form field or ``X-XSRFToken`` header);
without one the request is anonymous and refused. An API token needs none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable

from jupyterhub.services.auth import HubOAuthenticated
from sqlalchemy.orm import Session, sessionmaker
from tornado import web

from grader.seats.enforcement import utc_today
from grader.seats.models import Cohort, Organisation, Seat
from grader.seats.store import organisations, organisations_administered_by

SEATS_READ = "custom:seats:read"
SEATS_WRITE = "custom:seats:write"
# Ids in URLs are at most this (PostgreSQL's integer); larger ones are simply not found.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class ServiceContext:
    """What the service was started with (see :func:`grader.seats.service.main`)."""

    sessions: sessionmaker
    prefix: str = "/services/seats/"
    # The hub's own pages (home, logout), for the header's links.
    hub_prefix: str = "/hub/"
    # course id -> nbgrader course directory, for learners' scores in the reports.
    course_dirs: dict[str, Path] = field(default_factory=dict)
    today: Callable[[], date] = utc_today


def parse_id(text: str) -> int:
    """A path id: digits only (the routes ensure it), not beyond ``MAX_ID``; 404 otherwise."""
    value = int(text)
    if value > MAX_ID:
        raise web.HTTPError(404, f"no object with id {text}")
    return value


class SeatsBaseHandler(HubOAuthenticated, web.RequestHandler):
    """The user, their scopes and their organisations; subclasses answer in JSON or HTML."""

    def initialize(self, context: ServiceContext) -> None:
        self.context = context

    # --- who ---

    def user_or_fail(self) -> dict:
        """The hub's model of the caller; raises 403 when nobody (or nobody allowed) is logged in."""
        user = self.current_user
        if not user:
            raise web.HTTPError(403, "log in through the hub, or send a hub API token")
        return user

    def require(self, scope: str) -> dict:
        user = self.user_or_fail()
        if scope not in set(user.get("scopes", ())):
            raise web.HTTPError(403, f"{user['name']} lacks the scope {scope}")
        return user

    # --- what they may see ---

    def visible_organisations(self, session: Session, user: dict) -> list[Organisation]:
        if user.get("admin"):
            return organisations(session)
        return organisations_administered_by(session, username=user["name"])

    def _visible_ids(self, session: Session, user: dict) -> set[int] | None:
        return None if user.get("admin") else {o.id for o in organisations_administered_by(session, username=user["name"])}

    def organisation_or_404(self, session: Session, user: dict, organisation_id: int) -> Organisation:
        organisation = session.get(Organisation, organisation_id)
        visible = self._visible_ids(session, user)
        if organisation is None or (visible is not None and organisation.id not in visible):
            raise web.HTTPError(404, f"no organisation with id {organisation_id}")
        return organisation

    def cohort_or_404(self, session: Session, user: dict, cohort_id: int) -> Cohort:
        cohort = session.get(Cohort, cohort_id)
        visible = self._visible_ids(session, user)
        if cohort is None or (visible is not None and cohort.organisation_id not in visible):
            raise web.HTTPError(404, f"no cohort with id {cohort_id}")
        return cohort

    def seat_or_404(self, session: Session, user: dict, seat_id: int, *, cohort_id: int | None = None) -> Seat:
        seat = session.get(Seat, seat_id)
        if seat is None or (cohort_id is not None and seat.cohort_id != cohort_id):
            raise web.HTTPError(404, f"no seat with id {seat_id}")
        self.cohort_or_404(session, user, seat.cohort_id)
        return seat
