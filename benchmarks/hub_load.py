"""Benchmark: N students log in, spawn, run a cell and stop, on our hub and on a bare JupyterHub.

    .venv/bin/python benchmarks/hub_load.py                      # 50 students, 4 at a time, PAM reference
    .venv/bin/python benchmarks/hub_load.py -n 10 --concurrency 2
    .venv/bin/python benchmarks/hub_load.py --reference dummy    # reference checks no password

Each simulated student logs in through the login form, starts a server through the REST API,
waits until the hub reports it ready, opens a kernel, executes one cell over the kernel websocket,
and stops the server (waiting until the hub has stopped it). This is done against two hubs, one
after the other, each on random loopback ports with a temporary data folder:

* **ours**: hub_config/jupyterhub_config.py with a temporary platform YAML ($AICOURSE_CONFIG) that
  is hub_config/platform.yaml with the course's students replaced by the N simulated ones
  (``bench-<random>-NNN``); their passwords are read from the hub's first-start output, as an
  instructor reads them. As root it runs with ``spawner.mode: auto``, as ``make hub`` does, i.e.
  the secure mode: every student's server runs as a system account ``jupyter-<name>`` in a cgroup
  with the student profile's limits. Otherwise it runs the demo mode (one OS user).
* **bare (reference)**: a plain JupyterHub with a trivial config written to a temporary folder,
  and **the same spawner** as ours, so that what differs is the hub's own work (authenticator,
  pre-spawn hook, services, roles, the servers' configuration): as root our SecureSpawner
  (grader/hub/spawn/local_spawner.py), with the limits our hub gives a student (the platform YAML's
  first profile without groups: cpu_limit, mem_limit, max_tasks) and the same cgroup enforcement;
  otherwise SimpleLocalProcessSpawner. Both hubs start the same single-user command
  (``grader.hub.spawn.servers.singleuser_command``) with the same http/start timeouts; the bare hub's
  servers get no ``JUPYTER_CONFIG_PATH``, so they load every installed server extension, as a bare
  hub's do. What checks the passwords depends on --reference:

  - ``pam`` (default): nothing is configured, so JupyterHub uses its default authenticator,
    PAMAuthenticator, as a JupyterHub installed and started out of the box does. Its users are
    OS accounts, so the N simulated students are created as real ones, named
    ``hubload-<random>-NN`` (no home folder, shell /usr/sbin/nologin, random passwords set with
    chpasswd, hashed with whatever the system's PAM password stack uses: yescrypt on Debian 12),
    and every login checks one such hash through PAM. This needs root; the script refuses
    to run otherwise. The only other authenticator setting is ``allow_all = True``: since
    JupyterHub 5 a hub with no allow rule lets nobody in, so an out-of-the-box hub needs this one
    line (or a user list) before anyone can log in; it does not change how passwords are checked.
  - ``dummy``: JupyterHub's DummyAuthenticator with one shared password, which checks nothing
    (no hash, no OS account); a lower bound for the login time of any hub with real passwords.

Every account the run creates is deleted at the end (userdel), also on errors, Ctrl-C or SIGTERM:
the reference's ``hubload-<random>-NN`` and, in the secure mode, the spawner's
``jupyter-bench-<random>-NNN`` and ``jupyter-hubload-<random>-NN`` with their cgroups. The secure
mode needs the interpreter reachable by other accounts: while the hubs run, the folders above it
get o+x (``reachable_by_others``: both hubs then run the same interpreter; our hub alone would run
its copy, grader.hub.spawn.users_python), and the repository's
``assignments/`` folder, which our hub makes private, gets its mode back afterwards.

Before the hubs start, the script measures one server's start-up CPU, a student's server as our
hub starts it vs a bare JupyterLab (benchmarks/server_startup.py, ``--startup-repeat`` starts of
each; 0 skips it). Each hub is left to settle after it starts (its services, e.g. the formgrader,
start with it) before the students begin.

Concurrency is bounded by a thread pool (--concurrency); every request has a timeout and every
polling loop is bounded in count and time. The script prints the spawner and limits, which
reference it used, p50/p95 of login time and of spawn-to-ready time for each hub, error counts per
stage, and the ratio ours/bare for p50 and p95. Both hubs are stopped by process group at the end,
also on errors or Ctrl-C, and anything they left running in the temporary folder is stopped by
pid. Exit status: 0 when the target is met, 1 when any student saw an error, 2 when there was no
error but a ratio is above the target.

Target: no errors on either hub, and ours/bare at most 1.1 for the p50 and p95 of both login and
spawn-to-ready time. Each of our logins checks one Argon2id hash at OWASP's minimum cost
(grader/hub/auth/accounts.py; ~17 ms of one core on the 2-core development machine, where the scrypt it
replaced took ~130 ms); the script prints that hash's time on the machine it ran on, and, with the
PAM reference, the time of one PAM password check there, so the two checks can be compared
directly. Against ``dummy`` our Argon2id check is extra cost no other change can remove.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import requests
import websocket
import yaml
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from server_startup import StartCost, startup_costs, summary_lines, tree_cpu_seconds  # noqa: E402

from grader.hub.auth.accounts import ARGON2_PARAMS, hash_password  # noqa: E402
from grader.hub.spawn.isolation import account_name  # noqa: E402
from grader.hub.spawn.limits import ServerGroup, detect_enforcement  # noqa: E402
from grader.hub.spawn.servers import singleuser_command  # noqa: E402  (the exact command our hub spawns)
from grader.resources import ASSIGNMENTS_SOURCE_DIR, HUB_CONFIG_DIR  # noqa: E402
from tests.support.hubfixture import RunningHub, _wait_until_up, free_port, start_hub, stop_hub  # noqa: E402

REQUEST_TIMEOUT = 30  # seconds, for every single HTTP request
POLL_INTERVAL = 0.25  # seconds between readiness / stop polls
READY_TIMEOUT = 240  # seconds a spawn may take before it counts as an error
STOP_TIMEOUT = 90
CELL = "sum(i * i for i in range(4))"
CELL_RESULT = "14"
TARGET_RATIO = 1.1
SETTLE_CPU_S = 0.1  # a hub has settled once its process tree uses less CPU than this in a second
SETTLE_TIMEOUT = 120


@dataclass
class Result:
    user: str
    login_s: float | None = None
    spawn_s: float | None = None
    cell_s: float | None = None
    error_stage: str | None = None
    error: str = ""


@dataclass
class Run:
    label: str
    results: list[Result] = field(default_factory=list)
    wall_s: float = 0.0


# --- one simulated student ---------------------------------------------------------------------


def timed_login(url: str, username: str, password: str) -> tuple[requests.Session, float]:
    session = requests.Session()
    start = time.perf_counter()
    session.get(f"{url}/hub/login", timeout=REQUEST_TIMEOUT).raise_for_status()
    response = session.post(
        f"{url}/hub/login",
        data={"username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")},
        allow_redirects=False,
        timeout=REQUEST_TIMEOUT,
    )
    elapsed = time.perf_counter() - start
    if response.status_code != 302:
        raise RuntimeError(f"login answered {response.status_code}")
    return session, elapsed


def token_for(url: str, session: requests.Session, username: str) -> str:
    response = session.post(
        f"{url}/hub/api/users/{username}/tokens",
        json={"note": "hub_load benchmark", "expires_in": 3600},
        headers={"X-XSRFToken": session.cookies.get("_xsrf")},
        timeout=REQUEST_TIMEOUT,
    )
    response.raise_for_status()
    return response.json()["token"]


def _user_model(url: str, username: str, headers: dict) -> dict:
    response = requests.get(f"{url}/hub/api/users/{username}", headers=headers, timeout=REQUEST_TIMEOUT)
    response.raise_for_status()
    return response.json()


def timed_spawn(url: str, username: str, headers: dict) -> float:
    """Seconds from the start request until the hub reports the server ready."""
    start = time.perf_counter()
    response = requests.post(f"{url}/hub/api/users/{username}/server", headers=headers, timeout=REQUEST_TIMEOUT)
    if response.status_code not in (201, 202):
        raise RuntimeError(f"start answered {response.status_code}: {response.text[:200]}")
    deadline = time.monotonic() + READY_TIMEOUT
    for _ in range(int(READY_TIMEOUT / POLL_INTERVAL) + 1):
        if time.monotonic() > deadline:
            break
        user = _user_model(url, username, headers)
        server = user.get("servers", {}).get("")
        if server and server.get("ready"):
            return time.perf_counter() - start
        if not server and not user.get("pending") and response.status_code == 202 and time.perf_counter() - start > 5:
            raise RuntimeError("spawn failed: server gone and nothing pending")
        time.sleep(POLL_INTERVAL)
    raise TimeoutError(f"server not ready after {READY_TIMEOUT}s")


def execute_cell(url: str, username: str, headers: dict, code: str = CELL, timeout: float = 60) -> float:
    """Open a kernel, run one cell over its websocket, check the result; return the seconds it took."""
    base = f"{url}/user/{username}"
    start = time.perf_counter()
    kernel = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"}, timeout=REQUEST_TIMEOUT)
    if kernel.status_code != 201:
        raise RuntimeError(f"kernel start answered {kernel.status_code}: {kernel.text[:200]}")
    ws_url = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel.json()['id']}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: {headers['Authorization']}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": username,
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False},
        }))
        deadline = time.monotonic() + timeout
        for _ in range(10_000):  # a bounded number of messages, and a bounded time
            if time.monotonic() > deadline:
                break
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if message["msg_type"] == "execute_result":
                result = message["content"]["data"]["text/plain"]
                if result != CELL_RESULT:
                    raise RuntimeError(f"cell returned {result!r}")
                return time.perf_counter() - start
            if message["msg_type"] == "error":
                raise RuntimeError(f"kernel error {message['content']['ename']}: {message['content']['evalue']}")
        raise TimeoutError("no execute_result")
    finally:
        ws.close()


def stop_and_wait(url: str, username: str, headers: dict) -> None:
    response = requests.delete(f"{url}/hub/api/users/{username}/server", headers=headers, timeout=REQUEST_TIMEOUT)
    if response.status_code not in (202, 204):
        raise RuntimeError(f"stop answered {response.status_code}: {response.text[:200]}")
    deadline = time.monotonic() + STOP_TIMEOUT
    for _ in range(int(STOP_TIMEOUT / POLL_INTERVAL) + 1):
        if time.monotonic() > deadline:
            break
        user = _user_model(url, username, headers)
        if not user.get("servers") and not user.get("pending"):
            return
        time.sleep(POLL_INTERVAL)
    raise TimeoutError(f"server not stopped after {STOP_TIMEOUT}s")


def one_student(url: str, username: str, password: str) -> Result:
    result = Result(username)
    stage = "login"
    headers: dict = {}
    started = False
    try:
        session, result.login_s = timed_login(url, username, password)
        stage = "token"
        headers = {"Authorization": f"token {token_for(url, session, username)}"}
        stage = "spawn"
        started = True
        result.spawn_s = timed_spawn(url, username, headers)
        stage = "cell"
        result.cell_s = execute_cell(url, username, headers)
        stage = "stop"
        started = False
        stop_and_wait(url, username, headers)
    except Exception as error:  # counted, reported, and the run goes on
        result.error_stage, result.error = stage, f"{type(error).__name__}: {error}"
        if started and headers:
            try:  # do not leave a server behind after a failed cell
                stop_and_wait(url, username, headers)
            except Exception:
                pass
    return result


def run_students(label: str, url: str, passwords: dict[str, str], concurrency: int) -> Run:
    run = Run(label)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(one_student, url, user, password) for user, password in passwords.items()]
        for future in tqdm(as_completed(futures), total=len(futures), desc=label, unit="student"):
            run.results.append(future.result())
    run.wall_s = time.perf_counter() - start
    return run


# --- the two hubs ------------------------------------------------------------------------------


def student_names(n: int, tag: str) -> list[str]:
    """Our hub's simulated students; ``tag`` is random per run, so their accounts are this run's only."""
    return [f"bench-{tag}-{i:03d}" for i in range(1, n + 1)]


@dataclass
class Spawning:
    """How both hubs start servers: the spawner, and in the secure mode its enforcement and limits."""

    mode: str  # "secure" (as root) or "demo"
    enforcement: str = ""  # cgroup1, cgroup2 or systemd (grader.hub.spawn.limits.detect_enforcement)
    limits: dict = field(default_factory=dict)  # cpu_limit, mem_limit, max_tasks

    def description(self) -> str:
        if self.mode == "secure":
            return (f"SecureSpawner on both hubs (accounts jupyter-<name>, {self.enforcement}), a student's limits: "
                    + ", ".join(f"{key} {value}" for key, value in self.limits.items()))
        return "demo mode (one OS user): SimpleLocalProcessSpawner on both hubs"


def platform_yaml() -> dict:
    return yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())


def student_limits(platform: dict) -> dict:
    """What our hub gives a student: the first profile open to everyone (grader.hub.spawn.profiles: the
    default of a user in no group), with spawner.max_tasks where it names none."""
    profile = next(p for p in platform.get("profiles", {}).values() if not p.get("groups") and not p.get("gpus"))
    return {"cpu_limit": profile.get("cpu_limit"), "mem_limit": profile.get("mem_limit"),
            "max_tasks": profile.get("max_tasks") or (platform.get("spawner") or {}).get("max_tasks") or 1024}


def spawning_here() -> Spawning:
    """Secure as root (what ``spawner.mode: auto`` chooses), demo otherwise."""
    if os.geteuid() != 0:
        return Spawning("demo")
    enforcement = detect_enforcement()
    if enforcement is None:
        raise SystemExit("running as root, so our hub runs the secure mode, which needs cgroups or systemd; "
                         "this machine offers none writable")
    return Spawning("secure", enforcement, student_limits(platform_yaml()))


@contextlib.contextmanager
def reachable_by_others(path: Path) -> Iterator[None]:
    """Let other accounts reach ``path`` (e.g. a Python under /root, 0700) while the block runs:
    the folders above it that others cannot enter get o+x (traversal, not listing), then their
    modes back. The bare reference hub has no copy of the interpreter to run instead."""
    from grader.hub.spawn.isolation import blocked_ancestor
    changed = []
    try:
        while (folder := blocked_ancestor(path)) is not None:
            changed.append((folder, stat.S_IMODE(folder.stat().st_mode)))
            os.chmod(folder, changed[-1][1] | stat.S_IXOTH)
        yield
    finally:
        for folder, mode in reversed(changed):
            os.chmod(folder, mode)


@contextlib.contextmanager
def secure_mode_machine(spawning: Spawning) -> Iterator[None]:
    """What the secure mode needs while the hubs run, undone after: the interpreter reachable by
    users' accounts, and the repository's assignments/ folder's mode, which
    our hub takes others' permissions off (grader.hub.spawn.isolation.harden_data_dir)."""
    if spawning.mode != "secure":
        yield
        return
    assignments = ASSIGNMENTS_SOURCE_DIR.parent
    assignments_mode = stat.S_IMODE(assignments.stat().st_mode)
    try:
        with reachable_by_others(Path(sys.executable)):
            yield
    finally:
        os.chmod(assignments, assignments_mode)


