"""How far a cohort's learners got (best effort).

- **Assignment scores** come from the course's nbgrader gradebook (the ``db_url`` of its
  ``nbgrader_config.py``, so a PostgreSQL gradebook works too): each submission's score minus its
  late penalty, by assignment id, for learners the gradebook knows.
- **Lessons run** come from the seats database: each learner's own server reports a lesson the
  first time it saves it with an executed code cell (:mod:`grader.seats.lesson_reports`), so the
  count is the same on one machine and on Kubernetes, where the homes are not on the hub's disk.
  A lesson run but never saved does not count.

Anything missing (no course directory, no gradebook yet) counts as no progress rather than
failing the report: the report is about seats and usage first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from grader.seats.store import lessons_run_by
from grader.seats.usage_reports import LearnerProgress

log = logging.getLogger(__name__)


def _gradebook_url(course_dir: Path) -> str | None:
    from nbgrader.coursedir import CourseDirectory

    from grader.grading.nbgrader_api import load_course_config

    try:
        url = CourseDirectory(config=load_course_config(course_dir)).db_url
    except Exception as error:  # a broken course config must not break the seats report
        log.warning("seats: no gradebook for %s: %s", course_dir, error)
        return None
    parsed = make_url(url)
    # Opening a missing SQLite gradebook would create an empty one in the instructor's course.
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None
    return url


def assignment_scores(*, course_id: str, course_dir: Path, usernames: Iterable[str]) -> dict[str, dict[str, float]]:
    """{learner: {assignment id: score}} from the course's gradebook; {} when there is none."""
    from nbgrader.api import Gradebook, MissingEntry

    url = _gradebook_url(course_dir)
    if url is None:
        return {}
    wanted = set(usernames)
    scores: dict[str, dict[str, float]] = {}
    try:
        with Gradebook(url, course_id=course_id) as gradebook:
            for assignment in gradebook.assignments:
                for username in wanted:
                    try:
                        submission = gradebook.find_submission(assignment.name, username)
                    except MissingEntry:
                        continue
                    penalty = submission.late_submission_penalty or 0.0
                    scores.setdefault(username, {})[assignment.name] = max(submission.score - penalty, 0.0)
    except Exception as error:  # an unreachable or half-migrated gradebook: report without scores
        log.warning("seats: cannot read the gradebook of %s: %s", course_id, error)
        return {}
    return scores


def learner_progress(session: Session, *, usernames: Iterable[str], course_id: str,
                     course_dir: Path | None) -> dict[str, LearnerProgress]:
    """Each learner's lessons run (the seats database behind ``session``) and assignment scores in one course."""
    usernames = list(dict.fromkeys(usernames))
    scores = assignment_scores(course_id=course_id, course_dir=course_dir, usernames=usernames) if course_dir else {}
    lessons = lessons_run_by(session, usernames=usernames)
    return {name: LearnerProgress(lessons_run=lessons[name], scores=scores.get(name, {})) for name in usernames}
