"""``grader lti push ASSIGNMENT``: each student's score, from the course's gradebook, to the LMS line item (AGS).

Scores are what ``grader export`` writes (:mod:`grader.grading.export`: the gradebook's total
minus the late penalty, blank while a submission waits for grading), read through an
``ExportPlugin`` of its own (:class:`LtiScoresExport`) rather than computed again. For every LMS
course linked to the hub course (each registration, each LMS course seen at launch), the
assignment's line item is the one a launch of a link to it came with (a Moodle activity with the
custom parameter ``assignment=<id>``), else the one deep linking made (``resourceId``), else one
found by tag, else one created when the LMS allows it. Then, per student:

- not submitted, or submitted and not graded yet: not sent (reported);
- no LTI identity for this LMS (never launched, not in a synced roster): reported, not an error;
- same score as the last one the LMS accepted for this line item: not sent again (idempotent);
- else posted (``activityProgress: Completed``, ``gradingProgress: FullyGraded``) with retries,
  and recorded in the LTI store with the LMS's answer (:meth:`grader.lti.store.LtiStore.sent_scores`).
"""

from __future__ import annotations

import datetime
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from grader.grading.export import GradedExportPlugin, export_grades
from grader.lti.registrations import Lti13Settings, ToolKey
from grader.lti.services import RETRY_DELAYS, ServiceError, ToolServices
from grader.lti.store import LtiStore, SentScore


class LtiScoresExport(GradedExportPlugin):
    """The scores ``grader export`` would write, as JSON lines (what :func:`push_scores` sends)."""

    def export(self, gradebook) -> None:
        # export's rows give a student without a submission 0 (nbgrader's CSV does); the LMS is
        # told nothing for them, so the gradebook says who submitted.
        submitted = {(assignment.name, submission.student.id) for assignment in self.selected_assignments(gradebook)
                     for submission in assignment.submissions}
        with open(self.to, "w") as out:
            for row in self.scores(gradebook):
                out.write(json.dumps({"student": row.student_id, "score": row.score, "max_score": row.max_score,
                                      "submitted": (row.assignment, row.student_id) in submitted}) + "\n")


@dataclass
class PushReport:
    sent: list[str] = field(default_factory=list)  # "<registration>: <student>"
    unchanged: list[str] = field(default_factory=list)  # "<registration>: <student>"
    not_graded: list[str] = field(default_factory=list)
    not_submitted: list[str] = field(default_factory=list)
    no_identity: list[str] = field(default_factory=list)  # "<registration>: <student>"
    failed: list[str] = field(default_factory=list)  # "<registration>: <student>: <why>"
    no_line_item: list[str] = field(default_factory=list)  # registrations/LMS courses

    def lines(self) -> list[str]:
        def say(label, names):
            return [f"{label} ({len(names)}): {', '.join(names)}"] if names else []
        return (say("sent", self.sent) + say("unchanged, not sent again", self.unchanged)
                + say("submitted, not graded yet", self.not_graded) + say("no submission", self.not_submitted)
                + say("no LTI identity (never launched from the LMS, not in its roster)", self.no_identity)
                + say("no line item in the LMS", self.no_line_item) + say("FAILED", self.failed))


def gradebook_scores(course_dir: Path, assignment: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "scores.jsonl"
        export_grades(course_dir=course_dir, to=out, format=LtiScoresExport, assignments=[assignment])
        return [json.loads(line) for line in out.read_text().splitlines()]


def push_scores(*, course: str, course_dir: Path, assignment: str, settings: Lti13Settings, key: ToolKey,
                store: LtiStore, delays: Sequence[float] = RETRY_DELAYS) -> PushReport:
    """Post ``assignment``'s scores to every LMS course linked to ``course``; see the module's doc."""
    report = PushReport()
    rows = gradebook_scores(course_dir, assignment)
    contexts = store.contexts(course)
    if not contexts:
        raise ServiceError(f"no LMS course is linked to {course} yet: launch the tool once from the LMS course")
    report.not_graded = [row["student"] for row in rows if row["score"] is None]
    report.not_submitted = [row["student"] for row in rows if row["score"] is not None and not row["submitted"]]
    ready = [row for row in rows if row["score"] is not None and row["submitted"]]
    max_score = max([row["max_score"] for row in rows] or [0.0])
    timestamp = datetime.datetime.now(datetime.timezone.utc).isoformat()
    for context in contexts:
        registration = settings.by_name(context.registration)
        services = ToolServices(registration, context, key, delays)
        line_item = services.line_item(assignment, label=assignment, score_maximum=max_score,
                                       known_url=store.lineitem(registration.name, context.context_id, assignment))
        if line_item is None:
            report.no_line_item.append(f"{registration.name}: {context.title or context.context_id}")
            continue
        lineitem_id = line_item.get_id()
        score_maximum = float(line_item.get_score_maximum() or max_score)
        ids = store.lti_user_ids(registration.name)
        for row in ready:
            who = f"{registration.name}: {row['student']}"
            if row["student"] not in ids:
                report.no_identity.append(who)
                continue
            lti_user_id = ids[row["student"]]
            # The LMS's scale is the line item's: a score out of the gradebook's max, rescaled.
            given = round(row["score"] * score_maximum / row["max_score"], 4) if row["max_score"] else 0.0
            last = store.last_sent(registration.name, lineitem_id, lti_user_id)
            if last is not None and (last.score_given, last.score_maximum) == (given, score_maximum):
                report.unchanged.append(who)
                continue
            try:
                attempts = services.post_score(line_item, lti_user_id=lti_user_id, score_given=given,
                                               score_maximum=score_maximum, timestamp=timestamp)
                status = 200
            except ServiceError as error:
                report.failed.append(f"{who}: {error}")
                attempts, status = len(delays) + 1, error.status or 599
            store.record_sent(SentScore(registration.name, lineitem_id, lti_user_id, row["student"], assignment, given,
                                        score_maximum, status, attempts))
            if status < 300:
                report.sent.append(who)
    return report
