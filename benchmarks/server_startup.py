"""Benchmark: the CPU one single-user server costs to start, ours vs a bare JupyterLab.

    .venv/bin/python benchmarks/server_startup.py                  # 5 starts of each, alternating
    .venv/bin/python benchmarks/server_startup.py -n 9 --kinds student staff bare
    .venv/bin/python benchmarks/server_startup.py --importtime     # where a student's start goes

What is started: the command our hub spawns (``grader.hub.spawn.servers.singleuser_command``: this
interpreter, ``-m grader.hub.spawn.singleuser``, i.e. ``jupyterhub.singleuser`` with two eager imports
deferred) with the environment a JupyterHub spawner gives it: the ``JUPYTERHUB_*`` variables (API
token, service URL and prefix, API and activity URLs, OAuth client, default URL
``/lab/tree/courses``), ``PATH``/``LANG`` as ``LocalProcessSpawner.env_keep`` passes them,
``HOME`` and the working directory set to a home the hub's pre-spawn hook has filled
(``grader.hub.spawn.homes.prepare_home``: the lessons and the nbgrader config for the HTTP exchange),
and the kind's ``JUPYTER_CONFIG_PATH``:

* ``student``: grader/hub/data/jupyter/student, what ``jupyter_config_path_for`` gives a student;
* ``staff``: grader/hub/data/jupyter/staff, what instructors and graders get;
* ``bare``: a bare JupyterLab as a bare JupyterHub with the same spawner starts it: JupyterHub's
  own ``-m jupyterhub.singleuser`` (what ``jupyterhub-singleuser`` runs), no
  ``JUPYTER_CONFIG_PATH``, so every server extension installed in this environment is enabled
  (``jupyter server extension list``);
* ``student-upstream``: the student configuration started by ``-m jupyterhub.singleuser``, to
  tell what the configuration saves from what the deferred imports save.

No hub is started: a few lines of HTTP in this process answer the two calls a server makes to its
hub while it starts (``GET /hub/api/`` for the version check that ``initialize`` waits for, and
the first activity ``POST``), so the server does the same work as in a real spawn and nothing
else; a hub's own CPU (spawner, proxy) is not the server's and is measured by
benchmarks/hub_load.py. Run as root, the server runs as root here (with ``--allow-root``, which
only lifts Jupyter Server's refusal), not as ``jupyter-<name>`` in a cgroup as the secure spawner
runs it; the account and the limits change who owns the CPU, not how much of it the start takes.

When the server is ready: JupyterHub counts a server as started when its URL answers HTTP at all
(``jupyterhub.utils.wait_for_http_server``). Here the probe is ``GET <prefix>api``, which the
server answers without asking the hub (no auth), every 20 ms. Jupyter Server binds its socket
only after it has loaded every extension (``ServerApp.initialize``) and answers once its event
loop runs, so the first answer comes when the start-up is over, as the hub sees it.

What is counted: the user+system CPU of the server process and every process below it, read from
``/proc/<pid>/stat`` at the moment of that first answer: ``utime + stime`` of the server and of
each descendant still running, plus ``cutime + cstime`` (the CPU of children already reaped).
Not ``getrusage(RUSAGE_CHILDREN)`` after stopping the server: that would add the shutdown (kernel
manager cleanup, extensions' stop hooks) and any idle ticks between ready and stop, which are not
start-up cost; /proc read at the ready moment is exactly the start. Resolution: one clock tick
(10 ms). CPU seconds rather than wall time, because other work on a shared machine stretches the
wall time of a start much more than its CPU time.

``--importtime`` runs one student start under ``python -X importtime`` and prints the slowest
top-level imports (cumulative microseconds), to see what is still loaded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from grader.hub.spawn.homes import prepare_home  # noqa: E402
from grader.hub.spawn.servers import STAFF_JUPYTER_CONFIG, STUDENT_JUPYTER_CONFIG, singleuser_command  # noqa: E402
from grader.resources import COURSES_DIR  # noqa: E402

KINDS = ("student", "staff", "bare", "student-upstream")
CONFIG_PATH_OF = {"student": str(STUDENT_JUPYTER_CONFIG), "staff": str(STAFF_JUPYTER_CONFIG), "bare": None,
                  "student-upstream": str(STUDENT_JUPYTER_CONFIG)}
UPSTREAM_COMMAND = [sys.executable, "-m", "jupyterhub.singleuser"]  # what `jupyterhub-singleuser` runs
READY_TIMEOUT = 120  # seconds
PROBE_INTERVAL = 0.02
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
USER = "startup-bench"


@dataclass
class StartCost:
    kind: str
    cpu_s: float  # user + system CPU of the server's process tree until it answered
    wall_s: float  # from exec to the first answer (stretched by anything else on the machine)


# --- a stand-in for the hub's API --------------------------------------------------------------


class _HubAPI(BaseHTTPRequestHandler):
    """Answers what a starting server asks its hub: the version check and activity reports."""

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", self.server.hub_version)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._answer(200, {"version": self.server.hub_version})

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, {})

    def log_message(self, *args):  # quiet
        pass


@contextmanager
def stand_in_hub():
    """A thread serving ``_HubAPI`` on a free loopback port; yields its base URL."""
    import jupyterhub

    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubAPI)
    server.hub_version = jupyterhub.__version__
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


# --- one server start --------------------------------------------------------------------------


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepared_home(root: Path) -> Path:
    """A home as the pre-spawn hook leaves it for a student of the first course."""
    home = root / USER
    home.mkdir(parents=True, exist_ok=True)
    course_ids = sorted(p.name for p in COURSES_DIR.iterdir() if p.is_dir())[:1] if COURSES_DIR.is_dir() else []
    prepare_home(home, username=USER, course_ids=course_ids, exchange_root=root / "exchange",
                 courses_dir=COURSES_DIR, exchange_url="http://127.0.0.1:9/services/exchange")
    return home


def server_env(kind: str, *, home: Path, port: int, hub_url: str) -> dict[str, str]:
    """The environment a LocalProcessSpawner gives the server (jupyterhub.spawner.Spawner.get_env)."""
    prefix = f"/user/{USER}/"
    env = {key: os.environ[key] for key in ("LANG", "LC_ALL", "LD_LIBRARY_PATH", "PATH", "PYTHONPATH",
                                            "VIRTUAL_ENV", "CONDA_ROOT", "CONDA_DEFAULT_ENV") if key in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
    token = secrets.token_hex(16)
    scopes = json.dumps([f"access:servers!server={USER}/", f"access:servers!user={USER}"])
    env.update(
        JUPYTERHUB_API_TOKEN=token, JPY_API_TOKEN=token,
        JUPYTERHUB_CLIENT_ID=f"jupyterhub-user-{USER}",
        JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED="0",
        JUPYTERHUB_HOST="",
        JUPYTERHUB_OAUTH_CALLBACK_URL=f"{prefix}oauth_callback",
        JUPYTERHUB_OAUTH_SCOPES=scopes, JUPYTERHUB_OAUTH_ACCESS_SCOPES=scopes,
        JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES="[]",
        JUPYTERHUB_USER=USER, JUPYTERHUB_SERVER_NAME="",
        JUPYTERHUB_API_URL=f"{hub_url}/hub/api",
        JUPYTERHUB_ACTIVITY_URL=f"{hub_url}/hub/api/users/{USER}/activity",
        JUPYTERHUB_BASE_URL="/",
        JUPYTERHUB_SERVICE_PREFIX=prefix,
        JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}{prefix}",
        JUPYTERHUB_PUBLIC_URL="", JUPYTERHUB_PUBLIC_HUB_URL="",
        JUPYTERHUB_DEFAULT_URL="/lab/tree/courses",  # c.Spawner.default_url in grader/hub/config.py
        USER=USER, HOME=str(home), SHELL="/bin/bash",
    )
    if CONFIG_PATH_OF[kind]:
        env["JUPYTER_CONFIG_PATH"] = CONFIG_PATH_OF[kind]
    return env


def _stat(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` fields after the command name (index 0 is field 3, the state)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of ``root`` and its live descendants, plus what their reaped children used."""
    parent_of: dict[int, int] = {}
    ticks_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            parent_of[int(entry)] = int(fields[1])
            # fields 14-17 of stat(5): utime, stime, cutime, cstime
            ticks_of[int(entry)] = sum(int(value) for value in fields[11:15])
    members, pending = {root}, [root]
    while pending:
        pid = pending.pop()
        for child, parent in parent_of.items():
            if parent == pid and child not in members:
                members.add(child)
                pending.append(child)
    return sum(ticks_of.get(pid, 0) for pid in members) / CLOCK_TICK


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer counts, as for the hub
    except OSError:
        return False


