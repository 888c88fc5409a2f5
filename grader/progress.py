"""Which submissions are fully graded: the record that makes autograde resumable.

A row is written only after nbgrader has saved every grade of a submission, in one transaction;
a submission without a row (the grader was killed while grading it) is graded again on the next
run, and reports read scores only of submissions that have a row. The fingerprint ties a row to
the exact files that were graded, so a resubmission is graded again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS graded (
    assignment_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    changes TEXT NOT NULL,
    seconds REAL NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (assignment_id, student_id)
)
"""


@dataclass(frozen=True)
class GradedRecord:
    assignment_id: str
    student_id: str
    fingerprint: str
    status: str  # ok, or the limit that ended it: timeout, memory, output, died, ...
    reason: str = ""
    changes: list[str] = field(default_factory=list)  # tampering found and repaired
    seconds: float = 0.0


def fingerprint(folder: Path) -> str:
    """A digest of every file of a submission (names and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class ProgressStore:
    def __init__(self, course_dir: Path):
        self.path = Path(course_dir) / ".grader" / "progress.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def is_done(self, assignment_id: str, student_id: str, fingerprint_: str) -> bool:
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT fingerprint FROM graded WHERE assignment_id = ? AND student_id = ?", (assignment_id, student_id)
            ).fetchone()
        return row is not None and row[0] == fingerprint_

    def mark_done(self, record: GradedRecord) -> None:
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO graded VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (record.assignment_id, record.student_id, record.fingerprint, record.status, record.reason,
                 json.dumps(record.changes), record.seconds, time.time()),
            )

    def forget(self, assignment_id: str, student_id: str) -> None:
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM graded WHERE assignment_id = ? AND student_id = ?", (assignment_id, student_id))

    def records(self, assignment_id: str | None = None) -> list[GradedRecord]:
        query, args = "SELECT assignment_id, student_id, fingerprint, status, reason, changes, seconds FROM graded", ()
        if assignment_id is not None:
            query, args = query + " WHERE assignment_id = ?", (assignment_id,)
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY assignment_id, student_id", args).fetchall()
        return [GradedRecord(a, s, f, st, r, json.loads(c), sec) for a, s, f, st, r, c, sec in rows]
