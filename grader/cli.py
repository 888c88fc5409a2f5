"""``grader``: the instructor's command line, a thin layer over the verb modules."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from grader.autograde import autograde_assignment
from grader.collect import collect_submissions
from grader.course import Course, prepare_course_dir
from grader.feedback import release_feedback
from grader.nbgrader_api import GraderError
from grader.release import release_assignment


def _course_dir_default() -> Path:
    return Path(os.environ.get("GRADER_COURSE_DIR", os.getcwd()))


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
    outcomes = autograde_assignment(course_dir=args.course_dir, assignment_id=args.assignment)
    failed = [o for o in outcomes if not o.success]
    for outcome in failed:
        print(f"FAILED {outcome.student_id}: {outcome.error.splitlines()[-1] if outcome.error else ''}", file=sys.stderr)
    print(f"autograded {len(outcomes) - len(failed)} of {len(outcomes)} submission(s)")
    return 1 if failed else 0


def _cmd_feedback(args: argparse.Namespace) -> int:
    release_feedback(course_dir=args.course_dir, assignment_id=args.assignment, student_id=args.student)
    print(f"released feedback for {args.assignment}")
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

    for name, handler, help_text in [
        ("release", _cmd_release, "generate the student version and release it"),
        ("collect", _cmd_collect, "collect the latest submissions"),
        ("autograde", _cmd_autograde, "autograde every collected submission"),
        ("feedback", _cmd_feedback, "generate and release feedback"),
    ]:
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("assignment")
        if name == "feedback":
            verb.add_argument("--student", default=None, help="only this student")
        verb.set_defaults(handler=handler)
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
