"""Local accounts: Argon2id-hashed passwords, lockout, sign-up requests and invitations, in SQLite.

Kept apart from JupyterHub's own database so the hub can be upgraded or reset without losing
passwords, and so ``grader`` commands can manage accounts while the hub runs (SQLite handles the
concurrent access; each operation is one short transaction).

An account is ``active`` (may log in) or ``pending`` (asked for on the sign-up page, waiting for an
admin's approval). An invitation is a one-time token with an expiry; only its SHA-256 is stored,
so a copy of the database does not hand out accounts. A password reset is the same kind of token,
bound to one account: it sets a new password once, before it expires.

Failed logins are counted per *name*, whether or not an account has that name (``login_throttle``):
after ``max_failed_logins`` failures the name is locked for ``lockout_seconds``, and a locked name
is told so, with the time it opens again. An unknown name is locked exactly like a real one, so
the message says nothing about whether the account exists.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from collections import deque
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
# A name's failures are forgotten a day after its last one (and the row deleted), locked or not.
FAILURE_MEMORY_SECONDS = 24 * 3600

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
    # Failed logins per name: accounts and unknown names alike (see the module's docstring).
    """
    CREATE TABLE IF NOT EXISTS login_throttle (
        name TEXT PRIMARY KEY,
        failures INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        last_failure REAL NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS password_resets (
        token_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        created_by TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
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
    # When the name is locked (too many failures, whether or not the account exists): until when.
    # Saying so reveals nothing about the account: an unknown name is locked the same way.
    locked_until: float = 0.0


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
            # Counters from before login_throttle (the accounts table's own columns, now unused).
            if db.execute("SELECT 1 FROM accounts WHERE failed_logins != 0 OR locked_until != 0 LIMIT 1").fetchone():
                db.execute("INSERT OR IGNORE INTO login_throttle (name, failures, locked_until, last_failure) "
                           "SELECT username, failed_logins, locked_until, ? FROM accounts "
                           "WHERE failed_logins != 0 OR locked_until != 0", (time.time(),))
                db.execute("UPDATE accounts SET failed_logins = 0, locked_until = 0")

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
        """A new password (an admin's doing, or after a check): the name's failures and lock are cleared."""
        check_password_rules(username, password)
        password_hash = hash_password(password)
        with closing(self._connect()) as db, db:
            self._set_hash(db, username, password_hash)

    def _set_hash(self, db: sqlite3.Connection, username: str, password_hash: str) -> None:
        if not db.execute("UPDATE accounts SET password_hash = ? WHERE username = ?", (password_hash, username)).rowcount:
            raise AccountError(f"no account {username!r}")
        db.execute("DELETE FROM login_throttle WHERE name = ?", (username,))

    def change_password(self, username: str, current: str, new: str, *, now: float | None = None) -> LoginResult:
        """Self-service change: ``current`` is checked like a login (a wrong one counts as a failed
        login, a locked name is refused); the new password is set only when it was right.
        Returns the check's result; raises AccountError when the new password breaks the rules."""
        check_password_rules(username, new)
        result = self.check_login(username, current, now=now)
        if result.ok:
            self.set_password(username, new)
        return result

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

    # --- password resets ------------------------------------------------------------------------

    def create_reset(self, username: str, *, valid_seconds: float, created_by: str = "", now: float | None = None) -> str:
        """A one-time token that sets ``username``'s password, valid for ``valid_seconds``; only its
        hash is kept. It replaces any earlier unused reset of that account."""
        if valid_seconds <= 0:
            raise AccountError("a reset link must be valid for a positive time")
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(24)
        with closing(self._connect()) as db, db:
            if db.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone() is None:
                raise AccountError(f"no account {username!r}")
            db.execute("DELETE FROM password_resets WHERE username = ? AND used_at IS NULL", (username,))
            db.execute("INSERT INTO password_resets (token_hash, username, created_by, created_at, expires_at) "
                       "VALUES (?, ?, ?, ?, ?)", (_token_hash(token), username, created_by, now, now + valid_seconds))
        return token

    def _open_reset(self, db: sqlite3.Connection, token: str, now: float) -> str:
        row = db.execute("SELECT username, expires_at, used_at FROM password_resets WHERE token_hash = ?",
                         (_token_hash(token),)).fetchone()
        if row is None:
            raise AccountError("this reset link is not valid (a newer one replaces an older one)")
        if row[2] is not None:
            raise AccountError("this reset link has already been used")
        if row[1] <= now:
            raise AccountError("this reset link has expired; ask for a new one")
        return row[0]

    def reset_user(self, token: str, *, now: float | None = None) -> str:
        """The account a reset token may set the password of now; AccountError says why not."""
        with closing(self._connect()) as db:
            return self._open_reset(db, token, time.time() if now is None else now)

    def redeem_reset(self, token: str, password: str, *, now: float | None = None) -> str:
        """Set the password with a reset token, once; the token's use, the new hash and the name's
        unlock are one transaction. Returns the account's name."""
        now = time.time() if now is None else now
        username = self.reset_user(token, now=now)
        check_password_rules(username, password)
        password_hash = hash_password(password)  # outside the transaction
        with closing(self._connect()) as db, db:
            if self._open_reset(db, token, now) != username:  # pragma: no cover - a token names one account
                raise AccountError("this reset link is not valid")
            self._set_hash(db, username, password_hash)
            db.execute("UPDATE password_resets SET used_at = ? WHERE token_hash = ?", (now, _token_hash(token)))
        return username

    # --- login ----------------------------------------------------------------------------------

    def check_login(self, username: str, password: str, *, now: float | None = None) -> LoginResult:
        """Verify a password, counting failures per name; a locked name is refused even with the right one.

        An unknown name costs the same as a known one: one Argon2id check (against a dummy hash)
        and one write of its failure count, so neither the answer nor its time says whether the
        account exists. A locked name is refused before any hash, known or not.

        The hash is computed outside any transaction: holding SQLite's write lock through it made
        concurrent logins wait for each other. The counters are then updated in one short write.
        """
        now = time.time() if now is None else now
        with closing(self._connect()) as db:
            row = db.execute("SELECT password_hash, status FROM accounts WHERE username = ?", (username,)).fetchone()
            throttle = db.execute("SELECT failures, locked_until FROM login_throttle WHERE name = ?",
                                  (username,)).fetchone()
        failures, locked_until = throttle or (0, 0.0)
        if locked_until > now:
            return LoginResult(False, "name locked after too many failed logins", locked_until=locked_until)
        stored, status = row or (_unknown_user_hash(), None)
        if password_matches(password, stored) and row is not None:
            if throttle or needs_rehash(stored):  # most logins need no write at all
                self._record_success(username, password, stored, now)
            if status == PENDING:
                return LoginResult(False, "account is awaiting approval by an admin", password_ok=True)
            return LoginResult(True, password_ok=True)
        locked_until = self._record_failure(username, now)
        if locked_until:
            return LoginResult(False, "name locked after too many failed logins", locked_until=locked_until)
        return LoginResult(False, "unknown user or wrong password")

    def _record_success(self, username: str, password: str, stored: str, now: float) -> None:
        new_hash = hash_password(password) if needs_rehash(stored) else None
        with closing(self._connect()) as db, db:
            if new_hash:
                db.execute("UPDATE accounts SET password_hash = ? WHERE username = ? AND password_hash = ?",
                           (new_hash, username, stored))
            db.execute("DELETE FROM login_throttle WHERE name = ? AND locked_until <= ?", (username, now))

    def _record_failure(self, name: str, now: float) -> float:
        """Count a failure for ``name``; return until when it is now locked (0: not locked)."""
        with closing(self._connect()) as db, db:
            # Forget names whose last failure is old and that are not locked: the table stays small.
            db.execute("DELETE FROM login_throttle WHERE last_failure < ? AND locked_until <= ?",
                       (now - FAILURE_MEMORY_SECONDS, now))
            row = db.execute("SELECT failures, locked_until FROM login_throttle WHERE name = ?", (name,)).fetchone()
            failures, locked_until = row or (0, 0.0)
            if locked_until > now:  # another request locked it meanwhile
                return locked_until
            failures += 1
            locked_until = now + self.lockout_seconds if failures >= self.max_failed_logins else 0.0
            db.execute("INSERT OR REPLACE INTO login_throttle (name, failures, locked_until, last_failure) "
                       "VALUES (?, ?, ?, ?)", (name, 0 if locked_until else failures, locked_until, now))
        return locked_until

    def locked(self, *, now: float | None = None) -> list[tuple[str, float]]:
        """(name, locked until) of every name locked now, accounts and unknown names alike."""
        now = time.time() if now is None else now
        with closing(self._connect()) as db:
            return list(db.execute("SELECT name, locked_until FROM login_throttle WHERE locked_until > ? ORDER BY name",
                                   (now,)))

    def unlock(self, name: str) -> bool:
        """Clear a name's failures and lock; False when there was nothing to clear."""
        with closing(self._connect()) as db, db:
            return bool(db.execute("DELETE FROM login_throttle WHERE name = ?", (name,)).rowcount)


class RateLimiter:
    """At most ``per_address`` requests from one client address and ``per_name`` for one name in
    any ``window_seconds``, per kind of request (sign-up, reset). In the hub's memory: one hub
    process answers every request, and a restart forgetting the counts only loosens them once."""

    def __init__(self, *, per_address: int, per_name: int, window_seconds: float):
        self.limits = {"address": per_address, "name": per_name}
        self.window_seconds = window_seconds
        self._events: dict[tuple[str, str, str], deque[float]] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def _recent(self, key: tuple[str, str, str], now: float) -> deque[float]:
        events = self._events.get(key, deque())
        while events and events[0] <= now - self.window_seconds:
            events.popleft()
        return events

    def hit(self, kind: str, *, address: str = "", name: str = "", now: float | None = None) -> float:
        """Record one request and return 0, or, when a limit is reached, record nothing and
        return the time at which the next one is allowed."""
        now = time.time() if now is None else now
        keys = [(kind, what, value) for what, value in (("address", address), ("name", name)) if value]
        with self._lock:
            if now >= self._next_sweep:  # drop keys with nothing recent, so memory stays bounded
                self._events = {key: events for key in list(self._events)
                                if (events := self._recent(key, now))}
                self._next_sweep = now + self.window_seconds
            recent = {key: self._recent(key, now) for key in keys}
            full = [events[0] + self.window_seconds for key, events in recent.items()
                    if len(events) >= self.limits[key[1]]]
            if full:
                return max(full)
            for key, events in recent.items():
                events.append(now)
                self._events[key] = events
        return 0.0
