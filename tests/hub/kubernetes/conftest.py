from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub.kubernetes.chart import ChartNotFound, locate_chart


@pytest.fixture(scope="session")
def chart() -> Path:
    """The unpacked Zero-to-JupyterHub chart deploy.sh deploys; a test that needs it fails without it, never skips."""
    try:
        return locate_chart()
    except ChartNotFound as missing:
        message = str(missing)
    pytest.fail(message, pytrace=False)
