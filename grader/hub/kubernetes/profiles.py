"""The chart's profiles on KubeSpawner: who may pick which, and seats checked and metered at each start.

On one machine :class:`grader.hub.spawn.profiles.ProfileSpawning` draws the spawn form itself. Under the
Zero-to-JupyterHub chart KubeSpawner draws it from ``profile_list``, which may be a callable
``(spawner) -> list``; :class:`ProfileAccess` is that callable and the spawner's two hooks:

- ``profile_list``: the chart's profiles the user's hub groups allow (a profile's ``groups:``),
  narrowed by the :class:`grader.hub.spawn.profiles.SpawnPolicy` (cohort seats) when there is one.
  KubeSpawner checks the profile a start asks for against this same list.
- ``pre_spawn_hook``: refuses a start the policy refuses (the same 403 the one-machine hub answers),
  or one asking for a profile the user may not pick, before any pod is made; then tells the policy
  which profile started, with how many GPUs.
- ``post_stop_hook``: tells the policy the server stopped (JupyterHub also runs it after a failed start).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from tornado import web

from grader.hub.layers import ConfigError
from grader.hub.settings import Profile
from grader.hub.spawn.profiles import SpawnPolicy

# What the policy is told when the chart has no profiles: the spawner's own settings start.
DEFAULT_PROFILE = "default"


def start_refused(status: int, message: str) -> web.HTTPError:
    """An error JupyterHub shows as it is on the spawn page, not as "Failed to start your server"."""
    error = web.HTTPError(status, message)
    error.jupyterhub_message = message
    return error


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

    def _policy_slugs(self, spawner) -> frozenset[str] | None:
        # Raises the policy's refusal (403) for a user without access.
        return self.policy.profiles_for(spawner) if self.policy else None

    def __call__(self, spawner) -> list[dict[str, Any]]:
        return self.for_groups({group.name for group in spawner.user.groups}, self._policy_slugs(spawner))

    def pre_spawn_hook(self, spawner) -> None:
        slugs = self._policy_slugs(spawner)
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
        if self.policy:
            self.policy.started(spawner, profile, gpus)
        spawner.log.info("%s starts with profile %s (%d GPUs)", spawner.user.name, profile, gpus)

    def post_stop_hook(self, spawner) -> None:
        if self.policy:
            self.policy.stopped(spawner)
