"""Output heads of the scikit-learn estimators: for each (task, loss) pair, how the targets are
encoded, the loss of a batch as a chainrule scalar, and the link that turns the network's output
into predictions.

The network computes the decision values d = f(x) (the logits for ``log_loss``, the log-mean for
``poisson``, h(x) itself for the square and hinge losses, with any ``output_activation`` inside
the network). Every loss is a weighted mean over the samples of a per-sample loss l_i:

    L = sum_i w_i l_i / sum_i w_i        (w_i = 1 without sample or class weights),

which is what scikit-learn's MLP minimises; the L2 penalty is added by the training loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit, xlogy

import chainrule as cr
from chainrule.autograd import apply
from chainrule.ops.loss import BCEWithLogits, PoissonNLL, SquaredError, softmax_cross_entropy
from chainrule.ops.loss import Hinge as HingeNode


def _cast(a: np.ndarray, like: cr.Tensor) -> Any:
    """The NumPy array ``a`` in ``like``'s dtype and on its device (a plain cast on the CPU,
    every step of a weighted fit, rather than a general tensor conversion)."""
    if type(like.data) is np.ndarray:
        return a.astype(like.dtype)
    return cr.tensor(a, dtype=like.dtype, device=like.device).data


class Head:
    """Base class: a loss with its target encoding and its output link.

    Attributes:
        out_activation: scikit-learn's ``out_activation_`` name for the link.
        probabilistic: whether the link gives class probabilities (``predict_proba``).
    """

    out_activation = "identity"
    probabilistic = False

    def encode(self, Y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Targets as the loss wants them, from the 2-D array ``Y`` (binarized labels for a
        classifier: 0/1 indicators; raw values for a regressor)."""
        return np.ascontiguousarray(Y, dtype=dtype)

    def loss(self, d: cr.Tensor, target: Any, weight: Any) -> cr.Tensor:
        """The weighted mean loss of a batch (``weight``: None or a NumPy array (n,))."""
        raise NotImplementedError

    def row_constant(self, target: np.ndarray) -> np.ndarray | None:
        """A per-sample term of the loss that does not depend on the parameters (left out of the
        graph, added to the reported loss), or None."""
        return None

    def link(self, d: np.ndarray) -> np.ndarray:
        """The network's output turned into the model's prediction (probabilities, means)."""
        return d


class SoftmaxCrossEntropy(Head):
    """Multiclass ``log_loss``: l_i = logsumexp(d_i) - d_{i, y_i}, one fused graph node."""

    out_activation = "softmax"
    probabilistic = True

    def encode(self, Y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return Y.argmax(axis=1).astype(np.int64)

    def loss(self, d: cr.Tensor, target: Any, weight: Any) -> cr.Tensor:
        coef = None if weight is None else _cast(weight, d)
        return softmax_cross_entropy(d, target, coef, "mean")

    def link(self, d: np.ndarray) -> np.ndarray:
        z = d - d.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        return z


class ScaledLoss(Head):
    """A loss that is one fused node ``primitive`` (``chainrule.ops.loss``) of the decision
    values d (N, K), the targets, the row weights c and a factor: the weighted mean
    sum_i w_i l_i / sum_i w_i with l_i = a_K sum_k f(d_ik, y_ik), i.e. the node's
    scale * sum_i c_i sum_k f(d_ik, y_ik) with scale = a_K / sum_i w_i."""

    primitive: Any = None  # the node's primitive (its forward and VJP are what ``_direct`` calls)

    def row_factor(self, k: int) -> float:
        """a_K for K outputs."""
        return 1.0

    def scale(self, n: int, k: int, weight: Any) -> float:
        """The node's factor a_K / sum_i w_i (sum_i w_i = n without weights), computed from the
        float64 weights (the graph-free step of ``_direct`` takes the same number)."""
        return self.row_factor(k) / (n if weight is None else float(weight.sum()))

    def loss(self, d: cr.Tensor, target: Any, weight: Any) -> cr.Tensor:
        n, k = d.shape
        coef = None if weight is None else _cast(weight, d)
        return apply(self.primitive, (d, target), coef, self.scale(n, k, weight))


class SigmoidCrossEntropy(ScaledLoss):
    """Binary and multilabel ``log_loss``: l_i = sum_k BCE(sigmoid(d_ik), y_ik), computed from
    the logits without overflow (one ``bce_with_logits`` node)."""

    out_activation = "logistic"
    probabilistic = True
    primitive = BCEWithLogits

    def link(self, d: np.ndarray) -> np.ndarray:
        return expit(d)


class SquareLoss(ScaledLoss):
    """A square loss, l_i = a_K sum_k (d_ik - y_ik)^2 (one ``squared_error`` node)."""

    primitive = SquaredError

    def __init__(self, out_activation: str) -> None:
        self.out_activation = out_activation


class SignedSquare(SquareLoss):
    """The lecture's square loss for classification: targets y in {-1, +1} per output,
    l_i = sum_k (h_k(x_i) - y_ik)^2; the prediction is sign(h(x)) (argmax for several classes)."""

    def encode(self, Y: np.ndarray, dtype: np.dtype) -> np.ndarray:
        return np.ascontiguousarray(2.0 * Y - 1.0, dtype=dtype)


class Hinge(SignedSquare):
    """Hinge loss for classification: y in {-1, +1} per output, l_i = sum_k max(0, 1 - y_ik d_ik)
    (one-vs-rest for several classes; one ``hinge`` node)."""

    primitive = HingeNode


class HalfSquaredError(SquareLoss):
    """Regression ``squared_error``, scikit-learn's: l_i = (1 / 2K) sum_k (d_ik - y_ik)^2 over
    the K outputs (half the squared error, averaged over outputs)."""

    def row_factor(self, k: int) -> float:
        return 0.5 / k


class HalfPoisson(ScaledLoss):
    """Regression ``poisson`` (half the Poisson deviance, scikit-learn's): the mean is
    mu = exp(d) and l_i = sum_k [y log(y / mu) - y + mu] = sum_k [exp(d) - y d] + const (one
    ``poisson_nll`` node; the constant is added to the reported loss only)."""

    out_activation = "exp"
    primitive = PoissonNLL

    def row_constant(self, target: np.ndarray) -> np.ndarray:
        return (xlogy(target, target) - target).sum(axis=1)

    def link(self, d: np.ndarray) -> np.ndarray:
        return np.exp(d)


__all__ = ["Head", "ScaledLoss", "SoftmaxCrossEntropy", "SigmoidCrossEntropy", "SquareLoss",
           "SignedSquare", "Hinge", "HalfSquaredError", "HalfPoisson"]
