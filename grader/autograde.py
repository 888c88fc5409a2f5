"""Autograde: run each submitted notebook and record the scores in nbgrader's gradebook.

One broken submission never stops the others: each student is graded separately and a failure is
reported with the student and nbgrader's reason, while the rest of the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from grader.nbgrader_api import open_api


@dataclass(frozen=True)
class AutogradeOutcome:
    student_id: str
    success: bool
    error: str = ""


def autograde_assignment(
    *, course_dir: Path, assignment_id: str, students: list[str] | None = None, progress: bool = True
) -> list[AutogradeOutcome]:
    """Autograde ``assignment_id`` for ``students`` (default: everyone who submitted)."""
    outcomes = []
    with open_api(course_dir) as api:
        if students is None:
            students = sorted(api.get_submitted_students(assignment_id, "*"))
        for student_id in tqdm(students, desc=f"autograde {assignment_id}", unit="submission", disable=not progress):
            result = api.autograde(assignment_id, student_id, force=True, create=True)
            error = "" if result.get("success") else (result.get("error") or result.get("log") or "unknown error")
            outcomes.append(AutogradeOutcome(student_id, bool(result.get("success")), error.strip()))
    return outcomes
