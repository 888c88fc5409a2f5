"""Tests of the tests of assignment A1 (backpropagation by hand), graded by real nbgrader.

One throw-away course grades, in a single autograde call, the source notebook (the solution),
the blank released notebook, one "student" per wrong implementation and one per correct answer
written differently. The solution must score full marks on every autograded cell, the blank release
zero, each wrong implementation must lose exactly the points of the one test cell meant to catch it —
no more (test cells are isolated from each other's units) and no less — and each correct answer
written differently (loops, an epsilon-guarded log, a validation loss every epoch, float32
minibatches, a warning raised on purpose, extra cells...) must score full marks.
"""

from __future__ import annotations

import re

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
    # --- plausible mistakes added with the "fair to correct work" review (issue 19) ---
    # The derivative at the kink taken as 1: the spec says 0, and the hidden tests hit exact zeros.
    "relu_backward_kink_as_one": (
        "relu", "dx = dout * (x > 0)", "dx = dout * (x >= 0)",
        "test_relu_backward",
    ),
    # ReLU forward that overwrites its input (the caller's array changes).
    "relu_forward_in_place": (
        "relu", "out = np.maximum(x, 0.0)", "out = np.maximum(x, 0.0, out=x)",
        "test_relu_forward",
    ),
    # Softmax normalised over the batch instead of over the classes.
    "softmax_wrong_axis": (
        "softmax", "return exps / exps.sum(axis=1, keepdims=True)", "return exps / exps.sum(axis=0, keepdims=True)",
        "test_softmax",
    ),
    # Shifting by the maximum of the whole batch instead of each row's: rows far apart underflow to 0/0.
    "softmax_global_max": (
        "softmax", "shifted = z - z.max(axis=1, keepdims=True)", "shifted = z - z.max()",
        "test_softmax",
    ),
    # The loss summed over the batch although the gradient is of the mean.
    "ce_loss_summed": (
        "softmax_cross_entropy", "loss = float(-np.mean(np.log(probs[np.arange(n), y])))",
        "loss = float(-np.sum(np.log(probs[np.arange(n), y])))",
        "test_softmax_cross_entropy",
    ),
    # dW averaged over the batch (the mean belongs to the loss, which already carries 1/N).
    "affine_dW_averaged": (
        "affine_backward", "dW = x.T @ dout", "dW = x.T @ dout / x.shape[0]",
        "test_affine_backward",
    ),
    # The cache leaves out the bias: the contract says (x, W, b).
    "affine_cache_without_bias": (
        "affine_forward", "cache = (x, W, b)\n    return out, cache", "cache = (x, W)\n    return out, cache",
        "test_affine_forward",
    ),
    # With y=None the network returns probabilities, not scores (predict still works: same argmax).
    "scores_path_returns_probabilities": (
        "two_layer_loss", "if y is None:\n        return scores", "if y is None:\n        return softmax(scores)",
        "test_two_layer_loss",
    ),
    # sgd_step builds new arrays instead of updating in place (the spec asks for in place).
    "sgd_not_in_place": (
        "sgd_and_train", "params[name] -= lr * grads[name]", "params[name] = params[name] - lr * grads[name]",
        "test_training",
    ),
    # The weights are updated, the biases never.
    "sgd_skips_biases": (
        "sgd_and_train", "for name in params:\n        params[name]", "for name in [k for k in params if k.startswith('W')]:\n        params[name]",
        "test_training",
    ),
    # Minibatches taken in the original order, ignoring the shuffled `order`.
    "train_ignores_shuffle": (
        "sgd_and_train", "batch = order[start:start + batch_size]", "batch = np.arange(start, min(start + batch_size, len(X)))",
        "test_training",
    ),
}


