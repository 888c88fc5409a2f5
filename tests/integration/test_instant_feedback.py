"""Instant feedback on a real hub with the HTTP exchange (issue #20).

One hub for the module: course ai101 with instant feedback allowed by the admin and turned on by
the instructor's ``instant_feedback.yaml``: assignment ``tiny`` shows the full score, ``lim`` the
visible tests' score with a limit of 2 graded submissions a day. Students submit straight to the
exchange service with their hub tokens (what nbgrader's submit does), and read their results from
the service's JSON and, in headless Chromium, from their course page. Nobody acts in between.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
import requests
import yaml

from grader.grading.gradebook import grade_rows
from tests.support.browser import missing
from tests.support.hubfixture import api_token, free_port, login, start_hub, start_server, stop_hub, stop_server
from tests.support.instant_feedback import CORRECT, SECRET, WRONG_ON_HIDDEN, source_notebook

pytestmark = [pytest.mark.slow, pytest.mark.hub]

COURSE = "ai101"
STUDENTS = ("sam", "sue", "rae", "sid", "tim", "kit", "cal", "ned")
SERVICE = "/services/nbgrader-exchange"
POLICY = {
    "default": {"enabled": True, "show": "visible", "rate_limit": "2 per day"},
    "assignments": {"tiny": {"show": "full", "rate_limit": "none"}},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hub-data")
    course_dir = data_dir / "courses" / COURSE
    for assignment in ("tiny", "lim"):
        (course_dir / "source" / assignment).mkdir(parents=True)
        nbformat.write(source_notebook(), course_dir / "source" / assignment / f"{assignment}.ipynb")
    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    config_file.write_text(yaml.safe_dump({
        "exchange": {"backend": "http", "service_port": free_port()},
        "idle_culler": {"enabled": False},
        "courses": {COURSE: {"formgrader_port": free_port(), "instructors": ["ian"], "students": list(STUDENTS),
                             "instant_feedback": True}},
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config_file))
        running = start_hub(data_dir)
    try:
        # A short per-cell timeout, so the endless loop below ends within the test.
        with open(course_dir / "nbgrader_config.py", "a") as config:
            config.write("c.ExecutePreprocessor.timeout = 15\n")
        (course_dir / "instant_feedback.yaml").write_text(yaml.safe_dump(POLICY))
        yield running
    finally:
        stop_hub(running)


@pytest.fixture(scope="module")
def tokens(hub):
    tokens = {name: api_token(hub, login(hub, name), name) for name in ("ian", *STUDENTS)}
    for assignment in ("tiny", "lim"):
        grader_cli(hub, tokens["ian"], "release", assignment)
    return tokens


def course_dir(hub):
    return hub.data_dir / "courses" / COURSE


def grader_cli(hub, token, *args):
    env = dict(os.environ, GRADER_COURSE_DIR=str(course_dir(hub)), GRADER_EXCHANGE_TOKEN=token)
    result = subprocess.run([sys.executable, "-m", "grader.cli", *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"grader {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def api(hub, token, method, path, **kwargs):
    return requests.request(method, f"{hub.url}{SERVICE}/api/courses/{COURSE}/{path}",
                            headers={"Authorization": f"token {token}"}, timeout=60, **kwargs)


def submit(hub, token, assignment, answer_source=None, raw=None):
    """Fetch the release and submit it with the answer cell replaced (or ``raw`` bytes as the notebook)."""
    released = api(hub, token, "GET", f"assignments/{assignment}")
    assert released.status_code == 200, released.text
    notebook = nbformat.reads(base64.b64decode(released.json()["files"][f"{assignment}.ipynb"]).decode(), as_version=4)
    if answer_source is not None:
        notebook.cells[0].source = answer_source
    data = raw if raw is not None else nbformat.writes(notebook).encode()
    answer = api(hub, token, "POST", f"assignments/{assignment}/submissions",
                 json={"files": {f"{assignment}.ipynb": base64.b64encode(data).decode()}})
    assert answer.status_code == 201, answer.text
    return answer.json()


def my_page(hub, token, student=None):
    answer = api(hub, token, "GET", "instant/me", params={"student_id": student} if student else None)
    assert answer.status_code == 200, answer.text
    return answer.json()


def submissions_of(view, assignment):
    return next(a for a in view["assignments"] if a["assignment_id"] == assignment)["submissions"]


def wait_for(predicate, timeout=240, every=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"not done after {timeout}s")


def settled(hub, token, assignment, count):
    """The student's view once ``count`` submissions of ``assignment`` have finished grading."""
    def done():
        view = my_page(hub, token)
        items = submissions_of(view, assignment)
        finished = [s for s in items if s["status"] in ("graded", "not graded", "error", "held", "feedback ready")]
        return view if len(items) >= count and len(finished) == len(items) else None
    return wait_for(done)


