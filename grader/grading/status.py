"""Status: where each assignment stands, released, submitted, graded, still to grade, flagged.

"Graded" means what :mod:`grader.grading.resume` says: grading finished, on the files now in
``submitted/``. :func:`graded_submissions` is that rule in one place; export and report read
scores only of the submissions it returns, so nothing half-written is ever read as a score.

:func:`student_statuses` is one assignment seen per student (score, how the run ended, every
flag with its reason, whether the course's ``flagged_policy`` zeroed it): ``grader status
ASSIGNMENT --json`` prints it, ``grader status ASSIGNMENT`` shows its flagged students.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.coursedir import CourseDirectory

from grader.grading.integrity.flags import Flag
from grader.grading.integrity.policy import zeroed_by_policy
from grader.grading.nbgrader_api import load_course_config, open_api
from grader.grading.resume import GradedRecord, ProgressStore, fingerprint, record_flags


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
    """Whether an instructor should look at this submission: it has a flag (tampering, files that
    are not regular files, a forged-verdict attempt, a limit that ended it)."""
    return bool(record_flags(record))


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


@dataclass(frozen=True)
class StudentStatus:
    """One student's submission of one assignment, as ``grader status ASSIGNMENT`` shows it."""

    student_id: str
    graded: bool  # grading finished on the files now submitted
    score: float | None  # the gradebook's score (manual overrides, a policy zero included), before late penalty
    max_score: float
    late_penalty: float
    status: str  # ok, timeout, memory, output, processes, died... ; "pending" while not graded
    reason: str = ""
    flags: list[Flag] = field(default_factory=list)
    zeroed: bool = False  # the score is 0 by c.Grader.flagged_policy = "zero", until reviewed

    @property
    def flagged(self) -> bool:
        return bool(self.flags)

    def to_dict(self) -> dict:
        return {
            "student_id": self.student_id, "graded": self.graded, "score": self.score,
            "max_score": self.max_score, "late_penalty": self.late_penalty, "status": self.status,
            "reason": self.reason, "flags": [flag.to_dict() for flag in self.flags], "zeroed": self.zeroed,
        }


def student_statuses(*, course_dir: Path, assignment_id: str) -> list[StudentStatus]:
    """Every student with a graded or submitted submission of ``assignment_id``, by id."""
    course_dir = Path(course_dir).resolve()
    config = load_course_config(course_dir)
    coursedir = CourseDirectory(config=config)
    graded = graded_submissions(course_dir=course_dir, assignment_id=assignment_id)
    pending = pending_students(course_dir=course_dir, assignment_id=assignment_id)
    statuses = []
    with Gradebook(coursedir.db_url, coursedir.course_id) as gradebook:
        try:
            max_score = gradebook.find_assignment(assignment_id).max_score
        except MissingEntry:
            max_score = 0.0
        for student_id in sorted(graded.keys() | pending):
            record = graded.get(student_id)
            score, penalty = None, 0.0
            if record is not None:
                try:
                    submission = gradebook.find_submission(assignment_id, student_id)
                    score, penalty = submission.score, submission.late_submission_penalty or 0.0
                except MissingEntry:  # graded into another gradebook (autograde --db)
                    pass
            statuses.append(StudentStatus(
                student_id=student_id,
                graded=record is not None,
                score=score,
                max_score=max_score,
                late_penalty=penalty,
                status=record.status if record else "pending",
                reason=record.reason if record else "",
                flags=record_flags(record) if record else [],
                zeroed=record is not None and zeroed_by_policy(gradebook, coursedir.course_id, assignment_id, student_id),
            ))
    return statuses


def flagged_table(statuses: list[StudentStatus]) -> str:
    """The flagged students of an assignment as plain text: one line per flag, student first."""
    flagged = [status for status in statuses if status.flags]
    if not flagged:
        return "no flagged submissions"
    header = ("student", "score", "status", "flag", "reason")
    rows = [header]
    for status in flagged:
        score = "-" if status.score is None else f"{status.score:g}/{status.max_score:g}" + (" (zeroed)" if status.zeroed else "")
        for index, flag in enumerate(status.flags):
            first = index == 0
            rows.append((status.student_id if first else "", score if first else "", status.status if first else "",
                         flag.kind, flag.reason))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    return "\n".join("  ".join([cell.ljust(width) for cell, width in zip(row, widths)] + [row[-1]]).rstrip() for row in rows)
