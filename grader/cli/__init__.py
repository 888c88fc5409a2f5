"""``grader``: the instructor's command line, a thin layer over the verb modules."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from pathlib import Path

from grader.grading.autograde import autograde_assignment
from grader.grading.collect import collect_submissions
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.executor.client import Limits
from grader.grading.export import EXPORTERS, export_grades
from grader.grading.feedback import release_feedback
from grader.hub.course_add import add_course
from grader.hub.layers import ConfigError
from grader.hub.settings import config_path, load_settings
from grader.hub.auth.signup import add_accounts_parser
from grader.hub.services.tls_front import render_caddyfile
from grader.grading.nbgrader_api import GraderError
from grader.grading.release import release_assignment
from grader.grading.report import write_report
from grader.seats.commands import add_seats_commands
from grader.grading.status import course_status, flagged_table, status_table, student_statuses


def _course_dir_default() -> Path:
    return Path(os.environ.get("GRADER_COURSE_DIR", os.getcwd()))


def _default(function, name: str):
    """The default of a verb function's argument, so the CLI never restates it."""
    return inspect.signature(function).parameters[name].default


def _cmd_init(args: argparse.Namespace) -> int:
    course = Course(args.course_id, args.course_dir.resolve(), args.exchange.resolve())
    config_path = prepare_course_dir(course)
    print(f"course {course.course_id}: {config_path}")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    release_assignment(course_dir=args.course_dir, assignment_id=args.assignment)
    print(f"released {args.assignment}")
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    students = collect_submissions(course_dir=args.course_dir, assignment_id=args.assignment)
    print(f"collected {len(students)} submission(s) of {args.assignment}")
    return 0


