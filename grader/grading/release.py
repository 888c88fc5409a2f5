"""Release: turn a source assignment into the student version and put it in the exchange."""

from __future__ import annotations

from pathlib import Path

from grader.grading.nbgrader_api import checked, open_api


def release_assignment(*, course_dir: Path, assignment_id: str) -> None:
    """Generate the student version of ``assignment_id`` (solutions and hidden tests stripped)
    and release it to the exchange, replacing an earlier release of the same assignment."""
    with open_api(course_dir) as api:
        checked(api.generate_assignment(assignment_id), f"generating {assignment_id}")
        # nbgrader refuses to release over an existing release; an instructor re-releasing a
        # corrected assignment expects it to replace the old one.
        if api.get_assignment(assignment_id).get("status") == "released":
            checked(api.unrelease(assignment_id), f"unreleasing the old {assignment_id}")
        checked(api.release_assignment(assignment_id), f"releasing {assignment_id}")