def remove_server_accounts(spawning: Spawning, users: Iterable[str]) -> list[str]:
    """The secure spawner's account ``jupyter-<name>`` of each hub user, with any cgroup a killed
    server left, deleted; the accounts that could not be."""
    if spawning.mode != "secure":
        return []
    names = [account_name(user) for user in users]
    for name in names:
        if spawning.enforcement in ("cgroup1", "cgroup2"):
            ServerGroup(name, version=1 if spawning.enforcement == "cgroup1" else 2).remove()
        subprocess.run(["userdel", name], capture_output=True, timeout=60)  # also its group
    existing = set(_accounts_with_prefix("jupyter-"))
    return [name for name in names if name in existing]


def settle(hub: RunningHub) -> float:
    """Wait until the hub's processes (the hub, its proxy and services) are about idle; the seconds
    waited. The services start with the hub, a formgrader taking seconds of CPU; students arriving
    meanwhile would be slowed by work that is not theirs."""
    start = time.monotonic()
    last = tree_cpu_seconds(hub.process.pid)
    while time.monotonic() - start < SETTLE_TIMEOUT:
        time.sleep(1)
        now = tree_cpu_seconds(hub.process.pid)
        if now - last < SETTLE_CPU_S:
            break
        last = now
    return time.monotonic() - start


