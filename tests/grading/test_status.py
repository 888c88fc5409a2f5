"""grader.grading.status: counts per assignment from the graded course of test_export.py, and the table."""

from __future__ import annotations

import datetime
import json

import pytest

from grader.cli import main
from grader.flags import Flag
from grader.grading.status import (
    AssignmentStatus,
    StudentStatus,
    course_status,
    flagged_table,
    graded_submissions,
    pending_students,
    status_table,
)
from tests.grading.test_autograde import ASSIGNMENT
from tests.grading.test_export import FLAGGED, GRADED, PENDING, graded_course


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return graded_course(tmp_path_factory)


def test_status_table_aligns_names_left_and_counts_right():
    table = status_table([
        AssignmentStatus("a1_backprop", datetime.datetime(2026, 11, 20, 12, 0), True, 120, 118, 2, 5),
        AssignmentStatus("a2", None, False, 0, 0, 0, 0),
    ])
    assert table.splitlines() == [
        "assignment   due (UTC)         released  submitted  graded  pending  flagged",
        "a1_backprop  2026-11-20 12:00  yes             120     118        2        5",
        "a2           -                 no                0       0        0        0",
    ]


@pytest.mark.slow
def test_graded_means_finished_on_the_files_now_submitted(course):
    graded = graded_submissions(course_dir=course.course_dir, assignment_id=ASSIGNMENT)
    assert sorted(graded) == GRADED  # "resubmitted" was graded, but from the files it replaced
    assert sorted(pending_students(course_dir=course.course_dir, assignment_id=ASSIGNMENT)) == PENDING


@pytest.mark.slow
def test_course_status_counts(course):
    statuses = {status.assignment_id: status for status in course_status(course_dir=course.course_dir)}
    assert statuses[ASSIGNMENT] == AssignmentStatus(
        assignment_id=ASSIGNMENT,
        duedate=datetime.datetime(2026, 11, 20, 12, 0),
        released=True,
        submitted=len(GRADED) + len(PENDING),
        graded=len(GRADED),
        pending=len(PENDING),
        flagged=len(FLAGGED),
    )


@pytest.mark.slow
def test_cli_status_prints_the_table(course, capsys):
    assert main(["--course-dir", str(course.course_dir), "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["assignment", "due", "(UTC)", "released", "submitted", "graded", "pending", "flagged"]
    (row,) = [line for line in lines if line.startswith(f"{ASSIGNMENT} ")]
    assert row.split() == [ASSIGNMENT, "2026-11-20", "12:00", "yes", "9", "7", "2", "3"]


# --- one assignment, per student (grader status ASSIGNMENT [--json]) ---------------------------


def test_flagged_table_lists_each_flag_of_each_flagged_student():
    statuses = [
        StudentStatus("ann", True, 4.0, 5.0, 0.0, "ok"),
        StudentStatus("bob", True, 0.0, 5.0, 0.0, "ok", flags=[Flag("tamper", "cell 't' edited"),
                                                                 Flag("files", "x: fifo skipped")], zeroed=True),
        StudentStatus("cy", True, 1.0, 5.0, 0.0, "memory", "used > 300 MiB", [Flag("limit", "memory: used > 300 MiB")]),
    ]
    assert flagged_table(statuses).splitlines() == [
        "student  score         status  flag    reason",
        "bob      0/5 (zeroed)  ok      tamper  cell 't' edited",
        "                               files   x: fifo skipped",
        "cy       1/5           memory  limit   memory: used > 300 MiB",
    ]
    assert flagged_table(statuses[:1]) == "no flagged submissions"


@pytest.fixture(scope="module")
def policy_course(tmp_path_factory):
    """Graded by nbgrader's own autograde (test_integrity_policy.py), tampered-tests flagged and
    zeroed by the "zero" policy, and one more submission not graded yet."""
    from grader.grading.integrity.policy import apply_flagged_policy
    from tests.grading.integrity.test_policy import FLAGS, nbgrader_graded_course

    course = nbgrader_graded_course(tmp_path_factory.mktemp("status"))
    apply_flagged_policy(course.gradebook_url, course.course_id, ASSIGNMENT, "tampered-tests", FLAGS, "zero")
    late = course.course_dir / "submitted" / "late" / ASSIGNMENT
    late.mkdir(parents=True)
    (late / f"{ASSIGNMENT}.ipynb").write_text("{}")
    (late / "timestamp.txt").write_text("2026-11-20 11:00:00.000000 UTC")
    return course


@pytest.mark.slow
def test_status_json_prints_score_status_flags_and_policy_per_student(policy_course, capsys):
    from tests.grading.integrity.test_policy import FLAGS

    assert main(["--course-dir", str(policy_course.course_dir), "status", ASSIGNMENT, "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["assignment_id"] == ASSIGNMENT
    students = {row["student_id"]: row for row in answer["students"]}
    assert sorted(students) == ["late", "solution", "tampered-tests", "wrong"]
    assert students["solution"] == {"student_id": "solution", "graded": True, "score": 4.0, "max_score": 5.0,
                                    "late_penalty": 0.0, "status": "ok", "reason": "", "flags": [], "zeroed": False}
    assert students["wrong"]["score"] == 2.0 and students["wrong"]["flags"] == []
    flagged = students["tampered-tests"]
    assert flagged["score"] == 0.0 and flagged["zeroed"] is True
    assert flagged["flags"] == [flag.to_dict() for flag in FLAGS]
    assert students["late"]["graded"] is False and students["late"]["status"] == "pending" and students["late"]["score"] is None


@pytest.mark.slow
def test_status_of_an_assignment_shows_its_flagged_students_with_reasons(policy_course, capsys):
    from tests.grading.integrity.test_policy import FLAGS

    assert main(["--course-dir", str(policy_course.course_dir), "status", ASSIGNMENT]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{ASSIGNMENT}: 3 graded, 1 pending, 1 flagged"
    assert lines[1].split() == ["student", "score", "status", "flag", "reason"]
    assert lines[2].split()[:5] == ["tampered-tests", "0/5", "(zeroed)", "ok", "tamper"] and FLAGS[0].reason in lines[2]
    assert lines[3].split()[0] == "files" and lines[3].endswith(FLAGS[1].reason)
    assert len(lines) == 4


@pytest.mark.slow
def test_status_json_of_the_course(policy_course, capsys):
    assert main(["--course-dir", str(policy_course.course_dir), "status", "--json"]) == 0
    (row,) = [row for row in json.loads(capsys.readouterr().out) if row["assignment_id"] == ASSIGNMENT]
    assert (row["submitted"], row["graded"], row["pending"], row["flagged"]) == (4, 3, 1, 1)
