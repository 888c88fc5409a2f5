"""Submission files are regular files only: read and copy them without ever following a link.

A submission folder is written by its student. Anything in it that is not a regular file with a
single link — a symlink (to ``/etc/shadow``, to ``gradebook.db``, to another student's notebook),
a hard link (which may be a file outside the submission: it cannot be told from the original), a
device, a fifo (opening it blocks), a socket — is skipped, never opened, and reported as a
``files`` flag naming it. Every path is walked from an open directory descriptor with
``O_NOFOLLOW``, so no component of a path is ever followed, even if the student swaps a file for
a link while it is read; each file is checked *after* it is opened (``fstat``), so what is read is
what was checked.

Only the folder given (``src``/``folder``) is trusted to be reached through its parents (the
instructor's course or exchange tree); the folder itself is opened with ``O_NOFOLLOW`` too.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from grader.flags import Flag

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in after the check must not block the open; O_NOCTTY: a terminal
# device must never become the grader's controlling terminal.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

# shutil.copytree's ``ignore`` protocol: (directory path, names in it) -> names to leave out.
Ignore = Callable[[str, list[str]], Iterable[str]]


class NotRegularFile(OSError):
    """A path that was to be read is not a regular file with a single link."""


def describe(mode: int) -> str:
    """What a non-regular file is, in the words the flags use."""
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISDIR(mode):
        return "directory"
    return "special file"


def _skipped(relative: str, mode: int, *, dir_fd: int | None = None, name: str = "", nlink: int = 1) -> Flag:
    kind = describe(mode)
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            target = "?"
        return Flag("files", f"{relative}: symlink to {target!r} skipped (submissions hold regular files only)")
    if stat.S_ISREG(mode):
        return Flag("files", f"{relative}: hard link ({nlink} links; may be a file outside the submission) skipped")
    return Flag("files", f"{relative}: {kind} skipped (submissions hold regular files only)")


@dataclass
class Entry:
    """A regular file found by :func:`walk_regular`: open (``fd``) and checked, until closed."""

    relative: str  # posix path inside the folder
    fd: int
    stat: os.stat_result

    def read(self) -> bytes:
        chunks = []
        while True:
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def _open_dir(name, dir_fd: int | None) -> int:
    fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):  # O_DIRECTORY guarantees it; belt and braces
        os.close(fd)
        raise NotADirectoryError(name)
    return fd


def walk_regular(folder: Path, *, ignore: Ignore | None = None, on_dir: Callable[[str, os.stat_result], None] | None = None,
                 ) -> Iterator[Entry | Flag]:
    """Every entry under ``folder``, sorted by path: an open :class:`Entry` for each regular file
    with one link (closed when the iteration moves on), a ``files`` :class:`Flag` for everything
    else that is skipped. ``on_dir(relative, stat)`` is called for each sub-directory before its
    contents. ``ignore`` leaves names out silently, as ``shutil.copytree``'s does.

    ``folder`` itself must be a real directory (not a symlink): otherwise one flag is yielded."""
    folder = Path(folder)
    try:
        root = _open_dir(folder, None)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            mode = os.lstat(folder).st_mode
            yield _skipped(folder.name, mode, dir_fd=None, name=str(folder))
            return
        raise
    try:
        yield from _walk(root, str(folder), "", ignore, on_dir)
    finally:
        os.close(root)


def _walk(dir_fd: int, dir_path: str, prefix: str, ignore: Ignore | None, on_dir) -> Iterator[Entry | Flag]:
    with os.scandir(dir_fd) as scan:
        names = sorted(entry.name for entry in scan)
    if ignore is not None:
        left_out = set(ignore(dir_path, list(names)))
        names = [name for name in names if name not in left_out]
    for name in names:
        relative = prefix + name
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:  # removed while we walk
            continue
        mode = info.st_mode
        if stat.S_ISDIR(mode):
            try:
                child = _open_dir(name, dir_fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link or a file
                    yield Flag("files", f"{relative}: changed while it was read; skipped")
                    continue
                raise
            try:
                if on_dir is not None:
                    on_dir(relative, os.fstat(child))
                yield from _walk(child, os.path.join(dir_path, name), relative + "/", ignore, on_dir)
            finally:
                os.close(child)
        elif stat.S_ISREG(mode):
            if info.st_nlink != 1:
                yield _skipped(relative, mode, nlink=info.st_nlink)
                continue
            try:
                fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENXIO):  # swapped for a symlink or a socket
                    yield Flag("files", f"{relative}: changed while it was read; skipped")
                    continue
                raise
            try:
                opened = os.fstat(fd)
                # What is open is what is read: check it now, not the name looked at before.
                if not stat.S_ISREG(opened.st_mode) or opened.st_nlink != 1:
                    yield _skipped(relative, opened.st_mode, nlink=opened.st_nlink)
                    continue
                yield Entry(relative, fd, opened)
            finally:
                os.close(fd)
        else:
            yield _skipped(relative, mode, dir_fd=dir_fd, name=name)


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file with one link; the last component is
    never followed (``NotRegularFile`` otherwise)."""
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENXIO):
            raise NotRegularFile(error.errno, f"{path}: not a regular file (a symlink or socket)") from error
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            what = "hard link" if stat.S_ISREG(info.st_mode) else describe(info.st_mode)
            raise NotRegularFile(errno.EINVAL, f"{path}: a {what}, not a regular file with one link")
        return Entry(str(path), fd, info).read()
    finally:
        os.close(fd)


