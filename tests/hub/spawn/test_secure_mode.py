"""The secure one-machine mode on a real hub, as root: an account per user, limits the kernel enforces.

The hub runs with ``spawner.mode: auto``, as ``make hub`` does, so as root it is the secure mode.
Two students and an instructor each get a system account ``jupyter-<name>``; from a student's
kernel (REST and websocket, as a browser would) nothing that is not theirs can be read; a cell
allocating past the profile's memory is killed by the OOM killer inside that server's cgroup only;
a fork bomb ends at the profile's task limit; terminals run as the account; release, fetch,
submit, collect, autograde and feedback work over the HTTP exchange. Accounts, homes and cgroups
are removed afterwards.
"""

from __future__ import annotations

import ast
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import requests
import websocket
import yaml

from grader.hub.spawn.isolation import account_name, blocked_ancestor, remove_account
from grader.hub.spawn.limits import PARENT_NAME, ServerGroup, detect_enforcement
from grader.resources import ASSIGNMENTS_SOURCE_DIR
from tests.support.hubfixture import api_token, execute_cell, login, start_hub, start_server, stop_hub, users_python_copies

pytestmark = [
    pytest.mark.slow, pytest.mark.hub,
    pytest.mark.skipif(os.geteuid() != 0, reason="the secure mode makes accounts and cgroups: root only"),
    pytest.mark.skipif(detect_enforcement() not in ("cgroup1", "cgroup2"), reason="no writable cgroups here"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="no useradd"),
]

SUFFIX = uuid.uuid4().hex[:6]
ANN, BEN, IVY = f"ann-{SUFFIX}", f"ben-{SUFFIX}", f"ivy-{SUFFIX}"
MEMORY_LIMIT_MB = 700
MAX_TASKS = 128
V1 = detect_enforcement() == "cgroup1"
ASSIGNMENT = "tiny"


def _tiny_source_notebook() -> nbformat.NotebookNode:
    def meta(**fields):
        return {"nbgrader": {"schema_version": 3, "locked": False, "solution": False, "grade": False, **fields}}
    answer = nbformat.v4.new_code_cell("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
                                       metadata=meta(solution=True, grade_id="add"))
    test = nbformat.v4.new_code_cell("assert add(1, 2) == 3",
                                     metadata=meta(grade=True, locked=True, points=2, grade_id="test_add"))
    return nbformat.v4.new_notebook(cells=[answer, test], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture(scope="module")
def reachable_python():
    """Where the hub puts the interpreter users run when its own is out of their reach (here it
    lives under /root, 0700): a throw-away folder instead of /opt/aicourse."""
    with users_python_copies() as folder:
        yield folder


@pytest.fixture(scope="module")
def hub(reachable_python):
    # Not under pytest's tmp folder (0700): the data folder must be enterable, so that what keeps a
    # student out is the modes the hub sets, not a folder above it.
    data_dir = Path(tempfile.mkdtemp(prefix="aicourse-secure-"))
    os.chmod(data_dir, 0o755)
    # The course directory's own source/ (not the repository's link), with a one-answer assignment.
    source = data_dir / "courses" / "ai101" / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    nbformat.write(_tiny_source_notebook(), source / f"{ASSIGNMENT}.ipynb")
    config_file = data_dir.parent / f"{data_dir.name}.yaml"
    config_file.write_text(yaml.safe_dump({
        "admins": [IVY],
        "idle_culler": {"enabled": False},
        "courses": {"ai101": {"formgrader_port": 8010, "instructors": [IVY], "students": [ANN, BEN]}},
        "profiles": {"small": {"display_name": "Small", "cpu_limit": 1, "mem_limit": f"{MEMORY_LIMIT_MB}M",
                               "max_tasks": MAX_TASKS}},
    }))
    running = None
    # The hub takes others' permissions off the repository's assignments/; put them back after.
    repo_assignments_mode = stat.S_IMODE(ASSIGNMENTS_SOURCE_DIR.parent.stat().st_mode)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AICOURSE_CONFIG", str(config_file))
            # spawner.mode auto, as `make hub` has it: secure, since the hub runs as root.
            running = start_hub(data_dir, spawner_mode="auto")
        yield running
    finally:
        if running is not None:
            stop_hub(running)
        for name in (ANN, BEN, IVY):
            ServerGroup(account_name(name), version=1 if V1 else 2).remove()  # nothing left, unless the hub died
            remove_account(account_name(name))
        shutil.rmtree(data_dir, ignore_errors=True)
        config_file.unlink(missing_ok=True)
        os.chmod(ASSIGNMENTS_SOURCE_DIR.parent, repo_assignments_mode)


@pytest.fixture(scope="module")
def servers(hub):
    """Each user's token and the websocket of a kernel in their server (started once for the module)."""
    opened = {}
    try:
        for name in (ANN, BEN, IVY):
            token = api_token(hub, login(hub, name), name)
            start_server(hub, name, token, timeout=300)
            opened[name] = {"token": token, "ws": _kernel(hub, name, token)}
        yield opened
    finally:
        for server in opened.values():
            server["ws"].close()


def _kernel(hub, name, token):
    base = f"{hub.url}/user/{name}"
    kernel = requests.post(f"{base}/api/kernels", headers={"Authorization": f"token {token}"}, json={"name": "python3"})
    assert kernel.status_code == 201, kernel.text
    return websocket.create_connection(f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel.json()['id']}/channels",
                                       header=[f"Authorization: token {token}"], timeout=120)


