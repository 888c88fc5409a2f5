"""Benchmark: what the seat check adds to a login, on two real hubs side by side.

    .venv/bin/python benchmarks/seat_check.py                 # 40 logins per hub, SQLite seats database
    .venv/bin/python benchmarks/seat_check.py -n 100 --postgres   # the seats database on PostgreSQL

Two hubs from hub_config/ on random loopback ports, each with a temporary data folder and the same
platform YAML except ``seats.enabled``:

* **without**: seats disabled, as every hub before cohort seats;
* **with**: seats enabled; every learner holds an active seat in an open cohort (seeded with
  :mod:`grader.seats.store` before the hub starts), so each login runs the whole check
  (invitations to claim, staff or not, the access query) and is let in.

Logins alternate between the two hubs (without, with, without, ...), so a busy moment of the
machine falls on both alike. Each login is what a browser does: GET the login page for its XSRF
cookie, then POST the form; only the POST is timed, up to the hub's redirect. Every learner logs
in once per hub (the password check itself, Argon2id, is the same for both).
Printed, in milliseconds (p50, p95, mean, and the differences): the time each client waited, the
time each hub itself logged for the request (its access log: no client or network in it), and the
seat check alone, run in this process against the seeded database as the hub's hook runs it in
its database thread, off the event loop (claim invitations, staff or not, the access query: one session). A login includes ~20 ms of Argon2id and the
machine's noise, which the differences between hubs carry; the last line is the check's own cost.
Both hubs are stopped by process group at the end, also on errors or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from tests.support.hubfixture import free_port, start_hub, stop_hub  # noqa: E402

REQUEST_TIMEOUT = 30
# JupyterHub's access log line for a login: "302 POST /hub/login -> /hub/spawn (name@127.0.0.1) 412.34ms"
LOGIN_LOG = re.compile(r"302 POST /hub/login\S* -> \S+ \((learner\d+)@[^)]*\) ([0-9.]+)ms")


def platform_yaml(path: Path, *, learners: list[str], seats: bool, db_url: str) -> None:
    path.write_text(yaml.safe_dump({
        "idle_culler": {"enabled": False},
        "seats": {"enabled": seats, "db_url": db_url, "service_port": free_port(), "sweep_every": 3600},
        "courses": {"ai101": {"formgrader_port": 8010, "instructors": ["ian"], "students": learners}},
    }))


def seed(url: str, learners: list[str]) -> None:
    from grader.seats import store
    from grader.seats.db import close_seats_db, open_seats_db
    from grader.seats.enforcement import utc_today

    sessions = open_seats_db(url)
    try:
        with sessions() as session:
            org = store.create_organisation(session, name="Bench", contact_email="bench@example.org")
            cohort = store.create_cohort(session, organisation_id=org.id, name="bench", course_id="ai101",
                                         starts_on=utc_today() - timedelta(days=1),
                                         ends_on=utc_today() + timedelta(days=30),
                                         seat_limit=len(learners), profiles=["cpu"])
            for name in learners:
                store.assign_seat(session, cohort_id=cohort.id, username=name)
    finally:
        close_seats_db(sessions)


def timed_login(hub, username: str) -> float:
    """Seconds the hub took to answer the login form's POST with its redirect."""
    session = requests.Session()
    session.get(f"{hub.url}/hub/login", timeout=REQUEST_TIMEOUT).raise_for_status()
    data = {"username": username, "password": hub.passwords[username], "_xsrf": session.cookies.get("_xsrf")}
    started = time.perf_counter()
    response = session.post(f"{hub.url}/hub/login", data=data, allow_redirects=False, timeout=REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - started
    if response.status_code != 302:
        raise RuntimeError(f"login of {username} answered {response.status_code}")
    return elapsed


def hub_logged_ms(hub, learners: list[str]) -> list[float]:
    """The hub's own time for each timed login (the warm-up login of learners[0] left out)."""
    deadline = time.monotonic() + 10
    while True:
        # The hub logs a request after answering it: the last line may come a moment later.
        times: dict[str, list[float]] = {}
        for name, ms in LOGIN_LOG.findall(hub.log()):
            times.setdefault(name, []).append(float(ms))
        if all(name in times for name in learners) or time.monotonic() > deadline:
            return [times[name][-1] for name in learners if name in times]
        time.sleep(0.2)


def check_alone_ms(url: str, learners: list[str], rounds: int = 5) -> list[float]:
    """The seat check as the login hook runs it, timed in this process against the seeded database."""
    from grader.seats.db import close_seats_db, open_seats_db
    from grader.seats.enforcement import SeatEnforcement

    enforcement = SeatEnforcement(sessions=open_seats_db(url), staff_names=frozenset({"ian"}))
    times = []
    try:
        for _ in range(rounds):
            for name in learners:
                started = time.perf_counter()
                # What the hook runs in its database thread: one session (hand-off to the thread not included).
                _, decision = enforcement._login_decision(username=name, email=f"{name}@example.org", admin=False,
                                                          groups=())
                assert decision.allowed, name
                times.append((time.perf_counter() - started) * 1000)
    finally:
        close_seats_db(enforcement.sessions)
    return times


def summary_ms(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {"p50": statistics.median(ms), "p95": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
            "mean": statistics.fmean(ms)}


def summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"p50": statistics.median(ms), "p95": ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
            "mean": statistics.fmean(ms)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--logins", type=int, default=40, help="logins per hub (one per learner)")
    parser.add_argument("--postgres", action="store_true", help="the seats database on a throw-away PostgreSQL")
    args = parser.parse_args(argv)
    learners = [f"learner{i:03d}" for i in range(args.logins)]

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-check-")))
        db_url = ""
        if args.postgres:
            from tests.support import postgres

            db_url = stack.enter_context(postgres.running_postgres())
        hubs = {}
        seats_url = db_url or f"sqlite:///{work / 'with' / 'seats.sqlite'}"
        for label, enabled in (("without", False), ("with", True)):
            data_dir = work / label
            data_dir.mkdir()
            if enabled:
                seed(seats_url, learners)
            config = work / f"{label}.yaml"
            platform_yaml(config, learners=learners, seats=enabled, db_url=db_url)
            os.environ["AICOURSE_CONFIG"] = str(config)
            print(f"starting the hub {label} the seat check ...", flush=True)
            hubs[label] = start_hub(data_dir)
            stack.callback(stop_hub, hubs[label])

        times: dict[str, list[float]] = {"without": [], "with": []}
        # One untimed login each: the first login of a hub pays for imports and connections.
        for hub in hubs.values():
            timed_login(hub, learners[0])
        for name in learners:
            for label in ("without", "with"):
                times[label].append(timed_login(hubs[label], name))
        logged = {label: hub_logged_ms(hub, learners) for label, hub in hubs.items()}
        alone = check_alone_ms(seats_url, learners)

    print(f"\n{args.logins} logins per hub, seats database on {'PostgreSQL' if args.postgres else 'SQLite'}")
    print(f"{'':>34} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")

    def line(label: str, stats: dict[str, float], sign: str = "") -> None:
        print(f"{label:>34} " + " ".join(f"{stats[key]:{sign}8.1f}" for key in ("p50", "p95", "mean")))

    for what, without, with_check in (("client", summary(times["without"]), summary(times["with"])),
                                      ("hub log", summary_ms(logged["without"]), summary_ms(logged["with"]))):
        line(f"{what}: without the seat check", without)
        line(f"{what}: with the seat check", with_check)
        line(f"{what}: difference", {key: with_check[key] - without[key] for key in without}, "+")
    line("the seat check alone (in process)", summary_ms(alone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
