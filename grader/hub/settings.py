"""The hub's settings, layered: defaults in code, then secrets, then the admin's YAML, then env.

``load_settings`` reads the layers (:mod:`grader.hub.layers`), merges them with one pure function
and turns the result into frozen dataclasses that the ``update_*`` functions of
:mod:`grader.hub.config` apply. The defaults give a working demo hub at http://127.0.0.1:8000 with
its state in ``.hub-data/`` of the repository; tests point every port and the data folder
somewhere private with ``AICOURSE_*`` variables.

Run from an installed wheel there is no repository: the admin's file is ``platform.yaml`` in the
folder the hub starts in (or ``$AICOURSE_CONFIG``), the state goes to ``.hub-data/`` there, and
``content_dir`` must say where the lessons and assignments are before any course is declared.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from grader.exchange.service import SERVICE_NAME as EXCHANGE_SERVICE_NAME
from grader.grading.course_dir import Course
from grader.hub.auth.oidc import AuthSettings, auth_settings_from_config
from grader.hub.layers import ConfigError, merge_layers, read_layer
from grader.resources import checkout_root

ENV_PREFIX = "AICOURSE_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
SECRETS_NAME = "secrets.yaml"
# A checkout (`make hub`) keeps its files where they always were; an installed wheel has no
# repository, so it uses the folder the hub is started in, as JupyterHub itself does.
_CHECKOUT = checkout_root()
_HOME_DIR = _CHECKOUT if _CHECKOUT is not None else Path.cwd()
DEFAULT_CONFIG_PATH = (_CHECKOUT / "hub_config" if _CHECKOUT is not None else Path.cwd()) / "platform.yaml"

# The first layer. Courses are not defaulted here: the admin's file names them.
DEFAULTS: dict[str, Any] = {
    "data_dir": str(_HOME_DIR / ".hub-data"),
    # Where the lessons (courses/) and nbgrader source assignments (assignments/source/) are: a
    # checkout of this repository or a copy of those two folders. "": none (a wheel install).
    "content_dir": str(_CHECKOUT or ""),
    "ip": "127.0.0.1",
    "port": 8000,
    "hub_port": 8081,
    "proxy_api_port": 8001,
    # signup: off | invitation (links made by admins) | approval (also requests an admin approves).
    # reset_hours: how long a password reset link stays valid; requests_*: sign-up and reset requests
    # allowed per client address and per user name in request_window_seconds.
    "accounts": {"max_failed_logins": 5, "lockout_seconds": 600, "signup": "invitation", "invitation_hours": 72,
                 "reset_hours": 24, "requests_per_address": 30, "requests_per_name": 5,
                 "request_window_seconds": 600},
    # Who logs in: "local" accounts (grader/hub/auth/accounts.py) or "oidc" single sign-on (grader/hub/auth/oidc.py).
    "auth": {"type": "local"},
    "courses": {},
    "admins": [],
    "cohort_admins": [],
    # Servers idle for an hour are stopped; checked every 5 minutes.
    "idle_culler": {"enabled": True, "timeout": 3600, "cull_every": 300, "max_age": 0},
    # Kernels idle (not running code) for 30 minutes are shut down by their server, checked every
    # minute, even with a notebook open on them (MappingKernelManager.cull_*); timeout 0: never.
    "kernel_culler": {"timeout": 1800, "cull_every": 60, "cull_connected": True},
    # Extra hub groups by name (e.g. who may use the GPU profile); members are added, never removed.
    "groups": {},
    # Spawn profiles by slug, in the order the form lists them; none: no form.
    "profiles": {},
    # Enterprise cohort seats (grader/seats): off, so a hub without customers works as before.
    "seats": {"enabled": False, "db_url": "", "service_port": 8020, "staff_bypass": True,
              "sweep_every": 60, "contact": ""},
    # nbgrader's exchange: "http" (grader/exchange_service, the default: a hub service that takes
    # identity from the hub, so no student can submit as another) or "files" (nbgrader's shared folder).
    "exchange": {"backend": "http", "service_port": 8011, "max_upload_mb": 100, "instant_workers": 2},
    # How users' servers run on one machine (grader/hub/spawn/isolation.py): "secure" (an account per
    # user, limits in a cgroup), "demo" (every server as the hub's own user), "auto" (secure as root).
    # homes_dir empty: <data_dir>/homes. max_tasks: processes and threads of a server whose profile
    # names none. allow_root_demo: demo mode as root (--allow-root) for throw-away test hubs; only the
    # environment (AICOURSE_ALLOW_ROOT_DEMO=1) can set it, never the platform YAML (the schema refuses it).
    "spawner": {"mode": "auto", "homes_dir": "", "max_tasks": 1024, "allow_root_demo": False},
    # HTTPS on one machine (grader/hub/services/tls_front.py): Caddy in front of the hub, off by default.
    # certificate + key: those files; domain alone: a certificate from Let's Encrypt (ACME).
    # address empty: every interface. hsts_max_age 0: no Strict-Transport-Security header.
    "https": {"enabled": False, "domain": "", "address": "", "port": 443, "http_port": 80,
              "certificate": "", "key": "", "letsencrypt_email": "", "acme_ca": "", "hsts_max_age": 31536000},
    # The platform's name on the login page and in every hub page's title; logo: an image file for
    # the nav bar and the login page ("": JupyterHub's).
    "branding": {"title": "AI course platform", "logo": ""},
    # Outgoing e-mail for the invitations instructors send (grader/hub/auth/onboarding.py).
    # smtp_host "": no e-mail, the links are shown to copy. security: starttls | ssl | none.
    "mail": {"smtp_host": "", "smtp_port": 587, "security": "starttls", "username": "", "password": "",
             "from": ""},
    # What a student's first server start opens, relative to their home ("": the courses folder).
    "start_here": "courses/START_HERE.ipynb",
}


@dataclass(frozen=True)
class CourseSettings:
    """One course on the hub: its nbgrader id, who teaches, grades and takes it, its formgrader port."""

    course_id: str
    formgrader_port: int
    title: str = ""
    instructors: tuple[str, ...] = ()
    graders: tuple[str, ...] = ()
    students: tuple[str, ...] = ()
    # None: <data_dir>/courses/<course_id>
    course_dir: Path | None = None
    # What `grader autograde` does with a flagged submission's score (grader.grading.integrity.policy).
    flagged_policy: str = "keep"
    # Let the course's instructors turn on instant feedback (issue #20; their policy file decides the rest).
    instant_feedback: bool = False

    @property
    def formgrade_group(self) -> str:
        # Group names nbgrader's JupyterHub integration looks for (docs: "Using nbgrader with JupyterHub").
        return f"formgrade-{self.course_id}"

    @property
    def student_group(self) -> str:
        return f"nbgrader-{self.course_id}"


@dataclass(frozen=True)
class IdleCullerSettings:
    enabled: bool = DEFAULTS["idle_culler"]["enabled"]
    # Seconds without activity before a server is stopped.
    timeout: int = DEFAULTS["idle_culler"]["timeout"]
    cull_every: int = DEFAULTS["idle_culler"]["cull_every"]
    # Seconds after which a server is stopped even when active; 0: never.
    max_age: int = DEFAULTS["idle_culler"]["max_age"]


@dataclass(frozen=True)
class KernelCullerSettings:
    """Users' servers shut down their own idle kernels (Jupyter Server's kernel culling)."""
    # Seconds a kernel may stay idle (running nothing) before it is shut down; 0: never.
    timeout: int = DEFAULTS["kernel_culler"]["timeout"]
    cull_every: int = DEFAULTS["kernel_culler"]["cull_every"]
    # Also a kernel a browser tab is still connected to (the usual case of a forgotten notebook).
    cull_connected: bool = DEFAULTS["kernel_culler"]["cull_connected"]


@dataclass(frozen=True)
class Profile:
    """A choice on the spawn form: resources for the user's server."""

    slug: str
    display_name: str
    description: str = ""
    cpu_limit: float | None = None
    # JupyterHub's byte-size notation: "4G", "512M".
    mem_limit: str | None = None
    gpus: int = 0
    # Processes and threads the server may have at once (cgroup pids.max); None: spawner.max_tasks.
    max_tasks: int | None = None
    # Only members of one of these groups may pick it; empty: everyone.
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeatsSettings:
    """Cohort seats: who may log in and start a server, and the seats service (grader/seats)."""

    enabled: bool = DEFAULTS["seats"]["enabled"]
    # SQLAlchemy URL; empty: sqlite in the data folder (see HubSettings.seats_db_url).
    db_url: str = field(default=DEFAULTS["seats"]["db_url"], repr=False)
    service_port: int = DEFAULTS["seats"]["service_port"]
    # Admins, course staff and cohort admins log in and start servers without a seat.
    staff_bypass: bool = DEFAULTS["seats"]["staff_bypass"]
    # Seconds between the service's sweeps: stop servers whose access ended, close usage records.
    sweep_every: int = DEFAULTS["seats"]["sweep_every"]
    # Whom a refused user without any organisation should contact.
    contact: str = DEFAULTS["seats"]["contact"]


