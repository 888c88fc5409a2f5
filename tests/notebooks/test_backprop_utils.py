"""courses/01_backprop/backprop_utils.py: every backward rule against centred differences and
against torch.autograd, in float64, plus the properties the lessons rely on."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from grader.resources import COURSES_DIR

_spec = importlib.util.spec_from_file_location("backprop_utils", COURSES_DIR / "01_backprop" / "backprop_utils.py")
bu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bu)

TOLERANCE = 1e-7  # the lessons' gradient-check threshold (float64, centred differences)
H = 1e-6


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def away_from_zero(rng, shape):
    """Random values with |z| >= 0.1, so a centred difference never straddles ReLU's kink."""
    Z = rng.standard_normal(shape)
    return np.where(np.abs(Z) < 0.1, 0.1 * np.sign(Z) + 0.1 * (Z == 0), Z)


# ---------------------------------------------------------------------------- lesson 01


def test_init_mlp_shapes_dtype_and_count():
    params = bu.init_mlp([4, 6, 3], seed=0)
    assert list(params) == ["W1", "b1", "W2", "b2"]
    assert params["W1"].shape == (4, 6) and params["b1"].shape == (6,)
    assert params["W2"].shape == (6, 3) and params["b2"].shape == (3,)
    assert all(p.dtype == np.float64 for p in params.values())
    assert bu.count_parameters(params) == 4 * 6 + 6 + 6 * 3 + 3
    assert bu.num_layers(params) == 2
    assert bu.init_mlp([4, 6, 3], seed=0, dtype=np.float32)["W1"].dtype == np.float32
    np.testing.assert_array_equal(params["W1"], bu.init_mlp([4, 6, 3], seed=0)["W1"])  # reproducible


def test_softmax_rows_are_distributions_and_stable(rng):
    logits = rng.standard_normal((5, 4))
    P = bu.softmax(logits)
    np.testing.assert_allclose(P.sum(axis=1), 1.0)
    np.testing.assert_allclose(bu.softmax(logits + 100.0), P)
    np.testing.assert_allclose(np.exp(bu.log_softmax(logits)), P)
    big = bu.softmax(np.array([[1000.0, 999.0, -1000.0]]))
    assert np.isfinite(big).all()
    np.testing.assert_allclose(big[0, :2], [1 / (1 + np.e**-1), 1 / (1 + np.e)])


def test_sigmoid_does_not_overflow():
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        values = bu.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0])


def test_cross_entropy_values(rng):
    y = rng.integers(0, 7, size=9)
    assert np.isclose(bu.softmax_cross_entropy(np.zeros((9, 7)), y), np.log(7))
    logits = rng.standard_normal((9, 7))
    expected = -np.mean(np.log(bu.softmax(logits)[np.arange(9), y]))
    assert np.isclose(bu.softmax_cross_entropy(logits, y), expected)


def test_mse_loss_is_half_sum_over_outputs_mean_over_batch(rng):
    y_hat, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    assert np.isclose(bu.mse_loss(y_hat, y), 0.5 * np.sum((y_hat - y) ** 2) / 6)
    assert bu.mse_loss(y, y) == 0.0


def test_mlp_forward_matches_explicit_formula(rng):
    params = bu.init_mlp([4, 5, 3], seed=1)
    X = rng.standard_normal((7, 4))
    y_hat, cache = bu.mlp_forward(params, X, activation="tanh")
    expected = np.tanh(X @ params["W1"] + params["b1"]) @ params["W2"] + params["b2"]
    np.testing.assert_allclose(y_hat, expected)
    assert len(cache) == 2 and cache[0][0] is X


def test_load_digits_split_sizes_strata_and_training_statistics():
    data = bu.load_digits_split(seed=0)
    sizes = [len(data[f"y_{split}"]) for split in ("train", "val", "test")]
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 360
    for split in ("train", "val", "test"):
        assert data[f"X_{split}"].shape == (len(data[f"y_{split}"]), 64)
        assert set(np.unique(data[f"y_{split}"])) == set(range(10))  # stratified: every class present
    # Standardised with training statistics: the training mean is 0, the held-out means are not forced to be.
    np.testing.assert_allclose(data["X_train"].mean(axis=0), 0.0, atol=1e-12)
    raw = data["X_test"] * data["pixel_scale"] + data["pixel_mean"]  # undoes the standardisation
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-9)
    assert np.isclose(raw.min(), 0) and np.isclose(raw.max(), 16)
    small = bu.load_digits_split(seed=0, n_samples=300)
    assert sum(len(small[f"y_{split}"]) for split in ("train", "val", "test")) == 300


# ---------------------------------------------------------------------------- lesson 02


def test_rel_error():
    a = np.array([1.0, -2.0, 3.0])
    assert bu.rel_error(a, a) == 0.0
    assert np.isclose(bu.rel_error(a, -a), 1.0)
    assert bu.rel_error(np.zeros(3), np.zeros(3)) == 0.0


def test_numerical_gradient_restores_input_and_is_accurate(rng):
    x = rng.standard_normal((3, 4))
    saved = x.copy()
    grad = bu.numerical_gradient(lambda: float(np.sum(np.sin(x))), x, H)
    np.testing.assert_array_equal(x, saved)
    assert bu.rel_error(grad, np.cos(x)) < TOLERANCE


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid"])
def test_activation_backward_matches_numerical(name, rng):
    Z = away_from_zero(rng, (6, 5))
    G = rng.standard_normal((6, 5))
    forward, backward = bu.ACTIVATIONS[name], bu.ACTIVATION_BACKWARDS[name]
    numeric = bu.numerical_gradient(lambda: float(np.sum(forward(Z) * G)), Z, H)
    assert bu.rel_error(backward(G, Z), numeric) < TOLERANCE


