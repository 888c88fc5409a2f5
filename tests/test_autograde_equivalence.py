"""`grader autograde` writes the same gradebook rows as `nbgrader autograde`, and resumes after kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from grader.autograde import autograde_assignment
from grader.gradebook import grade_rows
from processes import new_tag, processes_with_tag
from test_autograde import ASSIGNMENT, FILES, make_fixture_course

pytestmark = pytest.mark.slow

# Every case nbgrader itself grades (it cannot survive a dead kernel, and we repair deletions it
# would score differently); a cell timeout of 3 s makes nbgrader interrupt the infinite loop too.
SAME_AS_NBGRADER = [
    "solution", "blank", "wrong", "raises", "infinite-loop",
    "tampered-tests", "changed-cell-type", "metadata-changed", "nbformat3",
]


def _set_cell_timeout(course, seconds: int) -> None:
    config = course.course_dir / "nbgrader_config.py"
    config.write_text(config.read_text() + f"c.Execute.timeout = {seconds}\n")


def _all_rows(course, students):
    return {
        student: [
            (row.notebook, row.cell, row.auto_score, row.manual_score, row.max_score)
            for row in grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=student)
        ]
        for student in students
    }


def test_every_gradebook_row_matches_nbgrader_autograde(tmp_path):
    ours = make_fixture_course(tmp_path / "ours", SAME_AS_NBGRADER)
    theirs = make_fixture_course(tmp_path / "theirs", SAME_AS_NBGRADER)
    for course in (ours, theirs):
        _set_cell_timeout(course, 3)
    outcomes = autograde_assignment(course_dir=ours.course_dir, assignment_id=ASSIGNMENT, workers=2, preload=["numpy"], progress=False)
    assert all(outcome.success for outcome in outcomes)
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
        cwd=theirs.course_dir, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = _all_rows(theirs, SAME_AS_NBGRADER)
    assert all(expected.values())  # nbgrader graded every one
    assert _all_rows(ours, SAME_AS_NBGRADER) == expected


def _slow_solution(course, students):
    slow = nbformat.read(FILES / "submissions" / "solution.ipynb", as_version=4)
    answer = next(c for c in slow.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "square_answer")
    answer.source += "\nimport time\ntime.sleep(1.5)"
    for student in students:
        folder = course.course_dir / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(slow, folder / f"{ASSIGNMENT}.ipynb")
        (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")


def _graded_count(course_dir: Path) -> int:
    database = course_dir / ".grader" / "progress.sqlite"
    if not database.exists():
        return 0
    with sqlite3.connect(database) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM graded").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_9_mid_batch_then_rerun_equals_an_uninterrupted_run(tmp_path):
    students = [f"student{n:02d}" for n in range(8)] + ["wrong", "raises"]
    interrupted = make_fixture_course(tmp_path / "interrupted", ["wrong", "raises"])
    reference = make_fixture_course(tmp_path / "reference", ["wrong", "raises"])
    for course in (interrupted, reference):
        _slow_solution(course, students[:8])
    autograde_assignment(course_dir=reference.course_dir, assignment_id=ASSIGNMENT, workers=2, preload=["numpy"], progress=False)

    name, tag = new_tag()
    env = dict(os.environ, **{name: tag})
    grader = subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "--course-dir", str(interrupted.course_dir), "autograde", ASSIGNMENT,
         "--workers", "2", "--preload", "numpy"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while _graded_count(interrupted.course_dir) < 3 and time.monotonic() < deadline and grader.poll() is None:
        time.sleep(0.05)
    assert grader.poll() is None, "the batch finished before it could be interrupted"
    os.kill(grader.pid, signal.SIGKILL)
    grader.wait()
    graded_before = _graded_count(interrupted.course_dir)
    assert 3 <= graded_before < len(students)

    # The executor dies with the grader: nothing it started is left running.
    deadline = time.monotonic() + 15
    while processes_with_tag(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert processes_with_tag(tag) == []

    outcomes = autograde_assignment(course_dir=interrupted.course_dir, assignment_id=ASSIGNMENT, workers=2, preload=["numpy"], progress=False)
    assert sum(outcome.skipped for outcome in outcomes) == graded_before
    assert all(outcome.success for outcome in outcomes)
    assert _all_rows(interrupted, students) == _all_rows(reference, students)
