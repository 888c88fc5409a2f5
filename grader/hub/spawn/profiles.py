"""Spawn profiles: the form a user picks resources on, the limits each sets, and GPUs never shared.

JupyterHub calls :class:`ProfileSpawning`'s methods as its ``options_form``,
``options_from_form``, ``pre_spawn_hook`` and ``post_stop_hook``. Which profiles a user sees
is decided by their hub groups; a profile with GPUs is shown but cannot be picked, with the reason,
when the machine has no GPU or every GPU is taken; with only one profile this machine can start
there is nothing to choose and no form. The pre-spawn hook checks the choice again,
since the REST API takes user options without the form. An optional :class:`SpawnPolicy` (cohort
seats, :mod:`grader.seats.enforcement`) may refuse a start, narrow the profiles further, and is told
of every start and stop.

A start that cannot go ahead (no seat, a profile the user may not pick, no GPU free) raises
JupyterHub 6's ``SpawnException`` with the message the user reads, a ``reason`` (``seat``,
``profile``, ``gpu``) that labels the hub's spawn metrics, and a status code. It is raised from the
pre-spawn hook, not from ``apply_user_options``: JupyterHub logs a traceback for anything raised
there, and none for a ``SpawnException`` from the pre-spawn hook (a policy refusal, not an error).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from html import escape
from typing import Awaitable, Callable, Mapping, Protocol, Sequence

from jupyterhub.spawner import SpawnException

from grader.hub.settings import Profile


class ProfileError(ValueError):
    """A profile that cannot be started; the message is shown to the user.

    ``reason`` labels the refusal in JupyterHub's spawn metrics: ``profile`` (not one the user may
    pick) or ``gpu`` (no GPU for it now); ``status_code`` is what the REST API answers."""

    def __init__(self, message: str, *, reason: str = "profile", status_code: int = 400):
        super().__init__(message)
        self.reason = reason
        self.status_code = status_code


def start_refused(error: ProfileError) -> SpawnException:
    """The refusal JupyterHub shows as it is and counts as a failure with ``error.reason``, not as an error."""
    message = str(error)
    return SpawnException(message[:1].upper() + message[1:] + ("" if message.endswith(".") else "."),
                          reason=error.reason, status_code=error.status_code)


class SpawnPolicy(Protocol):
    """A hook into server starts beyond groups, e.g. the seats a user holds. Its methods are
    coroutines: a policy that asks a database does so off the hub's event loop."""

    async def profiles_for(self, spawner) -> frozenset[str] | None:
        """Slugs the user may pick (None: no further limit); raises ``SpawnException`` to refuse any start."""

    async def started(self, spawner, profile: str, gpus: int) -> None:
        """A start with this profile and this many GPUs was accepted."""

    async def stopped(self, spawner) -> None:
        """The server stopped (or its start failed)."""


@dataclass(frozen=True)
class GpuInventory:
    """The GPUs the hub may hand out, and when there are none, why."""

    devices: tuple[str, ...]
    reason_none: str = ""


