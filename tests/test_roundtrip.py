"""The nbgrader round trip on the sample assignment, through the real file exchange.

Instructor: generate + release (grader). Students, each in their own home and working folder with
the nbgrader config the hub writes for them: fetch, work, submit (nbgrader's own CLI). Instructor:
collect, autograde, feedback (grader). Students: fetch feedback. Assertions are on gradebook rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.autograde import autograde_assignment
from grader.collect import collect_submissions
from grader.course import Course, prepare_course_dir, student_config_text
from grader.feedback import release_feedback
from grader.gradebook import grade_rows
from grader.paths import ASSIGNMENTS_SOURCE_DIR
from grader.release import release_assignment

pytestmark = pytest.mark.slow

ASSIGNMENT = "a1_backprop"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"


def nbgrader_as_student(student_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the nbgrader CLI as a student would in their server: own HOME, own working folder."""
    env = dict(os.environ, HOME=str(student_dir / "home"))
    result = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args], cwd=student_dir, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def answered_with_solutions(fetched: Path) -> nbformat.NotebookNode:
    """The fetched notebook with each answer cell written as the instructor's solution (markers
    removed), as a strong student would submit it."""
    notebook = nbformat.read(fetched, as_version=4)
    source = nbformat.read(ASSIGNMENTS_SOURCE_DIR / ASSIGNMENT / NOTEBOOK, as_version=4)
    solutions = {
        cell.metadata["nbgrader"]["grade_id"]: cell.source
        for cell in source.cells
        if cell.metadata.get("nbgrader", {}).get("solution")
    }
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in solutions:
            lines = solutions[grade_id].splitlines()
            cell.source = "\n".join(line for line in lines if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)
    return notebook


def test_release_fetch_submit_collect_autograde_feedback(tmp_path):
    course = Course("roundtrip101", tmp_path / "course", tmp_path / "exchange")
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT)

    students = {"alice": "solution", "bob": "untouched"}
    for student, work in students.items():
        student_dir = tmp_path / "students" / student
        (student_dir / "home").mkdir(parents=True)
        (student_dir / "nbgrader_config.py").write_text(student_config_text(course, student))
        nbgrader_as_student(student_dir, "fetch_assignment", ASSIGNMENT)
        fetched = student_dir / ASSIGNMENT / NOTEBOOK
        assert "### BEGIN SOLUTION" not in fetched.read_text()
        if work == "solution":
            nbformat.write(answered_with_solutions(fetched), fetched)
        nbgrader_as_student(student_dir, "submit", ASSIGNMENT)

    assert collect_submissions(course_dir=course.course_dir, assignment_id=ASSIGNMENT) == sorted(students)
    outcomes = autograde_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT, progress=False)
    assert all(outcome.success for outcome in outcomes), outcomes

    def autograded(student):
        rows = grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT, student_id=student)
        # Written (markdown) answers are the instructor's to mark by hand.
        return [row for row in rows if row.autograded]

    alice, bob = autograded("alice"), autograded("bob")
    assert alice and len(alice) == len(bob)
    assert [(row.cell, row.auto_score) for row in alice] == [(row.cell, row.max_score) for row in alice]
    assert sum(row.max_score for row in alice) > 0
    assert [(row.cell, row.auto_score) for row in bob] == [(row.cell, 0.0) for row in bob]

    release_feedback(course_dir=course.course_dir, assignment_id=ASSIGNMENT)
    for student in students:
        student_dir = tmp_path / "students" / student
        nbgrader_as_student(student_dir, "fetch_feedback", ASSIGNMENT)
        feedback_files = list((student_dir / ASSIGNMENT / "feedback").rglob("*.html"))
        assert len(feedback_files) == 1, feedback_files
        html = feedback_files[0].read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "BEGIN SOLUTION" not in html
