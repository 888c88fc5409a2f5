"""grader.hub.auth.accounts: hashed passwords, lockout after repeated failures, clear errors."""

from __future__ import annotations

import base64
import sqlite3
import time

import argon2
import pytest

from grader.hub.auth import accounts
from grader.hub.auth.accounts import (
    ARGON2_PARAMS,
    PENDING,
    AccountError,
    AccountStore,
    hash_password,
    needs_rehash,
    password_matches,
)

# The hash every new password gets: Argon2id at OWASP's minimum (m=19 MiB, t=2, p=1), PHC format.
ARGON2ID_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


@pytest.fixture
def store(tmp_path):
    return AccountStore(tmp_path / "accounts.sqlite", max_failed_logins=3, lockout_seconds=60)


def test_passwords_are_stored_hashed_and_checked(store, tmp_path):
    store.create("ada", "correct horse battery")
    assert store.check_login("ada", "correct horse battery").ok
    assert not store.check_login("ada", "wrong password!").ok
    assert b"correct horse battery" not in (tmp_path / "accounts.sqlite").read_bytes()


def test_unknown_user_is_refused_like_a_wrong_password(store):
    result = store.check_login("nobody", "whatever-password")
    assert not result.ok and result.reason == "unknown user or wrong password"


def test_lockout_after_repeated_failures_then_expiry(store):
    store.create("ada", "correct horse battery")
    for _ in range(3):
        assert not store.check_login("ada", "wrong password!", now=1000).ok
    locked = store.check_login("ada", "correct horse battery", now=1001)
    assert not locked.ok and "locked" in locked.reason
    assert store.check_login("ada", "correct horse battery", now=1061).ok


def test_a_success_resets_the_failure_count(store):
    store.create("ada", "correct horse battery")
    for _ in range(2):
        store.check_login("ada", "wrong password!", now=1000)
    assert store.check_login("ada", "correct horse battery", now=1000).ok
    for _ in range(2):
        store.check_login("ada", "wrong password!", now=1000)
    assert store.check_login("ada", "correct horse battery", now=1000).ok


def test_short_password_and_duplicate_account_are_named(store):
    with pytest.raises(AccountError, match="'bob'.*shorter than 10"):
        store.create("bob", "short")
    store.create("bob", "long enough password")
    with pytest.raises(AccountError, match="'bob' already exists"):
        store.create("bob", "another long password")


# --- hash parameters ----------------------------------------------------------------------------


def _stored_hash(path) -> str:
    with sqlite3.connect(path) as db:
        (stored,) = db.execute("SELECT password_hash FROM accounts").fetchone()
    return stored


