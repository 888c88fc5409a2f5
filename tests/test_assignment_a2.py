"""Tests of the tests of assignment A2 (LoRA): the solution gets full marks, the blank release gets
zero, and each typical wrong implementation loses exactly the points of the test that catches it.

All submissions are graded in one autograde call (one course, one gradebook)."""

from __future__ import annotations

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

ASSIGNMENT = "a2_lora"
NOTEBOOK = "a2_lora.ipynb"

POINTS = {
    "test_parameter_count": 2,
    "test_zero_start": 1,
    "test_scaling": 2,
    "test_only_adapters_and_head_train": 2,
    "test_merge": 2,
    "test_loss_falls": 1,
}
MANUAL = {"written_answer": 5}

# name: (text in the solution, its wrong replacement, the test cells that must fail)
WRONG = {
    "unscaled_adapter": (
        "        self.scaling = alpha / r\n",
        "        self.scaling = 1.0\n",
        {"test_scaling"},
    ),
    "unscaled_forward_only": (
        "return self.base(x) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)",
        "return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T)",
        {"test_scaling", "test_merge"},
    ),
    "base_left_trainable": (
        "for p in self.base.parameters():\n            p.requires_grad_(False)",
        "for p in self.base.parameters():\n            p.requires_grad_(True)",
        {"test_only_adapters_and_head_train"},
    ),
    "B_not_zero": (
        "self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))",
        "self.lora_B = nn.Parameter(torch.randn(base.out_features, r))",
        {"test_zero_start"},
    ),
    "merge_unscaled": (
        "merged.weight.copy_(self.base.weight + self.scaling * (self.lora_B @ self.lora_A))",
        "merged.weight.copy_(self.base.weight + self.lora_B @ self.lora_A)",
        {"test_merge"},
    ),
    "step_never_updates": (
        "    optimizer.step()\n    return loss.item()",
        "    return loss.item()",
        {"test_loss_falls"},
    ),
}


def test_source_declares_the_stated_points():
    nb = source_notebook(ASSIGNMENT, NOTEBOOK)
    graded = {
        cell.metadata["nbgrader"]["grade_id"]: cell.metadata["nbgrader"]["points"]
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
    }
    assert graded == {**POINTS, **MANUAL}
    assert f"Total: {sum(graded.values())} points" in nb.cells[0].source
    assert sum(1 for c in nb.cells if "parameters" in c.metadata.get("tags", [])) == 1


@pytest.mark.slow
def test_autograde_scores_each_implementation_as_intended(tmp_path):
    course = make_course(tmp_path)
    generate(course, ASSIGNMENT)

    released = released_notebook(course, ASSIGNMENT, NOTEBOOK)
    released_text = nbformat.writes(released)
    assert "BEGIN HIDDEN TESTS" not in released_text and "BEGIN SOLUTION" not in released_text
    assert "self.lora_B @ self.lora_A" not in released_text  # solution code is gone
    assert "Model answer" not in released_text

    solution = source_notebook(ASSIGNMENT, NOTEBOOK)
    submissions = {"solution": solution, "blank": released}
    for name, (old, new, _) in WRONG.items():
        submissions[name] = replace_in_solution(solution, old, new)
    for student, nb in submissions.items():
        submit_directly(course, ASSIGNMENT, student, {NOTEBOOK: nb})

    scores = autograde_scores(course, ASSIGNMENT, list(submissions))

    def auto(student):
        return {cell: scores[student][cell] for cell in POINTS}

    assert auto("solution") == POINTS
    assert scores["solution"]["written_answer"] is None  # graded by hand
    assert sum(auto("blank").values()) == 0
    for name, (_, _, failing) in WRONG.items():
        expected = {cell: 0 if cell in failing else points for cell, points in POINTS.items()}
        assert auto(name) == expected, name
