"""The command lines: ``grader`` for instructors (:mod:`.instructor`) and ``grader-admin`` for
whoever runs the hub (:mod:`.admin`).

Each parser is built without importing the code it runs (:mod:`.dispatch`), so ``--help`` and
argument errors cost milliseconds; a command imports its verb module only when it runs.
"""

from __future__ import annotations

from typing import Sequence


# Functions rather than re-exports: importing this package (as ``python -m grader.cli.admin``
# does first) then imports neither script's module.
def main(argv: Sequence[str] | None = None) -> int:
    """``grader``: the console script's entry point (``grader.cli:main``)."""
    from grader.cli.instructor import main as instructor_main

    return instructor_main(argv)


def build_parser():
    """``grader``'s parser."""
    from grader.cli.instructor import build_parser as instructor_parser

    return instructor_parser()
