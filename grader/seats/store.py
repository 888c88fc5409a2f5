"""The seats transactions: organisations, cohorts, assigning and revoking seats, access, metering.

Convention: every function that writes runs its own transaction on the session it is given and
commits it before returning (or rolls it back and raises); a transaction the caller left open
is committed first. Read functions only read. Write transactions on SQLite begin with
``BEGIN IMMEDIATE`` (the database's write lock) and on PostgreSQL lock the cohort's row with
``SELECT ... FOR UPDATE`` before counting its seats, so concurrent assignments queue and a
cohort is never oversold. Errors are :class:`SeatsError` with a message naming the problem.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Iterator, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grader.seats.db import WRITE_OPTION
from grader.seats.models import Cohort, LessonRun, OrgAdmin, Organisation, Seat, UsageRecord, utcnow

# Deliberately loose: enough to catch a name or a typo in a column, not RFC 5322.
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


class SeatsError(Exception):
    """A seats operation that cannot be done; the message says why, for people."""


class NoSeatsLeft(SeatsError):
    """The cohort's seats are all taken (invited or active)."""


class NotFound(SeatsError):
    """No organisation, cohort or seat with that id or name."""


@dataclass(frozen=True)
class Access:
    """May a user use the hub today, and with which profiles (the union of their open cohorts')."""

    allowed: bool
    # Why not, for the user to read; "" when allowed.
    reason: str
    # Whom to ask: the contact of the organisation the reason is about ("" when none).
    contact: str
    profiles: frozenset[str]
    cohort_ids: tuple[int, ...]
    # For code: "ok", "no-seat", "revoked", "not-started" or "ended".
    code: str = "ok"


def normalise_email(email: str) -> str:
    """An address as stored and compared: trimmed and lower-case; SeatsError when not one."""
    cleaned = email.strip().lower()
    if not _EMAIL.match(cleaned):
        raise SeatsError(f"{email!r} is not an e-mail address")
    return cleaned


@contextmanager
def write_transaction(session: Session) -> Iterator[Session]:
    """One write transaction on ``session``: committed when the block ends, rolled back on error."""
    if session.in_transaction():
        session.commit()
    # The option makes the SQLite engine say BEGIN IMMEDIATE (grader.seats.db); PostgreSQL ignores it.
    session.connection(execution_options={WRITE_OPTION: True})
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise


def lock_cohort(session: Session, *, cohort_id: int) -> Cohort:
    """The cohort, its row locked until the transaction ends (FOR UPDATE; SQLite's lock is BEGIN IMMEDIATE)."""
    cohort = session.scalars(select(Cohort).where(Cohort.id == cohort_id).with_for_update()).one_or_none()
    if cohort is None:
        raise NotFound(f"no cohort with id {cohort_id}")
    return cohort


def moment(now: datetime | None) -> datetime:
    """``now`` as an aware UTC time (a naive one is taken as UTC); None: the current time."""
    if now is None:
        return utcnow()
    return now.replace(tzinfo=timezone.utc) if now.tzinfo is None else now.astimezone(timezone.utc)


def _live_seat_count(session: Session, cohort_id: int) -> int:
    return session.scalar(select(func.count()).select_from(Seat)
                          .where(Seat.cohort_id == cohort_id, Seat.state != "revoked"))


def get_organisation(session: Session, *, organisation_id: int) -> Organisation:
    organisation = session.get(Organisation, organisation_id)
    if organisation is None:
        raise NotFound(f"no organisation with id {organisation_id}")
    return organisation


def find_organisation(session: Session, *, name: str) -> Organisation:
    """The organisation called ``name``, or the one whose id ``name`` is (the CLI accepts both)."""
    organisation = session.scalars(select(Organisation).where(Organisation.name == name)).one_or_none()
    if organisation is None and name.isdigit():
        organisation = session.get(Organisation, int(name))
    if organisation is None:
        raise NotFound(f"no organisation {name!r}")
    return organisation


def get_cohort(session: Session, *, cohort_id: int) -> Cohort:
    cohort = session.get(Cohort, cohort_id)
    if cohort is None:
        raise NotFound(f"no cohort with id {cohort_id}")
    return cohort


def create_organisation(session: Session, *, name: str, contact_email: str) -> Organisation:
    name = name.strip()
    if not name:
        raise SeatsError("an organisation needs a name")
    contact = normalise_email(contact_email)
    with write_transaction(session):
        if session.scalars(select(Organisation).where(Organisation.name == name)).first() is not None:
            raise SeatsError(f"an organisation called {name!r} already exists")
        organisation = Organisation(name=name, contact_email=contact)
        session.add(organisation)
        session.flush()
    return organisation


