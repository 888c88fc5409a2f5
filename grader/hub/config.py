"""Apply the platform settings to a JupyterHub traitlets ``Config``.

Each ``update_*`` function only *sets* traits, so applying twice gives the same config; tests call
them on a bare ``Config`` without starting a hub.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from grader.course import prepare_course_dir
from grader.exchange_service.hub import exchange_roles, exchange_service, exchange_token_scopes, uses_http_exchange
from grader.hub.culler import culler_role, culler_service
from grader.hub.oidc import roles_with_identity_groups, update_oidc_auth
from grader.hub.profiles import GpuInventory, ProfileSpawning, detect_gpus
from grader.hub.roles import platform_groups, platform_roles
from grader.hub.seats_config import seats_policy, seats_roles, seats_services, update_seats
from grader.hub.settings import CourseSettings, HubSettings
from grader.hub.spawn import prepare_home
from grader.paths import COURSES_DIR, HUB_CONFIG_DIR, REPO_ROOT

CHP_BINARY = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
# Jupyter configuration folders for servers, by kind of user (see hub_config/jupyter/README.md).
JUPYTER_CONFIG_DIRS = HUB_CONFIG_DIR / "jupyter"
STAFF_JUPYTER_CONFIG = JUPYTER_CONFIG_DIRS / "staff"
STUDENT_JUPYTER_CONFIG = JUPYTER_CONFIG_DIRS / "student"


def is_course_staff(user) -> bool:
    """An instructor or grader of some course: in a ``formgrade-<course>`` group."""
    return any(group.name.startswith("formgrade-") for group in user.groups)


def jupyter_config_path_for(spawner) -> str:
    """The ``JUPYTER_CONFIG_PATH`` of a user's server: students get a Lab without instructor tools."""
    return str(STAFF_JUPYTER_CONFIG if is_course_staff(spawner.user) else STUDENT_JUPYTER_CONFIG)


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
    if settings.proxy_auth_token:
        c.ConfigurableHTTPProxy.auth_token = settings.proxy_auth_token


def update_storage(c, settings: HubSettings) -> None:
    c.JupyterHub.db_url = settings.db_url
    c.JupyterHub.cookie_secret_file = str(settings.data_dir / "jupyterhub_cookie_secret")


def update_auth(c, settings: HubSettings) -> None:
    """Local accounts with sign-up (grader.hub.auth, grader.hub.signup), or OIDC single sign-on (grader.hub.oidc)."""
    if settings.auth.type == "oidc":
        update_oidc_auth(c, settings.auth)
        return
    c.JupyterHub.authenticator_class = "grader.hub.auth.PlatformAuthenticator"
    # The sign-up pages, and the login page with a link to them (extends JupyterHub's own).
    c.JupyterHub.template_paths = [str(HUB_CONFIG_DIR / "templates")]
    c.PlatformAuthenticator.signup_mode = settings.signup
    c.PlatformAuthenticator.invitation_hours = settings.invitation_hours
    c.PlatformAuthenticator.accounts_db = str(settings.data_dir / "accounts.sqlite")
    c.PlatformAuthenticator.initial_users = settings.users()
    c.PlatformAuthenticator.max_failed_logins = settings.allowed_failed_logins
    c.PlatformAuthenticator.lockout_seconds = settings.lockout_seconds
    # Only accounts in the platform's account store can authenticate at all, so every user who
    # authenticates may use the hub.
    c.Authenticator.allow_all = True


def server_token_scopes(settings: HubSettings) -> list[str]:
    """What a user's server token may do (one machine and Kubernetes alike)."""
    return [
        "users:activity!user",
        "access:servers!server",
        # The server's own token may also read its user's name and groups: nbgrader's JupyterHub
        # plugin needs them to list only the user's courses.
        "read:users:name!user",
        "read:users:groups!user",
        # Kept only where the user holds them (instructors, graders): the Lab's course list.
        "list:services",
        "read:services",
        # With the HTTP exchange: let nbgrader in the server call the exchange service.
        *exchange_token_scopes(settings),
    ]


