"""A real hub with cohort seats enabled, for the seats tests: its people, its seeded database.

The hub is configured by a temporary platform YAML (``AICOURSE_CONFIG``) with ``seats.enabled``
and the seats service on a free loopback port; the seats database (SQLite in the hub's data folder,
or a PostgreSQL URL) is created and seeded with :mod:`grader.seats.store` before the hub starts.
Two organisations, each with its own cohort admin, so every test can also check isolation.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import requests
import yaml

from tests.support.hubfixture import RunningHub, free_port, start_hub

CONTACT = "seats-help@platform.example"
# Who is who on the seats hub; every learner is a student of ai101 so the accounts exist.
ADMIN, ORG_A_ADMIN, ORG_B_ADMIN, INSTRUCTOR = "ada", "cora", "carl", "ian"
LEARNERS = ["lea", "gil", "rev", "nos", "old", "fin", "eve@example.org", "bea"]


def today() -> date:
    return datetime.now(timezone.utc).date()


@dataclass
class Seeded:
    """Ids of what the seed created, by name."""

    organisations: dict[str, int] = field(default_factory=dict)
    cohorts: dict[str, int] = field(default_factory=dict)
    seats: dict[str, int] = field(default_factory=dict)


def seed(url: str) -> Seeded:
    """Org A: an open CPU cohort, an open GPU cohort, an ended one; org B: one open cohort."""
    from grader.seats import store
    from grader.seats.db import close_seats_db, open_seats_db

    sessions = open_seats_db(url)
    ids = Seeded()
    now = today()
    try:
        with sessions() as session:
            org_a = store.create_organisation(session, name="Acme", contact_email="training@acme.example")
            org_b = store.create_organisation(session, name="Globex", contact_email="learning@globex.example")
            ids.organisations.update(Acme=org_a.id, Globex=org_b.id)
            store.add_org_admin(session, organisation_id=org_a.id, username=ORG_A_ADMIN)
            store.add_org_admin(session, organisation_id=org_b.id, username=ORG_B_ADMIN)
            cohorts = {
                "cpu": (org_a, now - timedelta(days=30), now + timedelta(days=30), 5, ["cpu"]),
                "gpu": (org_a, now - timedelta(days=30), now + timedelta(days=30), 2, ["cpu", "gpu"]),
                "ended": (org_a, now - timedelta(days=90), now - timedelta(days=10), 5, ["cpu"]),
                "globex": (org_b, now - timedelta(days=5), now + timedelta(days=60), 3, ["cpu"]),
            }
            for name, (org, starts, ends, limit, profiles) in cohorts.items():
                cohort = store.create_cohort(session, organisation_id=org.id, name=name, course_id="ai101",
                                             starts_on=starts, ends_on=ends, seat_limit=limit, profiles=profiles)
                ids.cohorts[name] = cohort.id
            for username, cohort in [("lea", "cpu"), ("gil", "gpu"), ("rev", "cpu"), ("old", "ended"),
                                     ("fin", "cpu"), ("bea", "globex")]:
                ids.seats[username] = store.assign_seat(session, cohort_id=ids.cohorts[cohort], username=username).id
            ids.seats["eve@example.org"] = store.assign_seat(session, cohort_id=ids.cohorts["cpu"],
                                                             email="eve@example.org").id
    finally:
        close_seats_db(sessions)
    return ids


def write_platform_yaml(path, *, db_url: str = "", sweep_every: int = 2) -> None:
    path.write_text(yaml.safe_dump({
        "admins": [ADMIN],
        "cohort_admins": [ORG_A_ADMIN, ORG_B_ADMIN],
        # Not under test here, and one process less on a busy machine.
        "idle_culler": {"enabled": False},
        "gpu_devices": ["0"],  # declared, never used by a server here: no test starts a GPU server
        "profiles": {
            "cpu": {"display_name": "CPU: 2 cores", "cpu_limit": 2, "mem_limit": "4G"},
            "gpu": {"display_name": "GPU: 1 GPU", "gpus": 1},
        },
        "seats": {"enabled": True, "db_url": db_url, "service_port": free_port(), "sweep_every": sweep_every,
                  "contact": CONTACT},
        "courses": {
            # start_hub gives the first course a free port through AICOURSE_FORMGRADER_PORT.
            "ai101": {"formgrader_port": 8010, "instructors": [INSTRUCTOR], "students": LEARNERS},
        },
    }))


def start_seats_hub(tmp_path_factory, monkeypatch_context, *, db_url: str = "", sweep_every: int = 2):
    """Seed the seats database and start the hub; (hub, seeded ids, database URL)."""
    data_dir = tmp_path_factory.mktemp("hub-data")
    url = db_url or f"sqlite:///{data_dir / 'seats.sqlite'}"
    seeded = seed(url)
    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    write_platform_yaml(config_file, db_url=db_url, sweep_every=sweep_every)
    monkeypatch_context.setenv("AICOURSE_CONFIG", str(config_file))
    hub = start_hub(data_dir)
    _wait_for_seats_service(hub)
    return hub, seeded, url


def _wait_for_seats_service(hub: RunningHub, timeout: float = 60) -> None:
    """Until the proxy routes to the seats service itself (its JSON refusal of a call without a
    token), not to the hub, which answers the path with a redirect to its login page meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{hub.url}/services/seats/api/organisations", timeout=2, allow_redirects=False)
            if answer.status_code in (401, 403) and "message" in answer.json():
                return
        except (requests.ConnectionError, ValueError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"seats service not up:\n{hub.log()[-3000:]}")


def try_login(hub: RunningHub, username: str, password: str | None = None) -> tuple[requests.Session, requests.Response]:
    """Post the login form as a browser does; the session and the hub's answer (302 when let in)."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login").raise_for_status()
    response = session.post(f"{hub.url}/hub/login", allow_redirects=False, data={
        "username": username, "password": password or hub.passwords[username], "_xsrf": session.cookies.get("_xsrf")})
    return session, response


def page_text(response: requests.Response) -> str:
    """The visible text of an HTML answer, tags dropped and entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", response.text))


def login_error(response: requests.Response) -> str:
    """The message JupyterHub's login form shows (``<p class="login_error">``)."""
    found = re.search(r'<p class="login_error">(.*?)</p>', response.text, re.S)
    return html.unescape(found.group(1)).strip() if found else ""


def service_api(hub: RunningHub, token: str, method: str, path: str, *, headers: dict | None = None,
                **kwargs) -> requests.Response:
    """A request to the seats service's REST API with a hub API token."""
    return requests.request(method, f"{hub.url}/services/seats/api{path}",
                            headers={"Authorization": f"token {token}", **(headers or {})}, timeout=60, **kwargs)
