"""The seats service on a real hub: its REST API, who sees what, concurrency, CSV import, reports.

One hub per database backend (SQLite, and PostgreSQL where installed), seeded by
:mod:`tests.seatshub`: Acme (cohort admin cora) and Globex (cohort admin carl). Requests carry
hub API tokens made through the hub's own token API, or the service's login cookie for the forms.
"""

from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
import yaml

from tests.support.hubfixture import api_token, login, stop_hub
from tests.support.seats_backends import BACKENDS, fresh_postgres_database, postgres_server  # noqa: F401  (fixtures)
from tests.support.seatshub import ADMIN, ORG_A_ADMIN, ORG_B_ADMIN, service_api, start_seats_hub, today

pytestmark = [pytest.mark.slow, pytest.mark.hub]


@pytest.fixture(scope="module", params=BACKENDS)
def seats_hub(request, tmp_path_factory):
    db_url = "" if request.param == "sqlite" else fresh_postgres_database(request.getfixturevalue("postgres_server"))
    with pytest.MonkeyPatch.context() as patch:
        hub, seeded, url = start_seats_hub(tmp_path_factory, patch, db_url=db_url, sweep_every=3600)
    from grader.seats.db import close_seats_db, open_seats_db

    sessions = open_seats_db(url)
    tokens = {name: api_token(hub, login(hub, name), name) for name in (ADMIN, ORG_A_ADMIN, ORG_B_ADMIN, "ian", "lea")}
    yield hub, seeded, sessions, tokens
    stop_hub(hub)
    close_seats_db(sessions)


def _live_seats(sessions, cohort_id):
    from grader.seats import store

    with sessions() as session:
        return sorted(((s.username, s.email) for s in store.seats_of(session, cohort_id=cohort_id) if s.state != "revoked"),
                      key=lambda holder: (holder[0] or "", holder[1] or ""))


def _new_cohort(sessions, seeded, name, *, seat_limit, organisation="Acme"):
    from grader.seats import store

    with sessions() as session:
        return store.create_cohort(session, organisation_id=seeded.organisations[organisation], name=name,
                                   course_id="ai101", starts_on=today() - timedelta(days=1),
                                   ends_on=today() + timedelta(days=30), seat_limit=seat_limit, profiles=["cpu"]).id


# --- the document and who may call -----------------------------------------------------------


def test_the_openapi_document_is_served_and_lists_every_route(seats_hub):
    from grader.seats.api import api_routes

    hub, *_ = seats_hub
    response = requests.get(f"{hub.url}/services/seats/api/openapi.yaml")
    assert response.status_code == 200
    document = yaml.safe_load(response.text)
    assert document["openapi"].startswith("3.")
    documented = {re.sub(r"\{\w+\}", "ID", path) for path in document["paths"]}
    served = {re.sub(r"\(\\d\{1,12\}\)", "ID", route[0]).removeprefix("/services/seats/api").replace("(\\.csv)?", "")
              for route in api_routes("/services/seats/", None) if not route[0].endswith("openapi.yaml")}
    # Each route is documented (the .csv variants as their own paths).
    assert served <= documented, served - documented


@pytest.mark.parametrize("who", ["lea", "ian", None])
def test_learners_instructors_and_strangers_may_not_use_the_api(seats_hub, who):
    hub, _, _, tokens = seats_hub
    if who is None:
        response = requests.get(f"{hub.url}/services/seats/api/organisations", allow_redirects=False)
    else:
        response = service_api(hub, tokens[who], "GET", "/organisations", allow_redirects=False)
    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("application/json")


def test_each_cohort_admin_sees_only_their_organisation_and_a_hub_admin_sees_all(seats_hub):
    hub, _, _, tokens = seats_hub
    names = lambda who: [o["name"] for o in service_api(hub, tokens[who], "GET", "/organisations").json()]  # noqa: E731
    assert names(ORG_A_ADMIN) == ["Acme"]
    assert names(ORG_B_ADMIN) == ["Globex"]
    assert names(ADMIN) == ["Acme", "Globex"]


def _foreign_requests(seeded):
    org_b, cohort_b, seat_b = seeded.organisations["Globex"], seeded.cohorts["globex"], seeded.seats["bea"]
    return [
        ("GET", f"/organisations/{org_b}/cohorts", {}),
        ("GET", f"/organisations/{org_b}/invoice?month={today():%Y-%m}", {}),
        ("GET", f"/organisations/{org_b}/invoice.csv?month={today():%Y-%m}", {}),
        ("GET", f"/cohorts/{cohort_b}", {}),
        ("GET", f"/cohorts/{cohort_b}/seats", {}),
        ("GET", f"/cohorts/{cohort_b}/usage", {}),
        ("GET", f"/cohorts/{cohort_b}/usage.csv", {}),
        ("POST", f"/cohorts/{cohort_b}/seats", {"json": {"username": "intruder"}}),
        ("POST", f"/cohorts/{cohort_b}/seats/import", {"data": "username\nintruder2\n"}),
        ("POST", f"/seats/{seat_b}/revoke", {}),
    ]


