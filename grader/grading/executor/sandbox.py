"""Confine a forked executor child before it runs student code (Linux).

As root, by design rather than by deny-list (docs/grading-security.md):

- **its own cgroup** (memory incl. tmpfs and page cache, tasks), made by the grader
  (:mod:`grader.grading.executor.cgroups`) and joined here before anything else;
- **namespaces**: mount (an allow-list root filesystem, :mod:`grader.grading.executor.rootfs`), network
  (only a loopback that is down: nothing can be reached), PID (the submission sees only its own
  processes; when its first process dies the kernel ends the rest), IPC and UTS;
- **a per-slot unprivileged user**, with no supplementary groups and ``no_new_privs``;
- **no inherited descriptors** but its standard streams and its own connection to the grader;
- resource limits (file size, core dumps, address space backstop, processes).

Without root none of the namespaces, cgroups or user changes are possible; the child then runs
as the grader's user with the resource limits, a scrubbed environment (the zygote is started with
one) and the integrity checks (see README, "Grading sandbox"). ``describe_isolation`` says which.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import random
import resource
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.executor import rootfs

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
SANDBOX_USER_PREFIX = "grader-sbx"


@dataclass(frozen=True)
class SandboxSpec:
    """What the child must be confined to; sent by the grader with each submission."""

    slot: int = 0  # worker slot: selects the sandbox user, so one runaway cannot starve another
    memory_bytes: int = 2 << 30
    file_size_bytes: int = 256 << 20
    max_processes: int = 16
    tmp_bytes: int = 256 << 20  # each of /tmp and /dev/shm (charged to the cgroup's memory too)
    cgroup_files: list[str] = field(default_factory=list)  # cgroup.procs files to join
    drop_privileges: bool = True


def _slot_lock_dir() -> Path:
    # Lock files outlive a run by design (they are how concurrent runs see each other); keep them
    # out of /tmp, which a grading run must leave as it found it.
    base = "/run" if os.geteuid() == 0 and os.path.isdir("/run") else os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / "grader-sandbox-slots"


MAX_SLOTS = 256


class SlotClaim:
    """Sandbox slots held by this process (an flock per slot) until ``release``.

    A slot's user may run only one submission on the machine at a time: the grader kills every
    process of that user when a submission ends, so two gradings sharing a user would kill each
    other's work. Locks vanish with the process, so a killed grader frees its slots.
    """

    def __init__(self, count: int):
        lock_dir = _slot_lock_dir()
        lock_dir.mkdir(mode=0o755, exist_ok=True)
        self._handles, self.slots = [], []
        for slot in range(MAX_SLOTS):
            if len(self.slots) == count:
                break
            handle = open(lock_dir / f"slot-{slot}.lock", "w")
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


def describe_isolation(*, root: bool, cgroups: int | None) -> str:
    """One line for the instructor: what confines student code in this mode."""
    if not root:
        return ("grading sandbox: NOT root, so no separate user, namespaces or cgroups; student code runs as "
                f"{pwd.getpwuid(os.geteuid()).pw_name} with rlimits, a scrubbed environment and the integrity checks")
    limits = f"cgroup v{cgroups} memory and task limits" if cgroups else "rlimits only (no writable cgroup hierarchy)"
    return (f"grading sandbox: per-slot user, {rootfs.describe()}, no network, own PID/IPC/UTS namespaces, "
            f"{limits}, scrubbed environment, integrity checks")


_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _current_address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def apply_limits(spec: SandboxSpec, *, limit_processes: bool) -> None:
    # A backstop only: the cgroup (or, without one, the grader's polling) enforces memory_bytes;
    # address space also counts what the zygote mapped and what is reserved, not used.
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


def keep_only_descriptors(conn: socket.socket, output_fd: int) -> tuple[socket.socket, int]:
    """Close every inherited descriptor but 0-2, the grader connection and the output channel;
    both move to random high numbers. The zygote's listening socket (which would let a submission
    accept another's connection), pipes and files of preloaded libraries must not reach student
    code, and a guessable number would invite writing to the grader directly."""
    first, second = random.sample(range(200, 900), 2)
    fd = fcntl.fcntl(conn.fileno(), fcntl.F_DUPFD_CLOEXEC, first)
    while fd == second:
        second = random.randrange(200, 900)
    moved_output = fcntl.fcntl(output_fd, fcntl.F_DUPFD_CLOEXEC, second)
    moved = socket.socket(fileno=fd)
    conn.detach()
    keep = sorted({0, 1, 2, fd, moved_output})
    for low, high in zip(keep, keep[1:] + [65536]):
        os.closerange(low + 1, high)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return moved, moved_output


class PidNamespacePerChild:
    """Lets a forking server (the zygote) make each child the first process of its own PID namespace.

    ``unshare(CLONE_NEWPID)`` moves only the caller's *next* child into a new namespace; the
    server takes it just before forking and goes back to its own namespace right after, so the
    child needs no second fork of its own (a fork of a process holding torch costs ~15 ms of CPU).
    """

    def __init__(self):
        self._own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)

    def before_fork(self) -> None:
        _check(_libc.unshare(CLONE_NEWPID), "unshare(CLONE_NEWPID)")

    def after_fork(self) -> None:
        _check(_libc.setns(self._own, CLONE_NEWPID), "setns(own PID namespace)")


def _enter_namespaces_and_root(spec: SandboxSpec, scratch: str, uid: int, gid: int, pid: int) -> tuple[int, int]:
    """Join the cgroups, unshare, build the root; become (or fork) the PID namespace's first process.

    Returns (host pid, host process group) of the process that runs the cells. A child the zygote
    already made the first process of its own PID namespace (PidNamespacePerChild) is that
    process; otherwise it forks one, waits for it and exits with it, so it never returns here.
    """
    for procs in spec.cgroup_files:
        with open(procs, "w") as handle:
            handle.write(str(os.getpid()))
    first_of_own_namespace = os.getpid() == 1
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    _check(_libc.unshare(flags if first_of_own_namespace else flags | CLONE_NEWPID), "unshare")
    rootfs.build_and_enter(scratch, user=sandbox_username(spec.slot), uid=uid, gid=gid, tmp_bytes=spec.tmp_bytes)
    if first_of_own_namespace:
        rootfs.mount_proc()
        _libc.sethostname(b"sandbox", 7)
        return pid, pid  # a session leader (run_session's setsid): its group is its pid
    read_end, write_end = os.pipe()
    child = os.fork()
    if child:
        # Outside the new PID namespace: the only one that knows the child's host pid.
        os.write(write_end, f"{child} {os.getpgid(0)}".encode())
        os.closerange(3, 4096)
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    os.close(write_end)
    host_pid, host_group = (int(value) for value in os.read(read_end, 64).split())
    os.close(read_end)
    rootfs.mount_proc()
    _libc.sethostname(b"sandbox", 7)
    return host_pid, host_group


def own_host_pid() -> int:
    """This process's pid as the host sees it, also inside a PID namespace of its own: ``/proc``
    (the host's, until the sandbox mounts its own) names ``self`` in the host's namespace."""
    return int(os.readlink("/proc/self"))


def confine(spec: SandboxSpec, scratch: str) -> dict:
    """Confine the calling (child) process. Returns what applies: ``isolated`` (runs as a sandbox
    user in its own namespaces), ``pid`` and ``pgid`` (host ids of the process that runs the cells),
    ``workdir`` (where the submission's files are, as this process sees it)."""
    work = os.path.join(scratch, "work")
    pid = own_host_pid()
    if not (spec.drop_privileges and can_isolate()):
        apply_limits(spec, limit_processes=False)
        return {"isolated": False, "pid": pid, "pgid": pid if os.getpgid(0) == os.getpid() else os.getpgid(0), "workdir": work}
    uid, gid = ensure_sandbox_user(spec.slot)
    for folder, _dirs, files in os.walk(work):
        os.chown(folder, uid, gid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, gid)
    host_pid, host_group = _enter_namespaces_and_root(spec, scratch, uid, gid, pid)
    apply_limits(spec, limit_processes=True)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    return {"isolated": True, "pid": host_pid, "pgid": host_group, "workdir": rootfs.SUBMISSION_DIR}