def test_affine_backward_matches_numerical(rng):
    A, W, b = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    G = rng.standard_normal((6, 3))
    dA, dW, db = bu.affine_backward(G, A, W)
    J = lambda: float(np.sum(bu.affine_forward(A, W, b) * G))  # noqa: E731
    for analytic, variable in ((dA, A), (dW, W), (db, b)):
        assert analytic.shape == variable.shape
        assert bu.rel_error(analytic, bu.numerical_gradient(J, variable, H)) < TOLERANCE


def test_loss_backwards_match_numerical(rng):
    logits, y = rng.standard_normal((6, 4)), rng.integers(0, 4, size=6)
    numeric = bu.numerical_gradient(lambda: bu.softmax_cross_entropy(logits, y), logits, H)
    assert bu.rel_error(bu.softmax_cross_entropy_backward(logits, y), numeric) < TOLERANCE
    target = rng.standard_normal((6, 4))
    numeric = bu.numerical_gradient(lambda: bu.mse_loss(logits, target), logits, H)
    assert bu.rel_error(bu.mse_backward(logits, target), numeric) < TOLERANCE


CONFIGS = [
    ("relu", None, "cross_entropy"),
    ("tanh", None, "cross_entropy"),
    ("sigmoid", None, "cross_entropy"),
    ("tanh", None, "mse"),
    ("relu", "sigmoid", "mse"),
    ("sigmoid", "tanh", "mse"),
]


def _problem(rng, loss, sizes=(5, 6, 4, 3), N=7):
    params = bu.init_mlp(list(sizes), seed=int(rng.integers(1 << 30)))
    for name in params:
        if name.startswith("b"):
            params[name] = 0.1 * rng.standard_normal(params[name].shape)
    X = rng.standard_normal((N, sizes[0]))
    y = rng.integers(0, sizes[-1], size=N) if loss == "cross_entropy" else rng.standard_normal((N, sizes[-1]))
    return params, X, y


@pytest.mark.parametrize("activation,output_activation,loss", CONFIGS)
def test_mlp_gradients_match_numerical(activation, output_activation, loss, rng):
    params, X, y = _problem(rng, loss)
    kwargs = dict(activation=activation, output_activation=output_activation)
    _, grads = bu.mlp_loss_and_grads(params, X, y, loss=loss, **kwargs)
    loss_fn = bu.LOSSES[loss][0]
    errors = bu.gradient_check(params, lambda: loss_fn(bu.mlp_forward(params, X, **kwargs)[0], y), grads, H)
    assert set(errors) == set(params)
    assert max(errors.values()) < TOLERANCE, errors


@pytest.mark.parametrize("activation,output_activation,loss", CONFIGS)
def test_mlp_gradients_match_torch_autograd(activation, output_activation, loss, rng):
    torch = pytest.importorskip("torch")
    params, X, y = _problem(rng, loss)
    loss_value, grads = bu.mlp_loss_and_grads(
        params, X, y, activation=activation, output_activation=output_activation, loss=loss
    )
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    A = torch.tensor(X)
    L = bu.num_layers(params)
    for layer in range(1, L + 1):
        A = A @ t[f"W{layer}"] + t[f"b{layer}"]
        name = activation if layer < L else output_activation
        if name is not None:
            A = getattr(torch, name)(A)
    if loss == "cross_entropy":
        J = torch.nn.functional.cross_entropy(A, torch.tensor(y))
    else:
        J = 0.5 * ((A - torch.tensor(y)) ** 2).sum() / X.shape[0]
    J.backward()
    assert abs(J.item() - loss_value) < 1e-12
    for name in params:
        np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=1e-10, atol=1e-12)


def test_wrong_sign_gradient_raises_the_loss():
    """Lesson 02's claim about seed 001 §4.3: stepping along +gradient climbs the loss."""
    x, y = np.array([[1.0, 2.0, 3.0]]), np.array([[1.0, 0.0, 1.0]])
    params = bu.init_mlp([3, 4, 3], seed=0)
    kwargs = dict(activation="relu", output_activation="relu", loss="mse")
    J0, grads = bu.mlp_loss_and_grads(params, x, y, **kwargs)
    up = {k: params[k] + 0.01 * grads[k] for k in params}
    down = {k: params[k] - 0.01 * grads[k] for k in params}
    assert bu.mlp_loss_and_grads(up, x, y, **kwargs)[0] > J0 > bu.mlp_loss_and_grads(down, x, y, **kwargs)[0]


# ---------------------------------------------------------------------------- lessons 04-05


def test_pick_device():
    torch = pytest.importorskip("torch")
    assert bu.pick_device("cpu") == "cpu"
    assert bu.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            bu.pick_device("cuda")


def test_accuracy_and_chance_interval():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert bu.accuracy(logits, np.array([1, 0, 0])) == pytest.approx(2 / 3)
    low, high = bu.chance_interval(10000, 0.5, z=3.0)
    assert (low, high) == pytest.approx((0.485, 0.515))