def test_a_cohort_admin_can_neither_read_nor_change_another_organisation(seats_hub):
    hub, seeded, sessions, tokens = seats_hub
    before = _live_seats(sessions, seeded.cohorts["globex"])
    for method, path, kwargs in _foreign_requests(seeded):
        response = service_api(hub, tokens[ORG_A_ADMIN], method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
        assert "Globex" not in response.text and "bea" not in response.text
    assert _live_seats(sessions, seeded.cohorts["globex"]) == before
    # The same requests by Globex's own admin work (the revoke last: it changes the seat).
    for method, path, kwargs in _foreign_requests(seeded)[:7]:
        assert service_api(hub, tokens[ORG_B_ADMIN], method, path, **kwargs).status_code == 200, path


# --- assigning and revoking ------------------------------------------------------------------


def test_assign_by_user_name_and_by_email_then_revoke(seats_hub):
    hub, seeded, sessions, tokens = seats_hub
    cohort_id = _new_cohort(sessions, seeded, "api-assign", seat_limit=2)
    token = tokens[ORG_A_ADMIN]
    by_name = service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats", json={"username": "newbie"})
    assert by_name.status_code == 201 and by_name.json()["state"] == "active"
    by_email = service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats", json={"email": "Pat@Example.org"})
    assert by_email.status_code == 201
    assert (by_email.json()["state"], by_email.json()["email"], by_email.json()["username"]) == ("invited", "pat@example.org", None)
    cohort = service_api(hub, token, "GET", f"/cohorts/{cohort_id}").json()
    assert (cohort["seats_used"], cohort["seats_left"]) == (2, 0)

    full = service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats", json={"username": "late"})
    assert full.status_code == 409 and "no seats left" in full.json()["message"]
    twice = service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats", json={"username": "newbie"})
    assert twice.status_code in (400, 409) and "already has a seat" in twice.json()["message"]

    revoked = service_api(hub, token, "POST", f"/seats/{by_name.json()['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked" and revoked.json()["revoked_at"]
    again = service_api(hub, token, "POST", f"/seats/{by_name.json()['id']}/revoke")
    assert again.status_code == 400 and "already revoked" in again.json()["message"]
    assert service_api(hub, token, "GET", f"/cohorts/{cohort_id}").json()["seats_left"] == 1


@pytest.mark.parametrize("body, problem", [
    ({"username": "a", "email": "a@example.org"}, "exactly one"),
    ({}, "exactly one"),
    ({"email": "not-an-address"}, "is not an e-mail address"),
    ({"username": 7}, "must be strings"),
    ({"nickname": "x"}, "unknown field"),
])
def test_a_bad_assignment_is_refused_with_the_reason(seats_hub, body, problem):
    hub, seeded, _, tokens = seats_hub
    response = service_api(hub, tokens[ORG_A_ADMIN], "POST", f"/cohorts/{seeded.cohorts['gpu']}/seats", json=body)
    assert response.status_code == 400 and problem in response.json()["message"], response.text


def test_a_body_that_is_not_json_is_refused(seats_hub):
    hub, seeded, _, tokens = seats_hub
    response = service_api(hub, tokens[ORG_A_ADMIN], "POST", f"/cohorts/{seeded.cohorts['gpu']}/seats", data=b"\xff{")
    assert response.status_code == 400 and "not JSON" in response.json()["message"]


def test_seats_are_never_oversold_by_concurrent_requests(seats_hub):
    hub, seeded, sessions, tokens = seats_hub
    cohort_id = _new_cohort(sessions, seeded, "rush", seat_limit=3)
    token = tokens[ORG_A_ADMIN]

    def assign(index):
        return service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats", json={"username": f"rush{index}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(assign, range(12)))
    assert sorted(statuses) == [201] * 3 + [409] * 9, statuses
    assert len(_live_seats(sessions, cohort_id)) == 3


# --- CSV import --------------------------------------------------------------------------------


def test_a_csv_with_a_bad_row_assigns_nothing_and_names_the_line(seats_hub):
    hub, seeded, sessions, tokens = seats_hub
    cohort_id = _new_cohort(sessions, seeded, "csv-api", seat_limit=5)
    token = tokens[ORG_A_ADMIN]
    bad = "username,email\nana,\n,bo@example.org\ncid,not-an-address\n"
    response = service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats/import", data=bad.encode(),
                           headers={"Content-Type": "text/csv"})
    assert response.status_code == 400
    assert response.json()["errors"] == ["upload.csv:4: 'not-an-address' is not an e-mail address"]
    assert _live_seats(sessions, cohort_id) == []

    good = "username,email\nana,\n,bo@example.org\n"
    response = service_api(hub, token, "POST", f"/cohorts/{cohort_id}/seats/import", data=good.encode())
    assert response.status_code == 201 and response.json()["assigned"] == 2
    assert _live_seats(sessions, cohort_id) == [(None, "bo@example.org"), ("ana", None)]


