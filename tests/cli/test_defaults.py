"""Defaults the parsers state (so that --help imports no verb module) agree with the code that
applies them."""

from __future__ import annotations

import inspect

from tests.cli.parser_walk import SCRIPTS, walk


def _options(script: str, *path: str) -> dict:
    parsers = dict(walk(SCRIPTS[script]()))
    return {action.dest: action for action in parsers[path]._actions}


def _signature_defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}


def test_export_format_choices_and_default():
    from grader.grading.export import EXPORTERS, export_grades

    options = _options("grader", "export")
    assert options["format"].choices == sorted(EXPORTERS)
    assert options["format"].default == _signature_defaults(export_grades)["format"]
    assert options["assignment"].default == _signature_defaults(export_grades)["assignments"]


def test_report_assignments_default():
    from grader.grading.report import write_report

    assert _options("grader", "report")["assignment"].default == _signature_defaults(write_report)["assignments"]


def test_course_add_defaults():
    from grader.hub.course_add import add_course

    defaults = _signature_defaults(add_course)
    options = _options("grader-admin", "course", "add")
    assert options["grader"].default == list(defaults["graders"])
    assert options["student"].default == list(defaults["students"])
    assert options["title"].default == defaults["title"]
    assert options["port"].default == defaults["formgrader_port"]
    assert options["config"].default == defaults["config_file"]


def test_invitation_hours():
    from grader.hub.auth.signup import INVITATION_HOURS, create_invitation

    assert _options("grader-admin", "accounts", "invite")["hours"].default == INVITATION_HOURS
    assert _signature_defaults(create_invitation)["hours"] == INVITATION_HOURS


def test_autograde_help_states_the_executors_limits():
    from grader.grading.executor.client import Limits

    options = _options("grader", "autograde")
    assert f"default: {Limits().submission_timeout:.0f})" in options["timeout"].help
    assert f"default: {Limits().memory_bytes >> 20})" in options["memory"].help
    assert f"default: {Limits().output_bytes >> 10})" in options["output_limit"].help


def test_seats_database_default_in_help_is_the_one_opened(tmp_path):
    from grader.hub.settings import HubSettings
    from grader.seats.db import environment_url

    db_help = _options("grader-admin", "seats")["db"].help
    assert HubSettings(data_dir=tmp_path).seats_db_url == f"sqlite:///{tmp_path}/seats.sqlite"
    assert "else the hub's settings: seats.db_url, else <data_dir>/seats.sqlite)" in db_help
    assert environment_url({"GRADER_SEATS_DB": "sqlite://"}) == "sqlite://" and environment_url({}) is None
    assert "(default: $GRADER_SEATS_DB," in db_help


def test_cohort_profiles_default_in_help_is_the_one_applied():
    from grader.seats.commands import DEFAULT_PROFILES

    assert f"default: {', '.join(DEFAULT_PROFILES)})" in _options("grader-admin", "seats", "cohort", "add")["profile"].help
