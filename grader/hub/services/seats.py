"""Cohort seats on the hub: the seat checks, the seats service, its scopes and roles.

Nothing here does anything while ``seats.enabled`` is false (the default). When enabled:

- ``update_seats`` declares the custom scopes ``custom:seats:read`` and ``custom:seats:write``
  and checks seats at login (``Authenticator.post_auth_hook``);
- ``seats_policy`` is the spawn form's :class:`grader.hub.spawn.profiles.SpawnPolicy` (start refused
  without access, profiles narrowed to the user's cohorts, starts and stops metered);
- ``seats_services`` runs the seats service (:mod:`grader.seats.service`) at ``/services/seats/``;
- ``seats_roles`` gives that service the few hub scopes its sweep needs, hub admins the seats
  scopes (cohort admins get theirs in :mod:`grader.hub.roles`), and students (``nbgrader-<course>``)
  the right to call the service, which their servers' tokens use to report the lessons run
  (:mod:`grader.seats.lesson_reports`; the token scope is in ``grader.hub.roles.server_token_scopes``);
- ``seats_server_environment`` tells users' servers on this machine where to report them.
"""

from __future__ import annotations

import sys
from functools import lru_cache

from grader.hub.roles import SEATS_MANAGER_SCOPES, SEATS_READ, SEATS_SERVICE, SEATS_WRITE
from grader.hub.settings import HubSettings
from grader.seats.db import URL_ENV, open_seats_db
from grader.seats.enforcement import SeatEnforcement
from grader.seats.lesson_reports import URL_ENV as LESSONS_URL_ENV

SEATS_SCOPES = {
    SEATS_READ: {
        "display_name": "Read seats",
        "description": "See the organisations you administer: cohorts, seats, usage reports and invoice lines.",
    },
    SEATS_WRITE: {
        "display_name": "Manage seats",
        "description": "Assign and revoke seats in the cohorts of the organisations you administer.",
        "subscopes": [SEATS_READ],
    },
}
# The service's own token: find running servers and who holds them, stop those whose access ended.
# read:users:name carries the admin flag and read:users:groups the course-staff groups (staff keep
# their servers); nothing here can create users, start servers or read anyone's files.
SERVICE_SCOPES = ["list:users", "read:users:name", "read:users:groups", "read:servers", "delete:servers"]


def staff_names(settings: HubSettings) -> frozenset[str]:
    """Accounts the settings make staff: admins, cohort admins, every course's instructors and graders."""
    return frozenset([*settings.admins, *settings.cohort_admins,
                      *(name for course in settings.courses for name in (*course.instructors, *course.graders))])


def _enforcement(settings: HubSettings) -> SeatEnforcement:
    return _shared_enforcement(settings.seats_db_url, staff_names(settings), settings.seats.staff_bypass,
                               settings.seats.contact)


@lru_cache(maxsize=None)
def _shared_enforcement(url: str, staff: frozenset[str], staff_bypass: bool, contact: str) -> SeatEnforcement:
    # One per hub process: the login hook and the spawn policy share its database connections.
    # Opening migrates the database, so the hub fails at start, not at the first login, when the
    # database is unreachable; the service (started after) then finds it at the newest revision.
    return SeatEnforcement(sessions=open_seats_db(url), staff_names=staff, staff_bypass=staff_bypass, contact=contact)


def seats_policy(settings: HubSettings) -> SeatEnforcement | None:
    """The spawn policy when seats are enabled, else None."""
    return _enforcement(settings) if settings.seats.enabled else None


def seats_service(settings: HubSettings) -> dict:
    seats = settings.seats
    command = [sys.executable, "-m", "grader.seats.service",
               f"--sweep-every={seats.sweep_every}", f"--staff-bypass={'yes' if seats.staff_bypass else 'no'}"]
    command += [f"--course={course.course_id}={settings.course(course.course_id).course_dir}"
                for course in settings.courses]
    command += [f"--staff={name}" for name in sorted(staff_names(settings))]
    if seats.contact:
        command.append(f"--contact={seats.contact}")
    return {
        "name": SEATS_SERVICE,
        "display": True,
        "info": {"title": "Seats"},
        "url": f"http://{settings.ip}:{seats.service_port}",
        "command": command,
        "cwd": str(settings.data_dir),
        # The URL may hold a password: the environment, not the command line others can list.
        "environment": {URL_ENV: settings.seats_db_url},
        "oauth_no_confirm": True,
        # What a person's login cookie for the service may carry: the seats scopes they hold.
        "oauth_client_allowed_scopes": [SEATS_READ, SEATS_WRITE],
    }


def lessons_url(settings: HubSettings, *, host: str | None = None) -> str:
    """Where users' servers report the lessons run: the seats service, reached directly (not through
    the proxy, whose public address a server does not know)."""
    return f"http://{host or settings.ip}:{settings.seats.service_port}/services/{SEATS_SERVICE}/api/lesson-runs"


def seats_server_environment(settings: HubSettings) -> dict[str, str]:
    """What users' servers on this machine need in their environment for seats (nothing when off)."""
    return {LESSONS_URL_ENV: lessons_url(settings)} if settings.seats.enabled else {}


def seats_services(settings: HubSettings) -> list[dict]:
    return [seats_service(settings)] if settings.seats.enabled else []


def seats_roles(settings: HubSettings) -> list[dict]:
    if not settings.seats.enabled:
        return []
    return [
        {
            "name": "seats-service",
            "description": "Stop the servers of users whose seat ended or was revoked",
            "scopes": SERVICE_SCOPES,
            "services": [SEATS_SERVICE],
        },
        {
            "name": "seats-admin",
            "description": "Manage every organisation's seats (hub admins)",
            "scopes": SEATS_MANAGER_SCOPES,
            "users": list(settings.admins),
        },
        {
            "name": "seats-learner",
            "description": "Call the seats service: a learner's server reports the lessons run (nothing to read)",
            "scopes": [f"access:services!service={SEATS_SERVICE}"],
            "groups": [course.student_group for course in settings.courses],
        },
    ]


def update_seats(c, settings: HubSettings) -> None:
    """Declare the seats scopes and check seats at login, when seats are enabled."""
    if not settings.seats.enabled:
        return
    c.JupyterHub.custom_scopes = SEATS_SCOPES
    c.Authenticator.post_auth_hook = _enforcement(settings).post_auth_hook
