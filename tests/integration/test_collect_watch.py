"""`grader collect --watch --feedback` on nbgrader's file exchange: a submission is graded and its
feedback released without the instructor acting, a resubmission is graded again, and the watch
stops with nothing left running. The real CLI in its own process, students with nbgrader's CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nbformat
import psutil
import pytest

from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.gradebook import grade_rows
from grader.grading.release import release_assignment
from tests.integration.test_roundtrip import ASSIGNMENT, NOTEBOOK, answered_with_solutions, nbgrader_as_student, student_config

pytestmark = pytest.mark.slow

WAIT = 240  # seconds: a first round starts the sandbox's zygote (imports torch) on a busy machine


def _wait_for(what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"not within {timeout} s: {what.__doc__}")


def test_submissions_are_graded_and_fed_back_as_they_arrive(tmp_path):
    course = Course("watch101", tmp_path / "course", tmp_path / "exchange")
    prepare_course_dir(course)
    release_assignment(course_dir=course.course_dir, assignment_id=ASSIGNMENT)
    student_dir = tmp_path / "students" / "alice"
    (student_dir / "home").mkdir(parents=True)
    (student_dir / "nbgrader_config.py").write_text(student_config(course, "alice"))
    nbgrader_as_student(student_dir, "fetch_assignment", ASSIGNMENT)
    fetched = student_dir / course.course_id / ASSIGNMENT / NOTEBOOK
    released = nbformat.read(fetched, as_version=4)

    log = open(tmp_path / "watch.log", "w")
    watcher = subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "--course-dir", str(course.course_dir), "collect", ASSIGNMENT,
         "--watch", "1", "--feedback"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def score():
            """alice's autograded score in the gradebook"""
            rows = [row for row in grade_rows(course.gradebook_url, course_id=course.course_id, assignment_id=ASSIGNMENT,
                                              student_id="alice") if row.autograded]
            return (sum(row.auto_score or 0 for row in rows), sum(row.max_score for row in rows)) if rows else None

        # A strong submission: graded, then its feedback is there to fetch, nobody acting.
        nbformat.write(answered_with_solutions(fetched), fetched)
        nbgrader_as_student(student_dir, "submit", ASSIGNMENT)
        got, maximum = _wait_for(lambda: (found := score()) and found[0] > 0 and found)
        assert got == maximum > 0

        def feedback():
            """alice's feedback, fetched"""
            nbgrader_as_student(student_dir, "fetch_feedback", ASSIGNMENT)
            return list((student_dir / course.course_id / ASSIGNMENT / "feedback").rglob("*.html"))

        [page] = _wait_for(feedback)
        assert "BEGIN HIDDEN TESTS" not in page.read_text()

        # She submits the released notebook again: the newer submission is collected and graded.
        time.sleep(1.1)  # nbgrader names submissions to the second
        nbformat.write(released, fetched)
        nbgrader_as_student(student_dir, "submit", ASSIGNMENT)
        _wait_for(lambda: (found := score()) and found[0] < maximum)
        assert watcher.poll() is None, (tmp_path / "watch.log").read_text()
    finally:
        group = psutil.Process(watcher.pid)
        members = [group, *group.children(recursive=True)]
        watcher.send_signal(signal.SIGINT)  # Ctrl-C, as an instructor stops it: after the round
        try:
            watcher.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(watcher.pid, signal.SIGKILL)
            watcher.wait(timeout=10)
        log.close()
    output = (tmp_path / "watch.log").read_text()
    assert watcher.returncode == 0, output
    assert "graded  alice" in output and "feedback released to alice" in output, output
    assert "stopping after this round" in output and "Traceback" not in output, output
    # The watcher and the sandbox processes it started are gone.
    _wait_for(lambda: not any(member.is_running() and member.status() != psutil.STATUS_ZOMBIE for member in members), 30)
