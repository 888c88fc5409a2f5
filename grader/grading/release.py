"""Release: turn a source assignment into the student version and put it in the exchange."""

from __future__ import annotations

from pathlib import Path

from grader.grading.nbgrader_api import GraderError, checked, open_api


def already_released_message(assignment_id: str) -> str:
    return (f"{assignment_id} is released already, and students may have fetched it. Add --force to "
            f"replace it: the release is withdrawn and the newly generated {assignment_id} released in "
            "its place; students who fetched the old one keep their copy, and the new one reaches them "
            "only if they fetch again after deleting or renaming that folder.")


def release_assignment(*, course_dir: Path, assignment_id: str, force: bool = False) -> None:
    """Generate the student version of ``assignment_id`` (solutions and hidden tests stripped)
    and release it to the exchange.

    An assignment already in the exchange is replaced only with ``force``, as ``nbgrader
    release_assignment`` refuses without ``--force``: students may have fetched the old version.
    Without it, nothing is generated or changed and a GraderError says so."""
    with open_api(course_dir) as api:
        released = api.get_assignment(assignment_id).get("status") == "released"
        if released and not force:
            raise GraderError(already_released_message(assignment_id))
        checked(api.generate_assignment(assignment_id), f"generating {assignment_id}")
        if released:
            # nbgrader's exchanges refuse to release over an existing release; withdraw it first.
            checked(api.unrelease(assignment_id), f"unreleasing the old {assignment_id}")
        checked(api.release_assignment(assignment_id), f"releasing {assignment_id}")
