"""The formgrader's Similarity column (issue #22): `grader similarity` on planted submissions, then
the course's formgrader service in a real hub, in headless Chromium: Manage Submissions has a
Similarity column naming each copy's pair, flagged, linking to the pair in the HTML page.

The first tests read the service's JSON from results written by hand: the corner cases (no run
yet, the page elsewhere, an earlier term's student, nbgrader's script not the one expected)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader.grading.similarity.documents import Document
from grader.grading.similarity.output import _anchor, results_path
from grader.hub.services.formgrader_similarity import (
    NBGRADER_HOOKS,
    SIMILARITY_JS,
    patched_manage_submissions_js,
    similarity_column,
)
from tests.support.browser import missing
from tests.support.hubfixture import api_token, login, start_hub, stop_hub

COURSE = "ai101"
A1 = "a1_backprop"
REPORT_URL = "/services/ai101/aicourse/similarity/a1_backprop.html"


def _results(course_dir: Path, *, html: Path | None = None) -> Path:
    """Results as grader.grading.similarity.output writes them: alice and carol a flagged pair, bob
    alone, dave mostly the solution and close to an earlier term's student, erin unreadable."""
    def who(student, corpus=None):
        return {"student_id": student, "corpus": corpus}

    path = results_path(course_dir, A1)
    path.parent.mkdir(parents=True, exist_ok=True)
    html = html or path.with_suffix(".html")
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text("<!DOCTYPE html><h2 id=\"pair-alice--carol\">alice and carol</h2>")
    student = {"answer_tokens": 300, "solution_share": 0.0, "unreadable": []}
    path.write_text(json.dumps({
        "assignment_id": A1, "generated": "2026-12-07T01:00:00+00:00", "threshold": 0.5, "k": 12,
        "explanation": "A signal for a person, not a verdict.", "html": str(html),
        "pairs": [{"a": who("alice"), "b": who("carol"), "score": 0.98, "flagged": True},
                  {"a": who("dave"), "b": who("zoe", "/srv/ml-2025"), "score": 0.71, "flagged": True},
                  {"a": who("alice"), "b": who("bob"), "score": 0.03, "flagged": False}],
        "students": {
            "alice": {**student, "closest": 0.98, "closest_to": who("carol"), "flagged": True},
            "carol": {**student, "closest": 0.98, "closest_to": who("alice"), "flagged": True},
            "bob": {**student, "closest": 0.03, "closest_to": who("alice"), "flagged": False},
            "dave": {**student, "closest": 0.71, "closest_to": who("zoe", "/srv/ml-2025"), "flagged": True,
                     "solution_share": 0.8},
            "erin": {**student, "closest": 0.0, "closest_to": None, "flagged": False, "answer_tokens": 0,
                     "unreadable": ["a1_backprop.ipynb"]},
        },
    }))
    return path


def test_before_a_run_the_column_has_nothing(tmp_path):
    assert similarity_column(tmp_path, A1, REPORT_URL) == {"available": False}


def test_each_student_has_their_closest_pair_linked_to_its_section(tmp_path):
    _results(tmp_path)
    column = similarity_column(tmp_path, A1, REPORT_URL)
    assert column["available"] and column["threshold"] == 0.5 and column["report"] == REPORT_URL
    students = column["students"]
    assert students["carol"]["closest_to"] == "alice" and students["carol"]["flagged"]
    # Both students of a flagged pair link to its section of the page; others to the page.
    assert students["alice"]["report"] == students["carol"]["report"] == f"{REPORT_URL}#pair-alice--carol"
    assert students["bob"]["report"] == REPORT_URL and not students["bob"]["flagged"]
    assert students["dave"]["closest_to"] == "zoe (/srv/ml-2025)" and students["dave"]["mostly_solution"]
    # The section's id as the page names it (grader.grading.similarity.output).
    pair = SimpleNamespace(a=SimpleNamespace(document=Document("dave", "")),
                           b=SimpleNamespace(document=Document("zoe", "/srv/ml-2025")))
    assert students["dave"]["report"] == f"{REPORT_URL}#{_anchor(pair)}" == f"{REPORT_URL}#pair-dave--zoe_srv_ml-2025_"
    assert students["erin"]["unreadable"] == ["a1_backprop.ipynb"] and students["erin"]["closest_to"] is None
    assert not students["alice"]["mostly_solution"]


def test_the_page_is_found_where_out_dir_put_it_and_not_linked_when_gone(tmp_path):
    html = tmp_path / "reports" / f"{A1}.html"
    _results(tmp_path / "course", html=html)
    assert similarity_column(tmp_path / "course", A1, REPORT_URL)["report"] == REPORT_URL
    html.unlink()
    column = similarity_column(tmp_path / "course", A1, REPORT_URL)
    assert column["report"] is None and column["students"]["alice"]["report"] is None


def test_unreadable_results_are_no_results(tmp_path):
    path = _results(tmp_path)
    path.write_text("{not json")
    assert similarity_column(tmp_path, A1, REPORT_URL) == {"available": False}
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")
    assert similarity_column(tmp_path, A1, REPORT_URL) == {"available": False}


def test_the_script_is_added_to_nbgraders_own_and_only_to_the_one_it_knows():
    from nbgrader.server_extensions.formgrader import handlers as nbgrader_handlers

    original = Path(nbgrader_handlers.static_path, "js", "manage_submissions.js").read_text()
    patched = patched_manage_submissions_js(original, SIMILARITY_JS.read_text())
    assert patched is not None and patched.startswith(original) and "aicourse-similarity" in patched
    changed = original.replace(NBGRADER_HOOKS[0], "function insertRow")
    assert patched_manage_submissions_js(changed, SIMILARITY_JS.read_text()) is None


