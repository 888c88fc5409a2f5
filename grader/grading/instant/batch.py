"""Grade a batch of submissions of one assignment exactly as ``grader autograde`` grades them.

Each submission is copied from the exchange's storage into the course's ``submitted/`` folder
(what ``grader collect`` does over HTTP: the same files, ``timestamp.txt`` included, regular
files only), then :func:`grader.grading.autograde.autograde_assignment` grades the batch into the
course's nbgrader gradebook, sandboxed, in parallel, with the course's late policy and flagged
policy. The scores are read back from that gradebook, so they are the ones the formgrader,
``grader export`` and a later ``grader autograde`` see.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import parse_utc

from grader.flags import Flag
from grader.grading.autograde import autograde_assignment
from grader.grading.instant.results import graded_result
from grader.grading.nbgrader_api import load_course_config
from grader.grading.resume import ProgressStore, record_flags
from grader.regular_files import copy_regular_tree


@dataclass(frozen=True)
class Job:
    """One submission to grade: whose, which, and where the exchange stored its files."""

    student_id: str
    submission_id: str
    timestamp: str
    path: Path


def place_submission(coursedir: CourseDirectory, assignment_id: str, job: Job) -> list[Flag]:
    """Put the job's files where ``grader collect`` would: ``submitted/<student>/<assignment>/``."""
    destination = Path(coursedir.format_path(coursedir.submitted_directory, job.student_id, assignment_id))
    if destination.exists():
        shutil.rmtree(destination)
    return copy_regular_tree(job.path, destination)


def grade_batch(*, course_dir: Path, assignment_id: str, jobs: list[Job], workers: int | None = None) -> Iterator[dict]:
    """Grade ``jobs`` (one per student) and yield one result per job, in the order they finish
    reading: ``{"submission_id", "student_id", "status": "graded"|"error", ...}``."""
    course_dir = Path(course_dir).resolve()
    config = load_course_config(course_dir)
    coursedir = CourseDirectory(config=config)
    placed, answers = [], {}
    for job in jobs:
        try:
            copy_flags = place_submission(coursedir, assignment_id, job)
        except OSError as error:  # a missing or unreadable submission fails alone
            answers[job.student_id] = {"status": "error", "message": f"could not copy the submission: {error}"}
            continue
        placed.append((job, copy_flags))
    outcomes = {}
    if placed:
        outcomes = {outcome.student_id: outcome for outcome in autograde_assignment(
            course_dir=course_dir, assignment_id=assignment_id, students=[job.student_id for job, _ in placed],
            workers=workers or min(len(placed), os.cpu_count() or 1), progress=False)}
    records = {record.student_id: record for record in ProgressStore(course_dir).records(assignment_id)}
    source = Path(coursedir.format_path(coursedir.source_directory, ".", assignment_id))
    for job in jobs:
        answer = {"student_id": job.student_id, "submission_id": job.submission_id}
        if job.student_id in answers:
            yield {**answer, **answers[job.student_id]}
            continue
        copy_flags = next(flags for placed_job, flags in placed if placed_job is job)
        outcome = outcomes.get(job.student_id)
        if outcome is None or not outcome.success or outcome.status == "empty":
            reason = (outcome.error or outcome.reason) if outcome else "not graded"
            yield {**answer, "status": "error", "message": reason,
                   "flags": [flag.to_dict() for flag in copy_flags]}
            continue
        result = graded_result(
            db_url=coursedir.db_url, course_id=coursedir.course_id, assignment_id=assignment_id,
            student_id=job.student_id, source_folder=source,
            autograded_folder=Path(coursedir.format_path(coursedir.autograded_directory, job.student_id, assignment_id)))
        if result is None or parse_utc(result.timestamp) != parse_utc(job.timestamp):
            # Someone else (an instructor's collect) replaced the submission while it was graded.
            yield {**answer, "status": "error", "message": "the gradebook holds another submission of this student"}
            continue
        record = records.get(job.student_id)
        flags = (record_flags(record) if record else list(outcome.flags)) + copy_flags
        yield {**answer, "status": "graded", "result": result.as_json(),
               "flags": [flag.to_dict() for flag in dict.fromkeys(flags)], "zeroed": outcome.zeroed,
               "limit": outcome.status if outcome.status != "ok" else ""}


def feedback_html(*, course_dir: Path, assignment_id: str, student_id: str) -> dict[str, str]:
    """Generate the student's feedback (``grader feedback``'s, hidden tests redacted) and return
    ``{"<notebook>.html": html}``."""
    from grader.grading.feedback import generate_feedback

    course_dir = Path(course_dir).resolve()
    generate_feedback(course_dir=course_dir, assignment_id=assignment_id, student_id=student_id)
    coursedir = CourseDirectory(config=load_course_config(course_dir))
    folder = Path(coursedir.format_path(coursedir.feedback_directory, student_id, assignment_id))
    return {path.name: path.read_text(errors="replace") for path in sorted(folder.glob("*.html"))}
