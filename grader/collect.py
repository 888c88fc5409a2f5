"""Collect: copy every student's latest submission from the exchange into ``submitted/``."""

from __future__ import annotations

from pathlib import Path

from grader.nbgrader_api import checked, open_api


def collect_submissions(*, course_dir: Path, assignment_id: str) -> list[str]:
    """Collect the latest submission of each student; return the student ids now submitted."""
    with open_api(course_dir) as api:
        checked(api.collect(assignment_id, update=True), f"collecting {assignment_id}")
        return sorted(api.get_submitted_students(assignment_id))
