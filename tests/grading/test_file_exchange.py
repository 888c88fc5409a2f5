"""The file exchange's collect: whose folder a submission is, told apart without nbgrader's
"cheating attempt?" warning on every submission of a one-user hub."""

import os
import pwd
import secrets
import subprocess

import pytest

from grader.grading.file_exchange import STUDENT_ACCOUNT_PREFIX, _owner_flag

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="changing a folder's owner needs root")


@pytest.fixture
def inbound(tmp_path):
    folder = tmp_path / "inbound"
    folder.mkdir()
    return folder


def _submission(inbound, uid: int):
    folder = inbound / "alice+a1+2026-12-07 10:00:00.000000 UTC+abc+def"
    folder.mkdir()
    os.chown(folder, uid, -1)
    return str(folder)


def test_a_one_user_hub_is_not_reported(inbound):
    # Demo mode: the exchange and every submission belong to the hub's one user.
    assert _owner_flag(str(inbound), _submission(inbound, os.getuid()), "alice") is None


@needs_root
def test_another_account_owning_the_folder_is_flagged(inbound):
    nobody = pwd.getpwnam("nobody")
    flag = _owner_flag(str(inbound), _submission(inbound, nobody.pw_uid), "alice")
    assert flag is not None and flag.kind == "files"
    assert "alice" in flag.reason and "nobody" in flag.reason


@needs_root
def test_the_students_own_account_is_not_flagged(inbound):
    # Secure mode: the student's server runs as jupyter-<name>, which owns what it submits.
    name = f"fx{secrets.token_hex(4)}"
    account = STUDENT_ACCOUNT_PREFIX + name
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", account],
                   check=True, capture_output=True)
    try:
        uid = pwd.getpwnam(account).pw_uid
        assert _owner_flag(str(inbound), _submission(inbound, uid), name) is None
        assert _owner_flag(str(inbound), str(inbound / os.listdir(inbound)[0]), "bob") is not None
    finally:
        subprocess.run(["userdel", account], check=True, capture_output=True)


@needs_root
def test_an_unknown_uid_is_named_by_number(inbound):
    free_uid = next(uid for uid in range(61000, 62000) if not _known(uid))
    flag = _owner_flag(str(inbound), _submission(inbound, free_uid), "alice")
    assert flag is not None and f"uid {free_uid}" in flag.reason


def _known(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False
