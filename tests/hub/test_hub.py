"""The walking skeleton's hub, really started: log in, spawn, run code in a kernel, formgrader access."""

from __future__ import annotations

import json
import re
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import websocket
import yaml

from grader.hub.spawn.profiles import detect_gpus
from grader.resources import HUB_CONFIG_DIR
from tests.support.hubfixture import (
    PASSWORD_LINE,
    api_token,
    execute_cell,
    login,
    start_hub,
    start_server,
    stop_hub,
    stop_server,
    wait_until_stopped,
)

pytestmark = [pytest.mark.slow, pytest.mark.hub]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


def test_first_start_creates_the_instructor_and_student_with_printed_passwords(hub):
    assert set(hub.passwords) == {"instructor", "student"}
    assert all(len(password) >= 12 for password in hub.passwords.values())


def test_a_wrong_password_is_refused(hub):
    session = requests.Session()
    session.get(f"{hub.url}/hub/login")
    response = session.post(
        f"{hub.url}/hub/login",
        data={"username": "student", "password": "not-the-password", "_xsrf": session.cookies.get("_xsrf")},
        allow_redirects=False,
    )
    assert response.status_code == 403


def test_student_logs_in_spawns_and_runs_a_cell(hub):
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    start_server(hub, "student", token)
    headers = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/student"
    try:
        # The course lessons were put in the student's home.
        listing = requests.get(f"{base}/api/contents/courses/01_backprop", headers=headers)
        assert listing.status_code == 200
        assert "01_forward_pass.ipynb" in {item["name"] for item in listing.json()["content"]}

        # Open the first lesson as JupyterLab does (a session: the kernel starts in the lesson's
        # folder, so its helper module imports) and run every code cell of it.
        lesson = "courses/01_backprop/01_forward_pass.ipynb"
        notebook = requests.get(f"{base}/api/contents/{lesson}", headers=headers).json()["content"]
        opened = requests.post(f"{base}/api/sessions", headers=headers,
                               json={"path": lesson, "type": "notebook", "name": "", "kernel": {"name": "python3"}})
        assert opened.status_code == 201, opened.text
        ws_url = f"{base.replace('http', 'ws', 1)}/api/kernels/{opened.json()['kernel']['id']}/channels"
        ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=120)
        try:
            assert execute_cell(ws, "import numpy as np\nint(np.arange(4) @ np.arange(4))") == "14"
            for cell in notebook["cells"]:
                if cell["cell_type"] == "code":
                    execute_cell(ws, cell["source"])  # raises on the first error
        finally:
            ws.close()
    finally:
        stop_server(hub, "student", token)


@pytest.mark.parametrize("username, expected", [("student", 403), ("instructor", 200)])
def test_only_instructors_open_the_formgrader(hub, username, expected):
    session = login(hub, username)
    response = session.get(f"{hub.url}/services/ai101/formgrader")
    assert response.status_code == expected
    if expected == 200:
        assert "formgrader" in response.url


def _page_config(html: str) -> dict:
    """The JSON JupyterLab embeds in its page (id "jupyter-config-data")."""
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no page config in the Lab page"
    return json.loads(match.group(1))


def test_a_students_lab_has_no_instructor_tools_and_no_news(hub):
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    wait_until_stopped(hub, "student", token)
    start_server(hub, "student", token)
    headers = {"Authorization": f"token {token}"}
    base = f"{hub.url}/user/student"
    try:
        lab = requests.get(f"{base}/lab", headers=headers)
        assert lab.status_code == 200
        # Nothing needs to frame a student's server: JupyterHub's own policy stays.
        assert lab.headers["Content-Security-Policy"].startswith("frame-ancestors 'none'")
        disabled = set(_page_config(lab.text)["disabledExtensions"])
        assert {"@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                "@jupyter/nbgrader:course-list", "@jupyterlab/apputils-extension:announcements"} <= disabled
        assert "@jupyter/nbgrader:assignment-list" not in disabled
        assert requests.get(f"{base}/formgrader", headers=headers).status_code == 404
        # What a student needs still answers: their course's assignment list.
        listing = requests.get(f"{base}/assignments?course_id=ai101", headers=headers)
        assert listing.status_code == 200 and listing.json()["success"]
        # ... and the notebook toolbar's Validate button (the same request JupyterLab sends).
        # nbgrader's validator lists the failing tests, and nothing when every test passes.
        for answer, failing in [("raise NotImplementedError()", ["assert answer() == 1"]), ("return 1", [])]:
            saved = requests.put(f"{base}/api/contents/validate-me.ipynb", headers=headers,
                                 json={"type": "notebook", "content": _graded_notebook(answer)})
            assert saved.status_code in (200, 201), saved.text
            validated = requests.post(f"{base}/assignments/validate", headers=headers, data={"path": "validate-me.ipynb"})
            assert validated.status_code == 200 and validated.json()["success"], validated.text
            result = validated.json()["value"]
            assert [cell["source"] for cell in result.get("failed", [])] == failing, result
    finally:
        stop_server(hub, "student", token)


def _graded_notebook(answer: str) -> dict:
    """A notebook with one nbgrader answer cell and one autograded test of it."""
    def cell(source, **nbgrader):
        return {"cell_type": "code", "execution_count": None, "outputs": [], "source": source,
                "metadata": {"nbgrader": {"schema_version": 3, "locked": False, "grade": False, "solution": False, **nbgrader}}}
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": [cell(f"def answer():\n    {answer}", grade_id="answer", solution=True),
                  cell("assert answer() == 1", grade_id="test_answer", grade=True, locked=True, points=1)],
    }


