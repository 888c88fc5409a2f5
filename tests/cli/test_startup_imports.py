"""Building the parsers and printing any help imports nothing heavy: this is what keeps
``grader --help`` well under half a second (benchmarks/cli_startup.py measures it)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ["jupyterhub", "nbgrader", "alembic", "sqlalchemy", "matplotlib", "torch", "tensorflow", "numpy",
         "tornado", "traitlets", "jsonschema", "yaml", "nbformat", "dask", "argon2"]

# Runs in a fresh interpreter: prints every page of help of both scripts (each --help is
# a SystemExit), then the top-level packages it imported.
PROBE = """
import contextlib, io, json, sys
from grader.cli import admin, instructor
from tests.cli.parser_walk import SCRIPTS, walk

for script, build in SCRIPTS.items():
    for path, _ in walk(build()):
        if script == "grader-admin" and path[:1] == ("k8s",):
            continue  # handed to the Kubernetes values module, which is the heavy part
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            (instructor.main if script == "grader" else admin.main)([*path, "--help"])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


@pytest.fixture(scope="module")
def imported() -> set[str]:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("module", HEAVY)
def test_help_does_not_import(imported, module):
    assert module not in imported


def test_the_probe_ran_the_parsers(imported):
    assert "grader" in imported and "argparse" in imported


def test_an_argument_error_imports_nothing_heavy():
    # A typo ("grader statsu") must fail as fast as --help does.
    probe = ("import sys, contextlib\nfrom grader.cli import main\n"
             "with contextlib.suppress(SystemExit): main(['statsu'])\n"
             f"print(sorted(set({HEAVY!r}) & {{m.split('.')[0] for m in sys.modules}}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
    assert "invalid choice: 'statsu'" in result.stderr