def test_students_see_their_own_score_as_autograde_gives_it_and_never_hidden_tests(hub, tokens):
    answer = submit(hub, tokens["sam"], "tiny", CORRECT)
    assert answer["instant_feedback"]["status"] == "queued"
    submit(hub, tokens["sue"], "tiny", WRONG_ON_HIDDEN)
    sam = submissions_of(settled(hub, tokens["sam"], "tiny", 1), "tiny")[0]
    sue_view = settled(hub, tokens["sue"], "tiny", 1)
    sue = submissions_of(sue_view, "tiny")[0]
    assert (sam["status"], sam["score"], sam["max_score"]) == ("graded", 5.0, 5.0)
    assert (sue["status"], sue["score"], sue["max_score"]) == ("graded", 2.0, 5.0)
    tests = {t["test"]: t for t in sue["tests"]}
    assert tests["test_visible"]["passed"] and not tests["hidden test"]["passed"]
    assert tests["hidden test"]["error"] == ""
    assert SECRET not in json.dumps(sue_view) and "test_hidden" not in json.dumps(sue_view)
    # The full policy also gives the feedback page (grader feedback's, hidden tests redacted), just after the score.
    feedback_url = wait_for(lambda: submissions_of(my_page(hub, tokens["sue"]), "tiny")[0]["feedback_url"])
    sue_session = login(hub, "sue")
    listing = sue_session.get(f"{hub.url}{feedback_url}")
    assert listing.status_code == 200, listing.text
    page = sue_session.get(f"{hub.url}{feedback_url}tiny.html")
    text = html.unescape(re.sub(r"<[^>]+>", "", page.text))
    assert page.status_code == 200 and "assert add(1, 2) == 3" in text and "Score: 2.0 / 5.0" in " ".join(text.split())
    assert SECRET not in page.text
    assert "sandbox" in page.headers["Content-Security-Policy"]

    # Each student sees only their own: neither the JSON nor the page nor the feedback of another.
    assert api(hub, tokens["sam"], "GET", "instant/me", params={"student_id": "sue"}).status_code == 403
    sam_session = login(hub, "sam")
    assert sam_session.get(f"{hub.url}{feedback_url}tiny.html").status_code == 403
    assert "sue" not in sam_session.get(f"{hub.url}{SERVICE}/courses/{COURSE}/").text.replace("submissions", "")

    # The same scores as the instructor's own collect and autograde, regrading from scratch.
    grader_cli(hub, tokens["ian"], "collect", "tiny")
    grader_cli(hub, tokens["ian"], "autograde", "tiny", "--force", "--workers", "1")
    gradebook = f"sqlite:///{course_dir(hub) / 'gradebook.db'}"
    for name, shown in (("sam", sam), ("sue", sue)):
        rows = grade_rows(gradebook, course_id=COURSE, assignment_id="tiny", student_id=name)
        assert sum(row.auto_score for row in rows if row.autograded) == shown["score"]


