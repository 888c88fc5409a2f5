"""What the hub learns from LTI launches and what it sent back: one SQLite file, ``<data_dir>/lti/lti.sqlite`` (0600).

- ``identities``: (registration, LTI user id) -> hub user name; AGS needs the LTI id of a student;
- ``contexts``: (registration, LMS course) -> hub course, deployment, and the NRPS and AGS endpoints
  the launch claims gave (the command line calls them later, outside any launch);
- ``assignment_lineitems``: the line item a launch's link to an assignment came with (AGS ``lineitem``);
- ``nonces``: id_token nonces already used, kept ``max_age`` seconds (a replayed launch is refused);
- ``sent_scores``: every score posted to a line item, with the platform's answer (re-posting the
  same score is skipped: idempotent, and a record of what was sent).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from grader.lti.registrations import lti_dir

SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    registration TEXT NOT NULL, lti_user_id TEXT NOT NULL, username TEXT NOT NULL, email TEXT, name TEXT,
    PRIMARY KEY (registration, lti_user_id));
CREATE INDEX IF NOT EXISTS identities_by_username ON identities (username);
CREATE TABLE IF NOT EXISTS contexts (
    registration TEXT NOT NULL, context_id TEXT NOT NULL, course TEXT NOT NULL, deployment_id TEXT NOT NULL,
    title TEXT, memberships_url TEXT, lineitems_url TEXT, ags_scopes TEXT, updated REAL NOT NULL,
    PRIMARY KEY (registration, context_id));
CREATE TABLE IF NOT EXISTS assignment_lineitems (
    registration TEXT NOT NULL, context_id TEXT NOT NULL, assignment TEXT NOT NULL, lineitem TEXT NOT NULL,
    PRIMARY KEY (registration, context_id, assignment));
CREATE TABLE IF NOT EXISTS nonces (
    registration TEXT NOT NULL, nonce TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (registration, nonce));
CREATE TABLE IF NOT EXISTS sent_scores (
    id INTEGER PRIMARY KEY AUTOINCREMENT, registration TEXT NOT NULL, lineitem TEXT NOT NULL,
    lti_user_id TEXT NOT NULL, username TEXT NOT NULL, assignment TEXT NOT NULL, score_given REAL NOT NULL,
    score_maximum REAL NOT NULL, sent_at REAL NOT NULL, status INTEGER NOT NULL, attempts INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Context:
    registration: str
    context_id: str
    course: str
    deployment_id: str
    title: str
    memberships_url: str
    lineitems_url: str
    ags_scopes: tuple[str, ...]


@dataclass(frozen=True)
class SentScore:
    registration: str
    lineitem: str
    lti_user_id: str
    username: str
    assignment: str
    score_given: float
    score_maximum: float
    status: int
    attempts: int


class LtiStore:
    """The LTI records of one hub; each call opens and closes its own connection (hub and CLI share the file)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        with self._db() as db:
            db.executescript(SCHEMA)

    @classmethod
    def of(cls, data_dir: Path) -> "LtiStore":
        return cls(lti_dir(data_dir) / "lti.sqlite")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            with db:
                yield db

    # --- launches -------------------------------------------------------------------------------

    def use_nonce(self, registration: str, nonce: str, max_age: float) -> bool:
        """Record a launch's nonce; False when it was seen already (a replay)."""
        now = time.time()
        with self._db() as db:
            db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
            try:
                db.execute("INSERT INTO nonces VALUES (?, ?, ?)", (registration, nonce, now + max_age))
            except sqlite3.IntegrityError:
                return False
        return True

    def remember_identity(self, registration: str, lti_user_id: str, username: str, *, email: str = "",
                          name: str = "") -> None:
        with self._db() as db:
            db.execute("INSERT INTO identities VALUES (?, ?, ?, ?, ?) ON CONFLICT (registration, lti_user_id) DO UPDATE "
                       "SET username = excluded.username, email = excluded.email, name = excluded.name",
                       (registration, lti_user_id, username, email, name))

    def lti_user_ids(self, registration: str) -> dict[str, str]:
        """{hub user name: LTI user id} of one registration."""
        with self._db() as db:
            rows = db.execute("SELECT username, lti_user_id FROM identities WHERE registration = ?", (registration,))
            return dict(rows.fetchall())

    def remember_context(self, context: Context) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO contexts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (registration, context_id) DO UPDATE "
                "SET course = excluded.course, deployment_id = excluded.deployment_id, title = excluded.title, "
                "memberships_url = COALESCE(NULLIF(excluded.memberships_url, ''), contexts.memberships_url), "
                "lineitems_url = COALESCE(NULLIF(excluded.lineitems_url, ''), contexts.lineitems_url), "
                "ags_scopes = CASE WHEN excluded.ags_scopes = '[]' THEN contexts.ags_scopes ELSE excluded.ags_scopes END, "
                "updated = excluded.updated",
                (context.registration, context.context_id, context.course, context.deployment_id, context.title,
                 context.memberships_url, context.lineitems_url, json.dumps(list(context.ags_scopes)), time.time()))

    def remember_lineitem(self, registration: str, context_id: str, assignment: str, lineitem: str) -> None:
        """The line item the LMS gave a link to an assignment (a Moodle activity's own grade column)."""
        with self._db() as db:
            db.execute("INSERT INTO assignment_lineitems VALUES (?, ?, ?, ?) ON CONFLICT "
                       "(registration, context_id, assignment) DO UPDATE SET lineitem = excluded.lineitem",
                       (registration, context_id, assignment, lineitem))

    def lineitem(self, registration: str, context_id: str, assignment: str) -> str:
        with self._db() as db:
            row = db.execute("SELECT lineitem FROM assignment_lineitems WHERE registration = ? AND context_id = ? "
                             "AND assignment = ?", (registration, context_id, assignment)).fetchone()
        return row[0] if row else ""

    def contexts(self, course: str) -> list[Context]:
        """The LMS courses linked to a hub course (one per registration and LMS course)."""
        with self._db() as db:
            rows = db.execute("SELECT registration, context_id, course, deployment_id, title, memberships_url, "
                              "lineitems_url, ags_scopes FROM contexts WHERE course = ? ORDER BY registration, "
                              "context_id", (course,)).fetchall()
        return [Context(*row[:7], tuple(json.loads(row[7] or "[]"))) for row in rows]

    # --- scores ----------------------------------------------------------------------------------

    def last_sent(self, registration: str, lineitem: str, lti_user_id: str) -> SentScore | None:
        """The last score accepted by the platform for this person on this line item."""
        with self._db() as db:
            row = db.execute("SELECT registration, lineitem, lti_user_id, username, assignment, score_given, "
                             "score_maximum, status, attempts FROM sent_scores WHERE registration = ? AND lineitem = ? "
                             "AND lti_user_id = ? AND status < 300 ORDER BY id DESC LIMIT 1",
                             (registration, lineitem, lti_user_id)).fetchone()
        return SentScore(*row) if row else None

    def record_sent(self, sent: SentScore) -> None:
        with self._db() as db:
            db.execute("INSERT INTO sent_scores (registration, lineitem, lti_user_id, username, assignment, score_given, "
                       "score_maximum, sent_at, status, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (sent.registration, sent.lineitem, sent.lti_user_id, sent.username, sent.assignment,
                        sent.score_given, sent.score_maximum, time.time(), sent.status, sent.attempts))

    def sent_scores(self, assignment: str | None = None) -> list[SentScore]:
        with self._db() as db:
            rows = db.execute("SELECT registration, lineitem, lti_user_id, username, assignment, score_given, "
                              "score_maximum, status, attempts FROM sent_scores WHERE ? IS NULL OR assignment = ? "
                              "ORDER BY id", (assignment, assignment)).fetchall()
        return [SentScore(*row) for row in rows]
