"""Tests of the tests for assignment A3 (subscription P&L): the solution earns full marks, the blank
release earns nothing, and each typical wrong model loses exactly the points of the test that
checks the function it breaks — no more, no less."""

from __future__ import annotations

import pytest

from tests.support.nbgrader_helpers import (
    autograde_scores,
    generate,
    make_course,
    released_notebook,
    replace_in_solution,
    source_notebook,
    submit_directly,
    with_answer,
    with_extra_cell,
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
    # --- plausible mistakes added with the "fair to correct work" review (issue 19) ---
    # Annual churn divided by 12 (simple, not compounded).
    "churn_divided_by_12": (
        [("return 1.0 - stay_one_month", "return annual_churn / 12")],
        {"test_monthly_churn"},
    ),
    # New subscribers join before the month's churn instead of after it.
    "subscribers_join_before_churn": (
        [('s = s * (1.0 - c) + p["new_per_month"]\n        path[t] = s', 's = (s + p["new_per_month"]) * (1.0 - c)\n        path[t] = s')],
        {"test_subscribers"},
    ),
    # Months 0..months-1 instead of 1..months (the starting count is returned as month 1).
    "subscribers_off_by_one_month": (
        [('        s = s * (1.0 - c) + p["new_per_month"]\n        path[t] = s',
          '        path[t] = s\n        s = s * (1.0 - c) + p["new_per_month"]')],
        {"test_subscribers"},
    ),
    # Acquisition cost charged on every subscriber each month, not on the new ones.
    "cac_on_all_subscribers": (
        [('- p["new_per_month"] * p["cac"]\n    return flows', '- s * p["cac"]\n    return flows')],
        {"test_cash_flows"},
    ),
    # The fixed monthly cost forgotten.
    "fixed_cost_forgotten": (
        [(' - p["fixed_cost_per_month"] - p["new_per_month"] * p["cac"]\n    return flows', ' - p["new_per_month"] * p["cac"]\n    return flows')],
        {"test_cash_flows"},
    ),
    # Break-even read as the first month with a positive monthly flow, not cumulative.
    "break_even_not_cumulative": (
        [("        total += flow\n        if total >= 0:", "        total = flow\n        if total >= 0:")],
        {"test_break_even_month"},
    ),
    # Exactly zero cumulative cash not counted as break-even.
    "break_even_strictly_positive": (
        [("        if total >= 0:\n            return month", "        if total > 0:\n            return month")],
        {"test_break_even_month"},
    ),
    # -1 instead of None when the business never breaks even.
    "break_even_minus_one": (
        [("            return month\n    return None", "            return month\n    return -1")],
        {"test_break_even_month"},
    ),
    # Lifetime value without discounting.
    "ltv_undiscounted": (
        [('ltv = margin / (monthly_churn(p["annual_churn"]) + monthly_rate(p["annual_discount_rate"]))',
          'ltv = margin / monthly_churn(p["annual_churn"])')],
        {"test_ltv_to_cac"},
    ),
    # The annual discount rate used as a monthly one in the lifetime value.
    "ltv_annual_rate_monthly": (
        [('monthly_rate(p["annual_discount_rate"]))\n    return ltv', 'p["annual_discount_rate"])\n    return ltv')],
        {"test_ltv_to_cac"},
    ),
    # Payback on price instead of margin.
    "payback_on_price": (
        [('return p["cac"] / (p["price"] - p["variable_cost"])', 'return p["cac"] / p["price"]')],
        {"test_cac_payback"},
    ),
    # The annual rate applied every month.
    "npv_annual_rate_each_month": (
        [("    r = monthly_rate(annual_discount_rate)\n    t = np.arange(len(flows))", "    r = annual_discount_rate\n    t = np.arange(len(flows))")],
        {"test_npv"},
    ),
}

