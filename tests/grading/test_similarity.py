"""grader similarity: planted cases on the real A1 and A3 notebooks.

Each submission is the assignment's real release (nbgrader generates it from assignments/source)
with its answer cells filled in. Two students per assignment wrote their own correct answers,
different from each other's and from the instructor's (``*_A``, ``*_B``; test_*_solutions_are_correct
runs them against the source's tests, hidden ones included). The planted copies are of student A:
exact, renamed and reordered, comments and layout changed, split across more cells. They must
score at or above the threshold; A against B, students who only have the starter code, and
students who both handed in the instructor's solution must stay below it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from grader.cli import main
from grader.grading.similarity import DEFAULT_THRESHOLD, compare_assignment, run_similarity
from grader.grading.similarity.output import results_path
from grader.grading.similarity.tokens import code_tokens
from grader.resources import ASSIGNMENTS_SOURCE_DIR
from tests.support.nbgrader_helpers import generate, make_course

A1, A3 = "a1_backprop", "a3_subscription_pnl"

# The answers, as the bodies of the source's BEGIN/END SOLUTION regions, in order, per grade id.
A1_A = {
    "affine_forward": ["""\
result = np.dot(x, W)
result = result + b[np.newaxis, :]
return result, (x, W, b)"""],
    "affine_backward": ["""\
inp, weights, bias = cache
grad_in = np.dot(dout, weights.T)
grad_w = np.dot(inp.T, dout)
grad_b = np.sum(dout, axis=0)
return grad_in, grad_w, grad_b"""],
    "relu": ["""\
activated = np.where(x > 0, x, 0.0)
return activated, x""", """\
mask = (cache > 0).astype(dout.dtype)
return dout * mask"""],
    "softmax": ["""\
largest = np.max(z, axis=1)[:, None]
e = np.exp(z - largest)
totals = np.sum(e, axis=1)[:, None]
return e / totals"""],
    "softmax_cross_entropy": ["""\
batch = logits.shape[0]
p = softmax(logits)
picked = p[np.arange(batch), y]
loss = -np.log(picked).sum() / batch
grad = p.copy()
grad[np.arange(batch), y] -= 1
grad /= batch
return float(loss), grad"""],
    "two_layer_loss": ["""\
z1, c1 = affine_forward(X, params["W1"], params["b1"])
a1, c_relu = relu_forward(z1)
out, c2 = affine_forward(a1, params["W2"], params["b2"])
if y is None:
    return out
loss, d_out = softmax_cross_entropy(out, y)
grads = {}
d_a1, grads["W2"], grads["b2"] = affine_backward(d_out, c2)
d_z1 = relu_backward(d_a1, c_relu)
_, grads["W1"], grads["b1"] = affine_backward(d_z1, c1)
return loss, grads"""],
    "sgd_and_train": ["""\
for key, value in grads.items():
    params[key] -= value * lr""", """\
n_batches = int(np.ceil(len(X) / batch_size))
for i in range(n_batches):
    idx = order[i * batch_size:(i + 1) * batch_size]
    batch_loss, batch_grads = two_layer_loss(X[idx], y[idx], params)
    sgd_step(params, batch_grads, lr)
    epoch_losses.append(batch_loss)"""],
    "written_answer": ["""\