@dataclass(frozen=True)
class ExchangeSettings:
    """Which nbgrader exchange the hub's courses and students use (see grader/exchange_service)."""

    backend: str = DEFAULTS["exchange"]["backend"]
    # Loopback port of the HTTP exchange service; unused with the files backend.
    service_port: int = DEFAULTS["exchange"]["service_port"]
    # Largest upload (a release, a submission, a student's feedback) the service accepts, in MB.
    max_upload_mb: float = DEFAULTS["exchange"]["max_upload_mb"]
    # Grading processes per course with instant feedback (grader.exchange.service.instant.dispatcher).
    instant_workers: int = DEFAULTS["exchange"]["instant_workers"]


@dataclass(frozen=True)
class SpawnerSettings:
    """How users' servers run on one machine (see grader/hub/spawn/isolation.py and README, "Isolation")."""

    mode: str = DEFAULTS["spawner"]["mode"]
    # None: <data_dir>/homes (HubSettings.homes_dir).
    homes_dir: Path | None = None
    max_tasks: int = DEFAULTS["spawner"]["max_tasks"]
    allow_root_demo: bool = DEFAULTS["spawner"]["allow_root_demo"]


@dataclass(frozen=True)
class HttpsSettings:
    """The optional TLS front (see grader/hub/services/tls_front.py and docs/one-machine-isolation.md)."""

    enabled: bool = DEFAULTS["https"]["enabled"]
    # The name people type; with no certificate, the one Caddy obtains a certificate for. "": any name.
    domain: str = DEFAULTS["https"]["domain"]
    # Where the front listens; "": every interface.
    address: str = DEFAULTS["https"]["address"]
    port: int = DEFAULTS["https"]["port"]
    # Plain HTTP: redirects to HTTPS, and answers Let's Encrypt's HTTP-01 challenge.
    http_port: int = DEFAULTS["https"]["http_port"]
    # PEM files (certificate chain, private key); None: obtained automatically for ``domain``.
    certificate: Path | None = None
    key: Path | None = None
    letsencrypt_email: str = DEFAULTS["https"]["letsencrypt_email"]
    # ACME directory URL; "": Caddy's default (Let's Encrypt). E.g. Let's Encrypt's staging one.
    acme_ca: str = DEFAULTS["https"]["acme_ca"]
    hsts_max_age: int = DEFAULTS["https"]["hsts_max_age"]

    @property
    def uses_acme(self) -> bool:
        """Whether Caddy obtains (and renews) the certificate itself, rather than being given one."""
        return self.enabled and self.certificate is None


