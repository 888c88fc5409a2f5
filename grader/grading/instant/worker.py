"""The grading worker the exchange service starts for each course: batches in, results out.

    python -m grader.grading.instant.worker --course-dir COURSE_DIR

Reads one JSON batch per line on stdin::

    {"assignment_id": "a1", "feedback": false, "jobs": [{"student_id", "submission_id", "timestamp", "path"}]}

answers ``{"ready": true}`` once it has imported what grading needs, and writes one JSON line per
job to stdout (:func:`grader.grading.instant.batch.grade_batch`), then,
when ``feedback`` is true, one ``{"feedback": {...}}`` line per graded job, then ``{"done": true}``.
A batch that fails as a whole answers ``{"batch_error": "..."}`` and the worker carries on.

Its own process, not the service's: autograde changes the working directory and ``sys.path`` for
the run, and a crash or a stuck batch is ended by killing this process, never the exchange.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from grader.grading.instant.batch import Job, feedback_html, grade_batch


def _protocol_stream():
    """Our own copy of stdout for the protocol; fd 1 then points at stderr, so whatever nbgrader or
    a library prints can never be read as a result."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def run_batch(message: dict, course_dir: Path, send) -> None:
    assignment_id = message["assignment_id"]
    jobs = [Job(job["student_id"], job["submission_id"], job["timestamp"], Path(job["path"])) for job in message["jobs"]]
    graded = []
    for answer in grade_batch(course_dir=course_dir, assignment_id=assignment_id, jobs=jobs):
        send(answer)
        if answer["status"] == "graded":
            graded.append(answer)
    # Scores first, for everyone in the batch; the feedback pages (slower) come after.
    for answer in graded if message.get("feedback") else []:
        try:
            files = feedback_html(course_dir=course_dir, assignment_id=assignment_id, student_id=answer["student_id"])
        except Exception as error:  # the score stands without its page
            files, error_text = {}, f"{type(error).__name__}: {error}"
        else:
            error_text = ""
        send({"feedback": {"student_id": answer["student_id"], "submission_id": answer["submission_id"],
                           "files": files, "error": error_text}})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grader.grading.instant.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--course-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    protocol = _protocol_stream()

    def send(value: dict) -> None:
        protocol.write(json.dumps(value) + "\n")
        protocol.flush()

    # Imports are done: the batch timeout the service counts starts from here, not from our start.
    send({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            run_batch(json.loads(line), args.course_dir, send)
        except Exception as error:  # one batch never ends the worker
            traceback.print_exc()
            send({"batch_error": f"{type(error).__name__}: {error}"})
        send({"done": True})


if __name__ == "__main__":
    main()
