"""Tests of the tests of assignment A1 (backpropagation by hand), graded by real nbgrader.

One throw-away course grades, in a single autograde call, the source notebook (the solution),
the blank released notebook, and one "student" per wrong implementation. The solution must score
full marks on every autograded cell, the blank release zero, and each wrong implementation must
lose exactly the points of the one test cell meant to catch it — no more (test cells are isolated
from each other's units) and no less.
"""

from __future__ import annotations

import re

import nbformat
import pytest

from nbgrader_helpers import (
    autograde_scores,
    generate,
    make_course,
    released_notebook,
    replace_in_solution,
    source_notebook,
    submit_directly,
)

pytestmark = pytest.mark.slow

ASSIGNMENT = "a1_backprop"
NOTEBOOK = "a1_backprop.ipynb"

# name: (solution cell that is edited, text in the solution, wrong text, test cell that must catch it)
WRONG_IMPLEMENTATIONS = {
    # Sign flipped in the softmax cross-entropy gradient.
    "ce_gradient_sign": (
        "softmax_cross_entropy", "dlogits = (probs - onehot) / n", "dlogits = (onehot - probs) / n",
        "test_softmax_cross_entropy",
    ),
    # SGD climbs the gradient instead of descending it.
    "sgd_sign": (
        "sgd_and_train", "params[name] -= lr * grads[name]", "params[name] += lr * grads[name]",
        "test_training",
    ),
    # Missing transpose (the hidden tests also use square W, where the shapes stay right).
    "affine_dx_missing_transpose": (
        "affine_backward", "dx = dout @ W.T", "dx = dout @ W",
        "test_affine_backward",
    ),
    # Bias gradient not summed over the batch.
    "affine_db_not_summed": (
        "affine_backward", "db = dout.sum(axis=0)", "db = dout",
        "test_affine_backward",
    ),
    # Softmax without subtracting the row maximum: overflows on logits around 1000.
    "softmax_no_max_shift": (
        "softmax", "shifted = z - z.max(axis=1, keepdims=True)", "shifted = z",
        "test_softmax",
    ),
    # Forward pass without the bias.
    "affine_forward_no_bias": (
        "affine_forward", "out = x @ W + b", "out = x @ W",
        "test_affine_forward",
    ),
    # ReLU backward lets the gradient through everywhere.
    "relu_backward_no_mask": (
        "relu", "dx = dout * (x > 0)", "dx = dout * 1.0",
        "test_relu_backward",
    ),
    # Backprop through the network skips the ReLU (its layers are otherwise right).
    "network_skips_relu_backward": (
        "two_layer_loss", "dh = relu_backward(da, relu_cache)", "dh = da",
        "test_two_layer_loss",
    ),
    # The training loop drops the last, smaller minibatch of each epoch. The visible tests still
    # pass (the loss goes down, the accuracy is fine); only the hidden tests catch it, which shows
    # that the hidden tests are put back when grading.
    "train_drops_last_batch": (
        "sgd_and_train", "for start in range(0, len(X), batch_size):",
        "for start in range(0, len(X) - batch_size + 1, batch_size):",
        "test_training",
    ),
}


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _test_cells(nb) -> dict[str, float]:
    """{grade_id: points} of the autograded test cells (graded code cells that are not answers)."""
    return {
        _nbgrader(c)["grade_id"]: float(_nbgrader(c)["points"])
        for c in nb.cells
        if _nbgrader(c).get("grade") and not _nbgrader(c).get("solution")
    }


def _manual_cells(nb) -> dict[str, float]:
    return {
        _nbgrader(c)["grade_id"]: float(_nbgrader(c)["points"])
        for c in nb.cells
        if _nbgrader(c).get("grade") and _nbgrader(c).get("solution")
    }


def _wrong(source: nbformat.NotebookNode, cell_id: str, old: str, new: str) -> nbformat.NotebookNode:
    nb = replace_in_solution(source, old, new)
    changed = [_nbgrader(a).get("grade_id") for a, b in zip(nb.cells, source.cells) if a.source != b.source]
    assert changed == [cell_id], f"{old!r} was expected in the solution cell {cell_id}, changed {changed}"
    cell = next(c for c in source.cells if _nbgrader(c).get("grade_id") == cell_id)
    assert cell.cell_type == "code" and _nbgrader(cell).get("solution"), f"{cell_id} is not an answer cell"
    return nb


