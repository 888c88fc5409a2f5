"""Seats are never oversold: 50 assignments racing for the last 10 seats give exactly 10 seats.

Threads with a session each, on SQLite and on PostgreSQL; and on SQLite also separate processes,
each opening the database itself, as a hub and a ``grader seats`` call would.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from grader.seats import store
from grader.seats.db import close_seats_db, open_seats_db
from grader.seats.models import Seat
from tests.support.seats_backends import make_cohort, postgres_server, seats_db, seats_url  # noqa: F401 (fixtures)

ATTEMPTS = 50
SEAT_LIMIT = 15
ALREADY_TAKEN = 5  # so 10 are left when the race starts


def _cohort_with_ten_left(factory) -> int:
    with factory() as session:
        cohort = make_cohort(session, seat_limit=SEAT_LIMIT)
        for n in range(ALREADY_TAKEN):
            store.assign_seat(session, cohort_id=cohort.id, username=f"early{n}")
        # One revoked seat must not count against the limit.
        store.revoke_seat(session, seat_id=store.assign_seat(session, cohort_id=cohort.id, username="gone").id)
        assert store.seats_left(session, cohort_id=cohort.id) == 10
        return cohort.id


def _race(factory, cohort_id: int, names: list[str], start: threading.Barrier) -> list[str]:
    """Each name tries for a seat in its own thread and session, all released at once."""

    def attempt(name: str) -> str:
        with factory() as session:
            start.wait(timeout=60)
            try:
                store.assign_seat(session, cohort_id=cohort_id, username=name)
                return "seat"
            except store.NoSeatsLeft:
                return "full"

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        return list(pool.map(attempt, names))


def _live_seats(factory, cohort_id: int) -> list[str]:
    with factory() as session:
        return sorted(session.scalars(select(Seat.username).where(Seat.cohort_id == cohort_id, Seat.state != "revoked")))


@pytest.mark.slow
def test_fifty_threads_racing_for_ten_seats_get_exactly_ten(seats_db):
    cohort_id = _cohort_with_ten_left(seats_db)
    names = [f"learner{n:02d}" for n in range(ATTEMPTS)]

    outcomes = _race(seats_db, cohort_id, names, threading.Barrier(ATTEMPTS))

    assert outcomes.count("seat") == 10 and outcomes.count("full") == 40
    live = _live_seats(seats_db, cohort_id)
    assert len(live) == SEAT_LIMIT
    winners = {name for name, outcome in zip(names, outcomes) if outcome == "seat"}
    assert set(live) == winners | {f"early{n}" for n in range(ALREADY_TAKEN)}
    with seats_db() as session:
        assert store.seats_left(session, cohort_id=cohort_id) == 0


def _process_racer(url: str, cohort_id: int, names: list[str], start, results) -> None:
    # Runs in a spawned process: its own engine, its own migration check, its own threads.
    factory = open_seats_db(url)
    try:
        start.wait(timeout=120)
        outcomes = _race(factory, cohort_id, names, threading.Barrier(len(names)))
        results.put(dict(zip(names, outcomes)))
    finally:
        close_seats_db(factory)


@pytest.mark.slow
def test_five_processes_racing_for_ten_seats_on_sqlite_get_exactly_ten(tmp_path):
    url = f"sqlite:///{tmp_path / 'seats.sqlite'}"
    factory = open_seats_db(url)
    try:
        cohort_id = _cohort_with_ten_left(factory)
        context = multiprocessing.get_context("spawn")
        start, results = context.Barrier(5), context.Queue()
        batches = [[f"p{p}-learner{n}" for n in range(ATTEMPTS // 5)] for p in range(5)]
        processes = [context.Process(target=_process_racer, args=(url, cohort_id, batch, start, results))
                     for batch in batches]
        for process in processes:
            process.start()
        try:
            outcomes: dict[str, str] = {}
            for _ in processes:
                outcomes.update(results.get(timeout=180))
        finally:
            for process in processes:
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()
        assert all(process.exitcode == 0 for process in processes)
        assert len(outcomes) == ATTEMPTS
        assert list(outcomes.values()).count("seat") == 10
        live = _live_seats(factory, cohort_id)
        assert len(live) == SEAT_LIMIT
        assert {name for name, outcome in outcomes.items() if outcome == "seat"} <= set(live)
        with factory() as session:
            count = session.scalar(select(func.count()).select_from(Seat).where(Seat.state != "revoked"))
        assert count == SEAT_LIMIT
    finally:
        close_seats_db(factory)
