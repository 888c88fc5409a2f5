"""Tests of the tests for assignment A3 (subscription P&L): the solution earns full marks, the blank
release earns nothing, and each typical wrong model loses exactly the points of the test that
checks the function it breaks — no more, no less."""

from __future__ import annotations


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

ASSIGNMENT = "a3_subscription_pnl"
NOTEBOOK = "a3_subscription_pnl.ipynb"
MANUAL_CELL = "pricing_recommendation"

# Each wrong model: (old, new) edits of the solution, and the grade cells it must fail.
WRONG_MODELS = {
    # Seed 004's mistake: the one-off cost is put on the monthly axis, charged again every month.
    "wrong_time_axis": (
        [('flows[0] = -p["one_off_cost"]\n    flows[1:] = s * ', 'flows[0] = 0.0\n    flows[1:] = -p["one_off_cost"] + s * ')],
        {"test_cash_flows"},
    ),
    # Annual churn used as if it were the monthly rate.
    "wrong_churn_annual_as_monthly": (
        [("return 1.0 - stay_one_month", "return annual_churn")],
        {"test_monthly_churn"},
    ),
    # The same mistake made inside subscribers(), bypassing monthly_churn().
    "wrong_churn_in_subscribers": (
        [('c = monthly_churn(p["annual_churn"])', 'c = p["annual_churn"]')],
        {"test_subscribers"},
    ),
    # NPV discounting off by one period: month 0 is discounted once, month t t+1 times.
    "wrong_npv_off_by_one": (
        [("t = np.arange(len(flows))", "t = np.arange(1, len(flows) + 1)")],
        {"test_npv"},
    ),
}


def _autograded_points(nb) -> dict[str, float]:
    """{grade_id: points} of the autograded test cells of the source notebook."""
    points = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            points[meta["grade_id"]] = float(meta["points"])
    return points


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("a3"))
    generate(course, ASSIGNMENT)
    source = source_notebook(ASSIGNMENT, NOTEBOOK)
    submissions = {
        "solution": source,
        "blank": released_notebook(course, ASSIGNMENT, NOTEBOOK),
    }
    for student, (edits, _) in WRONG_MODELS.items():
        nb = source
        for old, new in edits:
            nb = replace_in_solution(nb, old, new)
        submissions[student] = nb
    for student, nb in submissions.items():
        submit_directly(course, ASSIGNMENT, student, {NOTEBOOK: nb})
    # one autograde call for every variant
    scores = autograde_scores(course, ASSIGNMENT, list(submissions))
    return scores, _autograded_points(source)


def test_the_intro_states_the_point_total():
    nb = source_notebook(ASSIGNMENT, NOTEBOOK)
    total = sum(float(c.metadata["nbgrader"]["points"]) for c in nb.cells
                if c.get("metadata", {}).get("nbgrader", {}).get("grade"))
    assert f"**{total:g} points:**" in nb.cells[0].source
    manual = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == MANUAL_CELL]
    assert len(manual) == 1 and manual[0].cell_type == "markdown" and manual[0].metadata["nbgrader"]["solution"]


def test_hidden_tests_are_not_released(tmp_path):
    course = make_course(tmp_path)
    generate(course, ASSIGNMENT)
    released = released_notebook(course, ASSIGNMENT, NOTEBOOK)
    text = "\n".join(c.source for c in released.cells)
    assert "BEGIN HIDDEN TESTS" not in text and "_ref_" not in text and "BEGIN SOLUTION" not in text
    code = "\n".join(c.source for c in released.cells if c.cell_type == "code")
    assert code.count("raise NotImplementedError()") == 7


def test_solution_gets_full_marks(graded):
    scores, points = graded
    assert {cell: scores["solution"][cell] for cell in points} == points
    assert scores["solution"][MANUAL_CELL] is None  # left for the human grader


def test_blank_release_gets_zero(graded):
    scores, points = graded
    assert all(scores["blank"][cell] == 0 for cell in points)
    assert scores["blank"][MANUAL_CELL] == 0  # an untouched written answer is zero without a human


@pytest.mark.parametrize("student", list(WRONG_MODELS))
def test_each_wrong_model_loses_exactly_its_tests_points(graded, student):
    scores, points = graded
    failing = WRONG_MODELS[student][1]
    expected = {cell: (0.0 if cell in failing else full) for cell, full in points.items()}
    assert {cell: scores[student][cell] for cell in points} == expected
    lost = sum(points.values()) - sum(scores[student][cell] for cell in points)
    assert lost == sum(points[cell] for cell in failing) > 0