def copy_regular_tree(src: Path, dst: Path, *, ignore: Ignore | None = None) -> list[Flag]:
    """Copy the regular files and directories under ``src`` into ``dst`` (created; may exist);
    return a ``files`` flag for every entry skipped. Nothing is followed: see the module doc.

    Permission bits are kept (owner read/write added, so the grader can always read its copy)
    and modification times too, as ``shutil.copytree`` does; set-id bits never are."""
    src, dst = Path(src), Path(dst)
    flags: list[Flag] = []
    dst.mkdir(parents=True, exist_ok=True)

    def make_dir(relative: str, info: os.stat_result) -> None:
        target = dst / relative
        try:
            os.mkdir(target)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(target).st_mode):  # never write through a link in dst either
                raise
        os.chmod(target, (info.st_mode & 0o777) | 0o700)

    for item in walk_regular(src, ignore=ignore, on_dir=make_dir):
        if isinstance(item, Flag):
            flags.append(item)
            continue
        target = dst / item.relative
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                      (item.stat.st_mode & 0o777) | 0o600)
        try:
            while True:
                chunk = os.read(item.fd, 1 << 20)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
            os.fchmod(out, (item.stat.st_mode & 0o777) | 0o600)
            os.utime(out, ns=(item.stat.st_atime_ns, item.stat.st_mtime_ns))
        finally:
            os.close(out)
    return flags


def read_regular_files(folder: Path, *, exclude_suffixes: Iterable[str] = (".ipynb",),
                       max_total_bytes: int) -> tuple[dict[str, bytes], list[Flag]]:
    """``({relative posix path: bytes}, flags)`` of the regular files under ``folder``, in path
    order, leaving out names ending in ``exclude_suffixes`` (not opened) and stopping before the
    file that would take the total past ``max_total_bytes`` (flagged, with the files after it).
    Non-regular entries are skipped and flagged whatever their suffix."""
    exclude = tuple(exclude_suffixes)
    files: dict[str, bytes] = {}
    flags: list[Flag] = []
    total, over = 0, None
    for item in walk_regular(folder):
        if isinstance(item, Flag):
            flags.append(item)
            continue
        if exclude and item.relative.endswith(exclude):
            continue
        if over is not None:
            continue
        if total + item.stat.st_size > max_total_bytes:
            over = item.relative
            continue
        data = item.read()
        total += len(data)
        files[item.relative] = data
    if over is not None:
        flags.append(Flag("files", f"{over}: the submission's files pass {max_total_bytes} bytes; "
                                   "it and the files after it were not given to the notebook"))
    return files, flags


def non_regular_entries(folder: Path, *, ignore: Ignore | None = None) -> list[Flag]:
    """The flags :func:`copy_regular_tree` would raise for ``folder``, reading no content."""
    return [item for item in walk_regular(folder, ignore=ignore) if isinstance(item, Flag)]


class PrivateFileError(ValueError):
    """A secret's file that is not a regular file, or that others may read; the message says which."""


def private_file(path: Path, make, what: str) -> bytes:
    """A secret file's bytes: made once by ``make()`` (created ``0600``, never following a link),
    refused when it is not a regular file or others may read it. ``what`` names the secret."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as out:
            out.write(make())
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise PrivateFileError(f"{path}: not a regular file ({what})")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PrivateFileError(f"{path}: holds {what}, readable by others; run: chmod 600 {path}")
    return path.read_bytes()
