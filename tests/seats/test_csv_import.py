"""grader/seats/csv_import.py: a CSV file assigns every seat or none, and names each bad line."""

from __future__ import annotations

import pytest

from grader.seats import store
from grader.seats.csv_import import CsvImportError, bulk_assign
from tests.support import FIXTURES
from tests.support.seats_backends import make_cohort, postgres_server, seats_db, seats_url  # noqa: F401 (fixtures)

FILES = FIXTURES / "seats"


def _import(session, cohort_id, name):
    return bulk_assign(session, cohort_id=cohort_id, csv_text=(FILES / name).read_text(), source=name)


def _holders(session, cohort_id):
    return [(s.username, s.email, s.state) for s in store.seats_of(session, cohort_id=cohort_id)]


def test_a_good_file_assigns_users_and_invites_addresses(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=5)
        seats = _import(session, cohort.id, "staff.csv")
        assert [s.state for s in seats] == ["active", "invited", "active"]
        assert _holders(session, cohort.id) == [("alice", None, "active"), (None, "bob@example.com", "invited"),
                                                ("carol", "carol@acme.example", "active")]
        assert store.seats_left(session, cohort_id=cohort.id) == 2


def test_a_bad_row_on_line_4_is_reported_and_nothing_is_assigned(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=10)
        with pytest.raises(CsvImportError) as raised:
            _import(session, cohort.id, "bad-email-line4.csv")
        assert raised.value.problems == ["bad-email-line4.csv:4: 'not-an-address' is not an e-mail address"]
        assert "no seat was assigned" in str(raised.value)
        assert _holders(session, cohort.id) == []
        assert store.seats_left(session, cohort_id=cohort.id) == 10


def test_every_bad_row_is_listed_by_line(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=10)
        store.assign_seat(session, cohort_id=cohort.id, username="zed")
        with pytest.raises(CsvImportError) as raised:
            _import(session, cohort.id, "every-problem.csv")
        assert raised.value.problems == [
            "every-problem.csv:3: empty row",
            "every-problem.csv:4: 'bad@' is not an e-mail address",
            "every-problem.csv:5: user 'alice' is already on line 2",
            "every-problem.csv:6: user 'zed' already has a seat in cohort 'spring' (seat 1, active)",
            "every-problem.csv:7: user name 'a b' contains a space",
            "every-problem.csv:8: 3 field(s), the header has 2",
        ]
        assert _holders(session, cohort.id) == [("zed", None, "active")]


def test_an_unknown_column_is_reported_on_the_header_line(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session)
        with pytest.raises(CsvImportError) as raised:
            _import(session, cohort.id, "unknown-column.csv")
        assert raised.value.problems == ["unknown-column.csv:1: unknown column 'name' (expected columns: username, email)"]
        with pytest.raises(CsvImportError, match="empty.csv:1: no header row"):
            bulk_assign(session, cohort_id=cohort.id, csv_text="", source="empty.csv")
        assert _holders(session, cohort.id) == []


def test_rows_beyond_the_seats_left_are_named_and_none_is_assigned(seats_db):
    with seats_db() as session:
        cohort = make_cohort(session, seat_limit=4)
        store.assign_seat(session, cohort_id=cohort.id, username="early")
        with pytest.raises(CsvImportError) as raised:
            _import(session, cohort.id, "too-many.csv")
        assert [p.split(" (")[0] for p in raised.value.problems] == [
            "too-many.csv:5: no seat left for 'u4@example.com'",
            "too-many.csv:6: no seat left for 'u5@example.com'",
        ]
        assert "3 seat(s) left and the file asks for 5" in raised.value.problems[0]
        assert _holders(session, cohort.id) == [("early", None, "active")]
        # With two more seats bought, the same file goes in whole.
        cohort.seat_limit = 6
        session.commit()
        assert len(_import(session, cohort.id, "too-many.csv")) == 5
        assert store.seats_left(session, cohort_id=cohort.id) == 0