def add_org_admin(session: Session, *, organisation_id: int, username: str) -> None:
    """Make ``username`` a cohort admin of the organisation (nothing changes if already one)."""
    with write_transaction(session):
        get_organisation(session, organisation_id=organisation_id)
        if session.get(OrgAdmin, (organisation_id, username)) is None:
            session.add(OrgAdmin(organisation_id=organisation_id, username=username))


def create_cohort(session: Session, *, organisation_id: int, name: str, course_id: str, starts_on: date,
                  ends_on: date, seat_limit: int, profiles: Sequence[str]) -> Cohort:
    if ends_on < starts_on:
        raise SeatsError(f"cohort {name!r} ends ({ends_on}) before it starts ({starts_on})")
    if seat_limit < 0:
        raise SeatsError(f"cohort {name!r}: seat limit {seat_limit} is negative")
    slugs = list(dict.fromkeys(p.strip() for p in profiles if p.strip()))
    if not slugs:
        raise SeatsError(f"cohort {name!r} includes no server profile (e.g. cpu)")
    with write_transaction(session):
        get_organisation(session, organisation_id=organisation_id)
        cohort = Cohort(organisation_id=organisation_id, name=name, course_id=course_id, starts_on=starts_on,
                        ends_on=ends_on, seat_limit=seat_limit, profiles=slugs)
        session.add(cohort)
        session.flush()
    return cohort


def seats_left(session: Session, *, cohort_id: int) -> int:
    """Seats still free: the limit minus the invited and active seats."""
    cohort = get_cohort(session, cohort_id=cohort_id)
    return cohort.seat_limit - _live_seat_count(session, cohort_id)


def live_seat_of(session: Session, *, cohort_id: int, username: str | None = None,
                 email: str | None = None) -> Seat | None:
    """The invited or active seat of that user (or address) in the cohort, if any."""
    holder = Seat.username == username if username is not None else Seat.email == email
    return session.scalars(select(Seat).where(Seat.cohort_id == cohort_id, Seat.state != "revoked", holder)).first()


def seat_holders_taken(session: Session, *, cohort: Cohort, username: str | None,
                       email: str | None) -> list[tuple[str, Seat]]:
    """("user 'x'" or "'a@b.c'", their live seat) for each of the holders that already has one."""
    taken = []
    if username is not None and (seat := live_seat_of(session, cohort_id=cohort.id, username=username)):
        taken.append((f"user {username!r}", seat))
    if email is not None and (seat := live_seat_of(session, cohort_id=cohort.id, email=email)):
        taken.append((f"{email!r}", seat))
    return taken


def add_seat_locked(session: Session, cohort: Cohort, *, username: str | None = None, email: str | None = None,
                    now: datetime | None = None) -> Seat:
    """Add one seat inside a transaction that holds :func:`lock_cohort`; for :func:`assign_seat` and bulk imports.

    With a user name the seat is active at once (an e-mail given too is kept for reference);
    with only an e-mail address it is an invitation.
    """
    now = moment(now)
    for who, existing in seat_holders_taken(session, cohort=cohort, username=username, email=email):
        raise SeatsError(f"{who} already has a seat in cohort {cohort.name!r} (seat {existing.id}, {existing.state})")
    if _live_seat_count(session, cohort.id) >= cohort.seat_limit:
        raise NoSeatsLeft(f"cohort {cohort.name!r} has no seats left (all {cohort.seat_limit} are taken)")
    seat = Seat(cohort_id=cohort.id, username=username, email=email, invited_at=now,
                state="active" if username is not None else "invited",
                activated_at=now if username is not None else None)
    session.add(seat)
    try:
        session.flush()
    except IntegrityError as error:
        # Only reachable if a writer bypassed the cohort lock; the unique index still holds.
        raise SeatsError(f"{username or email!r} already has a seat in cohort {cohort.name!r}") from error
    return seat


def _holder(username: str | None, email: str | None) -> tuple[str | None, str | None]:
    if (username is None) == (email is None):
        raise SeatsError("a seat is assigned to a user name or to an e-mail address (exactly one)")
    if username is not None:
        username = username.strip()
        if not username:
            raise SeatsError("empty user name")
        return username, None
    return None, normalise_email(email)


