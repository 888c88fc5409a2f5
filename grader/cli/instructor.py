"""``grader``: the instructor's command line.

Builds the parser only; the handlers live in :mod:`grader.cli.grading_commands` and import
their verb module when they run. The admin commands (``grader course|hub|accounts|seats``)
are accepted here too, unlisted, because scripts and docs call them that way; ``grader-admin``
(:mod:`grader.cli.admin`) lists them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from grader.cli.admin import add_admin_commands
from grader.cli.dispatch import lazy, run
from grader.cli.lti_parser import add_lti_command
from grader.grading.executor.limits import Limits

DESCRIPTION = "grader: the instructor's command line, a thin layer over the grading verbs."
EPILOG = ("The hub's administration (courses, accounts, seats, the TLS front, Kubernetes values) "
          "is grader-admin; grader course, grader hub, grader accounts and grader seats still work.")
# What export_grades accepts (grader.grading.export.EXPORTERS) and its default, stated here so
# that --help does not import nbgrader; tests/cli/test_defaults.py checks they agree.
EXPORT_FORMATS = ["canvas", "csv"]
EXPORT_DEFAULT_FORMAT = "csv"
# grader.grading.similarity.DEFAULT_THRESHOLD, stated here for --help (test_similarity.py checks they agree).
SIMILARITY_THRESHOLD = 0.5


def _course_dir_default() -> Path:
    return Path(os.environ.get("GRADER_COURSE_DIR", os.getcwd()))


def _commands(module: str, names: list[str]) -> dict[str, object]:
    return {name: lazy(f"{module}:{name}") for name in names}


def build_parser() -> argparse.ArgumentParser:
    handler = _commands("grader.cli.grading_commands",
                        ["init", "release", "collect", "autograde", "feedback", "export", "report", "status",
                         "similarity"])
    parser = argparse.ArgumentParser(prog="grader", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument(
        "--course-dir", type=Path, default=_course_dir_default(),
        help="nbgrader course directory (default: $GRADER_COURSE_DIR or the current directory)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND", title="commands")

    init = verbs.add_parser("init", help="create a course directory linked to assignments/source")
    init.add_argument("course_id")
    init.add_argument("--exchange", type=Path, required=True, help="nbgrader exchange root")
    init.set_defaults(handler=handler["init"])

    release = verbs.add_parser("release", help="generate the student version and release it")
    release.add_argument("assignment")
    release.add_argument("--force", action="store_true",
                         help="replace a release students may have fetched already (unrelease, then release)")
    release.set_defaults(handler=handler["release"])

    collect = verbs.add_parser("collect", help="collect the latest submissions")
    collect.add_argument("assignment")
    collect.add_argument("--watch", type=float, metavar="SECONDS", default=None,
                         help="keep going: every SECONDS collect what arrived and autograde it (until stopped)")
    collect.add_argument("--feedback", action="store_true",
                         help="with --watch: release each newly graded student's feedback")
    collect.set_defaults(handler=handler["collect"])

    limits = Limits()
    autograde = verbs.add_parser("autograde", help="grade every collected submission, in parallel and sandboxed")
    autograde.add_argument("assignment")
    autograde.add_argument("--workers", type=int, default=None, help="parallel submissions (default: number of cores)")
    autograde.add_argument("--cell-timeout", type=float, default=None,
                           help="seconds per cell (default: the course's Execute.timeout, as nbgrader)")
    autograde.add_argument("--timeout", type=float, default=None,
                           help=f"wall-clock seconds per submission (default: {limits.submission_timeout:.0f})")
    autograde.add_argument("--memory", type=int, default=None,
                           help=f"MiB of memory per submission (default: {limits.memory_bytes >> 20})")
    autograde.add_argument("--output-limit", type=int, default=None,
                           help=f"KiB of output per submission (default: {limits.output_bytes >> 10})")
    autograde.add_argument("--preload", default=None, help="comma-separated modules the executor imports once "
                           "(default: those the assignment's source notebooks import)")
    autograde.add_argument("--scheduler", default=None, help="Dask scheduler address (tcp://...) to grade on a cluster")
    autograde.add_argument("--db", default=None, help="gradebook URL (default: the course's, usually SQLite)")
    autograde.add_argument("--force", action="store_true", help="regrade submissions already graded")
    autograde.set_defaults(handler=handler["autograde"])

    feedback = verbs.add_parser("feedback", help="generate and release feedback")
    feedback.add_argument("assignment")
    feedback.add_argument("--student", default=None, help="only this student")
    feedback.set_defaults(handler=handler["feedback"])

    export = verbs.add_parser("export", help="write the scores, after late penalties, as CSV")
    export.add_argument("--to", type=Path, required=True, help="the CSV file to write")
    export.add_argument("--format", choices=EXPORT_FORMATS, default=EXPORT_DEFAULT_FORMAT,
                        help="csv: nbgrader's columns; canvas: a Canvas gradebook import (default: %(default)s)")
    export.add_argument("--assignment", action="append", default=None,
                        help="only this assignment (repeatable; default: all)")
    export.set_defaults(handler=handler["export"])

    report = verbs.add_parser("report", help="write an HTML report: scores, hardest tests, flagged submissions")
    report.add_argument("--out-dir", type=Path, required=True, help="folder for index.html and its images")
    report.add_argument("--assignment", action="append", default=None,
                        help="only this assignment (repeatable; default: all)")
    report.set_defaults(handler=handler["report"])

    status = verbs.add_parser("status", help="per assignment: released, submitted, graded, pending, flagged; "
                              "with an assignment: its flagged students and why")
    status.add_argument("assignment", nargs="?", default=None,
                        help="one assignment: per student, the score, how grading ended and every flag")
    status.add_argument("--json", action="store_true", help="print JSON (per student with an assignment)")
    status.set_defaults(handler=handler["status"])

    similarity = verbs.add_parser(
        "similarity", help="pairs of students whose answer cells share long passages (a signal to read, not a verdict)")
    similarity.add_argument("assignment")
    similarity.add_argument("--corpus", type=Path, action="append", default=[],
                            help="an earlier term's course directory or submitted/ folder to compare against "
                                 "(repeatable; never compared within itself)")
    similarity.add_argument("--threshold", type=float, default=SIMILARITY_THRESHOLD,
                            help="list pairs scoring at least this, 0 to 1 (default: %(default)s)")
    similarity.add_argument("--out-dir", type=Path, default=None,
                            help="folder for the HTML page (default: the course's similarity/ folder)")
    similarity.set_defaults(handler=handler["similarity"])

    add_lti_command(verbs)
    add_admin_commands(verbs, listed=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
