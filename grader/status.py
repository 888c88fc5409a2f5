"""Status: where each assignment stands, released, submitted, graded, still to grade, flagged.

"Graded" means what :mod:`grader.progress` says: grading finished, on the files now in
``submitted/``. :func:`graded_submissions` is that rule in one place; export and report read
scores only of the submissions it returns, so nothing half-written is ever read as a score.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from nbgrader.coursedir import CourseDirectory

from grader.nbgrader_api import load_course_config, open_api
from grader.progress import GradedRecord, ProgressStore, fingerprint


@dataclass(frozen=True)
class AssignmentStatus:
    assignment_id: str
    duedate: datetime.datetime | None  # UTC, as nbgrader stores it
    released: bool  # in the exchange, where students can fetch it
    submitted: int  # students with a submission in submitted/
    graded: int  # grading finished on the submitted files
    pending: int  # submitted but not graded yet, or graded from files since replaced
    flagged: int  # graded, with tampering found or a limit hit


def is_flagged(record: GradedRecord) -> bool:
    """Whether an instructor should look at this submission: tampering, or a limit that ended it."""
    return record.status != "ok" or bool(record.changes)


def graded_submissions(*, course_dir: Path, assignment_id: str) -> dict[str, GradedRecord]:
    """{student id: progress record} of the submissions of ``assignment_id`` whose grading finished.

    A record of older files is left out: the student resubmitted since, and a regrade of the new
    files may have been cut off half way, leaving the gradebook neither old nor new. A record whose
    submission folder is gone still counts: the gradebook holds its complete grades.
    """
    course_dir = Path(course_dir).resolve()
    coursedir = CourseDirectory(config=load_course_config(course_dir))
    graded = {}
    for record in ProgressStore(course_dir).records(assignment_id):
        folder = Path(coursedir.format_path(coursedir.submitted_directory, record.student_id, assignment_id))
        if not folder.is_dir() or fingerprint(folder) == record.fingerprint:
            graded[record.student_id] = record
    return graded


def pending_students(*, course_dir: Path, assignment_id: str) -> set[str]:
    """Students with a submission of ``assignment_id`` in ``submitted/`` that is not graded yet."""
    course_dir = Path(course_dir).resolve()
    with open_api(course_dir) as api:
        submitted = api.get_submitted_students(assignment_id)
    return submitted - graded_submissions(course_dir=course_dir, assignment_id=assignment_id).keys()


def course_status(*, course_dir: Path) -> list[AssignmentStatus]:
    """One status per assignment of the course (in ``source/`` or the gradebook), by name."""
    course_dir = Path(course_dir).resolve()
    statuses = []
    with open_api(course_dir) as api:
        released = api.get_released_assignments()
        with api.gradebook as gradebook:
            duedates = {assignment.name: assignment.duedate for assignment in gradebook.assignments}
        for assignment_id in sorted(api.get_source_assignments() | duedates.keys()):
            submitted = api.get_submitted_students(assignment_id)
            graded = graded_submissions(course_dir=course_dir, assignment_id=assignment_id)
            statuses.append(AssignmentStatus(
                assignment_id=assignment_id,
                duedate=duedates.get(assignment_id),
                released=assignment_id in released,
                submitted=len(submitted),
                graded=len(graded),
                pending=len(submitted - graded.keys()),
                flagged=sum(is_flagged(record) for record in graded.values()),
            ))
    return statuses


def status_table(statuses: list[AssignmentStatus]) -> str:
    """The statuses as a plain-text table, one assignment per line."""
    header = ("assignment", "due (UTC)", "released", "submitted", "graded", "pending", "flagged")
    rows = [header] + [
        (
            status.assignment_id,
            status.duedate.strftime("%Y-%m-%d %H:%M") if status.duedate else "-",
            "yes" if status.released else "no",
            str(status.submitted), str(status.graded), str(status.pending), str(status.flagged),
        )
        for status in statuses
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = []
    for row in rows:
        # Names and dates to the left, counts to the right.
        cells = [cell.ljust(width) if column < 3 else cell.rjust(width)
                 for column, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
