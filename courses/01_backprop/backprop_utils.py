"""Helpers shared by the lessons of module 1 (Backpropagation).

Conventions used in every lesson: a batch holds one example per *row*.

====================  ===============  =========================================
name                  shape            meaning
====================  ===============  =========================================
``X``                 (N, D)           N inputs with D features each
``y``                 (N,) or (N, C)   class labels (ints) or regression targets
``W{l}``              (fan_in, fan_out) weights of layer l
``b{l}``              (fan_out,)       bias of layer l
``Z{l}``              (N, fan_out)     pre-activation ``A{l-1} @ W{l} + b{l}``
``A{l}``              (N, fan_out)     activation ``sigma(Z{l})``, ``A0 = X``
``y_hat``             (N, C)           network output (logits for classification)
====================  ===============  =========================================

The seed article writes ``z = W x + b`` with one column vector ``x``; its ``W`` is our ``W.T``.
Every function is vectorised over the batch (no per-example Python loops). Each docstring names the
lesson that introduces the function.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

# --------------------------------------------------------------------------------------------
# Lesson 01: forward pass and losses
# --------------------------------------------------------------------------------------------


def init_mlp(layer_sizes, *, seed=0, weight_scale=None, dtype=np.float64):
    """Lesson 01. Random parameters ``{"W1", "b1", ..., "WL", "bL"}`` of an MLP.

    ``layer_sizes = [D, H1, ..., C]``. Weights are Gaussian with standard deviation
    ``weight_scale`` (default ``sqrt(2 / fan_in)``, He initialisation, suited to ReLU); biases
    start at zero.
    """
    rng = np.random.default_rng(seed)
    params = {}
    for layer, (fan_in, fan_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:]), start=1):
        scale = np.sqrt(2.0 / fan_in) if weight_scale is None else weight_scale
        params[f"W{layer}"] = (scale * rng.standard_normal((fan_in, fan_out))).astype(dtype)
        params[f"b{layer}"] = np.zeros(fan_out, dtype=dtype)
    return params


def count_parameters(params):
    """Lesson 01. Total number of scalars in a parameter dict."""
    return int(sum(p.size for p in params.values()))


def affine_forward(X, W, b):
    """Lesson 01. ``Z = X @ W + b``: (N, fan_in) @ (fan_in, fan_out) + (fan_out,) -> (N, fan_out)."""
    return X @ W + b


def relu(Z):
    """Lesson 01. ``max(0, Z)`` elementwise."""
    return np.maximum(Z, 0.0)


def tanh(Z):
    """Lesson 01. Hyperbolic tangent, elementwise."""
    return np.tanh(Z)


def sigmoid(Z):
    """Lesson 01. Logistic function ``1 / (1 + exp(-Z))``, computed without overflow."""
    # exp of a large positive number overflows; write both branches with exp(-|Z|) <= 1.
    E = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1.0 / (1.0 + E), E / (1.0 + E))


ACTIVATIONS: dict[str, Callable] = {"relu": relu, "tanh": tanh, "sigmoid": sigmoid}


def softmax(logits):
    """Lesson 01. Row-wise softmax of (N, C) logits; each row sums to 1.

    Subtracting the row maximum changes nothing mathematically and keeps ``exp`` from overflowing.
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    E = np.exp(shifted)
    return E / E.sum(axis=1, keepdims=True)


