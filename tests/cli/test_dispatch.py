"""Handlers are imported when they run: every one the parsers name exists, both scripts run as
modules, the old ``grader seats|course|accounts|hub`` spellings still parse, and a GraderError
is a message with exit status 2."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from grader.cli import dispatch, instructor
from tests.cli.parser_walk import SCRIPTS, all_parsers, walk


def _handlers():
    for command, parser in all_parsers():
        handler = parser._defaults.get("handler")
        if handler is not None:
            yield command, handler


HANDLERS = dict(_handlers())


@pytest.mark.parametrize("command", sorted(HANDLERS))
def test_every_handler_resolves(command):
    module_name, _, function_name = HANDLERS[command].target.partition(":")
    assert callable(getattr(importlib.import_module(module_name), function_name)), command


def test_every_seats_command_has_an_operation():
    from grader.seats.commands import COMMANDS

    named = {parser._defaults["seats_command"] for command, parser in all_parsers()
             if command.startswith("grader-admin seats") and "seats_command" in parser._defaults}
    assert named == set(COMMANDS)


def test_admin_commands_parse_the_same_under_grader():
    # README, docs and scripts say "grader seats ..."; grader-admin is the listed home.
    grader_tree = {path for path, _ in walk(SCRIPTS["grader"]())}
    admin_tree = {path for path, _ in walk(SCRIPTS["grader-admin"]()) if path[:1] != ("k8s",)}
    assert admin_tree - {()} <= grader_tree
    argv = ["seats", "cohort", "add", "Acme", "ai", "--course", "ai101", "--starts", "2026-01-01",
            "--ends", "2026-06-30", "--seats", "3", "--db", "sqlite://"]
    old, new = vars(instructor.build_parser().parse_args(argv)), vars(SCRIPTS["grader-admin"]().parse_args(argv))
    assert old.pop("handler").target == new.pop("handler").target == "grader.seats.commands:run"
    old.pop("course_dir")  # grader's own option
    assert old == new


def test_grader_error_is_a_message_and_status_2(capsys):
    from grader.grading.nbgrader_api import GraderError

    def failing(args):
        raise GraderError("no such assignment: a9")

    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=failing)
    assert dispatch.run(parser, []) == 2
    assert capsys.readouterr().err == "grader: no such assignment: a9\n"


def test_other_errors_propagate():
    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=lambda args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        dispatch.run(parser, [])


@pytest.mark.parametrize("module, words", [("grader.cli", "COMMAND ..."), ("grader.cli.instructor", "COMMAND ..."),
                                           ("grader.cli.admin", "k8s")])
def test_scripts_run_as_modules(module, words):
    result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and words in result.stdout
    assert result.stderr == ""  # e.g. runpy's "found in sys.modules" warning


def test_admin_k8s_is_handed_to_the_values_module():
    result = subprocess.run([sys.executable, "-m", "grader.cli.admin", "k8s", "image-tag", "cpu"],
                            capture_output=True, text=True)
    from grader.hub.kubernetes.values import image_tag

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == image_tag("cpu")
