"""Confine a forked executor child before it runs student code (Linux).

As root: a private mount namespace in which the course directory, the source assignments and the
exchange are covered by empty, inaccessible tmpfs mounts; a scratch directory owned by a per-worker
unprivileged user; then the child becomes that user. Always: resource limits (address space,
file size, core dumps, and processes when a sandbox user is in use).

Without root none of the user or mount isolation is possible; the child then runs as the grader's
own user with only the resource limits (see README, "Grading sandbox").
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import resource
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_BIND = 4096
MS_MOVE = 8192
SANDBOX_USER_PREFIX = "grader-sbx"


@dataclass(frozen=True)
class SandboxSpec:
    """What the child must be confined to; sent by the grader with each submission."""

    slot: int = 0  # worker slot: selects the sandbox user, so one runaway cannot starve another
    memory_bytes: int = 2 << 30
    file_size_bytes: int = 256 << 20
    max_processes: int = 16
    hide_paths: list[str] = field(default_factory=list)
    drop_privileges: bool = True


SLOT_LOCK_DIR = Path(tempfile.gettempdir()) / "grader-sandbox-slots"
MAX_SLOTS = 256


class SlotClaim:
    """Sandbox slots held by this process (an flock per slot) until ``release``.

    A slot's user may run only one submission on the machine at a time: the grader kills every
    process of that user when a submission ends, so two gradings sharing a user would kill each
    other's work. Locks vanish with the process, so a killed grader frees its slots.
    """

    def __init__(self, count: int):
        SLOT_LOCK_DIR.mkdir(mode=0o755, exist_ok=True)
        self._handles, self.slots = [], []
        for slot in range(MAX_SLOTS):
            if len(self.slots) == count:
                break
            handle = open(SLOT_LOCK_DIR / f"slot-{slot}.lock", "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self._handles.append(handle)
            self.slots.append(slot)
        if len(self.slots) < count:
            self.release()
            raise RuntimeError(f"only {len(self.slots)} of {count} sandbox slots are free on this machine")

    def release(self) -> None:
        for handle in self._handles:
            handle.close()
        self._handles, self.slots = [], []


def sandbox_username(slot: int) -> str:
    return f"{SANDBOX_USER_PREFIX}{slot}"


def ensure_sandbox_user(slot: int) -> tuple[int, int]:
    """(uid, gid) of the slot's sandbox user, creating a no-login system user if it is missing."""
    name = sandbox_username(slot)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
            check=True, capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def can_isolate() -> bool:
    return os.geteuid() == 0


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _blocked_ancestors(paths: list[str]) -> dict[str, set[str]]:
    """For each folder that others may not traverse on the way to ``paths``: the children needed."""
    blocked: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(os.path.realpath(path)).parts
        for depth in range(1, len(parts) - 1):
            ancestor = os.path.join(*parts[: depth + 1])
            try:
                traversable = os.stat(ancestor).st_mode & stat.S_IXOTH
            except OSError:
                break
            if not traversable:
                blocked.setdefault(ancestor, set()).add(parts[depth + 1])
                break
    return blocked


def expose_paths(paths: list[str]) -> None:
    """Make ``paths`` reachable for the sandbox user inside the private mount namespace.

    Python may live under a folder only its owner can enter (a pyenv build in /root): there, cover
    the folder with a traversable tmpfs and move just the needed children back into it, leaving
    the rest of that folder out of sight.
    """
    libc = _libc()
    for ancestor, children in sorted(_blocked_ancestors(paths).items()):
        stash = tempfile.mkdtemp(prefix="grader-expose-")
        for child in children:
            os.makedirs(os.path.join(stash, child))
            _check(libc.mount(os.fsencode(os.path.join(ancestor, child)), os.fsencode(os.path.join(stash, child)),
                              None, MS_BIND | MS_REC, None), f"binding {ancestor}/{child}")
        _check(libc.mount(b"tmpfs", os.fsencode(ancestor), b"tmpfs", 0, b"size=64k,mode=0711"), f"covering {ancestor}")
        for child in children:
            os.makedirs(os.path.join(ancestor, child))
            _check(libc.mount(os.fsencode(os.path.join(stash, child)), os.fsencode(os.path.join(ancestor, child)),
                              None, MS_MOVE, None), f"moving {ancestor}/{child}")


def hide_paths(paths: list[str]) -> None:
    """Cover each existing path with an empty tmpfs nobody can enter (in the private namespace)."""
    libc = _libc()
    for path in paths:
        if os.path.isdir(path):
            _check(
                libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", 0, b"size=4k,mode=000"),
                f"hiding {path}",
            )


def _current_address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply_limits(spec: SandboxSpec, *, limit_processes: bool) -> None:
    # A backstop only: the grader ends the submission at memory_bytes of memory added to what
    # the zygote left it; address space also counts what the zygote mapped and what is reserved, not used.
    address_space = _current_address_space() + 2 * spec.memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_FSIZE, (spec.file_size_bytes, spec.file_size_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if limit_processes:
        # Counts every process *and thread* of the (per-slot) sandbox user: room for the thread
        # pools of numpy, torch and tensorflow, not for a fork bomb that would starve the grader.
        tasks = spec.max_processes * 4
        resource.setrlimit(resource.RLIMIT_NPROC, (tasks, tasks))
    # Student code yields the CPU to the grader, which must keep watching the limits.
    os.nice(10)


def confine(spec: SandboxSpec, scratch_dir: str) -> bool:
    """Confine the calling (child) process; return True when it now runs as a sandbox user."""
    isolated = spec.drop_privileges and can_isolate()
    if isolated:
        uid, gid = ensure_sandbox_user(spec.slot)
        libc = _libc()
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        # Keep our mounts from propagating back to the host's namespace.
        _check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
        expose_paths([sys.prefix, sys.base_prefix, *[p for p in sys.path if p]])
        hide_paths(spec.hide_paths)
        os.chown(scratch_dir, uid, gid)
        for root, dirs, files in os.walk(scratch_dir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid)
        apply_limits(spec, limit_processes=True)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    else:
        apply_limits(spec, limit_processes=False)
    return isolated
