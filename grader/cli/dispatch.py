"""Running a parsed command: handlers are named "module:function" and imported only when run.

This is what keeps ``grader --help`` fast: building a parser imports no verb module, so
nbgrader, JupyterHub, SQLAlchemy and matplotlib load only for the one command that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def lazy(target: str) -> Handler:
    """A handler that imports ``module:function`` when it runs, then calls it with the parsed args."""
    module_name, _, function_name = target.partition(":")

    def handler(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module_name), function_name)(args)

    handler.target = target  # type: ignore[attr-defined]  # tests check every target resolves
    return handler


def run(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run its handler; a GraderError is a message and exit status 2."""
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except Exception as error:
        if not _is_grader_error(error):
            raise
        print(f"grader: {error}", file=sys.stderr)
        return 2


def _is_grader_error(error: Exception) -> bool:
    # Only a command that imported the grading code can raise its GraderError, so looking the
    # class up in sys.modules spares every other command (and --help) importing it.
    errors = sys.modules.get("grader.grading.errors")
    return errors is not None and isinstance(error, errors.GraderError)