def detect_gpus(
    environ: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> GpuInventory:
    """The GPUs of this machine: ``CUDA_VISIBLE_DEVICES`` of the hub when set, else nvidia-smi's list."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        devices = tuple(d.strip() for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() not in ("", "-1"))
        return GpuInventory(devices, "" if devices else "CUDA_VISIBLE_DEVICES hides every GPU from the hub")
    nvidia_smi = which("nvidia-smi")
    if nvidia_smi is None:
        return GpuInventory((), "this machine has no GPU (nvidia-smi not found)")
    try:
        listing = run([nvidia_smi, "--query-gpu=index", "--format=csv,noheader"],
                      capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        return GpuInventory((), f"nvidia-smi failed, so no GPU is usable ({error})")
    devices = tuple(line.strip() for line in listing.stdout.splitlines() if line.strip())
    return GpuInventory(devices, "" if devices else "nvidia-smi lists no GPU")


class GpuAllocator:
    """Hands out whole GPUs so two servers never share one; in memory, since JupyterHub stops every
    server when it stops (``JupyterHub.cleanup_servers``), so a restart starts with all GPUs free."""

    def __init__(self, devices: Sequence[str]):
        self.devices = tuple(devices)
        self._owner_of: dict[str, str] = {}

    def free(self) -> list[str]:
        return [device for device in self.devices if device not in self._owner_of]

    def held_by(self, owner: str) -> list[str]:
        return [device for device in self.devices if self._owner_of.get(device) == owner]

    def claim(self, owner: str, count: int) -> list[str]:
        """Give ``owner`` ``count`` GPUs, first releasing what it held (a restarted server)."""
        self.release(owner)
        free = self.free()
        if count > len(free):
            raise ProfileError(f"all {len(self.devices)} GPUs are in use ({len(free)} free, {count} needed); "
                               "try again later or pick a CPU profile", reason="gpu", status_code=503)
        for device in free[:count]:
            self._owner_of[device] = owner
        return free[:count]

    def release(self, owner: str) -> None:
        for device in self.held_by(owner):
            del self._owner_of[device]


def _owner(spawner) -> str:
    return f"{spawner.user.name}/{spawner.name}"


def _group_names(spawner) -> set[str]:
    return {group.name for group in spawner.user.groups}


class ProfileSpawning:
    """The spawn form and what picking a profile does, for one hub's profiles and GPUs."""

    def __init__(self, profiles: Sequence[Profile], inventory: GpuInventory, policy: SpawnPolicy | None = None,
                 prepare: Callable[[object], Awaitable[None]] | None = None):
        self.profiles = tuple(profiles)
        self.inventory = inventory
        self.allocator = GpuAllocator(inventory.devices)
        self.policy = policy
        # What else runs before a start once it is accepted (the home's lessons and nbgrader config).
        self.prepare = prepare

    def __deepcopy__(self, memo) -> ProfileSpawning:
        # traitlets deep-copies config values into every Spawner (the hooks are bound methods of this
        # object): all of them must share this one GPU allocator, or two users could get one GPU.
        return self

    def allowed(self, groups: set[str], slugs: frozenset[str] | None = None) -> list[Profile]:
        """The profiles a member of ``groups`` may pick, in the configured order (only ``slugs``, if given)."""
        return [p for p in self.profiles
                if (not p.groups or groups.intersection(p.groups)) and (slugs is None or p.slug in slugs)]

    def unavailable_reason(self, profile: Profile) -> str:
        if not profile.gpus:
            return ""
        if not self.inventory.devices:
            return self.inventory.reason_none
        if profile.gpus > len(self.inventory.devices):
            return f"it needs {profile.gpus} GPUs and this machine has {len(self.inventory.devices)}"
        if profile.gpus > len(self.allocator.free()):
            return f"all {len(self.inventory.devices)} GPUs are in use; try again later"
        return ""

    def choose(self, groups: set[str], user_options: Mapping, slugs: frozenset[str] | None = None) -> Profile:
        """The profile ``user_options`` asks for (the first available one when it names none)."""
        allowed = self.allowed(groups, slugs)
        slug = user_options.get("profile")
        if slug is None:
            for profile in allowed:
                if not self.unavailable_reason(profile):
                    return profile
            raise ProfileError("no profile you may use is available", reason="gpu" if allowed else "profile",
                               status_code=503 if allowed else 403)
        chosen = next((p for p in allowed if p.slug == slug), None)
        if chosen is None:
            raise ProfileError(f"you may not use the profile {slug!r}")
        reason = self.unavailable_reason(chosen)
        if reason:
            in_use = chosen.gpus <= len(self.inventory.devices)
            raise ProfileError(f"{chosen.display_name} is not available: {reason}", reason="gpu",
                               status_code=503 if in_use else 400)
        return chosen

    def start(self, owner: str, groups: set[str], user_options: Mapping,
              slugs: frozenset[str] | None = None) -> tuple[Profile, list[str]]:
        """Choose the profile for a server start and claim its GPUs (none: release any it held)."""
        profile = self.choose(groups, user_options, slugs)
        if profile.gpus:
            return profile, self.allocator.claim(owner, profile.gpus)
        self.allocator.release(owner)
        return profile, []

    def form_html(self, groups: set[str], slugs: frozenset[str] | None = None) -> str:
        """The spawn form for a member of ``groups``; empty (no form) when there are no profiles."""
        allowed = self.allowed(groups, slugs)
        if not allowed:
            return ""
        default = next((p for p in allowed if not self.unavailable_reason(p)), None)
        items = []
        for profile in allowed:
            reason = self.unavailable_reason(profile)
            slug = escape(profile.slug)
            state = " disabled" if reason else (" checked" if profile is default else "")
            note = (f'<div class="text-danger" id="profile-{slug}-unavailable">Not available: {escape(reason)}</div>'
                    if reason else "")
            items.append(
                f'<div class="form-check mb-2"><input class="form-check-input" type="radio" name="profile" '
                f'id="profile-{slug}" value="{slug}"{state}><label class="form-check-label" for="profile-{slug}">'
                f'<strong>{escape(profile.display_name)}</strong><div class="text-muted">{escape(profile.description)}'
                f'</div></label>{note}</div>'
            )
        return '<fieldset><legend>Server profile</legend>' + "".join(items) + "</fieldset>"

    # --- JupyterHub's hooks ---

    async def _policy_slugs(self, spawner) -> frozenset[str] | None:
        return await self.policy.profiles_for(spawner) if self.policy else None

    async def options_form(self, spawner) -> str:
        # A refused user gets the refusal (403 and its message) instead of a form.
        groups, slugs = _group_names(spawner), await self._policy_slugs(spawner)
        # Profiles this machine could ever start (not one needing more GPUs than it has).
        possible = [p for p in self.allowed(groups, slugs) if p.gpus <= len(self.inventory.devices)]
        if len(possible) == 1 and not self.unavailable_reason(possible[0]):
            # Nothing to choose: no form, the server starts at once with that profile (JupyterHub
            # skips the page when the form is empty; the pre-spawn hook picks the one available).
            return ""
        return self.form_html(groups, slugs)

    @staticmethod
    def options_from_form(form_data: Mapping[str, list[str]]) -> dict:
        return {"profile": form_data["profile"][0]} if form_data.get("profile") else {}

    @staticmethod
    def apply_user_options(spawner, user_options: Mapping) -> None:
        """Nothing: the pre-spawn hook applies the profile, since JupyterHub logs any refusal raised
        here with a traceback. Set so that JupyterHub knows the options are handled."""

    async def pre_spawn_hook(self, spawner) -> None:
        """Refuse the start or apply its profile (limits, GPUs), meter it, then prepare the home."""
        slugs = await self._policy_slugs(spawner)  # a refusal raises here, before any GPU is claimed
        if not self.profiles:
            # No profiles configured: servers start as the spawner's own settings say.
            profile_slug, devices = "default", []
        else:
            try:
                profile, devices = self.start(_owner(spawner), _group_names(spawner), spawner.user_options or {}, slugs)
            except ProfileError as error:
                raise start_refused(error) from None
            profile_slug = profile.slug
            spawner.log.info("%s starts with profile %s, GPUs %s", _owner(spawner), profile.slug, devices or "none")
            # Set every time: JupyterHub reuses a user's Spawner from one start to the next.
            spawner.mem_limit = profile.mem_limit
            spawner.cpu_limit = profile.cpu_limit
            if spawner.has_trait("max_tasks"):  # the secure spawner's pids limit (grader/hub/spawn/local_spawner.py)
                spawner.max_tasks = profile.max_tasks
            # An empty list hides every GPU from a CPU profile's server.
            spawner.environment = {**spawner.environment, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
        if self.policy:
            await self.policy.started(spawner, profile_slug, len(devices))
        if self.prepare is not None:
            await self.prepare(spawner)

    async def post_stop_hook(self, spawner) -> None:
        self.allocator.release(_owner(spawner))
        if self.policy:
            await self.policy.stopped(spawner)
