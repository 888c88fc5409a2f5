"""The first week of a class, in one headless Chromium that reaches nothing but this machine
(issue #18, "What the tests must show").

An admin installs: the hub starts from a fresh data folder with the platform's YAML
(hub_config/platform.yaml, as `make hub` does) and prints the first passwords. The instructor
invites two students from the Students page, opens the formgrader from Lab's Nbgrader menu and
generates, previews and releases A1 there. Each student sets a password with the invitation link
and lands on the course's start-here page; one forgets it and sets a new one with a reset link the
instructor makes. Both fetch A1, write the hand-graded answer (with maths), validate and submit.
The instructor collects, autogrades, previews each submission, grades the written answer by hand
(its maths typeset by MathJax, checked in the page's DOM), generates and releases feedback; each
student fetches and reads their own feedback page, maths typeset.

Across the whole run: no 404 answered to the browser, no request to any host but 127.0.0.1, no
traceback in the hub's log (servers and services included, the hub's stop too), no "cheating
attempt" warning. Screenshots, the browser's network record and the hub's log go to
$CI_ARTIFACTS_DIR/first-week/ (else a pytest temporary folder); the folder is printed.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.support.browser import missing
from tests.support.hubfixture import start_hub, stop_hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.hub,
    pytest.mark.browser,
    pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}"),
]

COURSE = "ai101"
ASSIGNMENT = "a1_backprop"
ANSWER_ID = "written_answer"  # the hand-graded cell's grade_id in A1
SERVER_START = 180  # seconds: a server start, a validation or an autograde on a busy 2-core machine
PAGE = 60
# MathJax 2's CommonHTML output (nbconvert's configuration: TeX-AMS_CHTML-full), in the grading view and feedback.
MATHJAX_OUTPUT = ".mjx-chtml, .MathJax_CHTML"
TRACEBACK = "Traceback (most recent call last)"
CHEATING = "cheating attempt"

# The two students the instructor invites: (user name, first, last, the score their answer gets).
STUDENTS = {"alice": ("Alice", "Liddell", 17), "bob": ("Bob", "Builder", 12)}


def _answer(name: str) -> str:
    """What a student writes in the hand-graded cell: words of their own and maths."""
    return (f"Answer of {name}: the article's delta is $-\\delta_2$, so each step goes uphill, "
            f"$w \\leftarrow w + \\alpha \\delta_2 x$.")


@pytest.fixture
def artifacts(tmp_path_factory, capsys) -> Path:
    root = os.environ.get("CI_ARTIFACTS_DIR")
    folder = Path(root) / "first-week" if root else tmp_path_factory.mktemp("first-week-artifacts")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with capsys.disabled():
        print(f"\nfirst week: screenshots, network record and hub log in {folder}")
    return folder


# --- page helpers ---------------------------------------------------------------------------------


def _wait(browser, timeout=PAGE):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Lab and the formgrader re-render while loading: a stale element means "look again".
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


def _fill(browser, values: dict[str, str], submit: str) -> None:
    for css, value in values.items():
        field = _visible(browser, css)
        field.clear()
        field.send_keys(value)
    _clickable(browser, submit).click()


def _sign_in(browser, hub, name, password, next_url=""):
    browser.driver.get(f"{hub.url}/hub/login" + (f"?next={next_url}" if next_url else ""))
    _fill(browser, {"#username_input": name, "#password_input": password}, "#login_submit")
    _wait(browser).until(lambda d: "/hub/login" not in d.current_url)


def _sign_out(browser, hub):
    """Log out, then forget every cookie (the servers' own too, which live under /user/<name>/)."""
    browser.driver.get(f"{hub.url}/hub/logout")
    _wait(browser).until(lambda d: d.execute_script("return document.readyState") == "complete")
    browser.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})


