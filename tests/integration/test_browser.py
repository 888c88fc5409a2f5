"""The course as people use it, in headless Chromium against a real hub.

A student logs in through the form, opens a lesson in JupyterLab and runs a cell; fetches and
submits a released assignment from nbgrader's Assignments panel; the instructor then finds the
submission in the formgrader. Screenshots of each step go to .artifacts/screenshots/.
"""

from __future__ import annotations

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


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


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
    browser.driver.get(f"{hub.url}/user/student/lab/tree/{LESSON}")
    _visible(browser, ".jp-NotebookPanel .jp-CodeCell", SERVER_START)
    # The kernel is up when its status reads Idle.
    _wait(browser, SERVER_START).until(
        lambda d: any("Idle" in e.text for e in d.find_elements("css selector", ".jp-StatusBar-TextItem, #jp-main-statusbar")))

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


def test_a_student_fetches_and_submits_and_the_instructor_sees_it(hub, browser, monkeypatch):
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
