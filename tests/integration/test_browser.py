"""The course as people use it, in headless Chromium against a real hub.

A student logs in through the form, sees their course in nbgrader's Assignments panel before
anything is released, opens a lesson in JupyterLab (not "modified") and runs a cell; fetches and
submits a released assignment; the instructor collects it (no "cheating attempt" warning) and
finds it in the formgrader, the student named. Then, in a Chromium that can reach nothing but
this machine: the instructor opens the formgrader from Lab's Nbgrader menu, follows its links to
the assignment's files, grades the autograded submission with its maths rendered by MathJax, and
the student reads their feedback, maths rendered too. Screenshots of each step go to
.artifacts/screenshots/.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.support.browser import missing
from tests.support.hubfixture import api_token, login, start_hub, stop_hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.hub,
    pytest.mark.browser,
    pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}"),
]

COURSE = "ai101"
ASSIGNMENT = "a1_backprop"
LESSON = "courses/01_backprop/01_forward_pass.ipynb"
SERVER_START = 180  # seconds: a server start on a busy 2-core machine
PAGE = 60
# Every host name resolves to nothing: only the hub on 127.0.0.1 can be reached (no CDN).
OFFLINE_FLAG = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"
CDN_PROBE = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js"
# MathJax 2's CommonHTML output (nbconvert's configuration: TeX-AMS_CHTML-full).
MATHJAX_OUTPUT = ".mjx-chtml, .MathJax_CHTML"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


@pytest.fixture
def offline_browser(monkeypatch):
    """A headless Chromium that resolves no host name: a CDN is out of reach, the hub is not."""
    from tests.support import browser as support

    monkeypatch.setattr(support, "CHROMIUM_FLAGS", [*support.CHROMIUM_FLAGS, OFFLINE_FLAG])
    opened = support.Browser()
    yield opened
    opened.quit()


# --- steps ------------------------------------------------------------------------------------

def _wait(browser, timeout=PAGE):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Lab and the formgrader re-render lists while loading: a stale element means "look again".
    return WebDriverWait(browser.driver, timeout, poll_frequency=0.5,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))


def _visible(browser, css, timeout=PAGE):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return _wait(browser, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _clickable(browser, css, timeout=PAGE):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return _wait(browser, timeout).until(ec.element_to_be_clickable((By.CSS_SELECTOR, css)))


def _log_in(browser, hub, username, shot):
    browser.driver.get(f"{hub.url}/hub/login")
    _visible(browser, "#username_input").send_keys(username)
    browser.driver.find_element("css selector", "#password_input").send_keys(hub.passwords[username])
    browser.screenshot(f"{shot}-login-form")
    browser.driver.find_element("css selector", "#login_submit").click()
    _wait(browser).until(lambda d: "/hub/login" not in d.current_url)


def _open_lab(browser, hub, username, shot):
    """Log in, start the server from the spawn form when the hub shows one, wait for JupyterLab."""
    _log_in(browser, hub, username, shot)
    driver = browser.driver

    def lab_or_form(d):
        if "/lab" in d.current_url and d.find_elements("css selector", "#jp-main-dock-panel"):
            return "lab"
        if d.find_elements("css selector", "form#spawn_form"):
            return "form"
        return None

    if _wait(browser, SERVER_START).until(lab_or_form) == "form":
        browser.screenshot(f"{shot}-spawn-form")
        driver.find_element("css selector", "form#spawn_form [type=submit]").click()
        _wait(browser, SERVER_START).until(lambda d: lab_or_form(d) == "lab")
    # The launcher or a restored layout: Lab has finished its start.
    _visible(browser, ".jp-LabShell, #main", SERVER_START)
    _visible(browser, "#jp-top-panel", SERVER_START)
    # Start from an empty layout: Lab saves the open panels on the server, so an Assignments panel
    # an earlier test opened comes back, rendered while hidden, next to the one the menu opens, and
    # the lists' ids then match a hidden copy first (its buttons never clickable, its text empty).
    driver.get(f"{hub.url}/user/{username}/lab?reset")
    _wait(browser, SERVER_START).until(lambda d: "reset" not in d.current_url and d.find_elements("css selector", "#jp-main-dock-panel"))
    _visible(browser, "#jp-top-panel", SERVER_START)


def _menu(browser, menu, item):
    from selenium.webdriver.common.by import By

    _wait(browser).until(lambda d: [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item")
                                    if e.text.strip() == menu])
    [top] = [e for e in browser.driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text.strip() == menu]
    top.click()

    def entry(d):
        found = [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-item") if e.text.strip().startswith(item) and e.is_displayed()]
        return found[0] if found else None

    _wait(browser).until(entry).click()


# --- tests ------------------------------------------------------------------------------------

def test_a_student_logs_in_opens_a_lesson_and_runs_a_cell(hub, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _open_lab(browser, hub, "student", "1-student")
    browser.screenshot("1-student-lab")
    # Nothing is released yet: nbgrader's Assignments panel names the course all the same (it
    # lists the course ids of assignments; the exchange plugin names courses without any).
    _menu(browser, "Nbgrader", "Assignment List")
    _wait(browser).until(lambda d: d.find_element("css selector", "#course_list_default").text.strip() == COURSE)
    browser.screenshot("1-student-assignment-list-before-release")
    assert "No courses found" not in browser.driver.find_element("css selector", "body").text

    browser.driver.get(f"{hub.url}/user/student/lab/tree/{LESSON}")
    _visible(browser, ".jp-NotebookPanel .jp-CodeCell", SERVER_START)
    # The kernel is up when its status reads Idle.
    _wait(browser, SERVER_START).until(
        lambda d: any("Idle" in e.text for e in d.find_elements("css selector", ".jp-StatusBar-TextItem, #jp-main-statusbar")))
    # The kernel has written its kernelspec and language_info into the notebook's metadata: the
    # committed lesson has the same, so the lesson is not "modified" (tests/notebooks/test_notebook_metadata.py).
    time.sleep(2)
    tab = browser.driver.find_element("css selector", "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    assert "jp-mod-dirty" not in tab.get_attribute("class"), tab.get_attribute("class")

    # Select the first code cell (command mode) and run the first three: imports, sizes, the device print.
    first = browser.driver.find_elements("css selector", ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")[0]
    first.find_element("css selector", ".jp-InputPrompt").click()
    keys = ActionChains(browser.driver)
    for _ in range(3):
        keys.key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).pause(0.5)
    keys.perform()

    def printed(d):
        outputs = d.find_elements("css selector", ".jp-NotebookPanel .jp-OutputArea-output")
        return any("device: cpu (NumPy)" in e.text for e in outputs)

    try:
        _wait(browser, SERVER_START).until(printed)
    finally:
        browser.screenshot("1-student-lesson-cell-output")
    prompts = [e.text for e in browser.driver.find_elements("css selector", ".jp-CodeCell .jp-InputPrompt")[:3]]
    assert prompts == ["[1]:", "[2]:", "[3]:"], prompts


def test_a_student_fetches_and_submits_and_the_instructor_sees_it(hub, browser, monkeypatch, capfd):
    from grader.grading.collect import collect_submissions
    from grader.grading.release import release_assignment

    course_dir = hub.data_dir / "courses" / COURSE
    # The HTTP exchange (the default) knows the instructor by an API token from the hub, as the
    # README tells instructors to set it for `grader release` and `grader collect`.
    monkeypatch.setenv("GRADER_EXCHANGE_TOKEN", api_token(hub, login(hub, "instructor"), "instructor"))
    release_assignment(course_dir=course_dir, assignment_id=ASSIGNMENT)

    # The student: Nbgrader > Assignment List, Fetch, then Submit.
    _open_lab(browser, hub, "student", "2-student")
    _menu(browser, "Nbgrader", "Assignment List")
    fetch = _clickable(browser, "#released_assignments_list .list_item button", SERVER_START)
    assert ASSIGNMENT in browser.driver.find_element("css selector", "#released_assignments_list").text
    browser.screenshot("2-student-assignment-released")
    fetch.click()
    submit = _wait(browser, SERVER_START).until(lambda d: next(
        (b for b in d.find_elements("css selector", "#fetched_assignments_list button") if b.text == "Submit" and b.is_enabled()), None))
    browser.screenshot("2-student-assignment-fetched")
    assert (hub.data_dir / "homes" / "student" / COURSE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    submit.click()
    _wait(browser, SERVER_START).until(
        lambda d: ASSIGNMENT in d.find_element("css selector", "#submitted_assignments_list").text)
    browser.screenshot("2-student-assignment-submitted")

    # The instructor: collect, then the formgrader's submissions of the assignment.
    assert collect_submissions(course_dir=course_dir, assignment_id=ASSIGNMENT) == ["student"]
    # nbgrader's file-exchange collect compares the owner of each submitted folder with the student;
    # the HTTP exchange's collect writes what the service, which knows the caller, filed.
    collect_output = "".join(capfd.readouterr())
    assert "cheating attempt" not in collect_output and "cheating attempt" not in hub.log()
    browser.quit()  # a fresh browser: no cookie of the student's left
    browser.__init__()
    _log_in(browser, hub, "instructor", "3-instructor")
    browser.driver.get(f"{hub.url}/services/{COURSE}/formgrader")
    _wait(browser, SERVER_START).until(lambda d: ASSIGNMENT in d.find_element("css selector", "body").text)
    browser.screenshot("3-instructor-formgrader")
    browser.driver.get(f"{hub.url}/services/{COURSE}/formgrader/manage_submissions/{ASSIGNMENT}")

    def submission_rows(d):
        # Columns: student name, student id, timestamp, status, ...
        rows = [[cell.text for cell in row.find_elements("css selector", "td")]
                for row in d.find_elements("css selector", "table tbody tr")]
        return [row for row in rows if len(row) > 3 and row[1] == "student"]

    try:
        rows = _wait(browser, SERVER_START).until(submission_rows)
    finally:
        browser.screenshot("3-instructor-formgrader-submissions")
    assert len(rows) == 1 and rows[0][3] == "needs autograding", rows

    # The student has a name in the formgrader: their hub account's, not "None, None".
    browser.driver.get(f"{hub.url}/services/{COURSE}/formgrader/manage_students")
    _wait(browser, SERVER_START).until(lambda d: "student" in d.find_element("css selector", "table tbody").text)
    browser.screenshot("3-instructor-formgrader-students")
    names = [row.find_elements("css selector", "td")[0].text for row in
             browser.driver.find_elements("css selector", "table tbody tr")]
    assert names == ["student,"], names  # "last, first": the account's name, no first name known



def _grader(hub, token, *args):
    """The instructor's ``grader`` command, as the README shows it, with their hub token."""
    env = dict(os.environ, GRADER_COURSE_DIR=str(hub.data_dir / "courses" / COURSE), GRADER_EXCHANGE_TOKEN=token)
    result = subprocess.run([sys.executable, "-m", "grader.cli", *args], env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"grader {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _cdn_unreachable(browser) -> bool:
    """Whether this page's fetch of the CDN fails (the offline browser's premise)."""
    return browser.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        f"fetch('{CDN_PROBE}', {{mode: 'no-cors'}}).then(() => done(false), () => done(true));")