def start_our_hub(work: Path, students: list[str], spawning: Spawning) -> tuple[RunningHub, dict[str, str]]:
    """Our configuration, with the course's students replaced by the simulated ones."""
    platform = platform_yaml()
    first_course = next(iter(platform["courses"].values()))
    first_course["students"] = students
    config_file = work / "platform.yaml"
    config_file.write_text(yaml.safe_dump(platform, sort_keys=False))
    previous = os.environ.get("AICOURSE_CONFIG")
    os.environ["AICOURSE_CONFIG"] = str(config_file)
    try:
        # auto: secure as root, as `make hub` has it (the fixture's "demo" is for tests as root)
        hub = start_hub(work / "ours-data", timeout=180, spawner_mode="auto" if spawning.mode == "secure" else "demo")
    finally:
        if previous is None:
            os.environ.pop("AICOURSE_CONFIG", None)
        else:
            os.environ["AICOURSE_CONFIG"] = previous
    missing = [name for name in students if name not in hub.passwords]
    if missing:
        stop_hub(hub)
        raise RuntimeError(f"no first-start password printed for {missing[:5]} ({len(missing)} in all)")
    return hub, {name: hub.passwords[name] for name in students}


BARE_CONFIG = """\
# REFERENCE ONLY: a bare JupyterHub for the hub_load benchmark, not a configuration to deploy.
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "http://127.0.0.1:{port}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = {pid_file!r}
c.JupyterHub.db_url = "sqlite:///{data_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {cookie_file!r}
{authenticator}
{spawner}
c.Spawner.cmd = {cmd!r}
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 180
"""

