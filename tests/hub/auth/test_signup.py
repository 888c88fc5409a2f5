"""Sign-up for local accounts: the plain functions and CLI, then the pages on a real hub."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import yaml

from grader.cli import main
from grader.hub.auth.accounts import PENDING, AccountStore
from grader.hub.auth.local import PlatformAuthenticator
from grader.hub.auth.signup import (
    SignupAdminHandler,
    approve_signup,
    check_new_account,
    create_invitation,
    pending_signups,
    reject_signup,
    signup_handlers,
)
from tests.support.hubfixture import login, start_hub, stop_hub


def test_the_form_rules_name_the_problem():
    assert check_new_account(username="ann", password="long enough pw", confirm="long enough pw") == ""
    assert "user name" in check_new_account(username="Ann Smith", password="long enough pw", confirm="long enough pw")
    assert "differ" in check_new_account(username="ann", password="long enough pw", confirm="long enough pX")
    assert "at least 10" in check_new_account(username="ann", password="short", confirm="short")


def test_approval_and_invitation_functions(tmp_path):
    db = tmp_path / "accounts.sqlite"
    store = AccountStore(db)
    store.create("ann", "long enough pw", status=PENDING)
    store.create("bob", "long enough pw", status=PENDING)
    assert pending_signups(accounts_db=db) == ["ann", "bob"]
    approve_signup(accounts_db=db, username="ann")
    reject_signup(accounts_db=db, username="bob")
    assert pending_signups(accounts_db=db) == [] and store.check_login("ann", "long enough pw").ok
    link = create_invitation(accounts_db=db, hub_url="https://hub.example.org/", hours=1)
    assert link.startswith("https://hub.example.org/hub/signup?invite=")
    token = parse_qs(urlparse(link).query)["invite"][0]
    store.redeem_invitation(token, "cy", "long enough pw")
    assert store.check_login("cy", "long enough pw").ok


def test_the_cli_approves_and_invites(tmp_path, capsys):
    db = tmp_path / "accounts.sqlite"
    AccountStore(db).create("ann", "long enough pw", status=PENDING)
    assert main(["accounts", "--accounts-db", str(db), "pending"]) == 0
    assert capsys.readouterr().out.split() == ["ann"]
    assert main(["accounts", "--accounts-db", str(db), "approve", "ann"]) == 0
    assert main(["accounts", "--accounts-db", str(db), "approve", "ann"]) == 2
    assert "no pending sign-up 'ann'" in capsys.readouterr().err
    assert main(["accounts", "--accounts-db", str(db), "invite", "--hours", "2", "--hub-url", "http://h:1"]) == 0
    (link,) = re.findall(r"http://h:1/hub/signup\?invite=\S+", capsys.readouterr().out)
    assert AccountStore(db).invitation_is_open(parse_qs(urlparse(link).query)["invite"][0]) == ""


def test_the_cli_makes_reset_links_and_unlocks(tmp_path, capsys):
    db = tmp_path / "accounts.sqlite"
    store = AccountStore(db, max_failed_logins=2)
    store.create("ann", "long enough pw")
    for _ in range(2):
        store.check_login("ann", "a wrong password")
    assert main(["accounts", "--accounts-db", str(db), "locked"]) == 0
    assert capsys.readouterr().out.startswith("ann\tuntil ")
    assert main(["accounts", "--accounts-db", str(db), "reset", "ann", "--hours", "2", "--hub-url", "http://h:1"]) == 0
    out = capsys.readouterr().out
    assert "valid 2 hours" in out
    (link,) = re.findall(r"http://h:1/hub/password/reset\?token=\S+", out)
    assert AccountStore(db).redeem_reset(parse_qs(urlparse(link).query)["token"][0], "a new password!") == "ann"
    assert AccountStore(db).check_login("ann", "a new password!").ok  # the reset cleared the lock
    for _ in range(2):
        store.check_login("ann", "a wrong password")
    assert main(["accounts", "--accounts-db", str(db), "unlock", "ann"]) == 0
    assert capsys.readouterr().out == "unlocked ann\n" and AccountStore(db).check_login("ann", "a new password!").ok
    assert main(["accounts", "--accounts-db", str(db), "locked"]) == 0
    assert capsys.readouterr().out == "no name is locked\n"
    assert main(["accounts", "--accounts-db", str(db), "reset", "bob", "--hub-url", "http://h:1"]) == 2
    assert "no account 'bob'" in capsys.readouterr().err


def test_with_signup_off_only_the_admin_page_is_routed(tmp_path):
    authenticator = PlatformAuthenticator(accounts_db=str(tmp_path / "a.sqlite"), signup_mode="off")
    assert [route[1] for route in signup_handlers(authenticator)] == [SignupAdminHandler]
    routes = {route[0] for route in authenticator.get_handlers(None)}
    assert "/signup/admin" in routes and "/signup" not in routes
    on = PlatformAuthenticator(accounts_db=str(tmp_path / "b.sqlite"), signup_mode="approval")
    assert {route[0] for route in on.get_handlers(None)} >= {"/login", "/signup", "/signup/admin", "/password",
                                                              "/password/reset", "/accounts"}
    assert {"/password", "/password/reset", "/accounts"} <= routes  # with sign-up off too


# --- the pages, on a real hub -------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    work = tmp_path_factory.mktemp("signup-hub")
    config = work / "platform.yaml"
    config.write_text(yaml.safe_dump({
        "accounts": {"signup": "approval", "invitation_hours": 1},
        "admins": ["boss"], "idle_culler": {"enabled": False}, "profiles": {},
        "courses": {"ai101": {"formgrader_port": 9010, "instructors": ["instructor"], "students": ["student"]}},
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config))
        running = start_hub(work / "data")
    yield running
    stop_hub(running)


def _form_xsrf(page: requests.Response) -> str:
    return re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)


def _sign_up(hub, username: str, password: str, *, invite: str = "", confirm: str | None = None) -> requests.Response:
    session = requests.Session()
    page = session.get(f"{hub.url}/hub/signup", params={"invite": invite} if invite else {})
    assert page.status_code == 200, page.text[-1500:]
    return session.post(f"{hub.url}/hub/signup", data={
        "username": username, "password": password, "password_confirm": password if confirm is None else confirm,
        "invite": invite, "_xsrf": _form_xsrf(page)})


def _try_login(hub, username: str, password: str) -> requests.Response:
    session = requests.Session()
    session.get(f"{hub.url}/hub/login")
    return session.post(f"{hub.url}/hub/login", allow_redirects=False, data={
        "username": username, "password": password, "_xsrf": session.cookies.get("_xsrf")})


def _admin_post(hub, session: requests.Session, **data) -> requests.Response:
    page = session.get(f"{hub.url}/hub/signup/admin")
    return session.post(f"{hub.url}/hub/signup/admin", data={**data, "_xsrf": _form_xsrf(page)})


@pytest.mark.slow
@pytest.mark.hub
def test_a_request_waits_for_an_admin_and_says_so(hub):
    login_page = requests.get(f"{hub.url}/hub/login").text
    assert 'href="/hub/signup"' in login_page and "Forgot your password?" in login_page
    assert "Open the invitation link" not in login_page
    # Approval mode: the request form, and that an admin approves it; nothing about needing a link.
    form = requests.get(f"{hub.url}/hub/signup")
    assert form.status_code == 200 and "Ask for an account" in form.text and 'value="Send request"' in form.text
    assert "An admin approves each request" in form.text and "needs an invitation" not in form.text
    assert "signup-error" not in form.text and "signup-info" not in form.text
    answer = _sign_up(hub, "newbie", "a long password")
    assert answer.status_code == 200 and "You can sign in once an admin has approved it" in answer.text
    refused = _try_login(hub, "newbie", "a long password")
    assert refused.status_code == 403 and "awaiting approval by an admin" in refused.text
    # With a wrong password nothing is revealed about the account.
    wrong = _try_login(hub, "newbie", "not the password")
    assert wrong.status_code == 403 and "awaiting" not in wrong.text

    student = login(hub, "student")
    assert student.get(f"{hub.url}/hub/signup/admin").status_code == 403
    boss = login(hub, "boss")
    listing = boss.get(f"{hub.url}/hub/signup/admin")
    assert listing.status_code == 200 and ">newbie<" in listing.text
    approved = _admin_post(hub, boss, action="approve", username="newbie")
    assert approved.status_code == 200 and "Approved newbie" in approved.text
    assert _try_login(hub, "newbie", "a long password").status_code == 302


@pytest.mark.slow
@pytest.mark.hub
def test_an_invitation_link_makes_an_account_without_approval_once(hub):
    boss = login(hub, "boss")
    page = _admin_post(hub, boss, action="invite", note="for guest")
    link = re.search(r'<pre id="invitation">([^<]+)</pre>', page.text).group(1).replace("&amp;", "&")
    invite = parse_qs(urlparse(link).query)["invite"][0]
    assert link.startswith(f"{hub.url}/hub/signup?invite=")
    created = _sign_up(hub, "guest", "a long password", invite=invite)
    assert created.status_code == 200 and "Your account is ready" in created.text
    assert _try_login(hub, "guest", "a long password").status_code == 302
    used = requests.get(f"{hub.url}/hub/signup", params={"invite": invite})
    assert used.status_code == 400 and "already been used" in used.text


@pytest.mark.slow
@pytest.mark.hub
def test_bad_sign_ups_are_refused_with_the_reason(hub):
    assert "differ" in _sign_up(hub, "someone", "a long password", confirm="another long one").text
    short = _sign_up(hub, "someone", "short")
    assert short.status_code == 400 and "at least 10 characters" in short.text
    taken = _sign_up(hub, "student", "a long password")
    assert taken.status_code == 400 and "This user name is taken" in taken.text
    assert requests.get(f"{hub.url}/hub/signup", params={"invite": "made-up"}).status_code == 400
    # A form posted from elsewhere (no XSRF token) is refused before anything is created.
    forged = requests.post(f"{hub.url}/hub/signup", data={"username": "forged", "password": "a long password",
                                                          "password_confirm": "a long password"})
    accounts = AccountStore(hub.data_dir / "accounts.sqlite")
    assert forged.status_code == 403 and not accounts.exists("forged")
    assert not accounts.exists("someone")