**1.** Writing the loss as J = (y - y')^2 / 2, its derivative with respect to the prediction is
dJ/dy' = y' - y, not y - y'. Multiplying by the derivative of the sigmoid, the error term at the output
is delta = (y' - y) * sigma'(z). The article writes (y - y') * sigma'(z), which is minus the right
value, so every gradient it computes points the wrong way.

**2.** To first order, J(W + dW) = J(W) + grad J . dW. Gradient descent takes dW = -alpha grad J and so
changes J by -alpha |grad J|^2, a decrease. With the flipped sign the update is dW = +alpha grad J and J
grows by alpha |grad J|^2 each step: that is gradient ascent. The demo shows it: the corrected rule
brings the loss from 0.165 down to 0.013 in ten steps while the article's rule pushes it up to 0.458.

**3.** Compare the analytic gradient with a finite-difference estimate on a few weights. For the
article's formula the two have opposite signs, so the relative error is about 1 and the check fails
immediately. Watching the training loss climb from the first iterations is another giveaway."""],
}

A1_B = {
    "affine_forward": ["""\
N = x.shape[0]
out = x.reshape(N, -1).dot(W) + b
return out, (x, W, b)"""],
    "affine_backward": ["""\
x, W, b = cache
db = np.einsum("nm->m", dout)
dW = np.einsum("nd,nm->dm", x, dout)
dx = np.einsum("nm,dm->nd", dout, W)
return dx, dW, db"""],
    "relu": ["""\
out = x.copy()
out[out < 0] = 0
return out, x""", """\
dx = dout.copy()
dx[cache <= 0] = 0
return dx"""],
    "softmax": ["""\
result = np.empty_like(z, dtype=float)
for i, row in enumerate(z):
    ex = np.exp(row - row.max())
    result[i] = ex / ex.sum()
return result"""],
    "softmax_cross_entropy": ["""\
N, C = logits.shape
probs = softmax(logits)
targets = np.eye(C)[y]
loss = -np.sum(targets * np.log(probs)) / N
return float(loss), (probs - targets) / N"""],
    "two_layer_loss": ["""\
W1, b1, W2, b2 = (params[name] for name in ("W1", "b1", "W2", "b2"))
scores, caches = X, []
for W, b, relu in ((W1, b1, True), (W2, b2, False)):
    scores, cache = affine_forward(scores, W, b)
    caches.append(cache)
    if relu:
        scores, relu_cache = relu_forward(scores)
if y is None:
    return scores
loss, dscores = softmax_cross_entropy(scores, y)
dhidden, dW2, db2 = affine_backward(dscores, caches[1])
dX, dW1, db1 = affine_backward(relu_backward(dhidden, relu_cache), caches[0])
return loss, dict(W1=dW1, b1=db1, W2=dW2, b2=db2)"""],
    "sgd_and_train": ["""\
for name, g in grads.items():
    np.subtract(params[name], lr * g, out=params[name])""", """\
start = 0
while start < len(X):
    rows = order[start:start + batch_size]
    loss, grads = two_layer_loss(X[rows], y[rows], params)
    epoch_losses.append(loss)
    sgd_step(params, grads, lr)
    start += batch_size"""],
    "written_answer": ["""\
1) For a single example the cost is J = 0.5 (y - y')^2. By the chain rule dJ/dz = dJ/dy' * dy'/dz
= -(y - y') * sigmoid'(z). The minus sign comes from differentiating the square with respect to y'.
The article drops it, so its delta equals -dJ/dz and its weight gradient is the negative of the true one.

2) A small step changes the cost by approximately the dot product of the gradient with the step.
Stepping along minus the true gradient therefore lowers J by alpha times the squared gradient norm,
whereas the article's rule steps along plus the true gradient and raises J by the same amount, which
is ascent rather than descent. In the notebook demo J keeps decreasing with the fixed rule (0.165 to
0.013) and keeps increasing with the article's (0.165 to 0.458, towards 0.5).

3) A gradient check: perturb each weight by +h and -h, compute (J(w+h) - J(w-h)) / 2h in float64, and
compare with the backprop gradient. The article's gradient comes out with the opposite sign, a relative
error of 1, so the check flags it on the first try."""],
}

A3_A = {
    "monthly_churn": ["""\
retained_per_year = 1 - annual_churn
return 1 - retained_per_year ** (1 / 12)"""],
    "subscribers": ["""\
churn = monthly_churn(p["annual_churn"])
counts = []
current = p["initial_subscribers"]
for month in range(1, p["months"] + 1):
    current = current - churn * current + p["new_per_month"]
    counts.append(current)
return np.array(counts, dtype=float)"""],
    "cash_flows": ["""\
subs = subscribers(p)
unit_margin = p["price"] - p["variable_cost"]
acquisition = p["new_per_month"] * p["cac"]
monthly = subs * unit_margin - p["fixed_cost_per_month"] - acquisition
return np.concatenate(([-p["one_off_cost"]], monthly))"""],
    "break_even_month": ["""\
running = np.cumsum(flows)
positive = np.flatnonzero(running >= 0)
if len(positive) == 0:
    return None
return int(positive[0])"""],
    "ltv_to_cac": ["""\
per_month = p["price"] - p["variable_cost"]
decay = monthly_churn(p["annual_churn"]) + monthly_rate(p["annual_discount_rate"])
lifetime_value = per_month / decay
return lifetime_value / p["cac"]"""],
    "cac_payback_months": ["""\
unit_margin = p["price"] - p["variable_cost"]
months_needed = p["cac"] / unit_margin
return months_needed"""],
    "npv": ["""\
monthly = monthly_rate(annual_discount_rate)
factors = (1 + monthly) ** -np.arange(len(flows), dtype=float)
return float(np.dot(np.asarray(flows, dtype=float), factors))"""],
    "pricing_recommendation": ["""\
I recommend a monthly price of 140 CNY. In my sweep this is where NPV is highest: the business breaks
even around month 30 instead of month 38 at 100 CNY, the five-year NPV is roughly 2 M CNY higher, and
LTV/CAC is about 6, comfortably above the usual floor of 3. The higher margin per subscriber more than
pays for the slower growth and the extra churn the elasticity assumptions predict.

The assumption I trust least is the price elasticity of new sign-ups (the exponent 1.5), since nothing in
the case study measures it. I would test it with an A/B test on new visitors only, showing 100, 140 and
170 CNY for two months, and measure conversion and first-month churn for each arm, then refit the
exponents and rerun the sweep and the Monte Carlo.

If conversion at 140 CNY turned out more than a third lower than at 100 CNY, or churn in the first month
above 5 %, I would go back to 100 or 110 CNY."""],
}

A3_B = {
    "monthly_churn": ["""\
import math
return -math.expm1(math.log1p(-annual_churn) / 12)"""],
    "subscribers": ["""\
keep = 1.0 - monthly_churn(p["annual_churn"])
t = np.arange(1, p["months"] + 1)
steady = p["new_per_month"] / (1.0 - keep) if keep < 1.0 else 0.0
if keep == 1.0:
    return p["initial_subscribers"] + p["new_per_month"] * t
return steady + (p["initial_subscribers"] - steady) * keep ** t"""],
    "cash_flows": ["""\
flows = [-p["one_off_cost"]]
for active in subscribers(p):
    revenue = active * p["price"]
    costs = active * p["variable_cost"] + p["fixed_cost_per_month"] + p["cac"] * p["new_per_month"]
    flows.append(revenue - costs)
return np.array(flows)"""],
    "break_even_month": ["""\
cumulative = 0.0
month = 0
while month < len(flows):
    cumulative = cumulative + flows[month]
    if cumulative >= 0:
        break
    month += 1
else:
    return None
return month"""],
    "ltv_to_cac": ["""\
churn_m = monthly_churn(p["annual_churn"])
disc_m = monthly_rate(p["annual_discount_rate"])
return (p["price"] - p["variable_cost"]) / (p["cac"] * (churn_m + disc_m))"""],
    "cac_payback_months": ["""\
margin_per_month = p["price"] - p["variable_cost"]
if margin_per_month <= 0:
    return float("inf")
return p["cac"] / margin_per_month"""],
    "npv": ["""\
rate = monthly_rate(annual_discount_rate)
total = 0.0
for month, amount in enumerate(flows):
    total += amount / (1.0 + rate) ** month
return float(total)"""],
    "pricing_recommendation": ["""\
My model points to about 130 CNY a month. The NPV curve from the sweep is fairly flat between 120 and
150, so I picked the lower end to leave room for error in demand. At 130 the project pays back a few
months sooner than at today's 100, and the ratio of lifetime value to acquisition cost is near 5.5.

What worries me most is how much churn rises with price: the square-root rule is a guess. Before
changing the list price for everyone I would raise it for one region or one cohort of new customers
and compare their cancellations over the first quarter with a control group at 100.

If the higher-priced cohort cancels noticeably faster, say twice the base monthly rate, the NPV
advantage disappears and I would keep the current price."""],
}

STUB = re.compile(r"^([ \t]*)# YOUR CODE HERE\n[ \t]*raise NotImplementedError\(\)", re.MULTILINE)
TEXT_STUB = "YOUR ANSWER HERE"
# Cells that need a network, a GPU or minutes; they check nothing the answers decide.
NOT_RUN = {"torch_check", "run_training", "seed001_demo"}


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _text(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _indent(body: str, indent: str) -> str:
    return "\n".join(indent + line if line else line for line in body.splitlines())


def fill(notebook: dict, answers: dict[str, list[str]]) -> dict:
    """A copy of the released ``notebook`` with each answer cell's stubs replaced by ``answers``."""
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        bodies = answers.get(_grade_id(cell))
        if bodies is None:
            continue
        source = _text(cell)
        if cell["cell_type"] == "markdown":
            assert source.count(TEXT_STUB) == 1
            source = source.replace(TEXT_STUB, bodies[0])
        else:
            stubs = list(STUB.finditer(source))
            assert len(stubs) == len(bodies), (_grade_id(cell), len(stubs))
            for match, body in reversed(list(zip(stubs, bodies))):
                source = source[:match.start()] + _indent(body, match.group(1)) + source[match.end():]
        cell["source"] = source
    return notebook


def _answer_cells(notebook: dict):
    return [cell for cell in notebook["cells"] if cell.get("metadata", {}).get("nbgrader", {}).get("solution")]


def renamed_and_reordered(notebook: dict, names: dict[str, str]) -> dict:
    """Every name in ``names`` renamed in the answer cells; cells defining several functions
    define them in the opposite order."""
    notebook = json.loads(json.dumps(notebook))
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    for cell in _answer_cells(notebook):
        if cell["cell_type"] != "code":
            continue
        source = pattern.sub(lambda match: names[match.group()], _text(cell))
        functions = re.split(r"\n+(?=def )", source)
        cell["source"] = "\n\n\n".join(reversed(functions))
    return notebook


def restyled(notebook: dict) -> dict:
    """Comments added and changed, two-space indentation, other spacing, literals written otherwise;
    written answers re-wrapped."""
    notebook = json.loads(json.dumps(notebook))
    for cell in _answer_cells(notebook):
        source = _text(cell)
        if cell["cell_type"] == "markdown":
            cell["source"] = re.sub(r"(?<!\n)\n(?!\n)", " ", source).replace(". ", ".  ")
            continue
        lines = []
        for number, line in enumerate(source.splitlines()):
            stripped = line.lstrip(" ")
            indent = "  " * ((len(line) - len(stripped)) // 4)
            if stripped.startswith("#"):
                continue  # the starter's comments go
            if stripped and not stripped.startswith(('"""', "def ")) and number % 3 == 0:
                lines.append(f"{indent}# my step {number}: see the lecture notes")
            line = indent + stripped.replace(", ", ",").replace(" = ", "  =  ").replace("0.0", "0.")
            lines.append(line + ("  # ok" if stripped.startswith("return") else ""))
            if stripped.startswith("return"):
                lines.append("")
        cell["source"] = "\n".join(lines)
    return notebook


def split_into_more_cells(notebook: dict) -> dict:
    """Each answer cell defining several functions becomes one cell per function, and each written
    answer one cell per paragraph: the new cells have no nbgrader metadata, as Jupyter adds them."""
    notebook = json.loads(json.dumps(notebook))
    cells = []
    for cell in notebook["cells"]:
        if not cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            cells.append(cell)
            continue
        source = _text(cell)
        parts = re.split(r"\n+(?=def )", source) if cell["cell_type"] == "code" else source.split("\n\n")
        cell["source"] = parts[0]
        cells.append(cell)
        for part in parts[1:]:
            new = {"cell_type": cell["cell_type"], "metadata": {}, "source": part}
            if cell["cell_type"] == "code":
                new.update(execution_count=None, outputs=[])
            cells.append(new)
    notebook["cells"] = cells
    return notebook


def merged_cells(notebook: dict, first: str, second: str) -> dict:
    """The answer of ``second`` moved into ``first``'s cell; ``second``'s cell keeps its starter."""
    notebook = json.loads(json.dumps(notebook))
    by_id = {_grade_id(cell): cell for cell in notebook["cells"]}
    moved = _text(by_id[second])
    by_id[first]["source"] = _text(by_id[first]) + "\n\n\n" + moved
    by_id[second]["source"] = "# moved up, next to subscribers\n"
    return notebook


def source_answers(notebook: dict, assignment: str) -> dict:
    """The released notebook with the instructor's own answers put back (a leaked solution)."""
    source = json.loads((ASSIGNMENTS_SOURCE_DIR / assignment / f"{assignment}.ipynb").read_text())
    solutions = {_grade_id(cell): _text(cell) for cell in _answer_cells(source)}
    notebook = json.loads(json.dumps(notebook))
    for cell in _answer_cells(notebook):
        cell["source"] = solutions[_grade_id(cell)]
    return notebook


def submit(course_dir: Path, assignment: str, student: str, notebook: dict, name: str | None = None) -> Path:
    folder = course_dir / "submitted" / student / assignment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{assignment}.ipynb")
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


A1_RENAMES = {"result": "res", "inp": "xs", "weights": "Wt", "grad_in": "gx", "grad_w": "gW", "grad_b": "gb",
              "activated": "act", "mask": "gate", "largest": "m", "totals": "denominators", "batch": "nb",
              "picked": "p_true", "grad": "dz", "z1": "h_pre", "c1": "cache_one", "a1": "h", "c_relu": "rc",
              "c2": "cache_two", "d_out": "dz_out", "d_a1": "dh", "d_z1": "dh_pre", "key": "k", "value": "v",
              "n_batches": "steps", "idx": "sel", "batch_loss": "l", "batch_grads": "g"}
A3_RENAMES = {"retained_per_year": "keep", "churn": "c", "counts": "series", "current": "n", "subs": "s",
              "unit_margin": "margin", "acquisition": "spend", "running": "cum", "positive": "ok",
              "per_month": "m", "decay": "d", "lifetime_value": "ltv", "months_needed": "payback",
              "factors": "disc"}

PLANTED = ["copy_exact", "copy_renamed", "copy_restyled", "copy_split"]
# Pairs that must stay below the threshold.
INDEPENDENT = [("alice", "bob"), ("starter_1", "starter_2"), ("solution_1", "solution_2"), ("alice", "solution_1"),
               ("bob", "starter_1")]


def build_course(tmp_path: Path, assignment: str, student_a: dict, student_b: dict, renames: dict,
                 split=split_into_more_cells):
    course = make_course(tmp_path)
    release = generate(course, assignment)
    released = json.loads((release / f"{assignment}.ipynb").read_text())
    alice = fill(released, student_a)
    parameters = json.loads(json.dumps(released))
    for cell in parameters["cells"]:
        if not cell.get("metadata", {}).get("nbgrader") and cell["cell_type"] == "code":
            cell["source"] = re.sub(r"= (\d+)", r"= 1\1", _text(cell))  # a student's own settings
            break
    students = {
        "alice": alice, "bob": fill(released, student_b),
        "copy_exact": alice, "copy_renamed": renamed_and_reordered(alice, renames),
        "copy_restyled": restyled(alice), "copy_split": split(alice),
        "starter_1": released, "starter_2": parameters,
        "solution_1": source_answers(released, assignment), "solution_2": source_answers(released, assignment),
    }
    for student, notebook in students.items():
        submit(course.course_dir, assignment, student, notebook)
    return course, students


@pytest.fixture(scope="module")
def a1_course(tmp_path_factory):
    course, students = build_course(tmp_path_factory.mktemp("a1"), A1, A1_A, A1_B, A1_RENAMES)
    # Alice's folder also holds an earlier version of her notebook: still one document.
    submit(course.course_dir, A1, "alice", students["alice"], name=f"{A1}-Copy1.ipynb")
    return course, students


@pytest.fixture(scope="module")
def a3_course(tmp_path_factory):
    def split_and_merged(notebook):
        return split_into_more_cells(merged_cells(notebook, "subscribers", "cash_flows"))
    return build_course(tmp_path_factory.mktemp("a3"), A3, A3_A, A3_B, A3_RENAMES, split=split_and_merged)


def scores(result) -> dict[frozenset, float]:
    return {frozenset((pair.a.document.label, pair.b.document.label)): pair.score for pair in result.pairs}


@pytest.mark.slow  # generates the real release with nbgrader
@pytest.mark.parametrize("fixture", ["a1_course", "a3_course"])
def test_planted_copies_score_above_the_threshold_and_independent_work_below(fixture, request):
    course, _ = request.getfixturevalue(fixture)
    assignment = A1 if fixture == "a1_course" else A3
    result = compare_assignment(course_dir=course.course_dir, assignment_id=assignment)
    found = scores(result)
    for copy in PLANTED:
        assert found.get(frozenset(("alice", copy)), 0.0) >= DEFAULT_THRESHOLD, (copy, found)
    for pair in INDEPENDENT:
        assert found.get(frozenset(pair), 0.0) < DEFAULT_THRESHOLD, (pair, found)
    flagged = {frozenset((pair.a.document.label, pair.b.document.label)) for pair in result.flagged}
    copiers = {"alice", *PLANTED}
    assert flagged == {frozenset((x, y)) for x in copiers for y in copiers if x != y}
    # The starter and the instructor's solution were taken out: nothing of them is left to match.
    by_student = {prepared.document.student_id: prepared for prepared in result.students}
    assert by_student["starter_1"].answer_tokens == 0 and len(by_student["starter_1"].tokens) == 0
    assert by_student["solution_1"].solution_share == pytest.approx(1.0)
    # Alice's and Bob's own code meets the instructor's only in a few lines the assignment dictates.
    assert by_student["alice"].solution_share < 0.3 and by_student["bob"].solution_share < 0.3


@pytest.mark.slow  # generates the real release with nbgrader
def test_a_students_resubmission_is_not_compared_with_itself(a1_course):
    course, _ = a1_course
    result = compare_assignment(course_dir=course.course_dir, assignment_id=A1)
    assert sorted(prepared.document.student_id for prepared in result.students) == sorted(
        path.name for path in (course.course_dir / "submitted").iterdir())
    alice = next(prepared for prepared in result.students if prepared.document.student_id == "alice")
    assert {cell.notebook for cell in alice.document.cells} == {f"{A1}.ipynb"}  # not the -Copy1
    assert all(pair.a.document.student_id != pair.b.document.student_id for pair in result.pairs)


@pytest.mark.slow  # generates the real release with nbgrader
def test_corpus_of_an_earlier_term_is_compared_against_never_within(a1_course, tmp_path):
    course, students = a1_course
    earlier = tmp_path / "term-2025"
    submit(earlier, A1, "zed", students["bob"])  # bob handed in zed's answers from last year
    submit(earlier, A1, "zed_twin", students["bob"])  # identical in the corpus: never a pair
    submit(earlier, A1, "alice", students["alice"])  # alice retaking the course: her own work
    result = compare_assignment(course_dir=course.course_dir, assignment_id=A1, corpus=[earlier])
    assert len(result.corpus) == 3
    found = scores(result)
    corpus_label = f"zed ({earlier})"
    assert found[frozenset(("bob", corpus_label))] >= DEFAULT_THRESHOLD
    assert found[frozenset(("bob", f"zed_twin ({earlier})"))] >= DEFAULT_THRESHOLD
    for pair in result.pairs:
        assert not (pair.a.document.origin and pair.b.document.origin)
        assert pair.a.document.student_id != pair.b.document.student_id
    # A course directory works as a corpus too: its submitted/ folder is read.
    again = compare_assignment(course_dir=course.course_dir, assignment_id=A1, corpus=[course.course_dir])
    assert {p.document.student_id for p in again.corpus} == {p.document.student_id for p in result.students}
    assert all(pair.a.document.student_id != pair.b.document.student_id for pair in again.pairs)


@pytest.mark.slow  # generates the real release with nbgrader
def test_cli_prints_the_flagged_pairs_and_writes_the_html_and_json(a3_course, tmp_path, capsys):
    course, _ = a3_course
    out_dir = tmp_path / "reports"
    assert main(["--course-dir", str(course.course_dir), "similarity", A3, "--out-dir", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    html_path = out_dir / f"{A3}.html"
    assert f"report: {html_path}" in printed
    for copy in PLANTED:
        assert re.search(rf"^\s*\d\.\d\d  (alice  {copy}|{copy}  alice)$", printed, re.MULTILINE), printed
    assert "bob" not in printed and "starter_1" not in printed
    page = html_path.read_text()
    for copy in PLANTED:
        assert f"alice and {copy}" in page or f"{copy} and alice" in page
    # The matching passages are marked on both sides, from the student's own text.
    assert page.count("<mark") > 20 and "retained_per_year" in page and "keep" in page
    assert "<script" not in page
    data = json.loads(results_path(course.course_dir, A3).read_text())
    assert data["html"] == str(html_path) and data["submissions"] == 10
    assert data["students"]["copy_split"]["flagged"] and not data["students"]["bob"]["flagged"]
    assert data["students"]["copy_split"]["closest_to"]["student_id"] in {"alice", *PLANTED}


@pytest.mark.slow  # generates the real release with nbgrader
def test_report_has_a_similarity_section(a3_course, tmp_path):
    from nbgrader.api import Gradebook

    from grader.grading.report import write_report

    course, _ = a3_course
    run_similarity(course_dir=course.course_dir, assignment_id=A3)
    with Gradebook(course.gradebook_url, course_id=course.course_id) as gradebook:
        gradebook.update_or_create_assignment(A3)
    index = write_report(course_dir=course.course_dir, out_dir=tmp_path / "report")
    page = index.read_text()
    section = page[page.index('id="similarity"'):]
    assert "<td>copy_exact</td>" in section and "<td>bob</td>" not in section
    link = re.search(r'href="(similarity-[^"]+\.html)"', section).group(1)
    assert (tmp_path / "report" / link).read_text().count("<mark") > 20


def test_the_cli_states_the_default_threshold():
    from grader.cli.instructor import SIMILARITY_THRESHOLD

    assert SIMILARITY_THRESHOLD == DEFAULT_THRESHOLD


def test_tokens_ignore_names_comments_layout_and_literals():
    original = "def f(x, y):\n    total = x + y * 2.0  # add\n    return total\n"
    rewritten = "def g(a,b):\n  # sum them\n  s=a+b*3\n\n\n  return s"
    assert [t.text for t in code_tokens(original, 0)] == [t.text for t in code_tokens(rewritten, 0)]
    different = "def f(x, y):\n    return x.sum(axis=0) - y\n"
    assert [t.text for t in code_tokens(original, 0)] != [t.text for t in code_tokens(different, 0)]
    # Unfinished code and IPython magics still give tokens, with spans into the cell.
    broken = "%matplotlib inline\nfor i in range(3:\n    print('x'"
    tokens = code_tokens(broken, 0)
    assert [t.text for t in tokens][:4] == ["for", "V", "in", "range"]
    assert broken[tokens[0].start:tokens[0].end] == "for"


def _run_cells(notebook: dict) -> None:
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code" and _grade_id(cell) not in NOT_RUN:
            exec(compile(_text(cell), _grade_id(cell) or "cell", "exec"), namespace)


@pytest.mark.parametrize(("assignment", "answers"), [
    pytest.param(A1, A1_A, marks=pytest.mark.slow), pytest.param(A1, A1_B, marks=pytest.mark.slow), (A3, A3_A), (A3, A3_B)],
                         ids=["A1-alice", "A1-bob", "A3-alice", "A3-bob"])
def test_the_students_own_answers_are_correct(assignment, answers, monkeypatch):
    """Each hand-written answer passes the source's tests, hidden ones included: the independent
    solutions really are solutions."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = json.loads((ASSIGNMENTS_SOURCE_DIR / assignment / f"{assignment}.ipynb").read_text())
    region = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION", re.MULTILINE | re.DOTALL)
    for cell in source["cells"]:
        bodies = answers.get(_grade_id(cell))
        if bodies is not None and cell["cell_type"] == "code":
            matches = list(region.finditer(_text(cell)))
            assert len(matches) == len(bodies)
            text = _text(cell)
            for match, body in reversed(list(zip(matches, bodies))):
                text = text[:match.start()] + _indent(body, match.group(1)) + text[match.end():]
            cell["source"] = text
    _run_cells(source)