def _lab(browser, shot, timeout=SERVER_START):
    """Wait for JupyterLab (submitting the spawn form where the hub shows one)."""
    def lab_or_form(d):
        if "/lab" in d.current_url and d.find_elements("css selector", "#jp-main-dock-panel"):
            return "lab"
        if d.find_elements("css selector", "form#spawn_form"):
            return "form"
        return None

    if _wait(browser, timeout).until(lab_or_form) == "form":
        browser.screenshot(f"{shot}-spawn-form")
        browser.driver.find_element("css selector", "form#spawn_form [type=submit]").click()
        _wait(browser, timeout).until(lambda d: lab_or_form(d) == "lab")
    _visible(browser, "#jp-top-panel", timeout)
    # A notebook named by the URL opens, and takes the focus, after Lab's start: wait for it, or it
    # takes the focus from a panel the test opens meanwhile.
    opened = urlsplit(browser.driver.current_url).path.rpartition("/")[2]
    if opened.endswith(".ipynb"):
        _wait(browser, timeout).until(lambda d: [tab for tab in d.find_elements("css selector", "#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
                                                 if unquote(opened) in tab.text])
        _visible(browser, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout)


def _menu(browser, menu, item):
    from selenium.webdriver.common.by import By

    def top(d):
        found = [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text.strip() == menu]
        return found[0] if found else None

    _wait(browser).until(top).click()

    def entry(d):
        found = [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-Menu-item") if e.text.strip().startswith(item) and e.is_displayed()]
        return found[0] if found else None

    _wait(browser).until(entry).click()


def _button(browser, css, label, timeout=SERVER_START):
    return _wait(browser, timeout).until(lambda d: next(
        (b for b in d.find_elements("css selector", css) if b.text.strip() == label and b.is_enabled()), None))


# --- the formgrader (nbgrader's pages, in Lab's frame or on their own) --------------------------


def _find_row(driver, cell_css, text):
    return next((row for row in driver.find_elements("css selector", "table tbody tr")
                 if [c for c in row.find_elements("css selector", cell_css) if c.text.strip() == text]), None)


def _row(browser, cell_css, text, timeout=SERVER_START):
    """The table row whose ``cell_css`` cell reads ``text``."""
    return _wait(browser, timeout).until(lambda d: _find_row(d, cell_css, text))


def _in_row(browser, cell_css, text, css, timeout=PAGE):
    """The element ``css`` in that row, once the row shows it (nbgrader re-renders a row after each action)."""
    def found(d):
        row = _find_row(d, cell_css, text)
        return row.find_elements("css selector", css)[0] if row and row.find_elements("css selector", css) else None

    return _wait(browser, timeout).until(found)


def _formgrader_action(browser, cell_css, text, column, shot, timeout=SERVER_START) -> str:
    """Click a row's action (a glyph link in ``td.<column>``), wait for nbgrader's answer (its
    success or error dialog), keep a screenshot, close it; the dialog's text, log included."""
    _in_row(browser, cell_css, text, f"td.{column} a").click()
    modal = _wait(browser, timeout).until(lambda d: next(
        (m for m in d.find_elements("css selector", "#success-modal, #error-modal") if m.is_displayed()), None))
    outcome, said = modal.get_attribute("id"), modal.text
    browser.screenshot(shot)
    modal.find_element("css selector", ".modal-footer button").click()
    _wait(browser).until(lambda d: not d.find_elements("css selector", "#success-modal, #error-modal"))
    assert outcome == "success-modal", f"formgrader {column} of {text}:\n{said}"
    assert CHEATING not in said, said
    return said


def _maths_in(browser, css) -> int:
    """MathJax's output elements inside the element ``css`` (0 while it has typeset nothing there)."""
    return browser.driver.execute_script(
        "const where = document.querySelector(arguments[0]);"
        "return where ? where.querySelectorAll(arguments[1]).length : 0;", css, MATHJAX_OUTPUT)


def _scroll_to(browser, css) -> None:
    browser.driver.execute_script("document.querySelector(arguments[0])?.scrollIntoView({block: 'center'})", css)


# --- the week, step by step -----------------------------------------------------------------------


def _invite_students(browser, hub) -> dict[str, str]:
    """The instructor adds the two students on the Students page; their one-time links."""
    _sign_in(browser, hub, "instructor", hub.passwords["instructor"], "/hub/home")
    _clickable(browser, "#nav-students").click()
    _wait(browser).until(lambda d: d.current_url.endswith(f"/hub/course/{COURSE}/students"))
    links = {}
    for name, (first, last, _) in STUDENTS.items():
        _fill(browser, {"#add-username": name, "#add-first": first, "#add-last": last}, "#add-submit")
        result = _visible(browser, f'#results tr[data-name="{name}"]')
        assert result.get_attribute("data-ok") == "yes", result.text
        links[name] = result.find_element("css selector", "pre.invitation-link").text.strip()
        assert f"{hub.url}/hub/password/reset?token=" in links[name], links[name]
        browser.screenshot(f"instructor-invites-{name}")
    listed = [row.get_attribute("data-name") for row in browser.driver.find_elements("css selector", "#students tbody tr")]
    assert set(STUDENTS) <= set(listed), listed
    return links


def _release_from_lab(browser, hub) -> None:
    """The instructor's Lab: Nbgrader > Formgrader, then Generate, Preview and Release A1 there."""
    browser.driver.get(f"{hub.url}/hub/spawn")
    _lab(browser, "instructor")
    assert browser.cdn_unreachable()  # the premise: this browser reaches no CDN
    _menu(browser, "Nbgrader", "Formgrader")
    frame = _visible(browser, "#formgrader-iframe iframe, iframe#formgrader-iframe", SERVER_START)
    browser.driver.switch_to.frame(frame)
    try:
        _row(browser, "td.name", ASSIGNMENT)
        path = browser.driver.execute_script("return window.location.pathname")
        assert path.startswith(f"/services/{COURSE}/formgrader"), path
        browser.screenshot("instructor-lab-formgrader")
        _formgrader_action(browser, "td.name", ASSIGNMENT, "assign", "instructor-generated")
        preview = _in_row(browser, "td.name", ASSIGNMENT, "td.preview a").get_attribute("href")
        _formgrader_action(browser, "td.name", ASSIGNMENT, "release", "instructor-released")
        _wait(browser).until(lambda d: _in_row(browser, "td.name", ASSIGNMENT, "td.status").text == "released")
    finally:
        browser.driver.switch_to.default_content()
    # Preview: the student version, in the course's formgrader service (not a 404 of the hub).
    assert preview.startswith(f"{hub.url}/services/{COURSE}/tree/"), preview
    browser.driver.get(preview)
    _wait(browser, SERVER_START).until(lambda d: f"{ASSIGNMENT}.ipynb" in d.find_element("css selector", "body").text)
    browser.screenshot("instructor-preview-student-version")


def _set_password(browser, link, name, password, shot) -> None:
    browser.driver.get(link)
    assert _visible(browser, "#password-account").text == name
    _fill(browser, {"#password_input": password, "#password_confirm_input": password}, "#password_submit")
    assert "Your password is set" in _visible(browser, "#password-done").text
    browser.screenshot(shot)


def _first_sign_in(browser, hub, name, password) -> None:
    """A student's first sign-in: their server starts and opens the course's start-here page."""
    _sign_in(browser, hub, name, password)
    _lab(browser, name)
    assert "START_HERE" in browser.driver.current_url, browser.driver.current_url
    _wait(browser, SERVER_START).until(lambda d: any(
        "START_HERE" in tab.text for tab in d.find_elements("css selector", "#jp-main-dock-panel .lm-TabBar-tab")))
    browser.screenshot(f"{name}-start-here")


def _forgets_and_resets(browser, hub, name, old_password, new_password) -> None:
    """The student cannot sign in; the instructor makes a reset link on the Accounts page; the
    student sets a new password with it and signs in."""
    browser.driver.get(f"{hub.url}/hub/login")
    _fill(browser, {"#username_input": name, "#password_input": "what was it again"}, "#login_submit")
    assert "Invalid username or password" in _visible(browser, ".login_error").text
    browser.screenshot(f"{name}-forgot-password")

    _sign_in(browser, hub, "instructor", hub.passwords["instructor"], "/hub/home")
    _clickable(browser, "#nav-accounts").click()
    row = _visible(browser, f"#students-{COURSE}").find_element("xpath", f".//tr[td[text()='{name}']]")
    row.find_element("css selector", "button[value=reset]").click()
    link = _visible(browser, "#reset-link").text.strip()
    browser.screenshot(f"instructor-reset-link-for-{name}")
    _sign_out(browser, hub)

    _set_password(browser, link, name, new_password, f"{name}-password-reset")
    browser.driver.get(link)
    assert "already been used" in _visible(browser, "#password-error").text  # once only
    browser.driver.get(f"{hub.url}/hub/login")
    _fill(browser, {"#username_input": name, "#password_input": old_password}, "#login_submit")
    assert "Invalid username or password" in _visible(browser, ".login_error").text


def _work_validate_submit(browser, hub, name) -> None:
    """Fetch A1 from the Assignment List, write the hand-graded answer, Validate, Submit."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    _menu(browser, "Nbgrader", "Assignment List")
    fetch = _button(browser, "#released_assignments_list .list_item button", "Fetch")
    assert ASSIGNMENT in browser.driver.find_element("css selector", "#released_assignments_list").text
    browser.screenshot(f"{name}-assignment-released")
    fetch.click()
    _button(browser, "#fetched_assignments_list button", "Submit")
    browser.screenshot(f"{name}-assignment-fetched")
    notebook = hub.data_dir / "homes" / name / COURSE / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    assert notebook.is_file()

    browser.driver.get(f"{hub.url}/user/{name}/lab/tree/{COURSE}/{ASSIGNMENT}/{ASSIGNMENT}.ipynb")
    _lab(browser, name)
    panel = ".jp-NotebookPanel:not(.lm-mod-hidden)"
    _visible(browser, f"{panel} .jp-MarkdownCell", SERVER_START)
    # The answer cell (nbgrader's "YOUR ANSWER HERE"), found by its text whether or not it is on
    # screen yet (Lab skips rendering cells out of view), brought into view.
    find = ("const cell = [...document.querySelectorAll(arguments[0])].find(c => c.textContent.includes('YOUR ANSWER HERE'));"
            "if (cell) cell.scrollIntoView({block: 'center'});"
            "return cell || null;")
    cell = _wait(browser, SERVER_START).until(lambda d: d.execute_script(find, f"{panel} .jp-MarkdownCell"))

    def editing(d):
        """Double-click the answer to edit it. Cells above it still settle their height (maths,
        outputs) and can move it from under the pointer: then leave that cell and try again."""
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        time.sleep(0.5)
        ActionChains(d).double_click(cell.find_element("css selector", ".jp-RenderedMarkdown")).perform()
        time.sleep(0.5)
        shown = [e for e in cell.find_elements("css selector", ".cm-content") if e.is_displayed()]
        if not shown:
            ActionChains(d).send_keys(Keys.ESCAPE).perform()
        return shown[0] if shown else None

    editor = _wait(browser).until(editing)
    editor.click()
    (ActionChains(browser.driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL)
     .send_keys(_answer(name)).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform())
    # Rendered in Lab, maths typeset by Lab's own MathJax.
    _wait(browser).until(lambda d: f"Answer of {name}" in d.execute_script("return arguments[0].textContent", cell)
                         and cell.find_elements("css selector", "mjx-container"))
    browser.screenshot(f"{name}-answer-written")

    # Validate (the notebook's toolbar button saves first): nbgrader's report in a dialog.
    _clickable(browser, f"{panel} .validate-button").click()
    report = _visible(browser, ".jp-Dialog #validation-message", SERVER_START)
    said = report.text
    browser.screenshot(f"{name}-validated")
    _clickable(browser, ".jp-Dialog .jp-mod-accept").click()
    _wait(browser).until(lambda d: not d.find_elements("css selector", ".jp-Dialog"))
    # The unimplemented parts fail their tests, which is what validation is for; the notebook ran.
    assert "failed" in said.lower() or "passed" in said.lower(), said
    assert f"Answer of {name}" in notebook.read_text(), "the answer was not saved"

    _menu(browser, "Nbgrader", "Assignment List")
    _button(browser, "#fetched_assignments_list button", "Submit").click()
    _wait(browser, SERVER_START).until(
        lambda d: ASSIGNMENT in d.find_element("css selector", "#submitted_assignments_list").text)
    browser.screenshot(f"{name}-submitted")


def _collect_grade_and_return(browser, hub) -> None:
    """The instructor, in the course's formgrader: collect, autograde, preview and grade each
    submission by hand, then generate and release the feedback."""
    from selenium.webdriver.common.keys import Keys

    formgrader = f"{hub.url}/services/{COURSE}/formgrader"
    browser.driver.get(f"{formgrader}/manage_assignments")
    said = _formgrader_action(browser, "td.name", ASSIGNMENT, "collect", "instructor-collected")
    _wait(browser).until(lambda d: _in_row(browser, "td.name", ASSIGNMENT, "td.num-submissions").text
                         == str(len(STUDENTS)), said)

    browser.driver.get(f"{formgrader}/manage_submissions/{ASSIGNMENT}")
    for name, (first, last, _) in STUDENTS.items():
        row = _row(browser, "td.student-id", name)
        assert row.find_element("css selector", "td.student-name").text == f"{last}, {first}"
        assert row.find_element("css selector", "td.status").text == "needs autograding"
        _formgrader_action(browser, "td.student-id", name, "autograde", f"instructor-autograded-{name}", timeout=2 * SERVER_START)
        _wait(browser).until(lambda d, name=name: _in_row(browser, "td.student-id", name, "td.status").text
                             == "needs manual grading")
    browser.screenshot("instructor-submissions-autograded")

    answer_panel = f".nbgrader_cell:has(input#{ANSWER_ID})"
    for name, (_, _, points) in STUDENTS.items():
        # Preview: the student's autograded notebook, reached from their page in the formgrader.
        browser.driver.get(f"{formgrader}/manage_students/{name}/{ASSIGNMENT}")
        link = _in_row(browser, "td.name", ASSIGNMENT, "td.name a").get_attribute("href")
        assert link.startswith(f"{formgrader}/submissions/"), link
        browser.driver.get(link)
        score = _visible(browser, f"input#{ANSWER_ID}", SERVER_START)
        try:
            _wait(browser, SERVER_START).until(lambda d: _maths_in(browser, answer_panel) > 0)
        finally:
            _scroll_to(browser, answer_panel)
            browser.screenshot(f"instructor-grades-{name}")
        assert f"Answer of {name}" in browser.driver.find_element("css selector", answer_panel).text
        sources = browser.driver.execute_script("return [...document.scripts].map(s => s.src).filter(Boolean)")
        assert any(src.startswith(f"{hub.url}/services/{COURSE}/aicourse/mathjax/MathJax.js") for src in sources), sources
        # Each save ends with nbgrader's "finished_saving" event: count them.
        browser.driver.execute_script("window.saves = 0; $(document).on('finished_saving', () => window.saves++);")
        score.clear()
        score.send_keys(str(points), Keys.TAB)
        _wait(browser).until(lambda d: d.execute_script("return window.saves") >= 1)
        _visible(browser, f"#{ANSWER_ID}-comment").send_keys(f"Right sign argument, {name}.", Keys.TAB)
        _wait(browser).until(lambda d: d.execute_script("return window.saves") >= 2)
        # Saved: the page loaded again shows the score and the comment given.
        browser.driver.refresh()
        _wait(browser).until(lambda d, points=points: d.find_element("css selector", f"input#{ANSWER_ID}")
                             .get_attribute("value") == str(points))
        _wait(browser).until(lambda d, name=name: d.find_element("css selector", f"#{ANSWER_ID}-comment")
                             .get_attribute("value") == f"Right sign argument, {name}.")
        _scroll_to(browser, answer_panel)
        browser.screenshot(f"instructor-graded-{name}")

    browser.driver.get(f"{formgrader}/manage_assignments")
    _formgrader_action(browser, "td.name", ASSIGNMENT, "generate-feedback", "instructor-feedback-generated",
                       timeout=2 * SERVER_START)
    _formgrader_action(browser, "td.name", ASSIGNMENT, "release-feedback", "instructor-feedback-released")


def _read_feedback(browser, hub, name, password) -> None:
    """The student fetches their feedback from the Assignment List and reads it, maths typeset."""
    _sign_in(browser, hub, name, password)
    _lab(browser, name)
    _menu(browser, "Nbgrader", "Assignment List")
    _wait(browser, SERVER_START).until(
        lambda d: "feedback available to fetch" in d.find_element("css selector", "#submitted_assignments_list").text)
    browser.screenshot(f"{name}-feedback-available")
    _button(browser, "#submitted_assignments_list button", "Fetch Feedback").click()
    view = _wait(browser, SERVER_START).until(lambda d: next(
        (a for a in d.find_elements("css selector", "#submitted_assignments_list a") if "view feedback" in a.text), None))
    home = hub.data_dir / "homes" / name
    [html] = (home / COURSE / ASSIGNMENT / "feedback").rglob("*.html")
    view.click()
    _wait(browser).until(lambda d: any(html.parent.name in e.text for e in d.find_elements("css selector", ".jp-BreadCrumbs")))
    browser.screenshot(f"{name}-view-feedback")

    browser.driver.get(f"{hub.url}/user/{name}/files/{html.relative_to(home).as_posix()}")
    answer_panel = f'.nbgrader_cell:has(a[name="{ANSWER_ID}"])'
    try:
        _wait(browser, SERVER_START).until(lambda d: _maths_in(browser, answer_panel) > 0)
    finally:
        browser.screenshot(f"{name}-feedback-page")
        _scroll_to(browser, answer_panel)
        browser.screenshot(f"{name}-feedback-page-answer")
    text = browser.driver.find_element("css selector", "body").text
    points = STUDENTS[name][2]
    assert f"Written response (Score: {float(points)} / 20.0)" in text, text[:2000]
    assert f"Answer of {name}" in browser.driver.find_element("css selector", answer_panel).text
    assert f"Right sign argument, {name}." in text
    others = [other for other in STUDENTS if other != name]
    assert not [other for other in others if f"Answer of {other}" in text]


# --- the test ---------------------------------------------------------------------------------------


def test_the_first_week_in_a_browser_that_reaches_only_this_machine(tmp_path_factory, artifacts):
    from tests.support.recorded_browser import RecordedBrowser

    started = time.monotonic()
    # The admin installs: a fresh data folder, the platform's YAML, the first passwords printed once.
    hub = start_hub(tmp_path_factory.mktemp("first-week-hub") / ".hub-data", timeout=300)
    browser = None
    passwords = {name: f"{name}'s first password" for name in STUDENTS}
    try:
        assert {"instructor", "student"} <= set(hub.passwords), hub.log()[-3000:]
        browser = RecordedBrowser(artifacts / "screenshots")

        links = _invite_students(browser, hub)
        _release_from_lab(browser, hub)
        _sign_out(browser, hub)

        # alice: the invitation link, a password, the start-here page, the work.
        _set_password(browser, links["alice"], "alice", passwords["alice"], "alice-password-set")
        _first_sign_in(browser, hub, "alice", passwords["alice"])
        _work_validate_submit(browser, hub, "alice")
        _sign_out(browser, hub)

        # bob: sets a password, forgets it, is given a reset link, then works.
        _set_password(browser, links["bob"], "bob", passwords["bob"], "bob-password-set")
        _forgets_and_resets(browser, hub, "bob", passwords["bob"], "bob's second password")
        passwords["bob"] = "bob's second password"
        _first_sign_in(browser, hub, "bob", passwords["bob"])
        _work_validate_submit(browser, hub, "bob")
        _sign_out(browser, hub)

        _sign_in(browser, hub, "instructor", hub.passwords["instructor"], "/hub/home")
        _collect_grade_and_return(browser, hub)
        _sign_out(browser, hub)

        for name in STUDENTS:
            _read_feedback(browser, hub, name, passwords[name])
            _sign_out(browser, hub)
    except Exception:
        if browser is not None:
            try:
                browser.screenshot("failed-here")
            except Exception:  # the browser itself is gone
                pass
        raise
    finally:
        if browser is not None:
            browser.write_record(artifacts)
            browser.quit()
        stop_hub(hub)
        shutil.copy(hub.log_path, artifacts / "hub.log")
        with open(artifacts / "duration.txt", "w") as out:
            out.write(f"{time.monotonic() - started:.0f} s\n")

    # Across the whole run.
    problems = [f"404: {exchange}" for exchange in browser.not_found()]
    problems += [f"off 127.0.0.1: {exchange}" for exchange in browser.off_loopback()]
    log = hub.log().splitlines()
    problems += [f"hub log line {number}: {line}" for number, line in enumerate(log, 1) if TRACEBACK in line or CHEATING in line]
    assert not problems, "\n".join(problems)
