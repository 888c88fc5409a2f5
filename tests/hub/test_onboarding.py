"""An instructor onboards the students of their course from the browser, on a real hub, with no
admin rights and no restart (grader/hub/auth/onboarding.py): adds an existing account, invites new
people by a one-time link (e-mailed through a real SMTP server on loopback, or shown on the page),
uploads a CSV roster with bad rows, removes a student; the invited student sets a password, signs
in and is in the course. An instructor of another course, and a student, get 403.

The hub: ai101 (instructor ``instructor``, student ``student``), ai102 (``teacher2``, ``other``),
``bob`` an account in no course; ``admins`` left empty (the default); ``mail`` pointing at an
aiosmtpd server the test runs.
"""

from __future__ import annotations

import email
import email.policy
import html
import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import yaml
from aiosmtpd.controller import Controller

from grader.hub.auth.onboarding import parse_roster
from tests.support.browser import missing
from tests.support.hubfixture import api_token, free_port, login, start_hub, stop_hub

pytestmark = [pytest.mark.slow, pytest.mark.hub]

COURSE = "ai101"
PAGE = f"/hub/course/{COURSE}/students"


class Inbox:
    """aiosmtpd's handler: every message received, as (recipients, subject and body, decoded as a mail
    client does)."""

    def __init__(self):
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = f"Subject: {message['Subject']}\n\n{message.get_body(('plain',)).get_content()}"
        self.messages.append((list(envelope.rcpt_tos), text))
        return "250 OK"

    def to(self, address: str) -> list[str]:
        return [text for recipients, text in self.messages if address in recipients]


@pytest.fixture(scope="module")
def inbox():
    received = Inbox()
    controller = Controller(received, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield received, controller.port
    controller.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, inbox):
    work = tmp_path_factory.mktemp("onboarding-hub")
    config = work / "platform.yaml"
    config.write_text(yaml.safe_dump({
        "accounts": {"invitation_hours": 48},
        "idle_culler": {"enabled": False}, "profiles": {},
        "groups": {"staff-room": ["bob"]},
        "mail": {"smtp_host": "127.0.0.1", "smtp_port": inbox[1], "security": "none",
                 "from": "AI course <course@example.org>"},
        "courses": {
            "ai101": {"title": "AI hands-on", "formgrader_port": free_port(), "instructors": ["instructor"],
                      "students": ["student"]},
            "ai102": {"formgrader_port": free_port(), "instructors": ["teacher2"], "students": ["other"]},
        },
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config))
        running = start_hub(work / "data")
    yield running
    stop_hub(running)


def _xsrf(page: requests.Response) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def _post(hub, session: requests.Session, path: str = PAGE, files=None, **data) -> requests.Response:
    page = session.get(f"{hub.url}{path}")
    return session.post(f"{hub.url}{path}", data={**data, "_xsrf": _xsrf(page)}, files=files)


def _report(page: requests.Response) -> list[tuple[str, bool, str]]:
    """(name, done, the row's text) of each row of the report on the page, in order."""
    rows = re.findall(r'<tr class="[^"]*" data-name="([^"]*)"\s+data-ok="(yes|no)">(.*?)</tr>', page.text, re.S)
    return [(name, ok == "yes", html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))).strip())
            for name, ok, text in rows]


def _results(page: requests.Response) -> dict[str, tuple[bool, str]]:
    return {name: (ok, text) for name, ok, text in _report(page)}


def _links(page: requests.Response) -> list[str]:
    return [html.unescape(link) for link in re.findall(r'<pre class="invitation-link">([^<]+)</pre>', page.text)]


def _members(hub, token: str, course: str = "ai101") -> set[str]:
    answer = requests.get(f"{hub.url}/hub/api/groups/nbgrader-{course}", headers={"Authorization": f"token {token}"})
    answer.raise_for_status()
    return set(answer.json()["users"])


def _gradebook(hub, course: str = "ai101") -> dict[str, tuple]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{hub.data_dir / 'courses' / course / 'gradebook.db'}", course_id=course) as gradebook:
        return {s.id: (s.first_name, s.last_name, s.email) for s in gradebook.students}


def _set_password(link: str, password: str) -> requests.Response:
    session = requests.Session()
    session.get(link.split("/hub/")[0] + "/hub/login")
    return session.post(link.split("?")[0], data={
        "token": parse_qs(urlparse(link).query)["token"][0], "password": password, "password_confirm": password,
        "_xsrf": session.cookies.get("_xsrf")})


def _link_in(text: str) -> str:
    return re.search(r"(http://\S+/hub/password/reset\?token=\S+)", text).group(1)


# --- the roster, without a hub ------------------------------------------------------------------


