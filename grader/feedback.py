"""Feedback: generate each student's graded HTML and release it to the exchange."""

from __future__ import annotations

from pathlib import Path

from grader.nbgrader_api import checked, open_api


def release_feedback(*, course_dir: Path, assignment_id: str, student_id: str | None = None) -> None:
    """Generate feedback for one student (or all) and put it where ``fetch_feedback`` finds it."""
    with open_api(course_dir) as api:
        checked(api.generate_feedback(assignment_id, student_id), f"generating feedback for {assignment_id}")
        checked(api.release_feedback(assignment_id, student_id), f"releasing feedback for {assignment_id}")
