"""Local accounts: scrypt-hashed passwords and a lockout after repeated failures, in SQLite.

Kept apart from JupyterHub's own database so the hub can be upgraded or reset without losing
passwords, and so ``grader`` commands can manage accounts while the hub runs (SQLite handles the
concurrent access; each operation is one transaction).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

# scrypt parameters (RFC 7914): n=2**14, r=8 costs ~16 MiB and tens of milliseconds, a
# deliberate cost per guess that a login does not notice.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
MIN_PASSWORD_LENGTH = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0
)
"""


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says why."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    scheme, salt_hex, digest_hex = stored.split("$")
    if scheme != "scrypt":
        raise AccountError(f"unknown password scheme {scheme!r}")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), **_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_password() -> str:
    # 16 URL-safe characters: about 96 bits, and easy to copy from a terminal.
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    reason: str = ""


class AccountStore:
    """Accounts in one SQLite file; every method is a single short transaction."""

    def __init__(self, path: Path, *, max_failed_logins: int = 5, lockout_seconds: float = 600):
        self.path = Path(path)
        self.max_failed_logins = max_failed_logins
        self.lockout_seconds = lockout_seconds
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level="IMMEDIATE")

    def exists(self, username: str) -> bool:
        with closing(self._connect()) as db:
            return db.execute("SELECT 1 FROM accounts WHERE username = ?", (username,)).fetchone() is not None

    def usernames(self) -> list[str]:
        with closing(self._connect()) as db:
            return [row[0] for row in db.execute("SELECT username FROM accounts ORDER BY username")]

    def create(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AccountError(f"password for {username!r} is shorter than {MIN_PASSWORD_LENGTH} characters")
        try:
            with closing(self._connect()) as db, db:
                db.execute(
                    "INSERT INTO accounts (username, password_hash, created_at) VALUES (?, ?, ?)",
                    (username, hash_password(password), time.time()),
                )
        except sqlite3.IntegrityError:
            raise AccountError(f"account {username!r} already exists") from None

    def set_password(self, username: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise AccountError(f"password for {username!r} is shorter than {MIN_PASSWORD_LENGTH} characters")
        with closing(self._connect()) as db, db:
            changed = db.execute(
                "UPDATE accounts SET password_hash = ?, failed_logins = 0, locked_until = 0 WHERE username = ?",
                (hash_password(password), username),
            ).rowcount
        if not changed:
            raise AccountError(f"no account {username!r}")

    def check_login(self, username: str, password: str, *, now: float | None = None) -> LoginResult:
        """Verify a password, counting failures; a locked account is refused even with the right one."""
        now = time.time() if now is None else now
        with closing(self._connect()) as db, db:
            row = db.execute(
                "SELECT password_hash, failed_logins, locked_until FROM accounts WHERE username = ?", (username,)
            ).fetchone()
            if row is None:
                # Spend the same work as a real check so timing does not reveal which names exist.
                password_matches(password, hash_password("x" * MIN_PASSWORD_LENGTH))
                return LoginResult(False, "unknown user or wrong password")
            stored, failed, locked_until = row
            if locked_until > now:
                return LoginResult(False, f"account locked for {int(locked_until - now)} more seconds")
            if password_matches(password, stored):
                db.execute("UPDATE accounts SET failed_logins = 0, locked_until = 0 WHERE username = ?", (username,))
                return LoginResult(True)
            failed += 1
            locked_until = now + self.lockout_seconds if failed >= self.max_failed_logins else 0
            db.execute(
                "UPDATE accounts SET failed_logins = ?, locked_until = ? WHERE username = ?",
                (0 if locked_until else failed, locked_until, username),
            )
            return LoginResult(False, "unknown user or wrong password")
