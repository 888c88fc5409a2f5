"""The walking skeleton's hub, really started: log in, spawn, run code in a kernel, formgrader access."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests
import websocket

from hubfixture import api_token, login, start_hub, start_server, stop_hub, stop_server

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


def _execute(ws, code: str, timeout: float = 60) -> str:
    """Send one execute_request on the kernel's channels websocket; return its text/plain result."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "test", "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False},
    }))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv())
        if message.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "execute_result":
            return message["content"]["data"]["text/plain"]
        if message["msg_type"] == "error":
            raise AssertionError(f"kernel error: {message['content']['ename']}: {message['content']['evalue']}")
    raise TimeoutError("no execute_result")


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

        kernel = requests.post(f"{base}/api/kernels", headers=headers, json={"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        ws_url = f"{base.replace('http', 'ws', 1)}/api/kernels/{kernel.json()['id']}/channels"
        ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=60)
        try:
            result = _execute(ws, "import numpy as np\nint(np.arange(4) @ np.arange(4))")
        finally:
            ws.close()
        assert result == "14"
    finally:
        stop_server(hub, "student", token)


@pytest.mark.parametrize("username, expected", [("student", 403), ("instructor", 200)])
def test_only_instructors_open_the_formgrader(hub, username, expected):
    session = login(hub, username)
    response = session.get(f"{hub.url}/services/ai101/formgrader")
    assert response.status_code == expected
    if expected == 200:
        assert "formgrader" in response.url