DEMO_SPAWNER = """\
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = {homes!r} + "/{{username}}"
"""

# Our spawner, set as grader/hub/config.py (update_spawner) sets it, and the limits our profiles
# give a student's server (grader/hub/spawn/profiles.py, apply_user_options).
SECURE_SPAWNER = """\
c.JupyterHub.spawner_class = "grader.hub.spawn.local_spawner.SecureSpawner"
c.SecureSpawner.homes_dir = {homes!r}
c.SecureSpawner.enforcement = {enforcement!r}
c.SecureSpawner.default_max_tasks = {max_tasks!r}
c.Spawner.cpu_limit = {cpu_limit!r}
c.Spawner.mem_limit = {mem_limit!r}
"""


def bare_spawner_lines(spawning: Spawning, homes: Path) -> str:
    if spawning.mode == "secure":
        return SECURE_SPAWNER.format(homes=str(homes), enforcement=spawning.enforcement, **spawning.limits).rstrip()
    return DEMO_SPAWNER.format(homes=str(homes)).rstrip()


# Since JupyterHub 5 a hub without any allow rule admits nobody; this is the one line an
# out-of-the-box hub needs, and it leaves the password check to the authenticator.
PAM_AUTHENTICATOR = """\
# authenticator_class left at JupyterHub's default: PAMAuthenticator (OS accounts, PAM 'login').
c.Authenticator.allow_all = True"""

