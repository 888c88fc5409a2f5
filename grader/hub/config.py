"""Apply the platform settings to a JupyterHub traitlets ``Config``, on one machine.

The ``update_*`` functions set traits; some also prepare what those traits point at (the homes
folder, each course's directory and nbgrader config). Applying twice gives the same result, and
tests call them on a bare ``Config`` without starting a hub. ``prepare_machine`` checks and changes
the machine itself (accounts, the data folder's modes, the TLS front's files); it runs once, from
``configure_hub``. The pieces Kubernetes shares (formgrader services, auth, token scopes, server
commands) live in their own modules, so :mod:`grader.hub.kubernetes` never imports this one.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from grader.exchange.service import SERVICE_NAME as EXCHANGE_SERVICE_NAME
from grader.hub.auth.configure import update_auth
from grader.hub.auth.oidc import auth_state_keys, roles_with_identity_groups
from grader.hub.auth.onboarding import update_onboarding
from grader.hub.branding import update_branding
from grader.hub.layers import ConfigError
from grader.hub.lifecycle import prepare_process, when_running
from grader.hub.roles import platform_roles, server_token_scopes
from grader.hub.services.culler import culler_role, culler_service
from grader.hub.services.exchange import exchange_roles, exchange_service, uses_http_exchange
from grader.hub.services.formgrader import course_service, update_courses
from grader.hub.services.seats import seats_policy, seats_roles, seats_server_environment, seats_services, update_seats
from grader.hub.services.tls_front import prepare_front, tls_front_services
from grader.hub.settings import HubSettings, load_settings
from grader.hub.spawn.homes import DEFAULT_URL, first_start_url, home_of, is_first_start, prepare_home_as_owner
from grader.hub.spawn.isolation import announce, check_demo_as_root, check_reachable, harden_data_dir, resolve_mode
from grader.hub.spawn.limits import detect_enforcement
from grader.hub.spawn.profiles import GpuInventory, ProfileSpawning, detect_gpus
from grader.hub.spawn.servers import STAFF_JUPYTER_CONFIG, STUDENT_JUPYTER_CONFIG, jupyter_config_path_for, singleuser_command
from grader.hub.spawn.singleuser import kernel_culling_args
from grader.hub.spawn.users_python import users_python
from grader.resources import REPO_ROOT, TEMPLATES_DIR

# `make setup` installs the proxy into the checkout; elsewhere (a wheel install) it is found on PATH.
CHP_BINARY = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
def spawner_mode(settings: HubSettings) -> str:
    """"secure" or "demo": the settings' mode, ``auto`` resolved by who runs the hub."""
    return resolve_mode(settings.spawner.mode, euid=os.geteuid())


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
    # A new JupyterHub's schema is applied at start, as Zero-to-JupyterHub does for its SQLite
    # (docs/upgrading.md). db_url is always a SQLite file here, which JupyterHub copies to
    # jupyterhub.sqlite.<date-time> before it migrates; its Alembic must be on PATH (make hub).
    c.JupyterHub.upgrade_db = True
    c.JupyterHub.cookie_secret_file = str(settings.data_dir / "jupyterhub_cookie_secret")
    # OIDC keeps the IdP's tokens (auth_state), encrypted with a key kept beside the cookie secret,
    # unless the environment gives JupyterHub's own JUPYTERHUB_CRYPT_KEY.
    if settings.auth.type == "oidc" and "JUPYTERHUB_CRYPT_KEY" not in os.environ:
        c.CryptKeeper.keys = auth_state_keys(settings.data_dir)


def pre_spawn_hook_for(settings: HubSettings):
    """The hook JupyterHub runs before each start, with any spawner: the lessons and the user's
    nbgrader config, written as the home's owner (a child process, off the hub's event loop)."""
    async def pre_spawn_hook(spawner):
        prepare_account = getattr(spawner, "prepare_account", None)
        if prepare_account is not None:  # the secure spawner: account and 0700 home first
            await asyncio.to_thread(prepare_account)
        # Group membership, not the settings file: instructors may add students through the hub API.
        course_ids = sorted(group.name.removeprefix("nbgrader-") for group in spawner.user.groups
                            if group.name.startswith("nbgrader-"))
        home = home_of(spawner)
        home.mkdir(parents=True, exist_ok=True)
        first = is_first_start(home)
        await asyncio.to_thread(prepare_home_as_owner, home, username=spawner.user.name, course_ids=course_ids,
                                exchange_root=settings.exchange_root, courses_dir=settings.lessons_dir,
                                exchange_url=settings.exchange_url)
        # A student's first start opens the course's start-here page (settings.start_here).
        spawner.default_url = first_start_url(home, start_here=settings.start_here, first=first,
                                              course_ids=course_ids)
    return pre_spawn_hook