def test_the_formgrader_may_be_framed_by_the_hub_only(hub):
    """nbgrader #1870: under JupyterHub's default 'none' the formgrader is blank inside JupyterLab."""
    response = login(hub, "instructor").get(f"{hub.url}/services/ai101/formgrader")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == "frame-ancestors 'self'"


def test_an_instructors_lab_keeps_the_nbgrader_tools_and_may_frame_the_formgrader(hub):
    session = login(hub, "instructor")
    token = api_token(hub, session, "instructor")
    start_server(hub, "instructor", token)
    try:
        lab = requests.get(f"{hub.url}/user/instructor/lab", headers={"Authorization": f"token {token}"})
        assert lab.status_code == 200
        assert lab.headers["Content-Security-Policy"] == "frame-ancestors 'self'"
        disabled = set(_page_config(lab.text)["disabledExtensions"])
        assert not {"@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:course-list"} & disabled
        # No "Jupyter news" pop-up, and the server fetches no news from the Internet (offline hubs).
        assert "@jupyterlab/apputils-extension:announcements" in disabled
        news = requests.get(f"{hub.url}/user/instructor/lab/api/news", headers={"Authorization": f"token {token}"})
        assert news.status_code == 200 and news.json()["news"] == []
        # nbgrader's course list finds the course's formgrader service through the hub (nbgrader #1831).
        courses = requests.get(f"{hub.url}/user/instructor/formgraders", headers={"Authorization": f"token {token}"})
        assert courses.status_code == 200 and courses.json()["success"], courses.text
        hub_courses = [c for c in courses.json()["value"] if c["kind"] == "jupyterhub"]
        assert [(c["course_id"], c["url"].endswith("/services/ai101/lab?formgrader=true")) for c in hub_courses] == [("ai101", True)]
    finally:
        stop_server(hub, "instructor", token)


def test_the_spawn_form_offers_the_profiles_a_user_may_pick(hub):
    no_gpu = not detect_gpus().devices
    # The instructor may use the GPU profile (hub_config/platform.yaml puts them in gpu-users).
    instructor_form = login(hub, "instructor").get(f"{hub.url}/hub/spawn")
    assert instructor_form.status_code == 200
    if no_gpu:
        # Nothing to choose on this machine: no "Server Options" page, the CPU server starts at once.
        assert 'value="cpu"' not in instructor_form.text
        assert "/hub/spawn-pending/instructor" in instructor_form.url
        token = api_token(hub, login(hub, "instructor"), "instructor")
        _wait_until_ready(hub, "instructor", token)  # what the GET started
        stop_server(hub, "instructor", token)
    else:
        assert "GPU: 1 GPU, 16 GB" in instructor_form.text and 'value="cpu"' in instructor_form.text


