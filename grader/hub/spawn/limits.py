"""A user's server's limits, enforced by the kernel: one control group per server, or a systemd scope.

The secure spawner (:mod:`grader.hub.spawn.local_spawner`) turns a profile into :class:`ServerLimits`,
then one of three enforcers, picked by :func:`detect_enforcement`:

- ``systemd`` (systemd is PID 1): the server runs in a transient scope, ``systemd-run --scope``
  with ``MemoryMax``, ``CPUQuota``, ``TasksMax`` and, for GPUs, ``DevicePolicy``/``DeviceAllow``
  (what jupyterhub-systemdspawner and The Littlest JupyterHub give);
- ``cgroup2`` (unified hierarchy without systemd): a group with ``memory.max``, ``cpu.max``,
  ``pids.max``. Device rules need a BPF program there, which this module does not load: GPU
  fencing then rests on ``CUDA_VISIBLE_DEVICES`` alone, and the hub says so at start;
- ``cgroup1`` (this project's CI machine): a group per controller, ``memory.limit_in_bytes``,
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, ``pids.max``, and ``devices.deny`` for the GPUs
  the server was not given.

Groups are made below the hub's own group of each hierarchy (a container's limits still hold),
joined by the server's process before it drops root, and emptied and removed when it stops.
The functions returning what would be written are pure, so tests check them without a GPU.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from grader import cgroups
from grader.cgroups import CGROUP_ROOT

PARENT_NAME = "aicourse-servers"
CFS_PERIOD_US = 100_000
_V1_CONTROLLERS = ("memory", "cpu", "pids", "devices")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# NVIDIA's character devices: /dev/nvidia<N> is 195:<N>, /dev/nvidiactl 195:255 and
# /dev/nvidia-modeset 195:254; nvidia-uvm has a major number of its own (see /proc/devices).
NVIDIA_MAJOR = 195
NVIDIA_CONTROL_MINORS = (255, 254)


def parse_bytes(size: str | int | None) -> int | None:
    """JupyterHub's byte-size notation ("4G", "512M", "1.5G") as bytes; None stays None."""
    if size is None or isinstance(size, int):
        return size
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([KMGT]?)", size.strip().upper())
    if not match:
        raise ValueError(f"not a size: {size!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class GpuDevices:
    """The machine's GPU device numbers, by the id the allocator hands out, and the shared ones."""

    # {"0": (195, 0), ...}
    gpus: Mapping[str, tuple[int, int]]
    # /dev/nvidiactl, /dev/nvidia-modeset, /dev/nvidia-uvm(-tools): needed by any CUDA process.
    control: tuple[tuple[int, int], ...] = ()


def detect_gpu_devices(dev: Path = Path("/dev")) -> GpuDevices:
    """The NVIDIA device nodes of this machine (none on a machine without a GPU)."""
    gpus, control = {}, []
    for path in sorted(dev.glob("nvidia*")):
        try:
            rdev = path.stat().st_rdev
        except OSError:
            continue
        numbers = (os.major(rdev), os.minor(rdev))
        if path.name[len("nvidia"):].isdigit():
            gpus[path.name[len("nvidia"):]] = numbers
        elif path.is_char_device():
            control.append(numbers)
    return GpuDevices(gpus, tuple(control))


@dataclass(frozen=True)
class ServerLimits:
    """What one server may use. None: no limit of that kind."""

    memory_bytes: int | None = None
    # CPU cores (1.5 = one and a half cores of time per period).
    cpus: float | None = None
    max_tasks: int | None = None
    # The GPUs it was given; None: no fencing (the machine has none to fence).
    gpus: tuple[str, ...] | None = None


def v1_device_rules(limits: ServerLimits, devices: GpuDevices) -> list[tuple[str, str]]:
    """``(file, rule)`` for a v1 devices group: deny every GPU not given, and the control devices
    when none is given. A new group allows all devices (its parent's list); in that mode only a
    deny of the exact device is honoured, so the rules name devices one by one, never wildcards."""
    if limits.gpus is None:
        return []
    rules = [("devices.deny", f"c {major}:{minor} rwm")
             for gpu, (major, minor) in sorted(devices.gpus.items()) if gpu not in limits.gpus]
    if not limits.gpus:
        rules += [("devices.deny", f"c {major}:{minor} rwm") for major, minor in devices.control]
    return rules


def cgroup_v1_writes(limits: ServerLimits, devices: GpuDevices) -> dict[str, list[tuple[str, str]]]:
    """{controller: [(file, value), ...]} to write, in order, into a server's v1 groups."""
    writes: dict[str, list[tuple[str, str]]] = {}
    if limits.memory_bytes is not None:
        # memsw (memory + swap) where swap accounting is on, so the limit cannot be dodged by swapping.
        writes["memory"] = [("memory.limit_in_bytes", str(limits.memory_bytes)),
                            ("memory.memsw.limit_in_bytes", str(limits.memory_bytes))]
    if limits.cpus is not None:
        writes["cpu"] = [("cpu.cfs_period_us", str(CFS_PERIOD_US)),
                         ("cpu.cfs_quota_us", str(int(limits.cpus * CFS_PERIOD_US)))]
    if limits.max_tasks is not None:
        writes["pids"] = [("pids.max", str(limits.max_tasks))]
    rules = v1_device_rules(limits, devices)
    if rules:
        writes["devices"] = rules
    return writes


def cgroup_v2_writes(limits: ServerLimits) -> list[tuple[str, str]]:
    """[(file, value), ...] for a server's v2 group (devices need BPF: not here, see the docstring)."""
    writes = []
    if limits.memory_bytes is not None:
        writes += [("memory.max", str(limits.memory_bytes)), ("memory.swap.max", "0")]
    if limits.cpus is not None:
        writes.append(("cpu.max", f"{int(limits.cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}"))
    if limits.max_tasks is not None:
        writes.append(("pids.max", str(limits.max_tasks)))
    return writes


def systemd_properties(limits: ServerLimits, devices: GpuDevices) -> list[str]:
    """``systemd-run -p`` properties of a server's scope (systemd.resource-control(5))."""
    properties = []
    if limits.memory_bytes is not None:
        properties += [f"MemoryMax={limits.memory_bytes}", "MemorySwapMax=0"]
    if limits.cpus is not None:
        properties.append(f"CPUQuota={round(limits.cpus * 100)}%")
    if limits.max_tasks is not None:
        properties.append(f"TasksMax={limits.max_tasks}")
    if limits.gpus is not None:
        # "closed": only the standard pseudo devices and those listed; terminals need the ptys.
        properties += ["DevicePolicy=closed", "DeviceAllow=char-pts rw"]
        for gpu in sorted(limits.gpus):
            properties.append(f"DeviceAllow=/dev/nvidia{gpu} rw")
        if limits.gpus:
            properties += [f"DeviceAllow={node} rw" for node in
                           ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")]
    return properties


def systemd_run_command(command: Sequence[str], *, unit: str, limits: ServerLimits, devices: GpuDevices,
                        uid: int, gid: int) -> list[str]:
    """``command`` in a transient scope with the limits, dropping to ``uid``/``gid`` inside it.

    ``systemd-run --scope`` execs the command in the calling process once systemd has moved it into
    the scope (the pid the hub watches stays the server's); it needs root to ask systemd, so the
    drop to the account is ``setpriv``'s, inside the scope.
    """
    return ["systemd-run", "--scope", "--quiet", f"--unit={unit}",
            *(f"--property={p}" for p in systemd_properties(limits, devices)), "--",
            "setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "--", *command]


def detect_enforcement(root: Path = CGROUP_ROOT, pid1_comm: Path = Path("/proc/1/comm")) -> str | None:
    """"systemd", "cgroup2" or "cgroup1": how this machine can enforce limits as root; None: no way."""
    try:
        if pid1_comm.read_text().strip() == "systemd":
            return "systemd"
    except OSError:
        pass
    if (root / "cgroup.controllers").exists():
        return "cgroup2" if os.access(root, os.W_OK) else None
    if all(os.access(root / c, os.W_OK) for c in ("memory", "cpu", "pids")):
        return "cgroup1"
    return None


class ServerGroup:
    """The cgroup(s) of one server: made with limits, joined by its process, emptied, removed."""

    def __init__(self, name: str, *, version: int, root: Path = CGROUP_ROOT):
        self.name = name
        self.version = version
        own = cgroups.own_paths()
        if version == 2:
            self.parents = {"": root / own.get("", "/").lstrip("/") / PARENT_NAME}
        else:
            self.parents = {c: root / c / own.get(c, "/").lstrip("/") / PARENT_NAME
                            for c in _V1_CONTROLLERS if (root / c).is_dir()}
        self.paths = {controller: parent / name for controller, parent in self.parents.items()}

    def create(self, limits: ServerLimits, devices: GpuDevices) -> None:
        """Make the groups and write the limits; a limit the kernel refuses raises (never silently unlimited)."""
        if self.version == 2:
            parent = self.parents[""]
            parent.mkdir(exist_ok=True)
            wanted = [c for c in ("memory", "cpu", "pids") if c in (parent / "cgroup.controllers").read_text().split()]
            if wanted:
                cgroups.write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
            self.paths[""].mkdir(exist_ok=True)
            for name, value in cgroup_v2_writes(limits):
                if (self.paths[""] / name).exists() or name != "memory.swap.max":
                    cgroups.write(self.paths[""] / name, value)
            return
        writes = cgroup_v1_writes(limits, devices)
        for controller, path in self.paths.items():
            self.parents[controller].mkdir(exist_ok=True)
            path.mkdir(exist_ok=True)
            for name, value in writes.get(controller, []):
                # memsw exists only with swap accounting; the memory limit alone holds then.
                if name == "memory.memsw.limit_in_bytes" and not (path / name).exists():
                    continue
                cgroups.write(path / name, value)

    def join_files(self) -> list[str]:
        """Files the server's process writes its pid into (as root, before exec) to join every group."""
        return [str(path / "cgroup.procs") for path in self.paths.values()]

    def pids(self) -> list[int]:
        return cgroups.pids(list(self.paths.values()))

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer ended in this server's group."""
        return cgroups.oom_kills(self.paths["" if self.version == 2 else "memory"], self.version)

    def remove(self) -> None:
        """SIGKILL what is left (kernels outlive a killed server), then remove the groups."""
        folders = list(self.paths.values())
        if self.version == 1 and "memory" in self.paths:  # the memory folder first, as grader.cgroups expects
            folders.sort(key=lambda folder: folder != self.paths["memory"])
        cgroups.remove(folders, self.version, pause=0.02)


def join_groups(files: Sequence[str]) -> None:
    """Put the calling process into the groups (run in the child between fork and exec)."""
    cgroups.join(files)