# Correct answers written differently: (answer cell, whole new source); each must score full marks.
DIFFERENT_BUT_CORRECT = {
    "churn_via_log1p": [("monthly_churn", """def monthly_churn(annual_churn):
    return -np.expm1(np.log1p(-annual_churn) / 12)
""")],
    "subscribers_closed_form": [("subscribers", """def subscribers(p):
    c = monthly_churn(p["annual_churn"])
    t = np.arange(1, p["months"] + 1)
    if c == 0:
        return p["initial_subscribers"] + p["new_per_month"] * t
    steady = p["new_per_month"] / c
    return steady + (p["initial_subscribers"] - steady) * (1 - c) ** t
""")],
    # The case of the issue: whole people, rounded each month.
    "subscribers_rounded_to_people": [("subscribers", """def subscribers(p):
    c = monthly_churn(p["annual_churn"])
    people = [p["initial_subscribers"]]
    for _ in range(p["months"]):
        people.append(round(people[-1] * (1 - c) + p["new_per_month"]))
    return np.array(people[1:], dtype=float)
""")],
    "float32_cash_flows_concatenate": [("cash_flows", """def cash_flows(p):
    s = subscribers(p).astype(np.float32)
    monthly = s * np.float32(p["price"] - p["variable_cost"]) - np.float32(p["fixed_cost_per_month"] + p["new_per_month"] * p["cac"])
    return np.concatenate([np.array([-p["one_off_cost"]], dtype=np.float32), monthly])
""")],
    "break_even_cumsum_numpy_int": [("break_even_month", """def break_even_month(flows):
    reached = np.cumsum(flows) >= 0
    return np.argmax(reached) if reached.any() else None
""")],
    "ltv_as_a_long_series": [("ltv_to_cac", """def ltv_to_cac(p):
    c, r = monthly_churn(p["annual_churn"]), monthly_rate(p["annual_discount_rate"])
    t = np.arange(1, 5001)
    ltv = np.sum((p["price"] - p["variable_cost"]) * (1 - c) ** (t - 1) / (1 + r) ** t)
    return ltv / p["cac"]
""")],
    "npv_loop_annual_exponent_and_warning": [("npv", """import warnings


def discount_factor(annual_rate, month):
    return (1 + annual_rate) ** (-month / 12)


def npv(flows, annual_discount_rate):
    value = 0.0
    for month, flow in enumerate(flows):
        value += flow * discount_factor(annual_discount_rate, month)
    if value < 0:
        warnings.warn("this project destroys value")
    return value
""")],
    "payback_with_helper_and_print": [("cac_payback_months", """def unit_margin(p):
    return p["price"] - p["variable_cost"]


def cac_payback_months(p):
    months = p["cac"] / unit_margin(p)
    print(f"payback: {months:.2f} months")
    return months
""")],
}

EXTRA_CELLS = {
    "extra_plot_cells": [
        ("subscribers", """import matplotlib.pyplot as plt

plt.plot(subscribers(BASE))
plt.xlabel("month"); plt.ylabel("subscribers")
plt.show()
"""),
        ("cash_flows", """print(np.cumsum(cash_flows(BASE))[:6])"""),
    ],
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
    for student, answers in DIFFERENT_BUT_CORRECT.items():
        nb = source
        for cell_id, code in answers:
            nb = with_answer(nb, cell_id, code)
        submissions[student] = nb
    for student, cells in EXTRA_CELLS.items():
        nb = source
        for after, code in cells:
            nb = with_extra_cell(nb, after, code)
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


@pytest.mark.parametrize("student", sorted(DIFFERENT_BUT_CORRECT) + sorted(EXTRA_CELLS))
def test_correct_work_written_differently_gets_full_marks(graded, student):
    scores, points = graded
    assert {cell: scores[student][cell] for cell in points} == points


def test_there_are_enough_cases():
    assert len(DIFFERENT_BUT_CORRECT) + len(EXTRA_CELLS) >= 8
    assert len(WRONG_MODELS) >= 4 + 8
