"""grader.regular_files: a submission's regular files are copied and read; links, devices,
fifos and sockets never are, and each is reported as a ``files`` flag naming it."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from grader.flags import Flag
from grader.regular_files import (
    NotRegularFile,
    copy_regular_tree,
    non_regular_entries,
    read_regular_file,
    read_regular_files,
)

SECRET = b"TOP-SECRET-CONTENT"
_opened: list[str] | None = None


def _audit(event, args):
    if _opened is not None and event == "open":
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def opened_paths():
    """Every path handed to open() (os.open included) while the test runs."""
    global _opened
    _opened = []
    yield _opened
    _opened = None


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """A submission next to files it must not reach, holding every kind of entry."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_bytes(SECRET)
    os.chmod(secret, 0o600)  # root-only when the tests run as root
    (outside / "dir").mkdir()
    (outside / "dir" / "inner.txt").write_bytes(SECRET)
    os.mkfifo(outside / "fifo")

    sub = tmp_path / "submission"
    (sub / "data" / "deeper").mkdir(parents=True)
    (sub / "squares.ipynb").write_text("{}")
    (sub / "helper.py").write_text("X = 1\n")
    (sub / "data" / "table.csv").write_text("a,b\n1,2\n")
    (sub / "data" / "deeper" / "weights.bin").write_bytes(bytes(range(256)))
    os.symlink(secret, sub / "shadow")  # to a file outside
    os.symlink(outside / "dir", sub / "data" / "linked-dir")  # to a directory outside, nested
    os.symlink(tmp_path / "nowhere", sub / "dangling")
    os.symlink(outside / "fifo", sub / "data" / "deeper" / "to-fifo")
    os.symlink("../../squares.ipynb", sub / "data" / "deeper" / "inside-link")  # even to a file inside
    os.link(secret, sub / "data" / "hard")  # a hard link to the file outside
    os.mkfifo(sub / "data" / "pipe")
    monkeypatch.chdir(sub / "data")  # a short path for bind()
    server = socket.socket(socket.AF_UNIX)
    server.bind("sock")
    if os.geteuid() == 0:
        os.mknod(sub / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    yield tmp_path, sub
    server.close()


REGULAR = ["data/deeper/weights.bin", "data/table.csv", "helper.py", "squares.ipynb"]


def expected_flags(root_only: bool) -> dict[str, str]:
    """relative path -> words its flag must hold."""
    flags = {
        "shadow": "symlink to ", "data/linked-dir": "symlink to ", "dangling": "symlink to ",
        "data/deeper/to-fifo": "symlink to ", "data/deeper/inside-link": "symlink to '../../squares.ipynb'",
        "data/hard": "hard link (2 links", "data/pipe": "fifo skipped", "data/sock": "socket skipped",
    }
    if root_only:
        flags["null"] = "device skipped"
    return flags


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())


def check_flags(flags: list[Flag]):
    wanted = expected_flags(os.geteuid() == 0)
    assert all(flag.kind == "files" for flag in flags)
    by_path = {flag.reason.split(": ", 1)[0]: flag.reason for flag in flags}
    assert sorted(by_path) == sorted(wanted), flags
    for path, words in wanted.items():
        assert words in by_path[path], by_path[path]


def test_the_copy_holds_only_the_regular_files_and_each_skipped_entry_is_flagged(hostile, opened_paths):
    tmp_path, sub = hostile
    copy = tmp_path / "copy"
    flags = copy_regular_tree(sub, copy)
    check_flags(flags)
    assert files_under(copy) == REGULAR
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    assert (copy / "data" / "deeper" / "weights.bin").read_bytes() == bytes(range(256))
    assert (copy / "helper.py").read_text() == "X = 1\n"
    for path in copy.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_bytes()
            assert os.stat(path).st_nlink == 1
    # Nothing outside was ever opened, not even the fifo (opening it would have blocked).
    assert not [p for p in opened_paths if "outside" in p or p.endswith(("secret.txt", "fifo", "hard", "shadow"))]


def test_read_regular_files_returns_the_same_files_and_flags(hostile, opened_paths):
    _, sub = hostile
    files, flags = read_regular_files(sub, exclude_suffixes=(".ipynb",), max_total_bytes=1 << 20)
    assert sorted(files) == [path for path in REGULAR if not path.endswith(".ipynb")]
    assert files["data/table.csv"] == b"a,b\n1,2\n"
    assert SECRET not in b"".join(files.values())
    check_flags(flags)
    assert not [p for p in opened_paths if "outside" in p]
    assert check_flags(non_regular_entries(sub)) is None


def test_read_regular_files_stops_at_the_size_limit_and_says_so(tmp_path):
    for name, size in [("a.bin", 600), ("b.bin", 600), ("c.bin", 10)]:
        (tmp_path / name).write_bytes(b"x" * size)
    files, flags = read_regular_files(tmp_path, exclude_suffixes=(), max_total_bytes=1000)
    assert sorted(files) == ["a.bin"]
    assert [flag.kind for flag in flags] == ["files"] and flags[0].reason.startswith("b.bin: ")


def test_a_submission_folder_that_is_itself_a_symlink_is_not_followed(hostile):
    tmp_path, _ = hostile
    os.symlink(tmp_path / "outside", tmp_path / "linked-submission")
    copy = tmp_path / "copy"
    flags = copy_regular_tree(tmp_path / "linked-submission", copy)
    assert len(flags) == 1 and "symlink to" in flags[0].reason
    assert list(copy.iterdir()) == []


def test_read_regular_file_refuses_links_and_special_files(hostile):
    tmp_path, sub = hostile
    assert read_regular_file(sub / "helper.py") == b"X = 1\n"
    for name in ["shadow", "data/hard", "data/pipe", "dangling"]:
        with pytest.raises(OSError) as refused:
            read_regular_file(sub / name)
        assert isinstance(refused.value, (NotRegularFile, FileNotFoundError)), name


def test_ignore_leaves_names_out_without_flags(hostile):
    tmp_path, sub = hostile
    copy = tmp_path / "copy"
    flags = copy_regular_tree(sub, copy, ignore=lambda directory, names: [n for n in names if n in ("data", "shadow")])
    assert files_under(copy) == ["helper.py", "squares.ipynb"]
    assert not [flag for flag in flags if flag.reason.startswith(("data/", "shadow"))]


def test_modes_and_times_are_kept_without_set_id_bits(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    script = src / "run.sh"
    script.write_text("echo hi\n")
    os.chmod(script, 0o4755)
    os.utime(script, (1_000_000_000, 1_000_000_000))
    copy_regular_tree(src, tmp_path / "dst")
    copied = os.stat(tmp_path / "dst" / "run.sh")
    assert stat.S_IMODE(copied.st_mode) == 0o755 and copied.st_mtime == 1_000_000_000
