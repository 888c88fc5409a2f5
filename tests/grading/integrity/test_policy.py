"""grader.grading.integrity.policy: c.Grader.flagged_policy on a real gradebook, made by grading the
squares fixture with nbgrader's own autograde (so these tests do not depend on the executor)."""

from __future__ import annotations

from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from grader.flags import Flag
from grader.grading.course_dir import Course
from grader.grading.gradebook import grade_rows
from grader.grading.integrity.policy import MARK, apply_flagged_policy, flagged_policy, zeroed_by_policy
from grader.grading.nbgrader_api import GraderError, checked, load_course_config, open_api
from grader.grading.resume import GradedRecord, ProgressStore, fingerprint
from tests.grading.test_autograde import ASSIGNMENT, make_fixture_course

pytestmark = pytest.mark.slow

FLAGS = [Flag("tamper", "squares.ipynb: locked cell 'test_negative' edited; original restored"),
         Flag("files", "notes.txt: symlink to '/etc/shadow' skipped (submissions hold regular files only)")]
CASES = ["solution", "wrong", "tampered-tests"]


def nbgrader_graded_course(root: Path, cases=CASES) -> Course:
    """The squares course with ``cases`` graded by ``nbgrader autograde``, and the progress records
    ``grader autograde`` would have written (tampered-tests flagged)."""
    course = make_fixture_course(root, cases)
    with open_api(course.course_dir) as api:
        for case in cases:
            checked(api.autograde(ASSIGNMENT, case), f"autograde {case}")
    store = ProgressStore(course.course_dir)
    for case in cases:
        folder = course.course_dir / "submitted" / case / ASSIGNMENT
        flags = FLAGS if case == "tampered-tests" else []
        store.mark_done(GradedRecord(ASSIGNMENT, case, fingerprint(folder), "ok", "", [], 1.0, flags))
    return course


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return nbgrader_graded_course(tmp_path_factory.mktemp("policy"))


def scores(course, student):
    """{cell: (auto_score, manual_score)} of the autograded cells."""
    rows = grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=student)
    return {row.cell: (row.auto_score, row.manual_score) for row in rows if row.autograded}


def state(course, student):
    with Gradebook(course.gradebook_url, course_id=course.course_id) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, student)
        grades = {grade.name: grade.needs_manual_grade for nb in submission.notebooks for grade in nb.grades
                  if grade.cell.cell_type == "code"}
        comments = [c.manual_comment for nb in submission.notebooks for c in nb.comments if c.manual_comment]
        return submission.score, grades, comments


def test_the_course_config_names_the_policy_and_keep_is_the_default(course):
    text = (course.course_dir / "nbgrader_config.py").read_text()
    assert 'c.Grader.flagged_policy = "keep"' in text
    assert flagged_policy(load_course_config(course.course_dir)) == "keep"
    config = load_course_config(course.course_dir)
    config.Grader.flagged_policy = "zero"
    assert flagged_policy(config) == "zero"
    config.Grader.flagged_policy = "drop"
    with pytest.raises(GraderError, match="flagged_policy = 'drop'"):
        flagged_policy(config)


def test_keep_changes_nothing(course):
    before = scores(course, "tampered-tests"), state(course, "tampered-tests")
    assert apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", FLAGS, "keep") is False
    assert (scores(course, "tampered-tests"), state(course, "tampered-tests")) == before
    assert state(course, "tampered-tests")[0] == 4.0
    assert not zeroed_by_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests")


def test_zero_without_flags_changes_nothing(course):
    before = scores(course, "solution"), state(course, "solution")
    assert apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "solution", [], "zero") is False
    assert (scores(course, "solution"), state(course, "solution")) == before


def test_zero_sets_every_autograded_grade_to_0_for_review_then_the_instructor_restores_it(course):
    auto = {cell: auto for cell, (auto, _) in scores(course, "tampered-tests").items()}
    assert sum(auto.values()) == 4.0
    for _ in range(2):  # graded again: still one comment
        assert apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", FLAGS, "zero")
    # The autograder's scores are kept; the manual override says 0 and asks for a review.
    assert scores(course, "tampered-tests") == {cell: (score, 0.0) for cell, score in auto.items()}
    score, needs_review, comments = state(course, "tampered-tests")
    assert score == 0.0 and all(needs_review.values())
    (comment,) = comments
    assert comment.startswith(MARK) and comment.count(MARK) == 1
    for flag in FLAGS:
        assert f"{flag.kind}: {flag.reason}" in comment
    assert zeroed_by_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests")
    # The formgrader lists it among the submissions that need grading.
    with open_api(course.course_dir) as api:
        listed = {s["student"]: s for s in api.get_submissions(ASSIGNMENT)}
    assert listed["tampered-tests"]["needs_manual_grade"] and not listed["solution"]["needs_manual_grade"]

    # The instructor reviews it and restores the score by editing it, as the formgrader does.
    with Gradebook(course.gradebook_url, course_id=course.course_id) as gradebook:
        for notebook in gradebook.find_submission(ASSIGNMENT, "tampered-tests").notebooks:
            for grade in notebook.grades:
                if grade.cell.cell_type == "code":
                    grade.manual_score, grade.needs_manual_grade = grade.auto_score, False
        gradebook.db.commit()
    assert state(course, "tampered-tests")[0] == 4.0
    assert not zeroed_by_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests")
    # Graded again (--force) with the flags already reviewed: the instructor's decision stands;
    # with another flag it is held at 0 again.
    assert not apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", FLAGS, "zero")
    assert state(course, "tampered-tests")[0] == 4.0
    more = FLAGS + [Flag("static", "cell 2 replaces np.allclose")]
    assert apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", more, "zero")
    score, _, (comment,) = state(course, "tampered-tests")
    assert score == 0.0 and "static: cell 2 replaces np.allclose" in comment


def test_a_zeroing_is_undone_when_the_regraded_submission_is_not_flagged(course):
    with Gradebook(course.gradebook_url, course_id=course.course_id) as gradebook:  # an open gradebook works too
        assert apply_flagged_policy(gradebook, course.course_id, ASSIGNMENT, "wrong", FLAGS, "zero")
    assert state(course, "wrong")[0] == 0.0
    assert apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "wrong", [], "zero") is False
    score, needs_review, comments = state(course, "wrong")
    assert score == 2.0 and not any(needs_review.values()) and comments == []
    assert {manual for _, manual in scores(course, "wrong").values()} == {None}


def test_a_submission_not_in_the_gradebook_is_an_error(course):
    with pytest.raises(GraderError, match="no graded submission"):
        apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "nobody", FLAGS, "zero")
