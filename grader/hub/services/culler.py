"""Idle culling: jupyterhub-idle-culler as a hub service, holding only the scopes it needs.

An idle server holds memory (and, with a GPU profile, a whole GPU) that someone else could use.
The culler lists users and their servers' last activity and stops the servers idle for longer
than ``timeout``; it never deletes users.
"""

from __future__ import annotations

import sys

from grader.hub.settings import HubSettings

SERVICE_NAME = "idle-culler"
# jupyterhub-idle-culler's README: list users, read their activity and servers, stop servers.
# admin:users would only be needed with --cull-users, which the platform never uses.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def culler_service(settings: HubSettings) -> dict:
    culling = settings.idle_culler
    command = [
        sys.executable, "-m", "jupyterhub_idle_culler",
        f"--timeout={culling.timeout}",
        f"--cull-every={culling.cull_every}",
    ]
    if culling.max_age:
        command.append(f"--max-age={culling.max_age}")
    return {"name": SERVICE_NAME, "command": command}


def culler_role() -> dict:
    return {
        "name": SERVICE_NAME,
        "description": "Stop servers idle for too long",
        "scopes": CULLER_SCOPES,
        "services": [SERVICE_NAME],
    }