@pytest.mark.browser
@pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}")
def test_course_page_in_chromium_updates_by_itself(hub, tokens):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.support.browser import Browser

    submit(hub, tokens["cal"], "tiny", WRONG_ON_HIDDEN)
    settled(hub, tokens["cal"], "tiny", 1)
    browser = Browser()
    try:
        driver = browser.driver
        driver.get(f"{hub.url}/hub/login?next={SERVICE}/courses/{COURSE}/")
        driver.find_element(By.ID, "username_input").send_keys("cal")
        driver.find_element(By.ID, "password_input").send_keys(hub.passwords["cal"])
        driver.find_element(By.ID, "login_submit").click()
        wait = WebDriverWait(driver, 60, poll_frequency=0.5)
        wait.until(lambda d: "2 / 5" in d.find_element(By.CSS_SELECTOR, "#content").text)
        assert "attempts left: 2" in driver.find_element(By.CSS_SELECTOR, "#content").text  # lim's limit, told before
        # A new submission, from elsewhere (nbgrader submit in Lab): the open page shows its score unprompted.
        submit(hub, tokens["cal"], "tiny", CORRECT)
        wait.until(lambda d: "5 / 5" in d.find_element(By.CSS_SELECTOR, "#content").text)
        browser.screenshot("instant-feedback-course-page")
        assert SECRET not in driver.page_source and "test_hidden" not in driver.page_source
    finally:
        browser.quit()


def test_rate_limit_holds_against_20_rapid_submissions(hub, tokens):
    notebook = nbformat.reads(base64.b64decode(
        api(hub, tokens["rae"], "GET", "assignments/lim").json()["files"]["lim.ipynb"]).decode(), as_version=4)
    notebook.cells[0].source = WRONG_ON_HIDDEN
    body = {"files": {"lim.ipynb": base64.b64encode(nbformat.writes(notebook).encode()).decode()}}
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: api(hub, tokens["rae"], "POST", "assignments/lim/submissions", json=body),
                                range(20)))
    assert [a.status_code for a in answers] == [201] * 20
    decisions = [a.json()["instant_feedback"] for a in answers]
    assert sorted(d["status"] for d in decisions) == ["held"] * 18 + ["queued"] * 2
    assert all(d["next_graded_at"] and "over the limit" in d["message"] for d in decisions if d["status"] == "held")
    view = settled(hub, tokens["rae"], "lim", 20)
    lim = next(a for a in view["assignments"] if a["assignment_id"] == "lim")
    statuses = [s["status"] for s in lim["submissions"]]
    assert statuses.count("graded") == 2 and statuses.count("held") == 18  # every one kept
    assert lim["attempts_left"] == 0 and lim["next_graded_at"]
    graded = [s for s in lim["submissions"] if s["status"] == "graded"]
    # The visible policy: the visible test's score only, and no trace of the hidden one.
    assert all((s["score"], s["max_score"], s["score_of"]) == (2.0, 2.0, "visible tests") for s in graded)
    assert all([t["test"] for t in s["tests"]] == ["test_visible"] for s in graded)
    assert SECRET not in json.dumps(view)


def test_hostile_and_broken_submissions_never_stall_the_queue(hub, tokens):
    submit(hub, tokens["sid"], "lim", "def add(a, b):\n    while True:\n        pass")  # runs to the cell timeout
    submit(hub, tokens["tim"], "lim", raw=b'{"cells": [ this is not json')  # a tampered notebook
    submit(hub, tokens["kit"], "lim", "import os\nos.kill(os.getpid(), 9)")  # kills its own process
    submit(hub, tokens["ned"], "lim", CORRECT)
    # ned is graded while sid's endless loop is still running.
    def ned_graded():
        ned = submissions_of(my_page(hub, tokens["ned"]), "lim")
        return ned[0]["status"] == "graded" and submissions_of(my_page(hub, tokens["sid"]), "lim")[0]["status"]
    assert wait_for(ned_graded) in ("queued", "grading")
    assert submissions_of(my_page(hub, tokens["ned"]), "lim")[0]["score"] == 2.0
    for name in ("sid", "tim", "kit"):
        item = submissions_of(settled(hub, tokens[name], "lim", 1), "lim")[0]
        assert item["status"] == "graded" and item["score"] == 0.0, item
        assert SECRET not in json.dumps(item)
    # The instructor's live list: who, when, score, flags, and an empty queue at the end.
    queue = api(hub, tokens["ian"], "GET", "instant/queue").json()
    rows = {r["student_id"]: r for r in queue["submissions"] if r["assignment_id"] == "lim"}
    assert rows["sid"]["score"] == 0.0 and rows["ned"]["score"] == 5.0  # the staff see the full score
    assert [flag["kind"] for flag in rows["tim"]["flags"]] == ["tamper"]
    assert submissions_of(my_page(hub, tokens["tim"]), "lim")[0]["flagged"] is True
    assert "tamper" not in json.dumps(my_page(hub, tokens["tim"]))  # why is for the instructor
    assert rows["kit"]["status"] == "graded"
    assert queue["queue_length"] == 0 and queue["grading_now"] == 0
    # Students may not see the live list.
    assert api(hub, tokens["ned"], "GET", "instant/queue").status_code == 403