@dataclass(frozen=True)
class BrandingSettings:
    """How the hub's pages name the platform (templates/login.html, page.html)."""

    title: str = DEFAULTS["branding"]["title"]
    # An image file (PNG, SVG, ...) served as JupyterHub's logo; None: JupyterHub's own.
    logo: Path | None = None


@dataclass(frozen=True)
class MailSettings:
    """The SMTP server instructors' invitations go out through (grader/hub/auth/onboarding.py)."""

    smtp_host: str = DEFAULTS["mail"]["smtp_host"]
    smtp_port: int = DEFAULTS["mail"]["smtp_port"]
    security: str = DEFAULTS["mail"]["security"]
    username: str = DEFAULTS["mail"]["username"]
    password: str = field(default=DEFAULTS["mail"]["password"], repr=False)
    sender: str = DEFAULTS["mail"]["from"]

    @property
    def enabled(self) -> bool:
        return bool(self.smtp_host)


@dataclass(frozen=True)
class HubSettings:
    data_dir: Path = Path(DEFAULTS["data_dir"])
    # None: no lessons or assignments (only possible without courses; see settings_from_config).
    content_dir: Path | None = Path(DEFAULTS["content_dir"]) if DEFAULTS["content_dir"] else None
    ip: str = DEFAULTS["ip"]
    port: int = DEFAULTS["port"]
    hub_port: int = DEFAULTS["hub_port"]
    proxy_api_port: int = DEFAULTS["proxy_api_port"]
    courses: tuple[CourseSettings, ...] = ()
    # JupyterHub admins (everything), and cohort admins (read users and groups only, for now).
    admins: tuple[str, ...] = ()
    cohort_admins: tuple[str, ...] = ()
    idle_culler: IdleCullerSettings = IdleCullerSettings()
    kernel_culler: KernelCullerSettings = KernelCullerSettings()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    profiles: tuple[Profile, ...] = ()
    # GPU ids handed out to servers (CUDA_VISIBLE_DEVICES); None: detected at hub start.
    gpu_devices: tuple[str, ...] | None = None
    # Failed logins before a user is locked out for lockout_seconds.
    allowed_failed_logins: int = DEFAULTS["accounts"]["max_failed_logins"]
    lockout_seconds: int = DEFAULTS["accounts"]["lockout_seconds"]
    signup: str = DEFAULTS["accounts"]["signup"]
    invitation_hours: float = DEFAULTS["accounts"]["invitation_hours"]
    reset_hours: float = DEFAULTS["accounts"]["reset_hours"]
    requests_per_address: int = DEFAULTS["accounts"]["requests_per_address"]
    requests_per_name: int = DEFAULTS["accounts"]["requests_per_name"]
    request_window_seconds: float = DEFAULTS["accounts"]["request_window_seconds"]
    auth: AuthSettings = AuthSettings()
    # None: every course shares <data_dir>/exchange, each in its own <course_id>/ subtree (nbgrader's layout).
    exchange_dir: Path | None = None
    # From the secrets file: a fixed proxy token lets the proxy outlive a hub restart.
    proxy_auth_token: str = field(default="", repr=False)
    seats: SeatsSettings = SeatsSettings()
    exchange: ExchangeSettings = ExchangeSettings()
    spawner: SpawnerSettings = SpawnerSettings()
    https: HttpsSettings = HttpsSettings()
    branding: BrandingSettings = BrandingSettings()
    mail: MailSettings = MailSettings()
    # Relative to the user's home; "": none (grader/hub/spawn/homes.py, first_start_url).
    start_here: str = DEFAULTS["start_here"]

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'jupyterhub.sqlite'}"

    @property
    def seats_db_url(self) -> str:
        return self.seats.db_url or f"sqlite:///{self.data_dir / 'seats.sqlite'}"

    @property
    def homes_dir(self) -> Path:
        return self.spawner.homes_dir or self.data_dir / "homes"

    @property
    def exchange_url(self) -> str:
        """The HTTP exchange's API root for clients on this machine; empty with the files backend."""
        if self.exchange.backend != "http":
            return ""
        return f"http://{self.ip}:{self.exchange.service_port}/services/{EXCHANGE_SERVICE_NAME}/"

    @property
    def exchange_root(self) -> Path:
        return self.exchange_dir or self.data_dir / "exchange"

    @property
    def lessons_dir(self) -> Path | None:
        """The lessons copied into users' homes at each start; None: no content."""
        return self.content_dir / "courses" if self.content_dir else None

    @property
    def assignments_source_dir(self) -> Path | None:
        """nbgrader's source assignments, which each course directory's ``source/`` links to."""
        return self.content_dir / "assignments" / "source" if self.content_dir else None

    def course(self, course_id: str) -> Course:
        """The nbgrader course (directories and exchange) of one of the hub's courses."""
        for course in self.courses:
            if course.course_id == course_id:
                return Course(
                    course_id=course_id,
                    course_dir=course.course_dir or self.data_dir / "courses" / course_id,
                    exchange_dir=self.exchange_root,
                    # settings_from_config refuses courses without content, so this is a Path.
                    source_dir=self.assignments_source_dir,
                    exchange_url=self.exchange_url,
                    flagged_policy=course.flagged_policy,
                )
        raise KeyError(f"no course {course_id!r} on this hub")

    def users(self) -> list[str]:
        """Every account the settings name, once, in the order they first appear."""
        names = [*self.admins, *self.cohort_admins, *(name for _, users in self.groups for name in users)] + [
            name
            for course in self.courses
            for name in (*course.instructors, *course.graders, *course.students)
        ]
        return list(dict.fromkeys(names))


