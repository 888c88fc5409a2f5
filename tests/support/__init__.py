"""Helpers the tests share (hubs, browsers, PostgreSQL, processes, nbgrader), and where things are."""

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parents[1]
REPOSITORY = TESTS_DIR.parent
# Fixture submissions, notebooks and CSV files (tests/files/README.md says how they were made).
FIXTURES = TESTS_DIR / "files"