DUMMY_AUTHENTICATOR = """\
# DummyAuthenticator lets anyone in with the shared password below: no password is checked.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allow_all = True"""


def start_bare_hub(work: Path, authenticator: str, spawning: Spawning) -> RunningHub:
    """The reference: a plain JupyterHub, same spawner and command, the given authenticator lines."""
    data_dir = work / "bare-data"
    (data_dir / "homes").mkdir(parents=True, exist_ok=True)
    port = free_port()
    config_file = work / "bare_jupyterhub_config.py"
    config_file.write_text(BARE_CONFIG.format(
        port=port, hub_port=free_port(), proxy_api_port=free_port(), pid_file=str(data_dir / "proxy.pid"),
        data_dir=data_dir, cookie_file=str(data_dir / "jupyterhub_cookie_secret"), authenticator=authenticator,
        spawner=bare_spawner_lines(spawning, data_dir / "homes"), cmd=singleuser_command(),
    ))
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(REPO / "node_modules" / ".bin"), str(Path(sys.executable).parent), env.get("PATH", "")])
    log_path = data_dir / "hub.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config_file)],
            cwd=data_dir, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one by stop_hub
        )
    hub = RunningHub(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, data_dir=data_dir)
    try:
        _wait_until_up(hub, 180)
    except Exception:
        stop_hub(hub)
        raise
    return hub


