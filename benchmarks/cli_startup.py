"""Benchmark: how long the command lines take to answer, ours vs ``nbgrader --help``.

    .venv/bin/python benchmarks/cli_startup.py                 # 7 runs of each, interleaved
    .venv/bin/python benchmarks/cli_startup.py -n 15
    .venv/bin/python benchmarks/cli_startup.py --importtime    # where `grader status ASSIGNMENT` goes

Each command runs as a fresh process, as a user types it (the console scripts beside this
interpreter), and is timed from start to exit (wall clock); the table gives the median and the
fastest of N runs, interleaved so that a burst of load on a shared machine hits every command
alike, and each median as a fraction of ``nbgrader --help``'s. The target is 0.5 s.

``grader status`` and ``grader status ASSIGNMENT`` run on a tiny real course made for the run in a
temporary folder (``grader init`` with this repository's assignments, no submissions): they read
its config, folders and gradebook without importing nbgrader (grader.grading.gradebook_read); the
first, unmeasured status creates the gradebook through nbgrader, as it does on a new course. ``grader-admin`` is run as
``python -m grader.cli.admin`` where its console script is not installed yet.

``--importtime`` runs ``grader status ASSIGNMENT`` once under ``python -X importtime`` and prints
the imports that cost most (cumulative, and by their own time).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TARGET_SECONDS = 0.5
ASSIGNMENT = "a1_backprop"


def _script(name: str, module: str) -> list[str]:
    installed = shutil.which(name, path=str(BIN))
    return [installed] if installed else [sys.executable, "-m", module]


def _environment() -> dict[str, str]:
    # nbgrader runs `alembic` by name: the tools beside this interpreter come first, as in tests/conftest.py.
    return {**os.environ, "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]), "MPLBACKEND": "Agg"}


def _commands(course_dir: Path) -> dict[str, list[str]]:
    grader, admin, nbgrader = _script("grader", "grader.cli"), _script("grader-admin", "grader.cli.admin"), _script("nbgrader", "nbgrader")
    at_course = [*grader, "--course-dir", str(course_dir)]
    return {
        "grader --help": [*grader, "--help"],
        "grader status --help": [*grader, "status", "--help"],
        "grader-admin --help": [*admin, "--help"],
        "grader seats --help": [*grader, "seats", "--help"],
        "grader status": [*at_course, "status"],
        f"grader status {ASSIGNMENT}": [*at_course, "status", ASSIGNMENT],
        "nbgrader --help": [*nbgrader, "--help"],
    }


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
    return time.perf_counter() - started


def _make_course(folder: Path, env: dict[str, str]) -> Path:
    course_dir = folder / "course"
    subprocess.run([*_script("grader", "grader.cli"), "--course-dir", str(course_dir), "init", "bench",
                    "--exchange", str(folder / "exchange")], env=env, check=True, stdout=subprocess.DEVNULL)
    # The first status creates the gradebook; the timed runs read it as an instructor's would.
    subprocess.run([*_script("grader", "grader.cli"), "--course-dir", str(course_dir), "status"],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    return course_dir


def measure(runs: int, course_dir: Path, env: dict[str, str]) -> dict[str, list[float]]:
    commands = _commands(course_dir)
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values():  # one unmeasured run each: the page cache, .pyc files
        _run(command, env)
    for _ in range(runs):
        for name, command in commands.items():
            seconds[name].append(_run(command, env))
    return seconds


def print_table(seconds: dict[str, list[float]]) -> None:
    reference = statistics.median(seconds["nbgrader --help"])
    width = max(map(len, seconds))
    print(f"{'command':<{width}}  median s  fastest s  vs nbgrader --help  under {TARGET_SECONDS} s")
    for name, times in seconds.items():
        median = statistics.median(times)
        verdict = "" if name.startswith("nbgrader") else ("yes" if median < TARGET_SECONDS else "NO")
        print(f"{name:<{width}}  {median:8.3f}  {min(times):9.3f}  {median / reference:17.2f}  {verdict}")


def _import_times(stderr: str) -> list[tuple[int, int, int, str]]:
    """(self us, cumulative us, depth, module) per line of ``-X importtime`` output."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        rows.append((int(own), int(cumulative), (len(name) - len(name.lstrip()) - 1) // 2, name.strip()))
    return rows


def print_importtime(course_dir: Path, env: dict[str, str]) -> None:
    command = [sys.executable, "-X", "importtime", "-m", "grader.cli", "--course-dir", str(course_dir), "status", ASSIGNMENT]
    rows = _import_times(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stderr)
    total = sum(own for own, *_ in rows)
    print(f"\n`grader status {ASSIGNMENT}`: {len(rows)} modules imported, {total / 1e6:.2f} s of imports")
    print("top-level imports by cumulative time:")
    for _own, cumulative, _depth, name in sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:10]:
        print(f"  {cumulative / 1e6:6.3f} s  {name}")
    print("modules by their own time:")
    for own, _cumulative, _depth, name in sorted(rows, key=lambda r: -r[0])[:10]:
        print(f"  {own / 1e6:6.3f} s  {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="grader and grader-admin start-up vs nbgrader --help")
    parser.add_argument("-n", "--runs", type=int, default=7, help="timed runs of each command (default: %(default)s)")
    parser.add_argument("--importtime", action="store_true", help="also break down grader status ASSIGNMENT's imports")
    args = parser.parse_args(argv)
    env = _environment()
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as folder:
        course_dir = _make_course(Path(folder), env)
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {args.runs} runs of each; {sys.executable}")
        print_table(measure(args.runs, course_dir, env))
        if args.importtime:
            print_importtime(course_dir, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
