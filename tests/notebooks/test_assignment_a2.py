"""Tests of the tests of assignment A2 (LoRA): the solution gets full marks, the blank release gets
zero, correct answers written differently get full marks, and each plausible wrong implementation
loses exactly the points of the test that catches it.

All submissions are graded in one autograde call (one course, one gradebook)."""

from __future__ import annotations

import nbformat
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

ASSIGNMENT = "a2_lora"
NOTEBOOK = "a2_lora.ipynb"

POINTS = {
    "test_parameter_count": 2,
    "test_zero_start": 1,
    "test_scaling": 2,
    "test_only_adapters_and_head_train": 3,
    "test_merge": 3,
    "test_training_step": 4,
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
    # The base layer left trainable inside LoRALinear (caught where LoRALinear's parameters are
    # counted; prepare_lora_model's own test uses a reference LoRALinear).
    "base_left_trainable": (
        "for p in self.base.parameters():\n            p.requires_grad_(False)",
        "for p in self.base.parameters():\n            p.requires_grad_(True)",
        {"test_parameter_count"},
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
        {"test_training_step"},
    ),
    # --- plausible mistakes added with the "fair to correct work" review (issue 19) ---
    # Gradients never cleared: they add up from the second step on (Adam alone hides it).
    "step_never_clears_gradients": (
        "    optimizer.zero_grad()\n    loss.backward()",
        "    loss.backward()",
        {"test_training_step"},
    ),
    # Gradients cleared after backward and before the step: the step does nothing.
    "zero_grad_between_backward_and_step": (
        "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()",
        "    loss.backward()\n    optimizer.zero_grad()\n    optimizer.step()",
        {"test_training_step"},
    ),
    # Returns the loss after the update instead of the one the step was computed from.
    "returns_loss_after_update": (
        "    optimizer.step()\n    return loss.item()",
        "    optimizer.step()\n    return nn.functional.cross_entropy(model(X), y).item()",
        {"test_training_step"},
    ),
    # Returns the loss tensor, not a Python float.
    "returns_a_tensor": (
        "    optimizer.step()\n    return loss.item()",
        "    optimizer.step()\n    return loss.detach()",
        {"test_training_step"},
    ),
    # Only the targets' base layers get frozen (by LoRALinear): a layer that is not a target stays trainable.
    "non_target_layers_left_trainable": (
        "    for p in model.parameters():\n        p.requires_grad_(False)\n    for name in target_names:",
        "    for name in target_names:",
        {"test_only_adapters_and_head_train"},
    ),
    # The head is frozen along with everything else.
    "head_frozen": (
        "    for p in model.head.parameters():\n        p.requires_grad_(True)\n",
        "",
        {"test_only_adapters_and_head_train"},
    ),
    # Both matrices start at zero: the layer starts right but can never learn (no gradient reaches A or B).
    "A_zero_too": (
        "        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))\n",
        "        nn.init.zeros_(self.lora_A)\n",
        {"test_zero_start"},
    ),
    # alpha used as the scale, without dividing by the rank.
    "scaling_without_rank": (
        "        self.scaling = alpha / r\n",
        "        self.scaling = alpha\n",
        {"test_scaling"},
    ),
    # The merged layer drops the bias.
    "merge_drops_bias": (
        "merged = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)",
        "merged = nn.Linear(self.base.in_features, self.base.out_features, bias=False)",
        {"test_merge"},
    ),
    # The update B A transposed: right only for square layers.
    "merge_transposed_delta": (
        "merged.weight.copy_(self.base.weight + self.scaling * (self.lora_B @ self.lora_A))",
        "merged.weight.copy_(self.base.weight + self.scaling * (self.lora_A.T @ self.lora_B.T))",
        {"test_merge"},
    ),
    # A LoRALinear that is left unwritten, or whose forward crashes, costs only the LoRALinear cells:
    # prepare_lora_model's and training_step's tests swap in a reference layer when graded.
    "lora_linear_left_blank": (
        "        self.base = base\n        for p in self.base.parameters():",
        "        raise NotImplementedError()\n        for p in self.base.parameters():",
        {"test_parameter_count", "test_zero_start", "test_scaling", "test_merge"},
    ),
    "forward_crashes": (
        "return self.base(x) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)",
        "return self.base(x) + self.scaling * (x @ self.lora_A @ self.lora_B)",
        {"test_zero_start", "test_scaling", "test_merge"},
    ),
    # Only the base weight is frozen; its bias still trains.
    "base_bias_trainable": (
        "for p in self.base.parameters():\n            p.requires_grad_(False)",
        "self.base.weight.requires_grad_(False)",
        {"test_parameter_count"},
    ),
}

