"""The handlers of ``grader``'s verbs: each imports its verb module when it runs, calls it and
prints the outcome. Imports are inside the functions on purpose: ``grader status`` should not
pay for matplotlib (report) or the executor (autograde)."""

from __future__ import annotations

import argparse
import json
import sys


def init(args: argparse.Namespace) -> int:
    from grader.grading.course_dir import Course, prepare_course_dir

    course = Course(args.course_id, args.course_dir.resolve(), args.exchange.resolve())
    config_path = prepare_course_dir(course)
    print(f"course {course.course_id}: {config_path}")
    return 0


def release(args: argparse.Namespace) -> int:
    from grader.grading.release import release_assignment

    release_assignment(course_dir=args.course_dir, assignment_id=args.assignment, force=args.force)
    print(f"released {args.assignment}" + (" (replacing the earlier release)" if args.force else ""))
    return 0


def collect(args: argparse.Namespace) -> int:
    from grader.grading.collect import collect_submissions

    if args.watch is not None:
        from grader.grading.watch import watch_submissions

        if args.watch <= 0:
            print("grader collect: --watch needs a positive number of seconds", file=sys.stderr)
            return 2
        print(f"watching {args.assignment}: collect and autograde every {args.watch:g} s"
              + (", feedback released as graded" if args.feedback else "") + " (Ctrl-C stops it after the round)", flush=True)
        import threading

        from grader.grading.watch import stop_on_signals

        def say(line: str) -> None:
            print(line, flush=True)

        stop = threading.Event()
        stop_on_signals(stop, say)
        watch_submissions(course_dir=args.course_dir, assignment_id=args.assignment, every=args.watch,
                          feedback=args.feedback, log=say, stop=stop)
        return 0
    if args.feedback:
        print("grader collect: --feedback goes with --watch", file=sys.stderr)
        return 2
    students = collect_submissions(course_dir=args.course_dir, assignment_id=args.assignment)
    print(f"collected {len(students)} submission(s) of {args.assignment}")
    return 0


def autograde(args: argparse.Namespace) -> int:
    from grader.grading.autograde import autograde_assignment

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
    _push_to_the_lms(args)
    return 1 if failed else 0


def _push_to_the_lms(args: argparse.Namespace) -> None:
    from grader.cli.lti_commands import push_after_grading

    push_after_grading(args.course_dir, args.assignment)


def feedback(args: argparse.Namespace) -> int:
    from grader.grading.feedback import release_feedback

    release_feedback(course_dir=args.course_dir, assignment_id=args.assignment, student_id=args.student)
    print(f"released feedback for {args.assignment}")
    _push_to_the_lms(args)
    return 0


def export(args: argparse.Namespace) -> int:
    from grader.grading.export import export_grades

    path = export_grades(course_dir=args.course_dir, to=args.to, format=args.format, assignments=args.assignment)
    print(f"exported {args.format} grades to {path}")
    return 0


def report(args: argparse.Namespace) -> int:
    from grader.grading.report import write_report

    index = write_report(course_dir=args.course_dir, out_dir=args.out_dir, assignments=args.assignment)
    print(f"report written to {index}")
    return 0


def status(args: argparse.Namespace) -> int:
    from grader.grading.status import course_status, flagged_table, status_table, student_statuses

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


def similarity(args: argparse.Namespace) -> int:
    from grader.grading.similarity import run_similarity

    result, html_path, json_path = run_similarity(course_dir=args.course_dir, assignment_id=args.assignment,
                                                  corpus=args.corpus, threshold=args.threshold, out_dir=args.out_dir)
    flagged = result.flagged
    print(f"{args.assignment}: {len(result.students)} submission(s)"
          + (f" and {len(result.corpus)} of earlier terms" if result.corpus_folders else "")
          + f", {len(flagged)} pair(s) scoring {result.threshold:g} or more (for a person to read; nothing was decided)")
    for pair in flagged:
        print(f"  {pair.score:.2f}  {pair.a.document.label}  {pair.b.document.label}")
    for prepared in result.students:
        if prepared.document.unreadable:
            print(f"UNREADABLE  {prepared.document.student_id}: {', '.join(prepared.document.unreadable)}")
    print(f"report: {html_path}")
    print(f"results: {json_path}")
    return 0
