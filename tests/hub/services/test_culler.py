"""The idle culler, a hub service with only the scopes it needs, really stops an idle server."""

from __future__ import annotations

import time

import pytest
import requests
import yaml

from tests.support.hubfixture import api_token, login, start_hub, start_server, stop_hub

pytestmark = [pytest.mark.slow, pytest.mark.hub]

IDLE_TIMEOUT = 20
CULL_EVERY = 5


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    config_file.write_text(yaml.safe_dump({
        "idle_culler": {"timeout": IDLE_TIMEOUT, "cull_every": CULL_EVERY},
        "courses": {"ai101": {"formgrader_port": 8010, "instructors": ["ian"], "students": ["sam"]}},
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


def test_an_idle_server_is_stopped(hub):
    token = api_token(hub, login(hub, "sam"), "sam")
    headers = {"Authorization": f"token {token}"}
    start_server(hub, "sam", token)
    started = time.monotonic()
    deadline = started + IDLE_TIMEOUT + 10 * CULL_EVERY + 60
    while time.monotonic() < deadline:
        if not requests.get(f"{hub.url}/hub/api/users/sam", headers=headers).json()["servers"]:
            break
        time.sleep(2)
    else:
        pytest.fail("the idle server was not culled")
    # Not before it had been idle for the timeout.
    assert time.monotonic() - started >= IDLE_TIMEOUT - 2
    # The user is kept: the culler stops servers, it never deletes people.
    assert requests.get(f"{hub.url}/hub/api/users/sam", headers=headers).status_code == 200
