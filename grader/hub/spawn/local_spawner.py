"""The secure one-machine spawner: each user's server as their own system account, limits enforced.

JupyterHub's ``LocalProcessSpawner`` already starts a server as the Unix user named like the hub
user (``set_user_setuid``); this subclass names the account ``jupyter-<name>`` and makes it on the
first start (:mod:`grader.hub.spawn.isolation`, as The Littlest JupyterHub does), keeps every home in
one folder the hub chooses, and puts the server in a cgroup, or a systemd scope, with the
profile's memory, CPU, task and GPU limits (:mod:`grader.hub.spawn.limits`) before it drops root. It
never runs a server as root, so it never needs ``--allow-root``.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import re
import shutil
import subprocess
import uuid
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Bool, Dict, Integer, Unicode

from grader.hub.spawn.isolation import account_name, ensure_account, prepare_user_home
from grader.hub.spawn.limits import GpuDevices, ServerGroup, ServerLimits, detect_gpu_devices, join_groups, systemd_run_command


class SecureSpawner(LocalProcessSpawner):
    """A server per user, as the system account ``jupyter-<name>``, in a cgroup of its own."""

    homes_dir = Unicode(help="Folder holding each user's home (<homes_dir>/<hub user name>).").tag(config=True)
    enforcement = Unicode("cgroup1", help="systemd, cgroup2 or cgroup1 (grader.hub.spawn.limits.detect_enforcement).").tag(config=True)
    default_max_tasks = Integer(1024, help="pids.max of a server whose profile names no max_tasks.").tag(config=True)
    interpreter_environment = Dict(help="What the interpreter users run needs in its environment "
                                        "(grader.hub.spawn.users_python).").tag(config=True)
    max_tasks = Integer(None, allow_none=True, help="This start's task limit (set from the profile).")
    fence_gpus = Bool(True, help="Deny the GPUs a server was not given (devices cgroup, DeviceAllow).").tag(config=True)

    @property
    def account(self) -> str:
        return account_name(self.user.name)

    @property
    def home_dir(self) -> str:
        """The user's home; the pre-spawn hook (grader/hub/spawn/homes.py) fills it."""
        return str(Path(self.homes_dir) / self.user.name)

    @property
    def group_name(self) -> str:
        # Fixed per server, so a stop after a hub restart finds the group again.
        return self.account + (f"-{re.sub(r'[^A-Za-z0-9_-]', '-', self.name)}" if self.name else "")

    def prepare_account(self) -> pwd.struct_passwd:
        """Make the account and its 0700 home if missing (called by the pre-spawn hook and at start)."""
        account = ensure_account(self.account, Path(self.home_dir))
        prepare_user_home(Path(self.home_dir), account)
        return account

    def server_limits(self, devices: GpuDevices) -> ServerLimits:
        visible = self.environment.get("CUDA_VISIBLE_DEVICES")
        # Fence only where there is something to fence, and only when the profiles handed GPUs out.
        fence = self.fence_gpus and (devices.gpus or devices.control) and isinstance(visible, str)
        return ServerLimits(
            memory_bytes=self.mem_limit or None,
            cpus=self.cpu_limit or None,
            max_tasks=self.max_tasks or self.default_max_tasks,
            gpus=tuple(d for d in visible.split(",") if d) if fence else None,
        )

    def user_env(self, env):
        # LD_LIBRARY_PATH of the interpreter copy users run (grader.hub.spawn.users_python), if any.
        env.update(self.interpreter_environment)
        account = pwd.getpwnam(self.account)
        env["USER"] = env["LOGNAME"] = account.pw_name
        env["HOME"] = self.home_dir
        # The account has no login shell; Jupyter's terminals start $SHELL, as the account.
        env["SHELL"] = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
        return env

    def make_preexec_fn(self, name):
        """Join the server's cgroups as root, then become the account, then enter the home."""
        home = self.home_dir
        join_files = self._group.join_files() if self._group else []
        if self.enforcement == "systemd":
            # systemd-run needs root to ask systemd for the scope; setpriv in the command drops it.
            def preexec_systemd():
                os.chdir(home)
            return preexec_systemd
        become_account = set_user_setuid(self.account, chdir=False)

        def preexec():
            join_groups(join_files)
            become_account()
            os.chdir(home)
        return preexec

    _group: ServerGroup | None = None
    _scope: str = ""
    _base_cmd: list | None = None

    async def start(self):
        account = self.prepare_account()
        devices = detect_gpu_devices()
        limits = self.server_limits(devices)
        if self._base_cmd is None:
            self._base_cmd = list(self.cmd)
        if self.enforcement == "systemd":
            self._scope = f"{self.group_name}-{uuid.uuid4().hex[:8]}"
            self.cmd = systemd_run_command(self._base_cmd, unit=self._scope, limits=limits, devices=devices,
                                           uid=account.pw_uid, gid=account.pw_gid)
        else:
            self._group = ServerGroup(self.group_name, version=2 if self.enforcement == "cgroup2" else 1)
            self._group.remove()  # a group a crashed hub left behind
            self._group.create(limits, devices)
        self.log.info("%s runs as %s (uid %s) with %s", self.user.name, account.pw_name, account.pw_uid, limits)
        try:
            return await super().start()
        except Exception:
            self._cleanup()
            raise

    def _cleanup(self) -> None:
        if self.enforcement == "systemd":
            if self._scope and shutil.which("systemctl"):
                subprocess.run(["systemctl", "stop", f"{self._scope}.scope"], capture_output=True)
            return
        (self._group or ServerGroup(self.group_name, version=2 if self.enforcement == "cgroup2" else 1)).remove()
        self._group = None

    async def stop(self, now=False):
        await super().stop(now=now)
        kills = self._group.oom_kills() if self._group else 0
        if kills:
            self.log.warning("%s: the kernel's OOM killer ended %d process(es) at the memory limit (%s bytes)",
                             self._log_name, kills, self.mem_limit)
        # Kernels and terminals run in sessions of their own and may outlive the server: end them all.
        await asyncio.to_thread(self._cleanup)
