"""Read what ``grader status`` shows from nbgrader's gradebook with plain SQL, without nbgrader.

``nbgrader.api`` costs about 2 s to import (nbgrader's package ``__init__``); the few numbers
status needs are a handful of queries on nbgrader's tables (schema of nbgrader 0.9.6). Each
computed value repeats the ``column_property`` of ``nbgrader/api.py`` it stands for:

- a grade's score: ``manual_score`` if set, else ``auto_score``, plus ``extra_credit``; else 0
  (``Grade.score``); a submission's score is the sum over its grades (``SubmittedAssignment.score``);
- an assignment's max score: the max scores of its grade cells plus those of its task cells
  (``Assignment.max_score``);
- a submission's late penalty: the sum over its notebooks (``SubmittedAssignment.late_submission_penalty``);
- needs manual grade: any of its grades does (``SubmittedAssignment.needs_manual_grade``);
- zeroed by the ``zero`` policy: :func:`grader.grading.integrity.policy.zeroed_by_policy`'s rule
  (a comment with the policy's mark, and an autograded grade still at the policy's 0).

SQLite URLs of a file (every course this platform makes) are read with :mod:`sqlite3`; any other
URL (PostgreSQL) through SQLAlchemy Core, with the same SQL. A SQLite gradebook that does not
exist yet is created by nbgrader's ``Gradebook``, as status always did.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
from dataclasses import dataclass
from typing import Any, Iterator

# grader.grading.integrity.policy.MARK; not imported: that module imports nbgrader.
POLICY_MARK = "[grader] Flagged:"

_GRADE_SCORE = """CASE
    WHEN g.manual_score IS NOT NULL THEN g.manual_score + COALESCE(g.extra_credit, 0.0)
    WHEN g.auto_score IS NOT NULL THEN g.auto_score + COALESCE(g.extra_credit, 0.0)
    ELSE 0.0 END"""

_ASSIGNMENTS = "SELECT name, duedate FROM assignment"

_MAX_SCORE = """
SELECT
    (SELECT COALESCE(SUM(gc.max_score), 0.0) FROM grade_cells gc
        JOIN base_cell bc ON bc.id = gc.id JOIN notebook nb ON nb.id = bc.notebook_id
        WHERE nb.assignment_id = a.id)
  + (SELECT COALESCE(SUM(tc.max_score), 0.0) FROM task_cells tc
        JOIN base_cell bc ON bc.id = tc.id JOIN notebook nb ON nb.id = bc.notebook_id
        WHERE nb.assignment_id = a.id)
FROM assignment a WHERE a.name = :assignment
"""

_SUBMISSIONS = f"""
SELECT sa.student_id,
    (SELECT COALESCE(SUM({_GRADE_SCORE}), 0.0) FROM submitted_notebook sn
        JOIN grade g ON g.notebook_id = sn.id WHERE sn.assignment_id = sa.id),
    (SELECT COALESCE(SUM(sn.late_submission_penalty), 0.0) FROM submitted_notebook sn
        WHERE sn.assignment_id = sa.id),
    EXISTS (SELECT 1 FROM submitted_notebook sn JOIN grade g ON g.notebook_id = sn.id
        WHERE sn.assignment_id = sa.id AND g.needs_manual_grade),
    EXISTS (SELECT 1 FROM submitted_notebook sn JOIN grade g ON g.notebook_id = sn.id
        LEFT JOIN grade_cells gc ON gc.id = g.cell_id LEFT JOIN task_cells tc ON tc.id = g.cell_id
        WHERE sn.assignment_id = sa.id AND COALESCE(gc.cell_type, tc.cell_type) = 'code' AND g.manual_score = 0.0)
FROM submitted_assignment sa JOIN assignment a ON a.id = sa.assignment_id
WHERE a.name = :assignment
"""

# The manual comments of the assignment's submissions; the mark is looked for in Python, where
# `in` is case-sensitive everywhere (SQLite's LIKE is not).
_COMMENTS = """
SELECT sa.student_id, c.manual_comment FROM comment c
    JOIN submitted_notebook sn ON sn.id = c.notebook_id
    JOIN submitted_assignment sa ON sa.id = sn.assignment_id
    JOIN assignment a ON a.id = sa.assignment_id
