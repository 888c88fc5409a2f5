"""A throw-away PostgreSQL server for tests: initdb in a temporary folder, on a random loopback port.

Uses the server binaries of Debian's ``postgresql`` package (``.ci/run`` installs it). PostgreSQL
refuses to run as root, so as root the cluster is owned by and run as the ``postgres`` user.
Stopped by ``pg_ctl stop`` (its own pid file) when the fixture ends.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support.hubfixture import free_port


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def running_postgres() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh database ``grading`` on a private server."""
    binaries = server_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    owner = "postgres" if os.geteuid() == 0 else None
    # Not under pytest's tmp_path: the postgres user cannot enter root's private folders.
    base = Path(tempfile.mkdtemp(prefix="grader-pg-"))
    data = base / "pgdata"
    data.mkdir(parents=True)
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(base, entry.pw_uid, entry.pw_gid)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    port = free_port()
    subprocess.run(_as_owner([str(binaries / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8"], owner),
                   check=True, capture_output=True)
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1"
    subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(data / "server.log"), "-w", "start"], owner),
                   check=True, capture_output=True)
    try:
        subprocess.run(_as_owner([str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "grading"], owner),
                       check=True, capture_output=True)
        yield f"postgresql://grader@127.0.0.1:{port}/grading"
    finally:
        subprocess.run(_as_owner([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], owner), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
