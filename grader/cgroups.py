"""Linux control groups, v1 and v2: what the grading sandbox (one group per submission,
:mod:`grader.grading.executor.cgroups`) and the secure spawner (one group per server,
:mod:`grader.hub.spawn.limits`) both do with them: find this process's own group, write a limit,
list, kill and count what a group holds, and remove it.

A group here is a list of folders, one per v1 controller hierarchy (memory, pids, cpu...) or the
single folder of a v2 group; the memory folder comes first.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Sequence

CGROUP_ROOT = Path("/sys/fs/cgroup")


def own_paths(proc_cgroup: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """{controller, or "" for v2: path of this process's group}, from ``/proc/self/cgroup``."""
    paths = {}
    for line in proc_cgroup.read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def join(procs_files: Sequence[str]) -> None:
    """Put the calling process into groups by their ``cgroup.procs`` files (as root, before it
    drops privileges or execs)."""
    pid = str(os.getpid())
    for name in procs_files:
        write(Path(name), pid)


def pids(folders: Sequence[Path]) -> list[int]:
    found: set[int] = set()
    for folder in folders:
        try:
            found.update(int(pid) for pid in (folder / "cgroup.procs").read_text().split())
        except OSError:
            continue
    return sorted(found)


def oom_kills(memory_folder: Path, version: int) -> int:
    """How many processes the kernel's OOM killer ended in the group."""
    name = "memory.events" if version == 2 else "memory.oom_control"
    try:
        for line in (memory_folder / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def kill_all(folders: Sequence[Path], version: int, *, attempts: int = 50, pause: float = 0.01) -> None:
    """SIGKILL every process of the group until none is left (a fork racing the kill joins the
    group, so one pass is not enough); v2's ``cgroup.kill`` does it in the kernel where it exists."""
    kill_file = folders[0] / "cgroup.kill" if folders else None
    for _ in range(attempts):
        left = pids(folders)
        if not left:
            return
        if version == 2 and kill_file is not None and kill_file.exists():
            try:
                write(kill_file, "1")
            except OSError:
                pass
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(pause)


def remove(folders: Sequence[Path], version: int, *, pause: float = 0.01) -> None:
    """Kill what is left, then remove the folders (a killed process leaves its group a moment
    after it dies, so removal is retried)."""
    kill_all(folders, version, pause=pause)
    for folder in folders:
        for _ in range(100):
            try:
                folder.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(pause)
