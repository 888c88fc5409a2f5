"""grader.grading.tamper.inspect_submission on the tampered fixtures: repaired from the release so nbgrader
grades them as the honest notebook (the grades themselves: tests/grading/test_autograde.py)."""

from __future__ import annotations

import copy
import os

import nbformat
import pytest
from nbformat.v4 import new_code_cell

from grader.grading.tamper import inspect_submission
from tests.support import FIXTURES

FILES = FIXTURES


@pytest.fixture(scope="module")
def release():
    """The release as nbgrader makes it from tests/files/squares (make_fixtures.py's recipe)."""
    from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions, ComputeChecksums, LockCells

    notebook, resources = nbformat.read(FILES / "squares" / "squares.ipynb", as_version=4), {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), LockCells(), ComputeChecksums()):
        notebook, resources = preprocessor.preprocess(notebook, resources)
    return notebook


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def graded_cells(notebook):
    """(grade id, nbgrader metadata) of every cell nbgrader will treat as an nbgrader cell, in order."""
    return [(grade_id(cell), cell.metadata["nbgrader"]) for cell in notebook.cells if grade_id(cell)]


def inspect(case, release):
    return inspect_submission(FILES / "submissions" / f"{case}.ipynb", release)


def test_an_honest_notebook_is_left_as_it_is(release):
    inspection = inspect("solution", release)
    assert inspection.changes == [] and inspection.flags == []
    assert graded_cells(inspection.notebook) == graded_cells(release)


def test_an_added_cell_with_grade_metadata_becomes_an_ordinary_cell(release):
    inspection = inspect("added-graded-cell", release)
    assert graded_cells(inspection.notebook) == graded_cells(release)
    added = [cell for cell in inspection.notebook.cells if cell.source == "assert True"]
    assert len(added) == 1 and "nbgrader" not in added[0].metadata  # still runs, worth nothing
    (change,) = inspection.changes
    assert "unknown grade id 'bonus_points', 10 points" in change and "ordinary cell" in change
    assert [flag.kind for flag in inspection.flags] == ["tamper"]


def test_a_re_marked_solution_cell_gets_the_releases_metadata_back(release):
    inspection = inspect("remarked-solution", release)
    assert graded_cells(inspection.notebook) == graded_cells(release)
    answer = next(cell for cell in inspection.notebook.cells if grade_id(cell) == "square_answer")
    assert answer.metadata["nbgrader"]["grade"] is False and "points" not in answer.metadata["nbgrader"]
    assert answer.source == "def square(x):\n    return x * x"  # the student's answer stays
    assert inspection.changes == ["remarked-solution.ipynb: nbgrader metadata of cell 'square_answer' edited (grade, points); restored"]


def test_of_a_duplicated_test_cell_only_the_copy_where_the_release_has_it_is_graded(release):
    inspection = inspect("duplicated-test-cell", release)
    assert graded_cells(inspection.notebook) == graded_cells(release)
    decoy = next(cell for cell in inspection.notebook.cells if cell.source == "pass")
    assert "nbgrader" not in decoy.metadata
    kept = next(cell for cell in inspection.notebook.cells if grade_id(cell) == "test_negative")
    assert kept.source.startswith("assert square(-2) == 4")
    assert len(inspection.changes) == 1 and "'test_negative' appears 2 times" in inspection.changes[0]


def test_a_duplicate_placed_after_the_real_cell_is_the_one_dropped(release, tmp_path):
    notebook = nbformat.read(FILES / "submissions" / "solution.ipynb", as_version=4)
    real = next(cell for cell in notebook.cells if grade_id(cell) == "test_positive")
    decoy = copy.deepcopy(real)
    decoy.source, decoy["id"] = "pass", "decoy"
    notebook.cells.append(decoy)  # at the very end, after every other graded cell
    path = tmp_path / "squares.ipynb"
    nbformat.write(notebook, path)
    inspection = inspect_submission(path, release)
    kept = [cell for cell in inspection.notebook.cells if grade_id(cell) == "test_positive"]
    assert [cell.source for cell in kept] == ["assert square(3) == 9"]
    assert inspection.notebook.cells[-1].source == "pass" and "nbgrader" not in inspection.notebook.cells[-1].metadata


def test_grade_metadata_without_a_grade_id_is_removed(release, tmp_path):
    notebook = nbformat.read(FILES / "submissions" / "solution.ipynb", as_version=4)
    notebook.cells.append(new_code_cell("x = 1", metadata={"nbgrader": {"grade": True, "points": 3}}))
    path = tmp_path / "squares.ipynb"
    nbformat.write(notebook, path)
    inspection = inspect_submission(path, release)
    assert "nbgrader" not in inspection.notebook.cells[-1].metadata
    assert any("without a grade id" in change for change in inspection.changes)


def test_a_notebook_that_is_a_symlink_is_not_followed(release, tmp_path):
    os.symlink(FILES / "submissions" / "solution.ipynb", tmp_path / "squares.ipynb")
    inspection = inspect_submission(tmp_path / "squares.ipynb", release)
    assert inspection.notebook == release and "not a regular file" in inspection.changes[0]
