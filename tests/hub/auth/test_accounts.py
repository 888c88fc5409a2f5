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


# --- lockout per name, known or not -------------------------------------------------------------


def test_an_unknown_name_is_locked_exactly_like_an_account(store):
    store.create("ada", "correct horse battery")
    answers = {}
    for name in ("ada", "ghost"):
        answers[name] = [store.check_login(name, "wrong password!", now=1000) for _ in range(3)]
    for known, unknown in zip(answers["ada"], answers["ghost"]):
        assert (known.ok, known.reason, known.password_ok) == (unknown.ok, unknown.reason, unknown.password_ok)
    assert [r.locked_until for r in answers["ada"]] == [0, 0, 1060] == [r.locked_until for r in answers["ghost"]]
    # While locked, the right password changes nothing: same answer for the account and the unknown name.
    assert store.check_login("ada", "correct horse battery", now=1030) == store.check_login("ghost", "x" * 12, now=1030)
    assert store.locked(now=1030) == [("ada", 1060), ("ghost", 1060)]
    assert store.check_login("ada", "correct horse battery", now=1060).ok
    assert store.locked(now=1060) == []


def test_known_and_unknown_names_cost_the_same_work(store, monkeypatch):
    """One Argon2id check and one failure write for both; a locked name: neither, for both."""
    store.create("ada", "correct horse battery")
    calls = []
    real_matches, real_failure = accounts.password_matches, AccountStore._record_failure
    monkeypatch.setattr(accounts, "password_matches", lambda *a: calls.append("hash") or real_matches(*a))
    monkeypatch.setattr(AccountStore, "_record_failure", lambda self, *a: calls.append("write") or real_failure(self, *a))
    work = {}
    for name in ("ada", "ghost"):
        calls.clear()
        for _ in range(4):  # three failures lock it; the fourth is refused as locked
            store.check_login(name, "wrong password!", now=1000)
        work[name] = list(calls)
    assert work["ada"] == work["ghost"] == ["hash", "write"] * 3


def test_unlock_clears_a_lock_and_a_new_password_does_too(store):
    store.create("ada", "correct horse battery")
    for _ in range(3):
        store.check_login("ada", "wrong password!")
    assert not store.check_login("ada", "correct horse battery").ok
    assert store.unlock("ada") and not store.unlock("ada")
    assert store.check_login("ada", "correct horse battery").ok
    for _ in range(3):
        store.check_login("ada", "wrong password!")
    store.set_password("ada", "a brand new password")
    assert store.check_login("ada", "a brand new password").ok


def test_failures_are_forgotten_a_day_after_the_last_one(store):
    store.create("ada", "correct horse battery")
    for _ in range(2):
        store.check_login("ada", "wrong password!", now=1000)
        store.check_login("ghost", "wrong password!", now=1000)
    later = 1000 + accounts.FAILURE_MEMORY_SECONDS + 1
    assert store.check_login("ada", "wrong password!", now=later).locked_until == 0  # a fresh count
    with sqlite3.connect(store.path) as db:  # the unknown name's row is gone, not kept for ever
        assert [row[0] for row in db.execute("SELECT name FROM login_throttle")] == ["ada"]


def test_counters_of_an_old_database_move_to_the_per_name_table(tmp_path):
    path = tmp_path / "old.sqlite"
    AccountStore(path).create("ada", "correct horse battery")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE accounts SET failed_logins = 5, locked_until = ?", (time.time() + 600,))
    store = AccountStore(path)
    assert [name for name, _ in store.locked()] == ["ada"]
    assert store.check_login("ada", "correct horse battery").locked_until


# --- changing and resetting passwords ----------------------------------------------------------


