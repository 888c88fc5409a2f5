"""grader.grading.autograde on every bad case in tests/files/submissions: scores, limits, tampering, sandbox."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from grader.grading.autograde import autograde_assignment
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.executor.client import Limits
from grader.grading.feedback import generate_feedback
from grader.grading.gradebook import grade_rows
from grader.grading.nbgrader_api import checked, open_api
from grader.grading.resume import ProgressStore
from tests.support import FIXTURES
from tests.support.processes import new_tag, processes_with_tag

pytestmark = pytest.mark.slow

FILES = FIXTURES
ASSIGNMENT = "squares"
FULL = {"test_positive": 1.0, "test_negative": 2.0, "test_arrays": 1.0}
ZERO = dict.fromkeys(FULL, 0.0)
# case: (expected autograded scores, expected status, words expected in the tamper report)
EXPECTED = {
    "solution": (FULL, "ok", None),
    "blank": (ZERO, "ok", None),
    "wrong": ({"test_positive": 1.0, "test_negative": 0.0, "test_arrays": 1.0}, "ok", None),
    "raises": (ZERO, "ok", None),
    # Interrupted like a kernel at the cell timeout; `square` was defined before the loop.
    "infinite-loop": (FULL, "ok", None),
    "ignores-interrupt": (ZERO, "timeout", None),
    "os-exit": (ZERO, "died", None),
    "segfault": (ZERO, "died", None),
    "fork-bomb": (ZERO, "processes", None),
    "memory-hog": (ZERO, "memory", None),
    "runaway-output": (ZERO, "output", None),
    "reads-secrets": (FULL, "ok", None),
    "tampered-tests": (FULL, "ok", "locked cell 'test_negative' edited"),
    "deleted-tests": (FULL, "ok", "'test_negative' was deleted; restored"),
    "changed-cell-type": (FULL, "ok", "changed from code to markdown"),
    "duplicated-cell-ids": (FULL, "ok", "duplicated cell id"),
    "metadata-changed": ({"test_positive": 1.0, "test_negative": 0.0, "test_arrays": 1.0}, "ok", "metadata of cell 'test_negative' edited"),
    # Repaired from the release, then graded as the honest notebook is: the real tests decide.
    "added-graded-cell": (FULL, "ok", "unknown grade id 'bonus_points', 10 points"),
    "remarked-solution": (FULL, "ok", "nbgrader metadata of cell 'square_answer' edited (grade, points); restored"),
    "duplicated-test-cell": ({"test_positive": 1.0, "test_negative": 0.0, "test_arrays": 1.0}, "ok",
                             "cell 'test_negative' appears 2 times; only the copy where the release has it (cell 5)"),
    "malformed-json": (ZERO, "ok", "not valid JSON"),
    "nbformat3": (FULL, "ok", "nbformat 3, converted"),
}
TEST_LIMITS = Limits(cell_timeout=3, submission_timeout=60, memory_bytes=250 << 20, output_bytes=200_000, kill_grace=2)


def make_fixture_course(root: Path, cases) -> Course:
    """A course whose source is tests/files (the squares assignment), with ``cases`` submitted."""
    course = Course("fixtures101", root / "course", root / "exchange", source_dir=FILES)
    prepare_course_dir(course)
    with open_api(course.course_dir) as api:
        checked(api.generate_assignment(ASSIGNMENT), "generate squares")
    for case in cases:
        folder = course.course_dir / "submitted" / case / ASSIGNMENT
        folder.mkdir(parents=True)
        text = (FILES / "submissions" / f"{case}.ipynb").read_text().replace("@COURSE@", str(course.course_dir))
        (folder / f"{ASSIGNMENT}.ipynb").write_text(text)
        (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    return course


def autograded_scores(course: Course, student: str) -> dict[str, float]:
    rows = grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=student)
    return {row.cell: row.auto_score for row in rows if row.autograded}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    course = make_fixture_course(tmp_path_factory.mktemp("fixtures"), EXPECTED)
    name, tag = new_tag()
    os.environ[name] = tag  # inherited by the executor and everything it forks
    try:
        outcomes = autograde_assignment(
            course_dir=course.course_dir, assignment_id=ASSIGNMENT, workers=2, limits=TEST_LIMITS, preload=["numpy"], progress=False
        )
    finally:
        del os.environ[name]
    return course, {outcome.student_id: outcome for outcome in outcomes}, tag


def test_every_submission_is_graded_and_none_stops_the_batch(batch):
    _, outcomes, _ = batch
    assert sorted(outcomes) == sorted(EXPECTED)
    assert [name for name, outcome in outcomes.items() if not outcome.success] == []


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_scores_status_and_report(batch, case):
    course, outcomes, _ = batch
    scores, status, report = EXPECTED[case]
    outcome = outcomes[case]
    assert autograded_scores(course, case) == scores
    assert outcome.status == status, outcome.reason
    if status != "ok":
        assert outcome.reason  # a reason an instructor can read
    if report is None:
        assert outcome.changes == []
    else:
        assert any(report in change for change in outcome.changes), outcome.changes


def test_limits_are_recorded_for_reports(batch):
    course, _, _ = batch
    records = {record.student_id: record for record in ProgressStore(course.course_dir).records(ASSIGNMENT)}
    assert records["memory-hog"].status == "memory" and "MiB" in records["memory-hog"].reason
    assert records["runaway-output"].status == "output"
    assert "deleted" in " ".join(records["deleted-tests"].changes)


def test_nothing_is_left_running(batch):
    # Fork bombs, runaway loops and crashed children included: all gone with the batch.
    *_, tag = batch
    assert processes_with_tag(tag) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox user and hidden paths need root")
def test_student_code_cannot_read_the_course_or_other_students(batch):
    course, _, _ = batch
    graded = nbformat.read(course.course_dir / "autograded" / "reads-secrets" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    answer = next(c for c in graded.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "square_answer")
    printed = "".join(o.get("text", "") for o in answer.outputs)
    assert printed.count("DENIED") == 3 and "READ" not in printed.replace("DENIED", ""), printed


def test_feedback_has_neither_hidden_tests_nor_their_tracebacks(batch):
    course, _, _ = batch
    generate_feedback(course_dir=course.course_dir, assignment_id=ASSIGNMENT, student_id="wrong")
    (html,) = (course.course_dir / "feedback" / "wrong" / ASSIGNMENT).glob("*.html")
    text = html.read_text()
    assert "hidden: fractions" not in text and "BEGIN HIDDEN TESTS" not in text and "square(1.5)" not in text
    assert "AssertionError" in text  # the student still learns that a test failed


def test_a_rerun_grades_nothing_already_graded(batch):
    course, outcomes, _ = batch
    again = autograde_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT, workers=2,
                                 limits=TEST_LIMITS, preload=["numpy"], progress=False)
    assert all(outcome.skipped for outcome in again)


@pytest.mark.skipif(__import__("tests.support.postgres", fromlist=["postgres"]).server_binaries() is None, reason="PostgreSQL server not installed")
def test_grading_into_postgresql_gives_the_sqlite_scores(tmp_path, batch):
    from tests.support.postgres import running_postgres

    sqlite_course, _, _ = batch
    cases = ["solution", "wrong", "os-exit", "deleted-tests"]
    course = make_fixture_course(tmp_path / "pg", cases)
    with running_postgres() as url:
        # The gradebook of a PostgreSQL course is named in its config, as instructors would do it.
        config = course.course_dir / "nbgrader_config.py"
        config.write_text(config.read_text() + f"c.CourseDirectory.db_url = {url!r}\n")
        with open_api(course.course_dir) as api:
            checked(api.generate_assignment(ASSIGNMENT), "generate squares in PostgreSQL")
        outcomes = autograde_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT, workers=2,
                                        limits=TEST_LIMITS, preload=["numpy"], progress=False)
        assert all(outcome.success for outcome in outcomes)
        for case in cases:
            pg_rows = grade_rows(url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=case)
            assert {row.cell: row.auto_score for row in pg_rows if row.autograded} == autograded_scores(sqlite_course, case)


def test_cli_limits_override_only_what_is_given(tmp_path):
    from grader.cli import main

    course = make_fixture_course(tmp_path, ["solution", "memory-hog"])
    code = main(["--course-dir", str(course.course_dir), "autograde", ASSIGNMENT, "--workers", "2",
                 "--preload", "numpy", "--memory", "300", "--cell-timeout", "5"])
    assert code == 0
    records = {r.student_id: r for r in ProgressStore(course.course_dir).records(ASSIGNMENT)}
    assert records["solution"].status == "ok"
    assert records["memory-hog"].status == "memory" and "> 300 MiB" in records["memory-hog"].reason


def test_flagged_policy_zero_holds_a_flagged_score_at_zero_until_reviewed(tmp_path):
    from grader.cli import main

    course = make_fixture_course(tmp_path, ["solution"])
    # A correct answer that also replaces a library function: full marks, flagged.
    folder = course.course_dir / "submitted" / "patcher" / ASSIGNMENT
    folder.mkdir(parents=True)
    notebook = nbformat.read(FILES / "submissions" / "solution.ipynb", as_version=4)
    answer = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "square_answer")
    answer.source += "\nimport numpy\nnumpy.allclose = lambda *args, **kwargs: True"
    nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text().replace('c.Grader.flagged_policy = "keep"', 'c.Grader.flagged_policy = "zero"'))

    outcomes = {o.student_id: o for o in autograde_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT,
                                                               workers=2, limits=TEST_LIMITS, preload=["numpy"], progress=False)}
    assert outcomes["solution"].flags == [] and not outcomes["solution"].zeroed
    assert outcomes["patcher"].zeroed and {flag.kind for flag in outcomes["patcher"].flags} >= {"static", "runtime"}
    rows = grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id="patcher")
    # The autograded score stays as earned; the manual score the instructor reviews holds it at 0.
    assert {row.cell: row.auto_score for row in rows if row.autograded} == FULL
    assert all(row.manual_score == 0 for row in rows if row.autograded)

    import contextlib
    import io
    import json

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["--course-dir", str(course.course_dir), "status", ASSIGNMENT, "--json"]) == 0
    students = {s["student_id"]: s for s in json.loads(printed.getvalue())["students"]}
    assert students["patcher"]["zeroed"] and students["patcher"]["flags"]
    assert students["solution"]["flags"] == [] and students["solution"]["score"] == sum(FULL.values())  # the written point waits for a person