def update_spawner(c, settings: HubSettings) -> None:
    """The secure spawner (an account and a cgroup per user) or the demo one (the hub's own user)."""
    if spawner_mode(settings) == "secure":
        c.JupyterHub.spawner_class = "grader.hub.spawn.local_spawner.SecureSpawner"
        c.SecureSpawner.homes_dir = str(settings.homes_dir)
        c.SecureSpawner.enforcement = detect_enforcement() or ""
        c.SecureSpawner.default_max_tasks = settings.spawner.max_tasks
        users = users_python(build=False)  # made by prepare_machine, before the hub starts
        c.SecureSpawner.interpreter_environment = users.env
        c.Spawner.cmd = singleuser_command(executable=str(users.executable))
    else:
        # Demo mode: one OS user for everyone, a home folder per user (see README, "Isolation").
        c.JupyterHub.spawner_class = "simple"
        c.SimpleLocalProcessSpawner.home_dir_template = str(settings.homes_dir / "{username}")
        c.Spawner.cmd = singleuser_command(as_root=settings.spawner.allow_root_demo)
    # The admin page says which mode this is (grader/hub/data/templates/admin.html; update_auth sets
    # the same folder for the login and sign-up pages).
    c.JupyterHub.template_paths = [str(TEMPLATES_DIR)]
    # aicourse_local_accounts: the nav bar links the local accounts' pages (templates/page.html).
    # aicourse_course_pages: the exchange service whose course pages the nav bar links (HTTP exchange only).
    c.JupyterHub.template_vars = {"aicourse_spawner_mode": spawner_mode(settings),
                                  "aicourse_local_accounts": settings.auth.type == "local",
                                  "aicourse_course_pages": EXCHANGE_SERVICE_NAME if uses_http_exchange(settings) else ""}
    c.Spawner.default_url = DEFAULT_URL  # but a student's first start: pre_spawn_hook_for
    # c.Spawner.pre_spawn_hook (pre_spawn_hook_for, after the profile and seat checks): update_profiles.
    c.Spawner.server_token_scopes = server_token_scopes(settings)
    # A server start costs CPU-seconds (benchmarks/server_startup.py measures it): several at once
    # on a small machine, with other work, can overrun JupyterHub's 30 s default.
    c.Spawner.http_timeout = 120
    c.Spawner.start_timeout = 180


def _hub_user() -> str:
    try:
        import pwd
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def gpu_inventory(settings: HubSettings) -> GpuInventory:
    if settings.gpu_devices is None:
        return detect_gpus()
    return GpuInventory(settings.gpu_devices, "" if settings.gpu_devices else "gpu_devices is empty in the platform settings")


def update_profiles(c, settings: HubSettings) -> None:
    """The spawn form with the settings' profiles; their limits and GPUs applied at each start."""
    spawning = ProfileSpawning(settings.profiles, gpu_inventory(settings), policy=seats_policy(settings),
                               prepare=pre_spawn_hook_for(settings))
    c.Spawner.options_form = spawning.options_form
    c.Spawner.options_from_form = spawning.options_from_form
    c.Spawner.apply_user_options = spawning.apply_user_options
    # Refusals (seats, profiles, GPUs) are raised here, where JupyterHub logs no traceback for them;
    # an accepted start then gets its lessons and nbgrader config (pre_spawn_hook_for).
    c.Spawner.pre_spawn_hook = spawning.pre_spawn_hook
    c.Spawner.post_stop_hook = spawning.post_stop_hook


def update_kernel_culling(c, settings: HubSettings) -> None:
    """Users' servers shut down their kernels idle for ``kernel_culler.timeout`` seconds."""
    culling = settings.kernel_culler
    c.Spawner.args = kernel_culling_args(culling.timeout, culling.cull_every, culling.cull_connected)


def update_jupyter_config(c, settings: HubSettings) -> None:
    """Which Jupyter configuration folder each server reads first, decided per user at spawn."""
    c.Spawner.environment = {"JUPYTER_CONFIG_PATH": jupyter_config_path_for, **seats_server_environment(settings)}


def update_services(c, settings: HubSettings) -> None:
    """The hub's services: each course's formgrader, the idle culler, the seats service and the TLS
    front if enabled."""
    services = [course_service(settings, course) for course in settings.courses]
    if settings.idle_culler.enabled:
        services.append(culler_service(settings))
    if uses_http_exchange(settings):
        services.append(exchange_service(settings))
    # With https.enabled, Caddy in front of the hub, run as a service (grader/hub/services/tls_front.py).
    c.JupyterHub.services = (services + seats_services(settings) + tls_front_services(settings)
                             + lti_roster_services(settings))


def update_roles(c, settings: HubSettings) -> None:
    """Least-privilege roles (see :mod:`grader.hub.roles`); admins get JupyterHub's own admin role."""
    c.JupyterHub.load_roles = (roles_with_identity_groups(platform_roles(settings), settings.auth)
                               + ([culler_role()] if settings.idle_culler.enabled else []) + seats_roles(settings)
                               + (exchange_roles(settings) if uses_http_exchange(settings) else [])
                               + lti_roster_roles(settings))
    c.Authenticator.admin_users = set(settings.admins)