def _split_names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


def _flag(value: str) -> bool:
    if value.strip().lower() in ("1", "true", "yes"):
        return True
    if value.strip().lower() in ("", "0", "false", "no"):
        return False
    raise ValueError("not a yes/no value")


def env_layer(environ: Mapping[str, str], config: Mapping[str, Any]) -> dict[str, Any]:
    """The layer the ``AICOURSE_*`` variables make, on top of ``config`` (the merge so far).

    ``AICOURSE_COURSE_ID``, ``_FORMGRADER_PORT``, ``_INSTRUCTORS`` and ``_STUDENTS`` address the
    first course of ``config`` (created if there is none); a course renamed by
    ``AICOURSE_COURSE_ID`` keeps its other settings. An unparsable value names the variable.
    """

    def value(suffix: str, convert):
        name = ENV_PREFIX + suffix
        try:
            return convert(environ[name])
        except ValueError as error:
            raise ConfigError(f"environment variable {name}={environ[name]!r}: {error}") from error

    layer: dict[str, Any] = {}
    if ENV_PREFIX + "DATA_DIR" in environ:
        layer["data_dir"] = value("DATA_DIR", lambda v: str(Path(v).resolve()))
    if ENV_PREFIX + "CONTENT_DIR" in environ:
        layer["content_dir"] = value("CONTENT_DIR", lambda v: str(Path(v).resolve()) if v else "")
    for suffix, key, convert in [("IP", "ip", str), ("PORT", "port", int), ("HUB_PORT", "hub_port", int),
                                 ("PROXY_API_PORT", "proxy_api_port", int)]:
        if ENV_PREFIX + suffix in environ:
            layer[key] = value(suffix, convert)
    if ENV_PREFIX + "EXCHANGE_PORT" in environ:
        layer["exchange"] = {"service_port": value("EXCHANGE_PORT", int)}
    spawner_keys = {"SPAWNER_MODE": ("mode", str), "HOMES_DIR": ("homes_dir", lambda v: str(Path(v).resolve())),
                    "ALLOW_ROOT_DEMO": ("allow_root_demo", _flag)}
    spawner_layer = {key: value(suffix, convert) for suffix, (key, convert) in spawner_keys.items()
                     if ENV_PREFIX + suffix in environ}
    if spawner_layer:
        layer["spawner"] = spawner_layer

    course_keys = {"FORMGRADER_PORT": ("formgrader_port", int), "INSTRUCTORS": ("instructors", _split_names),
                   "STUDENTS": ("students", _split_names)}
    course_layer = {key: value(suffix, convert) for suffix, (key, convert) in course_keys.items()
                    if ENV_PREFIX + suffix in environ}
    courses = config.get("courses", {})
    first_id = next(iter(courses), None)
    new_id = value("COURSE_ID", str) if ENV_PREFIX + "COURSE_ID" in environ else first_id
    if new_id is None and course_layer:
        new_id = "ai101"
    if new_id is not None and (course_layer or new_id != first_id):
        renamed = {first_id: None} if first_id not in (None, new_id) else {}
        base = courses.get(first_id, {"formgrader_port": 8010}) if new_id != first_id else {}
        layer["courses"] = {**renamed, new_id: merge_layers(base, course_layer)}
    return layer