def _cmd_autograde(args: argparse.Namespace) -> int:
    given = {
        "cell_timeout": args.cell_timeout,
        "submission_timeout": args.timeout,
        "memory_bytes": args.memory << 20 if args.memory is not None else None,
        "output_bytes": args.output_limit << 10 if args.output_limit is not None else None,
    }
    outcomes = autograde_assignment(
        course_dir=args.course_dir,
        assignment_id=args.assignment,
        workers=args.workers,
        limit_overrides={name: value for name, value in given.items() if value is not None},
        preload=args.preload.split(",") if args.preload is not None else None,
        scheduler=args.scheduler,
        db_url=args.db,
        force=args.force,
    )
    failed = [o for o in outcomes if not o.success]
    skipped = sum(o.skipped for o in outcomes)
    for outcome in outcomes:
        if not outcome.success:
            print(f"FAILED  {outcome.student_id}: {outcome.error.splitlines()[-1] if outcome.error else ''}", file=sys.stderr)
        elif outcome.status != "ok":
            print(f"LIMIT   {outcome.student_id}: {outcome.status}: {outcome.reason}")
        for change in outcome.changes:
            print(f"TAMPER  {outcome.student_id}: {change}")
    print(f"autograded {len(outcomes) - len(failed) - skipped} of {len(outcomes)} submission(s)"
          + (f", {skipped} already graded" if skipped else "") + (f", {len(failed)} failed" if failed else ""))
    return 1 if failed else 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    release_feedback(course_dir=args.course_dir, assignment_id=args.assignment, student_id=args.student)
    print(f"released feedback for {args.assignment}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    path = export_grades(course_dir=args.course_dir, to=args.to, format=args.format, assignments=args.assignment)
    print(f"exported {args.format} grades to {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    index = write_report(course_dir=args.course_dir, out_dir=args.out_dir, assignments=args.assignment)
    print(f"report written to {index}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    if args.assignment is None:
        statuses = course_status(course_dir=args.course_dir)
        if args.json:
            print(json.dumps([{
                "assignment_id": status.assignment_id,
                "duedate": status.duedate.isoformat() if status.duedate else None,
                "released": status.released, "submitted": status.submitted, "graded": status.graded,
                "pending": status.pending, "flagged": status.flagged,
            } for status in statuses], indent=2))
        else:
            print(status_table(statuses))
        return 0
    students = student_statuses(course_dir=args.course_dir, assignment_id=args.assignment)
    if args.json:
        print(json.dumps({"assignment_id": args.assignment, "students": [s.to_dict() for s in students]}, indent=2))
    else:
        flagged = sum(status.flagged for status in students)
        print(f"{args.assignment}: {sum(s.graded for s in students)} graded, "
              f"{sum(not s.graded for s in students)} pending, {flagged} flagged")
        print(flagged_table(students))
    return 0


def _cmd_course_add(args: argparse.Namespace) -> int:
    try:
        entry = add_course(
            args.course_id, instructors=args.instructor, graders=args.grader, students=args.student,
            title=args.title, formgrader_port=args.port, config_file=args.config,
        )
    except ConfigError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 2
    print(f"added course {args.course_id} (formgrader on port {entry['formgrader_port']}); "
          "restart the hub to create its accounts and start its formgrader")
    return 0


def _cmd_hub_caddyfile(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 2
    if not settings.https.enabled:
        print(f"grader: {config_path()}: https.enabled is not true: the hub starts no TLS front", file=sys.stderr)
        return 1
    print(render_caddyfile(settings), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grader", description=__doc__)
    parser.add_argument(
        "--course-dir", type=Path, default=_course_dir_default(),
        help="nbgrader course directory (default: $GRADER_COURSE_DIR or the current directory)",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)

    init = verbs.add_parser("init", help="create a course directory linked to assignments/source")
    init.add_argument("course_id")
    init.add_argument("--exchange", type=Path, required=True, help="nbgrader exchange root")
    init.set_defaults(handler=_cmd_init)

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
    autograde.set_defaults(handler=_cmd_autograde)

    for name, handler, help_text in [
        ("release", _cmd_release, "generate the student version and release it"),
        ("collect", _cmd_collect, "collect the latest submissions"),
        ("feedback", _cmd_feedback, "generate and release feedback"),
    ]:
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("assignment")
        if name == "feedback":
            verb.add_argument("--student", default=None, help="only this student")
        verb.set_defaults(handler=handler)

    export = verbs.add_parser("export", help="write the scores, after late penalties, as CSV")
    export.add_argument("--to", type=Path, required=True, help="the CSV file to write")
    export.add_argument("--format", choices=sorted(EXPORTERS), default=_default(export_grades, "format"),
                        help="csv: nbgrader's columns; canvas: a Canvas gradebook import (default: %(default)s)")
    export.add_argument("--assignment", action="append", default=_default(export_grades, "assignments"),
                        help="only this assignment (repeatable; default: all)")
    export.set_defaults(handler=_cmd_export)

    report = verbs.add_parser("report", help="write an HTML report: scores, hardest tests, flagged submissions")
    report.add_argument("--out-dir", type=Path, required=True, help="folder for index.html and its images")
    report.add_argument("--assignment", action="append", default=_default(write_report, "assignments"),
                        help="only this assignment (repeatable; default: all)")
    report.set_defaults(handler=_cmd_report)

    course = verbs.add_parser("course", help="manage the hub's courses (edits the platform YAML)")
    course_verbs = course.add_subparsers(dest="course_verb", required=True)
    add = course_verbs.add_parser("add", help="add a course with its own course directory, formgrader and exchange folder")
    add.add_argument("course_id")
    add.add_argument("--instructor", action="append", required=True, help="instructor account (repeatable)")
    add.add_argument("--grader", action="append", default=list(_default(add_course, "graders")),
                     help="grader account: opens the formgrader only (repeatable)")
    add.add_argument("--student", action="append", default=list(_default(add_course, "students")),
                     help="student account (repeatable)")
    add.add_argument("--title", default=_default(add_course, "title"), help="the course's name as people read it")
    add.add_argument("--port", type=int, default=_default(add_course, "formgrader_port"),
                     help="loopback port of its formgrader (default: the next after the highest course port)")
    add.add_argument("--config", type=Path, default=_default(add_course, "config_file"),
                     help="platform YAML to edit (default: $AICOURSE_CONFIG or hub_config/platform.yaml)")
    add.set_defaults(handler=_cmd_course_add)

    hub = verbs.add_parser("hub", help="the hub's own set-up, as the platform YAML describes it")
    hub_verbs = hub.add_subparsers(dest="hub_verb", required=True)
    hub_verbs.add_parser("caddyfile", help="print the Caddyfile of the TLS front (https: in the platform YAML) "
                         "that the hub writes and runs").set_defaults(handler=_cmd_hub_caddyfile)

    add_accounts_parser(verbs)

    status = verbs.add_parser("status", help="per assignment: released, submitted, graded, pending, flagged; "
                              "with an assignment: its flagged students and why")
    status.add_argument("assignment", nargs="?", default=None,
                        help="one assignment: per student, the score, how grading ended and every flag")
    status.add_argument("--json", action="store_true", help="print JSON (per student with an assignment)")
    status.set_defaults(handler=_cmd_status)

    add_seats_commands(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except GraderError as error:
        print(f"grader: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
