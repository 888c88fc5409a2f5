"""tests.support.notebooks: smoke parameters are parsed from the parameters cell, failures name the cell."""

from __future__ import annotations

import nbformat
import pytest

from tests.support.notebooks import NotebookError, run_notebook, smoke_parameters


def test_smoke_values_come_from_trailing_comments():
    source = "num_epochs = 30  # smoke: 2\nlr = 0.1\nsizes = (64, 32)  # smoke: (8, 4)\n"
    assert smoke_parameters(source) == {"num_epochs": 2, "sizes": (8, 4)}


def test_a_smoke_value_that_is_not_a_literal_names_the_file_and_line():
    with pytest.raises(NotebookError, match=r"lesson\.ipynb: line 2: .*not a literal"):
        smoke_parameters("a = 1\nb = 2  # smoke: os.getcwd()\n", "lesson.ipynb")


def _notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.cells[0].metadata["tags"] = ["parameters"]
    return nb


@pytest.mark.slow
def test_a_failing_notebook_is_reported_with_its_cell(tmp_path):
    path = tmp_path / "broken.ipynb"
    nbformat.write(_notebook("n = 1  # smoke: 2", "x = n * 2", "assert x == 2, 'x was not 2'"), path)
    with pytest.raises(NotebookError) as raised:
        run_notebook(path, tmp_path / "out.ipynb", parameters={"n": 2})
    message = str(raised.value)
    assert str(path) in message
    assert "cell 2" in message and "AssertionError: x was not 2" in message


@pytest.mark.slow
def test_injected_parameters_reach_the_notebook(tmp_path):
    path = tmp_path / "ok.ipynb"
    nbformat.write(_notebook("n = 1  # smoke: 2", "assert n == 2"), path)
    run_notebook(path, tmp_path / "out.ipynb", parameters={"n": 2})
