"""The exchange service on the hub: its service entry, its role, and the scope its callers need.

Registered by :func:`grader.hub.config.update_services` when the settings say
``exchange: {backend: http}``. JupyterHub starts it, gives it a token, and proxies
``/services/nbgrader-exchange/`` to it; users' servers and the courses' formgraders call it
directly on its loopback port with their own hub tokens.
"""

from __future__ import annotations

import sys

from grader.exchange.service import SERVICE_NAME
from grader.hub.settings import HubSettings

# What the service itself may do: read a user's groups, nothing more (GET /hub/api/users/<name>).
SERVICE_SCOPES = ["read:users:groups"]
# What a caller's token needs to be let in at all (the hub's own check for services).
ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"


def uses_http_exchange(settings: HubSettings) -> bool:
    return settings.exchange.backend == "http"


def exchange_storage(settings: HubSettings):
    return settings.data_dir / "exchange-service"


def exchange_service(settings: HubSettings) -> dict:
    command = [
        sys.executable, "-m", "grader.exchange.service",
        f"--root={exchange_storage(settings)}",
        f"--ip={settings.ip}",
        f"--port={settings.exchange.service_port}",
        f"--max-upload-mb={settings.exchange.max_upload_mb}",
        *(f"--course={course.course_id}" for course in settings.courses),
        f"--instant-workers={settings.exchange.instant_workers}",
        # The course pages list the lessons each student opened, read from their home.
        f"--homes-dir={settings.homes_dir}",
        *([f"--lessons-dir={settings.lessons_dir}"] if settings.lessons_dir else []),
        # Instant feedback's grading workers are children of this service, never of the hub.
        *(f"--instant-feedback={course.course_id}={settings.course(course.course_id).course_dir}"
          for course in settings.courses if course.instant_feedback),
    ]
    return {"name": SERVICE_NAME, "url": f"http://{settings.ip}:{settings.exchange.service_port}", "command": command,
            # The course pages (grader.exchange.service.instant.pages) log people in through the hub.
            "oauth_no_confirm": True}


def exchange_roles(settings: HubSettings) -> list[dict]:
    """The service's own role, and the role letting course members and formgraders call it."""
    return [
        {
            "name": SERVICE_NAME,
            "description": "Read a caller's groups",
            "scopes": SERVICE_SCOPES,
            "services": [SERVICE_NAME],
        },
        {
            "name": f"{SERVICE_NAME}-client",
            "description": "Call the nbgrader exchange (what each caller may do there is decided by their course groups)",
            "scopes": [ACCESS_SCOPE],
            "groups": [group for course in settings.courses for group in (course.formgrade_group, course.student_group)],
            # Each course's formgrader is a service named after the course; the exchange treats it as that course's staff.
            "services": [course.course_id for course in settings.courses],
        },
    ]


def exchange_token_scopes(settings: HubSettings) -> list[str]:
    """Scopes added to users' server tokens so nbgrader in the server can call the exchange."""
    return [ACCESS_SCOPE] if uses_http_exchange(settings) else []