def test_a_roster_reports_each_bad_row_by_its_line_and_keeps_the_good_ones():
    rows, errors = parse_roster(
        "name,email,first,last\n"
        "Alice,alice@example.org,Alice,Liddell\n"
        "bad name!,x@example.org\n"
        "carl,not-an-address\n"
        "\n"
        "dora\n"
        "alice,again@example.org\n"
        "eve,eve@example.org,Eve,E,extra\n")
    assert [(row.line, row.name, row.email, row.first, row.last) for row in rows] == [
        (2, "alice", "alice@example.org", "Alice", "Liddell"), (6, "dora", "", "", "")]
    assert {error.line: error.message for error in errors} == {
        3: "user name 'bad name!': 1 to 64 characters, lower-case letters, digits and . _ @ -, starting with a "
           "letter or digit",
        4: "e-mail address 'not-an-address' is not valid",
        7: "alice is already on line 2",
        8: "5 columns; expected name,email[,first,last]",
    }


# --- the page, on a real hub ----------------------------------------------------------------------


def test_the_instructor_reaches_the_page_from_the_nav_bar_without_admin_rights(hub):
    session = login(hub, "instructor")
    home = session.get(f"{hub.url}/hub/home")
    assert 'id="nav-students" href="/hub/course/students"' in home.text
    # Admins stay [] by default: the instructor is no JupyterHub admin, and needs not be one.
    assert session.get(f"{hub.url}/hub/admin").status_code == 403
    assert session.get(f"{hub.url}/hub/signup/admin").status_code == 403
    landing = session.get(f"{hub.url}/hub/course/students")
    assert landing.url.endswith(PAGE) and landing.status_code == 200  # one course: straight to it
    assert "Students of AI hands-on" in landing.text and 'data-name="student"' in landing.text
    student = login(hub, "student")
    student_home = student.get(f"{hub.url}/hub/home").text
    assert 'id="nav-students"' not in student_home
    # The student's nav bar links their course's page (the HTTP exchange serves it), and it opens.
    course_page = f"/services/nbgrader-exchange/courses/{COURSE}/"
    assert f'class="nav-link nav-course" href="{course_page}">{COURSE}</a>' in student_home
    page = student.get(f"{hub.url}{course_page}")
    assert page.status_code == 200 and page.url.endswith(course_page) and "student" in page.text
    assert student.get(f"{hub.url}{PAGE}").status_code == 403
    assert student.get(f"{hub.url}/hub/course/students").status_code == 403


def test_an_instructor_adds_invites_uploads_and_removes_and_the_invited_student_signs_in(hub, inbox):
    received, _ = inbox
    session = login(hub, "instructor")
    token = api_token(hub, session, "instructor")

    # An existing account: added to the group and the gradebook (with the names given); no link, no e-mail.
    added = _post(hub, session, action="add", username="bob", email="bob@example.org", first="Bob", last="Builder")
    assert added.status_code == 200
    assert _results(added)["bob"] == (True, "bob existing account, added to the course.")
    assert _links(added) == [] and received.to("bob@example.org") == []
    assert "bob" in _members(hub, token)
    assert _gradebook(hub)["bob"] == ("Bob", "Builder", "bob@example.org")
    again = _post(hub, session, action="add", username="bob")
    assert _results(again)["bob"] == (True, "bob already a student of ai101.")

    # A new person with an address: an account and a one-time link, e-mailed, not shown.
    invited = _post(hub, session, action="add", username="carol", email="carol@example.org", first="Carol")
    assert _results(invited)["carol"][0] and "Invitation e-mailed to carol@example.org" in invited.text
    assert _links(invited) == []
    [mail] = received.to("carol@example.org")
    assert "Subject: AI course platform: your account for AI hands-on" in mail
    assert "Hello Carol" in mail and "Your user name: carol" in mail and "valid 48 hours" in mail
    # A new person without an address: the link is on the page, to hand over.
    shown = _post(hub, session, action="add", username="dave")
    [dave_link] = _links(shown)
    assert "/hub/password/reset?token=" in dave_link and _results(shown)["dave"][0]
    assert {"carol", "dave"} <= _members(hub, token)

    # The invited student sets a password with the link, signs in, and is in the course.
    carol_link = _link_in(mail)
    assert _set_password(carol_link, "carol's password 1").status_code == 200
    assert _set_password(carol_link, "another password 2").status_code == 400  # once only
    carol = login(hub, "carol", "carol's password 1")
    me = requests.get(f"{hub.url}/hub/api/user",
                      headers={"Authorization": f"token {api_token(hub, carol, 'carol')}"}).json()
    assert "nbgrader-ai101" in me["groups"] and not me["admin"]
    assert carol.get(f"{hub.url}{PAGE}").status_code == 403  # a student, nothing more

    # A CSV roster: the bad rows are named by line, the others done.
    roster = ("name,email,first,last\n"
              "erin,erin@example.org,Erin,Example\n"
              "Not Valid,x@example.org\n"
              "frank,frank-at-example\n"
              "gina,,Gina,Green\n"
              "erin,erin2@example.org\n")
    uploaded = _post(hub, session, action="upload", files={"roster_file": ("class.csv", roster.encode(), "text/csv")})
    assert uploaded.status_code == 200
    report = _report(uploaded)
    assert [(name, ok) for name, ok, _ in report] == [
        ("erin", True), ("Not Valid", False), ("frank", False), ("gina", True), ("erin", False)]
    assert report[0][2].startswith("line 2 erin new account, added to the course.")
    assert report[1][2] == ("line 3 Not Valid user name 'Not Valid': 1 to 64 characters, lower-case letters, "
                            "digits and . _ @ -, starting with a letter or digit.")
    assert report[2][2] == "line 4 frank e-mail address 'frank-at-example' is not valid."
    assert report[4][2] == "line 6 erin erin is already on line 2."
    assert "2 done, 3 not done" in uploaded.text
    assert len(received.to("erin@example.org")) == 1 and len(_links(uploaded)) == 1  # gina: no address, a link
    members = _members(hub, token)
    assert {"erin", "gina"} <= members and "frank" not in members and "not valid" not in members
    assert _gradebook(hub)["gina"] == ("Gina", "Green", None)

    # Removing: out of the group and the gradebook (no submissions); the account stays.
    removed = _post(hub, session, action="remove", username="gina")
    assert "Removed gina from ai101; their account stays; removed from the gradebook." in removed.text
    assert "gina" not in _members(hub, token) and "gina" not in _gradebook(hub)
    # Someone who is not a student of this course is not touched.
    refused = _post(hub, session, action="remove", username="other")
    assert refused.status_code == 400 and "other is not a student of ai101: nothing was changed." in refused.text
    teacher2 = login(hub, "teacher2")
    assert "other" in _members(hub, api_token(hub, teacher2, "teacher2"), "ai102")


