"""The hub side of seats: who may log in and start a server, with which profiles, and metering.

One :class:`SeatEnforcement` lives in the hub process (built by :mod:`grader.hub.services.seats`):

- :meth:`SeatEnforcement.post_auth_hook` runs after a password (or OIDC) login succeeded. It first
  turns invitations sent to the user's e-mail into active seats, then refuses the login with a
  403 whose message says why and whom to contact. JupyterHub shows that message on its login form
  (``LoginHandler.render_template`` puts a plain ``HTTPError``'s message into ``login_error``).
- As the :class:`grader.hub.spawn.profiles.SpawnPolicy` of the spawn form it refuses a server start
  (checked at every start, so a revoked seat stops new servers at once, even for someone holding a
  valid login cookie or API token), narrows the profiles to those the user's open cohorts include,
  and records each start and stop as a usage record. A refused start raises JupyterHub's
  ``SpawnException`` (reason ``seat``, status 403): the hub shows its message as it is, logs one
  line without a traceback, and counts it in ``jupyterhub_server_spawn_duration_seconds`` as
  ``status="failure", reason="seat"``, apart from the spawner's errors.

The database is never asked on the hub's event loop: every decision and every usage record runs in
a small thread pool of its own (:meth:`SeatEnforcement.run`), so a slow or locked seats database
delays only the logins and starts that wait for it, not every other request to the hub. A decision
(staff or not, then the seat) is one session, one transaction: a login or a server start asks once.

Metering is done here, in the hub's own spawn hooks, rather than by polling the hub API: the hub
knows the exact moment and profile of each start and stop, a poll would miss servers that live
shorter than its period and round every run to it. The seats service's sweep
(:mod:`grader.seats.sweep`) closes records a crashed hub left open.

Staff (hub admins, instructors and graders of any course, cohort admins) need no seat while
``staff_bypass`` is on; their runs are still metered, billed to no cohort.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from typing import Callable, Iterable, TypeVar

from jupyterhub.spawner import SpawnException
from sqlalchemy.orm import Session, sessionmaker
from tornado import web

from grader.seats.models import utc_today
from grader.seats.store import (
    Access,
    access_for,
    claim_invitations,
    organisations_administered_by,
    record_server_start,
    record_server_stop,
)

T = TypeVar("T")
# The ``reason`` label of a refused start in the hub's spawn metrics (and in its log line).
SEAT_REASON = "seat"
# Threads asking the seats database for the hub; more logins than this at once wait their turn
# (on the pool's queue, not on the event loop). SQLAlchemy's pool holds 5 + 10 connections.
DB_THREADS = 4


def refusal_message(access: Access, *, fallback_contact: str = "") -> str:
    """What a refused user reads on the login form or the spawn page."""
    message = f"You cannot use this hub now: {access.reason}."
    if not access.contact and fallback_contact:
        message += f" Contact: {fallback_contact}."
    return message


def login_refusal(message: str) -> web.HTTPError:
    """A refused login: a 403 whose message JupyterHub's login form shows as it is (the form's
    ``login_error`` is the error's message), logged by tornado as one warning line."""
    return web.HTTPError(403, message)


def start_refusal(message: str, *, reason: str = SEAT_REASON, status_code: int = 403) -> SpawnException:
    """A refused server start, as JupyterHub 6 wants spawn policies to say it: the message is shown
    to the user (spawn page, progress page, REST API), ``reason`` labels the spawn metrics."""
    return SpawnException(message, reason=reason, status_code=status_code)


def is_course_staff(groups: Iterable[str]) -> bool:
    """An instructor or grader of some course: in a ``formgrade-<course>`` group (nbgrader's name)."""
    return any(name.startswith("formgrade-") for name in groups)


