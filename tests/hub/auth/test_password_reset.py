"""Passwords after sign-up, on a real hub: change, reset links, lockout, unlock, rate limits, and the
sign-up page in the default invitation mode; the change and reset flow also in headless Chromium.

The hub: `accounts.signup` left at its default (invitation), three failures lock a name, and small
request limits. ai101's instructor manages its students; ``ta`` is a student of ai101 but a grader
of ai102, so ai101's instructor may not reset their password.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import yaml

from grader.cli import main
from grader.hub.auth.accounts import AccountStore
from tests.support.browser import missing
from tests.support.hubfixture import free_port, login, start_hub, stop_hub

pytestmark = [pytest.mark.slow, pytest.mark.hub]

MAX_FAILURES = 3
PER_ADDRESS, PER_NAME = 12, 3
LOCKED = re.compile(r"Too many failed sign-ins for this name\. Try again after \d\d:\d\d UTC")
PAGE = 60  # seconds for a page on a busy 2-core machine


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    work = tmp_path_factory.mktemp("password-hub")
    config = work / "platform.yaml"
    config.write_text(yaml.safe_dump({
        "accounts": {"max_failed_logins": MAX_FAILURES, "lockout_seconds": 600, "reset_hours": 2,
                     "requests_per_address": PER_ADDRESS, "requests_per_name": PER_NAME},
        "admins": ["boss"], "idle_culler": {"enabled": False}, "profiles": {},
        "courses": {
            "ai101": {"formgrader_port": free_port(), "instructors": ["instructor"],
                      "students": ["student", "student2", "student3", "ta"]},
            "ai102": {"formgrader_port": free_port(), "instructors": ["teacher2"], "graders": ["ta"],
                      "students": ["other"]},
        },
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config))
        running = start_hub(work / "data")
    yield running
    stop_hub(running)


def _db(hub):
    return hub.data_dir / "accounts.sqlite"


def _xsrf(page: requests.Response) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def _login_answer(hub, username: str, password: str) -> requests.Response:
    session = requests.Session()
    session.get(f"{hub.url}/hub/login")
    return session.post(f"{hub.url}/hub/login", allow_redirects=False, data={
        "username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")})


def _login_error(answer: requests.Response) -> str:
    match = re.search(r'<p class="login_error">([^<]*)</p>', answer.text)
    return html.unescape(match.group(1)) if match else ""


def _post_form(session: requests.Session, url: str, **data) -> requests.Response:
    page = session.get(url)
    return session.post(url, data={**data, "_xsrf": _xsrf(page)})


def _reset_link_from(page: requests.Response) -> str:
    return html.unescape(re.search(r'<pre id="reset-link">([^<]+)</pre>', page.text).group(1))


def _signed_in(hub, session: requests.Session) -> bool:
    return session.get(f"{hub.url}/hub/home", allow_redirects=False).status_code == 200


def _set_with_link(link: str, password: str, confirm: str | None = None) -> requests.Response:
    """Post the reset form of ``link`` (with the XSRF cookie of the login page: a used link has no form)."""
    session = requests.Session()
    session.get(link.split("/hub/")[0] + "/hub/login")
    return session.post(link.split("?")[0], data={
        "token": parse_qs(urlparse(link).query)["token"][0], "password": password,
        "password_confirm": password if confirm is None else confirm, "_xsrf": session.cookies.get("_xsrf")})


# --- self-service change ------------------------------------------------------------------------


def test_a_signed_in_user_changes_their_password_with_the_current_one(hub):
    old = hub.passwords["student2"]
    session, elsewhere = login(hub, "student2"), login(hub, "student2")
    home = session.get(f"{hub.url}/hub/home")
    assert 'id="nav-password" href="/hub/password"' in home.text
    assert 'id="nav-accounts"' not in home.text  # a student manages no accounts
    url = f"{hub.url}/hub/password"
    wrong = _post_form(session, url, current_password="not my password", password="a new password 1",
                       password_confirm="a new password 1")
    assert wrong.status_code == 403 and "The current password is wrong" in wrong.text
    differ = _post_form(session, url, current_password=old, password="a new password 1",
                        password_confirm="a new password 2")
    assert differ.status_code == 400 and "differ" in differ.text
    short = _post_form(session, url, current_password=old, password="short", password_confirm="short")
    assert short.status_code == 400 and "at least 10 characters" in short.text
    done = _post_form(session, url, current_password=old, password="a new password 1",
                      password_confirm="a new password 1")
    assert done.status_code == 200 and "Your password is changed" in done.text
    assert _signed_in(hub, session) and not _signed_in(hub, elsewhere)  # other sessions are signed out
    assert _login_answer(hub, "student2", old).status_code == 403
    assert _login_answer(hub, "student2", "a new password 1").status_code == 302
    # Not signed in: the page sends you to the login form; a form from elsewhere is refused.
    assert "/hub/login" in requests.get(url, allow_redirects=False).headers["Location"]
    forged = requests.post(url, data={"current_password": "a new password 1", "password": "a forged password",
                                      "password_confirm": "a forged password"}, cookies=session.cookies)
    assert forged.status_code == 403
    assert _login_answer(hub, "student2", "a new password 1").status_code == 302


# --- lockout and unlock -------------------------------------------------------------------------


def test_a_locked_name_is_told_until_when_and_an_unknown_name_gets_the_same_answers(hub):
    answers = {name: [_login_answer(hub, name, "a wrong password") for _ in range(MAX_FAILURES)]
               for name in ("other", "ghost")}
    for known, unknown in zip(answers["other"], answers["ghost"]):
        assert known.status_code == unknown.status_code == 403
        assert _login_error(known) == _login_error(unknown)
    assert [_login_error(a) for a in answers["other"][:-1]] == ["Invalid username or password"] * (MAX_FAILURES - 1)
    assert LOCKED.search(_login_error(answers["other"][-1]))
    # The right password is refused while locked, with the same words as for the unknown name.
    right = _login_answer(hub, "other", hub.passwords["other"])
    assert right.status_code == 403 and LOCKED.search(_login_error(right))
    assert _login_error(right) == _login_error(_login_answer(hub, "ghost", "whatever password"))

    # An admin sees both locked names and unlocks one on the accounts page.
    boss = login(hub, "boss")
    page = boss.get(f"{hub.url}/hub/accounts")
    assert page.status_code == 200 and 'id="nav-accounts"' in page.text
    locked_table = page.text[page.text.index('id="locked"'):]
    assert re.findall(r"<td>(other|ghost)</td>", locked_table) == ["ghost", "other"]
    unlocked = _post_form(boss, f"{hub.url}/hub/accounts", action="unlock", username="other")
    assert unlocked.status_code == 200 and "Unlocked other." in unlocked.text
    assert _login_answer(hub, "other", hub.passwords["other"]).status_code == 302
    # Instructors do not unlock; the command line does.
    instructor = login(hub, "instructor")
    refused = _post_form(instructor, f"{hub.url}/hub/accounts", action="unlock", username="ghost")
    assert refused.status_code == 403 and AccountStore(_db(hub)).locked()[0][0] == "ghost"


def test_the_command_line_lists_unlocks_and_makes_reset_links(hub, capsys):
    db = str(_db(hub))
    for _ in range(MAX_FAILURES):
        _login_answer(hub, "nobody-here", "a wrong password")
    assert main(["accounts", "--accounts-db", db, "locked"]) == 0
    assert re.search(r"^nobody-here\tuntil \d\d:\d\d UTC$", capsys.readouterr().out, re.MULTILINE)
    assert main(["accounts", "--accounts-db", db, "unlock", "nobody-here"]) == 0
    assert capsys.readouterr().out == "unlocked nobody-here\n"
    assert "nobody-here" not in [name for name, _ in AccountStore(_db(hub)).locked()]
    assert main(["accounts", "--accounts-db", db, "unlock", "nobody-here"]) == 0
    assert "was not locked" in capsys.readouterr().out

    assert main(["accounts", "--accounts-db", db, "reset", "other", "--hub-url", hub.url, "--hours", "1"]) == 0
    (link,) = re.findall(rf"{re.escape(hub.url)}/hub/password/reset\?token=\S+", capsys.readouterr().out)
    assert _set_with_link(link, "set from the shell").status_code == 200
    assert _login_answer(hub, "other", "set from the shell").status_code == 302
    assert main(["accounts", "--accounts-db", db, "reset", "no-such-user", "--hub-url", hub.url]) == 2
    assert "no account 'no-such-user'" in capsys.readouterr().err


# --- reset links ------------------------------------------------------------------------------


def test_an_instructor_makes_reset_links_for_their_own_students_only(hub):
    instructor = login(hub, "instructor")
    page = instructor.get(f"{hub.url}/hub/accounts")
    assert page.status_code == 200 and 'id="nav-accounts"' in page.text
    listed = re.findall(r"<td>([^<]+)</td>", page.text)
    assert listed == ["student", "student2", "student3"]  # not "ta": a grader of ai102
    assert "Locked names" not in page.text and 'id="reset-any"' not in page.text
    for name in ("other", "ta", "boss", "instructor", "teacher2", "no-such-user"):
        refused = _post_form(instructor, f"{hub.url}/hub/accounts", action="reset", username=name)
        assert refused.status_code == 403 and "You may not reset the password" in refused.text, name
    assert login(hub, "student").get(f"{hub.url}/hub/accounts").status_code == 403

    student_session = login(hub, "student")
    made = _post_form(instructor, f"{hub.url}/hub/accounts", action="reset", username="student")
    assert made.status_code == 200 and "valid 2 hours" in made.text
    link = _reset_link_from(made)
    assert link.startswith(f"{hub.url}/hub/password/reset?token=")
    opened = requests.get(link)
    assert opened.status_code == 200 and '<strong id="password-account">student</strong>' in opened.text
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    assert _set_with_link(link, "a reset password", "another one").status_code == 400
    done = _set_with_link(link, "a reset password")
    assert done.status_code == 200 and "Your password is set" in done.text
    assert not _signed_in(hub, student_session)  # every session of the account is signed out
    assert _login_answer(hub, "student", hub.passwords["student"]).status_code == 403
    assert _login_answer(hub, "student", "a reset password").status_code == 302
    used = requests.get(link)
    assert used.status_code == 400 and "already been used" in used.text
    assert "already been used" in _set_with_link(link, "yet another password").text

    # An admin may reset anyone; an expired link is refused with the reason.
    boss = login(hub, "boss")
    assert _post_form(boss, f"{hub.url}/hub/accounts", action="reset", username="teacher2").status_code == 200
    token = AccountStore(_db(hub)).create_reset("teacher2", valid_seconds=1, now=1000)
    expired = requests.get(f"{hub.url}/hub/password/reset", params={"token": token})
    assert expired.status_code == 400 and "expired" in expired.text


# --- sign-up in the default invitation mode ---------------------------------------------------


def test_invitation_mode_shows_only_what_is_true_and_usable(hub):
    login_page = requests.get(f"{hub.url}/hub/login").text
    assert 'id="signup-link"' not in login_page and "Open the invitation link" in login_page
    assert "Forgot your password? Ask your instructor or an admin for a reset link." in login_page

    page = requests.get(f"{hub.url}/hub/signup")
    assert page.status_code == 200 and "Sign-up on this hub is by invitation" in page.text
    for absent in ("approves", "Send request", 'name="password"', "login_error"):
        assert absent not in page.text, absent
    forged = requests.Session()
    forged.get(f"{hub.url}/hub/signup")
    refused = forged.post(f"{hub.url}/hub/signup", data={
        "username": "walk-in", "password": "a long password", "password_confirm": "a long password",
        "_xsrf": forged.cookies.get("_xsrf")})
    assert refused.status_code == 403 and "by invitation" in refused.text
    assert not AccountStore(_db(hub)).exists("walk-in")

    boss = login(hub, "boss")
    made = _post_form(boss, f"{hub.url}/hub/signup/admin", action="invite", note="for newbie")
    link = html.unescape(re.search(r'<pre id="invitation">([^<]+)</pre>', made.text).group(1))
    invited = requests.get(link)
    assert invited.status_code == 200 and "Create your account" in invited.text
    assert "approves" not in invited.text and 'value="Create account"' in invited.text


# --- the same in a browser --------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}")
def test_change_then_reset_by_link_in_a_browser(hub, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.driver

    def visible(css):
        return WebDriverWait(driver, PAGE, poll_frequency=0.25).until(
            ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def fill(values: dict[str, str], submit: str) -> None:
        for css, value in values.items():
            field = visible(css)
            field.clear()
            field.send_keys(value)
        visible(submit).click()

    def sign_in(name: str, password: str) -> None:
        driver.get(f"{hub.url}/hub/login?next=/hub/home")
        fill({"#username_input": name, "#password_input": password}, "#login_submit")
        WebDriverWait(driver, PAGE).until(ec.url_contains("/hub/home"))

    # The student changes their password from the nav bar's link.
    sign_in("student3", hub.passwords["student3"])
    visible("#nav-password").click()
    fill({"#current_password_input": hub.passwords["student3"], "#password_input": "changed in chromium",
          "#password_confirm_input": "changed in chromium"}, "#password_submit")
    assert "Your password is changed" in visible("#password-done").text
    browser.screenshot("password-changed")
    driver.get(f"{hub.url}/hub/logout")

    # They forget it; their instructor makes a reset link on the accounts page.
    sign_in("instructor", hub.passwords["instructor"])
    visible("#nav-accounts").click()
    row = visible("#students-ai101").find_element(By.XPATH, ".//tr[td[text()='student3']]")
    row.find_element(By.CSS_SELECTOR, "button[value=reset]").click()
    link = visible("#reset-link").text.strip()
    browser.screenshot("password-reset-link")
    driver.get(f"{hub.url}/hub/logout")

    # The student opens the link, sets a new password, and signs in with it.
    driver.delete_all_cookies()
    driver.get(link)
    assert visible("#password-account").text == "student3"
    fill({"#password_input": "reset in chromium", "#password_confirm_input": "reset in chromium"}, "#password_submit")
    assert "Your password is set" in visible("#password-done").text
    browser.screenshot("password-reset-done")
    sign_in("student3", "reset in chromium")
    assert "student3" in driver.find_element(By.ID, "login_widget").text
    # The link worked once.
    driver.get(link)
    assert "already been used" in visible("#password-error").text


# --- rate limits (last: they use up this address's budget) ----------------------------------


def test_sign_up_and_reset_requests_are_rate_limited_per_name_and_per_address(hub):
    def sign_up(name: str) -> requests.Response:
        session = requests.Session()
        session.get(f"{hub.url}/hub/login")  # the XSRF cookie
        return session.post(f"{hub.url}/hub/signup", data={
            "username": name, "password": "a long password", "password_confirm": "a long password",
            "invite": "made-up-invitation", "_xsrf": session.cookies.get("_xsrf")})

    # Per name: PER_NAME tries, then 429 whatever the form says.
    assert [sign_up("spammer").status_code for _ in range(PER_NAME + 1)] == [400] * PER_NAME + [429]
    limited = sign_up("spammer")
    assert re.search(r"Too many requests; try again after \d\d:\d\d UTC", limited.text)
    assert 0 < int(limited.headers["Retry-After"]) <= 600
    # Per address: fresh names from this address soon hit the address's limit too.
    statuses = [sign_up(f"fresh{i}").status_code for i in range(PER_ADDRESS + 1)]
    assert statuses[-1] == 429 and set(statuses) == {400, 429}

    # A reset link: PER_NAME posts for its account, then 429, and the password is not changed.
    token = AccountStore(_db(hub)).create_reset("teacher2", valid_seconds=600)
    link = f"{hub.url}/hub/password/reset?token={token}"
    tries = [_set_with_link(link, "a long password", "a different one").status_code for _ in range(PER_NAME)]
    assert tries == [400] * PER_NAME
    assert _set_with_link(link, "a long password").status_code == 429
    assert AccountStore(_db(hub)).reset_user(token) == "teacher2"  # still unused
    # Guessed tokens count against the address (which the tests before this one have used too).
    guesses = [requests.get(f"{hub.url}/hub/password/reset", params={"token": f"guess{i}"}).status_code
               for i in range(PER_ADDRESS + 1)]
    assert guesses[-1] == 429 and set(guesses) <= {400, 429}
