"""Per-submission cgroups: the real hierarchy this machine has (v1), and the v2 file layout.

cgroup v2 with the memory controller is not available here (its hierarchy is mounted without
controllers), so the v2 test checks the files the grader writes in a folder laid out like one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from grader.grading.executor import cgroups

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups are writable by root only")


@pytest.fixture
def layout():
    found = cgroups.detect_layout()
    if found is None:
        pytest.skip("no writable cgroup hierarchy on this machine")
    return found


def test_a_group_limits_counts_and_kills_what_joins_it(layout):
    group = cgroups.SubmissionGroup(layout, f"test-{uuid.uuid4().hex[:8]}", memory_bytes=64 << 20, max_tasks=8)
    try:
        # A child joins, then touches 40 MiB in a tmpfs-like way (bytes it keeps): counted.
        child = subprocess.Popen([sys.executable, "-c",
                                  "import sys, time\n"
                                  "for path in sys.argv[1:]:\n    open(path, 'w').write(str(__import__('os').getpid()))\n"
                                  "held = bytearray(40 << 20)\nprint('ready', flush=True)\ntime.sleep(60)",
                                  *group.join_files()], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "ready"
        assert child.pid in group.pids()
        assert group.memory_bytes() >= 40 << 20
        assert not group.oom_killed()
        group.kill_all()
        assert child.wait(10) == -9
    finally:
        group.remove()
    assert not any(path.exists() for path in group.paths)


def test_allocating_past_the_limit_is_an_oom_kill_of_that_group_only(layout):
    group = cgroups.SubmissionGroup(layout, f"test-{uuid.uuid4().hex[:8]}", memory_bytes=48 << 20, max_tasks=8)
    try:
        child = subprocess.Popen([sys.executable, "-c",
                                  "import sys\nfor path in sys.argv[1:]:\n    open(path, 'w').write(str(__import__('os').getpid()))\n"
                                  "chunks = [bytearray(8 << 20) for _ in range(20)]",
                                  *group.join_files()])
        assert child.wait(30) == -9
        assert group.oom_killed()
    finally:
        group.remove()


def test_v2_files(tmp_path, monkeypatch):
    root = tmp_path / "cgroup"
    own = root / "system.slice" / "grader.service"
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", root)
    monkeypatch.setattr(cgroups, "own_paths", lambda: {"": "/system.slice/grader.service"})
    monkeypatch.setattr(cgroups, "_writable", lambda path: path.is_dir())
    layout = cgroups.detect_layout()
    assert layout.version == 2 and layout.memory == own / "grader-sandbox"
    # What the kernel would provide in the new groups.
    parent = own / "grader-sandbox"
    parent.mkdir()
    (parent / "cgroup.controllers").write_text("memory pids\n")
    group_dir = parent / "slot0-x"
    group_dir.mkdir()
    for name in ("memory.max", "memory.swap.max", "pids.max", "cgroup.procs"):
        (group_dir / name).write_text("")
    (group_dir / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (group_dir / "memory.current").write_text(str(5 << 20))
    group = cgroups.SubmissionGroup(layout, "slot0-x", memory_bytes=256 << 20, max_tasks=64)
    assert (parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (group_dir / "memory.max").read_text() == str(256 << 20)
    assert (group_dir / "memory.swap.max").read_text() == "0"
    assert (group_dir / "pids.max").read_text() == "64"
    assert group.join_files() == [str(group_dir / "cgroup.procs")]
    assert group.memory_bytes() == 5 << 20
    assert group.oom_killed()