def _maths_rendered(browser, timeout=PAGE) -> int:
    """Wait for MathJax's output elements in the page; return how many there are."""
    return _wait(browser, timeout).until(lambda d: len(d.find_elements("css selector", MATHJAX_OUTPUT)) or None)


def test_offline_the_instructor_reaches_the_formgrader_from_lab_and_grades_with_maths(hub, offline_browser):
    browser = offline_browser
    _open_lab(browser, hub, "instructor", "4-instructor")
    assert _cdn_unreachable(browser)

    # Nbgrader > Formgrader: the course's formgrader service in Lab's frame, not a formgrader of
    # the instructor's own server ("The course id has not been set").
    _menu(browser, "Nbgrader", "Formgrader")
    frame = _visible(browser, "#formgrader-iframe iframe, iframe#formgrader-iframe", SERVER_START)
    browser.driver.switch_to.frame(frame)
    try:
        _wait(browser, SERVER_START).until(lambda d: ASSIGNMENT in d.find_element("css selector", "body").text)
        browser.screenshot("4-instructor-lab-formgrader")
        body = browser.driver.find_element("css selector", "body").text
        url = browser.driver.execute_script("return window.location.pathname")
    finally:
        browser.driver.switch_to.default_content()
    assert url.startswith(f"/services/{COURSE}/formgrader"), url
    assert "course id has not been set" not in body.lower()

    # Manage Assignments: the assignment's name and its Preview open the service's own pages.
    browser.driver.get(f"{hub.url}/services/{COURSE}/formgrader/manage_assignments")
    row = _wait(browser, SERVER_START).until(lambda d: next(
        (r for r in d.find_elements("css selector", "table tbody tr") if r.text.startswith(ASSIGNMENT)), None))
    links = {ASSIGNMENT: row.find_element("css selector", "td.name a").get_attribute("href"),
             "Preview": row.find_element("css selector", "td.preview a").get_attribute("href")}
    browser.screenshot("4-instructor-manage-assignments")
    assert links[ASSIGNMENT].startswith(f"{hub.url}/services/{COURSE}/tree/"), links
    assert links["Preview"].startswith(f"{hub.url}/services/{COURSE}/tree/"), links
    for name in (ASSIGNMENT, "Preview"):
        browser.driver.get(links[name])
        _wait(browser, SERVER_START).until(lambda d: ".ipynb" in d.find_element("css selector", "body").text)
        browser.screenshot(f"4-instructor-link-{name.lower()}")
        assert "404" not in browser.driver.title

    # Autograde, then grade by hand: the submission's maths rendered by MathJax from the service.
    token = api_token(hub, login(hub, "instructor"), "instructor")
    _grader(hub, token, "autograde", ASSIGNMENT, "--workers", "1")
    browser.driver.get(f"{hub.url}/services/{COURSE}/formgrader/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
    submission = _clickable(browser, "table tbody tr td a", SERVER_START)
    browser.driver.get(submission.get_attribute("href"))
    try:
        assert _maths_rendered(browser, SERVER_START)
    finally:
        browser.screenshot("4-instructor-manual-grading-maths")
    sources = browser.driver.execute_script("return [...document.scripts].map(s => s.src).filter(Boolean)")
    assert f"{hub.url}/services/{COURSE}/aicourse/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe" in sources, sources

    # Feedback, released from the command line as the README says.
    _grader(hub, token, "feedback", ASSIGNMENT)


def test_offline_the_student_fetches_feedback_and_reads_it_with_maths(hub, offline_browser):
    browser = offline_browser
    _open_lab(browser, hub, "student", "5-student")
    _menu(browser, "Nbgrader", "Assignment List")
    _wait(browser, SERVER_START).until(lambda d: next(
        (b for b in d.find_elements("css selector", "#submitted_assignments_list button") if b.text == "Fetch Feedback"), None))
    _wait(browser, SERVER_START).until(
        lambda d: "feedback available to fetch" in d.find_element("css selector", "#submitted_assignments_list").text)
    browser.screenshot("5-student-feedback-available")
    # The list re-renders when its status arrives: click the button that is there now.
    fetch = next(b for b in browser.driver.find_elements("css selector", "#submitted_assignments_list button")
                 if b.text == "Fetch Feedback")
    fetch.click()
    view = _wait(browser, SERVER_START).until(lambda d: next(
        (a for a in d.find_elements("css selector", "#submitted_assignments_list a") if "view feedback" in a.text), None))
    browser.screenshot("5-student-feedback-fetched")

    # The feedback sits in a plain folder name (no spaces, no colons), and "view feedback" goes to it.
    [html] = (hub.data_dir / "homes" / "student" / COURSE / ASSIGNMENT / "feedback").rglob("*.html")
    assert html.name == f"{ASSIGNMENT}.html" and not set(" :") & set(html.parent.name), html
    view.click()
    _wait(browser).until(lambda d: any(html.parent.name in e.text for e in d.find_elements("css selector", ".jp-BreadCrumbs")))
    selected = _wait(browser).until(lambda d: d.find_elements("css selector", ".jp-DirListing-item.jp-mod-selected"))
    assert html.name in selected[0].text
    browser.screenshot("5-student-view-feedback")

    # Opened as a page of the student's server: maths rendered by MathJax from that server.
    relative = html.relative_to(hub.data_dir / "homes" / "student")
    browser.driver.get(f"{hub.url}/user/student/files/{relative.as_posix()}")
    try:
        assert _maths_rendered(browser, SERVER_START)
    finally:
        browser.screenshot("5-student-feedback-maths")
    assert "cheating attempt" not in hub.log()