def _set_stored_hash(path, stored: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute("UPDATE accounts SET password_hash = ?", (stored,))


def _unpadded_b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def test_new_hashes_are_argon2id_at_the_owasp_minimum_with_the_cost_stored(store, tmp_path):
    store.create("ada", "correct horse battery")
    stored = _stored_hash(tmp_path / "accounts.sqlite")
    assert stored.startswith(ARGON2ID_PREFIX)
    _, _, _, _, salt, digest = stored.split("$")
    assert len(_unpadded_b64(salt)) == 16 and len(_unpadded_b64(digest)) == 32
    assert ARGON2_PARAMS == {"memory_cost": 19 * 1024, "time_cost": 2, "parallelism": 1}
    # Checked with argon2's own low-level verifier, not through the store's code.
    assert argon2.low_level.verify_secret(stored.encode(), b"correct horse battery", argon2.Type.ID)
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        argon2.low_level.verify_secret(stored.encode(), b"wrong password!", argon2.Type.ID)
    assert not needs_rehash(stored)


def test_a_hash_of_another_scheme_is_refused_by_name_not_taken_for_a_wrong_password(store, tmp_path):
    """Only Argon2 hashes were ever stored: anything else is damage to report, not a login to refuse quietly."""
    path = tmp_path / "accounts.sqlite"
    store.create("ada", "placeholder-password")
    _set_stored_hash(path, "scrypt$73616c74$" + "0" * 64)
    with pytest.raises(AccountError, match="unknown password scheme 'scrypt'"):
        needs_rehash(_stored_hash(path))
    with pytest.raises(AccountError, match="unknown password scheme"):
        password_matches("correct horse battery", _stored_hash(path))


def test_an_argon2_hash_with_other_parameters_is_rehashed_at_login(store, tmp_path):
    path = tmp_path / "accounts.sqlite"
    weaker = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("correct horse battery")
    store.create("ada", "placeholder-password")
    _set_stored_hash(path, weaker)
    assert needs_rehash(weaker) and store.check_login("ada", "correct horse battery").ok
    assert _stored_hash(path).startswith(ARGON2ID_PREFIX)


def test_an_unknown_user_costs_one_argon2id_check_against_a_dummy_computed_once(store, monkeypatch):
    checked = []

    def recording_password_matches(password, stored):  # a spy: the real check still runs
        checked.append(stored)
        return password_matches(password, stored)

    monkeypatch.setattr(accounts, "password_matches", recording_password_matches)
    for name in ("nobody", "nobody-else"):
        assert store.check_login(name, "whatever-password").reason == "unknown user or wrong password"
    assert len(checked) == 2 and checked[0] == checked[1] and checked[0].startswith(ARGON2ID_PREFIX)


def test_a_damaged_or_unknown_hash_is_an_error_not_a_wrong_password():
    with pytest.raises(AccountError, match="unreadable"):
        password_matches("correct horse battery", "$argon2id$v=19$m=19456,t=2,p=1$not-a-hash")
    with pytest.raises(AccountError, match="unknown password scheme 'bcrypt'"):
        password_matches("correct horse battery", "bcrypt$whatever")


def test_a_login_is_checked_while_another_process_holds_the_write_lock(store, tmp_path):
    """The hash is computed outside any transaction, and a clean success writes nothing."""
    store.create("ada", "correct horse battery")
    blocker = sqlite3.connect(tmp_path / "accounts.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        assert store.check_login("ada", "correct horse battery").ok
        assert time.monotonic() - started < 5  # the store waits up to 30 s for a lock it needs
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


# --- pending accounts -------------------------------------------------------------------------


def test_a_pending_account_cannot_log_in_and_is_told_why_only_with_the_right_password(store):
    store.create("ada", "correct horse battery", status=PENDING)
    pending = store.check_login("ada", "correct horse battery")
    assert not pending.ok and pending.password_ok and "awaiting approval" in pending.reason
    wrong = store.check_login("ada", "wrong password!")
    assert not wrong.ok and not wrong.password_ok and wrong.reason == "unknown user or wrong password"
    assert store.usernames(status=PENDING) == ["ada"] and store.usernames() == []
    store.approve("ada")
    assert store.check_login("ada", "correct horse battery").ok
    with pytest.raises(AccountError, match="no pending sign-up 'ada'"):
        store.approve("ada")


def test_rejecting_deletes_only_a_pending_account(store):
    store.create("ada", "correct horse battery", status=PENDING)
    store.create("bob", "correct horse battery")
    store.reject("ada")
    assert not store.exists("ada")
    with pytest.raises(AccountError, match="no pending sign-up 'bob'"):
        store.reject("bob")
    assert store.check_login("bob", "correct horse battery").ok


def test_an_old_database_gets_the_status_column_with_everyone_active(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL, created_at REAL NOT NULL,"
                   " failed_logins INTEGER NOT NULL DEFAULT 0, locked_until REAL NOT NULL DEFAULT 0)")
        db.execute("INSERT INTO accounts VALUES ('ada', ?, 0, 0, 0)", (hash_password("correct horse battery"),))
    assert AccountStore(path).check_login("ada", "correct horse battery").ok


# --- invitations ------------------------------------------------------------------------------


def test_an_invitation_creates_an_active_account_once(store, tmp_path):
    token = store.create_invitation(valid_seconds=3600, note="for ada", now=1000)
    assert token.encode() not in (tmp_path / "accounts.sqlite").read_bytes()
    assert store.invitation_is_open(token, now=1001) == ""
    store.redeem_invitation(token, "ada", "correct horse battery", now=1001)
    assert store.check_login("ada", "correct horse battery").ok
    with pytest.raises(AccountError, match="already been used"):
        store.redeem_invitation(token, "bob", "correct horse battery", now=1002)
    assert not store.exists("bob")
    (invitation,) = store.invitations()
    assert (invitation.note, invitation.used_by) == ("for ada", "ada")


def test_expired_unknown_and_failed_invitations(store):
    token = store.create_invitation(valid_seconds=60, now=1000)
    with pytest.raises(AccountError, match="expired"):
        store.redeem_invitation(token, "ada", "correct horse battery", now=1060)
    with pytest.raises(AccountError, match="not valid"):
        store.redeem_invitation("made-up-token", "ada", "correct horse battery", now=1000)
    # A refused sign-up leaves the invitation usable: the account and the token's use are one transaction.
    store.create("taken", "correct horse battery")
    with pytest.raises(AccountError, match="'taken' already exists"):
        store.redeem_invitation(token, "taken", "another long password", now=1001)
    with pytest.raises(AccountError, match="shorter than 10"):
        store.redeem_invitation(token, "ada", "short", now=1001)
    store.redeem_invitation(token, "ada", "correct horse battery", now=1002)
    with pytest.raises(AccountError, match="positive"):
        store.create_invitation(valid_seconds=0)
