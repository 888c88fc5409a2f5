"""A cohort admin manages seats in headless Chromium, on a real hub with the seats service.

Cora (cohort admin of Acme) logs in through the hub's form, opens the seats service (the hub's
OAuth, no confirmation page), assigns a seat, revokes it, uploads a CSV file with a bad row (the
page names the file and line and the seat count does not move), and opens the usage report,
whose chart is visible. Screenshots of each step go to the test's temporary folder.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.support.browser import missing
from tests.support.hubfixture import stop_hub
from tests.support.seatshub import ORG_A_ADMIN, start_seats_hub

pytestmark = [
    pytest.mark.slow,
    pytest.mark.hub,
    pytest.mark.browser,
    pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}"),
]

PAGE = 60  # seconds for a page on a busy 2-core machine


@pytest.fixture(scope="module")
def seats_hub(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        hub, seeded, url = start_seats_hub(tmp_path_factory, patch, sweep_every=3600)
    from grader.seats import store
    from grader.seats.db import close_seats_db, open_seats_db

    sessions = open_seats_db(url)
    with sessions() as session:
        # Lea ran a CPU server for three hours: the report's chart has a bar to show.
        store.record_server_start(session, username="lea", profile="cpu", gpus=0,
                                  now=store.moment(None) - timedelta(hours=3))
        store.record_server_stop(session, username="lea")
    yield hub, seeded, sessions
    stop_hub(hub)
    close_seats_db(sessions)


def _wait(browser, timeout=PAGE):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser.driver, timeout, poll_frequency=0.25)


def _visible(browser, css, timeout=PAGE):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return _wait(browser, timeout).until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))


def _text(browser, css) -> str:
    return browser.driver.find_element("css selector", css).text


def _counts(browser) -> tuple[int, int]:
    return int(_text(browser, "#seats-used")), int(_text(browser, "#seats-left"))


def _shot(browser, folder, name):
    browser.driver.save_screenshot(str(folder / f"{name}.png"))


def test_a_cohort_admin_assigns_revokes_imports_and_reads_the_report(seats_hub, browser, tmp_path):
    from selenium.webdriver.common.by import By

    hub, seeded, sessions = seats_hub
    shots = tmp_path / "screenshots"
    shots.mkdir()
    driver = browser.driver

    driver.get(f"{hub.url}/hub/login")
    _visible(browser, "#username_input").send_keys(ORG_A_ADMIN)
    driver.find_element(By.CSS_SELECTOR, "#password_input").send_keys(hub.passwords[ORG_A_ADMIN])
    driver.find_element(By.CSS_SELECTOR, "#login_submit").click()
    _wait(browser).until(lambda d: "/hub/login" not in d.current_url)

    # The service's front page lists Acme's cohorts only.
    driver.get(f"{hub.url}/services/seats/")
    _visible(browser, f"#organisation-{seeded.organisations['Acme']}")
    assert "Globex" not in driver.find_element(By.TAG_NAME, "body").text
    _shot(browser, shots, "1-organisations")

    cohort_id = seeded.cohorts["cpu"]
    driver.find_element(By.CSS_SELECTOR, f"#cohort-row-{cohort_id} a").click()
    _visible(browser, "#seat-counts")
    used, left = _counts(browser)

    # Assign a seat by user name.
    driver.find_element(By.CSS_SELECTOR, "#assign-who").send_keys("newlearner")
    driver.find_element(By.CSS_SELECTOR, "#assign-submit").click()
    assert "assigned to newlearner (active)" in _visible(browser, "#notice").text
    assert _counts(browser) == (used + 1, left - 1)
    row = driver.find_element(By.CSS_SELECTOR, "#seats tr[data-username='newlearner']")
    assert row.find_element(By.CSS_SELECTOR, ".state").text == "active"
    _shot(browser, shots, "2-assigned")

    # Revoke it.
    row.find_element(By.CSS_SELECTOR, "button.revoke").click()
    assert "revoked" in _visible(browser, "#notice").text
    row = driver.find_element(By.CSS_SELECTOR, "#seats tr[data-username='newlearner']")
    assert row.find_element(By.CSS_SELECTOR, ".state").text == "revoked"
    assert not row.find_elements(By.CSS_SELECTOR, "button.revoke")
    assert _counts(browser) == (used, left)
    _shot(browser, shots, "3-revoked")

    # A CSV with a bad third line: the page names it and assigns nobody.
    bad_csv = tmp_path / "learners.csv"
    bad_csv.write_text("username,email\ncsvlearner,\n,not-an-address\n")
    driver.find_element(By.CSS_SELECTOR, "#import-file").send_keys(str(bad_csv))
    driver.find_element(By.CSS_SELECTOR, "#import-submit").click()
    errors = _visible(browser, "#errors").text
    _shot(browser, shots, "4-csv-refused")
    assert "learners.csv:3: 'not-an-address' is not an e-mail address" in errors
    assert "Nothing was assigned" in errors
    assert _counts(browser) == (used, left)
    assert not driver.find_elements(By.CSS_SELECTOR, "#seats tr[data-username='csvlearner']")

    # The usage report: its chart is drawn and shows lea's three hours.
    driver.find_element(By.CSS_SELECTOR, "#report-link").click()
    chart = _visible(browser, "#usage-chart")
    assert chart.size["width"] > 100 and chart.size["height"] > 30
    bars = [bar for bar in driver.find_elements(By.CSS_SELECTOR, "#usage-chart rect.bar-server")
            if float(bar.get_attribute("width")) > 0]
    assert bars, "no server-hours bar drawn"
    assert float(_text(browser, "#server-hours")) >= 2.95
    assert driver.find_element(By.CSS_SELECTOR, "#usage-csv").get_attribute("href").endswith(f"/cohorts/{cohort_id}/usage.csv")
    _shot(browser, shots, "5-report")
    assert sorted(path.name for path in shots.iterdir()) == [
        "1-organisations.png", "2-assigned.png", "3-revoked.png", "4-csv-refused.png", "5-report.png"]