def update_spawner(c, settings: HubSettings) -> None:
    exchange_root = settings.exchange_root

    def pre_spawn_hook(spawner):
        # Group membership, not the settings file: instructors may add students through the hub API.
        course_ids = sorted(group.name.removeprefix("nbgrader-") for group in spawner.user.groups
                            if group.name.startswith("nbgrader-"))
        prepare_home(Path(spawner.home_dir), username=spawner.user.name, course_ids=course_ids,
                     exchange_root=exchange_root, courses_dir=COURSES_DIR, exchange_url=settings.exchange_url)

    # Demo mode: one OS user for everyone, a home folder per user (see README, "Isolation").
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(settings.homes_dir / "{username}")
    c.Spawner.cmd = _singleuser_command()
    c.Spawner.default_url = "/lab/tree/courses"
    c.Spawner.pre_spawn_hook = pre_spawn_hook
    c.Spawner.server_token_scopes = server_token_scopes(settings)
    # A server start costs ~3.5 CPU-seconds here; several at once on 2 cores overrun the 30 s default.
    c.Spawner.http_timeout = 120
    c.Spawner.start_timeout = 180


def gpu_inventory(settings: HubSettings) -> GpuInventory:
    if settings.gpu_devices is None:
        return detect_gpus()
    return GpuInventory(settings.gpu_devices, "" if settings.gpu_devices else "gpu_devices is empty in the platform settings")


def update_profiles(c, settings: HubSettings) -> None:
    """The spawn form with the settings' profiles; their limits and GPUs applied at each start."""
    spawning = ProfileSpawning(settings.profiles, gpu_inventory(settings), policy=seats_policy(settings))
    c.Spawner.options_form = spawning.options_form
    c.Spawner.options_from_form = spawning.options_from_form
    c.Spawner.apply_user_options = spawning.apply_user_options
    c.Spawner.post_stop_hook = spawning.post_stop_hook


def update_jupyter_config(c, settings: HubSettings) -> None:
    """Which Jupyter configuration folder each server reads first, decided per user at spawn."""
    c.Spawner.environment = {"JUPYTER_CONFIG_PATH": jupyter_config_path_for}


def course_service(settings: HubSettings, course: CourseSettings) -> dict:
    """One course's formgrader: a Jupyter server in its course directory, run by the hub as a service."""
    course_dir = settings.course(course.course_id).course_dir
    return {
        "name": course.course_id,
        "display": True,
        "info": {"title": course.title} if course.title else {},
        "url": f"http://{settings.ip}:{course.formgrader_port}",
        "command": [*_singleuser_command(), f"--ServerApp.root_dir={course_dir}"],
        "cwd": str(course_dir),
        "oauth_no_confirm": True,
        # The staff folder lets JupyterLab show the formgrader in a frame (nbgrader issue #1870).
        "environment": {"JUPYTERHUB_DEFAULT_URL": "/formgrader", "JUPYTER_CONFIG_PATH": str(STAFF_JUPYTER_CONFIG)},
    }


def update_courses(c, settings: HubSettings) -> None:
    """Every course's course directory, and nbgrader's two groups per course."""
    settings.homes_dir.mkdir(parents=True, exist_ok=True)
    for course in settings.courses:
        prepare_course_dir(settings.course(course.course_id))
    # Under OIDC the identity provider owns group membership (JupyterHub forbids load_groups then).
    c.JupyterHub.load_groups = {} if settings.auth.type == "oidc" else platform_groups(settings)


def update_services(c, settings: HubSettings) -> None:
    """The hub's services: each course's formgrader, the idle culler, and the seats service if enabled."""
    services = [course_service(settings, course) for course in settings.courses]
    if settings.idle_culler.enabled:
        services.append(culler_service(settings))
    if uses_http_exchange(settings):
        services.append(exchange_service(settings))
    c.JupyterHub.services = services + seats_services(settings)


def update_roles(c, settings: HubSettings) -> None:
    """Least-privilege roles (see :mod:`grader.hub.roles`); admins get JupyterHub's own admin role."""
    c.JupyterHub.load_roles = (roles_with_identity_groups(platform_roles(settings), settings.auth)
                               + ([culler_role()] if settings.idle_culler.enabled else []) + seats_roles(settings)
                               + (exchange_roles(settings) if uses_http_exchange(settings) else []))
    c.Authenticator.admin_users = set(settings.admins)


def apply_settings(c, settings: HubSettings) -> None:
    """Set every trait the platform owns on ``c``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    update_network(c, settings)
    update_storage(c, settings)
    update_auth(c, settings)
    update_spawner(c, settings)
    update_jupyter_config(c, settings)
    update_profiles(c, settings)
    update_courses(c, settings)
    update_services(c, settings)
    update_roles(c, settings)
    update_seats(c, settings)