def test_an_instructor_of_another_course_gets_403_and_changes_nothing(hub):
    teacher2 = login(hub, "teacher2")
    assert teacher2.get(f"{hub.url}{PAGE}").status_code == 403
    # The form of their own course, posted to ai101: refused before anything is read.
    own = teacher2.get(f"{hub.url}/hub/course/ai102/students")
    assert own.status_code == 200 and 'data-name="other"' in own.text
    for data in ({"action": "remove", "username": "student"}, {"action": "add", "username": "intruder"}):
        answer = teacher2.post(f"{hub.url}{PAGE}", data={**data, "_xsrf": _xsrf(own)})
        assert answer.status_code == 403
    instructor = login(hub, "instructor")
    members = _members(hub, api_token(hub, instructor, "instructor"))
    assert "student" in members and "intruder" not in members
    assert teacher2.get(f"{hub.url}/hub/course/nosuch/students").status_code == 403
    # And ai101's instructor cannot manage ai102.
    assert instructor.get(f"{hub.url}/hub/course/ai102/students").status_code == 403


@pytest.mark.browser
@pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}")
def test_the_page_in_a_browser_from_the_nav_bar_to_a_link_and_an_uploaded_file(hub, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.driver

    def visible(css: str):
        return WebDriverWait(driver, 60, poll_frequency=0.25).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    driver.get(f"{hub.url}/hub/login")
    driver.find_element(By.ID, "username_input").send_keys("instructor")
    driver.find_element(By.ID, "password_input").send_keys(hub.passwords["instructor"])
    driver.find_element(By.ID, "login_submit").click()
    WebDriverWait(driver, 60).until(lambda d: "/hub/login" not in d.current_url)
    driver.get(f"{hub.url}/hub/home")
    visible("#nav-students").click()
    visible("#add-username").send_keys("hank")
    driver.find_element(By.ID, "add-submit").click()
    link = visible("pre.invitation-link").text
    assert "/hub/password/reset?token=" in link
    assert "hank" in visible("#students").text
    roster = tmp_path / "roster.csv"
    roster.write_text("name,email\nivy,\n!bad,\n")
    driver.find_element(By.ID, "roster-file").send_keys(str(roster))
    browser.screenshot("course-students-added")
    # (below the fold of the 900-pixel window: clicked by script, as a scrolled-down click would)
    driver.execute_script("arguments[0].click()", driver.find_element(By.ID, "upload-submit"))
    assert "1 done, 1 not done" in visible("#course-message").text
    assert "line 3" in visible("#results").text
    browser.screenshot("course-students-upload")
