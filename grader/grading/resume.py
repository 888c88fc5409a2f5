"""Which submissions are fully graded: the record that makes autograde resumable.

A row is written only after nbgrader has saved every grade of a submission, in one transaction;
a submission without a row (the grader was killed while grading it) is graded again on the next
run, and reports read scores only of submissions that have a row. The fingerprint ties a row to
the exact files that were graded, so a resubmission is graded again.

A row also keeps the submission's :class:`~grader.flags.Flag` list (JSON, column
``flags``), everything an instructor should check before trusting the score. A database written
before that column existed is migrated when opened (``ALTER TABLE``); its rows' ``changes`` read
as ``tamper`` flags and a status other than ``ok`` as a ``limit`` flag (:func:`record_flags`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from grader.flags import Flag
from grader.regular_files import walk_regular

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
    flags TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (assignment_id, student_id)
)
"""
# What the last `grader collect` skipped in each student's submission (grader.grading.file_exchange).
_COLLECTED_SCHEMA = """
CREATE TABLE IF NOT EXISTS collected (
    assignment_id TEXT NOT NULL,
    student_id TEXT NOT NULL,
    flags TEXT NOT NULL,
    collected_at REAL NOT NULL,
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
    flags: list[Flag] = field(default_factory=list)  # what an instructor should check (grader.grading.integrity)


def record_flags(record: GradedRecord) -> list[Flag]:
    """Every flag of a record: its ``flags``, each of its ``changes`` as a ``tamper`` flag and a
    status other than ``ok`` as a ``limit`` flag, unless already among them (rows written before
    flags existed, or by a writer that fills only ``changes`` and ``status``)."""
    flags = list(record.flags)
    seen = {(flag.kind, flag.reason) for flag in flags}
    for change in record.changes:
        if ("tamper", change) not in seen:
            flags.append(Flag("tamper", change))
            seen.add(("tamper", change))
    if record.status != "ok" and not any(flag.kind == "limit" for flag in flags):
        flags.append(Flag("limit", f"{record.status}: {record.reason}" if record.reason else record.status))
    return flags


def fingerprint(folder: Path) -> str:
    """A digest of every entry of a submission: names and contents of its regular files, and the
    kind (and link target) of anything else, which is never opened or followed."""
    digest = hashlib.sha256()
    for item in walk_regular(folder):
        if isinstance(item, Flag):
            # Without the link count: another link made to the same file elsewhere is not a change
            # of this submission.
            digest.update(b"\1" + re.sub(r"\(\d+ links", "(links", item.reason).encode() + b"\0")
            continue
        digest.update(item.relative.encode() + b"\0")
        contents = hashlib.sha256()
        while chunk := os.read(item.fd, 1 << 20):
            contents.update(chunk)
        digest.update(contents.digest())
    return digest.hexdigest()


class ProgressStore:
    def __init__(self, course_dir: Path):
        self.path = Path(course_dir) / ".grader" / "progress.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(_SCHEMA)
            db.execute(_COLLECTED_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(graded)")}
            if "flags" not in columns:  # written before flags existed
                db.execute("ALTER TABLE graded ADD COLUMN flags TEXT NOT NULL DEFAULT '[]'")

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
                "INSERT OR REPLACE INTO graded (assignment_id, student_id, fingerprint, status, reason, changes,"
                " seconds, finished_at, flags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.assignment_id, record.student_id, record.fingerprint, record.status, record.reason,
                 json.dumps(record.changes), record.seconds, time.time(),
                 json.dumps([flag.to_dict() for flag in record.flags])),
            )

    def records(self, assignment_id: str | None = None) -> list[GradedRecord]:
        query, args = ("SELECT assignment_id, student_id, fingerprint, status, reason, changes, seconds, flags"
                       " FROM graded"), ()
        if assignment_id is not None:
            query, args = query + " WHERE assignment_id = ?", (assignment_id,)
        with closing(self._connect()) as db:
            rows = db.execute(query + " ORDER BY assignment_id, student_id", args).fetchall()
        return [GradedRecord(a, s, f, st, r, json.loads(c), sec, [Flag.from_dict(item) for item in json.loads(fl)])
                for a, s, f, st, r, c, sec, fl in rows]

    def set_collect_flags(self, assignment_id: str, student_id: str, flags: list[Flag]) -> None:
        """What collecting this student's latest submission skipped (an empty list: nothing)."""
        with closing(self._connect()) as db, db:
            db.execute("INSERT OR REPLACE INTO collected VALUES (?, ?, ?, ?)",
                       (assignment_id, student_id, json.dumps([flag.to_dict() for flag in flags]), time.time()))

    def collect_flags(self, assignment_id: str, student_id: str) -> list[Flag]:
        """The ``files`` flags of the last collect of this student's submission; autograde adds them
        to the submission's flags (the skipped entries are not in ``submitted/`` to be seen again)."""
        with closing(self._connect()) as db:
            row = db.execute("SELECT flags FROM collected WHERE assignment_id = ? AND student_id = ?",
                             (assignment_id, student_id)).fetchone()
        return [Flag.from_dict(item) for item in json.loads(row[0])] if row else []

    def collected(self, assignment_id: str) -> dict[str, tuple[float, list[Flag]]]:
        """{student id: (when collected, files flags)} of every collected submission of the assignment."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT student_id, collected_at, flags FROM collected WHERE assignment_id = ?",
                              (assignment_id,)).fetchall()
        return {student: (when, [Flag.from_dict(item) for item in json.loads(flags)]) for student, when, flags in rows}
