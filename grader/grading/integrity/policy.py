"""What a course does with the score of a flagged submission: ``c.Grader.flagged_policy``.

- ``"keep"`` (the default): the score stands; the flags are listed in ``grader status`` and
  ``grader report`` for the instructor to look at.
- ``"zero"``: until an instructor has reviewed it, a flagged submission scores 0. Every
  autograded grade (code grade cells) gets ``manual_score = 0`` and ``needs_manual_grade = True``,
  so nbgrader's formgrader lists the submission as needing grading, and a comment on it names the
  flags. The instructor restores the score by editing it in the formgrader (or keeps the 0).

The autograded score itself (``auto_score``) is never touched: the zeroing is a manual override,
which is how nbgrader lets an instructor overrule the autograder. A zeroing this module made (its
comment is there) is undone when the submission is graded again and not flagged any more, or the
course switched to ``"keep"``; grades the instructor has since set to something else are left alone,
and a submission graded again with the flags the instructor already reviewed is not zeroed again.
"""

from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

from nbgrader.api import Gradebook, MissingEntry
from traitlets.config import Config

from grader.flags import Flag
from grader.grading.nbgrader_api import GraderError

POLICIES = ("keep", "zero")
DEFAULT_POLICY = "keep"
# Starts the paragraph this module writes into a comment; found again to update or undo it.
MARK = "[grader] Flagged:"


def flagged_policy(config: Config) -> str:
    """The course's ``c.Grader.flagged_policy`` (``keep`` when unset); anything else is refused."""
    value = config.Grader.get("flagged_policy", DEFAULT_POLICY) if "Grader" in config else DEFAULT_POLICY
    if value not in POLICIES:
        raise GraderError(f"c.Grader.flagged_policy = {value!r}: expected one of {', '.join(map(repr, POLICIES))}")
    return value


@contextlib.contextmanager
def _opened(gradebook, course_id: str) -> Iterator[Gradebook]:
    if isinstance(gradebook, Gradebook):
        yield gradebook
    else:
        with Gradebook(str(gradebook), course_id=course_id) as opened:
            yield opened


def _autograded(submission) -> list:
    return [grade for notebook in submission.notebooks for grade in notebook.grades
            if grade.cell.cell_type == "code"]


def _comments(submission) -> list:
    return sorted((comment for notebook in submission.notebooks for comment in notebook.comments),
                  key=lambda comment: (comment.notebook.name, comment.cell.name))


def _without_mark(text: str | None) -> str:
    paragraphs = [p for p in (text or "").split("\n\n") if p and not p.startswith(MARK)]
    return "\n\n".join(paragraphs)


def _has_mark(submission) -> bool:
    return any(MARK in (comment.manual_comment or "") for comment in _comments(submission))


def _reviewed(submission, comments, flags: list[Flag]) -> bool:
    """Whether an instructor already reviewed these very flags: the comment names them and has
    been there while an autograded score was set to something other than the policy's 0. A regrade
    (``--force``) then leaves their decision alone; new or other flags zero the score again."""
    same = any(policy_comment(flags) in (comment.manual_comment or "") for comment in comments)
    return same and any(grade.manual_score is not None and grade.manual_score != 0.0
                        for grade in _autograded(submission))


def policy_comment(flags: Iterable[Flag]) -> str:
    listed = "; ".join(f"{flag.kind}: {flag.reason}" for flag in flags)
    return (f"{MARK} {listed}. The autograded score is set to 0 until an instructor reviews the "
            "submission (c.Grader.flagged_policy = 'zero'): edit each score to restore it.")


def apply_flagged_policy(gradebook, course_id: str, assignment_id: str, student_id: str,
                         flags: list[Flag], policy: str) -> bool:
    """Apply ``policy`` to the graded submission of ``student_id``; return whether it is zeroed.

    ``gradebook`` is a gradebook URL (``sqlite:///...``) or an open ``nbgrader.api.Gradebook``
    (then the caller's session is used and committed). Call it after nbgrader saved the grades.
    """
    if policy not in POLICIES:
        raise GraderError(f"flagged policy {policy!r}: expected one of {', '.join(map(repr, POLICIES))}")
    zero = policy == "zero" and bool(flags)
    with _opened(gradebook, course_id) as opened:
        try:
            submission = opened.find_submission(assignment_id, student_id)
        except MissingEntry:
            raise GraderError(f"no graded submission of {assignment_id} by {student_id} in the gradebook") from None
        comments = _comments(submission)
        if zero and _reviewed(submission, comments, flags):
            return False
        if zero:
            for grade in _autograded(submission):
                grade.manual_score = 0.0
                grade.needs_manual_grade = True
            if comments:
                first = comments[0]
                kept = _without_mark(first.manual_comment)
                first.manual_comment = (kept + "\n\n" if kept else "") + policy_comment(flags)
            opened.db.commit()
            return True
        if _has_mark(submission):
            # A zeroing made by an earlier run: undo it where the instructor has not set a score since.
            for grade in _autograded(submission):
                if grade.manual_score == 0.0:
                    grade.manual_score = None
                    grade.needs_manual_grade = grade.auto_score is None  # nbgrader's own rule
            for comment in comments:
                if MARK in (comment.manual_comment or ""):
                    comment.manual_comment = _without_mark(comment.manual_comment) or None
            opened.db.commit()
        return False


def zeroed_by_policy(gradebook, course_id: str, assignment_id: str, student_id: str) -> bool:
    """Whether the submission's score is (still) zeroed by the ``zero`` policy: its comment is
    there and an autograded grade still has the 0 the policy set."""
    with _opened(gradebook, course_id) as opened:
        try:
            submission = opened.find_submission(assignment_id, student_id)
        except MissingEntry:
            return False
        return _has_mark(submission) and any(grade.manual_score == 0.0 for grade in _autograded(submission))