def _group(name: str, controller: str) -> Path:
    """The server's group of ``controller`` (v1), or its one group (v2); the hub runs in this
    test's own groups."""
    own = dict(line.split(":", 2)[1:] for line in Path("/proc/self/cgroup").read_text().splitlines())
    if V1:
        return Path("/sys/fs/cgroup") / controller / own[controller].lstrip("/") / PARENT_NAME / account_name(name)
    return Path("/sys/fs/cgroup") / own[""].lstrip("/") / PARENT_NAME / account_name(name)


def _oom_kills(name: str) -> int:
    events = _group(name, "memory") / ("memory.oom_control" if V1 else "memory.events")
    return int(dict(line.split() for line in events.read_text().splitlines())["oom_kill"])


def test_servers_run_an_interpreter_the_accounts_can_reach_without_opening_root(hub, servers, reachable_python):
    blocked = blocked_ancestor(Path(sys.executable))
    executable = ast.literal_eval(execute_cell(servers[ANN]["ws"], "import sys\nsys.executable"))
    if blocked is None:
        assert executable == sys.executable  # the hub's own: every account can run it
        return
    # The hub's Python is in a folder only root enters: that folder stays closed, and the servers
    # run the copy the hub made, with the hub environment's packages.
    assert not blocked.stat().st_mode & stat.S_IXOTH
    assert Path(executable).is_relative_to(reachable_python)
    assert execute_cell(servers[ANN]["ws"], "import grader, nbgrader, numpy\ngrader.__file__") == repr(str(
        Path(__import__("grader").__file__)))
    assert "users' servers run" in hub.log()


def test_each_server_runs_as_its_own_account(hub, servers):
    uids = {}
    for name, server in servers.items():
        account = pwd.getpwnam(account_name(name))
        seen = json.loads(ast.literal_eval(execute_cell(server["ws"], "import json, os\njson.dumps([os.getuid(), os.getgid(), os.getcwd()])")))
        assert seen == [account.pw_uid, account.pw_gid, str(hub.data_dir / "homes" / name)]
        assert account.pw_uid != 0 and account.pw_shell.endswith(("nologin", "false"))
        home = hub.data_dir / "homes" / name
        assert (home.stat().st_uid, stat.S_IMODE(home.stat().st_mode)) == (account.pw_uid, 0o700)
        # The lessons are the student's own copies.
        lesson = next((home / "courses").rglob("*.ipynb"))
        assert lesson.stat().st_uid == account.pw_uid
        uids[name] = account.pw_uid
    assert len(set(uids.values())) == 3