@pytest.fixture(scope="module")
def source():
    return source_notebook(ASSIGNMENT, NOTEBOOK)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, source):
    """Generate the release, submit every student, autograde them all at once."""
    course = make_course(tmp_path_factory.mktemp("a1_course"))
    generate(course, ASSIGNMENT)
    released = released_notebook(course, ASSIGNMENT, NOTEBOOK)
    students = {"solution": source, "blank": released}
    for name, (cell_id, old, new, _) in WRONG_IMPLEMENTATIONS.items():
        students[name] = _wrong(source, cell_id, old, new)
    for student, nb in students.items():
        submit_directly(course, ASSIGNMENT, student, {NOTEBOOK: nb})
    scores = autograde_scores(course, ASSIGNMENT, list(students))
    return {"scores": scores, "released": released}


def test_points_add_up_to_what_the_intro_states(source):
    intro = source.cells[0].source
    match = re.search(r"\*\*Total: (\d+) points\*\* — (\d+) autograded and (\d+) for the written answer", intro)
    assert match, "the intro must state the total, the autograded and the hand-graded points"
    total, auto, manual = (float(g) for g in match.groups())
    tests, answers = _test_cells(source), _manual_cells(source)
    assert sum(tests.values()) == auto
    assert sum(answers.values()) == manual and len(answers) == 1
    assert auto + manual == total
    # The points table names every graded cell with its points.
    table = dict(re.findall(r"\| `(test_\w+)` \| (\d+) \|", intro))
    assert {k: float(v) for k, v in table.items()} == tests


def test_source_notebook_is_well_formed(source):
    ids = [_nbgrader(c).get("grade_id") for c in source.cells if _nbgrader(c)]
    assert len(ids) == len(set(ids)), "grade_ids must be unique"
    assert all(_nbgrader(c).get("schema_version") == 3 for c in source.cells if _nbgrader(c))
    assert source.metadata["kernelspec"]["name"] == "python3"
    for c in source.cells:
        meta = _nbgrader(c)
        if meta.get("grade") and not meta.get("solution"):
            assert c.cell_type == "code" and meta["locked"], f"{meta['grade_id']}: test cells are locked code cells"
            assert "### BEGIN HIDDEN TESTS" in c.source, f"{meta['grade_id']}: every test cell has hidden tests"
        if meta.get("solution") and c.cell_type == "code":
            assert "### BEGIN SOLUTION" in c.source and not meta["grade"] and not meta["locked"]
    params = [c for c in source.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and not _nbgrader(params[0]) and "# smoke:" in params[0].source
    assert _nbgrader(source.cells[0]).get("locked") and source.cells[0].cell_type == "markdown"


def test_release_strips_solutions_and_hidden_tests(graded):
    text = "\n".join(c.source for c in graded["released"].cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "_REFERENCE_LAYERS", "Model answer"):
        assert marker not in text
    assert "raise NotImplementedError()" in text


def test_solution_scores_full_marks(graded, source):
    scores = graded["scores"]["solution"]
    assert {cell: scores[cell] for cell in _test_cells(source)} == _test_cells(source)


def test_blank_release_scores_zero(graded, source):
    scores = graded["scores"]["blank"]
    assert {cell: scores[cell] for cell in _test_cells(source)} == {cell: 0.0 for cell in _test_cells(source)}
    # The untouched written answer is scored 0 automatically ("no response").
    assert all(scores[cell] == 0.0 for cell in _manual_cells(source))


@pytest.mark.parametrize("student", sorted(WRONG_IMPLEMENTATIONS))
def test_wrong_implementation_loses_exactly_its_cell(graded, source, student):
    catcher = WRONG_IMPLEMENTATIONS[student][3]
    expected = {cell: (0.0 if cell == catcher else points) for cell, points in _test_cells(source).items()}
    scores = graded["scores"][student]
    assert {cell: scores[cell] for cell in expected} == expected
