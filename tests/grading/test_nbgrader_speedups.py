"""What grader.grading.nbgrader_speedups changes for the length of a run, and that it puts everything back."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import nbgrader.api
from nbgrader.api import Gradebook

from grader.grading.nbgrader_speedups import faster_nbgrader


def _journal_mode(path) -> str:
    # Closed at once: while another connection is open, SQLite refuses to leave WAL mode.
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_sqlite_gradebook_is_write_ahead_during_the_run_and_as_before_after(tmp_path):
    path = tmp_path / "gradebook.db"
    url = f"sqlite:///{path}"
    with Gradebook(url) as gradebook:  # created outside the run: the default rollback journal
        gradebook.add_student("ada")
    assert _journal_mode(path) == "delete"

    with faster_nbgrader():
        for name in ("bob", "cy"):
            with Gradebook(url) as gradebook:
                gradebook.add_student(name)
        assert _journal_mode(path) == "wal"
        with Gradebook(url) as gradebook:
            synchronous = gradebook.db.execute(nbgrader.api.text("PRAGMA synchronous")).scalar()
        assert synchronous == 1  # NORMAL, on the run's own connections

    assert _journal_mode(path) == "delete"
    assert not (tmp_path / "gradebook.db-wal").exists()
    with Gradebook(url) as gradebook:  # every write of the run is in the file itself
        assert sorted(student.id for student in gradebook.students) == ["ada", "bob", "cy"]


def test_nbgrader_is_itself_again_after_the_run(tmp_path):
    create_engine, create_all = nbgrader.api.create_engine, nbgrader.api.Base.metadata.create_all
    with faster_nbgrader():
        assert nbgrader.api.create_engine is not create_engine
    assert nbgrader.api.create_engine is create_engine
    assert nbgrader.api.Base.metadata.create_all == create_all
    assert "create_all" not in vars(nbgrader.api.Base.metadata)
