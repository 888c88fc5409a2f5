"""grader.grading.export (and the grader.grading.late policy it exports): both CSVs from a real graded gradebook.

``graded_course`` builds the graded course that test_report.py and test_status.py read as well.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from grader.cli import main
from grader.grading.autograde import autograde_assignment
from grader.grading.course_dir import Course
from grader.grading.export import export_grades
from grader.grading.late import PercentPerDayLate
from grader.grading.nbgrader_api import GraderError, checked, open_api
from tests.grading.test_autograde import ASSIGNMENT, TEST_LIMITS, make_fixture_course

CASES = ["solution", "wrong", "blank", "tampered-tests", "os-exit", "runaway-output"]
DUEDATE = "2026-11-20 12:00:00 UTC"  # make_fixture_course submits at 10:00 that day
LATE_TIMESTAMP = "2026-11-21 13:00:00.000000 UTC"  # 25 h late: two started days, 20 %
LATE_POLICY = (
    'c.AssignLatePenalties.plugin_class = "grader.grading.late.PercentPerDayLate"\n'
    "c.PercentPerDayLate.percent_per_day = 10\n"
)
# Raw scores (4 autograded points; the written point is not graded yet); "late" is the solution.
RAW_SCORES = {"solution": 4.0, "wrong": 2.0, "blank": 0.0, "tampered-tests": 4.0, "os-exit": 0.0,
              "runaway-output": 0.0, "late": 4.0}
MAX_SCORE = 5.0
GRADED = sorted(RAW_SCORES)
PENDING = ["resubmitted", "unseen"]  # resubmitted after grading; submitted after grading
FLAGGED = ["os-exit", "runaway-output", "tampered-tests"]

_built: dict[str, Course] = {}


def _submit_as(course: Course, case: str, student: str, timestamp: str) -> None:
    """Submit ``case``'s graded notebook under another student id, at ``timestamp``."""
    folder = course.course_dir / "submitted" / student / ASSIGNMENT
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(course.course_dir / "submitted" / case / ASSIGNMENT, folder)
    (folder / "timestamp.txt").write_text(timestamp)


def graded_course(tmp_path_factory) -> Course:
    """The squares course, released, with a due date and a late policy, autograded: CASES, "late"
    (the solution, 25 h late) and "resubmitted" (graded, then its files replaced); "unseen" was
    submitted after grading and "absent" is in the gradebook without a submission.

    Built once per test session (autograding is the slow part) and shared by the three modules.
    """
    if "course" not in _built:
        course = make_fixture_course(tmp_path_factory.mktemp("graded"), CASES)
        config = course.course_dir / "nbgrader_config.py"
        config.write_text(config.read_text() + LATE_POLICY)
        with open_api(course.course_dir) as api:
            checked(api.release_assignment(ASSIGNMENT), "release squares")
        _submit_as(course, "solution", "late", LATE_TIMESTAMP)
        _submit_as(course, "wrong", "resubmitted", "2026-11-20 09:00:00.000000 UTC")
        with Gradebook(course.gradebook_url, course_id=course.course_id) as gradebook:
            gradebook.update_or_create_assignment(ASSIGNMENT, duedate=DUEDATE)
            gradebook.update_or_create_student("absent", first_name="Ada", last_name="Absent")
            gradebook.update_or_create_student("solution", first_name="Grace", last_name="Hopper, Jr")
        outcomes = autograde_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT, workers=2,
                                        limits=TEST_LIMITS, preload=["numpy"], progress=False)
        assert all(outcome.success for outcome in outcomes), outcomes
        # "error" is the executor failing, not the student: e.g. another autograde run on this host
        # (another pytest-xdist worker) killing the processes of the sandbox users both runs share.
        assert not [o for o in outcomes if o.status == "error"], [(o.student_id, o.reason) for o in outcomes]
        _submit_as(course, "solution", "resubmitted", "2026-11-20 11:00:00.000000 UTC")
        _submit_as(course, "blank", "unseen", "2026-11-20 11:30:00.000000 UTC")
        _built["course"] = course
    return _built["course"]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    return graded_course(tmp_path_factory)


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as file:
        return list(csv.reader(file))


# The policy on its own: fast.

@pytest.mark.parametrize("seconds_late, percent", [(1, 10), (24 * 3600, 10), (24 * 3600 + 1, 20), (9.5 * 24 * 3600, 50)])
def test_percent_per_day_counts_started_days_up_to_the_maximum(seconds_late, percent):
    policy = PercentPerDayLate(percent_per_day=10, max_percent=50)
    assert policy.late_submission_penalty("s", 8.0, seconds_late) == pytest.approx(8.0 * percent / 100)


