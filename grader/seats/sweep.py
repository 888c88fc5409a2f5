"""The seats service's periodic sweep: stop servers whose seat no longer allows them, tidy metering.

Logins and server starts are checked by the hub itself (:mod:`grader.seats.enforcement`); a
server already running when its cohort ends (or its seat is revoked) is stopped here, within
``sweep_every`` seconds. The sweep asks the hub which users have servers, with the service's own
token (role ``seats-service``: list users, read names, groups and servers, stop servers), and
stops the default server of each non-staff user without access today.

It also closes usage records left open by a hub that died without stopping its servers (the hub's
stop hook never ran): a record of a user with no server running is closed at the sweep's time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from sqlalchemy import select
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from grader.seats.enforcement import SeatEnforcement
from grader.seats.models import UsageRecord, utcnow
from grader.seats.store import record_server_stop

log = logging.getLogger(__name__)


@dataclass
class HubApi:
    """The few hub REST calls the sweep makes, with the service's token."""

    url: str  # JUPYTERHUB_API_URL, e.g. http://127.0.0.1:8081/hub/api
    token: str
    timeout: float = 30

    async def request(self, method: str, path: str) -> Any:
        response = await AsyncHTTPClient().fetch(HTTPRequest(
            self.url.rstrip("/") + path, method=method, headers={"Authorization": f"token {self.token}"},
            request_timeout=self.timeout, allow_nonstandard_methods=True))
        return json.loads(response.body) if response.body else None

    async def users_with_servers(self) -> list[dict]:
        # state=active: users with a server running or starting; pages of the hub's default size.
        users, offset = [], 0
        while True:
            page = await self.request("GET", f"/users?state=active&offset={offset}&limit=200")
            users += page
            if len(page) < 200:
                return users
            offset += len(page)

    async def stop_server(self, username: str, server_name: str) -> None:
        path = f"/users/{quote(username)}/server" + (f"s/{quote(server_name)}" if server_name else "")
        await self.request("DELETE", path)


@dataclass
class SweepResult:
    stopped: list[str] = field(default_factory=list)
    closed_records: list[str] = field(default_factory=list)


async def sweep_once(*, enforcement: SeatEnforcement, hub: HubApi,
                     now: Callable[[], datetime] = utcnow) -> SweepResult:
    """One sweep: stop servers of users without access, close records of users without servers."""
    result = SweepResult()
    listed_at = now()
    users = await hub.users_with_servers()
    running = set()
    for user in users:
        name, servers = user["name"], user.get("servers") or {}
        if not servers:
            continue
        running.add(name)
        decision = await enforcement.run(enforcement.decide, username=name, admin=bool(user.get("admin")),
                                         groups=tuple(user.get("groups") or ()))
        if decision.allowed:
            continue
        access = decision.access
        for server_name in servers:
            log.info("seats: stopping %s's server %r: %s", name, server_name, access.reason)
            await hub.stop_server(name, server_name)
        result.stopped.append(name)
    with enforcement.sessions() as session:
        # Only records opened before the hub was asked: a server starting since then is not in `users`.
        open_names = set(session.scalars(select(UsageRecord.username).where(
            UsageRecord.stopped_at.is_(None), UsageRecord.started_at < listed_at)))
        for name in sorted(open_names - running):
            record_server_stop(session, username=name)
            result.closed_records.append(name)
    if result.closed_records:
        log.info("seats: closed usage records left open for %s", ", ".join(result.closed_records))
    return result


def periodic(sweep: Callable[[], Awaitable[SweepResult]]) -> Callable[[], Awaitable[None]]:
    """The sweep as a PeriodicCallback target that logs failures instead of ending the service."""

    async def run() -> None:
        try:
            await sweep()
        except Exception:
            log.exception("seats: sweep failed; trying again at the next one")

    return run