@dataclass(frozen=True)
class Decision:
    """What one look at the seats database said about one user."""

    # Staff need no seat and are not narrowed to any cohort's profiles.
    staff: bool
    # None for staff.
    access: Access | None = None

    @property
    def allowed(self) -> bool:
        return self.staff or bool(self.access and self.access.allowed)

    @property
    def profiles(self) -> frozenset[str] | None:
        """Slugs the user may pick; None: no limit beyond their groups."""
        return None if self.staff or self.access is None else self.access.profiles


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
    _executor: ThreadPoolExecutor | None = field(default=None, init=False, repr=False, compare=False)
    _executor_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __deepcopy__(self, memo) -> SeatEnforcement:
        # traitlets deep-copies config values (the hooks are bound methods of this object): the
        # copies must share this one database engine, which cannot be copied anyway.
        return self

    # --- off the event loop ---

    async def run(self, function: Callable[..., T], /, *args, **kwargs) -> T:
        """``function(*args, **kwargs)`` in the seats threads: the event loop goes on meanwhile."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="seats-db")
        return await asyncio.get_running_loop().run_in_executor(self._executor, partial(function, *args, **kwargs))

    def close(self) -> None:
        """Stop the threads (tests; a hub keeps them for its life)."""
        with self._executor_lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None

    # --- decisions (blocking: call them through run() from the hub) ---

    def _is_staff(self, session: Session, *, username: str, admin: bool, groups: Iterable[str]) -> bool:
        if not self.staff_bypass:
            return False
        if admin or username in self.staff_names or is_course_staff(groups):
            return True
        # Cohort admins named only in the seats database (grader seats org admin ...).
        return bool(organisations_administered_by(session, username=username))

    def _decide_in(self, session: Session, *, username: str, admin: bool, groups: Iterable[str]) -> Decision:
        if self._is_staff(session, username=username, admin=admin, groups=groups):
            return Decision(staff=True)
        return Decision(staff=False, access=access_for(session, username=username, today=self.today()))

    def decide(self, *, username: str, admin: bool = False, groups: Iterable[str] = ()) -> Decision:
        """Staff, or the user's seat today: one session of the seats database."""
        with self.sessions() as session:
            return self._decide_in(session, username=username, admin=admin, groups=tuple(groups))

    def _login_decision(self, *, username: str, email: str | None, admin: bool,
                        groups: tuple[str, ...]) -> tuple[list, Decision]:
        """Claim the invitations sent to ``email``, then decide: one session."""
        with self.sessions() as session:
            claimed = claim_invitations(session, username=username, email=email) if email else []
            claimed = [(seat.id, seat.cohort_id) for seat in claimed]
            return claimed, self._decide_in(session, username=username, admin=admin, groups=groups)

    # --- JupyterHub's Authenticator.post_auth_hook ---

    async def post_auth_hook(self, authenticator, handler, authentication: dict) -> dict:
        username = authentication["name"]
        email = _email_of(authentication)
        # The hub's own database is read here, on the event loop, as JupyterHub requires.
        user = handler.find_user(username) if handler is not None else None
        groups = tuple(group.name for group in user.groups) if user is not None else ()
        admin = bool(authentication.get("admin")) or bool(user is not None and user.admin)
        claimed, decision = await self.run(self._login_decision, username=username, email=email, admin=admin,
                                           groups=groups)
        for seat_id, cohort_id in claimed:
            authenticator.log.info("seats: %s claimed seat %s (cohort %s) sent to %s", username, seat_id,
                                   cohort_id, email)
        if not decision.allowed:
            authenticator.log.warning("seats: login of %s refused (%s)", username, decision.access.code)
            raise login_refusal(refusal_message(decision.access, fallback_contact=self.contact))
        return authentication

    # --- grader.hub.spawn.profiles.SpawnPolicy ---

    async def profiles_for(self, spawner) -> frozenset[str] | None:
        user = spawner.user
        decision = await self.run(self.decide, username=user.name, admin=bool(user.admin),
                                  groups=tuple(g.name for g in user.groups))
        if not decision.allowed:
            # JupyterHub logs the refusal itself ("Not starting ...'s server: ..."), without a traceback.
            raise start_refusal(refusal_message(decision.access, fallback_contact=self.contact),
                                reason=SEAT_REASON, status_code=403)
        return decision.profiles

    def _record_start(self, username: str, profile: str, gpus: int) -> None:
        with self.sessions() as session:
            record_server_start(session, username=username, profile=profile, gpus=gpus)

    def _record_stop(self, username: str) -> None:
        with self.sessions() as session:
            record_server_stop(session, username=username)

    async def started(self, spawner, profile: str, gpus: int) -> None:
        await self.run(self._record_start, spawner.user.name, profile, gpus)

    async def stopped(self, spawner) -> None:
        await self.run(self._record_stop, spawner.user.name)


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
