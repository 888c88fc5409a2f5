"""``grader collect ASSIGNMENT --watch SECONDS``: grade submissions as they arrive, with any exchange.

The HTTP exchange grades on submit itself, with the students' course page and rate limits
(README, "Instant feedback on submit"). A course on nbgrader's file exchange has no service to
see a submission arrive, so this loop stands in: every ``every`` seconds it collects (only what
is newer than what ``submitted/`` holds), autogrades what changed (resume.py skips a submission
already graded with these exact files, so an idle round starts no sandbox) and, with
``feedback``, releases each newly graded student's feedback for them to fetch. One submission
that fails to grade is reported and never stops the loop; an error of a whole round (the
exchange or the gradebook unreachable) is reported and the next round tries again.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Callable


def grade_what_arrived(*, course_dir: Path, assignment_id: str, feedback: bool = False,
                       log: Callable[[str], None] = print) -> list[str]:
    """One round: collect, autograde what is new, release its feedback; the students graded."""
    from grader.grading.autograde import autograde_assignment
    from grader.grading.collect import collect_submissions
    from grader.grading.feedback import release_feedback

    collect_submissions(course_dir=course_dir, assignment_id=assignment_id)
    outcomes = autograde_assignment(course_dir=course_dir, assignment_id=assignment_id, progress=False)
    graded = []
    for outcome in outcomes:
        if outcome.skipped:
            continue
        if not outcome.success:
            log(f"FAILED  {outcome.student_id}: {outcome.error.splitlines()[-1] if outcome.error else ''}")
            continue
        graded.append(outcome.student_id)
        flags = f" ({len(outcome.flags)} flag(s): see grader status {assignment_id})" if outcome.flags else ""
        log(f"graded  {outcome.student_id}" + (f": {outcome.status}: {outcome.reason}" if outcome.status != "ok" else "") + flags)
        if feedback:
            try:
                release_feedback(course_dir=course_dir, assignment_id=assignment_id, student_id=outcome.student_id)
                log(f"feedback released to {outcome.student_id}")
            except Exception as error:  # the score stands; the next release retries
                log(f"FAILED  feedback for {outcome.student_id}: {type(error).__name__}: {error}")
    return graded


def watch_submissions(*, course_dir: Path, assignment_id: str, every: float, feedback: bool = False,
                      rounds: int | None = None, log: Callable[[str], None] = print,
                      stop: threading.Event | None = None) -> None:
    """Run :func:`grade_what_arrived` every ``every`` seconds, ``rounds`` times (None: until ``stop``
    is set). A round in progress always finishes: nothing is left half graded or half released."""
    stop = stop or threading.Event()
    done = 0
    while (rounds is None or done < rounds) and not stop.is_set():
        started = time.monotonic()
        try:
            grade_what_arrived(course_dir=course_dir, assignment_id=assignment_id, feedback=feedback, log=log)
        except Exception as error:  # noqa: BLE001 - a round's failure is said; the watch goes on
            log(f"round failed: {type(error).__name__}: {error}; trying again in {every:g} s")
        done += 1
        if rounds is None or done < rounds:
            stop.wait(max(0.0, every - (time.monotonic() - started)))


def stop_on_signals(stop: threading.Event, log: Callable[[str], None] = print) -> None:
    """Ctrl-C or SIGTERM (a service manager) ends the watch after the round in progress."""
    def handle(signum, frame):
        if not stop.is_set():
            log("stopping after this round")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handle)
