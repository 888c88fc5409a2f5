"""LTI 1.3 Advantage end to end: a real platform (lti1p3platform, tests/support/lti_platform.py) as
the LMS, with two registrations (two issuers), launching into a real hub on loopback.

Launch (OIDC login initiation, signed id_token, roles -> course groups, landing with the server
started), refusals (signature, expiry, audience, replay, unknown issuer), deep linking (the
platform accepts the signed answer and makes the line item), the roster sync (NRPS) into the hub
groups and the gradebook with removals, and scores (AGS) read back from the platform's gradebook:
retried, idempotent, a student without an LTI identity reported.
"""

from __future__ import annotations

import contextlib
import html
import io
import os
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import yaml

from grader.cli import main as grader_main
from grader.cli.lti_commands import push_after_grading
from grader.lti.content import source_points
from grader.lti.registrations import roster_token
from grader.lti.roster import NbgraderGradebook
from grader.lti.store import LtiStore
from grader.resources import REPO_ROOT
from tests.support import hubfixture
from tests.support.hubfixture import free_port, stop_hub
from tests.support.lti_platform import Course, Person, form_fields, start_platform, stop_platform

COURSE = "ai101"
LESSON = "01_backprop/01_forward_pass.ipynb"
ASSIGNMENT = "a1_backprop"


def people() -> dict[str, Person]:
    return {p.user_id: p for p in [
        Person("u-ann", "ann@example.org", "Ann Teacher", "Instructor"),
        Person("u-tom", "tom@example.org", "Tom Assistant", "TeachingAssistant"),
        Person("u-lea", "lea@example.org", "Lea Learner", "Learner"),
        Person("u-rik", "rik@example.org", "Rik Leaving", "Learner"),
        Person("u-neo", "neo@example.org", "Neo Rostered", "Learner"),  # in the roster, never launches
        Person("u-eve", "eve@example.org", "Eve Tampered", "Learner"),  # only ever sends refused launches
    ]}


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """The platform and the hub, each knowing the other's URLs, as after an admin's set-up."""
    work = tmp_path_factory.mktemp("lti-hub")
    hub_port = free_port()
    platform = start_platform(f"http://127.0.0.1:{hub_port}")
    try:
        moodle = platform.lms.add_registration("moodle", "moodle-client-1")
        canvas = platform.lms.add_registration("canvas", "10000000000042")
        moodle.courses["c1"] = Course("c1", "Intro to AI (Moodle)", people=people())
        canvas.courses["k9"] = Course("k9", "AI 101 (Canvas)", people=people())
        canvas.courses["z1"] = Course("z1", "Another Canvas course", people=people())
        config = {
            "idle_culler": {"enabled": False}, "profiles": {},
            "courses": {COURSE: {"formgrader_port": 9010, "instructors": [], "students": []}},
            "auth": {"type": "lti13", "lti13": {"registrations": {
                "moodle": moodle.yaml_entry(course=COURSE),
                "canvas": canvas.yaml_entry(contexts={"k9": COURSE}),
            }}},
        }
        config_file = work / "platform.yaml"
        config_file.write_text(yaml.safe_dump(config))
        data_dir = work / "data"
        ports = iter([hub_port])
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AICOURSE_CONFIG", str(config_file))
            patch.setattr(hubfixture, "free_port", lambda: next(ports, None) or free_port())
            hub = hubfixture.start_hub(data_dir)
        try:
            assert hub.url == f"http://127.0.0.1:{hub_port}"
            yield Env(hub, platform, config_file)
        finally:
            stop_hub(hub)
    finally:
        stop_platform(platform)


class Env:
    def __init__(self, hub, platform, config_file: Path):
        self.hub, self.platform, self.lms, self.config_file = hub, platform, platform.lms, config_file
        self.api = {"Authorization": f"token {roster_token(hub.data_dir)}"}

    def user(self, name: str) -> dict | None:
        response = requests.get(f"{self.hub.url}/hub/api/users/{name}", headers=self.api, timeout=10)
        return None if response.status_code == 404 else response.json()

    def groups(self, name: str) -> set[str]:
        return set(self.user(name)["groups"])

    def members(self, group: str) -> set[str]:
        return set(requests.get(f"{self.hub.url}/hub/api/groups/{group}", headers=self.api, timeout=10).json()["users"])

    def environ(self) -> dict[str, str]:
        return {"AICOURSE_CONFIG": str(self.config_file), "AICOURSE_DATA_DIR": str(self.hub.data_dir)}