def log_softmax(logits):
    """Lesson 01. Row-wise ``log(softmax(logits))``, computed stably (log-sum-exp trick)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def one_hot(y, num_classes, dtype=np.float64):
    """Lesson 01. Integer labels (N,) -> one-hot matrix (N, num_classes)."""
    Y = np.zeros((len(y), num_classes), dtype=dtype)
    Y[np.arange(len(y)), y] = 1.0
    return Y


def softmax_cross_entropy(logits, y):
    """Lesson 01. Mean over the batch of ``-log softmax(logits)[i, y_i]``.

    ``logits`` (N, C), ``y`` (N,) integer labels; returns a float.
    """
    return float(-log_softmax(logits)[np.arange(len(y)), y].mean())


def mse_loss(y_hat, y):
    """Lesson 01. Half squared error, summed over outputs, averaged over the batch.

    ``J = (1 / N) * sum_i 1/2 * ||y_hat_i - y_i||^2``; for one example it is the seed's
    ``J = 1/2 * sum (y - y')^2``. (PyTorch's ``MSELoss`` has no 1/2 and also divides by C.)
    """
    return float(0.5 * np.sum((y_hat - y) ** 2) / y_hat.shape[0])


def num_layers(params):
    """Lesson 01. Number of affine layers in a parameter dict."""
    return len(params) // 2


def mlp_forward(params, X, *, activation="relu", output_activation=None):
    """Lesson 01. Forward pass of an MLP; returns ``(y_hat, cache)``.

    Hidden layers apply ``activation``; the last layer applies ``output_activation`` (``None``:
    identity, i.e. logits). ``cache`` is a list of ``(A_prev, Z)`` per layer, which lesson 02's
    backward pass needs.
    """
    cache = []
    A = X
    L = num_layers(params)
    for layer in range(1, L + 1):
        Z = affine_forward(A, params[f"W{layer}"], params[f"b{layer}"])
        cache.append((A, Z))
        name = activation if layer < L else output_activation
        A = Z if name is None else ACTIVATIONS[name](Z)
    return A, cache


def load_digits_split(*, seed=0, val_fraction=0.2, test_fraction=0.2, n_samples=None):
    """Lesson 01 (split used from lesson 05). The 8x8 digits bundled with scikit-learn, split.

    Returns ``dict(X_train, y_train, X_val, y_val, X_test, y_test, pixel_mean, pixel_scale)``
    (float64, int64). Pixels (0-16) are centred and scaled, ``(raw - pixel_mean) / pixel_scale`` with
    ``pixel_scale = std + 1`` (not plain standardisation: several border pixels are always 0, std 0,
    and the +1 keeps them finite and damps near-constant pixels), with statistics of the *training*
    rows only, so nothing about validation or test data leaks into training. Splits are stratified
    by class.
    ``n_samples`` keeps a stratified subset first (for quick runs).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float64)
    y = y.astype(np.int64)
    if n_samples is not None and n_samples < len(y):
        X, _, y, _ = train_test_split(X, y, train_size=n_samples, stratify=y, random_state=seed)
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=test_fraction, stratify=y, random_state=seed
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=val_fraction / (1 - test_fraction), stratify=y_rest, random_state=seed
    )
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0) + 1.0  # +1: several border pixels are always 0 (std 0); pixels span 0-16
    standardise = lambda A: (A - mean) / std  # noqa: E731
    return dict(
        X_train=standardise(X_train), y_train=y_train,
        X_val=standardise(X_val), y_val=y_val,
        X_test=standardise(X_test), y_test=y_test,
        pixel_mean=mean, pixel_scale=std,
    )


# --------------------------------------------------------------------------------------------
# Lesson 02: backward pass and gradient checking
# --------------------------------------------------------------------------------------------


def affine_backward(dZ, A_prev, W):
    """Lesson 02. Gradients of ``Z = A_prev @ W + b`` given ``dZ = dJ/dZ`` (N, fan_out).

    Returns ``(dA_prev, dW, db)`` with ``dA_prev = dZ @ W.T`` (N, fan_in),
    ``dW = A_prev.T @ dZ`` (fan_in, fan_out) and ``db = dZ.sum(axis=0)`` (fan_out,).
    In the seed's column notation ``dA_prev`` is ``W.T @ delta``: the path back to the previous layer.
    """
    return dZ @ W.T, A_prev.T @ dZ, dZ.sum(axis=0)


def relu_backward(dA, Z):
    """Lesson 02. ``dJ/dZ = dJ/dA * 1[Z > 0]`` for ``A = relu(Z)``."""
    return dA * (Z > 0)


def tanh_backward(dA, Z):
    """Lesson 02. ``dJ/dZ = dJ/dA * (1 - tanh(Z)^2)``."""
    return dA * (1.0 - np.tanh(Z) ** 2)


def sigmoid_backward(dA, Z):
    """Lesson 02. ``dJ/dZ = dJ/dA * s * (1 - s)`` with ``s = sigmoid(Z)``."""
    s = sigmoid(Z)
    return dA * s * (1.0 - s)


ACTIVATION_BACKWARDS: dict[str, Callable] = {
    "relu": relu_backward,
    "tanh": tanh_backward,
    "sigmoid": sigmoid_backward,
}