# --- a real hub, its formgrader service, headless Chromium -------------------------------------

SERVICE_START = 180  # seconds, on a busy 2-core machine


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    running = start_hub(tmp_path_factory.mktemp("hub-data"))
    yield running
    stop_hub(running)


def _planted(hub) -> Path:
    """A1 released, then submissions: alice's and bob's independent answers, an exact copy of
    alice's and one with renamed variables and reordered functions; `grader similarity` run as
    the README shows it."""
    from grader.grading.release import release_assignment
    from tests.grading.test_similarity import A1_A, A1_B, A1_RENAMES, fill, renamed_and_reordered, submit

    course_dir = hub.data_dir / "courses" / COURSE
    token = api_token(hub, login(hub, "instructor"), "instructor")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADER_EXCHANGE_TOKEN", token)
        release_assignment(course_dir=course_dir, assignment_id=A1)
    released = json.loads((course_dir / "release" / A1 / f"{A1}.ipynb").read_text())
    alice = fill(released, A1_A)
    for student, notebook in {"alice": alice, "bob": fill(released, A1_B), "copy_exact": alice,
                              "copy_renamed": renamed_and_reordered(alice, A1_RENAMES)}.items():
        submit(course_dir, A1, student, notebook)
    env = dict(os.environ, GRADER_COURSE_DIR=str(course_dir), GRADER_EXCHANGE_TOKEN=token)
    result = subprocess.run([sys.executable, "-m", "grader.cli", "similarity", A1], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return course_dir


@pytest.mark.slow
@pytest.mark.hub
@pytest.mark.browser
@pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}")
def test_the_submissions_list_shows_each_copy_with_its_pair_flagged_and_linked(hub, browser):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    course_dir = _planted(hub)
    assert results_path(course_dir, A1).is_file()
    driver = browser.driver
    wait = WebDriverWait(driver, SERVICE_START, poll_frequency=0.5,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    driver.get(f"{hub.url}/hub/login")
    wait.until(lambda d: d.find_elements("css selector", "#username_input"))[0].send_keys("instructor")
    driver.find_element("css selector", "#password_input").send_keys(hub.passwords["instructor"])
    driver.find_element("css selector", "#login_submit").click()
    wait.until(lambda d: "/hub/login" not in d.current_url)

    driver.get(f"{hub.url}/services/{COURSE}/formgrader/manage_submissions/{A1}")

    def rows(d):
        # Columns: name, id, timestamp, status, score, autograde, feedback x2, Similarity.
        found = {}
        for row in d.find_elements("css selector", "#main-table tr"):
            cells = row.find_elements("css selector", "td")
            if len(cells) == 9 and cells[8].text.strip():
                found[cells[1].text] = cells[8]
        return found if len(found) == 4 else None

    try:
        found = wait.until(rows)
    finally:
        browser.screenshot("formgrader-similarity-column")
    headers = [th.text for th in driver.find_elements("css selector", "table thead th")]
    assert headers[-1] == "Similarity" and len(headers) == 9, headers

    text = {student: cell.text for student, cell in found.items()}
    # What the column was made from: the service's answer, as the page's script fetched it.
    served = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(base_url + '/aicourse/similarity/' + assignment_id + '.json',"
        "      {headers: {'X-CSRFToken': getCookie('_xsrf')}})"
        ".then(r => r.text().then(t => done(r.status + ' ' + t)), e => done(String(e)));")
    assert served.startswith("200 ") and json.loads(served[4:])["available"], served[:2000]
    for copy in ("copy_exact", "copy_renamed"):
        # A copy's closest is alice or the other copy, at 0.97 or more, flagged.
        score, _, with_whom = text[copy].split(" ", 2)
        assert float(score) >= 0.97 and with_whom.split()[0] in {"alice", "copy_exact", "copy_renamed"}, text
        assert "flagged" in text[copy], text
    assert "flagged" in text["alice"], text
    assert "flagged" not in text["bob"] and float(text["bob"].split()[0]) < 0.5, text

    # The score links to the pair's section of the HTML page, served by the service.
    link = found["copy_exact"].find_element("css selector", "a.aicourse-similarity-score")
    href = link.get_attribute("href")
    page, _, anchor = href.partition("#")
    assert page == f"{hub.url}/services/{COURSE}/aicourse/similarity/{A1}.html" and anchor.startswith("pair-"), href
    # What DataTables sorts the column by (data-order): the score.
    order = [float(cell.get_attribute("data-order")) for cell in found.values()]
    assert max(order) >= 0.97 and min(order) < 0.5

    driver.get(href)
    wait.until(lambda d: d.find_elements("css selector", f"[id='{anchor}']"))
    browser.screenshot("formgrader-similarity-report")
    section = driver.find_element("css selector", f"[id='{anchor}']").text
    assert "copy_exact" in section and "Similarity: a1_backprop" in driver.title


@pytest.mark.slow
@pytest.mark.hub
def test_the_service_routes_need_a_login(hub):
    import requests

    for route in (f"aicourse/similarity/{A1}.json", f"aicourse/similarity/{A1}.html"):
        response = requests.get(f"{hub.url}/services/{COURSE}/{route}", allow_redirects=False)
        # The service sends a visitor without its cookie to the hub's OAuth login, never the data.
        assert response.status_code in (302, 403), (route, response.status_code)
        assert "alice" not in response.text