def layered_config(*, secrets: Mapping[str, Any], admin: Mapping[str, Any],
                   environ: Mapping[str, str]) -> dict[str, Any]:
    """Defaults, then secrets, then the admin's file, then the environment: one pure merge."""
    config = merge_layers(DEFAULTS, secrets, admin)
    return merge_layers(config, env_layer(environ, config))


def settings_from_config(config: Mapping[str, Any], *, source: str = "settings") -> HubSettings:
    """Turn a merged configuration into settings, checking what a schema cannot (unique ports).

    ``source`` (the admin's file) is named in the errors of checks that span keys of one section.
    """
    courses = tuple(
        CourseSettings(
            course_id=course_id,
            formgrader_port=entry["formgrader_port"],
            title=entry.get("title", ""),
            instructors=tuple(entry.get("instructors", ())),
            graders=tuple(entry.get("graders", ())),
            students=tuple(entry.get("students", ())),
            course_dir=Path(entry["course_dir"]) if entry.get("course_dir") else None,
            flagged_policy=entry.get("flagged_policy", "keep"),
            instant_feedback=entry.get("instant_feedback", False),
        )
        for course_id, entry in config.get("courses", {}).items()
    )
    ports = {"port": config["port"], "hub_port": config["hub_port"], "proxy_api_port": config["proxy_api_port"]}
    ports.update({f"courses.{c.course_id}.formgrader_port": c.formgrader_port for c in courses})
    if config["seats"]["enabled"]:
        ports["seats.service_port"] = config["seats"]["service_port"]
    if config["exchange"]["backend"] == "http":
        ports["exchange.service_port"] = config["exchange"]["service_port"]
    if config["https"]["enabled"]:
        ports["https.port"] = config["https"]["port"]
        ports["https.http_port"] = config["https"]["http_port"]
    seen: dict[int, str] = {}
    for key, port in ports.items():
        if port in seen:
            raise ConfigError(f"{key}: port {port} is already used by {seen[port]}")
        seen[port] = key
    # Instant feedback grades what the exchange service receives; the file exchange has no service.
    for course in courses:
        if course.instant_feedback and config["exchange"]["backend"] != "http":
            raise ConfigError(f"courses.{course.course_id}.instant_feedback: needs exchange.backend: http "
                              f"(it is {config['exchange']['backend']!r})")
    # A misspelt group would silently hide a profile from everyone.
    known_groups = set(config["groups"]) | {g for c in courses for g in (c.formgrade_group, c.student_group)}
    for slug, entry in config["profiles"].items():
        for group in entry.get("groups", ()):
            if group not in known_groups:
                raise ConfigError(f"profiles.{slug}.groups: no group {group!r}; declare it under groups: "
                                  f"(known: {', '.join(sorted(known_groups)) or 'none'})")
    content_dir = Path(config["content_dir"]) if config.get("content_dir") else None
    if courses and content_dir is None:
        raise ConfigError(f"{source}: content_dir: not set, and grader is installed, not run from a checkout of its "
                          "repository: set content_dir to a folder holding the lessons (courses/) and the nbgrader "
                          "source assignments (assignments/source/), e.g. a checkout of the repository")
    return HubSettings(
        data_dir=Path(config["data_dir"]),
        content_dir=content_dir,
        ip=config["ip"],
        port=config["port"],
        hub_port=config["hub_port"],
        proxy_api_port=config["proxy_api_port"],
        courses=courses,
        admins=tuple(config.get("admins", ())),
        cohort_admins=tuple(config.get("cohort_admins", ())),
        idle_culler=IdleCullerSettings(**config["idle_culler"]),
        kernel_culler=KernelCullerSettings(**config["kernel_culler"]),
        groups=tuple((name, tuple(users)) for name, users in config["groups"].items()),
        profiles=tuple(
            Profile(slug=slug, **{key: tuple(value) if key == "groups" else value for key, value in entry.items()})
            for slug, entry in config["profiles"].items()
        ),
        gpu_devices=tuple(str(device) for device in config["gpu_devices"]) if "gpu_devices" in config else None,
        allowed_failed_logins=config["accounts"]["max_failed_logins"],
        lockout_seconds=config["accounts"]["lockout_seconds"],
        signup=config["accounts"]["signup"],
        invitation_hours=config["accounts"]["invitation_hours"],
        reset_hours=config["accounts"]["reset_hours"],
        requests_per_address=config["accounts"]["requests_per_address"],
        requests_per_name=config["accounts"]["requests_per_name"],
        request_window_seconds=config["accounts"]["request_window_seconds"],
        auth=auth_settings_from_config(config["auth"], course_ids={c.course_id for c in courses},
                                       known_groups=known_groups),
        exchange_dir=Path(config["exchange_dir"]) if config.get("exchange_dir") else None,
        proxy_auth_token=config.get("proxy_auth_token", ""),
        seats=SeatsSettings(**config["seats"]),
        exchange=ExchangeSettings(**config["exchange"]),
        spawner=spawner_settings_from_config(config["spawner"]),
        https=https_settings_from_config(config["https"], hub_ip=config["ip"], source=source),
        branding=BrandingSettings(title=config["branding"]["title"],
                                  logo=Path(config["branding"]["logo"]) if config["branding"]["logo"] else None),
        mail=mail_settings_from_config(config["mail"], source=source),
        start_here=config["start_here"],
    )