# --- the reference's users ---------------------------------------------------------------------


@dataclass
class Reference:
    """Who logs in to the bare hub and how it checks them; made by ``reference_users``."""

    kind: str  # "pam" or "dummy"
    authenticator: str  # the config lines for BARE_CONFIG
    passwords: dict[str, str]
    description: str


# What an /etc/shadow hash's prefix says about its method (crypt(5)).
CRYPT_METHODS = {"$y$": "yescrypt", "$gy$": "gost-yescrypt", "$7$": "scrypt", "$2b$": "bcrypt",
                 "$2y$": "bcrypt", "$6$": "sha512crypt", "$5$": "sha256crypt", "$1$": "md5crypt"}


def shadow_hash_method(username: str) -> str:
    """The crypt method (and its parameter field) of an account's hash in /etc/shadow."""
    for line in Path("/etc/shadow").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == username:
            hashed = fields[1]
            for prefix, name in CRYPT_METHODS.items():
                if hashed.startswith(prefix):
                    parameters = hashed[len(prefix):].split("$")[0] if prefix in ("$y$", "$gy$", "$7$") else ""
                    return f"{name} ({prefix}{parameters + '$' if parameters else ''}...)"
            return f"unknown ({hashed[:4]}...)"
    raise LookupError(f"{username} not in /etc/shadow")


def _run_checked(command: list[str], *, stdin: str | None = None) -> None:
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")


def _accounts_with_prefix(prefix: str) -> list[str]:
    return [line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines() if line.startswith(prefix)]


def delete_os_accounts(prefix: str, created: list[str]) -> list[str]:
    """userdel every account this run created, and any other with its unique prefix; the ones left."""
    for name in dict.fromkeys(created + _accounts_with_prefix(prefix)):
        subprocess.run(["userdel", name], capture_output=True, timeout=60)  # also removes its group
    return _accounts_with_prefix(prefix)


def pam_check_seconds(username: str, password: str, repeat: int = 20) -> float:
    """Median time of one PAM password check (service 'login', as PAMAuthenticator does) here."""
    import pamela

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        pamela.authenticate(username, password, service="login")
        times.append(time.perf_counter() - start)
    return percentile(times, 50)


@contextlib.contextmanager
def reference_users(kind: str, n: int) -> Iterator[Reference]:
    """The bare hub's students: throw-away OS accounts for PAM (deleted on leaving), or dummy names."""
    if kind == "dummy":
        password = secrets.token_urlsafe(12)  # shared by every simulated student of the reference only
        yield Reference(kind, DUMMY_AUTHENTICATOR.format(password=password),
                        {name: password for name in student_names(n)},
                        "DummyAuthenticator, one shared password, no password check")
        return
    prefix = f"hubload-{secrets.token_hex(4)}-"  # unique, so no other account is ever touched
    width = max(2, len(str(n)))
    created: list[str] = []
    try:
        passwords = {f"{prefix}{i:0{width}d}": secrets.token_urlsafe(16) for i in range(1, n + 1)}
        for name in passwords:
            _run_checked(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name])
            created.append(name)
        _run_checked(["chpasswd"], stdin="".join(f"{name}:{password}\n" for name, password in passwords.items()))
        first, first_password = next(iter(passwords.items()))
        import pamela

        try:  # the hub would only fail later, at every login
            pamela.authenticate(first, first_password, service="login")
        except pamela.PAMError as error:
            raise RuntimeError(f"PAM does not accept the new account {first} here: {error}") from error
        yield Reference("pam", PAM_AUTHENTICATOR, passwords,
                        f"PAMAuthenticator (JupyterHub's default), {n} OS accounts {prefix}NN, "
                        f"/etc/shadow hashes: {shadow_hash_method(first)}")
    finally:
        left = delete_os_accounts(prefix, created)
        if left:
            print(f"WARNING: could not delete OS accounts {left}; remove them with userdel", file=sys.stderr)


