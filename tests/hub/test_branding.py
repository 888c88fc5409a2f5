"""The platform names itself, and a student's first start opens the course's start-here page, on a
real hub: ``branding`` (title and logo) on the login page and every hub page, and ``start_here``
(courses/START_HERE.ipynb by default) opened by JupyterLab in headless Chromium at the first start,
the courses folder at the next.
"""

from __future__ import annotations

import re

import pytest
import requests
import yaml

from tests.support.browser import missing
from tests.support.hubfixture import api_token, free_port, login, start_hub, stop_hub, stop_server

pytestmark = [pytest.mark.slow, pytest.mark.hub]

TITLE = "Northwind School of AI"
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="18"/></svg>'
START = 240  # seconds for a first server start and JupyterLab on a busy 2-core machine


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    work = tmp_path_factory.mktemp("branding-hub")
    (work / "northwind.svg").write_bytes(LOGO)
    config = work / "platform.yaml"
    config.write_text(yaml.safe_dump({
        "branding": {"title": TITLE, "logo": "northwind.svg"},  # relative to the YAML's folder
        "idle_culler": {"enabled": False}, "profiles": {},
        "courses": {"ai101": {"formgrader_port": free_port(), "instructors": ["instructor"],
                              "students": ["newbie"]}},
    }))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AICOURSE_CONFIG", str(config))
        running = start_hub(work / "data")
    yield running
    stop_hub(running)


def test_the_login_page_and_the_hub_pages_name_the_platform_and_show_its_logo(hub):
    page = requests.get(f"{hub.url}/hub/login")
    assert page.status_code == 200
    assert re.search(r'<h1 id="platform-title"[^>]*>\s*Northwind School of AI\s*</h1>', page.text)
    assert re.search(r"<title>\s*Northwind School of AI\s*</title>", page.text)
    assert 'id="platform-logo" src="/hub/logo"' in page.text
    logo = requests.get(f"{hub.url}/hub/logo")
    assert logo.status_code == 200 and logo.content == LOGO
    home = login(hub, "instructor").get(f"{hub.url}/hub/home")
    assert re.search(r"<title>\s*Northwind School of AI\s*</title>", home.text)
    assert 'alt="Northwind School of AI logo"' in home.text


def test_the_default_title_names_the_course_platform():
    from traitlets.config import Config

    from grader.hub.branding import update_branding
    from grader.hub.settings import layered_config, settings_from_config

    c = Config()
    update_branding(c, settings_from_config(layered_config(secrets={}, admin={}, environ={})))
    assert c.JupyterHub.template_vars == {"aicourse_title": "AI course platform", "aicourse_logo": False}
    assert "logo_file" not in c.JupyterHub


@pytest.mark.browser
@pytest.mark.skipif(missing() is not None, reason=f"headless browser unavailable: {missing()}")
def test_a_students_first_sign_in_lands_on_start_here_then_the_courses_folder(hub, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser.driver
    driver.get(f"{hub.url}/hub/login")
    assert driver.find_element(By.ID, "platform-title").text == TITLE and driver.title == TITLE
    driver.find_element(By.ID, "username_input").send_keys("newbie")
    driver.find_element(By.ID, "password_input").send_keys(hub.passwords["newbie"])
    driver.find_element(By.ID, "login_submit").click()
    # Login -> spawn -> the server's default URL: the start-here notebook, opened and rendered by Lab.
    heading = WebDriverWait(driver, START, poll_frequency=1).until(ec.visibility_of_element_located(
        (By.XPATH, "//div[contains(@class, 'jp-RenderedMarkdown')]//h1[contains(., 'Start here')]")))
    assert heading.is_displayed() and "/user/newbie/lab" in driver.current_url
    browser.screenshot("first-start-start-here")
    assert _server_default_url(hub, "newbie") == "/user/newbie/lab/tree/courses/START_HERE.ipynb"
    home = hub.data_dir / "homes" / "newbie"
    assert (home / "courses" / "START_HERE.ipynb").is_file()
    assert "c.CourseDirectory.course_id = 'ai101'" in (home / ".jupyter" / "nbgrader_config.py").read_text()

    # The next start opens the courses folder, not start-here again.
    session = login(hub, "newbie")
    stop_server(hub, "newbie", api_token(hub, session, "newbie"))
    driver.get(f"{hub.url}/hub/spawn")
    WebDriverWait(driver, START, poll_frequency=1).until(ec.url_contains("/user/newbie/lab"))
    # (Lab restores the open tabs of the last session itself; what the server is told to open is the folder.)
    assert _server_default_url(hub, "newbie") == "/user/newbie/lab/tree/courses"


def _server_default_url(hub, username: str) -> str:
    """Where the user's server sends its root (its default_url, from the hub's spawner)."""
    answer = requests.get(f"{hub.url}/user/{username}/", allow_redirects=False)
    assert answer.status_code in (301, 302), answer.status_code
    return answer.headers["Location"].split("?")[0]