def assign_seat(session: Session, *, cohort_id: int, username: str | None = None, email: str | None = None,
                now: datetime | None = None) -> Seat:
    """Give a seat: to a hub user (active at once) or to an e-mail address (invited until claimed).

    Raises NoSeatsLeft when the cohort is full, SeatsError when the holder already has one.
    """
    username, email = _holder(username, email)
    with write_transaction(session):
        cohort = lock_cohort(session, cohort_id=cohort_id)
        seat = add_seat_locked(session, cohort, username=username, email=email, now=now)
    return seat


def revoke_seat(session: Session, *, seat_id: int, now: datetime | None = None) -> Seat:
    """Take a seat back; it stays as history and frees its place in the cohort."""
    with write_transaction(session):
        seat = session.scalars(select(Seat).where(Seat.id == seat_id).with_for_update()).one_or_none()
        if seat is None:
            raise NotFound(f"no seat with id {seat_id}")
        if seat.state == "revoked":
            raise SeatsError(f"seat {seat_id} is already revoked (since {seat.revoked_at:%Y-%m-%d %H:%M} UTC)")
        seat.state = "revoked"
        seat.revoked_at = moment(now)
    return seat


def claim_invitations(session: Session, *, username: str, email: str, now: datetime | None = None) -> list[Seat]:
    """Turn the invitations sent to ``email`` into active seats of ``username`` (e.g. at login).

    An invitation to a cohort where the user already holds a seat is revoked instead: it would
    otherwise keep a second place of the cohort taken.
    """
    now = moment(now)
    try:
        address = normalise_email(email)
    except SeatsError:
        return []
    claimed = []
    with write_transaction(session):
        invited = session.scalars(select(Seat).where(Seat.email == address, Seat.state == "invited")
                                  .order_by(Seat.id).with_for_update()).all()
        for seat in invited:
            if live_seat_of(session, cohort_id=seat.cohort_id, username=username) is not None:
                seat.state, seat.revoked_at = "revoked", now
                continue
            seat.state, seat.username, seat.activated_at = "active", username, now
            claimed.append(seat)
            session.flush()
    return claimed


def access_for(session: Session, *, username: str, today: date) -> Access:
    """Whether ``username`` may use the hub ``today``: only with an active seat in an open cohort."""
    seats = session.scalars(select(Seat).join(Cohort).where(Seat.username == username)
                            .order_by(Cohort.starts_on, Seat.id)).all()
    open_seats = [s for s in seats if s.state == "active" and s.cohort.is_open(today)]
    if open_seats:
        return Access(allowed=True, reason="", contact=open_seats[0].cohort.organisation.contact_email,
                      profiles=frozenset(p for s in open_seats for p in s.cohort.profiles),
                      cohort_ids=tuple(sorted({s.cohort_id for s in open_seats})))

    def refused(seat: Seat, code: str, reason: str) -> Access:
        organisation = seat.cohort.organisation
        return Access(allowed=False, reason=f"{reason}; ask {organisation.name} ({organisation.contact_email})",
                      contact=organisation.contact_email, profiles=frozenset(), cohort_ids=(), code=code)

    # The most hopeful reason first: a seat that opens soon, then one that ended, then a revoked one.
    upcoming = [s for s in seats if s.state == "active" and s.cohort.starts_on > today]
    if upcoming:
        seat = upcoming[0]
        return refused(seat, "not-started", f"your seat in cohort {seat.cohort.name!r} opens on {seat.cohort.starts_on}")
    ended = sorted((s for s in seats if s.state == "active"), key=lambda s: s.cohort.ends_on)
    if ended:
        seat = ended[-1]
        return refused(seat, "ended", f"cohort {seat.cohort.name!r} ended on {seat.cohort.ends_on}")
    revoked = sorted((s for s in seats if s.state == "revoked"), key=lambda s: s.revoked_at)
    if revoked:
        seat = revoked[-1]
        return refused(seat, "revoked", f"your seat in cohort {seat.cohort.name!r} was revoked on {seat.revoked_at:%Y-%m-%d}")
    return Access(allowed=False, reason="you have no seat in any cohort; ask your organisation's cohort admin for one",
                  contact="", profiles=frozenset(), cohort_ids=(), code="no-seat")


def organisations_administered_by(session: Session, *, username: str) -> list[Organisation]:
    return list(session.scalars(select(Organisation).join(OrgAdmin, OrgAdmin.organisation_id == Organisation.id)
                                .where(OrgAdmin.username == username).order_by(Organisation.name)))


