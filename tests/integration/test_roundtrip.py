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

from grader.grading.autograde import autograde_assignment
from grader.grading.collect import collect_submissions
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.feedback import release_feedback
from grader.grading.gradebook import grade_rows
from grader.grading.release import release_assignment
from grader.hub.spawn.homes import student_config_text
from grader.resources import ASSIGNMENTS_SOURCE_DIR
from tests.support import FIXTURES

pytestmark = pytest.mark.slow

ASSIGNMENT = "a1_backprop"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"


def student_config(course: Course, student: str) -> str:
    """The nbgrader config the hub writes into a student's home (file exchange), one line changed:
    no hub runs here, so nbgrader's no-auth plugin stands in for its JupyterHub one."""
    return (student_config_text(student_id=student, course_ids=[course.course_id], exchange_root=course.exchange_dir)
            + "c.Authenticator.plugin_class = 'nbgrader.auth.NoAuthPlugin'\n")


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
        (student_dir / "nbgrader_config.py").write_text(student_config(course, student))
        nbgrader_as_student(student_dir, "fetch_assignment", ASSIGNMENT)
        # The hub's config fetches into <course>/<assignment> (path_includes_course).
        fetched = student_dir / course.course_id / ASSIGNMENT / NOTEBOOK
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
        feedback_files = list((student_dir / course.course_id / ASSIGNMENT / "feedback").rglob("*.html"))
        assert len(feedback_files) == 1, feedback_files
        html = feedback_files[0].read_text()
        assert "BEGIN HIDDEN TESTS" not in html and "BEGIN SOLUTION" not in html


# --- files that are not regular files, through the file exchange ------------------------------

SQUARES = FIXTURES
SECRET = "TOP-SECRET: the hidden tests"


def _hostile_inbound(course: Course, tmp_path: Path, student: str) -> Path:
    """A submission a student wrote straight into the world-writable inbound/ (no nbgrader submit):
    their notebook, a data file, and links to what they must not read, a fifo and a socket."""
    secret = tmp_path / "instructor-only.txt"
    secret.write_text(SECRET)
    os.chmod(secret, 0o600)
    folder = course.exchange_dir / course.course_id / "inbound" / f"{student}+squares+2026-11-20 10:00:00.000000 UTC"
    (folder / "data").mkdir(parents=True)
    (folder / "squares.ipynb").write_text((SQUARES / "submissions" / "solution.ipynb").read_text())
    (folder / "timestamp.txt").write_text("2026-11-20 10:00:00.000000 UTC")
    (folder / "data" / "points.csv").write_text("x,y\n1,2\n")
    os.symlink(secret, folder / "notes.txt")
    os.symlink(course.gradebook_path, folder / "data" / "gradebook.db")
    os.symlink(course.course_dir / "source", folder / "source")
    os.link(secret, folder / "data" / "hard.txt")
    os.mkfifo(folder / "data" / "pipe")
    return folder


def test_collect_copies_regular_files_only_and_reports_what_it_skipped(tmp_path, capsys):
    course = Course("links101", tmp_path / "course", tmp_path / "exchange", source_dir=SQUARES)
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id="squares")
    _hostile_inbound(course, tmp_path, "mallory")
    reported = []
    assert collect_submissions(course_dir=course.course_dir, assignment_id="squares",
                               report=lambda student, flag: reported.append((student, flag))) == ["mallory"]
    submitted = course.course_dir / "submitted" / "mallory" / "squares"
    copied = sorted(p.relative_to(submitted).as_posix() for p in submitted.rglob("*"))
    assert copied == ["data", "data/points.csv", "squares.ipynb", "timestamp.txt"]
    assert not any(p.is_symlink() for p in submitted.rglob("*"))
    assert all(SECRET not in p.read_text(errors="replace") for p in submitted.rglob("*") if p.is_file())
    skipped = {flag.reason.split(": ", 1)[0]: flag.reason for student, flag in reported}
    assert {student for student, _ in reported} == {"mallory"} and {flag.kind for _, flag in reported} == {"files"}
    assert sorted(skipped) == ["data/gradebook.db", "data/hard.txt", "data/pipe", "notes.txt", "source"]
    assert "symlink to" in skipped["notes.txt"] and "hard link" in skipped["data/hard.txt"]
    assert "fifo" in skipped["data/pipe"]

    # Kept for autograde's flags; a later collect with nothing new reports nothing again.
    from grader.grading.collect import skipped_entries

    assert [f.reason for f in skipped_entries(course_dir=course.course_dir, assignment_id="squares")["mallory"]] \
        == [flag.reason for _, flag in reported]
    collect_submissions(course_dir=course.course_dir, assignment_id="squares")
    assert capsys.readouterr().err == ""