def mail_settings_from_config(entry: Mapping[str, Any], *, source: str) -> MailSettings:
    mail = MailSettings(smtp_host=entry["smtp_host"], smtp_port=entry["smtp_port"], security=entry["security"],
                        username=entry["username"], password=entry["password"], sender=entry["from"])
    if mail.enabled and not mail.sender:
        raise ConfigError(f"{source}: mail.from: required with mail.smtp_host (the address invitations come from)")
    return mail


def spawner_settings_from_config(entry: Mapping[str, Any]) -> SpawnerSettings:
    if entry["mode"] not in ("auto", "secure", "demo"):
        raise ConfigError(f"spawner.mode: {entry['mode']!r} is not one of auto, secure, demo")
    return SpawnerSettings(mode=entry["mode"], homes_dir=Path(entry["homes_dir"]) if entry.get("homes_dir") else None,
                           max_tasks=entry["max_tasks"], allow_root_demo=bool(entry["allow_root_demo"]))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_settings_from_config(entry: Mapping[str, Any], *, hub_ip: str, source: str) -> HttpsSettings:
    """The ``https:`` section, checked where the schema cannot (keys that need one another).

    Only an enabled front is checked: a half-written block that is switched off stops nothing.
    Errors name the file, then the key, as the schema's do.
    """
    def problem(key: str, text: str) -> ConfigError:
        return ConfigError(f"{source}: {key}: {text}")

    certificate, key = entry["certificate"], entry["key"]
    https = HttpsSettings(
        enabled=bool(entry["enabled"]), domain=entry["domain"], address=entry["address"], port=entry["port"],
        http_port=entry["http_port"], certificate=Path(certificate) if certificate else None,
        key=Path(key) if key else None, letsencrypt_email=entry["letsencrypt_email"], acme_ca=entry["acme_ca"],
        hsts_max_age=entry["hsts_max_age"])
    if not https.enabled:
        return https
    if bool(certificate) != bool(key):
        given, missing = ("certificate", "key") if certificate else ("key", "certificate")
        raise problem(f"https.{missing}", f"required with https.{given}: the front needs both the "
                      "certificate (PEM, with its chain) and its private key (PEM)")
    if not certificate and not https.domain:
        raise problem("https.enabled", "true, but the front has no certificate to serve: give https.certificate "
                      "and https.key (PEM files), or https.domain (with https.letsencrypt_email) to obtain one "
                      "from Let's Encrypt automatically")
    if not certificate and not https.letsencrypt_email:
        raise problem("https.letsencrypt_email", f"required to obtain a certificate for https.domain "
                      f"{https.domain!r} from Let's Encrypt (or give https.certificate and https.key)")
    if https.address:
        try:
            ipaddress.ip_address(https.address)
        except ValueError:
            raise problem("https.address", f"{https.address!r} is not an IP address (empty: every interface)") from None
    # Otherwise anyone could skip the front and talk plain HTTP to the hub's port.
    if not _is_loopback(hub_ip):
        raise problem("ip", f"{hub_ip!r}: with https.enabled the hub listens on loopback only (127.0.0.1), behind "
                      "the TLS front; https.address says where the front listens")
    return https


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """The admin's YAML file: ``$AICOURSE_CONFIG``, else ``hub_config/platform.yaml`` of a checkout, else
    ``platform.yaml`` in the folder the hub starts in (an installed wheel)."""
    return Path(environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_settings(environ: Mapping[str, str] = os.environ) -> HubSettings:
    """Read every layer and return the hub's settings; a bad file or value raises ConfigError."""
    admin = read_layer(config_path(environ), required=True)
    # The secrets file lives in the data folder, which the other layers choose.
    data_dir = Path(layered_config(secrets={}, admin=admin, environ=environ)["data_dir"])
    secrets = read_layer(data_dir / SECRETS_NAME, required=False, private=True)
    if "data_dir" in secrets:
        raise ConfigError(f"{data_dir / SECRETS_NAME}: data_dir cannot be set in the secrets file it is found by")
    return settings_from_config(layered_config(secrets=secrets, admin=admin, environ=environ),
                                source=str(config_path(environ)))
