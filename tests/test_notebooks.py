"""Every lesson and every assignment source notebook runs green under papermill in smoke mode."""

from __future__ import annotations

import os

import pytest

from grader.notebooks import (
    cells_with_outputs,
    course_and_assignment_notebooks,
    notebook_smoke_parameters,
    run_notebook,
)
from grader.resources import REPO_ROOT

NOTEBOOKS = course_and_assignment_notebooks()


def _id(path):
    return str(path.relative_to(REPO_ROOT))


def test_there_are_notebooks_to_run():
    assert any("courses" in p.parts for p in NOTEBOOKS)
    assert any("assignments" in p.parts for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_committed_without_outputs(path):
    assert cells_with_outputs(path) == [], f"{_id(path)}: code cells with outputs, clear them before committing"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    # Lessons must not reach the network; keep Hugging Face and friends offline, as in a lecture hall.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    # Lessons run side by side under pytest-xdist: share the cores instead of oversubscribing them
    # (two MiniLM lessons with 2 threads each on 2 cores ran 4x slower than one at a time).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    monkeypatch.setenv("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))
    parameters = notebook_smoke_parameters(path)
    output = tmp_path / path.name
    run_notebook(path, output, parameters=parameters)
    assert output.exists()
    if os.environ.get("AICOURSE_KEEP_NOTEBOOK_OUTPUTS"):
        keep = REPO_ROOT / ".artifacts" / "notebooks" / _id(path)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(output.read_bytes())