def command_for(kind: str) -> list[str]:
    """Ours, or JupyterHub's own entry point; ``--allow-root`` where this runs as root, nothing else."""
    ours = singleuser_command(as_root=True)
    if kind in ("bare", "student-upstream"):
        return [*UPSTREAM_COMMAND, *ours[3:]]
    return ours


def start_once(kind: str, *, work: Path, hub_url: str, python_flags: tuple[str, ...] = ()) -> tuple[StartCost, str]:
    """Start one server of ``kind``, wait for its first HTTP answer, read its CPU, stop it.

    Returns the cost and the server's log (stderr). The server runs in a session of its own and is
    stopped by its process group, so nothing it started stays behind.
    """
    home = prepared_home(work / kind)
    port = free_port()
    command = command_for(kind)
    command = [command[0], *python_flags, *command[1:]]
    log_path = work / f"{kind}-{port}.log"
    with open(log_path, "w") as log:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=server_env(kind, home=home, port=port, hub_url=hub_url), cwd=home,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        probe = f"http://127.0.0.1:{port}/user/{USER}/api"
        deadline = time.monotonic() + READY_TIMEOUT
        while not _answers(probe):
            if process.poll() is not None:
                raise RuntimeError(f"{kind} server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{kind} server not answering after {READY_TIMEOUT}s:\n{log_path.read_text()[-3000:]}")
            time.sleep(PROBE_INTERVAL)
        wall = time.perf_counter() - started
        cpu = tree_cpu_seconds(process.pid)
    finally:
        stop(process)
    return StartCost(kind, cpu, wall), log_path.read_text(errors="replace")


