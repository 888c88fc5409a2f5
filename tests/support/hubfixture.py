"""A real JupyterHub, started from hub_config/ (or another config) on random loopback ports with a temporary data folder.

The hub prints the first-start passwords once on its console; tests read them from there, as a
newcomer reads them from the terminal. Teardown stops the hub (which stops the servers it spawned)
and then the whole process group, by its id, so nothing is left running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import yaml

from grader.resources import HUB_CONFIG_DIR, REPO_ROOT

PASSWORD_LINE = re.compile(r"user: (\S+)\s+password: (\S+)")


@contextmanager
def users_python_copies():
    """Where a hub (or the home preparation) puts the interpreter users' accounts run when its own
    is out of their reach (a Python under /root, 0700; grader.hub.spawn.users_python): a throw-away
    folder instead of /opt/aicourse, removed after the block."""
    from grader.hub.spawn.users_python import ROOT_ENV

    folder = Path(tempfile.mkdtemp(prefix="aicourse-python-"))
    os.chmod(folder, 0o755)
    old = os.environ.get(ROOT_ENV)
    os.environ[ROOT_ENV] = str(folder)
    try:
        yield folder
    finally:
        if old is None:
            os.environ.pop(ROOT_ENV, None)
        else:
            os.environ[ROOT_ENV] = old
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class RunningHub:
    url: str
    process: subprocess.Popen
    log_path: Path
    data_dir: Path
    passwords: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_until_up(hub: RunningHub, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub.process.poll() is not None:
            raise RuntimeError(f"hub exited with {hub.process.returncode}:\n{hub.log()[-4000:]}")
        try:
            if requests.get(f"{hub.url}/hub/api", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"hub not up after {timeout}s:\n{hub.log()[-4000:]}")


def _yaml_names_exchange_port(environ) -> bool:
    """Whether the test's platform YAML fixes the exchange service's port itself."""
    config = environ.get("AICOURSE_CONFIG")
    if not config:
        return False
    return "service_port" in ((yaml.safe_load(Path(config).read_text()) or {}).get("exchange") or {})


def start_hub(data_dir: Path, *, timeout: float = 120, spawner_mode: str = "demo",
              extra_env: dict[str, str] | None = None, python: Path = Path(sys.executable),
              config_file: Path = HUB_CONFIG_DIR / "jupyterhub_config.py", cwd: Path | None = None) -> RunningHub:
    """Start the hub. ``spawner_mode="demo"`` (most tests): as root too, through the test-only
    ``spawner.allow_root_demo``; tests/hub/spawn/test_secure_mode.py asks for "auto" (secure as root).

    ``python``, ``config_file`` and ``cwd`` (default: the data folder) let a test run another
    installation (tests/integration/test_wheel.py: a wheel in a fresh venv) with its own config."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        AICOURSE_DATA_DIR=str(data_dir),
        AICOURSE_PORT=str(port),
        AICOURSE_HUB_PORT=str(free_port()),
        AICOURSE_PROXY_API_PORT=str(free_port()),
        AICOURSE_FORMGRADER_PORT=str(free_port()),
        AICOURSE_SPAWNER_MODE=spawner_mode,
        PATH=f"{REPO_ROOT / 'node_modules' / '.bin'}{os.pathsep}{Path(python).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    if spawner_mode == "demo" and os.geteuid() == 0:
        env["AICOURSE_ALLOW_ROOT_DEMO"] = "1"
    # The HTTP exchange is the default: each hub's service on a port of its own.
    if not _yaml_names_exchange_port(env):
        env["AICOURSE_EXCHANGE_PORT"] = str(free_port())
    env.update(extra_env or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "hub.log"
    log_file = open(log_path, "w")
    process = subprocess.Popen(
        [str(python), "-m", "jupyterhub", "-f", str(config_file)],
        cwd=cwd or data_dir,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so teardown can stop every child
    )
    log_file.close()
    hub = RunningHub(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, data_dir=data_dir)
    try:
        _wait_until_up(hub, timeout)
    except Exception:
        stop_hub(hub)
        raise
    hub.passwords = dict(PASSWORD_LINE.findall(hub.log()))
    return hub


def _process_tree(root: int) -> list[psutil.Process]:
    """``root``'s descendants, by parent pid. The hub starts its proxy, services and servers in
    sessions of their own, so its process group does not hold them."""
    try:
        return psutil.Process(root).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def stop_hub(hub: RunningHub, timeout: float = 30) -> None:
    """SIGTERM the hub (it stops its servers, services and proxy), then SIGKILL whatever it started
    that is still there: its process group, and every process below it, by pid."""
    pgid = hub.process.pid  # start_new_session made the hub its group's leader
    started = _process_tree(hub.process.pid)  # before the hub exits and they are re-parented
    if hub.process.poll() is None:
        hub.process.send_signal(signal.SIGTERM)
        try:
            hub.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for process in started:
        try:
            process.kill()  # psutil first checks it is the same process, not a new one given its pid
        except psutil.NoSuchProcess:
            pass
    hub.process.wait()


def login(hub: RunningHub, username: str, password: str | None = None) -> requests.Session:
    """Log in through the login form, as a browser does; return the session with its cookies."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login").raise_for_status()
    response = session.post(
        f"{hub.url}/hub/login",
        data={"username": username, "password": password or hub.passwords[username], "_xsrf": session.cookies.get("_xsrf")},
        allow_redirects=False,
    )
    assert response.status_code == 302, f"login of {username} answered {response.status_code}"
    return session


def api_token(hub: RunningHub, session: requests.Session, username: str) -> str:
    """Ask the hub for an API token with the logged-in session, as the token page does."""
    response = session.post(
        f"{hub.url}/hub/api/users/{username}/tokens",
        json={"note": "test", "expires_in": 3600},
        headers={"X-XSRFToken": session.cookies.get("_xsrf")},
    )
    response.raise_for_status()
    return response.json()["token"]


def start_server(hub: RunningHub, username: str, token: str, timeout: float = 180) -> None:
    headers = {"Authorization": f"token {token}"}
    response = requests.post(f"{hub.url}/hub/api/users/{username}/server", headers=headers)
    assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        user = requests.get(f"{hub.url}/hub/api/users/{username}", headers=headers).json()
        server = user.get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(1)
    raise TimeoutError(f"{username}'s server not ready after {timeout}s")


def wait_until_stopped(hub: RunningHub, username: str, token: str, timeout: float = 60) -> None:
    """A stop answered 202 may still be pending; a start during it is refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        user = requests.get(f"{hub.url}/hub/api/users/{username}", headers={"Authorization": f"token {token}"}).json()
        if not user.get("servers") and not user.get("pending"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{username}'s server still running after {timeout}s")


def stop_server(hub: RunningHub, username: str, token: str) -> None:
    """Stop the user's server and wait until the hub has stopped it."""
    response = requests.delete(f"{hub.url}/hub/api/users/{username}/server", headers={"Authorization": f"token {token}"})
    assert response.status_code in (202, 204), response.text
    wait_until_stopped(hub, username, token)


def execute_cell(ws, code: str, timeout: float = 120) -> str | None:
    """Run one cell over the kernel's channels websocket; return its text/plain result (or None),
    raising on an error, once the kernel is idle again."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
    }))
    result, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "execute_result":
            result = message["content"]["data"]["text/plain"]
        if message["msg_type"] == "error":
            raise AssertionError(f"kernel error: {message['content']['ename']}: {message['content']['evalue']}")
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            return result
    raise TimeoutError(f"cell not finished after {timeout}s")
