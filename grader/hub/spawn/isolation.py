"""Which spawner mode the hub runs in, the system accounts of the secure mode, and who may read what.

- ``secure`` (the default as root): each hub user gets a system account ``jupyter-<name>`` (no
  login shell, no password, home ``0700``), made on their first start; their server runs as it,
  limited by :mod:`grader.hub.spawn.limits`. The hub's data folder is enterable but not listable by
  others, and everything in it but the homes (and nbgrader's file exchange, when chosen) is the
  hub's alone; the repository's ``assignments/`` (solutions, hidden tests) too.
- ``demo``: every server runs as the hub's own user (one OS user). Refused as root, since every
  student's code would run as root, unless ``spawner.allow_root_demo`` says it is a throw-away
  test hub.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

from grader.hub.layers import ConfigError

ACCOUNT_PREFIX = "jupyter-"
# useradd's portable limit is 32 characters.
_MAX_ACCOUNT_LENGTH = 32
NOLOGIN_SHELLS = ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")


def resolve_mode(mode: str, *, euid: int) -> str:
    """``auto`` becomes ``secure`` as root and ``demo`` otherwise; ``secure`` needs root."""
    if mode == "auto":
        return "secure" if euid == 0 else "demo"
    if mode == "secure" and euid != 0:
        raise ConfigError("spawner.mode: secure needs the hub to run as root (it makes accounts and cgroups); "
                          "start it as root, or use mode: demo on your own machine")
    return mode


def check_demo_as_root(*, euid: int, allow_root_demo: bool) -> None:
    """Demo mode as root would run every student's code as root: refuse, unless told it is a test hub."""
    if euid == 0 and allow_root_demo:
        print("[aicourse] WARNING: AICOURSE_ALLOW_ROOT_DEMO is set: demo mode as root, every student's code "
              "runs as root. For the test suite's throw-away hubs only.", flush=True)
    if euid == 0 and not allow_root_demo:
        raise ConfigError(
            "spawner.mode: demo as root would run every student's server as root (it would need "
            "--allow-root). Use spawner.mode: secure (or auto), which gives each user an account of "
            "their own, or start the hub as a normal user for a demo on your own machine.")


def account_name(username: str) -> str:
    """The system account of a hub user: ``jupyter-<name>``, made safe for useradd.

    Characters useradd refuses become ``-``; a name that had to change, or is too long, gets a
    short hash of the original, so two hub users never share an account (as TLJH does).
    """
    safe = re.sub(r"[^a-z0-9_-]", "-", username.lower())
    name = ACCOUNT_PREFIX + safe
    if safe != username or len(name) > _MAX_ACCOUNT_LENGTH:
        digest = hashlib.sha256(username.encode()).hexdigest()[:7]
        name = f"{name[:_MAX_ACCOUNT_LENGTH - 8]}-{digest}"
    return name


def _nologin_shell() -> str:
    return next((shell for shell in NOLOGIN_SHELLS if os.path.exists(shell)), "/bin/false")


def ensure_account(name: str, home: Path, *, attempts: int = 20) -> pwd.struct_passwd:
    """The system account ``name``, made if missing: no login shell, no password, its own group.

    Its passwd home is where it was first made; servers get their home from the hub's settings
    (``HOME`` and the working folder), so several hubs on one machine (tests) may share an account.
    """
    for _ in range(attempts):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        done = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", str(home),
                               "--shell", _nologin_shell(), "--comment", "JupyterHub user", name],
                              capture_output=True, text=True)
        # 9: made meanwhile by another hub; 10: /etc/passwd locked by another useradd, try again.
        if done.returncode not in (0, 9, 10):
            raise RuntimeError(f"useradd {name} failed ({done.returncode}): {done.stderr.strip()}")
        if done.returncode == 10:
            time.sleep(0.1)
    return pwd.getpwnam(name)


def prepare_user_home(home: Path, account: pwd.struct_passwd) -> None:
    """The user's home: owned by their account, ``0700``, so no other student enters it."""
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, account.pw_uid, account.pw_gid)
    os.chmod(home, 0o700)


def blocked_ancestor(path: Path) -> Path | None:
    """The first folder above ``path`` that other accounts cannot enter, or None."""
    for folder in reversed(Path(path).resolve().parents):
        if not folder.stat().st_mode & stat.S_IXOTH:
            return folder
    return None


def check_reachable(paths: Iterable[Path]) -> None:
    """Students' servers run as other accounts: the interpreter and the hub's configuration must be
    reachable by them, or every start fails with a bare "permission denied"."""
    for path in paths:
        folder = blocked_ancestor(path)
        if folder is not None:
            raise ConfigError(
                f"spawner.mode: secure: {path} is not reachable by users' accounts, since {folder} is not "
                f"enterable by others (mode {stat.filemode(folder.stat().st_mode)}). Install Python and the "
                f"platform where every account can read them (e.g. under /opt or /srv), or "
                f"`chmod o+x {folder}`.")


def harden_data_dir(data_dir: Path, *, homes_dir: Path, file_exchange: Path | None,
                    private_repo_dirs: Iterable[Path] = ()) -> None:
    """Set who may read what the hub keeps: only its own user, but for users' homes.

    The data folder is ``0711`` (enterable, not listable), so each user reaches their own home;
    the database, cookie secret, accounts, seats, course directories and the HTTP exchange's
    storage are ``go-rwx``; the homes folder is ``0711``; nbgrader's file exchange, when used,
    keeps the modes nbgrader needs. ``private_repo_dirs`` (the repository's ``assignments/``) lose
    their permissions for others.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o711)
    homes_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(homes_dir, 0o711)
    shared = {homes_dir.resolve()} | ({file_exchange.resolve()} if file_exchange else set())
    for entry in data_dir.iterdir():
        if entry.is_symlink() or entry.resolve() in shared:
            continue
        mode = entry.lstat().st_mode
        os.chmod(entry, stat.S_IMODE(mode) & 0o700)
    for folder in private_repo_dirs:
        if folder.is_dir() and folder.stat().st_uid == os.geteuid():
            os.chmod(folder, stat.S_IMODE(folder.stat().st_mode) & 0o750)


def announce(mode: str, *, user: str, enforcement: str | None = None) -> None:
    """Say at start which mode the hub runs in (the hub's log is its standard error)."""
    if mode == "demo":
        message = (f"[aicourse] DEMO MODE: every user's server runs as the OS user {user!r}; code a student runs "
                   "can read other students' homes and the course files. For a real course, start the hub as "
                   "root (spawner.mode: secure). See README, 'Isolation'.")
    else:
        message = (f"[aicourse] secure mode: each user's server runs as a system account jupyter-<name>, "
                   f"limits enforced by {enforcement}.")
    print(message, file=sys.stderr, flush=True)


def remove_account(name: str) -> None:
    """Delete a system account (tests; an admin removing a user keeps their account and home)."""
    if shutil.which("userdel"):
        subprocess.run(["userdel", name], capture_output=True)
