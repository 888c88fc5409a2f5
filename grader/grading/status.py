"""Status: where each assignment stands, released, submitted, graded, still to grade, flagged.

"Graded" means what :mod:`grader.grading.resume` says: grading finished, on the files now in
``submitted/``. :func:`graded_submissions` is that rule in one place; export and report read
scores only of the submissions it returns, so nothing half-written is ever read as a score.

:func:`student_statuses` is one assignment seen per student (score, how the run ended, every
flag with its reason, whether the course's ``flagged_policy`` zeroed it): ``grader status
ASSIGNMENT --json`` prints it, ``grader status ASSIGNMENT`` shows its flagged students.

Nothing here imports nbgrader (about 2 s of imports against 0.06 s of work): the course config,
the folders and the gradebook are read by :mod:`~grader.grading.course_config`,
:mod:`~grader.grading.course_folders` and :mod:`~grader.grading.gradebook_read`, which repeat what
nbgrader's API computes (tests/grading/test_gradebook_read.py holds them to it).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from pathlib import Path

from grader.flags import Flag
from grader.grading.course_config import CourseConfig, read_course_config
from grader.grading.course_folders import released_assignments, source_assignments, submitted_students
from grader.grading.gradebook_read import open_gradebook
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
    return _graded(course_dir, read_course_config(course_dir), assignment_id)


def _graded(course_dir: Path, settings: CourseConfig, assignment_id: str) -> dict[str, GradedRecord]:
    graded = {}
    for record in ProgressStore(course_dir).records(assignment_id):
        folder = Path(settings.format_path(settings.submitted_directory, record.student_id, assignment_id))
        if not folder.is_dir() or fingerprint(folder) == record.fingerprint:
            graded[record.student_id] = record
    return graded


def pending_students(*, course_dir: Path, assignment_id: str) -> set[str]:
    """Students with a submission of ``assignment_id`` in ``submitted/`` that is not graded yet."""
    course_dir = Path(course_dir).resolve()
    settings = read_course_config(course_dir)
    return submitted_students(settings, assignment_id) - _graded(course_dir, settings, assignment_id).keys()


def course_status(*, course_dir: Path) -> list[AssignmentStatus]:
    """One status per assignment of the course (in ``source/`` or the gradebook), by name."""
    course_dir = Path(course_dir).resolve()
    settings = read_course_config(course_dir)
    released = released_assignments(settings)
    with open_gradebook(settings.db_url, course_id=settings.course_id, root=settings.root) as gradebook:
        duedates = gradebook.duedates()
    statuses = []
    for assignment_id in sorted(source_assignments(settings) | duedates.keys()):
        submitted = submitted_students(settings, assignment_id)
        graded = _graded(course_dir, settings, assignment_id)
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
    settings = read_course_config(course_dir)
    graded = _graded(course_dir, settings, assignment_id)
    pending = submitted_students(settings, assignment_id) - graded.keys()
    with open_gradebook(settings.db_url, course_id=settings.course_id, root=settings.root) as gradebook:
        max_score = gradebook.max_score(assignment_id) or 0.0
        # A graded record without a submission here was graded into another gradebook (autograde --db).
        submissions = gradebook.submissions(assignment_id)
    statuses = []
    for student_id in sorted(graded.keys() | pending):
        record = graded.get(student_id)
        submission = submissions.get(student_id) if record is not None else None
        statuses.append(StudentStatus(
            student_id=student_id,
            graded=record is not None,
            score=submission.score if submission else None,
            max_score=max_score,
            late_penalty=submission.late_penalty if submission else 0.0,
            status=record.status if record else "pending",
            reason=record.reason if record else "",
            flags=record_flags(record) if record else [],
            zeroed=submission is not None and submission.zeroed_by_policy,
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
