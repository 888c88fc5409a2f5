"""An allow-list root filesystem for one submission (Linux, as root, in a private mount namespace).

Nothing of the host exists for student code unless it is listed here: the system libraries, the
Python installation and the packages the executor already imported (read-only binds), a minimal
``/etc`` written for the sandbox, device nodes that carry no state (``/dev/null``...), a private
``/tmp`` and ``/dev/shm`` on size-limited tmpfs, and the submission's own folder (read-write, at
``/submission``). The new root is a tmpfs inside the submission's scratch folder, switched to with
pivot_root; the old root is detached, so no path leads back to the host.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217}

SUBMISSION_DIR = "/submission"
# System folders student code may read: shared libraries and executables (what a library may run,
# e.g. a compiler check), time zones. Nothing under /usr/local, /home, /root, /srv, /opt, /var.
SYSTEM_DIRS = ("/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/bin", "/usr/sbin", "/usr/share/zoneinfo")
TOP_LEVEL_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime")
DEVICES = ("null", "zero", "full", "random", "urandom")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda value: None if value is None else os.fsencode(value)  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), f"mount {target}")


def _bind_readonly(source: str, target: str) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _inside(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


@functools.lru_cache(maxsize=1)
def python_paths() -> tuple[str, ...]:
    """Folders the executor's Python needs: its prefixes, plus the top-level package folder (or
    file) of every imported module that lives elsewhere (e.g. this project in an editable install).

    Cached: the zygote computes it once after preloading (a realpath per module costs tens of
    milliseconds), and every fork inherits the answer."""
    prefixes = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), os.path.realpath(sys.exec_prefix)})
    extra: set[str] = set()
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None) if name != "__main__" else None
        if not filename:
            continue
        filename = os.path.realpath(filename)
        if any(filename.startswith(prefix + os.sep) for prefix in prefixes) or filename.startswith("/usr/"):
            continue
        top = module.__name__.split(".")[0]
        package = sys.modules.get(top)
        paths = list(getattr(package, "__path__", []) or [])
        extra.update(os.path.realpath(p) for p in paths) if paths else extra.add(filename)
    # Only what is not already inside another bound folder.
    chosen = []
    for path in sorted(set(prefixes) | extra, key=len):
        if not any(path == kept or path.startswith(kept + os.sep) for kept in chosen):
            chosen.append(path)
    return tuple(chosen)


def _write_etc(root: str, user: str, uid: int, gid: int) -> None:
    etc = _inside(root, "/etc")
    os.makedirs(etc, exist_ok=True)
    files = {
        "passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n{user}:x:{uid}:{gid}:grading sandbox:{SUBMISSION_DIR}:/usr/sbin/nologin\n",
        "group": f"root:x:0:\n{user}:x:{gid}:\n",
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n",
        "hostname": "sandbox\n",
    }
    for name, text in files.items():
        with open(os.path.join(etc, name), "w") as handle:
            handle.write(text)
    for name in ETC_FILES:
        host = os.path.join("/etc", name)
        if os.path.islink(host):
            os.symlink(os.readlink(host), os.path.join(etc, name))
        elif os.path.isfile(host):
            _bind_readonly(host, os.path.join(etc, name))


def _make_dev(root: str, shm_bytes: int) -> None:
    dev = _inside(root, "/dev")
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=755")
    for name in DEVICES:
        target = os.path.join(dev, name)
        open(target, "a").close()
        mount(f"/dev/{name}", target, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, name))
    # Pseudo-terminals of its own (IPython's `!command` runs through one), not the host's.
    pts = os.path.join(dev, "pts")
    os.makedirs(pts)
    mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", os.path.join(dev, "ptmx"))
    shm = os.path.join(dev, "shm")
    os.makedirs(shm)
    mount("tmpfs", shm, "tmpfs", MS_NOSUID | MS_NODEV, f"size={shm_bytes},mode=1777")


def build_and_enter(scratch: str, *, user: str, uid: int, gid: int, tmp_bytes: int) -> None:
    """Build the new root in ``scratch``/root, switch to it, and detach the host's root.

    ``scratch``/work becomes ``/submission``. The caller has already unshared the mount namespace.
    ``/proc`` is left empty: it must be mounted from inside the new PID namespace (see sandbox).
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    root = os.path.join(scratch, "root")
    os.makedirs(root, exist_ok=True)
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
    # The private /tmp first: Python or this package may themselves live under /tmp (a checkout
    # in /tmp), and their read-only binds go inside it, not under it.
    tmp = _inside(root, "/tmp")
    os.makedirs(tmp, exist_ok=True)
    mount("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    for folder in SYSTEM_DIRS:
        if os.path.isdir(folder) and not os.path.islink(folder):
            _bind_readonly(folder, _inside(root, folder))
    for link in TOP_LEVEL_LINKS:
        if os.path.islink(link):
            os.symlink(os.readlink(link), _inside(root, link))
        elif os.path.isdir(link):
            _bind_readonly(link, _inside(root, link))
    for path in python_paths():
        _bind_readonly(path, _inside(root, path))
    _write_etc(root, user, uid, gid)
    _make_dev(root, tmp_bytes)
    work = _inside(root, SUBMISSION_DIR)
    os.makedirs(work)
    mount(os.path.join(scratch, "work"), work, None, MS_BIND | MS_NOSUID | MS_NODEV)
    os.makedirs(_inside(root, "/proc"))
    # The new root's own folder list is final: make it read-only (its tmpfs mounts stay writable).
    old = os.path.join(root, ".old-root")
    os.makedirs(old)
    number = _SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unsupported machine {platform.machine()}")
    _check(_libc.syscall(number, os.fsencode(root), os.fsencode(old)), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old-root", MNT_DETACH), "detaching the host's root")
    os.rmdir("/.old-root")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def mount_proc() -> None:
    """A /proc of the submission's own PID namespace (call as its first process, before dropping root)."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def describe() -> str:
    return "allow-list root (system libraries, Python, private /tmp and /dev/shm, /submission)"