@contextlib.contextmanager
def environ(values: dict[str, str]):
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def grader(env: Env, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with environ(env.environ()), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = grader_main(list(argv))
    return code, out.getvalue()


class Click:
    """A person's click in the LMS, run as their browser: initiation, the platform's form, the callback."""

    def __init__(self, env: Env, reg: str, context: str, user_id: str, **kwargs):
        self.session = requests.Session()
        page = self.session.get(env.lms.click_url(reg, context, user_id, **kwargs), timeout=30)
        assert page.status_code == 200 and "/authorize" in page.url, (page.status_code, page.url, page.text[:500])
        self.cookies = self.session.cookies.copy()  # as they were when the form was posted
        self.action, self.fields = form_fields(page.text)
        self.answer = self.session.post(self.action, data=self.fields, allow_redirects=False, timeout=60)

    def replay(self) -> requests.Response:
        """The same form post again, with the same cookies (someone who captured the exchange)."""
        return requests.post(self.action, data=self.fields, cookies=self.cookies, allow_redirects=False, timeout=60)

    @property
    def next_url(self) -> str:
        location = self.answer.headers["Location"]
        return parse_qs(urlparse(location).query)["next"][0]


def formgrader(env: Env, session: requests.Session) -> int:
    return session.get(f"{env.hub.url}/services/{COURSE}/formgrader", timeout=60).status_code


@pytest.mark.slow
@pytest.mark.hub
def test_roles_map_to_the_course_instructor_formgrader_and_learner_not(lms):
    ann = Click(lms, "moodle", "c1", "u-ann")
    assert ann.answer.status_code == 302, ann.answer.text
    assert lms.groups("ann@example.org") == {"formgrade-ai101", "lti-instructors-ai101"}
    assert formgrader(lms, ann.session) == 200
    tom = Click(lms, "moodle", "c1", "u-tom")
    assert tom.answer.status_code == 302
    assert lms.groups("tom@example.org") == {"formgrade-ai101"}
    assert formgrader(lms, tom.session) == 200
    lea = Click(lms, "moodle", "c1", "u-lea")
    assert lea.answer.status_code == 302
    assert lms.groups("lea@example.org") == {"nbgrader-ai101"}
    assert formgrader(lms, lea.session) == 403
    # A role changed in the LMS changes here at the next launch, the old course group gone.
    lms.lms.registrations["moodle"].courses["c1"].people["u-tom"].role = "Learner"
    try:
        assert Click(lms, "moodle", "c1", "u-tom").answer.status_code == 302
        assert lms.groups("tom@example.org") == {"nbgrader-ai101"}
    finally:
        lms.lms.registrations["moodle"].courses["c1"].people["u-tom"].role = "TeachingAssistant"
    assert Click(lms, "moodle", "c1", "u-tom").answer.status_code == 302
    assert lms.groups("tom@example.org") == {"formgrade-ai101"}


@pytest.mark.slow
@pytest.mark.hub
def test_a_second_lms_launches_side_by_side_and_its_identities_are_its_own(lms):
    click = Click(lms, "canvas", "k9", "u-lea")
    assert click.answer.status_code == 302, click.answer.text
    store = LtiStore.of(lms.hub.data_dir)
    assert store.lti_user_ids("canvas")["lea@example.org"] == "u-lea"
    assert {(c.registration, c.context_id) for c in store.contexts(COURSE)} >= {("moodle", "c1"), ("canvas", "k9")}
    assert lms.groups("lea@example.org") == {"nbgrader-ai101"}
    # Canvas's registration maps its LMS courses one by one: another Canvas course opens nothing.
    refused = Click(lms, "canvas", "z1", "u-lea")
    assert refused.answer.status_code == 403 and "not linked to a course on the hub" in html.unescape(refused.answer.text)
    assert all(c.context_id != "z1" for c in store.contexts(COURSE))


@pytest.mark.slow
@pytest.mark.hub
def test_a_launch_lands_on_its_lesson_with_the_server_started(lms):
    click = Click(lms, "moodle", "c1", "u-lea", custom={"lesson": LESSON})
    assert click.answer.status_code == 302
    assert click.answer.headers["Location"].startswith("/hub/spawn/")
    assert click.next_url.endswith(f"/lab/tree/courses/{LESSON}")
    click.session.get(f"{lms.hub.url}{click.answer.headers['Location']}", timeout=120)  # the spawn starts
    landing = f"{lms.hub.url}{click.next_url}"
    deadline, response = time.monotonic() + 180, None
    while time.monotonic() < deadline:
        response = click.session.get(landing, timeout=30)
        if response.status_code == 200 and urlparse(response.url).path == click.next_url:
            break
        time.sleep(2)
    # The person's own server answers at the lesson's page, and the lesson is in their home.
    assert response.status_code == 200 and urlparse(response.url).path == click.next_url, response.url
    assert (lms.hub.data_dir / "homes" / "lea@example.org" / "courses" / LESSON).is_file()


@pytest.mark.slow
@pytest.mark.hub
@pytest.mark.parametrize(("tamper", "status", "message"), [
    ("signature", 400, "Signature verification failed"),
    ("expired", 400, "expired"),
    ("audience", 401, "Audience doesn't match"),
])
def test_tampered_launches_are_refused_and_change_nothing(lms, tamper, status, message):
    click = Click(lms, "moodle", "c1", "u-eve", tamper=tamper)
    assert click.answer.status_code == status, click.answer.text[:500]
    page = html.unescape(click.answer.text)  # the hub's error page
    assert message in page and "LTI launch refused" in page
    assert lms.user("eve@example.org") is None
    assert not any(name.startswith("jupyterhub-session") for name in click.answer.cookies.keys())


@pytest.mark.slow
@pytest.mark.hub
def test_a_replayed_launch_is_refused(lms):
    click = Click(lms, "moodle", "c1", "u-rik")
    assert click.answer.status_code == 302
    groups = lms.groups("rik@example.org")
    replay = click.replay()
    assert replay.status_code == 400 and "replayed nonce" in replay.text
    assert "jupyterhub-session-id" not in replay.cookies
    assert lms.groups("rik@example.org") == groups


@pytest.mark.slow
@pytest.mark.hub
def test_an_unknown_issuer_is_refused_at_the_login_initiation(lms):
    response = requests.get(f"{lms.hub.url}/hub/lti13/oauth_login", params={
        "iss": "https://lms.elsewhere.example", "login_hint": "x", "target_link_uri": lms.hub.url}, allow_redirects=False)
    assert response.status_code == 400 and "no LTI registration on this hub" in response.text


@pytest.mark.slow
@pytest.mark.hub
def test_deep_linking_then_roster_sync_then_scores_back_to_the_lms(lms):
    moodle = lms.lms.registrations["moodle"].courses["c1"]
    # A learner may not add content.
    assert Click(lms, "moodle", "c1", "u-lea", kind="deep_link").answer.status_code == 403
    # --- deep linking: the instructor picks an assignment and a lesson from the hub's list.
    ann = Click(lms, "moodle", "c1", "u-ann", kind="deep_link")
    assert ann.answer.status_code == 302 and "/hub/lti13/deep-link/" in ann.answer.headers["Location"]
    picker = ann.session.get(f"{lms.hub.url}{ann.answer.headers['Location']}", timeout=30)
    assert picker.status_code == 200 and f'value="assignment:{ASSIGNMENT}"' in picker.text
    assert f'value="lesson:{LESSON}"' in picker.text
    answer = ann.session.post(picker.url, data={"item": [f"assignment:{ASSIGNMENT}", f"lesson:{LESSON}"],
                                                "_xsrf": ann.session.cookies.get("_xsrf", path="/hub/")}, timeout=30)
    assert answer.status_code == 200, answer.text[:500]
    action, fields = form_fields(answer.text)
    accepted = requests.post(action, data=fields, timeout=30)  # the browser returns the JWT to the LMS
    assert accepted.status_code == 200, accepted.text
    links = accepted.json()["links"]
    items = lms.lms.deep_link_responses[-1]["items"]
    by_title = {item["custom"].get("assignment") or item["custom"]["lesson"]: item for item in items}
    assert {key: item["custom"] for key, item in by_title.items()} == {
        ASSIGNMENT: {"assignment": ASSIGNMENT, "course": COURSE}, LESSON: {"lesson": LESSON, "course": COURSE}}
    assert "lineItem" not in by_title[LESSON]
    max_score = source_points(REPO_ROOT / "assignments" / "source" / ASSIGNMENT)
    (lineitem_url, lineitem), = moodle.lineitems.items()
    assert lineitem["scoreMaximum"] == max_score and lineitem["resourceId"] == ASSIGNMENT
    # A launch of the new link lands on the assignment.
    assignment_link = links[items.index(by_title[ASSIGNMENT])]
    lea = Click(lms, "moodle", "c1", "u-lea", link=assignment_link)
    assert lea.answer.status_code == 302 and lea.next_url.endswith(f"/lab/tree/{COURSE}/{ASSIGNMENT}")

    # --- roster (NRPS): neo (never launched) joins; rik leaves the LMS course and goes.
    gradebook = NbgraderGradebook(lms.hub.data_dir / "courses" / COURSE)
    code, out = grader(lms, "lti", "sync-roster", COURSE, "--hub-api", f"{lms.hub.url}/hub/api")
    assert code == 0, out
    assert {"lea@example.org", "rik@example.org", "neo@example.org"} <= lms.members("nbgrader-ai101")
    assert lms.members("lti-instructors-ai101") == {"ann@example.org"}
    assert {"lea@example.org", "neo@example.org", "rik@example.org"} <= gradebook.students()
    moodle.people["u-rik"].status = "Deleted"
    del lms.lms.registrations["canvas"].courses["k9"].people["u-rik"]
    code, out = grader(lms, "lti", "sync-roster", COURSE, "--hub-api", f"{lms.hub.url}/hub/api")
    assert code == 0, out
    assert "rik@example.org" not in lms.members("nbgrader-ai101") and "rik@example.org" not in gradebook.students()
    assert "neo@example.org" in lms.members("nbgrader-ai101")
    code, out = grader(lms, "lti", "sync-roster", COURSE, "--hub-api", f"{lms.hub.url}/hub/api")
    assert code == 0 and "nothing to change" in out, out

    # --- scores (AGS): from the gradebook, as autograde leaves them.
    set_scores(gradebook, max_score, {"lea@example.org": 70, "neo@example.org": 55, "ghost@example.org": 30})
    moodle.fail_next_score_posts = 2  # the LMS answers 503 twice: retried
    code, out = grader(lms, "lti", "push", ASSIGNMENT)
    assert code == 0, out
    assert "no LTI identity" in out and "moodle: ghost@example.org" in out
    got = {user: score["scoreGiven"] for user, score in moodle.scores[lineitem_url].items()}
    assert got == {"u-lea": 70, "u-neo": 55}
    assert all(score["scoreMaximum"] == max_score for score in moodle.scores[lineitem_url].values())
    sent = [row for row in LtiStore.of(lms.hub.data_dir).sent_scores(ASSIGNMENT) if row.registration == "moodle"]
    assert sorted((row.username, row.score_given, row.status) for row in sent) == [
        ("lea@example.org", 70, 200), ("neo@example.org", 55, 200)]
    assert max(row.attempts for row in sent) == 3
    # Canvas made no line item by deep linking: the tool made one (AGS lineitem scope), out of the gradebook's max.
    canvas = lms.lms.registrations["canvas"].courses["k9"]
    (canvas_item_url, canvas_item), = canvas.lineitems.items()
    assert canvas_item["resourceId"] == ASSIGNMENT and canvas_item["scoreMaximum"] == max_score
    assert {user: score["scoreGiven"] for user, score in canvas.scores[canvas_item_url].items()} == {
        "u-lea": 70, "u-neo": 55}
    # Again: nothing sent, nothing changed in the LMS.
    posts = list(moodle.score_posts)
    code, out = grader(lms, "lti", "push", ASSIGNMENT)
    assert code == 0 and "unchanged, not sent again (4)" in out and "sent (" not in out, out
    assert moodle.score_posts == posts
    # A manual grade changes one score: only that one is sent.
    set_scores(gradebook, max_score, {"neo@example.org": 60})
    code, out = grader(lms, "lti", "push", ASSIGNMENT)
    assert code == 0 and moodle.score_posts[len(posts):] == [(lineitem_url, "u-neo", 60)], out
    assert "sent (2): canvas: neo@example.org, moodle: neo@example.org" in out
    code, out = grader(lms, "lti", "sent", ASSIGNMENT)
    assert code == 0 and out.count("neo@example.org\t") == 4  # twice per LMS: 55, then 60

    # --- with auth.lti13.push_after_grading, grading ends with the push (here: feedback released
    # for a grade changed by hand, as after manual grading); off, it does not.
    set_scores(gradebook, max_score, {"lea@example.org": 72})
    course_dir = lms.hub.data_dir / "courses" / COURSE
    with environ(lms.environ()):
        push_after_grading(course_dir, ASSIGNMENT)  # the module's settings: off
    assert moodle.scores[lineitem_url]["u-lea"]["scoreGiven"] == 70
    config = yaml.safe_load(lms.config_file.read_text())
    config["auth"]["lti13"]["push_after_grading"] = True
    pushing = lms.config_file.with_name("platform-push.yaml")
    pushing.write_text(yaml.safe_dump(config))
    out = io.StringIO()
    with environ({**lms.environ(), "AICOURSE_CONFIG": str(pushing)}), contextlib.redirect_stdout(out):
        push_after_grading(course_dir, ASSIGNMENT)
        push_after_grading(lms.hub.data_dir / "elsewhere", ASSIGNMENT)  # not a course of the hub: nothing
    assert moodle.scores[lineitem_url]["u-lea"]["scoreGiven"] == 72
    assert out.getvalue().count("LMS: a1_backprop: sent (2): canvas: lea@example.org, moodle: lea@example.org") == 1, out.getvalue()

    # --- a plain activity (Moodle's "External tool" with the custom parameter assignment=a2_lora)
    # has its own grade column, given in the launch: scores go there, rescaled to its maximum.
    moodle.links["activity-7"] = {"title": "A2", "custom": {"assignment": "a2_lora"}}
    own_column = lms.lms.registrations["moodle"].url(f"contexts/c1/lineitems/{len(moodle.lineitems) + 1}")
    moodle.lineitems[own_column] = {"id": own_column, "label": "A2 (Moodle)", "scoreMaximum": 100,
                                    "resourceLinkId": "activity-7"}
    assert Click(lms, "moodle", "c1", "u-lea", link="activity-7").answer.status_code == 302
    set_scores(gradebook, 50, {"lea@example.org": 40}, assignment="a2_lora")
    columns = len(moodle.lineitems)
    code, out = grader(lms, "lti", "push", "a2_lora")
    assert code == 0, out
    assert len(moodle.lineitems) == columns
    assert {user: (s["scoreGiven"], s["scoreMaximum"]) for user, s in moodle.scores[own_column].items()} == {
        "u-lea": (80, 100)}


def set_scores(gradebook: NbgraderGradebook, max_score: float, scores: dict[str, float],
               assignment: str = ASSIGNMENT) -> None:
    """Write graded submissions into the course's nbgrader gradebook, as autograde and manual grading do."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(gradebook.db_url, course_id=gradebook.course_id) as book:
        book.update_or_create_assignment(assignment)
        try:
            book.find_notebook(assignment, assignment)
        except MissingEntry:
            book.add_notebook(assignment, assignment)
            book.add_grade_cell("q1", assignment, assignment, max_score=max_score, cell_type="code")
        for student, score in scores.items():
            book.update_or_create_student(student)
            try:
                book.find_submission(assignment, student)
            except MissingEntry:
                book.add_submission(assignment, student)
            grade = book.find_grade("q1", assignment, assignment, student)
            grade.auto_score = score
            book.db.commit()
