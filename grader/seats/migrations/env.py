"""Alembic environment of the seats database.

Run by :func:`grader.seats.db.upgrade` with an open connection (in ``config.attributes``), which
already holds the migration lock; or, for ``command.revision(..., autogenerate=True)``, with a
``sqlalchemy.url`` to compare the models against.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from grader.seats.db import VERSION_TABLE
from grader.seats.models import Base

target_metadata = Base.metadata


def include_name(name, type_, parent_names):
    # The database may be shared with the hub's or nbgrader's tables: never propose to drop them.
    if type_ == "table":
        return name in target_metadata.tables
    return True


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("the seats migrations run online only (open_seats_db)")
run_migrations_online()