# Correct answers written differently from the solution: each must score full marks. name: list of
# (answer cell, its whole new source); EXTRA_CELLS adds a student's own cell after the named one.
DIFFERENT_BUT_CORRECT = {
    # Explicit Python loops instead of matrix products.
    "loops_not_vectorised": [
        ("affine_forward", """def affine_forward(x, W, b):
    n, d = x.shape
    m = W.shape[1]
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            total = b[j]
            for k in range(d):
                total += x[i, k] * W[k, j]
            out[i, j] = total
    return out, (x, W, b)
"""),
        ("affine_backward", """def affine_backward(dout, cache):
    x, W, b = cache
    dx, dW, db = np.zeros_like(x), np.zeros_like(W), np.zeros_like(b)
    for i in range(x.shape[0]):
        dx[i] = W @ dout[i]
        dW += np.outer(x[i], dout[i])
        db += dout[i]
    return dx, dW, db
"""),
    ],
    # An epsilon guard inside the log, a one-hot helper, and the gradient built in place.
    "eps_guarded_log_and_helper": [
        ("softmax_cross_entropy", """def one_hot(labels, num_classes):
    encoded = np.zeros((len(labels), num_classes))
    encoded[np.arange(len(labels)), labels] = 1.0
    return encoded


def softmax_cross_entropy(logits, y):
    probs = softmax(logits)
    picked = np.sum(probs * one_hot(y, logits.shape[1]), axis=1)
    loss = -np.mean(np.log(picked + 1e-12))
    return float(loss), (probs - one_hot(y, logits.shape[1])) / len(y)
"""),
    ],
    # Log-sum-exp form of the loss (another numerically sound formula), einsum layers.
    "logsumexp_and_einsum": [
        ("softmax_cross_entropy", """from scipy.special import logsumexp

def softmax_cross_entropy(logits, y):
    n = len(y)
    loss = np.mean(logsumexp(logits, axis=1) - logits[np.arange(n), y])
    grad = softmax(logits)
    grad[np.arange(n), y] -= 1
    grad /= n
    return float(loss), grad
"""),
        ("affine_forward", """def affine_forward(x, W, b):
    return np.einsum("nd,dm->nm", x, W) + b[np.newaxis, :], (x, W, b)
"""),
    ],
    # scipy's softmax (it shifts by the maximum itself), np.where and a masked copy for the ReLU.
    "library_softmax_and_where": [
        ("softmax", """import scipy.special

def softmax(z):
    return scipy.special.softmax(z, axis=1)
"""),
        ("relu", """def relu_forward(x):
    return np.where(x > 0, x, 0.0), x


def relu_backward(dout, cache):
    dx = np.array(dout, copy=True)
    dx[cache <= 0] = 0.0
    return dx
"""),
    ],
    # A training loop that also reports the validation loss each epoch (labelled calls that are
    # not SGD steps), uses float32 minibatches, and prints as it goes.
    "validation_loss_each_epoch_float32": [
        ("sgd_and_train", """def sgd_step(params, grads, lr):
    for name, grad in grads.items():
        np.subtract(params[name], lr * grad, out=params[name])


def train(X, y, X_val, y_val, *, hidden_size, lr, num_epochs, batch_size, seed=0, progress=False):
    rng = np.random.default_rng(seed)
    params = init_two_layer(X.shape[1], hidden_size, int(y.max()) + 1, rng)
    history = {"loss": [], "train_acc": [], "val_acc": [], "val_loss": []}
    for epoch in tqdm(range(num_epochs), desc="epochs", disable=not progress):
        order = rng.permutation(len(X))
        epoch_losses = []
        start = 0
        while start < len(X):
            batch = order[start:start + batch_size]
            loss, grads = two_layer_loss(X[batch].astype(np.float32), y[batch], params)
            sgd_step(params, grads, lr)
            epoch_losses.append(loss)
            start += batch_size
        val_loss, _ = two_layer_loss(X_val, y_val, params)
        history["val_loss"].append(val_loss)
        print(f"epoch {epoch + 1}: validation loss {val_loss:.3f}")
        history["loss"].append(float(np.mean(epoch_losses)))
        history["train_acc"].append(accuracy(params, X, y))
        history["val_acc"].append(accuracy(params, X_val, y_val))
    return params, history
"""),
    ],
    # Equal-sized minibatches with np.array_split (none larger than batch_size) and the loss of
    # the whole training set evaluated before the first step, as a "before" reference.
    "array_split_batches": [
        ("sgd_and_train", """def sgd_step(params, grads, lr):
    for name in params:
        params[name] -= lr * grads[name]


def train(X, y, X_val, y_val, *, hidden_size, lr, num_epochs, batch_size, seed=0, progress=False):
    rng = np.random.default_rng(seed)
    params = init_two_layer(X.shape[1], hidden_size, int(y.max()) + 1, rng)
    history = {"loss": [], "train_acc": [], "val_acc": []}
    initial_loss, _ = two_layer_loss(X, y, params)
    for epoch in tqdm(range(num_epochs), desc="epochs", disable=not progress):
        order = rng.permutation(len(X))
        epoch_losses = []
        for batch in np.array_split(order, -(-len(X) // batch_size)):
            loss, grads = two_layer_loss(X[batch], y[batch], params)
            sgd_step(params, grads, lr)
            epoch_losses.append(loss)
        history["loss"].append(float(np.mean(epoch_losses)))
        history["train_acc"].append(accuracy(params, X, y))
        history["val_acc"].append(accuracy(params, X_val, y_val))
    return params, history
"""),
    ],
    # The network written as a list of layers walked forwards and backwards; a ReLU that warns,
    # on purpose, when it meets an exact zero (the warning must not cost points).
    "layer_list_and_a_warning": [
        ("two_layer_loss", """def two_layer_loss(X, y, params):
    caches = []
    out = X
    for step in ("affine1", "relu", "affine2"):
        if step == "relu":
            out, cache = relu_forward(out)
        else:
            layer = step[-1]
            out, cache = affine_forward(out, params["W" + layer], params["b" + layer])
        caches.append((step, cache))
    if y is None:
        return out
    loss, grad = softmax_cross_entropy(out, y)
    grads = {}
    for step, cache in reversed(caches):
        if step == "relu":
            grad = relu_backward(grad, cache)
        else:
            layer = step[-1]
            grad, grads["W" + layer], grads["b" + layer] = affine_backward(grad, cache)
    return loss, grads
"""),
        ("relu", """import warnings

def relu_forward(x):
    return np.maximum(x, 0), x


def relu_backward(dout, cache):
    if np.any(cache == 0):
        warnings.warn("ReLU met an exact zero; taking the derivative 0 there")
    return dout * (cache > 0)
"""),
    ],
    # Other valid formulas: softmax through exp(z - logsumexp) and dx via np.dot with transposes.
    "exp_minus_logsumexp": [
        ("softmax", """def softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    log_norm = m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
    return np.exp(z - log_norm)
"""),
        ("affine_backward", """def affine_backward(dout, cache):
    x, W, _ = cache
    return np.dot(dout, W.T), np.dot(x.T, dout), np.sum(dout, axis=0)
"""),
    ],
}

