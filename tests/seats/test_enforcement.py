"""Seats enforced by a real hub: login, server start, profiles offered, metering, end of a cohort,
refusals as JupyterHub 6 wants them (SpawnException: no traceback, a reason in the spawn metrics),
the seats database off the hub's event loop, and lessons run reported by the learner's server.

One hub per database backend (a SQLite file, and a throw-away PostgreSQL server where installed),
seeded by :mod:`tests.seatshub`. Time is not faked: a cohort "ends" when the test moves its end
date into the past in the database, as the passing of days would.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select, update

from tests.support.hubfixture import api_token, login, stop_hub, stop_server
from tests.support.seats_backends import BACKENDS, fresh_postgres_database, postgres_server  # noqa: F401  (fixtures)
from tests.support.seatshub import CONTACT, login_error, page_text, start_seats_hub, today, try_login

pytestmark = [pytest.mark.slow, pytest.mark.hub]


@pytest.fixture(scope="module", params=BACKENDS)
def seats_hub(request, tmp_path_factory):
    db_url = "" if request.param == "sqlite" else fresh_postgres_database(request.getfixturevalue("postgres_server"))
    with pytest.MonkeyPatch.context() as patch:
        hub, seeded, url = start_seats_hub(tmp_path_factory, patch, db_url=db_url)
    from grader.seats.db import close_seats_db, open_seats_db

    sessions = open_seats_db(url)
    yield hub, seeded, sessions
    stop_hub(hub)
    close_seats_db(sessions)


def _records(sessions, username):
    from grader.seats.models import UsageRecord

    with sessions() as session:
        return list(session.scalars(select(UsageRecord).where(UsageRecord.username == username).order_by(UsageRecord.id)))


def _spawn(hub, username, token, **options):
    return requests.post(f"{hub.url}/hub/api/users/{username}/server", json={"user_options": options},
                         headers={"Authorization": f"token {token}"}, timeout=120)


def _spawn_failures(hub, reason: str) -> float:
    """How many starts the hub's metrics count as refused ("failure", not "error") for ``reason``."""
    token = _admin_token(hub)
    metrics = requests.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {token}"}, timeout=30)
    metrics.raise_for_status()
    found = re.search(r'^jupyterhub_server_spawn_duration_seconds_count\{reason="%s",status="failure"\} (\S+)$'
                      % re.escape(reason), metrics.text, re.M)
    return float(found.group(1)) if found else 0.0


_admin_tokens: dict[str, str] = {}


def _admin_token(hub) -> str:
    if hub.url not in _admin_tokens:
        _admin_tokens[hub.url] = api_token(hub, login(hub, "ada"), "ada")
    return _admin_tokens[hub.url]


def _log_since(hub, offset: int) -> str:
    return hub.log()[offset:]


def _start(hub, username, token, profile="cpu", timeout=180):
    # With the profile named: the hub reuses a user's last options when a request gives none.
    response = _spawn(hub, username, token, profile=profile)
    assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = requests.get(f"{hub.url}/hub/api/users/{username}",
                              headers={"Authorization": f"token {token}"}).json()["servers"].get("")
        if server and server.get("ready"):
            return
        time.sleep(1)
    raise TimeoutError(f"{username}'s server not ready after {timeout}s")


# --- login --------------------------------------------------------------------------------------


def test_a_user_without_a_seat_is_refused_at_login_with_the_reason_and_whom_to_ask(seats_hub):
    hub, _, _ = seats_hub
    _, response = try_login(hub, "nos")
    assert response.status_code == 403
    message = login_error(response)
    assert "no seat in any cohort" in message and CONTACT in message, message
    assert "jupyterhub-session-id" not in response.cookies and "jupyterhub-hub-login" not in response.cookies


def test_a_seat_in_an_ended_cohort_is_refused_naming_the_date_and_the_organisations_contact(seats_hub):
    hub, _, _ = seats_hub
    _, response = try_login(hub, "old")
    assert response.status_code == 403
    message = login_error(response)
    ended_on = (today() - timedelta(days=10)).isoformat()
    assert f"cohort 'ended' ended on {ended_on}" in message and "training@acme.example" in message, message


def test_a_wrong_password_is_still_just_a_wrong_password(seats_hub):
    hub, _, _ = seats_hub
    _, response = try_login(hub, "nos", password="not-the-password")
    assert response.status_code == 403 and login_error(response) == "Invalid username or password"


@pytest.mark.parametrize("username", ["ada", "ian", "cora"])
def test_staff_log_in_without_a_seat(seats_hub, username):
    hub, _, _ = seats_hub
    assert try_login(hub, username)[1].status_code == 302


