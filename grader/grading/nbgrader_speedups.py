"""Work nbgrader's autograde repeats for every submission, done once per grading run instead.

Profiling ``grader autograde`` on A2 showed avoidable costs in nbgrader 0.9.6's bookkeeping,
which runs under the one-writer gradebook lock and so limits how fast a batch can go:

- every ``Gradebook(...)`` creates a new SQLAlchemy engine (nbgrader opens nine per submission),
  so each of its ~55 queries per submission is compiled again (an engine owns its query cache);
- every ``Gradebook(...)`` also lists the database's tables, only to learn whether it is new;
- every nbgrader cell's metadata is checked with ``jsonschema.validate``, which first re-checks
  the schema itself, on every call;
- nbgrader commits ~30 times per submission, and a SQLite gradebook in its default rollback
  journal waits for the disk (fsync, twice) at every commit: under load that was a third of the
  bookkeeping. For the run, a SQLite gradebook is switched to write-ahead logging with
  ``synchronous=NORMAL`` (a commit appends to the log; the log is synced at each checkpoint), which
  SQLite documents as corruption-safe on power loss, losing at most the last commits; at the end
  the log is checkpointed and the file put back in the journal mode it had.

:func:`faster_nbgrader` swaps in a per-URL shared engine and a schema-checked-once validator for
the duration of a run, and puts nbgrader back afterwards. Nothing that is written changes:
``tests/grading/test_autograde_equivalence.py`` compares every gradebook row with ``nbgrader autograde``.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Iterator

import jsonschema
import nbgrader.api
import nbgrader.nbgraderformat.common as nbgrader_format
from sqlalchemy import event, text


class _SharedEngines:
    """``create_engine`` that returns one engine per URL; ``Gradebook.close`` no longer disposes it."""

    def __init__(self, create_engine):
        self._create_engine = create_engine
        self._engines: dict[tuple, object] = {}
        self._journal_modes: dict[tuple, str | None] = {}  # SQLite: the mode to put back at the end
        self._lock = threading.Lock()

    def __call__(self, url, **kwargs):
        key = (str(url), tuple(sorted(kwargs.items())))
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._create_engine(url, **kwargs)
                # Gradebook.close() disposes its engine: kept open (and its pool) until the run ends.
                engine.dispose = lambda close=True: None
                if engine.dialect.name == "sqlite":
                    self._journal_modes[key] = _write_ahead_for_the_run(engine)
                self._engines[key] = engine
            return engine

    def dispose_all(self) -> None:
        with self._lock:
            for key, engine in self._engines.items():
                del engine.dispose  # the class's own method again
                engine.dispose()
                if self._journal_modes.get(key):
                    _restore_journal_mode(engine, self._journal_modes[key])
            self._engines.clear()
            self._journal_modes.clear()


def _once_per_bind(create_all):
    done: set[int] = set()

    def create_all_once(bind=None, **kwargs):
        if id(bind) not in done:
            create_all(bind=bind, **kwargs)
            done.add(id(bind))

    return create_all_once


def _write_ahead_for_the_run(engine) -> str | None:
    """Switch a SQLite gradebook to WAL (once, on the file) and every connection of ``engine`` to
    ``synchronous=NORMAL``; return the journal mode to put back, or None where it stays as it was
    (an in-memory database, or a file another process holds open in a way that refuses the switch)."""
    try:
        with engine.connect() as connection:
            before = connection.execute(text("PRAGMA journal_mode")).scalar()
            after = connection.execute(text("PRAGMA journal_mode=WAL")).scalar()
    except Exception:  # the gradebook works as before, only slower
        return None
    if str(after).lower() != "wal":
        return None

    @event.listens_for(engine, "connect")
    def _normal_sync(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    # Connections opened before the listener (the one above) were closed back to the pool: drop them.
    engine.pool.dispose()
    return None if str(before).lower() == "wal" else str(before)


def _restore_journal_mode(engine, mode: str) -> None:
    """Checkpoint the log into the file (synced) and put back its journal mode. If another process
    has the file open the switch is refused and the file stays in WAL, which is just as safe."""
    try:
        with engine.connect() as connection:
            # Each result is read to its end: an unfinished statement would refuse the switch.
            connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).fetchall()
            connection.execute(text(f"PRAGMA journal_mode={mode}")).fetchall()
    except Exception:
        pass
    finally:
        engine.dispose()


class _TablesOnceCreated:
    """Stands in for ``sqlalchemy.inspect`` in nbgrader's ``Gradebook.__init__``, which asks each
    new gradebook's engine for its table names only to learn whether the database is new. Once
    an engine has shown tables they stay for the run (nothing drops them): later gradebooks on the
    same shared engine are told so without a query."""

    def __init__(self, inspect):
        self._inspect = inspect
        self._with_tables: set[int] = set()
        self._lock = threading.Lock()

    def __call__(self, engine):
        with self._lock:
            known = id(engine) in self._with_tables
        if known:
            return _KnownTables()
        inspector = self._inspect(engine)
        if inspector.get_table_names():
            with self._lock:
                self._with_tables.add(id(engine))
        return inspector


class _KnownTables:
    def get_table_names(self) -> list[str]:
        return ["grade"]  # non-empty: the database exists; nbgrader reads nothing else from it


class _SchemaCheckedOnce:
    """Stands in for the ``jsonschema`` module inside nbgrader's metadata validator.

    ``validate`` raises the same error ``jsonschema.validate`` would (its ``best_match``), but the
    schema is checked and compiled once per schema instead of once per cell.
    """

    def __init__(self):
        self._validators: dict[str, object] = {}
        self._lock = threading.Lock()

    def validate(self, instance, schema) -> None:
        # nbgrader loads its schema afresh for every validator object, so key on the content.
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                validator = self._validators[key] = cls(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        if error is not None:
            raise error

    def __getattr__(self, name):
        return getattr(jsonschema, name)


@contextmanager
def faster_nbgrader() -> Iterator[None]:
    """Within the block, nbgrader shares gradebook engines and checks its metadata schema once."""
    original_create_engine, original_jsonschema = nbgrader.api.create_engine, nbgrader_format.jsonschema
    original_inspect = nbgrader.api.inspect
    engines = _SharedEngines(original_create_engine)
    nbgrader.api.create_engine = engines
    nbgrader.api.inspect = _TablesOnceCreated(original_inspect)
    nbgrader_format.jsonschema = _SchemaCheckedOnce()
    # Every Gradebook(...) (nine per submission) re-checks that each table exists; with one engine
    # per URL for the run, once per engine is enough.
    metadata = nbgrader.api.Base.metadata
    metadata.create_all = _once_per_bind(metadata.create_all)
    try:
        yield
    finally:
        nbgrader.api.create_engine, nbgrader_format.jsonschema = original_create_engine, original_jsonschema
        nbgrader.api.inspect = original_inspect
        del metadata.create_all  # the class's own method again
        engines.dispose_all()
