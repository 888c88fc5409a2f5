"""Test-wide setup: tools installed next to the interpreter (alembic, jupyter, nbgrader) on PATH,
matplotlib without a display, and the `browser` fixture (headless Chromium) the page tests share."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# nbgrader runs `alembic` as a command to create and upgrade gradebooks; the hub runs
# configurable-http-proxy from node_modules. Both must be found however pytest was started.
_TOOL_DIRS = [str(Path(sys.executable).parent), str(Path(__file__).resolve().parents[1] / "node_modules" / ".bin")]
os.environ["PATH"] = os.pathsep.join(_TOOL_DIRS + [os.environ.get("PATH", "")])
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture
def browser():
    """A headless Chromium for page tests (tests/support/browser.py), quit after the test."""
    from tests.support.browser import Browser

    opened = Browser()
    yield opened
    opened.quit()