# --- figures -----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figures(run: Run) -> dict:
    def of(attr):
        values = [getattr(r, attr) for r in run.results if getattr(r, attr) is not None]
        return {"p50": percentile(values, 50), "p95": percentile(values, 95), "n": len(values)}

    errors: dict[str, int] = {}
    for r in run.results:
        if r.error_stage:
            errors[r.error_stage] = errors.get(r.error_stage, 0) + 1
    return {"login": of("login_s"), "spawn": of("spawn_s"), "cell": of("cell_s"), "errors": errors,
            "wall": run.wall_s}


def _fmt(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f}"


def stop_leftovers(work: Path) -> list[int]:
    """SIGKILL processes still running in the benchmark's folder after the hubs stopped; their pids.

    The hub starts its proxy and services (the idle culler) in sessions of their own, so killing
    the hub's process group misses them if the hub's own cleanup did not finish; once a culler was
    seen outliving its hub. Everything running with its working directory under ``work`` was
    started by this benchmark's hubs.
    """
    work, killed = work.resolve(), []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = Path(os.readlink(proc / "cwd").removesuffix(" (deleted)"))
        except OSError:
            continue
        if cwd == work or work in cwd.parents:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
            except ProcessLookupError:
                pass
    return killed


def password_check_seconds(repeat: int = 20) -> float:
    """Median time of one password hash with our parameters, here: the floor of our login's extra cost."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        hash_password("benchmark-password")
        times.append(time.perf_counter() - start)
    return percentile(times, 50)


def startup_lines(costs: dict[str, list[StartCost]] | None) -> list[str]:
    if not costs:
        return ["one server's start-up CPU: not measured (--startup-repeat 0)"]
    repeat = len(next(iter(costs.values())))
    return [f"one server's start-up CPU, user+sys until it answers (benchmarks/server_startup.py, {repeat} starts "
            f"each; student: as our hub starts it, bare: a bare JupyterLab):", *summary_lines(costs)]


def report(ours: Run, bare: Run, concurrency: int, reference: Reference, reference_check_s: float | None,
           spawning: Spawning, startup: dict[str, list[StartCost]] | None) -> tuple[int, int]:
    """Print the figures; (errors, ratios above the target)."""
    fo, fb = figures(ours), figures(bare)
    n = len(ours.results)
    print(f"\nspawner: {spawning.description()}")
    print(f"reference (bare): {reference.description}")
    print(f"{n} students per hub, {concurrency} at a time (seconds)")
    print(f"{'':28}{'ours':>16}{'bare (ref.)':>16}{'ours/bare':>16}")
    over = 0
    for metric, name in [("login", "login"), ("spawn", "spawn-to-ready"), ("cell", "kernel + one cell")]:
        for q in ("p50", "p95"):
            a, b = fo[metric][q], fb[metric][q]
            ratio = a / b if a is not None and b else None
            print(f"{name + ' ' + q:28}{_fmt(a):>16}{_fmt(b):>16}{(f'{ratio:.2f}' if ratio else 'n/a'):>16}")
            if metric in ("login", "spawn") and (ratio is None or ratio > TARGET_RATIO):
                over += 1
    print(f"{'wall time':28}{_fmt(fo['wall']):>16}{_fmt(fb['wall']):>16}")
    errors = 0
    for label, run, f in [("ours", ours, fo), ("bare", bare, fb)]:
        total = sum(f["errors"].values())
        detail = ", ".join(f"{stage}: {count}" for stage, count in sorted(f["errors"].items())) or "none"
        print(f"errors {label}: {total} ({detail})")
        for r in [r for r in run.results if r.error_stage][:5]:
            print(f"  {r.user} at {r.error_stage}: {r.error[:300]}")
        errors += total
    # Each of our logins checks one Argon2id hash (OWASP's minimum); the PAM reference checks one
    # /etc/shadow hash, the dummy one none (then ours is a floor under ours/bare nothing can remove).
    params = ", ".join(f"{key}={value}" for key, value in ARGON2_PARAMS.items())
    bare_check = ("the bare hub checks none" if reference_check_s is None else
                  f"one PAM check of the bare hub takes {reference_check_s:.3f} s")
    print(f"one password check of ours (Argon2id {params}) takes {password_check_seconds():.3f} s on this machine "
          f"now; {bare_check}")
    print("\n".join(startup_lines(startup)))
    met = errors == 0 and over == 0
    print(f"target (no errors, ours/bare <= {TARGET_RATIO} for login and spawn p50/p95): {'met' if met else 'NOT met'}")
    return errors, over


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--students", type=int, default=50, help="simulated students per hub (default 50)")
    parser.add_argument("--concurrency", type=int, default=4, help="students at a time (default 4)")
    parser.add_argument("--reference", choices=["pam", "dummy"], default="pam",
                        help="bare hub's authenticator: pam (JupyterHub's default, real OS accounts, needs root; "
                             "default) or dummy (no password check, a lower bound)")
    parser.add_argument("--startup-repeat", type=int, default=3,
                        help="server starts of each kind for the start-up CPU figure (default 3; 0 skips it)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (hub logs) and print it")
    args = parser.parse_args(argv)
    if args.students < 1 or args.concurrency < 1 or args.startup_repeat < 0:
        parser.error("-n and --concurrency must be at least 1, --startup-repeat at least 0")
    if args.reference == "pam" and os.geteuid() != 0:
        parser.error("--reference pam creates and deletes throw-away OS accounts (useradd/userdel), which needs "
                     "root; run it as root, or choose --reference dummy (a reference that checks no password)")
    # SIGINT, SIGTERM and a hangup unwind, so the finally blocks stop the hubs and delete the OS
    # accounts; SIGINT explicitly, as a shell starts background jobs with it ignored (a hangup
    # ignored on purpose, as by nohup, stays ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, lambda signum, frame: sys.exit(128 + signum))

    spawning = spawning_here()
    students = student_names(args.students, secrets.token_hex(3))
    work = Path(tempfile.mkdtemp(prefix="hub-load-"))
    if spawning.mode == "secure":
        os.chmod(work, 0o755)  # users' accounts must reach their homes below it (mkdtemp gives 0700)
    started = time.perf_counter()
    runs: dict[str, Run] = {}
    reference_check_s = None
    startup = None
    try:
        # Before the hubs, on a machine without them: what one server's start costs.
        if args.startup_repeat:
            startup = startup_costs(("student", "bare"), args.startup_repeat)
            print("\n".join(startup_lines(startup)), flush=True)
        # the reference's accounts first: a PAM that does not work stops the run before it starts
        with reference_users(args.reference, args.students) as reference:
            print(f"spawner: {spawning.description()}\nreference (bare): {reference.description}", flush=True)
            try:
                with secure_mode_machine(spawning):
                    hub, passwords = start_our_hub(work, students, spawning)
                    try:
                        settle(hub)
                        runs["ours"] = run_students("ours", hub.url, passwords, args.concurrency)
                    finally:
                        stop_hub(hub)
                    hub = start_bare_hub(work, reference.authenticator, spawning)
                    try:
                        settle(hub)
                        runs["bare"] = run_students("bare", hub.url, reference.passwords, args.concurrency)
                    finally:
                        stop_hub(hub)
            finally:
                # userdel refuses an account with processes: whatever the hubs left goes first
                leftovers = stop_leftovers(work)
                if leftovers:
                    print(f"stopped {len(leftovers)} process(es) the hubs left running: {leftovers}")
                left = remove_server_accounts(spawning, [*students, *reference.passwords])
                if left:
                    print(f"WARNING: could not delete the accounts {left}; remove them with userdel", file=sys.stderr)
            if reference.kind == "pam":
                reference_check_s = pam_check_seconds(*next(iter(reference.passwords.items())))
    finally:
        stop_leftovers(work)
        if args.keep:
            print(f"hub logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    errors, over = report(runs["ours"], runs["bare"], args.concurrency, reference, reference_check_s, spawning, startup)
    print(f"total run time {time.perf_counter() - started:.0f} s")
    return 1 if errors else 2 if over else 0


if __name__ == "__main__":
    sys.exit(main())
