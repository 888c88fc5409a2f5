"""Local accounts: Argon2id-hashed passwords, lockout, sign-up requests and invitations, in SQLite.

Kept apart from JupyterHub's own database so the hub can be upgraded or reset without losing
passwords, and so ``grader`` commands can manage accounts while the hub runs (SQLite handles the
concurrent access; each operation is one short transaction).

An account is ``active`` (may log in) or ``pending`` (asked for on the sign-up page, waiting for an
admin's approval). An invitation is a one-time token with an expiry; only its SHA-256 is stored,
so a copy of the database does not hand out accounts.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Argon2id cost: OWASP's Password Storage Cheat Sheet minimum (m=19 MiB, t=2, p=1). Every hash
# carries its own cost ("$argon2id$v=19$m=19456,t=2,p=1$salt$digest"), so changing these numbers
# rehashes each account at its next successful login (PasswordHasher.check_needs_rehash).
ARGON2_PARAMS = {"memory_cost": 19456, "time_cost": 2, "parallelism": 1}  # memory_cost in KiB
_ARGON2 = PasswordHasher(**ARGON2_PARAMS, hash_len=32, salt_len=16, type=Type.ID)
_ARGON2_PREFIX = "$argon2"
MIN_PASSWORD_LENGTH = 10
ACTIVE, PENDING = "active", "pending"

_SCHEMA = [
    """
    CREATE TABLE IF NOT EXISTS accounts (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created_at REAL NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS invitations (
        token_hash TEXT PRIMARY KEY,
        note TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        used_by TEXT
    )
    """,
]


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


def hash_password(password: str) -> str:
    """An Argon2id hash in PHC format (``$argon2id$v=19$m=..,t=..,p=..$salt$digest``), cost included."""
    return _ARGON2.hash(password)


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` (an Argon2 hash) was made from."""
    _check_scheme(stored)
    try:
        return _ARGON2.verify(stored, password)
    except VerifyMismatchError:
        return False
    except (InvalidHashError, VerificationError) as error:  # a damaged hash, not a wrong password
        raise AccountError(f"stored password hash is unreadable ({str(error) or type(error).__name__})") from None


def _check_scheme(stored: str) -> None:
    if not stored.startswith(_ARGON2_PREFIX):
        raise AccountError(f"unknown password scheme {stored.split('$')[0]!r}: only Argon2 hashes are stored")


def needs_rehash(stored: str) -> bool:
    """True for an Argon2 hash made with other parameters than ARGON2_PARAMS."""
    _check_scheme(stored)  # an unknown scheme is an error, not a hash to replace
    return _ARGON2.check_needs_rehash(stored)


def new_password() -> str:
    # 16 URL-safe characters: about 96 bits, and easy to copy from a terminal.
    return secrets.token_urlsafe(12)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_rules(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password for {username!r} is shorter than {MIN_PASSWORD_LENGTH} characters")


# Verified when the name is unknown, so a refusal costs the same time whether or not it exists.
# Computed once, on first need: hashing a throw-away password at every such login doubled its cost.
_dummy_hash: str | None = None


def _unknown_user_hash() -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    return _dummy_hash


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    reason: str = ""
    # True when the password was right but the account may not log in yet: the reason may be shown.
    password_ok: bool = False


@dataclass(frozen=True)
class Invitation:
    note: str
    created_at: float
    expires_at: float
    used_at: float | None
    used_by: str | None


class AccountStore:
    """Accounts in one SQLite file; every method is a single short transaction."""

    def __init__(self, path: Path, *, max_failed_logins: int = 5, lockout_seconds: float = 600):
        self.path = Path(path)
        self.max_failed_logins = max_failed_logins
        self.lockout_seconds = lockout_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            for statement in _SCHEMA:
                db.execute(statement)
            columns = {row[1] for row in db.execute("PRAGMA table_info(accounts)")}
            if "status" not in columns:  # a database from before sign-up existed: everyone is active
                db.execute(f"ALTER TABLE accounts ADD COLUMN status TEXT NOT NULL DEFAULT '{ACTIVE}'")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level="IMMEDIATE")

    def exists(self, username: str) -> bool:
        with closing(self._connect()) as db:
            return db.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone() is not None

    def usernames(self, *, status: str = ACTIVE) -> list[str]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT username FROM accounts WHERE status = ? ORDER BY username", (status,))
            return [row[0] for row in rows]

    def status(self, username: str) -> str | None:
        with closing(self._connect()) as db:
            row = db.execute("SELECT status FROM accounts WHERE username = ?", (username,)).fetchone()
        return row[0] if row else None

    def _insert(self, db: sqlite3.Connection, username: str, password_hash: str, status: str) -> None:
        try:
            db.execute(
                "INSERT INTO accounts (username, password_hash, created_at, status) VALUES (?, ?, ?, ?)",
                (username, password_hash, time.time(), status),
            )
        except sqlite3.IntegrityError:
            raise AccountError(f"account {username!r} already exists") from None

    def create(self, username: str, password: str, *, status: str = ACTIVE) -> None:
        check_password_rules(username, password)
        password_hash = hash_password(password)  # outside the transaction: it takes a while
        with closing(self._connect()) as db, db:
            self._insert(db, username, password_hash, status)

    def set_password(self, username: str, password: str) -> None:
        check_password_rules(username, password)
        password_hash = hash_password(password)
        with closing(self._connect()) as db, db:
            changed = db.execute(
                "UPDATE accounts SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE username = ?",
                (password_hash, username),
            ).rowcount
        if not changed:
            raise AccountError(f"no account {username!r}")

    # --- sign-up approval -----------------------------------------------------------------------

    def approve(self, username: str) -> None:
        """Let a pending account log in."""
        with closing(self._connect()) as db, db:
            changed = db.execute("UPDATE accounts SET status = ? WHERE username = ? AND status = ?",
                                 (ACTIVE, username, PENDING)).rowcount
        if not changed:
            raise AccountError(f"no pending sign-up {username!r}")

    def reject(self, username: str) -> None:
        """Delete a pending account; its name is free again."""
        with closing(self._connect()) as db, db:
            changed = db.execute("DELETE FROM accounts WHERE username = ? AND status = ?", (username, PENDING)).rowcount
        if not changed:
            raise AccountError(f"no pending sign-up {username!r}")

    # --- invitations ----------------------------------------------------------------------------

    def create_invitation(self, *, valid_seconds: float, note: str = "", now: float | None = None) -> str:
        """A new one-time invitation token, valid for ``valid_seconds``; only its hash is kept."""
        if valid_seconds <= 0:
            raise AccountError("an invitation must be valid for a positive time")
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(24)
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO invitations (token_hash, note, created_at, expires_at) VALUES (?, ?, ?, ?)",
                       (_token_hash(token), note, now, now + valid_seconds))
        return token

    def invitations(self) -> list[Invitation]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT note, created_at, expires_at, used_at, used_by FROM invitations ORDER BY created_at")
            return [Invitation(*row) for row in rows]

    def _open_invitation(self, db: sqlite3.Connection, token: str, now: float) -> str:
        row = db.execute("SELECT expires_at, used_at FROM invitations WHERE token_hash = ?",
                         (_token_hash(token),)).fetchone()
        if row is None:
            raise AccountError("this invitation link is not valid")
        if row[1] is not None:
            raise AccountError("this invitation link has already been used")
        if row[0] <= now:
            raise AccountError("this invitation link has expired; ask for a new one")
        return _token_hash(token)

    def invitation_is_open(self, token: str, *, now: float | None = None) -> str:
        """"" when the token may be used now, otherwise why not."""
        try:
            with closing(self._connect()) as db:
                self._open_invitation(db, token, time.time() if now is None else now)
        except AccountError as error:
            return str(error)
        return ""

    def redeem_invitation(self, token: str, username: str, password: str, *, now: float | None = None) -> None:
        """Create an active account with an invitation; the account and the token's use are one transaction."""
        check_password_rules(username, password)
        password_hash = hash_password(password)
        now = time.time() if now is None else now
        with closing(self._connect()) as db, db:
            token_hash = self._open_invitation(db, token, now)
            self._insert(db, username, password_hash, ACTIVE)
            db.execute("UPDATE invitations SET used_at = ?, used_by = ? WHERE token_hash = ?", (now, username, token_hash))

    # --- login ----------------------------------------------------------------------------------

    def check_login(self, username: str, password: str, *, now: float | None = None) -> LoginResult:
        """Verify a password, counting failures; a locked account is refused even with the right one.

        The hash is computed outside any transaction: holding SQLite's write lock through it made
        concurrent logins wait for each other. The counters are then updated in one short write.
        """
        now = time.time() if now is None else now
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT password_hash, failed_logins, locked_until, status FROM accounts WHERE username = ?", (username,)
            ).fetchone()
        if row is None:
            password_matches(password, _unknown_user_hash())
            return LoginResult(False, "unknown user or wrong password")
        stored, failed, locked_until, status = row
        if locked_until > now:
            return LoginResult(False, f"account locked for {int(locked_until - now)} more seconds")
        if password_matches(password, stored):
            if failed or locked_until or needs_rehash(stored):  # most logins need no write at all
                self._record_success(username, password, stored, now)
            if status == PENDING:
                return LoginResult(False, "account is awaiting approval by an admin", password_ok=True)
            return LoginResult(True, password_ok=True)
        self._record_failure(username, now)
        return LoginResult(False, "unknown user or wrong password")

    def _record_success(self, username: str, password: str, stored: str, now: float) -> None:
        new_hash = hash_password(password) if needs_rehash(stored) else None
        with closing(self._connect()) as db, db:
            if new_hash:
                db.execute("UPDATE accounts SET password_hash = ? WHERE username = ? AND password_hash = ?",
                           (new_hash, username, stored))
            db.execute("UPDATE accounts SET failed_logins = 0, locked_until = 0 "
                       "WHERE username = ? AND (failed_logins != 0 OR locked_until != 0) AND locked_until <= ?",
                       (username, now))

    def _record_failure(self, username: str, now: float) -> None:
        with closing(self._connect()) as db, db:
            failed, locked_until = db.execute(
                "SELECT failed_logins, locked_until FROM accounts WHERE username = ?", (username,)).fetchone()
            if locked_until > now:  # another request locked it meanwhile
                return
            failed += 1
            locked_until = now + self.lockout_seconds if failed >= self.max_failed_logins else 0
            db.execute("UPDATE accounts SET failed_logins = ?, locked_until = ? WHERE username = ?",
                       (0 if locked_until else failed, locked_until, username))
