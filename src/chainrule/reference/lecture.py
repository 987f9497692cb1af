"""Backpropagation written out in the lecture's own symbols, independent of the autodiff engine.

This module uses the array backend only, never ``chainrule.Tensor`` or ``autograd``, so that it
and the engine are independent witnesses of each other: the tests require their gradients to agree
to 1e-10 in float64.

Notation (the lecture's, batched and row-major):

=================  ====================================================================
lecture            here
=================  ====================================================================
layer l, 1..L      ``W[l]``, ``b[l]``, ``s[l]``, ``x[l]``, ``delta[l]``: lists indexed by the
                   lecture's 1-based l; index 0 holds ``None`` except ``x[0]``, the input
w_ij^(l)           ``W[l][j, i]`` (row j = output neuron, column i = input; ``W[l]`` has
                   shape (d_l, d_{l-1}) as in ``nn.Linear.weight``)
b_j^(l)            ``b[l][j]``, shape (d_l,)
s_j^(l)            ``s[l][n, j]`` = sum_i w_ij^(l) x_i^(l-1) + b_j^(l); shape (N, d_l)
x_j^(l)            ``x[l][n, j]`` = theta(s_j^(l)); ``x[0]`` is the input batch (N, d_0)
h(x)               ``x[L]`` (one column for two classes; K columns of logits for K classes)
delta_j^(l)        ``delta[l][n, j]`` = de/ds_j^(l) for sample n
=================  ====================================================================

The recursion, with ``e`` the mean loss over the N samples of the batch:

    delta^(L) = 2 (x^(L) - y) theta'(s^(L)) / N            (square loss e = (h(x) - y)^2)
    delta^(L) = (p - y) / N,  p = softmax(s^(L))           (softmax cross-entropy)
    delta_i^(l-1) = theta'(s_i^(l-1)) sum_j w_ij^(l) delta_j^(l)
    de/dw_ij^(l) = x_i^(l-1) delta_j^(l)   (summed over the batch),   de/db_j^(l) = delta_j^(l)
    SGD:  w_ij^(l) <- w_ij^(l) - eta de/dw_ij^(l)

For softmax cross-entropy the last layer has no theta: its signals are the logits f = s^(L)
(so ``x[L] = s[L]``) and the prediction is argmax_i f_i; for the square loss the last layer
applies theta like every other layer and the prediction for two classes is sign(h(x)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backend import get_xp

ACTIVATIONS = ("identity", "sign", "sigmoid", "tanh", "relu", "leaky_relu")
"""The names of theta that :func:`theta` and :func:`theta_prime` know."""
LEAKY_SLOPE = 0.01
"""The leaky ReLU's slope for s <= 0: ``nn.LeakyReLU``'s default, so a saved MLP explains as it
ran."""
LOSSES = ("square", "cross-entropy")
"""The losses :func:`forward` and :func:`backward` know: the square loss (theta on the last layer
too) and softmax cross-entropy (the last layer gives logits)."""


def theta(name: str, s: Any) -> Any:
    """The activation theta(s)."""
    xp = get_xp(s)
    if name == "identity":
        return s
    if name == "sign":
        return xp.sign(s)
    if name == "sigmoid":
        return 1 / (1 + xp.exp(-s))
    if name == "tanh":
        return xp.tanh(s)
    if name == "relu":
        return xp.maximum(s, 0)
    if name == "leaky_relu":
        return xp.where(s > 0, s, LEAKY_SLOPE * s)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def theta_prime(name: str, s: Any, x: Any) -> Any:
    """theta'(s), using x = theta(s) where the lecture does (tanh: 1 - x^2)."""
    xp = get_xp(s)
    if name == "identity":
        return xp.ones_like(s)
    if name == "sign":
        raise ValueError("sign(s) is forward only: its derivative is 0 almost everywhere, so "
                         "no gradient can be backpropagated through it")
    if name == "sigmoid":
        return x * (1 - x)
    if name == "tanh":
        return 1 - x * x
    if name == "relu":
        return (s > 0).astype(s.dtype)
    if name == "leaky_relu":
        return xp.where(s > 0, 1.0, LEAKY_SLOPE).astype(s.dtype)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


