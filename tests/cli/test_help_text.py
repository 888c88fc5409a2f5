"""The help of both scripts is plain text: no reST markup, and every page renders."""

from __future__ import annotations

import re

import pytest

from tests.cli.parser_walk import all_parsers, texts

PARSERS = dict(all_parsers())
# reST inline literals and Sphinx roles (:func:`x`, :mod:`x`, :class:`x`, :meth:`x`...).
REST_MARKUP = re.compile(r"``|:(func|mod|class|meth|attr|data|exc|obj|ref|doc):`")


def test_the_walk_reaches_every_command():
    # Guards the walk itself: a test over zero parsers would pass for nothing.
    assert {"grader", "grader status", "grader autograde", "grader seats cohort add", "grader-admin",
            "grader-admin course add", "grader-admin hub caddyfile", "grader-admin accounts invite",
            "grader-admin seats org add", "grader-admin k8s"} <= set(PARSERS)


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_help_has_no_rest_markup(command):
    parser = PARSERS[command]
    marked = [f"{where}: {text!r}" for where, text in texts(parser) if REST_MARKUP.search(text)]
    assert not marked, f"{command}: reST markup in its help:\n" + "\n".join(marked)
    assert not REST_MARKUP.search(parser.format_help())


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_help_renders(command):
    # format_help expands %(default)s and friends; a bad placeholder raises here, not for a user.
    assert PARSERS[command].format_help().startswith("usage: ")


def test_instructor_help_lists_instructor_verbs_and_names_the_admin_script():
    text = PARSERS["grader"].format_help()
    for verb in ["init", "release", "collect", "autograde", "feedback", "export", "report", "status"]:
        assert re.search(rf"^\s+{verb}\s", text, re.MULTILINE), verb
    for admin_verb in ["course", "accounts", "seats"]:
        assert not re.search(rf"^\s+{admin_verb}\s", text, re.MULTILINE), admin_verb
    assert "grader-admin" in text


def test_admin_help_lists_admin_commands():
    text = PARSERS["grader-admin"].format_help()
    for verb in ["course", "hub", "accounts", "seats", "k8s"]:
        assert re.search(rf"^\s+{verb}\s", text, re.MULTILINE), verb