def softmax_cross_entropy_backward(logits, y):
    """Lesson 02. ``dJ/dlogits = (softmax(logits) - one_hot(y)) / N`` for the mean cross-entropy."""
    return (softmax(logits) - one_hot(y, logits.shape[1], dtype=logits.dtype)) / logits.shape[0]


def mse_backward(y_hat, y):
    """Lesson 02. ``dJ/dy_hat = (y_hat - y) / N`` for :func:`mse_loss` (note the sign: y_hat - y)."""
    return (y_hat - y) / y_hat.shape[0]


LOSSES = {
    "cross_entropy": (softmax_cross_entropy, softmax_cross_entropy_backward),
    "mse": (mse_loss, mse_backward),
}


def mlp_backward(params, cache, d_out, *, activation="relu", output_activation=None):
    """Lesson 02. Backward pass through :func:`mlp_forward` given ``d_out = dJ/dy_hat``.

    Returns ``{"W1": dJ/dW1, "b1": dJ/db1, ...}``, same shapes as ``params``.
    """
    grads = {}
    dA = d_out
    L = num_layers(params)
    for layer in range(L, 0, -1):
        A_prev, Z = cache[layer - 1]
        name = activation if layer < L else output_activation
        dZ = dA if name is None else ACTIVATION_BACKWARDS[name](dA, Z)
        dA, grads[f"W{layer}"], grads[f"b{layer}"] = affine_backward(dZ, A_prev, params[f"W{layer}"])
    return grads


def mlp_loss_and_grads(params, X, y, *, activation="relu", output_activation=None, loss="cross_entropy"):
    """Lesson 02. Loss of the MLP on ``(X, y)`` and its gradient for every parameter.

    ``loss`` is ``"cross_entropy"`` (``y`` integer labels, last layer gives logits) or ``"mse"``
    (``y`` targets of the same shape as the output).
    """
    loss_fn, loss_backward = LOSSES[loss]
    y_hat, cache = mlp_forward(params, X, activation=activation, output_activation=output_activation)
    grads = mlp_backward(
        params, cache, loss_backward(y_hat, y), activation=activation, output_activation=output_activation
    )
    return loss_fn(y_hat, y), grads


def numerical_gradient(f, x, h=1e-6):
    """Lesson 02. Centred differences ``(f(x + h e_i) - f(x - h e_i)) / 2h`` for every entry of ``x``.

    ``f`` takes no argument and reads ``x``, which is changed in place and restored. The error is
    O(h^2) from truncation plus about eps/h from rounding, so use float64.
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        saved = x[index]
        x[index] = saved + h
        f_plus = f()
        x[index] = saved - h
        f_minus = f()
        x[index] = saved
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad


def rel_error(a, b):
    """Lesson 02. ``||a - b|| / (||a|| + ||b||)`` (Frobenius norms); 0 when both are zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    denominator = np.linalg.norm(a) + np.linalg.norm(b)
    return float(np.linalg.norm(a - b) / denominator) if denominator > 0 else 0.0


def gradient_check(params, loss_of_params, grads, h=1e-6):
    """Lesson 02. Relative error between ``grads`` and numerical gradients, one per parameter.

    ``loss_of_params()`` must read the arrays in ``params`` (they are perturbed in place).
    """
    return {name: rel_error(grads[name], numerical_gradient(loss_of_params, params[name], h)) for name in params}


# --------------------------------------------------------------------------------------------
# Lesson 04: frameworks
# --------------------------------------------------------------------------------------------


def pick_device(preference="auto"):
    """Lesson 04. ``"cuda"`` when PyTorch sees a GPU (and ``preference`` allows it), else ``"cpu"``."""
    import torch

    if preference == "cpu":
        return "cpu"
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device_preference='cuda' but torch.cuda.is_available() is False")
    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------------------------
# Lesson 05: training
# --------------------------------------------------------------------------------------------


def accuracy(logits, y):
    """Lesson 05. Fraction of rows whose arg-max equals the label."""
    return float((np.asarray(logits).argmax(axis=1) == np.asarray(y)).mean())


def chance_interval(n, p, z=3.0):
    """Lesson 05. ``p -/+ z * sqrt(p (1 - p) / n)``: where the accuracy of guessing lands.

    An accuracy measured on ``n`` held-out examples by a model with no information is
    Binomial(n, p) / n; ``z = 3`` covers it with probability about 99.7%.
    """
    half_width = z * np.sqrt(p * (1 - p) / n)
    return p - half_width, p + half_width
