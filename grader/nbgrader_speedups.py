"""Work nbgrader's autograde repeats for every submission, done once per grading run instead.

Profiling ``grader autograde`` on A2 showed two avoidable costs in nbgrader 0.9.6's bookkeeping,
which runs under the one-writer gradebook lock and so limits how fast a batch can go:

- every ``Gradebook(...)`` creates a new SQLAlchemy engine (nbgrader opens nine per submission),
  so each of its ~55 queries per submission is compiled again (an engine owns its query cache);
- every nbgrader cell's metadata is checked with ``jsonschema.validate``, which first re-checks
  the schema itself, on every call.

:func:`faster_nbgrader` swaps in a per-URL shared engine and a schema-checked-once validator for
the duration of a run, and puts nbgrader back afterwards. Nothing that is written changes:
``tests/test_autograde_equivalence.py`` compares every gradebook row with ``nbgrader autograde``.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from typing import Iterator

import jsonschema
import nbgrader.api
import nbgrader.nbgraderformat.common as nbgrader_format


class _SharedEngines:
    """``create_engine`` that returns one engine per URL; ``Gradebook.close`` no longer disposes it."""

    def __init__(self, create_engine):
        self._create_engine = create_engine
        self._engines: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def __call__(self, url, **kwargs):
        key = (str(url), tuple(sorted(kwargs.items())))
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = self._create_engine(url, **kwargs)
                # Gradebook.close() disposes its engine: kept open (and its pool) until the run ends.
                engine.dispose = lambda close=True: None
                self._engines[key] = engine
            return engine

    def dispose_all(self) -> None:
        with self._lock:
            for engine in self._engines.values():
                del engine.dispose  # the class's own method again
                engine.dispose()
            self._engines.clear()


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
    engines = _SharedEngines(original_create_engine)
    nbgrader.api.create_engine = engines
    nbgrader_format.jsonschema = _SchemaCheckedOnce()
    try:
        yield
    finally:
        nbgrader.api.create_engine, nbgrader_format.jsonschema = original_create_engine, original_jsonschema
        engines.dispose_all()