def stop(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM the server's process group, SIGKILL it if it is still there after ``timeout``."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def startup_costs(kinds: tuple[str, ...] = ("student", "bare"), repeat: int = 5, *,
                  progress=None) -> dict[str, list[StartCost]]:
    """``repeat`` starts of each kind, alternating (so drift in the machine's load hits all kinds)."""
    costs: dict[str, list[StartCost]] = {kind: [] for kind in kinds}
    work = Path(tempfile.mkdtemp(prefix="server-startup-"))
    try:
        with stand_in_hub() as hub_url:
            for kind in kinds:  # one unmeasured start each: the disk cache and .pyc files warm
                start_once(kind, work=work, hub_url=hub_url)
            for _ in range(repeat):
                for kind in kinds:
                    cost, _ = start_once(kind, work=work, hub_url=hub_url)
                    costs[kind].append(cost)
                    if progress:
                        progress(cost)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return costs


def median_cpu(costs: list[StartCost]) -> float:
    return statistics.median(cost.cpu_s for cost in costs)


def summary_lines(costs: dict[str, list[StartCost]]) -> list[str]:
    """Median CPU and wall seconds per kind, and each kind's CPU relative to the bare one."""
    bare = median_cpu(costs["bare"]) if costs.get("bare") else None
    lines = [f"{'server start':18}{'CPU s (median)':>16}{'min':>7}{'max':>7}{'wall s':>9}{'vs bare':>9}"]
    for kind, runs in costs.items():
        cpu = median_cpu(runs)
        ratio = f"{cpu / bare:.2f}" if bare else ""
        lines.append(f"{kind:18}{cpu:16.2f}{min(c.cpu_s for c in runs):7.2f}{max(c.cpu_s for c in runs):7.2f}"
                     f"{statistics.median(c.wall_s for c in runs):9.2f}{ratio:>9}")
    return lines


# --- where the time goes -----------------------------------------------------------------------

IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)")


def slowest_imports(log: str, top: int = 25) -> list[tuple[int, str]]:
    """The top-level imports (cumulative microseconds) of a ``-X importtime`` log, slowest first."""
    rows = [(int(cumulative), name) for _, cumulative, indent, name in IMPORT_LINE.findall(log) if len(indent) == 1]
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--repeat", type=int, default=5, help="measured starts of each kind (default 5)")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=["student", "bare"])
    parser.add_argument("--importtime", action="store_true", help="one student start under -X importtime instead")
    args = parser.parse_args(argv)
    if args.importtime:
        work = Path(tempfile.mkdtemp(prefix="server-startup-"))
        try:
            with stand_in_hub() as hub_url:
                cost, log = start_once("student", work=work, hub_url=hub_url, python_flags=("-X", "importtime"))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"student start under -X importtime: {cost.cpu_s:.2f} CPU s (import timing inflates it)")
        for micros, name in slowest_imports(log):
            print(f"{micros / 1e6:8.3f} s  {name}")
        return 0
    costs = startup_costs(tuple(args.kinds), args.repeat,
                          progress=lambda c: print(f"  {c.kind:16} {c.cpu_s:5.2f} CPU s {c.wall_s:6.2f} wall s", flush=True))
    print("\n".join(summary_lines(costs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
