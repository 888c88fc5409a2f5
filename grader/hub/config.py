"""Apply the platform settings to a JupyterHub traitlets ``Config``.

Each ``update_*`` function only *sets* traits, so applying twice gives the same config; tests call
them on a bare ``Config`` without starting a hub.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grader.course import prepare_course_dir
from grader.hub.settings import HubSettings
from grader.hub.spawn import prepare_home
from grader.paths import COURSES_DIR, REPO_ROOT

CHP_BINARY = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _singleuser_command() -> list[str]:
    # The same interpreter as the hub, so kernels see the platform's torch and tensorflow.
    command = [sys.executable, "-m", "jupyterhub.singleuser"]
    # Demo mode runs every server as the hub's own user; as root, Jupyter refuses without this.
    if _running_as_root():
        command.append("--allow-root")
    return command


def update_network(c, settings: HubSettings) -> None:
    c.JupyterHub.bind_url = f"http://{settings.ip}:{settings.port}"
    c.JupyterHub.hub_bind_url = f"http://{settings.ip}:{settings.hub_port}"
    c.ConfigurableHTTPProxy.api_url = f"http://{settings.ip}:{settings.proxy_api_port}"
    c.ConfigurableHTTPProxy.command = [str(CHP_BINARY)] if CHP_BINARY.exists() else ["configurable-http-proxy"]
    c.ConfigurableHTTPProxy.pid_file = str(settings.data_dir / "proxy.pid")


def update_storage(c, settings: HubSettings) -> None:
    c.JupyterHub.db_url = settings.db_url
    c.JupyterHub.cookie_secret_file = str(settings.data_dir / "jupyterhub_cookie_secret")


def update_auth(c, settings: HubSettings) -> None:
    c.JupyterHub.authenticator_class = "grader.hub.auth.PlatformAuthenticator"
    c.PlatformAuthenticator.accounts_db = str(settings.data_dir / "accounts.sqlite")
    c.PlatformAuthenticator.initial_users = [*settings.instructors, *settings.students]
    c.PlatformAuthenticator.max_failed_logins = settings.allowed_failed_logins
    c.PlatformAuthenticator.lockout_seconds = settings.lockout_seconds
    # Only accounts in the platform's account store can authenticate at all, so every user who
    # authenticates may use the hub.
    c.Authenticator.allow_all = True


def update_spawner(c, settings: HubSettings) -> None:
    course = settings.course

    def pre_spawn_hook(spawner):
        prepare_home(Path(spawner.home_dir), username=spawner.user.name, course=course, courses_dir=COURSES_DIR)

    # Demo mode: one OS user for everyone, a home folder per user (see README, "Isolation").
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(settings.homes_dir / "{username}")
    c.Spawner.cmd = _singleuser_command()
    c.Spawner.default_url = "/lab/tree/courses"
    c.Spawner.pre_spawn_hook = pre_spawn_hook
    # A server start costs ~3.5 CPU-seconds here; several at once on 2 cores overrun the 30 s default.
    c.Spawner.http_timeout = 120
    c.Spawner.start_timeout = 180


def update_course_service(c, settings: HubSettings) -> None:
    """The course's formgrader: a Jupyter server in the course directory, run by the hub as a
    service; only the course's instructors may open it."""
    course = settings.course
    prepare_course_dir(course)
    settings.homes_dir.mkdir(parents=True, exist_ok=True)
    c.JupyterHub.services = [
        {
            "name": course.course_id,
            "url": f"http://{settings.ip}:{settings.formgrader_port}",
            "command": [*_singleuser_command(), f"--ServerApp.root_dir={course.course_dir}"],
            "cwd": str(course.course_dir),
            "oauth_no_confirm": True,
            "environment": {"JUPYTERHUB_DEFAULT_URL": "/formgrader"},
        }
    ]
    formgrade_group = f"formgrade-{course.course_id}"
    student_group = f"nbgrader-{course.course_id}"
    c.JupyterHub.load_groups = {
        formgrade_group: {"users": list(settings.instructors)},
        student_group: {"users": list(settings.students)},
    }
    c.JupyterHub.load_roles = [
        {
            "name": formgrade_group,
            "description": f"Open the {course.course_id} formgrader",
            "scopes": [f"access:services!service={course.course_id}"],
            "groups": [formgrade_group],
        }
    ]


def apply_settings(c, settings: HubSettings) -> None:
    """Set every trait the platform owns on ``c``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    update_network(c, settings)
    update_storage(c, settings)
    update_auth(c, settings)
    update_spawner(c, settings)
    update_course_service(c, settings)