def test_a_user_with_one_profile_gets_no_form_and_their_server_starts(hub):
    """A "Server Options" page with one choice, before every start, is only a click more."""
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    wait_until_stopped(hub, "student", token)
    starts = hub.log().count("student/ starts with profile cpu")
    response = session.get(f"{hub.url}/hub/spawn", allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"].endswith("/hub/spawn-pending/student")
    try:
        _wait_until_ready(hub, "student", token)
        # The one profile, chosen and applied by the pre-spawn hook.
        assert hub.log().count("student/ starts with profile cpu") == starts + 1
    finally:
        stop_server(hub, "student", token)


def _wait_until_ready(hub, username: str, token: str, timeout: float = 180) -> None:
    """Wait for a server started otherwise than through start_server (a GET of /hub/spawn)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        user = requests.get(f"{hub.url}/hub/api/users/{username}", headers={"Authorization": f"token {token}"}).json()
        if (user.get("servers", {}).get("") or {}).get("ready"):
            return
        time.sleep(1)
    pytest.fail(f"{username}'s server not ready after {timeout}s")


def test_a_profile_a_user_may_not_pick_is_refused_through_the_api_too(hub):
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    response = requests.post(f"{hub.url}/hub/api/users/student/server", json={"profile": "gpu"},
                             headers={"Authorization": f"token {token}"})
    assert response.status_code == 400 and "may not use the profile 'gpu'" in response.json()["message"]
    if not detect_gpus().devices:
        instructor = login(hub, "instructor")
        token = api_token(hub, instructor, "instructor")
        response = requests.post(f"{hub.url}/hub/api/users/instructor/server", json={"profile": "gpu"},
                                 headers={"Authorization": f"token {token}"})
        assert response.status_code == 400 and "this machine has no GPU" in response.json()["message"]


def test_a_student_starts_a_server_from_the_form(hub):
    session = login(hub, "student")
    token = api_token(hub, session, "student")
    headers = {"Authorization": f"token {token}"}
    wait_until_stopped(hub, "student", token)
    response = session.post(f"{hub.url}/hub/spawn", data={"profile": "cpu", "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
                            allow_redirects=False)
    assert response.status_code == 302, response.text
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            server = requests.get(f"{hub.url}/hub/api/users/student", headers=headers).json()["servers"].get("")
            if server and server["ready"]:
                break
            time.sleep(1)
        else:
            pytest.fail("the server started from the form never became ready")
        assert server["user_options"] == {"profile": "cpu"}
        # The profile's limits reach the server (the demo spawner passes them on, not enforce them),
        # and a CPU profile's server sees no GPU.
        base = f"{hub.url}/user/student"
        kernel = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel.json()['id']}/channels",
                                         header=[f"Authorization: token {token}"], timeout=60)
        try:
            seen = execute_cell(ws, "import os\n[os.environ.get(k) for k in ('MEM_LIMIT', 'CPU_LIMIT', 'CUDA_VISIBLE_DEVICES')]")
        finally:
            ws.close()
        assert seen == repr([str(4 * 1024**3), "2.0", ""])
    finally:
        stop_server(hub, "student", token)


# --- a hub as `make hub &` from a script starts it: first-start block, idle kernels, stopping ---------

def _platform_yaml_with(tmp_path: Path, **overrides) -> Path:
    settings = yaml.safe_load((HUB_CONFIG_DIR / "platform.yaml").read_text())
    settings.update(overrides)
    config_file = tmp_path / "platform.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    return config_file


@contextmanager
def _sigint_ignored():
    """What a non-interactive shell gives a background job (`make hub &`): SIGINT ignored, which
    every process the hub starts inherits."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _kernel_ids(base: str, token: str) -> list[str]:
    response = requests.get(f"{base}/api/kernels", headers={"Authorization": f"token {token}"})
    response.raise_for_status()
    return [kernel["id"] for kernel in response.json()]


def test_a_hub_prints_its_accounts_last_culls_idle_kernels_and_stops_in_seconds(tmp_path):
    config_file = _platform_yaml_with(tmp_path, kernel_culler={"timeout": 4, "cull_every": 1, "cull_connected": True})
    # A health check every second: JupyterHub 6.1's check of a service being stopped raised an
    # AttributeError (a traceback in the log) whenever one fell within the hub's cleanup.
    extra_config = tmp_path / "jupyterhub_config.py"
    extra_config.write_text(f"load_subconfig({str(HUB_CONFIG_DIR / 'jupyterhub_config.py')!r})\n"
                            "c.JupyterHub.service_check_interval = 1\n")
    with _sigint_ignored():
        hub = start_hub(tmp_path / "hub-data", config_file=extra_config, extra_env={"AICOURSE_CONFIG": str(config_file)})
    try:
        # 1. The accounts made at first start, with the URL, after the hub says it runs.
        deadline = time.monotonic() + 30
        while "The course platform is running at" not in hub.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        log = hub.log()
        banner = log[log.index("JupyterHub is now running"):]
        assert f"The course platform is running at {hub.url}" in banner
        assert dict(PASSWORD_LINE.findall(banner)) == hub.passwords and set(hub.passwords) == {"instructor", "student"}

        # 2. A kernel that runs nothing is shut down by its server, a browser tab still open on it.
        token = api_token(hub, login(hub, "student"), "student")
        start_server(hub, "student", token)
        base = f"{hub.url}/user/student"
        kernel = requests.post(f"{base}/api/kernels", headers={"Authorization": f"token {token}"}, json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        ws = websocket.create_connection(f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel_id}/channels",
                                         header=[f"Authorization: token {token}"], timeout=60)
        try:
            assert execute_cell(ws, "21 * 2") == "42"
            # Busy for longer than the timeout: a running kernel is never culled.
            execute_cell(ws, "import time; time.sleep(6)")
            assert kernel_id in _kernel_ids(base, token)
            deadline = time.monotonic() + 60
            while kernel_id in _kernel_ids(base, token) and time.monotonic() < deadline:
                time.sleep(1)
            assert kernel_id not in _kernel_ids(base, token), "the idle kernel was not culled"
            assert f"Culling 'idle' kernel 'python3' ({kernel_id}) with 1 connections due to" in hub.log()
        finally:
            ws.close()
        # A new kernel stays while it is used.
        kernel = requests.post(f"{base}/api/kernels", headers={"Authorization": f"token {token}"}, json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text

        # 3. SIGINT (Ctrl-C) with a server, a kernel and every service running: stopped in seconds.
        started = time.monotonic()
        hub.process.send_signal(signal.SIGINT)
        hub.process.wait(60)
        took = time.monotonic() - started
        log = hub.log()
        assert hub.process.returncode == 0
        assert took < 20, f"the hub took {took:.0f} s to stop"
        assert "Traceback" not in log and "AttributeError" not in log, log[log.index("Received SIGINT"):]
        # The server stopped in order: its kernel shut down, not left to find its parent gone.
        assert "Kernel shutdown" in log and "Parent appears to have exited" not in log
    finally:
        stop_hub(hub)
