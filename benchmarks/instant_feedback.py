"""Benchmark: a deadline burst with instant feedback: N students submit within one second.

    .venv/bin/python benchmarks/instant_feedback.py            # 50 students, 2 grading workers
    .venv/bin/python benchmarks/instant_feedback.py -n 10 --workers 1

A real hub (tests/support/hubfixture.py, demo spawner, temporary data folder, random loopback
ports) with the HTTP exchange and one course whose admin allowed instant feedback and whose
instructor turned it on (full score shown, no rate limit). The tiny assignment of the tests
(tests/support/instant_feedback.py: an answer, a visible and a hidden test) is released with
``grader release``; each student gets a hub API token (login form, then the token API, as a
student's server has one). Then every student's submission goes straight to the exchange service,
all released together from a barrier, so they arrive within one second; half are correct, half
fail the hidden test. The script polls the instructor's live list (``instant/queue``) until every
submission is graded, and then checks each student's own view: exactly their one submission, the
expected score, nothing of anybody else's.

Prints: how long the N submissions took to send, the time from the first submission to the last
score, the median and slowest time from a submission to its score, and the queue's longest
length seen. Exit status 0 when all N were graded with the right scores and nobody saw another's
result, 1 otherwise. The hub and everything it started are stopped by process group and pid.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import nbformat
import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from tests.support.hubfixture import api_token, free_port, login, start_hub, stop_hub  # noqa: E402
from tests.support.instant_feedback import CORRECT, WRONG_ON_HIDDEN, source_notebook  # noqa: E402

COURSE, ASSIGNMENT = "burst101", "tiny"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--students", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="the exchange's grading processes for the course")
    parser.add_argument("--timeout", type=float, default=600, help="give up after this many seconds of grading")
    args = parser.parse_args(argv)
    students = [f"s{number:03d}" for number in range(args.students)]
    with tempfile.TemporaryDirectory(prefix="instant-bench-") as folder:
        data_dir = Path(folder) / "data"
        source = data_dir / "courses" / COURSE / "source" / ASSIGNMENT
        source.mkdir(parents=True)
        nbformat.write(source_notebook(), source / f"{ASSIGNMENT}.ipynb")
        config = Path(folder) / "platform.yaml"
        config.write_text(yaml.safe_dump({
            "exchange": {"backend": "http", "service_port": free_port(), "instant_workers": args.workers},
            "idle_culler": {"enabled": False},
            "courses": {COURSE: {"formgrader_port": free_port(), "instructors": ["ian"], "students": students,
                                 "instant_feedback": True}}}))
        os.environ["AICOURSE_CONFIG"] = str(config)
        hub = start_hub(data_dir)
        try:
            return run(hub, data_dir / "courses" / COURSE, students, args)
        finally:
            stop_hub(hub)


def run(hub, course_dir: Path, students: list[str], args) -> int:
    (course_dir / "instant_feedback.yaml").write_text(yaml.safe_dump(
        {"default": {"enabled": True, "show": "full", "rate_limit": "none"}}))
    print(f"hub up; logging in {len(students)} students", file=sys.stderr)
    with ThreadPoolExecutor(4) as pool:
        tokens = dict(zip(["ian", *students], pool.map(lambda name: api_token(hub, login(hub, name), name),
                                                       ["ian", *students])))
    env = dict(os.environ, GRADER_COURSE_DIR=str(course_dir), GRADER_EXCHANGE_TOKEN=tokens["ian"])
    subprocess.run([sys.executable, "-m", "grader.cli", "release", ASSIGNMENT], env=env, check=True, capture_output=True)
    api = f"{hub.url}/services/nbgrader-exchange/api/courses/{COURSE}"
    released = requests.get(f"{api}/assignments/{ASSIGNMENT}", headers={"Authorization": f"token {tokens['ian']}"})
    template = nbformat.reads(base64.b64decode(released.json()["files"][f"{ASSIGNMENT}.ipynb"]).decode(), as_version=4)
    bodies, expected = {}, {}
    for index, name in enumerate(students):
        template.cells[0].source = CORRECT if index % 2 == 0 else WRONG_ON_HIDDEN
        expected[name] = 5.0 if index % 2 == 0 else 2.0
        bodies[name] = {"files": {f"{ASSIGNMENT}.ipynb": base64.b64encode(nbformat.writes(template).encode()).decode()}}

    barrier = threading.Barrier(len(students))

    def submit(name: str) -> int:
        barrier.wait()
        return requests.post(f"{api}/assignments/{ASSIGNMENT}/submissions", json=bodies[name],
                             headers={"Authorization": f"token {tokens[name]}"}, timeout=120).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(len(students)) as pool:
        codes = list(pool.map(submit, students))
    sent = time.monotonic() - started
    longest_queue, rows = 0, []
    while time.monotonic() - started < args.timeout:
        queue = requests.get(f"{api}/instant/queue", headers={"Authorization": f"token {tokens['ian']}"}).json()
        longest_queue = max(longest_queue, queue["queue_length"])
        rows = queue["submissions"]
        if len(rows) == len(students) and all(row["status"] in ("graded", "error") for row in rows):
            break
        time.sleep(0.2)
    last_score = time.monotonic() - started
    delays = sorted((datetime.fromisoformat(row["graded_at"]) - datetime.fromisoformat(row["submitted_at"])).total_seconds()
                    for row in rows if row["graded_at"])
    problems = [f"{name}: HTTP {code}" for name, code in zip(students, codes) if code != 201]
    problems += [f"{row['student_id']}: {row['status']} {row['message']}" for row in rows if row["status"] != "graded"]
    for name in students:
        view = requests.get(f"{api}/instant/me", headers={"Authorization": f"token {tokens[name]}"}).json()
        mine = [s for a in view["assignments"] for s in a["submissions"]]
        if view["student_id"] != name or len(mine) != 1 or mine[0].get("score") != expected[name]:
            problems.append(f"{name} sees {view['student_id']}'s view with {[s.get('score') for s in mine]}")
    print(f"students: {len(students)}, grading workers: {args.workers}, cores: {os.cpu_count()}")
    print(f"sending all submissions took {sent:.2f} s")
    print(f"graded: {sum(row['status'] == 'graded' for row in rows)} of {len(students)}; longest queue seen: {longest_queue}")
    print(f"time from the first submission to the last score: {last_score:.1f} s")
    if delays:
        print(f"submission to score: median {statistics.median(delays):.1f} s, slowest {delays[-1]:.1f} s")
    for problem in problems[:20]:
        print("PROBLEM", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