def test_percent_per_day_takes_nothing_from_on_time_or_zero_scores():
    policy = PercentPerDayLate()
    assert policy.late_submission_penalty("s", 8.0, 0) == 0.0
    assert policy.late_submission_penalty("s", 0.0, 3 * 24 * 3600) == 0.0


# Exports of the graded course.

@pytest.mark.slow
def test_nbgrader_csv_has_penalised_scores_and_blanks_for_ungraded(course, tmp_path):
    path = export_grades(course_dir=course.course_dir, to=tmp_path / "grades.csv")
    header, *rows = read_csv(path)
    assert header == ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                      "raw_score", "late_submission_penalty", "score", "max_score"]
    by_student = {row[3]: dict(zip(header, row)) for row in rows}
    # Graded or in the roster: "unseen" was never graded, so the gradebook does not know them.
    assert sorted(by_student) == sorted(GRADED + ["absent", "resubmitted"])
    late = by_student["late"]
    assert (late["raw_score"], late["late_submission_penalty"], late["score"]) == ("4", "0.8", "3.2")
    assert late["timestamp"].startswith("2026-11-21 13:00") and late["duedate"].startswith("2026-11-20 12:00")
    for student in GRADED:
        row = by_student[student]
        expected_penalty = 0.8 if student == "late" else 0.0
        assert float(row["raw_score"]) == RAW_SCORES[student]
        assert float(row["late_submission_penalty"]) == pytest.approx(expected_penalty)
        assert float(row["score"]) == pytest.approx(RAW_SCORES[student] - expected_penalty)
        assert float(row["max_score"]) == MAX_SCORE
    assert [by_student["resubmitted"][key] for key in ("raw_score", "score", "timestamp")] == ["", "", ""]
    assert (by_student["absent"]["score"], by_student["absent"]["timestamp"]) == ("0", "")
    assert by_student["solution"]["last_name"] == "Hopper, Jr"  # quoted, so the comma stays inside


@pytest.mark.slow
def test_canvas_csv_structure_and_values(course, tmp_path):
    rows = read_csv(export_grades(course_dir=course.course_dir, to=tmp_path / "canvas.csv", format="canvas"))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", f"{ASSIGNMENT} ({ASSIGNMENT})"]
    assert rows[1] == ["Points Possible", "", "", "", "", "5"]
    assert all(len(row) == 6 for row in rows)
    students = {row[3]: row for row in rows[2:]}
    assert sorted(students) == sorted(GRADED + ["absent", "resubmitted"])
    assert students["late"][5] == "3.2"  # 4 points, 20 % off for two started days
    assert students["solution"][5] == "4"
    assert students["wrong"][5] == "2"
    assert students["resubmitted"][5] == ""  # not graded on its current files: never a stale score
    assert students["absent"][5] == "0"  # no submission
    assert students["solution"][0] == "Hopper, Jr, Grace" and students["absent"][0] == "Absent, Ada"
    assert students["late"][0] == "late"  # no name in the gradebook: the id


@pytest.mark.slow
def test_canvas_assignment_ids_come_from_the_course_config(course, tmp_path):
    shutil.copytree(course.course_dir, tmp_path / "copy", symlinks=True)
    config = tmp_path / "copy" / "nbgrader_config.py"
    config.write_text(config.read_text() + f"c.CanvasExport.assignment_ids = {{{ASSIGNMENT!r}: '4711'}}\n"
                      + f"c.CourseDirectory.db_url = 'sqlite:///{tmp_path / 'copy' / 'gradebook.db'}'\n")
    rows = read_csv(export_grades(course_dir=tmp_path / "copy", to=tmp_path / "canvas.csv", format="canvas",
                                  assignments=[ASSIGNMENT]))
    assert rows[0][5] == f"{ASSIGNMENT} (4711)"


@pytest.mark.slow
def test_unknown_format_or_assignment_is_an_error(course, tmp_path):
    with pytest.raises(GraderError, match="unknown export format"):
        export_grades(course_dir=course.course_dir, to=tmp_path / "x.csv", format="moodle")
    with pytest.raises(GraderError, match="nope"):
        export_grades(course_dir=course.course_dir, to=tmp_path / "x.csv", assignments=["nope"])


@pytest.mark.slow
def test_cli_export_writes_what_the_function_writes(course, tmp_path):
    for format in ("csv", "canvas"):
        assert main(["--course-dir", str(course.course_dir), "export", "--to", str(tmp_path / f"cli-{format}.csv"),
                     "--format", format, "--assignment", ASSIGNMENT]) == 0
        direct = export_grades(course_dir=course.course_dir, to=tmp_path / f"direct-{format}.csv", format=format)
        assert read_csv(tmp_path / f"cli-{format}.csv") == read_csv(direct)
    assert main(["--course-dir", str(course.course_dir), "export", "--to", str(tmp_path / "x.csv"),
                 "--assignment", "nope"]) == 2
