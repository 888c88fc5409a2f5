"""grader/seats/usage_reports.py: usage per learner and invoice lines, checked against sums done by hand."""

from __future__ import annotations

import io
from datetime import date, datetime, timezone

import pytest

from grader.seats import store
from grader.seats.usage_reports import LearnerProgress, cohort_usage, invoice_lines, summarise, write_invoice_csv, write_usage_csv
from tests.support.seats_backends import make_cohort, postgres_server, seats_db, seats_url  # noqa: F401 (fixtures)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=timezone.utc)


NOW = at(5, 1, 1)  # the reports are made at 01:00 on 1 May; one GPU server is still running


@pytest.fixture
def april(seats_db):
    """Acme's cohorts and what happened in and around April 2026 (the sums are in the tests)."""
    with seats_db() as session:
        spring = make_cohort(session, name="spring", starts_on=date(2026, 3, 1), ends_on=date(2026, 5, 31),
                             profiles=["cpu", "gpu"], seat_limit=10)
        short = make_cohort(session, name="short", starts_on=date(2026, 4, 10), ends_on=date(2026, 4, 20))
        make_cohort(session, name="summer", starts_on=date(2026, 6, 1), ends_on=date(2026, 8, 31))
        make_cohort(session, organisation="Globex", contact="x@globex.example", name="other")

        def seat(cohort, given, revoked=None, **holder):
            s = store.assign_seat(session, cohort_id=cohort.id, now=given, **holder)
            if revoked:
                store.revoke_seat(session, seat_id=s.id, now=revoked)

        seat(spring, at(2, 20), username="alice")                  # April: 30 days
        seat(spring, at(4, 5, 12), email="bob@example.com")         # invited 5 April: 26 days
        seat(spring, at(3, 15), at(4, 11, 9), username="carol")     # revoked 11 April: 1-10 April, 10 days
        seat(spring, at(4, 20, 8), at(4, 20, 17), username="dan")   # revoked the same day: 0
        seat(spring, at(5, 2), username="erin")                     # May: 0
        seat(short, at(4, 1), username="fay")                       # the cohort's 10-20 April: 11 days
        seat(short, at(4, 15), at(4, 18), username="gus")           # 15-17 April: 3 days

        def run(start, stop, gpus, profile="gpu"):
            store.record_server_start(session, username="alice", profile=profile, gpus=gpus, cohort_id=spring.id,
                                      now=start)
            if stop:
                store.record_server_stop(session, username="alice", now=stop)

        run(at(3, 31, 22), at(4, 1, 2), gpus=1)          # 4 h, 2 of them in April
        run(at(4, 10, 10), at(4, 10, 13, 30), gpus=2)    # 3.5 h on 2 GPUs: 7 GPU hours
        run(at(4, 12, 8), at(4, 12, 10), gpus=0, profile="cpu")
        run(at(4, 30, 23), None, gpus=1)                 # still running: 1 h in April, 2 h by NOW
        return spring, short


def test_invoice_lines_for_april(seats_db, april):
    spring, short = april
    with seats_db() as session:
        lines = invoice_lines(session, organisation_id=spring.organisation_id, month="2026-04", now=NOW)
    assert [(l.cohort, l.seat_days, l.gpu_hours, l.server_hours) for l in lines] == [
        ("spring", 30 + 26 + 10, 2 + 7 + 1, 2 + 3.5 + 2 + 1),
        ("short", 11 + 3, 0, 0),
    ]
    assert {(l.organisation, l.month, l.course_id) for l in lines} == {("Acme", "2026-04", "ai101")}

    out = io.StringIO()
    write_invoice_csv(lines, out)
    assert out.getvalue().splitlines() == [
        "organisation,month,cohort_id,cohort,course_id,seat_days,gpu_hours,server_hours",
        f"Acme,2026-04,{spring.id},spring,ai101,66,10.00,8.50",
        f"Acme,2026-04,{short.id},short,ai101,14,0.00,0.00",
    ]


def test_invoice_lines_for_march_and_a_month_without_cohorts(seats_db, april):
    spring, _ = april
    with seats_db() as session:
        march = invoice_lines(session, organisation_id=spring.organisation_id, month="2026-03", now=NOW)
        # alice from 1 March (her seat predates the cohort), carol from the 15th: 31 + 17.
        assert [(l.cohort, l.seat_days, l.gpu_hours) for l in march] == [("spring", 31 + 17, 2)]
        assert invoice_lines(session, organisation_id=spring.organisation_id, month="2027-01", now=NOW) == []
        for bad in ("2026-13", "April", "2026-4"):
            with pytest.raises(store.SeatsError, match="expected YYYY-MM"):
                invoice_lines(session, organisation_id=spring.organisation_id, month=bad)


def test_cohort_usage_per_learner_with_progress(seats_db, april):
    spring, _ = april
    progress = {"alice": LearnerProgress(lessons_run=3, scores={"a1": 8.5, "a2": 10.0}),
                "erin": LearnerProgress(lessons_run=0, scores={"a1": 4.0})}
    with seats_db() as session:
        rows = cohort_usage(session, cohort_id=spring.id, progress=progress, now=NOW)
    assert [(r.username, r.email, r.state, r.server_hours, r.gpu_hours, r.lessons_run) for r in rows] == [
        ("alice", None, "active", 4 + 3.5 + 2 + 2, 4 + 7 + 0 + 2, 3),
        (None, "bob@example.com", "invited", 0, 0, 0),
        ("carol", None, "revoked", 0, 0, 0),
        ("dan", None, "revoked", 0, 0, 0),
        ("erin", None, "active", 0, 0, 0),
    ]
    summary = summarise(rows)
    assert (summary.seats_active, summary.seats_invited, summary.active_learners) == (2, 1, 1)
    assert (summary.server_hours, summary.gpu_hours, summary.lessons_run) == (11.5, 13, 3)

    out = io.StringIO()
    write_usage_csv(rows, out)
    assert out.getvalue().splitlines() == [
        "username,email,state,server_hours,gpu_hours,lessons_run,score:a1,score:a2",
        "alice,,active,11.50,13.00,3,8.5,10.0",
        ",bob@example.com,invited,0.00,0.00,0,,",
        "carol,,revoked,0.00,0.00,0,,",
        "dan,,revoked,0.00,0.00,0,,",
        "erin,,active,0.00,0.00,0,4.0,",
    ]