def organisations(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.name)))


def cohorts_of(session: Session, *, organisation_id: int) -> list[Cohort]:
    return list(session.scalars(select(Cohort).where(Cohort.organisation_id == organisation_id)
                                .order_by(Cohort.starts_on, Cohort.id)))


def seats_of(session: Session, *, cohort_id: int) -> list[Seat]:
    return list(session.scalars(select(Seat).where(Seat.cohort_id == cohort_id).order_by(Seat.id)))


def _metered_cohort(session: Session, *, username: str, profile: str, today: date) -> int | None:
    # The first open cohort of the user that includes the profile pays for the run.
    for cohort_id in access_for(session, username=username, today=today).cohort_ids:
        if profile in session.get(Cohort, cohort_id).profiles:
            return cohort_id
    return None


def record_server_start(session: Session, *, username: str, profile: str, gpus: int, cohort_id: int | None = None,
                        now: datetime | None = None) -> UsageRecord:
    """Open a usage record for a server that started; ``cohort_id`` None: the user's open cohort with
    that profile, if any. A record left open by a missed stop is closed at ``now``."""
    now = moment(now)
    with write_transaction(session):
        for record in _open_records(session, username):
            record.stopped_at = now
        if cohort_id is None:
            cohort_id = _metered_cohort(session, username=username, profile=profile, today=now.date())
        record = UsageRecord(username=username, cohort_id=cohort_id, profile=profile, gpus=gpus, started_at=now)
        session.add(record)
        session.flush()
    return record


def _open_records(session: Session, username: str) -> list[UsageRecord]:
    return list(session.scalars(select(UsageRecord).where(UsageRecord.username == username,
                                                          UsageRecord.stopped_at.is_(None))
                                .order_by(UsageRecord.started_at).with_for_update()))


def record_server_stop(session: Session, *, username: str, now: datetime | None = None) -> UsageRecord | None:
    """Close the user's open usage record; None when there was none (e.g. a stop already recorded)."""
    now = moment(now)
    with write_transaction(session):
        records = _open_records(session, username)
        for record in records:
            record.stopped_at = max(now, record.started_at)
    return records[-1] if records else None


# --- lessons run (reported by learners' servers, grader.seats.lesson_reports) ---

MAX_LESSON_PATH = 500


def normalise_lesson(path: object) -> str:
    """A lesson as stored: a notebook's relative path under ``~/courses`` in ``/`` form; SeatsError
    when it is not one (absolute, leaving the folder, not a notebook, a checkpoint, too long)."""
    if not isinstance(path, str):
        raise SeatsError("lesson must be a string: the notebook's path under ~/courses")
    parts = [part for part in path.replace("\\", "/").split("/") if part not in ("", ".")]
    lesson = "/".join(parts)
    if (not parts or path.startswith(("/", "\\")) or ".." in parts or ".ipynb_checkpoints" in parts
            or not lesson.endswith(".ipynb") or len(lesson) > MAX_LESSON_PATH
            or any(ord(ch) < 32 for ch in lesson)):
        raise SeatsError(f"lesson {path[:100]!r}: expected a notebook's path under ~/courses, "
                         "e.g. 01_python/01_basics.ipynb")
    return lesson


def record_lesson_run(session: Session, *, username: str, lesson: str, now: datetime | None = None) -> LessonRun:
    """Note that ``username`` ran ``lesson`` (again): its first and latest run."""
    now = moment(now)
    lesson = normalise_lesson(lesson)
    for attempt in (1, 2):
        try:
            with write_transaction(session):
                run = session.get(LessonRun, (username, lesson), with_for_update=True)
                if run is None:
                    run = LessonRun(username=username, lesson=lesson, first_run_at=now, last_run_at=now)
                    session.add(run)
                else:
                    run.last_run_at = max(now, run.last_run_at)
                session.flush()
            return run
        except IntegrityError:
            # Two first reports at once (PostgreSQL): the other one inserted it; update that row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def lessons_run_by(session: Session, *, usernames: Sequence[str]) -> dict[str, int]:
    """How many lessons each of ``usernames`` ran (0 for none)."""
    names = list(dict.fromkeys(usernames))
    counts = dict.fromkeys(names, 0)
    for start in range(0, len(names), 500):  # keep IN lists short
        chunk = names[start:start + 500]
        for username, count in session.execute(select(LessonRun.username, func.count()).where(
                LessonRun.username.in_(chunk)).group_by(LessonRun.username)):
            counts[username] = count
    return counts