def test_a_student_reads_nothing_that_is_not_theirs(hub, servers):
    targets = {
        "other student's home": hub.data_dir / "homes" / BEN,
        "a lesson in the other home": hub.data_dir / "homes" / BEN / "courses",
        "course directory": hub.data_dir / "courses" / "ai101",
        "course source": hub.data_dir / "courses" / "ai101" / "source",
        "assignments source in the repository": ASSIGNMENTS_SOURCE_DIR,
        "hub database": hub.data_dir / "jupyterhub.sqlite",
        "cookie secret": hub.data_dir / "jupyterhub_cookie_secret",
        "accounts": hub.data_dir / "accounts.sqlite",
        "exchange storage": hub.data_dir / "exchange-service",
        "data folder listing": hub.data_dir,
    }
    assert all(path.exists() for path in targets.values()), {k: p for k, p in targets.items() if not p.exists()}
    code = (
        "import json, os\n"
        "def attempt(path):\n"
        "    try:\n"
        "        os.listdir(path) if os.path.isdir(path) or not os.path.exists(path) else open(path, 'rb').read(1)\n"
        "        return 'read'\n"
        "    except PermissionError:\n"
        "        return 'denied'\n"
        "    except OSError as error:\n"
        "        return type(error).__name__\n"
        f"json.dumps({{name: attempt(path) for name, path in {json.dumps({k: str(p) for k, p in targets.items()})}.items()}})"
    )
    outcome = json.loads(ast.literal_eval(execute_cell(servers[ANN]["ws"], code)))
    assert outcome == {name: "denied" for name in targets}
    # ... while their own home and lessons are theirs to read.
    assert execute_cell(servers[ANN]["ws"], "import os\nlen(os.listdir(os.path.expanduser('~/courses'))) > 0") == "True"


