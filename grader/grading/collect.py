"""Collect: copy every student's latest submission from the exchange into ``submitted/``.

With nbgrader's file exchange the copy is :class:`grader.grading.file_exchange.Collect`'s: regular
files only, nothing followed; what it skipped is reported (and kept for autograde's flags).
The HTTP exchange (:mod:`grader.exchange.plugins`) only ever holds regular files: its service refuses
anything else at submit.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from traitlets.config import Config

from grader.flags import Flag
from grader.grading.nbgrader_api import checked, load_course_config, open_api
from grader.grading.resume import ProgressStore

SAFE_FILE_COLLECT = "grader.grading.file_exchange.Collect"
NBGRADER_FILE_COLLECT = "nbgrader.exchange.default.collect.ExchangeCollect"


def _print_skipped(student_id: str, flag: Flag) -> None:
    print(f"SKIPPED {student_id}: {flag.reason}", file=sys.stderr)


def collect_overrides(course_dir: Path) -> Config:
    """The configuration that makes a file-exchange course collect with the safe copy; a course
    configured with another collect plugin (the HTTP exchange's) keeps it."""
    overrides = Config()
    configured = load_course_config(course_dir).ExchangeFactory.get("collect", NBGRADER_FILE_COLLECT)
    if configured in (NBGRADER_FILE_COLLECT, "nbgrader.exchange.default.ExchangeCollect"):
        overrides.ExchangeFactory.collect = SAFE_FILE_COLLECT
    return overrides


def collect_submissions(*, course_dir: Path, assignment_id: str,
                        report: Callable[[str, Flag], None] | None = _print_skipped) -> list[str]:
    """Collect the latest submission of each student; return the student ids now submitted.

    ``report(student_id, flag)`` is called for each entry this collect skipped (by default printed
    to stderr); :func:`skipped_entries` reads them back later."""
    store = ProgressStore(Path(course_dir))
    before = store.collected(assignment_id)
    with open_api(course_dir, collect_overrides(course_dir)) as api:
        checked(api.collect(assignment_id, update=True), f"collecting {assignment_id}")
        students = sorted(api.get_submitted_students(assignment_id))
    if report is not None:
        for student_id, (when, flags) in sorted(store.collected(assignment_id).items()):
            if before.get(student_id, (None,))[0] != when:  # collected by this run
                for flag in flags:
                    report(student_id, flag)
    return students


def skipped_entries(*, course_dir: Path, assignment_id: str) -> dict[str, list[Flag]]:
    """{student id: files flags} of what the last collect of each submission skipped (non-empty only)."""
    return {student: flags for student, (_, flags) in ProgressStore(Path(course_dir)).collected(assignment_id).items()
            if flags}