EXTRA_CELLS = {
    # Extra cells of the student's own: prints and a plot between the graded parts.
    "extra_prints_and_plots": [
        ("relu", """xs = np.linspace(-3, 3, 61)
plt.plot(xs, relu_forward(xs)[0], label="ReLU")
plt.plot(xs, relu_backward(np.ones_like(xs), xs), label="its derivative")
plt.legend()
plt.show()
print("my ReLU looks right")
"""),
        ("softmax_cross_entropy", """print(softmax_cross_entropy(np.array([[2.0, 1.0, 0.1]]), np.array([0])))"""),
    ],
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
    for name, answers in DIFFERENT_BUT_CORRECT.items():
        nb = source
        for cell_id, code in answers:
            nb = with_answer(nb, cell_id, code)
        students[name] = nb
    for name, cells in EXTRA_CELLS.items():
        nb = source
        for after, code in cells:
            nb = with_extra_cell(nb, after, code)
        students[name] = nb
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


@pytest.mark.parametrize("student", sorted(DIFFERENT_BUT_CORRECT) + sorted(EXTRA_CELLS))
def test_correct_work_written_differently_scores_full_marks(graded, source, student):
    scores = graded["scores"][student]
    assert {cell: scores[cell] for cell in _test_cells(source)} == _test_cells(source)


def test_there_are_enough_cases():
    assert len(DIFFERENT_BUT_CORRECT) + len(EXTRA_CELLS) >= 8
    assert len(WRONG_IMPLEMENTATIONS) >= 17
