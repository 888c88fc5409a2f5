"""The interpreter users' accounts run (grader.hub.spawn.users_python), run as an unprivileged account."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grader.hub.spawn.isolation import blocked_ancestor
from grader.hub.spawn.users_python import users_python

NOBODY = 65534

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs a command as another account (root only)")


@pytest.fixture
def copies():
    folder = Path(tempfile.mkdtemp(prefix="aicourse-python-test-"))
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run_as_nobody(python, env, code: str) -> subprocess.CompletedProcess:
    # Through a shell: it looks the interpreter up as that account (setpriv's own exec does not
    # show the closed folder here).
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           "/bin/sh", "-c", 'exec "$0" -c "$1"', str(python), code],
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env}, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_an_interpreter_under_a_closed_folder_is_copied_and_runs_as_another_account(copies):
    if blocked_ancestor(Path(sys.executable)) is None:
        pytest.skip("this machine's Python is reachable by every account: nothing to copy")
    blocked = blocked_ancestor(Path(sys.executable))
    mode_before = stat.S_IMODE(blocked.stat().st_mode)
    # The hub's own interpreter: another account cannot even start it.
    assert _run_as_nobody(sys.executable, {}, "print(1)").returncode != 0

    users = users_python(copies)

    assert users.executable.is_relative_to(copies) and users.executable.exists()
    done = _run_as_nobody(users.executable, users.env,
                          "import sys, ssl, sqlite3, grader, nbgrader, jupyterlab, numpy\n"
                          "print(sys.prefix, grader.__file__, sep='|')")
    assert done.returncode == 0, done.stderr
    prefix, package = done.stdout.strip().split("|")
    # A virtual environment of its own, with the checkout's packages and the platform's code.
    assert Path(prefix).is_relative_to(copies) and package == __import__("grader").__file__
    # Jupyter's data (Lab's extensions, kernelspecs) and enabled server extensions come along.
    assert (users.executable.parent.parent / "share" / "jupyter").is_dir()
    assert (users.executable.parent.parent / "etc" / "jupyter").is_dir()
    # Nothing was opened to get there, and a second call reuses the copy.
    assert stat.S_IMODE(blocked.stat().st_mode) == mode_before
    ready = users.executable.parent.parent.parent / "ready"
    made = ready.stat().st_mtime_ns
    assert users_python(copies) == users and ready.stat().st_mtime_ns == made


def test_a_reachable_interpreter_is_used_as_it_is(copies, monkeypatch, tmp_path):
    # A Python every account can enter, with packages they can read (no folder above is closed).
    reachable = Path(tempfile.mkdtemp(prefix="aicourse-open-python-"))
    try:
        os.chmod(reachable, 0o755)
        (reachable / "bin").mkdir(mode=0o755)
        (reachable / "bin" / "python").symlink_to("/usr/bin/python3")
        monkeypatch.setattr(sys, "executable", str(reachable / "bin" / "python"))
        monkeypatch.setattr("sysconfig.get_paths", lambda: {"purelib": str(reachable / "lib")})
        users = users_python(copies)
    finally:
        shutil.rmtree(reachable)
    assert users.executable == reachable / "bin" / "python" and users.env == {}
    assert list(copies.iterdir()) == []
