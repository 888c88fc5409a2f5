"""What a student and what the course's staff see, as JSON; the pages render the same dicts.

A student's view holds their own submissions only, filtered by the assignment's policy
(:mod:`grader.grading.instant.policy`): ``visible`` keeps the visible tests and their score,
``full`` the whole score with hidden tests reduced to passed or failed, ``nothing`` no score until
the instructor releases feedback. Flag reasons, error details and hidden test names are for the
staff only: a student learns that their submission is flagged or could not be graded, not why.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from grader.exchange.service.instant.state import Row, now_utc
from grader.exchange.service.storage import TIMESTAMP_FORMAT, ExchangeStore
from grader.grading.instant.rate_limit import allowance

log = logging.getLogger("grader.exchange.instant")

STATUS_WORDS = {
    "queued": "submitted", "grading": "grading", "graded": "graded", "error": "not graded",
    "held": "held: over the rate limit, kept and graded for the record at the instructor's next autograde",
}


def parse_timestamp(text: str) -> datetime:
    """A submission's ``timestamp.txt`` (the service's own clock, in UTC) as an aware datetime."""
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)


def iso(when: datetime | None) -> str | None:
    return when.astimezone(timezone.utc).isoformat() if when else None


_DUE_CACHE: dict[str, tuple[float, dict[str, datetime]]] = {}
DUE_MAX_AGE = 10.0


def due_dates(course_dir) -> dict[str, datetime]:
    """{assignment: due date (UTC)} from the course's gradebook; empty if it cannot be read.
    Kept for a few seconds: pages refresh every two, the course's config is Python to run."""
    key = str(course_dir)
    cached = _DUE_CACHE.get(key)
    if cached and time.monotonic() - cached[0] < DUE_MAX_AGE:
        return cached[1]
    from nbgrader.coursedir import CourseDirectory

    from grader.grading.gradebook_read import open_gradebook
    from grader.grading.nbgrader_api import load_course_config

    try:
        coursedir = CourseDirectory(config=load_course_config(course_dir))
        with open_gradebook(coursedir.db_url, course_id=coursedir.course_id, root=coursedir.root) as gradebook:
            dues = {name: due.replace(tzinfo=timezone.utc) for name, due in gradebook.duedates().items() if due}
    except Exception as error:  # the page works without due dates
        log.warning("due dates of %s not read: %s", course_dir, error)
        dues = {}
    _DUE_CACHE[key] = (time.monotonic(), dues)
    return dues


def _student_result(row: Row, show: str, released: bool) -> dict:
    """The part of a graded result a student may see under ``show``."""
    result = row.result or {}
    if not result or (show == "nothing" and not released):
        return {}
    if show == "visible" and not released:
        return {"score": result["visible_score"], "max_score": result["visible_max"], "score_of": "visible tests",
                "tests": [{"notebook": t["notebook"], "test": t["cell"], "score": t["score"], "max_score": t["max_score"],
                           "passed": t["passed"], "error": t["error"]} for t in result["tests"] if not t["hidden"]]}
    return {"score": result["score"], "max_score": result["max_score"], "score_of": "all tests",
            "late_penalty": result["late_penalty"], "needs_manual_grade": result["needs_manual_grade"],
            "tests": [{"notebook": t["notebook"], "test": "hidden test" if t["hidden"] else t["cell"], "hidden": t["hidden"],
                       "score": t["score"], "max_score": t["max_score"], "passed": t["passed"],
                       "error": "" if t["hidden"] else t["error"]} for t in result["tests"]]}


def student_view(*, store: ExchangeStore, course_id: str, student_id: str, grader, state, prefix: str,
                 lessons: dict | None = None) -> dict:
    """The student's course page as JSON (``grader``: the course's CourseGrader, or None when the
    admin has not enabled instant feedback for the course; ``lessons``: those the student opened,
    None when not known here)."""
    now = now_utc()
    dues = due_dates(grader.course_dir) if grader else {}
    rows = {(r.assignment_id, r.submission_id): r for r in state.submissions(course_id, student_id=student_id)} if grader else {}
    released = [a["assignment_id"] for a in store.released_assignments(course_id)]
    submissions = store.submissions(course_id, student_id=student_id)
    assignments = []
    for assignment_id in sorted(set(released) | {s.assignment_id for s in submissions}):
        policy = grader.policy(assignment_id) if grader else None
        enabled = bool(policy and policy.enabled)
        entry = {"assignment_id": assignment_id, "released": assignment_id in released,
                 "due": iso(dues.get(assignment_id)), "instant_feedback": enabled,
                 "policy": policy.as_json() if enabled else None, "submissions": []}
        if enabled:
            counted = state.counted_times(course_id, student_id, assignment_id)
            left, next_at = allowance(policy.rate_limit, counted, now)
            entry.update(attempts_left=left, next_graded_at=iso(next_at))
        for submission in (s for s in submissions if s.assignment_id == assignment_id):
            when = parse_timestamp(submission.timestamp)
            feedback_released = bool(store.feedback_checksums(submission))
            row = rows.get((assignment_id, submission.submission_id))
            item = {"submission_id": submission.submission_id, "submitted_at": iso(when),
                    "late": bool(dues.get(assignment_id) and when > dues[assignment_id]),
                    "status": "submitted", "status_text": "submitted", "feedback_url": None}
            if row is not None:
                item.update(status=row.status, status_text=STATUS_WORDS[row.status],
                            flagged=bool(row.flags), graded_at=iso(row.graded_at))
                if row.status == "graded":
                    item.update(_student_result(row, policy.show if policy else "nothing", feedback_released))
                    if row.feedback and policy and policy.show == "full":
                        item["feedback_url"] = f"{prefix}courses/{course_id}/feedback/{student_id}/{assignment_id}/{submission.submission_id}/"
            if feedback_released:
                item.update(status="feedback ready", status_text="feedback ready",
                            feedback_url=f"{prefix}courses/{course_id}/feedback/{student_id}/{assignment_id}/{submission.submission_id}/")
            entry["submissions"].append(item)
        assignments.append(entry)
    return {"course_id": course_id, "student_id": student_id, "now": iso(now),
            "instant_feedback": grader is not None, "assignments": assignments, "lessons": lessons}


def staff_view(*, course_id: str, grader, state) -> dict:
    """The instructor's live list: every submission, newest first, with the queue's state."""
    rows = state.submissions(course_id)
    return {
        "course_id": course_id,
        "paused": grader.paused,
        "queue_length": len(grader.queue),
        "grading_now": len(grader.grading_now()),
        "workers": grader.worker_count,
        "policy_error": grader.policy_error(),
        "submissions": [{
            "student_id": r.student_id, "assignment_id": r.assignment_id, "submission_id": r.submission_id,
            "submitted_at": iso(r.submitted_at), "status": r.status, "counted": r.counted,
            "score": (r.result or {}).get("score"), "max_score": (r.result or {}).get("max_score"),
            "visible_score": (r.result or {}).get("visible_score"), "late_penalty": (r.result or {}).get("late_penalty"),
            "flags": r.flags, "message": r.message, "graded_at": iso(r.graded_at),
        } for r in reversed(rows)],
    }