@dataclass
class Trace:
    """Everything one forward and backward pass computes, indexed by the lecture's l."""

    W: list[Any]
    b: list[Any]
    s: list[Any] = field(default_factory=list)
    x: list[Any] = field(default_factory=list)
    delta: list[Any] = field(default_factory=list)
    grad_W: list[Any] = field(default_factory=list)
    grad_b: list[Any] = field(default_factory=list)
    loss: float | None = None
    act: list[Any] = field(default_factory=list)  # act[l]: theta, or the output activation

    @property
    def L(self) -> int:
        """The number of layers L (``W[0]`` is the unused ``None`` of the 1-based lists)."""
        return len(self.W) - 1

    @property
    def h(self) -> Any:
        """The network's output h(x) = x^(L)."""
        return self.x[self.L]


def forward(W: Sequence[Any], b: Sequence[Any], x0: Any, activation: str = "tanh",
            loss: str = "square", output_activation: str | None = None) -> Trace:
    """Forward propagation: every s^(l) and x^(l) from input to output.

    Args:
        W: ``[None, W1, ..., WL]``, ``W[l]`` of shape (d_l, d_{l-1}).
        b: ``[None, b1, ..., bL]``, ``b[l]`` of shape (d_l,).
        x0: the input batch, shape (N, d_0).
        activation: theta, one of ``ACTIVATIONS``.
        loss: ``"square"`` (theta on the last layer too) or ``"cross-entropy"`` (the last layer
            gives logits).
        output_activation: the last layer's activation under the square loss when it is not
            theta (e.g. ``"identity"`` for a network with a linear output); theta by default.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    L = len(W) - 1
    t = Trace(W=list(W), b=list(b))
    t.s = [None] * (L + 1)
    t.x = [None] * (L + 1)
    last = "identity" if loss == "cross-entropy" else (output_activation or activation)
    t.act = [None] + [activation] * (L - 1) + [last]
    t.x[0] = x0
    for l in range(1, L + 1):  # lecture's l = 1..L is Python's l = 1..L (index 0 is the input)
        t.s[l] = t.x[l - 1] @ W[l].T + b[l]          # s_j^(l) = sum_i w_ij^(l) x_i^(l-1) + b_j^(l)
        t.x[l] = theta(t.act[l], t.s[l])                 # x_j^(l) = theta(s_j^(l))
    return t


def softmax(f: Any) -> Any:
    """p_i = e^{f_i} / sum_j e^{f_j} along the last axis (shifted by the max for stability)."""
    xp = get_xp(f)
    e = xp.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def backward(t: Trace, y: Any, activation: str | None = None, loss: str = "square") -> Trace:
    """Backpropagation: every delta^(l) from output to input, then the gradients.

    Args:
        t: the trace of :func:`forward` (filled in place and returned).
        y: targets; for the square loss shape (N, d_L); for cross-entropy one-hot (N, K).
        activation: ignored when the trace records its activations (kept for symmetry).
    """
    xp = get_xp(t.x[0])
    L, N = t.L, t.x[0].shape[0]
    t.delta = [None] * (L + 1)
    t.grad_W = [None] * (L + 1)
    t.grad_b = [None] * (L + 1)
    if loss == "square":
        diff = t.x[L] - y
        t.loss = float((diff * diff).sum() / N)                        # e = (h(x) - y)^2
        t.delta[L] = 2 * diff * theta_prime(t.act[L], t.s[L], t.x[L]) / N
    else:
        p = softmax(t.s[L])
        logp = t.s[L] - t.s[L].max(axis=-1, keepdims=True)
        logp = logp - xp.log(xp.exp(logp).sum(axis=-1, keepdims=True))
        t.loss = float(-(y * logp).sum() / N)                           # L = -sum_i y_i log p_i
        t.delta[L] = (p - y) / N                                        # delta^(L) = p - y
    for l in range(L, 1, -1):
        # delta_i^(l-1) = theta'(s_i^(l-1)) sum_j w_ij^(l) delta_j^(l)
        t.delta[l - 1] = theta_prime(t.act[l - 1], t.s[l - 1], t.x[l - 1]) * (t.delta[l] @ t.W[l])
    for l in range(1, L + 1):
        t.grad_W[l] = t.delta[l].T @ t.x[l - 1]        # de/dw_ij^(l) = x_i^(l-1) delta_j^(l)
        t.grad_b[l] = t.delta[l].sum(axis=0)           # de/db_j^(l) = delta_j^(l)
    return t


def sgd_step(t: Trace, eta: float) -> tuple[list[Any], list[Any]]:
    """New weights after one SGD step: w_ij^(l) <- w_ij^(l) - eta x_i^(l-1) delta_j^(l)."""
    W = [None] + [t.W[l] - eta * t.grad_W[l] for l in range(1, t.L + 1)]
    b = [None] + [t.b[l] - eta * t.grad_b[l] for l in range(1, t.L + 1)]
    return W, b