def test_a_csv_that_is_not_utf8_is_refused(seats_hub):
    hub, seeded, _, tokens = seats_hub
    response = service_api(hub, tokens[ORG_A_ADMIN], "POST", f"/cohorts/{seeded.cohorts['gpu']}/seats/import",
                           data="username\nzoë\n".encode("latin-1"))
    assert response.status_code == 400 and "not UTF-8" in response.json()["message"]


# --- reports -------------------------------------------------------------------------------------


def test_the_usage_report_and_the_invoice_lines(seats_hub):
    from grader.seats import store

    hub, seeded, sessions, tokens = seats_hub
    with sessions() as session:
        # gil ran a GPU server for two hours this month.
        record = store.record_server_start(session, username="gil", profile="gpu", gpus=1,
                                           now=store.moment(None) - timedelta(hours=2))
        store.record_server_stop(session, username="gil")
    assert record.cohort_id == seeded.cohorts["gpu"]
    token = tokens[ORG_A_ADMIN]
    rows = service_api(hub, token, "GET", f"/cohorts/{seeded.cohorts['gpu']}/usage").json()
    [gil] = [row for row in rows if row["username"] == "gil"]
    assert gil["state"] == "active" and abs(gil["server_hours"] - 2) < 0.05 and abs(gil["gpu_hours"] - 2) < 0.05

    usage_csv = service_api(hub, token, "GET", f"/cohorts/{seeded.cohorts['gpu']}/usage.csv")
    assert usage_csv.headers["Content-Type"].startswith("text/csv")
    assert next(csv.reader(io.StringIO(usage_csv.text)))[:6] == [
        "username", "email", "state", "server_hours", "gpu_hours", "lessons_run"]

    month = f"{today():%Y-%m}"
    lines = service_api(hub, token, "GET", f"/organisations/{seeded.organisations['Acme']}/invoice?month={month}").json()
    by_cohort = {line["cohort"]: line for line in lines}
    assert by_cohort["gpu"]["gpu_hours"] >= 1.95 and by_cohort["gpu"]["seat_days"] >= 1
    assert "globex" not in by_cohort
    invoice_csv = service_api(hub, token, "GET", f"/organisations/{seeded.organisations['Acme']}/invoice.csv?month={month}")
    assert invoice_csv.status_code == 200 and "seat_days" in invoice_csv.text.splitlines()[0]
    bad_month = service_api(hub, token, "GET", f"/organisations/{seeded.organisations['Acme']}/invoice?month=2026-13")
    assert bad_month.status_code == 400 and "YYYY-MM" in bad_month.json()["message"]


# --- the pages' forms --------------------------------------------------------------------------


def _service_session(hub, username):
    """A browser-like session logged in to the hub and then, through the hub's OAuth, the service."""
    session = login(hub, username)
    page = session.get(f"{hub.url}/services/seats/")
    assert page.status_code == 200 and "/services/seats/" in page.url, (page.status_code, page.url)
    return session, page


def test_a_form_post_counts_the_login_cookie_only_with_the_xsrf_token(seats_hub):
    hub, seeded, sessions, _ = seats_hub
    cohort_id = _new_cohort(sessions, seeded, "forms", seat_limit=3)
    session, _ = _service_session(hub, ORG_A_ADMIN)
    page = session.get(f"{hub.url}/services/seats/cohorts/{cohort_id}")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)

    forged = session.post(f"{hub.url}/services/seats/cohorts/{cohort_id}/assign", data={"who": "mallory"},
                          allow_redirects=False)
    assert forged.status_code == 403 and _live_seats(sessions, cohort_id) == []
    sent = session.post(f"{hub.url}/services/seats/cohorts/{cohort_id}/assign", data={"who": "mo", "_xsrf": xsrf},
                        allow_redirects=False)
    assert sent.status_code == 303 and _live_seats(sessions, cohort_id) == [("mo", None)]


