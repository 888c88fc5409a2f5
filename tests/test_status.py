"""grader.status: counts per assignment from the graded course of test_export.py, and the table."""

from __future__ import annotations

import datetime

import pytest
from test_autograde import ASSIGNMENT
from test_export import FLAGGED, GRADED, PENDING, graded_course

from grader.cli import main
from grader.status import AssignmentStatus, course_status, graded_submissions, pending_students, status_table


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