def test_a_submission_folder_that_is_a_symlink_is_not_collected(tmp_path):
    course = Course("links102", tmp_path / "course", tmp_path / "exchange", source_dir=SQUARES)
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id="squares")
    elsewhere = _hostile_inbound(course, tmp_path, "mallory")
    os.rename(elsewhere, tmp_path / "mallory-elsewhere")
    os.symlink(tmp_path / "mallory-elsewhere", elsewhere)  # the whole submission is a link
    reported = []
    collect_submissions(course_dir=course.course_dir, assignment_id="squares",
                        report=lambda student, flag: reported.append(flag.reason))
    submitted = course.course_dir / "submitted" / "mallory" / "squares"
    assert not submitted.exists() or list(submitted.iterdir()) == []
    assert len(reported) == 1 and "symlink to" in reported[0]


def test_the_safe_submit_plugin_refuses_a_folder_with_links(tmp_path):
    course = Course("links103", tmp_path / "course", tmp_path / "exchange", source_dir=SQUARES)
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id="squares")
    student_dir = tmp_path / "students" / "mallory"
    (student_dir / "home").mkdir(parents=True)
    (student_dir / "nbgrader_config.py").write_text(
        student_config(course, "mallory") + "c.ExchangeFactory.submit = 'grader.grading.file_exchange.Submit'\n")
    nbgrader_as_student(student_dir, "fetch_assignment", "squares")
    os.symlink(course.gradebook_path, student_dir / course.course_id / "squares" / "answers.db")
    env = dict(os.environ, HOME=str(student_dir / "home"))
    refused = subprocess.run([sys.executable, "-m", "nbgrader", "submit", "squares"], cwd=student_dir, env=env,
                             capture_output=True, text=True)
    assert refused.returncode != 0
    assert "regular files only" in refused.stderr + refused.stdout and "answers.db: symlink to" in refused.stderr + refused.stdout
    assert list((course.exchange_dir / course.course_id / "inbound").iterdir()) == []
    (student_dir / course.course_id / "squares" / "answers.db").unlink()
    nbgrader_as_student(student_dir, "submit", "squares")
    assert len(list((course.exchange_dir / course.course_id / "inbound").iterdir())) == 1


def test_nbgraders_own_collect_in_the_course_uses_the_safe_copy_too(tmp_path):
    """The course's nbgrader_config.py names the safe collect, so the formgrader's Collect button
    and ``nbgrader collect`` follow no link either."""
    course = Course("links104", tmp_path / "course", tmp_path / "exchange", source_dir=SQUARES)
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id="squares")
    _hostile_inbound(course, tmp_path, "mallory")
    result = subprocess.run([sys.executable, "-m", "nbgrader", "collect", "squares"], cwd=course.course_dir,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "notes.txt: symlink to" in result.stderr  # logged as a warning
    submitted = course.course_dir / "submitted" / "mallory" / "squares"
    assert sorted(p.name for p in submitted.rglob("*")) == ["data", "points.csv", "squares.ipynb", "timestamp.txt"]
