"""What a cohort used and what an organisation owes: usage rows per learner, invoice lines per month.

Server hours come from the usage records billed to the cohort (a running server counts up to
``now``); GPU hours are GPUs times hours. Lessons run are in the seats database too, as learners'
servers report them (:mod:`grader.seats.lesson_reports`, :func:`recorded_progress`); assignment
scores are not: the caller passes them in as :class:`LearnerProgress` (the seats service reads them
from the courses' nbgrader gradebooks). Both reports can be written as CSV.
"""

from __future__ import annotations

import calendar
import csv
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import IO, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.seats import store
from grader.seats.models import Seat, UsageRecord

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class LearnerProgress:
    """How far a learner got: lessons run and score per assignment id."""

    lessons_run: int = 0
    scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class UsageRow:
    """One learner of a cohort (an invitation not yet claimed has no username)."""

    username: str | None
    email: str | None
    state: str
    server_hours: float
    gpu_hours: float
    lessons_run: int
    scores: Mapping[str, float]


@dataclass(frozen=True)
class UsageSummary:
    seats_active: int
    seats_invited: int
    # Learners with an active seat who ran a server or a lesson.
    active_learners: int
    server_hours: float
    gpu_hours: float
    lessons_run: int


@dataclass(frozen=True)
class InvoiceLine:
    """What one cohort of an organisation used in one month."""

    organisation: str
    month: str
    cohort_id: int
    cohort: str
    course_id: str
    # Days a seat was held (invited or active, not revoked) within the month and the cohort's dates.
    seat_days: int
    gpu_hours: float
    server_hours: float


def _hours(record: UsageRecord, *, start: datetime, end: datetime, now: datetime) -> float:
    """Hours of the record's run that fall between ``start`` and ``end``."""
    stopped = record.stopped_at or now
    overlap = min(stopped, end) - max(record.started_at, start)
    return max(overlap / HOUR, 0.0)


_EVER = (datetime.min.replace(tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc))


def cohort_usage(session: Session, *, cohort_id: int, progress: Mapping[str, LearnerProgress] | None = None,
                 now: datetime | None = None) -> list[UsageRow]:
    """One row per learner of the cohort (their latest seat's state), in seat order."""
    now = store.moment(now)
    progress = progress or {}
    store.get_cohort(session, cohort_id=cohort_id)
    latest: dict[str, Seat] = {}
    for seat in store.seats_of(session, cohort_id=cohort_id):
        latest.pop(seat.username or f"@{seat.email}", None)  # re-insert: order by the latest seat
        latest[seat.username or f"@{seat.email}"] = seat
    server: dict[str, float] = {}
    gpu: dict[str, float] = {}
    for record in session.scalars(select(UsageRecord).where(UsageRecord.cohort_id == cohort_id)):
        hours = _hours(record, start=_EVER[0], end=_EVER[1], now=now)
        server[record.username] = server.get(record.username, 0.0) + hours
        gpu[record.username] = gpu.get(record.username, 0.0) + hours * record.gpus
    rows = []
    for seat in latest.values():
        learner = progress.get(seat.username, LearnerProgress()) if seat.username else LearnerProgress()
        rows.append(UsageRow(username=seat.username, email=seat.email, state=seat.state,
                             server_hours=server.get(seat.username, 0.0), gpu_hours=gpu.get(seat.username, 0.0),
                             lessons_run=learner.lessons_run, scores=dict(learner.scores)))
    return rows


def recorded_progress(session: Session, *, cohort_id: int) -> dict[str, LearnerProgress]:
    """The lessons run by the cohort's learners, from the seats database (no scores)."""
    usernames = [seat.username for seat in store.seats_of(session, cohort_id=cohort_id) if seat.username]
    return {name: LearnerProgress(lessons_run=count)
            for name, count in store.lessons_run_by(session, usernames=usernames).items()}


