"""The chart's profiles on KubeSpawner: who may pick which, and seats checked and metered at each start.

On one machine :class:`grader.hub.spawn.profiles.ProfileSpawning` draws the spawn form itself. Under the
Zero-to-JupyterHub chart KubeSpawner draws it from ``profile_list``, which may be a callable
``(spawner) -> list``; :class:`ProfileAccess` is that callable and the spawner's two hooks:

- ``profile_list``: the chart's profiles the user's hub groups allow (a profile's ``groups:``),
  narrowed by the :class:`grader.hub.spawn.profiles.SpawnPolicy` (cohort seats) when there is one.
  KubeSpawner checks the profile a start asks for against this same list.
- ``pre_spawn_hook``: refuses a start the policy refuses (the same ``SpawnException`` the one-machine
  hub raises: 403, reason ``seat``), or one asking for a profile the user may not pick (400, reason
  ``profile``), before any pod is made; then tells the policy which profile started, with how many GPUs.
- ``post_stop_hook``: tells the policy the server stopped (JupyterHub also runs it after a failed start).

The policy asks its database once per start: the pre-spawn hook's answer is kept for that start,
and KubeSpawner's own look at ``profile_list`` in ``start()`` (``load_user_options``) reuses it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence
from weakref import WeakKeyDictionary

from jupyterhub.spawner import SpawnException

from grader.hub.layers import ConfigError
from grader.hub.settings import Profile
from grader.hub.spawn.profiles import SpawnPolicy

# What the policy is told when the chart has no profiles: the spawner's own settings start.
DEFAULT_PROFILE = "default"


def start_refused(status: int, message: str, *, reason: str = "profile") -> SpawnException:
    """A refusal JupyterHub shows as it is on the spawn page and counts as a failure, not an error."""
    return SpawnException(message, reason=reason, status_code=status)


class ProfileAccess:
    """KubeSpawner's ``profile_list`` (a callable), ``pre_spawn_hook`` and ``post_stop_hook``."""

    def __init__(self, chart_profiles: Sequence[Mapping[str, Any]], profiles: Sequence[Profile],
                 policy: SpawnPolicy | None = None):
        by_slug = {profile.slug: profile for profile in profiles}
        slugs = [entry.get("slug") for entry in chart_profiles]
        if chart_profiles and sorted(map(str, slugs)) != sorted(by_slug):
            raise ConfigError(f"singleuser.profileList has profiles {slugs}, the platform settings "
                              f"{list(by_slug)}: render the values again (python -m grader.hub.kubernetes values)")
        self.chart_profiles = [dict(entry) for entry in chart_profiles]
        self.by_slug = by_slug
        self.policy = policy
        # spawner -> the policy's slugs, asked by the pre-spawn hook, for the rest of that start.
        self._decided: WeakKeyDictionary = WeakKeyDictionary()

    def __deepcopy__(self, memo) -> ProfileAccess:
        # traitlets deep-copies config values into every spawner: profile_list and the hooks must
        # stay this one object, which keeps the answer of a start for its load_user_options.
        return self

    def for_groups(self, groups: set[str], slugs: frozenset[str] | None = None) -> list[dict[str, Any]]:
        """The chart's profiles a member of ``groups`` may pick (only ``slugs``, if given), in the chart's order."""
        allowed = []
        for entry in self.chart_profiles:
            needed = self.by_slug[entry["slug"]].groups
            if (not needed or groups.intersection(needed)) and (slugs is None or entry["slug"] in slugs):
                allowed.append(dict(entry))
        # The chart's default may be one this user cannot pick; their first one is theirs.
        for index, entry in enumerate(allowed):
            entry["default"] = index == 0
        return allowed

    async def _policy_slugs(self, spawner) -> frozenset[str] | None:
        # Raises the policy's refusal (403) for a user without access.
        return await self.policy.profiles_for(spawner) if self.policy else None

    async def __call__(self, spawner) -> list[dict[str, Any]]:
        if spawner in self._decided and spawner.pending == "spawn":
            # In start(), after the pre-spawn hook asked: the same answer, the database not asked again.
            slugs = self._decided[spawner]
        else:
            slugs = await self._policy_slugs(spawner)
        return self.for_groups({group.name for group in spawner.user.groups}, slugs)

    async def pre_spawn_hook(self, spawner) -> None:
        self._decided.pop(spawner, None)
        slugs = await self._policy_slugs(spawner)
        if self.chart_profiles:
            allowed = self.for_groups({group.name for group in spawner.user.groups}, slugs)
            if not allowed:
                # KubeSpawner would start the chart's defaults for an empty list; the form refuses instead.
                raise start_refused(403, "No server profile is open to you; ask your instructor or cohort admin.")
            wanted = (spawner.user_options or {}).get("profile")
            chosen = next((entry for entry in allowed if entry["slug"] == wanted), None) if wanted else allowed[0]
            if chosen is None:
                raise start_refused(400, f"You may not use the profile {wanted!r}.")
            profile, gpus = chosen["slug"], self.by_slug[chosen["slug"]].gpus
        else:
            profile, gpus = DEFAULT_PROFILE, 0
        self._decided[spawner] = slugs
        if self.policy:
            await self.policy.started(spawner, profile, gpus)
        spawner.log.info("%s starts with profile %s (%d GPUs)", spawner.user.name, profile, gpus)

    async def post_stop_hook(self, spawner) -> None:
        self._decided.pop(spawner, None)
        if self.policy:
            await self.policy.stopped(spawner)
