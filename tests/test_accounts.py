"""grader.hub.accounts: hashed passwords, lockout after repeated failures, clear errors."""

from __future__ import annotations

import pytest

from grader.hub.accounts import AccountError, AccountStore


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
