"""Walk an argparse tree: every parser and subparser of the ``grader`` and ``grader-admin`` scripts."""

from __future__ import annotations

import argparse
from typing import Iterator

from grader.cli import admin, instructor

SCRIPTS = {"grader": instructor.build_parser, "grader-admin": admin.build_parser}


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Each parser under ``parser`` (itself first) with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from walk(subparser, (*path, name))


def texts(parser: argparse.ArgumentParser) -> Iterator[tuple[str, str]]:
    """Every text a user can read in a parser's help: (where, text)."""
    for where in ("description", "epilog", "usage"):
        if getattr(parser, where):
            yield where, getattr(parser, where)
    for action in parser._actions:
        name = "/".join(action.option_strings) or action.dest
        for where in ("help", "metavar"):
            if isinstance(getattr(action, where), str):
                yield f"{name} {where}", getattr(action, where)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the one-line help of each subcommand
                yield f"{choice.dest} help", choice.help


def all_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(``script word word``, parser) for every parser of both scripts."""
    for script, build in SCRIPTS.items():
        for path, parser in walk(build()):
            yield " ".join((script, *path)), parser
