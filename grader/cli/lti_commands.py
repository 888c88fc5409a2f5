"""Handlers of ``grader lti ...`` (:mod:`grader.cli.lti_parser`): the hub's settings in, :mod:`grader.lti` out."""

from __future__ import annotations

import argparse
import os
import sys
import time


class LtiCommandError(Exception):
    pass


def _settings():
    from grader.hub.settings import load_settings

    settings = load_settings()
    if settings.auth.type != "lti13":
        raise LtiCommandError("the hub's settings do not use LTI (auth.type is not lti13); see docs/lms-lti13.md")
    return settings


def _course(settings, course: str | None) -> str:
    ids = [c.course_id for c in settings.courses]
    if course is None:
        if len(ids) != 1:
            raise LtiCommandError(f"name the course with --course (the hub has {', '.join(ids) or 'none'})")
        return ids[0]
    if course not in ids:
        raise LtiCommandError(f"no course {course!r} on the hub (known: {', '.join(ids) or 'none'})")
    return course


def _run(action) -> int:
    from grader.lti.registrations import RegistrationError
    from grader.lti.services import ServiceError

    try:
        return action()
    except (LtiCommandError, ServiceError, RegistrationError) as error:
        print(f"grader lti: {error}", file=sys.stderr)
        return 2


def sync_roster(args: argparse.Namespace) -> int:
    def action() -> int:
        from grader.lti.registrations import roster_token, tool_key
        from grader.lti.roster import HubApi, NbgraderGradebook
        from grader.lti.roster import sync_roster as sync
        from grader.lti.store import LtiStore

        settings = _settings()
        course = _course(settings, args.course)
        api = args.hub_api or os.environ.get("JUPYTERHUB_API_URL") or f"http://{settings.ip}:{settings.port}/hub/api"
        while True:
            report = sync(course=course, settings=settings.auth.lti13, key=tool_key(settings.data_dir),
                          store=LtiStore.of(settings.data_dir), hub=HubApi(api, roster_token(settings.data_dir)),
                          gradebook=NbgraderGradebook(settings.course(course).course_dir))
            for line in report.lines():
                print(f"{course}: {line}", flush=True)
            if not args.every:
                return 0
            time.sleep(args.every)

    return _run(action)


def push(args: argparse.Namespace) -> int:
    def action() -> int:
        from grader.lti.grades import push_scores
        from grader.lti.registrations import tool_key
        from grader.lti.store import LtiStore

        settings = _settings()
        course = _course(settings, args.course)
        report = push_scores(course=course, course_dir=settings.course(course).course_dir, assignment=args.assignment,
                             settings=settings.auth.lti13, key=tool_key(settings.data_dir),
                             store=LtiStore.of(settings.data_dir))
        for line in report.lines():
            print(f"{args.assignment}: {line}")
        return 1 if report.failed else 0

    return _run(action)


def sent(args: argparse.Namespace) -> int:
    def action() -> int:
        from grader.lti.store import LtiStore

        settings = _settings()
        for row in LtiStore.of(settings.data_dir).sent_scores(args.assignment):
            print(f"{row.assignment}\t{row.username}\t{row.score_given:g}/{row.score_maximum:g}\tHTTP {row.status}\t"
                  f"{row.attempts} attempt(s)\t{row.registration}\t{row.lineitem}")
        return 0

    return _run(action)


def push_after_grading(course_dir, assignment: str) -> None:
    """After ``grader autograde`` or ``grader feedback``: when the hub's settings use LTI with
    ``auth.lti13.push_after_grading`` and ``course_dir`` is one of its courses, send the
    assignment's scores to the LMS (what ``grader lti push`` does). Never fails the grading verb:
    a course outside a hub, or an LMS that does not answer, is a line on stderr."""
    from pathlib import Path

    try:
        from grader.hub.settings import load_settings

        settings = load_settings()
    except Exception:  # noqa: BLE001 - a course graded outside a hub: nothing to push to
        return
    lti = settings.auth.lti13 if settings.auth.type == "lti13" else None
    if lti is None or not lti.push_after_grading:
        return
    here = Path(course_dir).resolve()
    course = next((c.course_id for c in settings.courses
                   if Path(settings.course(c.course_id).course_dir).resolve() == here), None)
    if course is None:
        return

    def action() -> int:
        from grader.lti.grades import push_scores
        from grader.lti.registrations import tool_key
        from grader.lti.store import LtiStore

        report = push_scores(course=course, course_dir=here, assignment=assignment, settings=lti,
                             key=tool_key(settings.data_dir), store=LtiStore.of(settings.data_dir))
        for line in report.lines():
            print(f"LMS: {assignment}: {line}")
        return 0

    _run(action)
