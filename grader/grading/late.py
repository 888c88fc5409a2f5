"""Late penalties: a share of the score taken off per started day late, as an nbgrader plugin.

nbgrader's ``AssignLatePenalties`` preprocessor, which runs during autograde (``grader autograde``
keeps nbgrader's preprocessors, so it runs there too), asks a ``LateSubmissionPlugin`` for each
late notebook's penalty and stores it in the gradebook; ``grader export`` subtracts it. Configure
the policy in the course's standard ``nbgrader_config.py``::

    c.AssignLatePenalties.plugin_class = "grader.grading.late.PercentPerDayLate"
    c.PercentPerDayLate.percent_per_day = 10  # % of the score, per started day (24 h) late
    c.PercentPerDayLate.max_percent = 50      # never more than this; 100 can reach zero

A submission one second late has started its first day and loses ``percent_per_day`` % of its
score; 24 h and one second late, twice that. Lateness is nbgrader's: the submission's timestamp
against the assignment's due date plus the student's extension, if any.

The penalty is computed when a notebook is autograded, from its score then; a changed policy, due
date or extension applies to submissions graded afterwards (``grader autograde --force`` regrades),
and a manual grade added later does not change the penalty (as with nbgrader's own plugins).
"""

from __future__ import annotations

import math

from nbgrader.plugins import LateSubmissionPlugin
from traitlets import Float

SECONDS_PER_DAY = 24 * 60 * 60


class PercentPerDayLate(LateSubmissionPlugin):
    """Take ``percent_per_day`` % of the score per started day late, at most ``max_percent`` %."""

    percent_per_day = Float(
        10.0, min=0.0, max=100.0, help="Percent of the notebook's score taken off per started day late."
    ).tag(config=True)

    max_percent = Float(
        100.0, min=0.0, max=100.0, help="The largest penalty, in percent of the notebook's score."
    ).tag(config=True)

    def late_submission_penalty(self, student_id: str, score: float, total_seconds_late: float) -> float:
        if total_seconds_late <= 0 or not score:
            return 0.0
        days_started = math.ceil(total_seconds_late / SECONDS_PER_DAY)
        percent = min(self.max_percent, self.percent_per_day * days_started)
        self.log.info("%s is late by %d started day(s): penalty %g%% of %g", student_id, days_started, percent, score)
        return score * percent / 100.0
