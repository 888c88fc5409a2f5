"""The admin's switch for instant feedback: the exchange service's command names the courses it grades."""

from __future__ import annotations

import pytest
import yaml

from grader.exchange.service.app import parse_args
from grader.hub.layers import ConfigError
from grader.hub.services.exchange import exchange_service
from grader.hub.settings import load_settings


def settings_for(tmp_path, **top):
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump({"courses": {
        "ml201": {"formgrader_port": 8811, "instant_feedback": True}, "ml202": {"formgrader_port": 8812}}, **top}))
    return load_settings({"AICOURSE_CONFIG": str(config), "AICOURSE_DATA_DIR": str(tmp_path / "data")})


def test_only_the_courses_the_admin_allowed_are_graded_on_submit(tmp_path):
    settings = settings_for(tmp_path, exchange={"instant_workers": 3})
    service = exchange_service(settings)
    args = parse_args(service["command"][3:])
    assert dict(args.instant) == {"ml201": settings.course("ml201").course_dir}
    assert args.instant_workers == 3 and args.homes_dir == settings.homes_dir
    assert service["oauth_no_confirm"] is True  # the course pages log in through the hub


def test_off_by_default(tmp_path):
    config = tmp_path / "platform.yaml"
    config.write_text(yaml.safe_dump({"courses": {"ml201": {"formgrader_port": 8811}}}))
    settings = load_settings({"AICOURSE_CONFIG": str(config), "AICOURSE_DATA_DIR": str(tmp_path / "data")})
    assert parse_args(exchange_service(settings)["command"][3:]).instant == []


def test_instant_feedback_needs_the_http_exchange(tmp_path):
    with pytest.raises(ConfigError, match=r"courses\.ml201\.instant_feedback: needs exchange\.backend: http"):
        settings_for(tmp_path, exchange={"backend": "files"})


def test_the_service_refuses_instant_feedback_for_a_course_it_does_not_serve(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--root", str(tmp_path), "--port", "1", "--course", "c1", "--instant-feedback", f"c2={tmp_path}"])
    assert "--instant-feedback names 'c2', which is not one of the --course ids" in capsys.readouterr().err