def test_pages_of_another_organisation_are_not_found(seats_hub):
    hub, seeded, _, _ = seats_hub
    session, index = _service_session(hub, ORG_A_ADMIN)
    assert "Acme" in index.text and "Globex" not in index.text
    for path in (f"cohorts/{seeded.cohorts['globex']}", f"cohorts/{seeded.cohorts['globex']}/report"):
        assert session.get(f"{hub.url}/services/seats/{path}").status_code == 404
    # A learner is not let into the service at all.
    learner = login(hub, "lea").get(f"{hub.url}/services/seats/")
    assert learner.status_code == 403


def test_a_learner_reports_a_lesson_run_for_themselves_only_and_the_report_counts_it(seats_hub):
    hub, seeded, _, tokens = seats_hub
    # As a learner's server does with its own token (grader.seats.lesson_reports).
    for _ in range(2):
        answer = service_api(hub, tokens["lea"], "POST", "/lesson-runs", json={"lesson": "01_intro/./02_numpy.ipynb"})
        assert answer.status_code == 200, answer.text
    assert (answer.json()["username"], answer.json()["lesson"]) == ("lea", "01_intro/02_numpy.ipynb")
    for body in [{"lesson": "../../etc/passwd.ipynb"}, {"lesson": "/home/lea/x.ipynb"}, {"lesson": "notes.txt"},
                 {"lesson": "a.ipynb", "username": "gil"}, {"lesson": 3}, {}]:
        refused = service_api(hub, tokens["lea"], "POST", "/lesson-runs", json=body)
        assert refused.status_code == 400 and refused.json()["message"], body
    # Nobody without a hub token reports anything.
    assert requests.post(f"{hub.url}/services/seats/api/lesson-runs", json={"lesson": "a.ipynb"},
                         allow_redirects=False).status_code == 403
    rows = service_api(hub, tokens[ORG_A_ADMIN], "GET", f"/cohorts/{seeded.cohorts['cpu']}/usage").json()
    assert {row["username"]: row["lessons_run"] for row in rows if row["username"] in ("lea", "rev")} == {
        "lea": 1, "rev": 0}


# --- progress (no hub: the gradebook as the hub leaves it, lessons as servers reported them) ------


def test_progress_reads_scores_from_the_gradebook_and_lessons_from_the_seats_database(tmp_path):
    from nbgrader.api import Gradebook

    from grader.grading.course_dir import Course, prepare_course_dir
    from grader.seats import store
    from grader.seats.db import close_seats_db, open_seats_db
    from grader.seats.learner_progress import learner_progress

    course = Course("ai101", tmp_path / "course", tmp_path / "exchange")
    prepare_course_dir(course)
    with Gradebook(course.gradebook_url, course_id="ai101") as gradebook:
        gradebook.add_assignment("a1")
        gradebook.add_notebook("nb", "a1")
        gradebook.add_grade_cell("q1", "nb", "a1", max_score=5, cell_type="code")
        gradebook.add_student("lea")
        gradebook.add_submission("a1", "lea")
        grade = gradebook.find_grade("q1", "nb", "a1", "lea")
        grade.auto_score = 4
        gradebook.db.commit()
    sessions = open_seats_db(f"sqlite:///{tmp_path / 'seats.sqlite'}")
    try:
        with sessions() as session:
            # Lea's server reported two lessons, one of them twice (each save after a run).
            for lesson in ["01_backprop/01_ran.ipynb", "01_backprop/02_ran.ipynb", "01_backprop/01_ran.ipynb"]:
                store.record_lesson_run(session, username="lea", lesson=lesson)
            store.record_lesson_run(session, username="max", lesson="01_backprop/01_ran.ipynb")
            progress = learner_progress(session, usernames=["lea", "nobody"], course_id="ai101",
                                        course_dir=course.course_dir)
            assert (progress["lea"].lessons_run, dict(progress["lea"].scores)) == (2, {"a1": 4.0})
            assert (progress["nobody"].lessons_run, dict(progress["nobody"].scores)) == (0, {})
            # No gradebook yet: no scores, and none is created in the instructor's course.
            other = Course("ml201", tmp_path / "other", tmp_path / "exchange")
            prepare_course_dir(other)
            assert learner_progress(session, usernames=["lea"], course_id="ml201",
                                    course_dir=other.course_dir)["lea"].scores == {}
    finally:
        close_seats_db(sessions)
    assert not other.gradebook_path.exists()