WHERE a.name = :assignment AND c.manual_comment IS NOT NULL
"""


@dataclass(frozen=True)
class SubmissionRow:
    """One student's submission of one assignment, as nbgrader's ``SubmittedAssignment`` computes it."""

    student_id: str
    score: float  # before the late penalty
    max_score: float
    late_penalty: float
    needs_manual_grade: bool
    zeroed_by_policy: bool


def _sqlite_file(db_url: str, root: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (relative to the course directory, where
    nbgrader's tools run); None for any other URL, left to SQLAlchemy."""
    prefix = "sqlite:///"
    path = db_url[len(prefix):] if db_url.startswith(prefix) else ""
    if not path or any(char in path for char in "?%#") or path == ":memory:":
        return None
    return os.path.join(root, path)


class _Reader:
    """Runs the queries with ``:name`` parameters on sqlite3 or a SQLAlchemy connection."""

    def __init__(self, run):
        self._run = run

    def rows(self, sql: str, **params: Any) -> list[tuple]:
        return [tuple(row) for row in self._run(sql, params)]


def _create_missing_gradebook(db_url: str, course_id: str) -> None:
    from nbgrader.api import Gradebook

    Gradebook(db_url, course_id=course_id).close()


@contextlib.contextmanager
def _opened(db_url: str, course_id: str, root: str) -> Iterator[_Reader]:
    path = _sqlite_file(db_url, root)
    if path is not None:
        if not os.path.exists(path):
            _create_missing_gradebook("sqlite:///" + path, course_id)
        connection = sqlite3.connect(path, timeout=60)
        try:
            yield _Reader(lambda sql, params: connection.execute(sql, params).fetchall())
        finally:
            connection.close()
        return
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(db_url)
    try:
        if not inspect(engine).has_table("assignment"):
            _create_missing_gradebook(db_url, course_id)
        with engine.connect() as connection:
            yield _Reader(lambda sql, params: connection.execute(text(sql), params).fetchall())
    finally:
        engine.dispose()


def _as_datetime(value: Any) -> datetime.datetime | None:
    # SQLite keeps nbgrader's DateTime as text ("2026-11-20 12:00:00.000000"); PostgreSQL's driver
    # gives a datetime already.
    if value is None or isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(str(value))


class GradebookReader:
    """Read-only queries on one course's gradebook; open it with :func:`open_gradebook`."""

    def __init__(self, reader: _Reader):
        self._reader = reader

    def duedates(self) -> dict[str, datetime.datetime | None]:
        """{assignment name: due date (naive UTC, as nbgrader stores it)} of every assignment."""
        return {name: _as_datetime(duedate) for name, duedate in self._reader.rows(_ASSIGNMENTS)}

    def max_score(self, assignment_id: str) -> float | None:
        """The assignment's max score; None when it is not in the gradebook."""
        rows = self._reader.rows(_MAX_SCORE, assignment=assignment_id)
        return float(rows[0][0]) if rows else None

    def submissions(self, assignment_id: str) -> dict[str, SubmissionRow]:
        """{student id: submission} of every submission of the assignment in the gradebook."""
        max_score = self.max_score(assignment_id)
        marked = {student for student, comment in self._reader.rows(_COMMENTS, assignment=assignment_id)
                  if POLICY_MARK in comment}
        return {
            student: SubmissionRow(student, float(score), max_score or 0.0, float(penalty), bool(needs_manual),
                                   student in marked and bool(zero_code_grade))
            for student, score, penalty, needs_manual, zero_code_grade in self._reader.rows(_SUBMISSIONS, assignment=assignment_id)
        }


@contextlib.contextmanager
def open_gradebook(db_url: str, *, course_id: str, root: str) -> Iterator[GradebookReader]:
    """The gradebook at ``db_url`` for reading; ``root`` (the course directory) anchors a relative
    SQLite path."""
    with _opened(db_url, course_id, root) as reader:
        yield GradebookReader(reader)
