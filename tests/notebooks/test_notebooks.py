"""Every lesson and every assignment source notebook runs green under papermill in smoke mode."""

from __future__ import annotations

import os

import nbformat
import pytest

from grader.resources import REPO_ROOT
from tests.support.notebooks import (
    cells_with_outputs,
    course_and_assignment_notebooks,
    notebook_smoke_parameters,
    run_notebook,
)

NOTEBOOKS = course_and_assignment_notebooks()


def _id(path):
    return str(path.relative_to(REPO_ROOT))


def test_there_are_notebooks_to_run():
    assert any("courses" in p.parts for p in NOTEBOOKS)
    assert any("assignments" in p.parts for p in NOTEBOOKS)


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if "courses" in p.parts], ids=_id)
def test_every_lesson_is_listed_in_the_course_and_module_readmes(path):
    # A lesson nobody links to is a lesson nobody opens (1.6 was missing from the listings once).
    course_readme = (REPO_ROOT / "courses" / "README.md").read_text(encoding="utf-8")
    module_readme = (path.parent / "README.md").read_text(encoding="utf-8")
    assert path.name in course_readme, f"{_id(path)} is not listed in courses/README.md"
    assert path.name in module_readme, f"{_id(path)} is not listed in {path.parent.name}/README.md"


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
    # A saved widget (a tqdm.auto bar, from_pretrained's "Loading weights") shows "Error displaying
    # widget: model not found" once the kernel is gone: lessons print text bars instead.
    widgets = [
        index for index, cell in enumerate(nbformat.read(output, as_version=4).cells)
        for out in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in out.get("data", {})
    ]
    assert widgets == [], f"{_id(path)}: widget outputs in cells {widgets}"
    if os.environ.get("AICOURSE_KEEP_NOTEBOOK_OUTPUTS"):
        keep = REPO_ROOT / ".artifacts" / "notebooks" / _id(path)
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(output.read_bytes())