def _run_until_kernel_dies(ws, code: str, timeout: float = 120) -> str:
    """Send a cell and return the kernel status that ended it ("restarting"/"dead"), or "idle"."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex,
                   "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
    }))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message["msg_type"] == "status":
            state = message["content"]["execution_state"]
            if state in ("restarting", "dead"):
                return state
            if state == "idle" and message.get("parent_header", {}).get("msg_id") == msg_id:
                return "idle"
    raise TimeoutError("the cell neither finished nor killed its kernel")


def test_a_cell_past_the_memory_limit_is_killed_and_the_other_student_is_untouched(hub, servers):
    ben_before = execute_cell(servers[BEN]["ws"], "keep = 'still here'\nkeep")
    state = _run_until_kernel_dies(servers[ANN]["ws"], f"hog = b'x' * ({MEMORY_LIMIT_MB + 300} * 1024 * 1024)")
    assert state in ("restarting", "dead")
    assert _oom_kills(ANN) >= 1
    limit = _group(ANN, "memory") / ("memory.limit_in_bytes" if V1 else "memory.max")
    assert int(limit.read_text()) == MEMORY_LIMIT_MB * 1024**2
    # Ben's kernel kept its state, and its group saw no OOM kill.
    assert execute_cell(servers[BEN]["ws"], "keep") == ben_before
    assert _oom_kills(BEN) == 0
    # Ann's server is still up: a new kernel answers.
    servers[ANN]["ws"].close()
    servers[ANN]["ws"] = _kernel(hub, ANN, servers[ANN]["token"])
    assert execute_cell(servers[ANN]["ws"], "1 + 1") == "2"


def test_a_fork_bomb_stops_at_the_task_limit(hub, servers):
    pids = _group(BEN, "pids")
    assert int((pids / "pids.max").read_text()) == MAX_TASKS
    # A real bomb (every process forks until it cannot), time-boxed so it ends by itself.
    bomb = ("import os, time\nend = time.time() + 4\nwhile time.time() < end:\n"
            "    try:\n        os.fork()\n    except OSError:\n        time.sleep(0.05)\nos._exit(0)\n")
    code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {bomb!r}]).returncode"
    execute_cell(servers[BEN]["ws"], code, timeout=120)
    refused = int(dict(line.split() for line in (pids / "pids.events").read_text().splitlines())["max"])
    assert refused > 0, "no fork was refused: the bomb never reached the limit"
    deadline = time.monotonic() + 30
    while int((pids / "pids.current").read_text()) > MAX_TASKS // 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    # The bomb is gone and the kernel still works; Ann's server never noticed.
    assert execute_cell(servers[BEN]["ws"], "keep") == "'still here'"
    assert execute_cell(servers[ANN]["ws"], "2 + 2") == "4"


def test_a_terminal_runs_as_the_students_account(hub, servers):
    base, token = f"{hub.url}/user/{ANN}", servers[ANN]["token"]
    terminal = requests.post(f"{base}/api/terminals", headers={"Authorization": f"token {token}"})
    assert terminal.status_code == 200, terminal.text
    ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/terminals/websocket/{terminal.json()['name']}",
                                     header=[f"Authorization: token {token}"], timeout=60)
    try:
        ws.send(json.dumps(["stdin", "echo uid=$(id -u)\r"]))
        output, deadline = "", time.monotonic() + 60
        while not re.search(r"uid=(\d+)", output) and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                output += message[1]
    finally:
        ws.close()
    assert int(re.search(r"uid=(\d+)", output).group(1)) == pwd.getpwnam(account_name(ANN)).pw_uid


def test_the_admin_page_shows_no_demo_banner(hub):
    page = login(hub, IVY).get(f"{hub.url}/hub/admin")
    assert page.status_code == 200 and "demo-mode-banner" not in page.text


def _grader(hub, token, *args):
    env = dict(os.environ, GRADER_COURSE_DIR=str(hub.data_dir / "courses" / "ai101"), GRADER_EXCHANGE_TOKEN=token)
    result = subprocess.run([sys.executable, "-m", "grader.cli", *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"grader {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def _assignments(hub, servers, name, action, **form):
    response = requests.post(f"{hub.url}/user/{name}/assignments/{action}", data=form, timeout=180,
                             headers={"Authorization": f"token {servers[name]['token']}"})
    assert response.status_code == 200 and response.json()["success"], response.text
    return response.json()["value"]


def test_the_round_trip_over_the_http_exchange_in_the_secure_mode(hub, servers):
    """Release, fetch, submit, collect, autograde, feedback: the default exchange, per-user accounts."""
    _grader(hub, servers[IVY]["token"], "release", ASSIGNMENT)
    fetched = _assignments(hub, servers, ANN, "fetch", course_id="ai101", assignment_id=ASSIGNMENT)
    assert [(a["assignment_id"], a["status"]) for a in fetched] == [(ASSIGNMENT, "fetched")]
    copy = hub.data_dir / "homes" / ANN / "ai101" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert copy.stat().st_uid == pwd.getpwnam(account_name(ANN)).pw_uid  # written by Ann's own server
    notebook = nbformat.read(copy, as_version=4)
    notebook.cells[0].source = "def add(a, b):\n    return a + b"
    nbformat.write(notebook, copy)
    _assignments(hub, servers, ANN, "submit", course_id="ai101", assignment_id=ASSIGNMENT)
    _grader(hub, servers[IVY]["token"], "collect", ASSIGNMENT)
    _grader(hub, servers[IVY]["token"], "autograde", ASSIGNMENT, "--workers", "1")
    _grader(hub, servers[IVY]["token"], "feedback", ASSIGNMENT)
    _assignments(hub, servers, ANN, "fetch_feedback", course_id="ai101", assignment_id=ASSIGNMENT)
    (feedback,) = (hub.data_dir / "homes" / ANN / "ai101" / ASSIGNMENT / "feedback").rglob("*.html")
    assert f"{ASSIGNMENT} (Score: 2.0 / 2.0)" in feedback.read_text()
    # Ben submitted nothing and has no way to read Ann's work in the exchange's storage (tested above).
    assert not (hub.data_dir / "courses" / "ai101" / "submitted" / BEN).exists()
