"""grader/seats/store.py on SQLite and on PostgreSQL: seats, invitations, access by date, metering."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from grader.seats import store
from grader.seats.models import OrgAdmin, Seat, UsageRecord
from tests.support.seats_backends import make_cohort, postgres_server, seats_db, seats_url  # noqa: F401 (fixtures)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def test_a_user_gets_an_active_seat_and_an_address_an_invitation(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=3)
        alice = store.assign_seat(session, cohort_id=cohort.id, username="alice", now=T0)
        invited = store.assign_seat(session, cohort_id=cohort.id, email="  Bob@Example.COM ", now=T0)
        assert store.seats_left(session, cohort_id=cohort.id) == 1

    with seats_db() as session:  # as stored, read back by a fresh session
        seats = {seat.id: seat for seat in store.seats_of(session, cohort_id=cohort.id)}
    assert (seats[alice.id].username, seats[alice.id].state, seats[alice.id].activated_at) == ("alice", "active", T0)
    assert seats[alice.id].invited_at.tzinfo is not None
    bob = seats[invited.id]
    assert (bob.username, bob.email, bob.state, bob.activated_at) == (None, "bob@example.com", "invited", None)


def test_a_full_cohort_refuses_and_a_revoked_seat_frees_its_place(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=2)
        first = store.assign_seat(session, cohort_id=cohort.id, username="u1")
        store.assign_seat(session, cohort_id=cohort.id, email="u2@example.com")
        with pytest.raises(store.NoSeatsLeft, match="no seats left"):
            store.assign_seat(session, cohort_id=cohort.id, username="u3")

        revoked = store.revoke_seat(session, seat_id=first.id, now=T0)
        assert (revoked.state, revoked.revoked_at) == ("revoked", T0)
        assert store.seats_left(session, cohort_id=cohort.id) == 1
        store.assign_seat(session, cohort_id=cohort.id, username="u3")
        assert store.seats_left(session, cohort_id=cohort.id) == 0
        with pytest.raises(store.SeatsError, match="already revoked"):
            store.revoke_seat(session, seat_id=first.id)
        with pytest.raises(store.NotFound, match="no seat with id 999"):
            store.revoke_seat(session, seat_id=999)


def test_one_live_seat_per_user_and_address_but_a_revoked_one_can_be_given_again(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=5)
        seat = store.assign_seat(session, cohort_id=cohort.id, username="alice")
        store.assign_seat(session, cohort_id=cohort.id, email="bob@example.com")
        with pytest.raises(store.SeatsError, match="user 'alice' already has a seat"):
            store.assign_seat(session, cohort_id=cohort.id, username="alice")
        with pytest.raises(store.SeatsError, match="'bob@example.com' already has a seat"):
            store.assign_seat(session, cohort_id=cohort.id, email="BOB@example.com")
        store.revoke_seat(session, seat_id=seat.id)
        again = store.assign_seat(session, cohort_id=cohort.id, username="alice")
        assert again.id != seat.id and again.state == "active"
        states = sorted((s.username or s.email, s.state) for s in store.seats_of(session, cohort_id=cohort.id))
    assert states == [("alice", "active"), ("alice", "revoked"), ("bob@example.com", "invited")]


def test_bad_arguments_are_refused_with_the_reason(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session)
        with pytest.raises(store.SeatsError, match="already exists"):
            store.create_organisation(session, name="Acme", contact_email="x@acme.example")
        with pytest.raises(store.SeatsError, match="not an e-mail address"):
            store.create_organisation(session, name="Other", contact_email="nobody")
        with pytest.raises(store.SeatsError, match="ends .* before it starts"):
            store.create_cohort(session, organisation_id=cohort.organisation_id, name="x", course_id="ai101",
                                starts_on=date(2026, 5, 1), ends_on=date(2026, 4, 1), seat_limit=1, profiles=["cpu"])
        with pytest.raises(store.SeatsError, match="no server profile"):
            store.create_cohort(session, organisation_id=cohort.organisation_id, name="x", course_id="ai101",
                                starts_on=date(2026, 5, 1), ends_on=date(2026, 6, 1), seat_limit=1, profiles=[])
        with pytest.raises(store.NotFound, match="no organisation with id 42"):
            store.create_cohort(session, organisation_id=42, name="x", course_id="ai101",
                                starts_on=date(2026, 5, 1), ends_on=date(2026, 6, 1), seat_limit=1, profiles=["cpu"])
        with pytest.raises(store.NotFound, match="no cohort with id 42"):
            store.assign_seat(session, cohort_id=42, username="alice")
        with pytest.raises(store.SeatsError, match="exactly one"):
            store.assign_seat(session, cohort_id=cohort.id, username="alice", email="alice@example.com")
        with pytest.raises(store.SeatsError, match="not an e-mail address"):
            store.assign_seat(session, cohort_id=cohort.id, email="alice at example.com")
        assert store.seats_of(session, cohort_id=cohort.id) == []


def test_claiming_invitations_activates_them_once(seats_db):
    with seats_db() as session:
        spring = make_cohort(session, name="spring")
        autumn = make_cohort(session, name="autumn")
        store.assign_seat(session, cohort_id=spring.id, email="dana@example.com")
        store.assign_seat(session, cohort_id=autumn.id, email="dana@example.com")
        # Dana already holds a seat in autumn by name: that invitation would take a second place.
        store.assign_seat(session, cohort_id=autumn.id, username="dana")
        claimed = store.claim_invitations(session, username="dana", email="Dana@Example.com", now=T0)
        assert [(s.cohort_id, s.username, s.state, s.activated_at) for s in claimed] == [(spring.id, "dana", "active", T0)]
        assert store.claim_invitations(session, username="dana", email="dana@example.com") == []
        assert store.claim_invitations(session, username="eve", email="not an address") == []
        autumn_seats = [(s.username, s.email, s.state) for s in store.seats_of(session, cohort_id=autumn.id)]
    assert autumn_seats == [(None, "dana@example.com", "revoked"), ("dana", None, "active")]


def test_access_needs_an_active_seat_in_a_cohort_open_today(seats_db):
    with seats_db() as session:
        cpu = make_cohort(session, name="cpu-only", starts_on=date(2026, 3, 1), ends_on=date(2026, 5, 31),
                          profiles=["cpu"])
        gpu = make_cohort(session, name="with-gpu", starts_on=date(2026, 4, 1), ends_on=date(2026, 4, 30),
                          profiles=["cpu", "gpu"])
        store.assign_seat(session, cohort_id=cpu.id, username="alice")
        store.assign_seat(session, cohort_id=gpu.id, username="alice")
        store.assign_seat(session, cohort_id=cpu.id, email="bob@example.com")

        def access(user, day):
            return store.access_for(session, username=user, today=day)

        before = access("alice", date(2026, 2, 28))
        assert (before.allowed, before.code, before.contact) == (False, "not-started", "training@acme.example")
        assert "2026-03-01" in before.reason and "training@acme.example" in before.reason
        first_day = access("alice", date(2026, 3, 1))
        assert (first_day.allowed, first_day.profiles, first_day.cohort_ids) == (True, frozenset({"cpu"}), (cpu.id,))
        both = access("alice", date(2026, 4, 30))  # the last day of the GPU cohort is included
        assert (both.allowed, both.profiles, both.cohort_ids) == (True, frozenset({"cpu", "gpu"}), (cpu.id, gpu.id))
        assert access("alice", date(2026, 5, 31)).allowed
        after = access("alice", date(2026, 6, 1))
        assert (after.allowed, after.code) == (False, "ended") and "2026-05-31" in after.reason
        assert after.profiles == frozenset() and after.cohort_ids == ()

        # An invitation not yet claimed gives no access to the user it is meant for.
        nobody = access("bob", date(2026, 4, 1))
        assert (nobody.allowed, nobody.code, nobody.contact) == (False, "no-seat", "")
        store.claim_invitations(session, username="bob", email="bob@example.com")
        assert access("bob", date(2026, 4, 1)).allowed

        seat = store.live_seat_of(session, cohort_id=cpu.id, username="bob")
        store.revoke_seat(session, seat_id=seat.id, now=datetime(2026, 4, 10, 12, tzinfo=timezone.utc))
        revoked = access("bob", date(2026, 4, 11))
        assert (revoked.allowed, revoked.code, revoked.contact) == (False, "revoked", "training@acme.example")
        assert "revoked on 2026-04-10" in revoked.reason


def test_cohort_admins_see_only_their_organisations(seats_db):
    with seats_db() as session:
        acme = make_cohort(session, organisation="Acme", name="a1")
        make_cohort(session, organisation="Acme", name="a2")
        globex = make_cohort(session, organisation="Globex", contact="learn@globex.example", name="g1")
        store.add_org_admin(session, organisation_id=acme.organisation_id, username="carol")
        store.add_org_admin(session, organisation_id=acme.organisation_id, username="carol")  # no duplicate
        store.add_org_admin(session, organisation_id=globex.organisation_id, username="gina")

        assert [o.name for o in store.organisations_administered_by(session, username="carol")] == ["Acme"]
        assert [o.name for o in store.organisations_administered_by(session, username="gina")] == ["Globex"]
        assert store.organisations_administered_by(session, username="alice") == []
        assert [c.name for c in store.cohorts_of(session, organisation_id=acme.organisation_id)] == ["a1", "a2"]
        assert [c.name for c in store.cohorts_of(session, organisation_id=globex.organisation_id)] == ["g1"]
        assert len(session.scalars(select(OrgAdmin)).all()) == 2


def test_server_runs_are_metered_to_the_cohort_that_includes_the_profile(seats_db):
    with seats_db() as session:
        cpu = make_cohort(session, name="cpu-only", profiles=["cpu"])
        gpu = make_cohort(session, name="with-gpu", profiles=["cpu", "gpu"])
        store.assign_seat(session, cohort_id=cpu.id, username="alice")
        store.assign_seat(session, cohort_id=gpu.id, username="alice")

        run = store.record_server_start(session, username="alice", profile="gpu", gpus=1, now=T0)
        assert (run.cohort_id, run.stopped_at) == (gpu.id, None)
        stopped = store.record_server_stop(session, username="alice", now=T0 + timedelta(hours=2))
        assert (stopped.id, stopped.stopped_at) == (run.id, T0 + timedelta(hours=2))
        assert store.record_server_stop(session, username="alice") is None  # nothing open any more

        cpu_run = store.record_server_start(session, username="alice", profile="cpu", gpus=0, now=T0 + timedelta(days=1))
        assert cpu_run.cohort_id == cpu.id
        # A start without the stop of the previous run closes that run first.
        store.record_server_start(session, username="alice", profile="cpu", gpus=0, now=T0 + timedelta(days=1, hours=3))
        staff = store.record_server_start(session, username="staff", profile="gpu", gpus=2, now=T0)
        assert staff.cohort_id is None

    with seats_db() as session:
        runs = session.scalars(select(UsageRecord).where(UsageRecord.username == "alice").order_by(UsageRecord.id)).all()
    assert [(r.profile, r.stopped_at) for r in runs] == [
        ("gpu", T0 + timedelta(hours=2)),
        ("cpu", T0 + timedelta(days=1, hours=3)),
        ("cpu", None),
    ]


def test_the_database_refuses_a_second_live_seat_even_without_the_store(seats_db):
    # The partial unique index is the last line of defence if a writer skips the cohort lock.
    from sqlalchemy.exc import IntegrityError

    with seats_db() as session:
        cohort = make_cohort(session)
        store.assign_seat(session, cohort_id=cohort.id, username="alice")
        session.add(Seat(cohort_id=cohort.id, username="alice", state="active", invited_at=T0))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(Seat(cohort_id=cohort.id, username="alice", state="revoked", invited_at=T0, revoked_at=T0))
        session.commit()
        assert len(store.seats_of(session, cohort_id=cohort.id)) == 2