def test_pause_switch_holds_grading_until_resumed(hub, tokens):
    paused = api(hub, tokens["ian"], "PUT", "instant/queue", json={"paused": True})
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert api(hub, tokens["ian"], "PUT", "instant/queue", json={"paused": "yes"}).status_code == 400
    submit(hub, tokens["sam"], "lim", CORRECT)
    time.sleep(5)  # time enough to grade it, were grading not paused
    assert submissions_of(my_page(hub, tokens["sam"]), "lim")[0]["status"] == "queued"
    assert api(hub, tokens["ian"], "GET", "instant/queue").json()["queue_length"] == 1
    # The instructor's page shows the live list and resumes with its switch (a form with the hub's xsrf token).
    ian = login(hub, "ian")
    page = ian.get(f"{hub.url}{SERVICE}/courses/{COURSE}/instructor")
    assert page.status_code == 200 and "<b class=paused>paused</b>" in page.text
    assert "<td>sam</td><td>lim</td>" in page.text and "<b class=queue-length>1</b>" in page.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    resumed = ian.post(f"{hub.url}{SERVICE}/courses/{COURSE}/instructor", data={"paused": "0", "_xsrf": xsrf})
    assert resumed.status_code == 200 and "<b class=paused>running</b>" in resumed.text
    assert submissions_of(settled(hub, tokens["sam"], "lim", 1), "lim")[0]["status"] == "graded"
    # Without the token the login cookie does not count: nothing changes.
    assert ian.post(f"{hub.url}{SERVICE}/courses/{COURSE}/instructor", data={"paused": "1"}).status_code == 403
    assert api(hub, tokens["ian"], "GET", "instant/queue").json()["paused"] is False
    assert login(hub, "sam").get(f"{hub.url}{SERVICE}/courses/{COURSE}/instructor").status_code == 403


def test_lessons_the_student_opened_are_on_their_page(hub, tokens):
    from grader.exchange.service.instant.lessons import lesson_paths
    from grader.resources import REPO_ROOT

    lessons = lesson_paths(REPO_ROOT / "courses")
    before = my_page(hub, tokens["ned"])["lessons"]
    assert before == {"total": len(lessons), "opened": []}  # no server yet, so no home
    start_server(hub, "ned", tokens["ned"])
    try:
        # What JupyterLab does when it opens a notebook the first time: keep a checkpoint of it.
        answer = requests.post(f"{hub.url}/user/ned/api/contents/courses/{lessons[0]}/checkpoints",
                               headers={"Authorization": f"token {tokens['ned']}"}, timeout=60)
        assert answer.status_code == 201, answer.text
    finally:
        stop_server(hub, "ned", tokens["ned"])
    # The service keeps a student's lessons for a few seconds (pages refresh every two).
    view = wait_for(lambda: (lambda v: v if v["lessons"]["opened"] else None)(my_page(hub, tokens["ned"])), timeout=60)
    assert view["lessons"] == {"total": len(lessons), "opened": [lessons[0]]}