# Correct answers written differently: (answer cell, its whole new source) pairs; must score full marks.
LORA_WITH_DROPOUT = '''class LoRALinear(nn.Module):
    """LoRA with adapter dropout on the low-rank path, as in the paper and peft."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.1):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling

    def merge(self):
        merged = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        with torch.no_grad():
            merged.weight.copy_(self.base.weight + self.scaling * self.lora_B @ self.lora_A)
            if self.base.bias is not None:
                merged.bias.copy_(self.base.bias)
        return merged
'''

LORA_FUNCTIONAL = '''import copy
import torch.nn.functional as F


class LoRALinear(nn.Module):
    """The adapted weight formed on the fly with F.linear; merge() deep-copies the base layer."""

    def __init__(self, base, r, alpha):
        super().__init__()
        for p in base.parameters():
            p.requires_grad = False
        self.base, self.r, self.alpha = base, r, alpha
        self.scaling = alpha / r
        A = torch.empty(r, base.in_features)
        nn.init.kaiming_uniform_(A, a=math.sqrt(5))
        self.lora_A = nn.Parameter(A)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))

    def delta(self):
        return self.scaling * self.lora_B @ self.lora_A

    def forward(self, x):
        return F.linear(x, self.base.weight + self.delta(), self.base.bias)

    def merge(self):
        merged = copy.deepcopy(self.base)
        with torch.no_grad():
            merged.weight += self.delta()
        return merged
'''

LORA_EINSUM_FLOAT64_MERGE_WARNING = '''import warnings


class LoRALinear(nn.Module):
    """einsum in forward; merge computed in float64 and built with a tensor copy that makes PyTorch
    print a UserWarning; a warning of our own for large scales (warnings must not cost points)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base = base
        self.base.weight.requires_grad_(False)
        if self.base.bias is not None:
            self.base.bias.requires_grad_(False)
        if alpha / r > 4:
            warnings.warn(f"LoRA scale alpha/r = {alpha / r:g} is large")
        self.scaling = alpha / r
        self.lora_A = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(r, base.in_features), a=math.sqrt(5)))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))

    def forward(self, x):
        return self.base(x) + self.scaling * torch.einsum("ni,ri,or->no", x, self.lora_A, self.lora_B)

    def merge(self):
        W = self.base.weight.double() + self.scaling * (self.lora_B.double() @ self.lora_A.double())
        merged = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None)
        merged.weight = nn.Parameter(torch.tensor(W.float()), requires_grad=False)
        if self.base.bias is not None:
            merged.bias = nn.Parameter(self.base.bias.detach().clone())
        return merged
'''

PREPARE_BY_NAME = '''def prepare_lora_model(model, target_names, r, alpha):
    for name in target_names:
        setattr(model, name, LoRALinear(getattr(model, name), r, alpha))
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name or name.startswith("head.")
    return model
'''

PREPARE_REQUIRES_GRAD_ = '''def prepare_lora_model(model, target_names, r, alpha):
    model.requires_grad_(False)
    for name in list(target_names):
        model._modules[name] = LoRALinear(model._modules[name], r=r, alpha=alpha)
    model.head.requires_grad_(True)
    print("trainable:", [n for n, p in model.named_parameters() if p.requires_grad])
    return model
'''

STEP_TRAIN_MODE_SET_TO_NONE = '''loss_fn = nn.CrossEntropyLoss()


def training_step(model, optimizer, X, y):
    model.train()
    loss = loss_fn(model(X), y)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
'''

STEP_LOG_SOFTMAX_NLL = '''import torch.nn.functional as F


def training_step(model, optimizer, X, y):
    model.zero_grad()
    log_probs = F.log_softmax(model(X), dim=1)
    loss = F.nll_loss(log_probs, y)
    loss.backward()
    optimizer.step()
    return loss.item()
'''

