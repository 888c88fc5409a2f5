"""What happens to a new submission of a course with instant feedback, decided in the service.

The rate limit is counted here, in the service's one thread, from its own records: no client can
skip it, and twenty submissions sent at once are decided one after another. A submission past the
limit is stored as every submission is, marked ``held``, and graded for the record when the
instructor next runs ``grader collect`` and ``grader autograde`` (the latest submission is the one
collected).
"""

from __future__ import annotations

from grader.exchange.service.instant.fair_queue import QueuedJob
from grader.exchange.service.instant.views import iso, parse_timestamp
from grader.exchange.service.storage import Submission
from grader.grading.instant.rate_limit import decide


def take_submission(graders: dict, state, submission: Submission) -> dict | None:
    """Record the submission, queue it if the limit allows; return what the student is told
    (None when instant feedback is off for this course or assignment)."""
    grader = graders.get(submission.course_id)
    policy = grader.policy(submission.assignment_id) if grader else None
    if policy is None or not policy.enabled:
        return None
    when = parse_timestamp(submission.timestamp)
    counted = state.counted_times(submission.course_id, submission.student_id, submission.assignment_id)
    decision = decide(policy.rate_limit, counted, when)
    state.add(course_id=submission.course_id, student_id=submission.student_id,
              assignment_id=submission.assignment_id, submission_id=submission.submission_id,
              timestamp=submission.timestamp, submitted_at=when, path=str(submission.path), counted=decision.graded_now)
    if decision.graded_now:
        grader.enqueue(QueuedJob(submission.student_id, submission.assignment_id, submission.submission_id,
                                 submission.timestamp, str(submission.path)))
    message = ("queued for grading" if decision.graded_now else
               f"over the limit of {policy.rate_limit.text}: kept, and graded for the record later; "
               f"the next graded attempt is allowed at {iso(decision.next_graded_at)}")
    return {"status": "queued" if decision.graded_now else "held", "message": message,
            "attempts_left": decision.attempts_left, "next_graded_at": iso(decision.next_graded_at),
            "rate_limit": policy.rate_limit.text if policy.rate_limit else None}