def test_a_change_needs_the_current_password_and_a_wrong_one_counts_as_a_failure(store):
    store.create("ada", "correct horse battery")
    assert not store.change_password("ada", "wrong password!", "a brand new password", now=1000).ok
    assert store.check_login("ada", "correct horse battery", now=1000).ok  # unchanged
    with pytest.raises(AccountError, match="shorter than 10"):
        store.change_password("ada", "correct horse battery", "short")
    for _ in range(3):
        result = store.change_password("ada", "wrong password!", "a brand new password", now=2000)
    assert result.locked_until == 2060
    assert store.change_password("ada", "correct horse battery", "a brand new password", now=2001).locked_until
    assert store.change_password("ada", "correct horse battery", "a brand new password", now=2061).ok
    assert store.check_login("ada", "a brand new password", now=2062).ok
    assert not store.check_login("ada", "correct horse battery", now=2062).ok


def test_a_reset_token_sets_the_password_once_and_unlocks(store, tmp_path):
    store.create("ada", "correct horse battery")
    for _ in range(3):
        store.check_login("ada", "wrong password!", now=1000)
    token = store.create_reset("ada", valid_seconds=3600, created_by="boss", now=1000)
    assert token.encode() not in (tmp_path / "accounts.sqlite").read_bytes()
    assert store.reset_user(token, now=1001) == "ada"
    with pytest.raises(AccountError, match="shorter than 10"):
        store.redeem_reset(token, "short", now=1001)
    assert store.redeem_reset(token, "a brand new password", now=1002) == "ada"
    assert store.check_login("ada", "a brand new password", now=1003).ok  # no longer locked
    with pytest.raises(AccountError, match="already been used"):
        store.redeem_reset(token, "another new password", now=1004)


def test_reset_tokens_expire_are_replaced_and_need_an_account(store):
    store.create("ada", "correct horse battery")
    first = store.create_reset("ada", valid_seconds=60, now=1000)
    with pytest.raises(AccountError, match="expired"):
        store.reset_user(first, now=1060)
    second = store.create_reset("ada", valid_seconds=60, now=1070)
    third = store.create_reset("ada", valid_seconds=60, now=1071)
    with pytest.raises(AccountError, match="not valid"):  # a newer link replaces an older one
        store.redeem_reset(second, "a brand new password", now=1072)
    assert store.redeem_reset(third, "a brand new password", now=1072) == "ada"
    with pytest.raises(AccountError, match="no account 'ghost'"):
        store.create_reset("ghost", valid_seconds=60)
    with pytest.raises(AccountError, match="not valid"):
        store.reset_user("made-up-token")
    with pytest.raises(AccountError, match="positive"):
        store.create_reset("ada", valid_seconds=0)


# --- rate limits -------------------------------------------------------------------------------


def test_the_rate_limiter_counts_per_address_and_per_name_within_a_window():
    limiter = accounts.RateLimiter(per_address=4, per_name=2, window_seconds=60)
    assert limiter.hit("signup", address="10.0.0.1", name="ann", now=1000) == 0
    assert limiter.hit("signup", address="10.0.0.2", name="ann", now=1001) == 0
    # A third request for "ann" is refused from any address, until the first one leaves the window.
    assert limiter.hit("signup", address="10.0.0.3", name="ann", now=1002) == 1060
    # Per address: "10.0.0.1" may make four, whatever the names; other kinds count apart.
    for name in ("bo", "cy", "di"):
        assert limiter.hit("signup", address="10.0.0.1", name=name, now=1010) == 0
    assert limiter.hit("signup", address="10.0.0.1", name="ed", now=1011) == 1060
    assert limiter.hit("reset", address="10.0.0.1", name="ed", now=1011) == 0
    # A refused request is not counted: "ed" may still ask twice from elsewhere.
    assert limiter.hit("signup", address="10.0.0.9", name="ed", now=1012) == 0
    assert limiter.hit("signup", address="10.0.0.9", name="ed", now=1012) == 0
    assert limiter.hit("signup", address="10.0.0.3", name="ann", now=1060) == 0
    # Old keys are swept, so memory stays bounded.
    limiter.hit("signup", address="10.0.0.9", now=5000)
    assert set(limiter._events) == {("signup", "address", "10.0.0.9")}
