"""One control group per submission: memory (page cache, tmpfs and /dev/shm included) and tasks.

rlimits and polling ``/proc`` miss what the kernel charges to nobody's address space: files in a
tmpfs (``/dev/shm``, ``/tmp``), page cache, kernel memory of many threads. A cgroup counts all of
it and the kernel enforces the limit itself (an allocation past it ends in the OOM killer, inside
the group only). Both layouts are supported:

- cgroup v2 (systemd machines): one unified hierarchy, ``memory.max``, ``pids.max``,
  ``memory.events`` (``oom_kill``), ``cgroup.kill``;
- cgroup v1 (this project's CI machine): a hierarchy per controller, ``memory.limit_in_bytes``,
  ``pids.max``, ``memory.oom_control`` (``oom_kill``).

Groups are made below the grader's own group of each hierarchy (so a container's or a systemd
unit's limits still hold), written only by root, and removed when the submission ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from grader import cgroups
from grader.cgroups import CGROUP_ROOT, own_paths

_PARENT_NAME = "grader-sandbox"


def _writable(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


@dataclass(frozen=True)
class Layout:
    """Where new groups go: one folder per controller (v1) or a single folder (v2)."""

    version: int
    memory: Path
    pids: Path | None

    def folders(self) -> list[Path]:
        return [self.memory] if self.version == 2 or self.pids is None else [self.memory, self.pids]


def detect_layout() -> Layout | None:
    """The cgroup layout this process can create groups in, or None (not root, or none mounted)."""
    if os.geteuid() != 0:
        return None
    own = own_paths()
    # v2 only when it is the whole hierarchy with the memory controller enabled (a hybrid
    # machine's "unified" mount usually has no controllers; v1 then does the work).
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        base = CGROUP_ROOT / own.get("", "/").lstrip("/")
        if "memory" in (CGROUP_ROOT / "cgroup.controllers").read_text().split() and _writable(base):
            return Layout(2, base / _PARENT_NAME, None)
        return None
    memory = CGROUP_ROOT / "memory"
    if not _writable(memory):
        return None
    pids = CGROUP_ROOT / "pids"
    return Layout(
        1,
        memory / own.get("memory", "/").lstrip("/") / _PARENT_NAME,
        pids / own.get("pids", "/").lstrip("/") / _PARENT_NAME if _writable(pids) else None,
    )


def _enable_v2_controllers(parent: Path) -> None:
    """v2 hands controllers down level by level; the grader's own group may hold processes,
    so the sandbox parent (which holds none) is the first level where they can be enabled."""
    parent.mkdir(exist_ok=True)
    available = (parent / "cgroup.controllers").read_text().split()
    wanted = [c for c in ("memory", "pids") if c in available]
    if wanted:
        try:
            cgroups.write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
        except OSError:
            pass


class SubmissionGroup:
    """The cgroup(s) of one submission: created with limits, joined by the child, then removed."""

    def __init__(self, layout: Layout, name: str, *, memory_bytes: int, max_tasks: int):
        self.layout = layout
        self.paths: list[Path] = []
        for folder in layout.folders():
            if layout.version == 2:
                _enable_v2_controllers(folder)
            else:
                folder.mkdir(exist_ok=True)
            path = folder / name
            path.mkdir(exist_ok=True)
            self.paths.append(path)
        memory = self.paths[0]
        if layout.version == 2:
            cgroups.write(memory / "memory.max", str(memory_bytes))
            cgroups.write(memory / "memory.swap.max", "0") if (memory / "memory.swap.max").exists() else None
            if (memory / "pids.max").exists():
                cgroups.write(memory / "pids.max", str(max_tasks))
        else:
            cgroups.write(memory / "memory.limit_in_bytes", str(memory_bytes))
            if len(self.paths) > 1:
                cgroups.write(self.paths[1] / "pids.max", str(max_tasks))

    def join_files(self) -> list[str]:
        """The files a process writes its pid into to join every group (the child does, as root)."""
        return [str(path / "cgroup.procs") for path in self.paths]

    def memory_bytes(self) -> int:
        name = "memory.current" if self.layout.version == 2 else "memory.usage_in_bytes"
        try:
            return int((self.paths[0] / name).read_text())
        except (OSError, ValueError):
            return 0

    def oom_killed(self) -> bool:
        return cgroups.oom_kills(self.paths[0], self.layout.version) > 0

    def pids(self) -> list[int]:
        return cgroups.pids(self.paths)

    def kill_all(self) -> None:
        cgroups.kill_all(self.paths, self.layout.version)

    def remove(self) -> None:
        cgroups.remove(self.paths, self.layout.version)
