"""An interpreter users' accounts can run, when the hub's own lives where they cannot enter.

In the secure mode each server runs as the user's own account, with the hub's interpreter (so
kernels see the platform's torch and tensorflow). A Python built under ``/root`` (pyenv, as on a
fresh cloud VM set up by root) cannot be run by any other account: ``/root`` is ``0700``. Rather
than open ``/root`` to everyone, the hub makes, once, what The Littlest JupyterHub installs under
``/opt/tljh``: a copy of the base interpreter (binary, shared library, standard library; ~100 MB)
under ``/opt/aicourse/python-<version>-<hash>/base``, readable by all, and beside it a virtual
environment whose ``site-packages`` is the hub environment's own (a link), so one set of
packages serves the hub and the users. Nothing under ``/root`` changes mode.

The copied binary still names its build folder for the shared library (RUNPATH); the
``LD_LIBRARY_PATH`` returned with it points at the copy, and is searched first.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import stat
import sys
import sysconfig
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.hub.spawn.isolation import blocked_ancestor

DEFAULT_ROOT = Path("/opt/aicourse")
ROOT_ENV = "AICOURSE_USERS_PYTHON_DIR"  # another place for the copies (tests, a read-only /opt)
# Not needed to run a server or a kernel, and most of the standard library's size.
_LAYOUT = 1  # bumped when what a copy holds changes, so an older copy is not reused
_SKIPPED = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}


@dataclass(frozen=True)
class UsersPython:
    executable: Path
    env: dict[str, str] = field(default_factory=dict)  # to add to the environment of what runs it


def users_python(root: Path | None = None, *, build: bool = True) -> UsersPython:
    """The interpreter users' servers run: the hub's own when every account can reach it (and its
    packages), else the copy under ``root``, made now if missing or out of date (``build``: the
    hub's configuration names it; ``prepare_machine`` makes it, as root, before the hub starts)."""
    executable = Path(sys.executable)
    packages = Path(sysconfig.get_paths()["purelib"])
    if blocked_ancestor(executable) is None and blocked_ancestor(executable.resolve()) is None:
        return UsersPython(executable)
    if blocked_ancestor(packages) is not None:
        raise RuntimeError(f"the hub's packages ({packages}) are not reachable by users' accounts either: "
                           "install the platform's environment outside that folder (e.g. under /opt or /srv)")
    root = Path(os.environ.get(ROOT_ENV) or root or DEFAULT_ROOT)
    target = root / _name(executable.resolve(), packages)
    if build and not (target / "ready").is_file():
        _build(target, executable.resolve(), packages)
    # Asked of the original (the copy may not be made yet): a Python built with a shared library.
    shared = any((Path(sys.base_prefix) / "lib").glob("libpython*.so*"))
    env = {"LD_LIBRARY_PATH": str(target / "base" / "lib")} if shared else {}
    return UsersPython(target / "venv" / "bin" / "python", env)


def _name(binary: Path, packages: Path) -> str:
    """Named by version and by where the interpreter and packages come from, so two checkouts or a
    rebuilt Python never share a copy; the binary's size and time catch an upgrade in place."""
    state = binary.stat()
    digest = hashlib.sha256(f"{_LAYOUT}|{binary}|{packages}|{state.st_size}|{state.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"python{sys.version_info.major}.{sys.version_info.minor}-{digest}"


def _build(target: Path, binary: Path, packages: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o755)
    # Two hubs starting at once (a test run) build it once.
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "ready").is_file():
            return
        staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
        try:
            _copy_base(staging / "base", binary)
            _make_venv(staging / "venv", staging / "base", target / "base", binary.name, packages)
            (staging / "ready").write_text(f"{binary}\n{packages}\n")
            _readable_by_all(staging)
            if target.exists():
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _copy_base(base: Path, binary: Path) -> None:
    prefix = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (base / "bin").mkdir(parents=True)
    shutil.copy2(binary, base / "bin" / binary.name)
    (base / "lib").mkdir()
    for library in (prefix / "lib").glob("libpython*"):
        shutil.copy2(library, base / "lib" / library.name, follow_symlinks=False)
    standard = prefix / "lib" / version
    shutil.copytree(standard, base / "lib" / version, symlinks=True,
                    ignore=lambda folder, names: [n for n in names if Path(folder) == standard and n in _SKIPPED])


def _make_venv(venv: Path, base: Path, final_base: Path, binary_name: str, packages: Path) -> None:
    """A virtual environment by hand: Python finds ``pyvenv.cfg`` beside its (unresolved) path."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {final_base / 'bin'}\ninclude-system-site-packages = false\n"
        f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    for name in ("python", "python3", version):
        os.symlink(final_base / "bin" / binary_name, venv / "bin" / name)
    (venv / "lib" / version).mkdir(parents=True)
    os.symlink(packages, venv / "lib" / version / "site-packages")
    # Jupyter's data and configuration under sys.prefix: Lab's extensions, kernelspecs, and the
    # server extensions enabled at install time (terminals, nbgrader...).
    for name in ("etc", "share"):
        if (Path(sys.prefix) / name).is_dir():
            os.symlink(Path(sys.prefix) / name, venv / name)


def _readable_by_all(top: Path) -> None:
    for folder, _folders, files in os.walk(top):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                os.chmod(path, stat.S_IMODE(path.stat().st_mode) | 0o444)