def summarise(rows: Iterable[UsageRow]) -> UsageSummary:
    """The cohort's totals, for the top of a report page."""
    rows = list(rows)
    return UsageSummary(
        seats_active=sum(r.state == "active" for r in rows),
        seats_invited=sum(r.state == "invited" for r in rows),
        active_learners=sum(r.state == "active" and (r.server_hours > 0 or r.lessons_run > 0) for r in rows),
        server_hours=sum(r.server_hours for r in rows),
        gpu_hours=sum(r.gpu_hours for r in rows),
        lessons_run=sum(r.lessons_run for r in rows),
    )


def parse_month(month: str) -> tuple[date, date]:
    """The first and last day of a "YYYY-MM" month; SeatsError when it is not one."""
    try:
        year, number = (int(part) for part in month.split("-"))
        first = date(year, number, 1)
    except ValueError:
        raise store.SeatsError(f"month {month!r}: expected YYYY-MM, e.g. 2026-03") from None
    if len(month) != 7:
        raise store.SeatsError(f"month {month!r}: expected YYYY-MM, e.g. 2026-03")
    return first, first.replace(day=calendar.monthrange(year, number)[1])


def _seat_days(seat: Seat, *, first: date, last: date) -> int:
    # A seat is held from the day it was given; the day it is revoked is not billed.
    held_from = max(seat.invited_at.date(), first)
    held_to = min(seat.revoked_at.date() - timedelta(days=1), last) if seat.revoked_at else last
    return max((held_to - held_from).days + 1, 0)


def invoice_lines(session: Session, *, organisation_id: int, month: str, now: datetime | None = None) -> list[InvoiceLine]:
    """Per cohort of the organisation that was open or used GPUs in ``month`` ("YYYY-MM"):
    seat-days and GPU hours (UTC days and hours)."""
    now = store.moment(now)
    first, last = parse_month(month)
    organisation = store.get_organisation(session, organisation_id=organisation_id)
    start = datetime.combine(first, time(), tzinfo=timezone.utc)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=timezone.utc)
    lines = []
    for cohort in store.cohorts_of(session, organisation_id=organisation_id):
        from_day, to_day = max(first, cohort.starts_on), min(last, cohort.ends_on)
        seat_days = sum(_seat_days(seat, first=from_day, last=to_day)
                        for seat in store.seats_of(session, cohort_id=cohort.id)) if from_day <= to_day else 0
        records = session.scalars(select(UsageRecord).where(UsageRecord.cohort_id == cohort.id,
                                                            UsageRecord.started_at < end))
        server_hours = gpu_hours = 0.0
        for record in records:
            hours = _hours(record, start=start, end=end, now=now)
            server_hours += hours
            gpu_hours += hours * record.gpus
        if from_day > to_day and server_hours == 0:
            continue
        lines.append(InvoiceLine(organisation=organisation.name, month=month, cohort_id=cohort.id, cohort=cohort.name,
                                 course_id=cohort.course_id, seat_days=seat_days, gpu_hours=gpu_hours,
                                 server_hours=server_hours))
    return lines


def _hours_text(hours: float) -> str:
    return f"{hours:.2f}"


def write_usage_csv(rows: Iterable[UsageRow], file: IO[str]) -> None:
    """Usage rows as CSV, one column per assignment score (``score:<assignment>``)."""
    rows = list(rows)
    assignments = sorted({name for row in rows for name in row.scores})
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(["username", "email", "state", "server_hours", "gpu_hours", "lessons_run",
                     *(f"score:{name}" for name in assignments)])
    for row in rows:
        writer.writerow([row.username or "", row.email or "", row.state, _hours_text(row.server_hours),
                         _hours_text(row.gpu_hours), row.lessons_run,
                         *(row.scores.get(name, "") for name in assignments)])


def write_invoice_csv(lines: Iterable[InvoiceLine], file: IO[str]) -> None:
    """Invoice lines as CSV, for the organisation's billing."""
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(["organisation", "month", "cohort_id", "cohort", "course_id", "seat_days", "gpu_hours",
                     "server_hours"])
    for line in lines:
        writer.writerow([line.organisation, line.month, line.cohort_id, line.cohort, line.course_id, line.seat_days,
                         _hours_text(line.gpu_hours), _hours_text(line.server_hours)])
