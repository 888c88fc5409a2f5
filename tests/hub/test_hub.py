"""The walking skeleton's hub, really started: log in, spawn, run code in a kernel, formgrader access."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
import websocket

from grader.hub.spawn.profiles import detect_gpus
from tests.support.hubfixture import (
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
        # nbgrader's course list finds the course's formgrader service through the hub (nbgrader #1831).
        courses = requests.get(f"{hub.url}/user/instructor/formgraders", headers={"Authorization": f"token {token}"})
        assert courses.status_code == 200 and courses.json()["success"], courses.text
        hub_courses = [c for c in courses.json()["value"] if c["kind"] == "jupyterhub"]
        assert [(c["course_id"], c["url"].endswith("/services/ai101/lab?formgrader=true")) for c in hub_courses] == [("ai101", True)]
    finally:
        stop_server(hub, "instructor", token)


def test_the_spawn_form_offers_the_profiles_a_user_may_pick(hub):
    no_gpu = not detect_gpus().devices
    student_form = login(hub, "student").get(f"{hub.url}/hub/spawn")
    assert student_form.status_code == 200
    assert 'value="cpu"' in student_form.text and 'value="gpu"' not in student_form.text
    # The instructor may use the GPU profile (hub_config/platform.yaml puts them in gpu-users).
    instructor_form = login(hub, "instructor").get(f"{hub.url}/hub/spawn")
    assert "GPU: 1 GPU, 16 GB" in instructor_form.text
    if no_gpu:
        assert 'value="gpu" disabled' in instructor_form.text
        assert "Not available: this machine has no GPU (nvidia-smi not found)" in instructor_form.text


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