def test_an_invitation_by_email_becomes_the_users_seat_at_login(seats_hub):
    from grader.seats.models import Seat

    hub, seeded, sessions = seats_hub
    assert try_login(hub, "eve@example.org")[1].status_code == 302
    with sessions() as session:
        seat = session.get(Seat, seeded.seats["eve@example.org"])
        assert (seat.state, seat.username) == ("active", "eve@example.org")


# --- servers and profiles -----------------------------------------------------------------------


def test_the_spawn_form_offers_only_the_profiles_of_the_users_cohorts(seats_hub):
    hub, _, sessions = seats_hub
    offered = lambda response: set(re.findall(r'name="profile" id="profile-(\w+)"', response.text))  # noqa: E731
    with_gpu = login(hub, "gil").get(f"{hub.url}/hub/spawn")
    assert with_gpu.status_code == 200
    assert offered(with_gpu) == {"cpu", "gpu"}
    # lea's cohort allows one profile: nothing to choose, so no form; the page starts her server
    # with that profile.
    lea = login(hub, "lea")
    cpu_only = lea.get(f"{hub.url}/hub/spawn")
    assert cpu_only.status_code == 200 and offered(cpu_only) == set()
    token = api_token(hub, lea, "lea")
    deadline = time.monotonic() + 180
    while not _records(sessions, "lea") or _records(sessions, "lea")[-1].stopped_at is not None:
        assert time.monotonic() < deadline, "lea's server was not started from the spawn page"
        time.sleep(0.5)
    assert _records(sessions, "lea")[-1].profile == "cpu"
    wait_ready = time.monotonic() + 180
    while not (requests.get(f"{hub.url}/hub/api/users/lea", headers={"Authorization": f"token {token}"})
               .json()["servers"].get("", {}).get("ready")):
        assert time.monotonic() < wait_ready, "lea's server did not become ready"
        time.sleep(1)
    stop_server(hub, "lea", token)
    # Staff are not narrowed by any cohort.
    assert offered(login(hub, "ian").get(f"{hub.url}/hub/spawn")) == {"cpu", "gpu"}


def test_a_gpu_server_asked_for_through_the_api_is_refused_without_a_gpu_seat(seats_hub):
    hub, _, sessions = seats_hub
    token = api_token(hub, login(hub, "lea"), "lea")
    before, log_offset = _spawn_failures(hub, "profile"), len(hub.log())
    response = _spawn(hub, "lea", token, profile="gpu")
    assert response.status_code == 400 and "may not use the profile 'gpu'" in response.json()["message"]
    # A refusal, not an error: one log line, no traceback, counted under its reason.
    assert "SpawnException(reason=profile)" in _log_since(hub, log_offset)
    assert "Traceback" not in _log_since(hub, log_offset)
    assert _spawn_failures(hub, "profile") == before + 1
    # A refused start leaves no run open.
    assert all(r.stopped_at is not None for r in _records(sessions, "lea"))


def _notebook(execution_count):
    return {"type": "notebook", "content": {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": "code", "id": "c1", "execution_count": execution_count, "source": "1 + 1",
                   "metadata": {}, "outputs": []}]}}


def _lessons_run(sessions, username):
    from grader.seats.models import LessonRun

    with sessions() as session:
        return sorted(session.scalars(select(LessonRun.lesson).where(LessonRun.username == username)))


def test_an_active_seat_starts_a_server_and_its_run_is_metered(seats_hub):
    hub, seeded, sessions = seats_hub
    token = api_token(hub, login(hub, "lea"), "lea")
    _start(hub, "lea", token)
    try:
        running = [r for r in _records(sessions, "lea") if r.stopped_at is None]
        assert [(r.profile, r.gpus, r.cohort_id) for r in running] == [("cpu", 0, seeded.cohorts["cpu"])]

        # Lessons run: lea's own server reports a lesson she saved after running it, to the seats
        # service, with her server's token (the hub never reads her home).
        contents = f"{hub.url}/user/lea/api/contents"
        headers = {"Authorization": f"token {token}"}
        for path, executed in [("courses/99_probe.ipynb", 1), ("courses/98_not_run.ipynb", None),
                               ("notes.ipynb", 2)]:
            saved = requests.put(f"{contents}/{path}", json=_notebook(executed), headers=headers, timeout=60)
            assert saved.status_code in (200, 201), saved.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _lessons_run(sessions, "lea"):
            time.sleep(0.5)
        assert _lessons_run(sessions, "lea") == ["99_probe.ipynb"]
        report = requests.get(f"{hub.url}/services/seats/api/cohorts/{seeded.cohorts['cpu']}/usage",
                              headers={"Authorization": f"token {_admin_token(hub)}"}, timeout=60).json()
        assert [row["lessons_run"] for row in report if row["username"] == "lea"] == [1]
    finally:
        stop_server(hub, "lea", token)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(r.stopped_at is None for r in _records(sessions, "lea")):
        time.sleep(0.5)
    last = _records(sessions, "lea")[-1]
    assert last.stopped_at is not None and last.stopped_at >= last.started_at


