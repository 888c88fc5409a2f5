"""A tiny nbgrader assignment for the instant-feedback tests and benchmark: one answer, a visible
test and a test cell holding a hidden test whose source carries ``SECRET``."""

from __future__ import annotations

import nbformat

SECRET = "SECRET_HIDDEN_CHECK"  # in the hidden test only: must appear nowhere a student looks
CORRECT = "def add(a, b):\n    return a + b"
WRONG_ON_HIDDEN = "def add(a, b):\n    return a + b if a > 0 else 99"  # passes the visible test only


def source_notebook() -> nbformat.NotebookNode:
    """One answer, a visible test (2 points) and a test cell with a hidden test (3 points)."""
    def meta(**fields):
        return {"nbgrader": {"schema_version": 3, "locked": False, "solution": False, "grade": False, **fields}}
    answer = nbformat.v4.new_code_cell("def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION",
                                       metadata=meta(solution=True, grade_id="add"))
    visible = nbformat.v4.new_code_cell("assert add(1, 2) == 3", metadata=meta(grade=True, locked=True, points=2,
                                                                               grade_id="test_visible"))
    hidden = nbformat.v4.new_code_cell(
        f"assert add(2, 2) == 4\n### BEGIN HIDDEN TESTS\nassert add(-5, 5) == 0, '{SECRET}'\n### END HIDDEN TESTS",
        metadata=meta(grade=True, locked=True, points=3, grade_id="test_hidden"))
    return nbformat.v4.new_notebook(cells=[answer, visible, hidden], metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