DIFFERENT_BUT_CORRECT = {
    "adapter_dropout": [("lora_linear", LORA_WITH_DROPOUT)],
    "functional_forward_deepcopy_merge": [("lora_linear", LORA_FUNCTIONAL)],
    "einsum_float64_merge_and_warnings": [("lora_linear", LORA_EINSUM_FLOAT64_MERGE_WARNING)],
    "freeze_by_parameter_name": [("prepare_lora_model", PREPARE_BY_NAME)],
    "requires_grad_and_modules_dict_with_print": [("prepare_lora_model", PREPARE_REQUIRES_GRAD_)],
    "train_mode_and_zero_grad_after_step": [("training_step", STEP_TRAIN_MODE_SET_TO_NONE)],
    "log_softmax_nll_and_model_zero_grad": [("training_step", STEP_LOG_SOFTMAX_NLL)],
    # Dropout in the layer and a step that switches to training mode: the step is still exact,
    # because training_step's test uses a reference LoRALinear.
    "dropout_with_train_mode_step": [("lora_linear", LORA_WITH_DROPOUT), ("training_step", STEP_TRAIN_MODE_SET_TO_NONE)],
}

EXTRA_CELLS = {
    "extra_prints_and_a_plot": [
        ("lora_linear", """import matplotlib.pyplot as plt

demo = LoRALinear(nn.Linear(16, 16), r=4, alpha=8)
print("adapter numbers:", demo.lora_A.numel() + demo.lora_B.numel())
plt.bar(["base", "adapter"], [16 * 16 + 16, demo.lora_A.numel() + demo.lora_B.numel()])
plt.show()
"""),
    ],
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
    assert f"{sum(POINTS.values())} autograded" in nb.cells[0].source
    for cell, points in POINTS.items():
        assert f"| `{cell}` |" in nb.cells[0].source and nb.cells[0].source.split(f"| `{cell}` |")[1].split("\n")[0].rstrip().endswith(f"| {points} |")
    assert sum(1 for c in nb.cells if "parameters" in c.metadata.get("tags", [])) == 1


def test_there_are_enough_cases():
    assert len(DIFFERENT_BUT_CORRECT) + len(EXTRA_CELLS) >= 8
    assert len(WRONG) >= 6 + 8


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("a2_course"))
    generate(course, ASSIGNMENT)
    released = released_notebook(course, ASSIGNMENT, NOTEBOOK)
    solution = source_notebook(ASSIGNMENT, NOTEBOOK)
    submissions = {"solution": solution, "blank": released}
    for name, (old, new, _) in WRONG.items():
        submissions[name] = replace_in_solution(solution, old, new)
    for name, answers in DIFFERENT_BUT_CORRECT.items():
        nb = solution
        for cell_id, code in answers:
            nb = with_answer(nb, cell_id, code)
        submissions[name] = nb
    for name, cells in EXTRA_CELLS.items():
        nb = solution
        for after, code in cells:
            nb = with_extra_cell(nb, after, code)
        submissions[name] = nb
    for student, nb in submissions.items():
        submit_directly(course, ASSIGNMENT, student, {NOTEBOOK: nb})
    return {"released": released, "scores": autograde_scores(course, ASSIGNMENT, list(submissions))}


def _auto(graded, student):
    return {cell: graded["scores"][student][cell] for cell in POINTS}


@pytest.mark.slow
def test_release_hides_solutions_and_hidden_tests(graded):
    released_text = nbformat.writes(graded["released"])
    assert "BEGIN HIDDEN TESTS" not in released_text and "BEGIN SOLUTION" not in released_text
    assert "self.lora_B @ self.lora_A" not in released_text  # solution code is gone
    assert "_RefLoRALinear" not in released_text and "_ref_prepare_lora_model" not in released_text
    assert "Model answer" not in released_text


@pytest.mark.slow
def test_solution_full_marks_blank_zero(graded):
    assert _auto(graded, "solution") == POINTS
    assert graded["scores"]["solution"]["written_answer"] is None  # graded by hand
    assert sum(_auto(graded, "blank").values()) == 0


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(WRONG))
def test_wrong_implementation_loses_exactly_its_cells(graded, student):
    failing = WRONG[student][2]
    expected = {cell: 0 if cell in failing else points for cell, points in POINTS.items()}
    assert _auto(graded, student) == expected


@pytest.mark.slow
@pytest.mark.parametrize("student", sorted(DIFFERENT_BUT_CORRECT) + sorted(EXTRA_CELLS))
def test_correct_work_written_differently_scores_full_marks(graded, student):
    assert _auto(graded, student) == POINTS
