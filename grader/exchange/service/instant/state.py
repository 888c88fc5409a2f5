"""What instant feedback knows, in one SQLite file in the service's storage (``.instant.sqlite``).

One row per submission of a course with instant feedback: when it came, whether the rate limit let
it be graded now (``counted``) or kept it for the record (``held``), its status, and the result
the worker read back from the gradebook (full: the service filters it per policy when showing it).
Plus the pause switch per course. Only the service process writes it, from its one thread.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    course_id TEXT NOT NULL, student_id TEXT NOT NULL, assignment_id TEXT NOT NULL,
    submission_id TEXT NOT NULL, timestamp TEXT NOT NULL, submitted_at TEXT NOT NULL, path TEXT NOT NULL,
    counted INTEGER NOT NULL,          -- 1: graded now under the rate limit; 0: held for the record
    status TEXT NOT NULL,              -- queued | grading | graded | error | held
    result TEXT, flags TEXT, message TEXT NOT NULL DEFAULT '', graded_at TEXT,
    tries INTEGER NOT NULL DEFAULT 0, feedback INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (course_id, student_id, assignment_id, submission_id)
);
CREATE TABLE IF NOT EXISTS paused (course_id TEXT PRIMARY KEY, paused INTEGER NOT NULL);
"""
STATUSES = ("queued", "grading", "graded", "error", "held")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Row:
    course_id: str
    student_id: str
    assignment_id: str
    submission_id: str
    timestamp: str
    submitted_at: datetime
    path: str
    counted: bool
    status: str
    result: dict | None
    flags: list[dict]
    message: str
    graded_at: datetime | None
    tries: int
    feedback: bool


class InstantState:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def _rows(self, where: str, params: tuple) -> list[Row]:
        cursor = self.db.execute(
            "SELECT course_id, student_id, assignment_id, submission_id, timestamp, submitted_at, path, counted, status,"
            f" result, flags, message, graded_at, tries, feedback FROM submissions WHERE {where}"
            " ORDER BY submitted_at, submission_id", params)
        return [Row(c, s, a, i, t, utc(at), p, bool(n), st, json.loads(r) if r else None, json.loads(f) if f else [],
                    m, utc(g) if g else None, tries, bool(fb))
                for c, s, a, i, t, at, p, n, st, r, f, m, g, tries, fb in cursor.fetchall()]

    def add(self, *, course_id: str, student_id: str, assignment_id: str, submission_id: str, timestamp: str,
            submitted_at: datetime, path: str, counted: bool) -> None:
        self.db.execute("INSERT INTO submissions (course_id, student_id, assignment_id, submission_id, timestamp,"
                        " submitted_at, path, counted, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (course_id, student_id, assignment_id, submission_id, timestamp, submitted_at.isoformat(),
                         path, int(counted), "queued" if counted else "held"))

    def update(self, course_id: str, student_id: str, assignment_id: str, submission_id: str, **values) -> None:
        if "result" in values:
            values["result"] = json.dumps(values["result"]) if values["result"] is not None else None
        if "flags" in values:
            values["flags"] = json.dumps(values["flags"])
        if "graded_at" in values and values["graded_at"] is not None:
            values["graded_at"] = values["graded_at"].isoformat()
        assignments = ", ".join(f"{name} = ?" for name in values)
        self.db.execute(f"UPDATE submissions SET {assignments} WHERE course_id = ? AND student_id = ?"
                        " AND assignment_id = ? AND submission_id = ?",
                        (*values.values(), course_id, student_id, assignment_id, submission_id))

    def submissions(self, course_id: str, *, student_id: str | None = None, assignment_id: str | None = None,
                    statuses: tuple[str, ...] = STATUSES) -> list[Row]:
        where, params = ["course_id = ?"], [course_id]
        if student_id is not None:
            where.append("student_id = ?")
            params.append(student_id)
        if assignment_id is not None:
            where.append("assignment_id = ?")
            params.append(assignment_id)
        where.append(f"status IN ({', '.join('?' * len(statuses))})")
        return self._rows(" AND ".join(where), (*params, *statuses))

    def counted_times(self, course_id: str, student_id: str, assignment_id: str) -> list[datetime]:
        """When the student's graded-now submissions of the assignment came (what the rate limit counts)."""
        cursor = self.db.execute("SELECT submitted_at FROM submissions WHERE course_id = ? AND student_id = ?"
                                 " AND assignment_id = ? AND counted = 1", (course_id, student_id, assignment_id))
        return [utc(text) for (text,) in cursor.fetchall()]

    def paused(self, course_id: str) -> bool:
        row = self.db.execute("SELECT paused FROM paused WHERE course_id = ?", (course_id,)).fetchone()
        return bool(row and row[0])

    def set_paused(self, course_id: str, paused: bool) -> None:
        self.db.execute("INSERT INTO paused (course_id, paused) VALUES (?, ?) ON CONFLICT(course_id)"
                        " DO UPDATE SET paused = excluded.paused", (course_id, int(paused)))


def now_utc() -> datetime:
    return datetime.now(timezone.utc)
