"""Retries of the LTI services (grader.lti.services.with_retries) and the command line's refusals."""

from __future__ import annotations

import pytest
import requests
import yaml
from pylti1p3.exception import LtiServiceException

from grader.cli import main as grader_main
from grader.lti.services import ServiceError, with_retries


def refusal(status: int) -> LtiServiceException:
    response = requests.Response()
    response.status_code, response.url, response._content = status, "https://lms.example/scores", b"{}"
    return LtiServiceException(response)


def flaky(*failures):
    calls = []

    def call():
        calls.append(1)
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "ok"
    return call, calls


def test_network_errors_429_and_5xx_are_retried_until_it_works():
    call, calls = flaky(requests.ConnectionError("refused"), refusal(503), refusal(429))
    assert with_retries(call, delays=(0, 0, 0)) == ("ok", 4)
    assert len(calls) == 4


def test_retries_end_with_the_last_status():
    call, calls = flaky(*[refusal(502)] * 5)
    with pytest.raises(ServiceError, match="HTTP 502") as error:
        with_retries(call, delays=(0, 0), what="score of u-1")
    assert error.value.status == 502 and len(calls) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_refusal_is_not_retried(status):
    call, calls = flaky(refusal(status))
    with pytest.raises(ServiceError, match=f"HTTP {status}"):
        with_retries(call, delays=(0, 0, 0))
    assert len(calls) == 1


def test_the_lti_commands_say_when_the_hub_does_not_use_lti(tmp_path, monkeypatch, capsys):
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump({"courses": {"ai101": {"formgrader_port": 9010}}}))
    monkeypatch.setenv("AICOURSE_CONFIG", str(config))
    monkeypatch.setenv("AICOURSE_DATA_DIR", str(tmp_path / "data"))
    assert grader_main(["lti", "push", "a1_backprop"]) == 2
    assert "auth.type is not lti13" in capsys.readouterr().err
