"""The course's queue and its real worker processes, without a hub: a submission that stalls its
worker is killed with it, retried alone, then marked; everybody else's is graded meanwhile, with
``grader autograde``'s score; what a stopped service left queued is graded at the next start."""

from __future__ import annotations

import asyncio
import time
from pathlib import PurePosixPath

import nbformat
import pytest
import yaml

from grader.exchange.service.instant.feature import InstantFeedback
from grader.exchange.service.instant.intake import take_submission
from grader.exchange.service.storage import ExchangeStore
from grader.grading.course_dir import Course, prepare_course_dir
from grader.grading.instant.policy import POLICY_FILE
from grader.grading.nbgrader_api import checked, open_api
from tests.support.instant_feedback import CORRECT, source_notebook

pytestmark = pytest.mark.slow

COURSE, ASSIGNMENT = "c1", "tiny"


@pytest.fixture
def setup(tmp_path):
    source = tmp_path / "source"
    (source / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(source_notebook(), source / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    course = Course(COURSE, tmp_path / "course", tmp_path / "exchange", source)
    prepare_course_dir(course)
    with open(course.course_dir / "nbgrader_config.py", "a") as config:
        config.write("c.ExecutePreprocessor.timeout = 120\n")  # the batch timeout below ends the loop first
    (course.course_dir / POLICY_FILE).write_text(yaml.safe_dump({"default": {"enabled": True, "show": "full"}}))
    with open_api(course.course_dir) as api:
        checked(api.generate_assignment(ASSIGNMENT), "generate")
    store = ExchangeStore(tmp_path / "store")
    release = course.course_dir / "release" / ASSIGNMENT
    store.release(COURSE, ASSIGNMENT, {PurePosixPath(p.name): p.read_bytes() for p in release.iterdir()}, force=False)
    return course, store, tmp_path


def submission_files(course, answer: str) -> dict:
    notebook = nbformat.read(course.course_dir / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    notebook.cells[0].source = answer
    return {PurePosixPath(f"{ASSIGNMENT}.ipynb"): nbformat.writes(notebook).encode()}


async def until(predicate, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError


def rows(instant, student):
    return instant.state.submissions(COURSE, student_id=student)


def test_a_stalling_submission_is_killed_retried_alone_and_marked_while_others_are_graded(setup):
    course, store, tmp_path = setup

    async def scenario():
        instant = InstantFeedback.create(root=tmp_path / "store", course_dirs={COURSE: course.course_dir},
                                         workers=2, batch_timeout=10)
        instant.start()
        try:
            looping = store.submit(COURSE, "loop", ASSIGNMENT, submission_files(course, "while True:\n    pass"))
            take_submission(instant.graders, instant.state, looping)
            honest = store.submit(COURSE, "amy", ASSIGNMENT, submission_files(course, CORRECT))
            take_submission(instant.graders, instant.state, honest)
            await until(lambda: rows(instant, "amy")[0].status == "graded")
            assert rows(instant, "loop")[0].status in ("queued", "grading")  # amy did not wait for it
            await until(lambda: rows(instant, "loop")[0].status == "error")
            stalled = rows(instant, "loop")[0]
            assert stalled.tries == 2 and stalled.flags[0]["kind"] == "runtime" and "stopped" in stalled.message
            assert rows(instant, "amy")[0].result["score"] == 5.0
            grader = instant.graders[COURSE]
            assert len(grader.queue) == 0 and grader.grading_now() == []
            # The killed workers are gone; the ones left are the live ones.
            assert all(worker.process.returncode is None for worker in grader.workers)
        finally:
            await instant.close()
        return instant

    asyncio.run(scenario())


def test_what_a_stopped_service_left_is_graded_at_the_next_start(setup):
    course, store, tmp_path = setup

    async def stop_before_grading():
        instant = InstantFeedback.create(root=tmp_path / "store", course_dirs={COURSE: course.course_dir})
        instant.graders[COURSE].set_paused(True)
        instant.start()
        submission = store.submit(COURSE, "amy", ASSIGNMENT, submission_files(course, CORRECT))
        take_submission(instant.graders, instant.state, submission)
        await instant.close()

    async def restart():
        instant = InstantFeedback.create(root=tmp_path / "store", course_dirs={COURSE: course.course_dir})
        assert [r.status for r in rows(instant, "amy")] == ["queued"]
        instant.graders[COURSE].set_paused(False)
        instant.start()
        try:
            await until(lambda: rows(instant, "amy")[0].status == "graded")
            assert rows(instant, "amy")[0].result["score"] == 5.0
        finally:
            await instant.close()

    asyncio.run(stop_before_grading())
    asyncio.run(restart())


def test_a_late_submission_follows_the_course_late_policy(setup):
    from nbgrader.api import Gradebook

    from grader.exchange.service.instant.views import student_view

    course, store, tmp_path = setup
    with open(course.course_dir / "nbgrader_config.py", "a") as config:
        config.write('c.AssignLatePenalties.plugin_class = "grader.grading.late.PercentPerDayLate"\n'
                     "c.PercentPerDayLate.percent_per_day = 10\nc.PercentPerDayLate.max_percent = 10\n")
    with Gradebook(f"sqlite:///{course.gradebook_path}", course_id=COURSE) as gradebook:
        gradebook.update_or_create_assignment(ASSIGNMENT, duedate="2020-01-01 00:00:00")

    async def scenario():
        instant = InstantFeedback.create(root=tmp_path / "store", course_dirs={COURSE: course.course_dir})
        instant.start()
        try:
            submission = store.submit(COURSE, "amy", ASSIGNMENT, submission_files(course, CORRECT))
            take_submission(instant.graders, instant.state, submission)
            await until(lambda: rows(instant, "amy")[0].status == "graded")
            return student_view(store=store, course_id=COURSE, student_id="amy", grader=instant.graders[COURSE],
                                state=instant.state, prefix="/")
        finally:
            await instant.close()

    view = asyncio.run(scenario())
    (assignment,) = view["assignments"]
    (item,) = assignment["submissions"]
    assert assignment["due"].startswith("2020-01-01T00:00:00")
    assert item["late"] is True and (item["score"], item["late_penalty"]) == (5.0, 0.5)
