"""Fixtures for the seats tests: the same test on a SQLite file and on a real PostgreSQL server.

``seats_url`` is parametrised over both backends: a SQLite file in ``tmp_path``, or a fresh
database on one throw-away PostgreSQL server per test session (``tests/support/postgres.py``; skipped
where the server binaries are not installed). Import the fixtures into a test module by name.
"""

from __future__ import annotations

import itertools
from contextlib import ExitStack
from datetime import date

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from tests.support import postgres

_databases = itertools.count(1)
needs_postgres = pytest.mark.skipif(postgres.server_binaries() is None, reason="PostgreSQL server not installed")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=needs_postgres)]


_server: dict[str, str] = {}


@pytest.fixture(scope="session")
def postgres_server(request):
    """The URL of a database on a private PostgreSQL server, stopped when the session ends.

    Each test module imports this fixture, which makes it a fixture of each module; the server
    is kept here so that one is started per test process, not one per module.
    """
    if "url" not in _server:
        stack = ExitStack()
        _server["url"] = stack.enter_context(postgres.running_postgres())
        request.config.add_cleanup(lambda: (_server.clear(), stack.close()))
    return _server["url"]


def fresh_postgres_database(server_url: str) -> str:
    """Create an empty database on the server; its URL."""
    name = f"seats_{next(_databases)}"
    admin = create_engine(make_url(server_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def seats_url(request, tmp_path) -> str:
    """An empty seats database URL, one per test, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'seats.sqlite'}"
    return fresh_postgres_database(request.getfixturevalue("postgres_server"))


@pytest.fixture
def seats_db(seats_url):
    """A migrated seats database on each backend: its session factory, closed afterwards."""
    from grader.seats.db import close_seats_db, open_seats_db

    factory = open_seats_db(seats_url)
    yield factory
    close_seats_db(factory)


def make_cohort(session, *, seat_limit=10, starts_on=date(2026, 3, 1), ends_on=date(2026, 5, 31),
                profiles=("cpu",), organisation="Acme", contact="training@acme.example", name="spring"):
    """An organisation (reused when it exists) with one cohort of ai101; the cohort."""
    from grader.seats import store
    from grader.seats.models import Organisation

    org = session.scalars(select(Organisation).where(Organisation.name == organisation)).one_or_none()
    if org is None:
        org = store.create_organisation(session, name=organisation, contact_email=contact)
    return store.create_cohort(session, organisation_id=org.id, name=name, course_id="ai101", starts_on=starts_on,
                               ends_on=ends_on, seat_limit=seat_limit, profiles=list(profiles))