def lti_roster_services(settings: HubSettings) -> list[dict]:
    """With auth.type lti13, the token-only service `grader lti sync-roster` uses (grader/hub/auth/lti13.py)."""
    if settings.auth.type != "lti13":
        return []
    from grader.hub.auth.lti13 import roster_services
    return roster_services(settings.auth, settings.data_dir)


def lti_roster_roles(settings: HubSettings) -> list[dict]:
    if settings.auth.type != "lti13":
        return []
    from grader.hub.auth.lti13 import roster_roles
    return roster_roles(settings.auth, [course.course_id for course in settings.courses])


def prepare_machine(settings: HubSettings) -> None:
    """What the hub checks and sets on this machine before it starts, beyond traits; says which mode.

    Secure mode: cgroups or systemd must be there to enforce limits, users' accounts must reach
    the interpreter, and what the hub keeps is made its own but for users' homes
    (:func:`grader.hub.spawn.isolation.harden_data_dir`). Demo mode as root is refused unless
    ``spawner.allow_root_demo``. The file exchange is warned about. With ``https.enabled`` the TLS
    front's Caddyfile is written and checked (:func:`grader.hub.services.tls_front.prepare_front`).
    """
    mode = spawner_mode(settings)
    if mode == "secure":
        enforcement = detect_enforcement()
        if enforcement is None:
            raise ConfigError("spawner.mode: secure needs cgroups (v1 memory, cpu and pids, or v2) or systemd to "
                              "enforce the profiles' limits, and this machine offers none writable")
        # Files the hub makes from now on (database, accounts, seats, the exchange service's
        # storage) are private from the start, not after a chmod.
        os.umask(0o077)
        harden_data_dir(settings.data_dir, homes_dir=settings.homes_dir,
                        file_exchange=None if uses_http_exchange(settings) else settings.exchange_root,
                        private_repo_dirs=[settings.content_dir / "assignments"] if settings.content_dir else [])
        try:
            users = users_python()
        except (OSError, RuntimeError) as error:
            raise ConfigError(f"spawner.mode: secure: no interpreter users' accounts can run: {error}") from error
        if users.executable != Path(sys.executable):
            print(f"[aicourse] users' servers run {users.executable} (the hub's interpreter is in a folder other "
                  "accounts cannot enter; this copy shares its packages)", file=sys.stderr, flush=True)
        check_reachable([users.executable, STUDENT_JUPYTER_CONFIG, STAFF_JUPYTER_CONFIG, settings.homes_dir])
        if enforcement == "cgroup2" and gpu_inventory(settings).devices:
            print("[aicourse] WARNING: cgroup v2 without systemd: GPUs are handed out through CUDA_VISIBLE_DEVICES "
                  "only, not fenced (device rules need a BPF program); see docs/one-machine-isolation.md.",
                  file=sys.stderr, flush=True)
        announce(mode, user="root", enforcement=enforcement)
    else:
        check_demo_as_root(euid=os.geteuid(), allow_root_demo=settings.spawner.allow_root_demo)
        announce(mode, user=_hub_user())
    if settings.https.enabled:
        # Written and validated now, so a wrong certificate or a taken port stops the hub here.
        prepare_front(settings)
    if not uses_http_exchange(settings):
        print("[aicourse] WARNING: exchange.backend: files (nbgrader's shared folder): any student can submit as "
              "another student and read or replace their submissions (nbgrader #1097). Use exchange.backend: http.",
              file=sys.stderr, flush=True)


def apply_settings(c, settings: HubSettings) -> None:
    """Set every trait the platform owns on ``c``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    update_network(c, settings)
    update_storage(c, settings)
    update_auth(c, settings)
    update_spawner(c, settings)
    update_branding(c, settings)
    if settings.auth.type == "local":
        update_onboarding(c, settings)  # the instructors' course students page (local accounts)
    update_jupyter_config(c, settings)
    update_kernel_culling(c, settings)
    update_profiles(c, settings)
    update_courses(c, settings)
    update_services(c, settings)
    update_roles(c, settings)
    update_seats(c, settings)


def configure_hub(c) -> HubSettings:
    """What a ``jupyterhub_config.py`` does for this platform, from a checkout or an installed wheel:
    load the layered settings, apply them to ``c``, and check and prepare this machine.

    So the file an admin keeps can be two lines (``hub_config/jupyterhub_config.py`` adds its
    ``jupyterhub_config.d/``); the settings file is found as :func:`grader.hub.settings.config_path` says.
    """
    # Alembic on PATH (JupyterHub's upgrade_db, nbgrader) and SIGINT not ignored: grader.hub.lifecycle.
    prepare_process()
    settings = load_settings()
    apply_settings(c, settings)
    # Secure mode (the default as root) checks and locks down this machine; demo mode says so.
    prepare_machine(settings)
    # Once the hub runs: SIGINT/SIGTERM stop it in order, and a last block gives its URL and new accounts.
    when_running(settings)
    return settings
