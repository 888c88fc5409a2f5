"""Open the seats database: an engine with sane settings, brought to the newest migration.

SQLite (a file, by default ``seats.sqlite`` in the hub's data folder) for one machine;
PostgreSQL when a ``postgresql://`` URL is configured. The schema is owned by the Alembic
revisions in ``grader/seats/migrations`` and applied by :func:`open_seats_db`, so a hub, a CLI
call and a test all open the database the same way. To write a new revision after changing
:mod:`grader.seats.models`::

    from alembic import command
    from grader.seats.db import alembic_config
    command.revision(alembic_config("sqlite:///scratch.sqlite"), message="...", autogenerate=True)

(after ``open_seats_db("sqlite:///scratch.sqlite")`` has brought that scratch file to head).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import sessionmaker

from grader.seats.defaults import URL_ENV

# Our own version table: the seats tables may share a PostgreSQL database with the hub's or
# nbgrader's, and nbgrader's gradebook already has an ``alembic_version``.
VERSION_TABLE = "seats_alembic_version"
# Execution option asking a SQLite transaction to take the write lock at BEGIN (see below).
WRITE_OPTION = "seats_write"
# Any constant: the PostgreSQL advisory lock two processes migrating at once queue on.
_MIGRATION_LOCK_KEY = 0x5EA75
SQLITE_BUSY_TIMEOUT_MS = 30_000


class NoSeatsDatabase(Exception):
    """The URL names no seats database: a SQLite file that does not exist, or a database without
    the seats tables. Opened with ``create=False`` (the command line), so a wrong URL or folder is
    an error naming it, never a new empty database."""


def environment_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """``$GRADER_SEATS_DB``: how the hub hands its seats service the database (None when unset)."""
    return environ.get(URL_ENV) or None


def _sqlite_settings(engine: Engine) -> None:
    # pysqlite's own transaction handling delays BEGIN until the first write, which makes a
    # read-then-write transaction fail with "database is locked" instead of waiting. So the
    # driver is put in autocommit mode and we issue BEGIN ourselves (SQLAlchemy's documented
    # recipe); write transactions say BEGIN IMMEDIATE: they take the write lock before reading
    # what they check, so a seat count cannot change between the check and the insert.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        # WAL: readers (the hub's pages) never wait for a writer and the other way round.
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        immediate = connection.get_execution_options().get(WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url`` with the settings the seats code relies on (not migrated). Without
    ``create`` a SQLite file that does not exist is :class:`NoSeatsDatabase`, not made."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            # Each pooled connection would get its own empty in-memory database.
            raise ValueError(f"{url}: the seats database must be a file (sqlite:///path/to/seats.sqlite)")
        if not create and not Path(parsed.database).is_file():
            raise NoSeatsDatabase(f"no seats database at {Path(parsed.database).resolve()}")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        _sqlite_settings(engine)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver the project installs; plain postgresql:// would mean psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


def alembic_config(url: str | None = None, *, connection=None) -> Config:
    """Alembic's configuration for the seats migrations, shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", "grader.seats:migrations")
    if url is not None:
        # Config values are interpolated: a % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Migrate to ``revision`` under a lock, so two processes opening at once migrate once."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            if engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            # On SQLite, BEGIN IMMEDIATE above is the lock; DDL is transactional on both.
            command.upgrade(alembic_config(connection=connection), revision)


def downgrade(engine: Engine, *, revision: str) -> None:
    """Migrate down to ``revision`` ("base": no seats tables); for tests and rollbacks."""
    with engine.connect() as connection:
        connection = connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            command.downgrade(alembic_config(connection=connection), revision)


def open_seats_db(url: str, *, create: bool = True) -> sessionmaker:
    """Open (creating or migrating as needed) the seats database at ``url``; a session factory.

    Without ``create`` only an existing seats database is opened (and migrated if older):
    a missing SQLite file, or a database without the seats tables, raises :class:`NoSeatsDatabase`.
    Sessions keep their objects readable after commit (``expire_on_commit=False``), so a seat
    returned by :mod:`grader.seats.store` can be shown after its transaction ended. The engine
    is ``factory.kw["bind"]``; :func:`close_seats_db` disposes of it.
    """
    engine = make_engine(url, create=create)
    try:
        if not create and not inspect(engine).has_table(VERSION_TABLE):
            raise NoSeatsDatabase(f"{make_url(url).render_as_string(hide_password=True)} holds no seats tables")
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return sessionmaker(bind=engine, expire_on_commit=False)


def close_seats_db(factory: sessionmaker) -> None:
    """Close the pooled connections of a factory from :func:`open_seats_db`."""
    factory.kw["bind"].dispose()