def test_a_revoked_seat_stops_new_logins_and_new_servers_at_once(seats_hub):
    from grader.seats import store

    hub, seeded, sessions = seats_hub
    cookie_session = login(hub, "rev")
    token = api_token(hub, cookie_session, "rev")
    with sessions() as session:
        store.revoke_seat(session, seat_id=seeded.seats["rev"])

    _, again = try_login(hub, "rev")
    assert again.status_code == 403 and "was revoked" in login_error(again) and "training@acme.example" in login_error(again)
    # The login cookie and the API token are still valid, and still cannot start a server.
    before, log_offset = _spawn_failures(hub, "seat"), len(hub.log())
    refused = _spawn(hub, "rev", token)
    assert refused.status_code == 403 and refused.json()["message"].startswith(
        "You cannot use this hub now: your seat in cohort 'cpu' was revoked"), refused.text
    # JupyterHub 6's SpawnException: one line in the hub's log, no traceback; the metrics tell it
    # from the spawner's errors (status "failure", reason "seat").
    log = _log_since(hub, log_offset)
    assert "Not starting rev's server" in log and "SpawnException(reason=seat)" in log and "Traceback" not in log, log
    assert _spawn_failures(hub, "seat") == before + 1
    page = cookie_session.get(f"{hub.url}/hub/spawn")
    assert page.status_code == 403 and "was revoked" in page_text(page)
    user = requests.get(f"{hub.url}/hub/api/users/rev", headers={"Authorization": f"token {token}"}).json()
    assert not user["servers"]


def test_a_running_server_is_stopped_when_its_cohort_ends(seats_hub):
    from grader.seats.models import Cohort

    hub, seeded, sessions = seats_hub
    token = api_token(hub, login(hub, "fin"), "fin")
    _start(hub, "fin", token)
    # The days pass: the cohort's last day was yesterday. The service's sweep runs every 2 s.
    with sessions.begin() as session:
        session.execute(update(Cohort).where(Cohort.id == seeded.cohorts["cpu"])
                        .values(starts_on=today() - timedelta(days=40), ends_on=today() - timedelta(days=1)))
    try:
        deadline = time.monotonic() + 90
        servers = {"": {}}
        while time.monotonic() < deadline:
            servers = requests.get(f"{hub.url}/hub/api/users/fin", headers={"Authorization": f"token {token}"}).json()["servers"]
            if not servers:
                break
            time.sleep(1)
        assert servers == {}, "the server outlived its cohort"
        assert all(r.stopped_at is not None for r in _records(sessions, "fin"))
        assert "stopping fin's server" in hub.log()
    finally:
        with sessions.begin() as session:
            session.execute(update(Cohort).where(Cohort.id == seeded.cohorts["cpu"])
                            .values(ends_on=today() + timedelta(days=30)))


# --- the seats database is asked off the hub's event loop -----------------------------------------


def _hold_seats_write_lock(sessions, stack):
    """Take the seats database's write lock (SQLite) or lock the seats table (PostgreSQL) until ``stack`` closes,
    as a slow or busy database server would keep the hub waiting."""
    from grader.seats.db import WRITE_OPTION

    connection = stack.enter_context(sessions.kw["bind"].connect())
    connection = connection.execution_options(**{WRITE_OPTION: True})
    stack.enter_context(connection.begin())
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("LOCK TABLE seats IN ACCESS EXCLUSIVE MODE")


def test_a_login_waiting_for_the_seats_database_does_not_stall_the_hub(seats_hub):
    from contextlib import ExitStack

    hub, _, sessions = seats_hub
    with ThreadPoolExecutor(1) as pool:
        with ExitStack() as lock:
            _hold_seats_write_lock(sessions, lock)
            # eve logs in by address: her login claims invitations, a write that waits for the lock.
            waiting = pool.submit(try_login, hub, "eve@example.org")
            time.sleep(3)
            assert not waiting.done(), "the login did not wait for the seats database"
            # Meanwhile the hub answers everyone else at once.
            started = time.monotonic()
            assert requests.get(f"{hub.url}/hub/api/", timeout=10).status_code == 200
            assert requests.get(f"{hub.url}/hub/login", timeout=10).status_code == 200
            assert time.monotonic() - started < 5
            assert not waiting.done()
        # The lock goes: the login that waited goes through.
        _, response = waiting.result(timeout=60)
    assert response.status_code == 302
