"""Loss functions e(h, y), as functions (also in ``chainrule.nn.functional``) and as modules.

Every loss takes ``reduction``: ``"mean"`` (default) averages the per-sample losses, ``"sum"``
adds them, ``"none"`` returns them unreduced. Inputs are validated: shapes, dtypes, NaN and
out-of-range labels raise :class:`~chainrule.ShapeError`, :class:`~chainrule.DTypeError` or
:class:`~chainrule.InvalidValueError` with the offending values named.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.compile import traceable
from chainrule.errors import DTypeError, InvalidValueError, ShapeError
from chainrule.ops.loss import REDUCTIONS, bce_with_logits, softmax_cross_entropy, squared_error
from chainrule.ops.loss import binary_cross_entropy as _bce_node
from chainrule.ops.special import softplus as _softplus

from .module import Module


# --------------------------------------------------------------------------- validation
def _reduction(op: str, reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        raise InvalidValueError(f"{op}: reduction must be one of {', '.join(map(repr, REDUCTIONS))}"
                                f", got {reduction!r}")
    return reduction


def _input(op: str, x: Any, name: str = "input") -> cr.Tensor:
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    if x.dtype.kind != "f":
        raise DTypeError(f"{op}: {name} must be floating, got {x.dtype}")
    return x


@traceable  # (a check that a compiled step runs again at every replay; so below)
def _has_nan(t: cr.Tensor) -> bool:
    return t.dtype.kind == "f" and bool(cr.get_xp(t.data).isnan(t.data).any())


def _target_like(op: str, target: Any, x: cr.Tensor) -> cr.Tensor:
    """A floating target of exactly ``x``'s shape, in ``x``'s dtype (differentiable cast)."""
    y = target if isinstance(target, cr.Tensor) else cr.tensor(target, device=x.device)
    if y.shape != x.shape:
        raise ShapeError(f"{op}: target has shape {tuple(y.shape)} but the input has shape "
                         f"{tuple(x.shape)}; they must match (reshape one of them)")
    if y.dtype.kind not in "biuf":
        raise DTypeError(f"{op}: target must be numeric, got {y.dtype}")
    if _has_nan(y):
        raise InvalidValueError(f"{op}: target contains NaN")
    return y if y.dtype == x.dtype else y.astype(x.dtype)


def _broadcast_weight(op: str, name: str, w: Any, x: cr.Tensor) -> cr.Tensor:
    w = w if isinstance(w, cr.Tensor) else cr.tensor(w, dtype=x.dtype, device=x.device)
    try:
        ok = np.broadcast_shapes(w.shape, x.shape) == x.shape
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"{op}: {name} of shape {tuple(w.shape)} does not broadcast to the input "
                         f"shape {tuple(x.shape)}")
    return w if w.dtype == x.dtype else w.astype(x.dtype)


def _reduce(loss: cr.Tensor, reduction: str) -> cr.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _rows(x: cr.Tensor) -> tuple[cr.Tensor, tuple[int, ...]]:
    """Logits with the class axis (1, or 0 for a single sample) moved last and the rest
    flattened: (M, C), plus the per-sample shape to restore (PyTorch's K-dimensional case)."""
    if x.ndim == 1:
        return x.reshape(1, x.shape[0]), ()
    if x.ndim == 2:
        return x, (x.shape[0],)
    order = (0,) + tuple(range(2, x.ndim)) + (1,)
    return cr.permute(x, order).reshape(-1, x.shape[1]), (x.shape[0],) + tuple(x.shape[2:])


@traceable
def _labels(op: str, target: Any, x: cr.Tensor, sample_shape: tuple[int, ...],
            ignore_index: int) -> tuple[Any, Any]:
    """Class indices as a flat int64 backend array, validated against the logits, and the mask
    of the labels equal to ``ignore_index`` (None when there are none)."""
    t = target if isinstance(target, cr.Tensor) else cr.tensor(target, device=x.device)
    n_classes = x.shape[1] if x.ndim >= 2 else x.shape[0]
    if t.shape != sample_shape:
        raise ShapeError(
            f"{op}: logits of shape {tuple(x.shape)} need integer class labels of shape "
            f"{sample_shape} (or class probabilities of shape {tuple(x.shape)}, floating); got "
            f"a target of shape {tuple(t.shape)}")
    a = t.data
    xp = cr.get_xp(a)
    if a.dtype.kind == "b":
        raise DTypeError(f"{op}: class labels must be integers, got a bool tensor")
    if a.dtype.kind == "f":
        if not bool(xp.isfinite(a).all()):
            raise InvalidValueError(f"{op}: class labels contain NaN or infinity")
        bad = a != xp.round(a)
        if bool(bad.any()):
            raise InvalidValueError(f"{op}: class labels must be whole numbers, got "
                                    f"{_first(a[bad])}")
    # No copy is needed for the graph: the fused node saves flat indices of its own and
    # getitem (nll_loss) copies its index arrays, so a caller may overwrite its labels.
    a = a.astype(np.int64, copy=False).reshape(-1)
    # The common case (every label a class, ignore_index none of them) is settled by one max
    # over the labels read as unsigned (a negative label wraps to above 2^63); each label is
    # compared only otherwise: one reduction instead of six passes over the labels (checking
    # 32 labels took 2.0 instead of 4.7 us).
    if a.size == 0 or (not 0 <= ignore_index < n_classes
                       and bool(a.view(np.uint64).max() < n_classes)):
        return a, None
    ignored = a == ignore_index
    out_of_range = ((a < 0) | (a >= n_classes)) & ~ignored
    if bool(out_of_range.any()):
        raise InvalidValueError(
            f"{op}: class labels must lie in [0, {n_classes}) for {n_classes} classes "
            f"(or equal ignore_index={ignore_index}); got {_first(a[out_of_range])}")
    return a, (ignored if bool(ignored.any()) else None)


def _first(values: Any, k: int = 5) -> str:
    vals = cr.to_numpy(values).reshape(-1)
    shown = ", ".join(f"{v:g}" for v in vals[:k].tolist())
    return shown + (f", ... ({vals.size} in all)" if vals.size > k else "")


def _class_weight(op: str, weight: Any, n_classes: int, x: cr.Tensor) -> cr.Tensor | None:
    if weight is None:
        return None
    w = weight if isinstance(weight, cr.Tensor) else cr.tensor(weight, dtype=x.dtype,
                                                                 device=x.device)
    if w.shape != (n_classes,):
        raise ShapeError(f"{op}: weight must have one entry per class, shape ({n_classes},); "
                         f"got {tuple(w.shape)}")
    if _has_nan(w):
        raise InvalidValueError(f"{op}: weight contains NaN")
    return w.detach().astype(x.dtype) if w.dtype != x.dtype else w.detach()


def _smoothing(op: str, label_smoothing: Any) -> float:
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) or \
            not 0.0 <= label_smoothing <= 1.0:
        raise InvalidValueError(f"{op}: label_smoothing must be a number in [0, 1], got "
                                f"{label_smoothing!r}")
    return float(label_smoothing)


def _logits(op: str, x: Any) -> cr.Tensor:
    x = _input(op, x)
    if x.ndim == 0:
        raise ShapeError(f"{op}: logits need a class axis: shape (C,), (N, C) or (N, C, d1, ...)")
    if (x.shape[1] if x.ndim >= 2 else x.shape[0]) == 0:
        raise ShapeError(f"{op}: logits of shape {tuple(x.shape)} have no classes")
    return x


def _check_index(op: str, ignore_index: Any) -> int:
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise InvalidValueError(f"{op}: ignore_index must be an int, got {ignore_index!r}")
    return int(ignore_index)


# --------------------------------------------------------------------------- functions
def mse_loss(input: Any, target: Any, reduction: str = "mean") -> cr.Tensor:
    """Squared error e(h, y) = (h - y)^2 elementwise, the lecture's square loss; the mean (by
    default) over all elements.

    Shape: input and target of the same shape; output scalar, or that shape for "none".
    """
    reduction = _reduction("mse_loss", reduction)
    x = _input("mse_loss", input)
    y = _target_like("mse_loss", target, x)
    if reduction != "none" and x.size:
        # one fused node for sum (e - t)^2 (``ops.loss.squared_error``), then / size for the
        # mean: the same numbers, value and gradient, as the chain sub, mul, sum/mean
        total = squared_error(x, y, None, 1.0)
        return total if reduction == "sum" else total / x.size
    d = x - y
    return _reduce(d * d, reduction)


square_loss = mse_loss


def hinge_loss(input: Any, target: Any, reduction: str = "mean") -> cr.Tensor:
    """e(h, y) = max(0, 1 - y h) for labels y in {-1, +1} (the SVM loss); the mean by default.

    Shape: input and target of the same shape.

    Raises:
        InvalidValueError: a label other than -1 or +1 (map 0/1 labels with 2 y - 1).
    """
    reduction = _reduction("hinge_loss", reduction)
    x = _input("hinge_loss", input)
    y = _target_like("hinge_loss", target, x)
    _check_signs(y.data)
    return _reduce(cr.relu(1.0 - y * x), reduction)


@traceable
def _check_signs(y: Any) -> None:
    """Raise unless every label is -1 or +1 (hinge_loss)."""
    if not bool(((y == 1) | (y == -1)).all()):
        bad = y[(y != 1) & (y != -1)]
        raise InvalidValueError(f"hinge_loss: labels must be -1 or +1, got {_first(bad)} "
                                "(map 0/1 labels with 2 * y - 1)")


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> cr.Tensor:
    r"""Cross-entropy between softmax(logits) and the target, computed stably from the logits
    (log-softmax via log-sum-exp), for any finite logits.

    With integer labels y_n: loss_n = -w_{y_n} log softmax(x_n)_{y_n}
    = w_{y_n} (logsumexp(x_n) - x_{n, y_n}), where w is ``weight`` (all ones by default);
    ``"mean"`` divides the sum by sum_n w_{y_n} (PyTorch's weighted mean), and samples whose label
    is ``ignore_index`` contribute nothing to either sum. With class probabilities p_{n,c}:
    loss_n = -sum_c w_c p_{n,c} log softmax(x_n)_c, and ``"mean"`` divides by the number of
    samples. ``label_smoothing`` = eps mixes the target with the uniform distribution:
    (1 - eps) target + eps / C.

    The common case (integer labels, no smoothing) is one fused graph node whose gradient is
    w_{y_n} (softmax(x_n) - onehot(y_n)) / sum_n w_{y_n}.

    Args:
        input: logits of shape (N, C), (C,) or (N, C, d1, ..., dk).
        target: integer class labels of shape (N,), () or (N, d1, ..., dk) (whole-number floats
            are accepted), or floating class probabilities of the input's shape.
        weight: optional per-class weights, shape (C,).
        ignore_index: a label value to skip (integer labels only). Default: -100.
        reduction: "mean" | "sum" | "none".
        label_smoothing: eps in [0, 1]. Default: 0.

    Shape: output scalar, or (N,), (), (N, d1, ..., dk) for ``reduction="none"``.
    """
    # The common case first (see _plain_labels); whatever it cannot vouch for goes on to the
    # general path, which validates every argument and names what is wrong.
    if (weight is None and type(label_smoothing) is float and label_smoothing == 0.0
            and type(ignore_index) is int and type(reduction) is str and reduction in REDUCTIONS
            and isinstance(input, cr.Tensor)):
        labels = _plain_labels(input.data, target, ignore_index)
        if labels is not None:
            return softmax_cross_entropy(input, labels, None, reduction)
    op = "cross_entropy"
    reduction = _reduction(op, reduction)
    eps = _smoothing(op, label_smoothing)
    ignore_index = _check_index(op, ignore_index)
    x = _logits(op, input)
    n_classes = x.shape[1] if x.ndim >= 2 else x.shape[0]
    w = _class_weight(op, weight, n_classes, x)
    x2, sample_shape = _rows(x)
    t = target if isinstance(target, cr.Tensor) else cr.tensor(target, device=x.device)
    if t.shape == x.shape and t.shape != sample_shape and t.dtype.kind == "f":
        return _cross_entropy_probs(op, x, x2, t, sample_shape, w, ignore_index, reduction, eps)

    labels, ignored = _labels(op, t, x, sample_shape, ignore_index)
    any_ignored = ignored is not None
    safe, coef = labels, None
    if w is not None or any_ignored:
        safe, coef = _label_weights(labels, ignored, None if w is None else w.data, x.dtype)
    nll = softmax_cross_entropy(x2, safe, coef, reduction)
    if eps > 0:
        logp = cr.log_softmax(x2, axis=1)
        per_class = logp * w if w is not None else logp
        smooth = -per_class.sum(axis=1)
        if any_ignored:
            smooth = smooth * cr.tensor(~ignored, dtype=x.dtype, device=x.device)
        if reduction == "mean":
            denom = _total_weight(coef) if coef is not None else labels.shape[0]
            smooth = smooth.sum() / denom if denom else smooth.sum() * math.nan
        elif reduction == "sum":
            smooth = smooth.sum()
        nll = nll * (1.0 - eps) + smooth * (eps / n_classes)
    return nll.reshape(sample_shape) if reduction == "none" else nll


@traceable
def _label_weights(labels: Any, ignored: Any, w: Any, dtype: Any) -> tuple[Any, Any]:
    """The labels with the ignored ones replaced by class 0, and each row's weight: its class's
    weight (``w``, or 1 when None), 0 where the label is ignored (``ignored``: a mask or None)."""
    xp = cr.get_xp(labels)
    safe = xp.where(ignored, 0, labels) if ignored is not None else labels
    coef = w[safe] if w is not None else xp.ones(labels.shape, dtype=dtype)
    if ignored is not None:
        coef = coef * ~ignored
    return safe, coef


@traceable
def _total_weight(coef: Any) -> float:
    """sum_n w_n, the denominator of a weighted mean, as a Python float."""
    return float(coef.sum())


@traceable
def _plain_labels(x: Any, target: Any, ignore_index: int) -> Any:
    """The common case of ``cross_entropy`` settled in one go: NumPy logits (N, C), N >= 1, and
    integer labels (N,) (an array or a tensor's), every label a class and ``ignore_index`` none
    of them. Returns the labels as int64 (the caller's own array when it is already int64: the
    fused node keeps flat indices computed from it, not the array itself), or None for every
    other case, which the general path validates and diagnoses (so every error and its message
    is the general path's).

    The general path spends about 75 000 instructions (~7 us) on (32, 10) logits and array
    labels before the fused node starts (47 000 for a tensor's labels): one helper per argument,
    a tensor made from the labels, the range check. This costs 20 000, most of it one reduction:
    the labels read as unsigned (a negative label wraps to above 2^63) have their maximum below C.
    ``F.cross_entropy(x, labels)``, forward, float32 (N, 10), array labels, with the fused node's
    own changes: N=1 170 000 -> 110 000 instructions, N=32 187 000 -> 124 000 (about 21 -> 14 us
    on this 2-core machine), N=128 223 000 -> 155 000, N=1024 550 000 -> 438 000 (42 -> 35 us);
    forward and backward at N=32: 256 000 -> 163 000."""
    if type(x) is not np.ndarray or x.ndim != 2 or x.dtype.kind != "f":
        return None
    n, c = x.shape
    if n == 0 or 0 <= ignore_index < c:
        return None
    a = target.data if isinstance(target, cr.Tensor) else target
    if type(a) is not np.ndarray or a.shape != (n,) or a.dtype.kind not in "iu":
        return None
    if a.dtype != np.int64:
        a = a.astype(np.int64)  # a uint64 label above 2^63 wraps negative and fails below
    if not np.maximum.reduce(a.view(np.uint64)) < c:  # (.max() without its Python wrapper)
        return None
    return a


def _cross_entropy_probs(op: str, x: cr.Tensor, x2: cr.Tensor, t: cr.Tensor,
                         sample_shape: tuple[int, ...], w: cr.Tensor | None, ignore_index: int,
                         reduction: str, eps: float) -> cr.Tensor:
    if ignore_index != -100:
        raise InvalidValueError(f"{op}: ignore_index is only supported with integer labels, not "
                                "with class probabilities")
    if _has_nan(t):
        raise InvalidValueError(f"{op}: target probabilities contain NaN")
    if t.dtype != x.dtype:
        t = t.astype(x.dtype)
    p, _ = _rows(t)
    n_classes = x2.shape[1]
    if eps > 0:
        p = p * (1.0 - eps) + eps / n_classes
    terms = cr.log_softmax(x2, axis=1) * p
    if w is not None:
        terms = terms * w
    loss = -terms.sum(axis=1)
    if reduction == "none":
        return loss.reshape(sample_shape)
    return _reduce(loss, reduction)


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> cr.Tensor:
    """Negative log-likelihood of class labels given log-probabilities (e.g. ``log_softmax``):
    loss_n = -w_{y_n} input[n, y_n]; ``"mean"`` divides by sum_n w_{y_n}; labels equal to
    ``ignore_index`` are skipped. ``cross_entropy(x, y) == nll_loss(log_softmax(x), y)``.

    Args:
        input: log-probabilities of shape (N, C), (C,) or (N, C, d1, ..., dk).
        target: integer labels of shape (N,), () or (N, d1, ..., dk).
        weight: optional per-class weights, shape (C,).
        ignore_index: a label value to skip. Default: -100.
        reduction: "mean" | "sum" | "none".
    """
    op = "nll_loss"
    reduction = _reduction(op, reduction)
    ignore_index = _check_index(op, ignore_index)
    x = _logits(op, input)
    n_classes = x.shape[1] if x.ndim >= 2 else x.shape[0]
    w = _class_weight(op, weight, n_classes, x)
    x2, sample_shape = _rows(x)
    labels, ignored = _labels(op, target, x, sample_shape, ignore_index)
    xp = cr.get_xp(labels)
    safe, coef = _label_weights(labels, ignored, None if w is None else w.data, x.dtype)
    picked = x2[xp.arange(labels.shape[0]), safe]
    loss = -(picked * cr.tensor(coef, device=x.device))
    if reduction == "none":
        return loss.reshape(sample_shape)
    if reduction == "sum":
        return loss.sum()
    denom = _total_weight(coef)
    return loss.sum() / denom if denom else loss.sum() * math.nan


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> cr.Tensor:
    r"""Binary cross-entropy on logits x, the stable form of BCE(sigmoid(x), y):

        loss = w [ p_w y softplus(-x) + (1 - y) softplus(x) ]
             = -w [ p_w y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)) ],

    with softplus(z) = log(1 + e^z) computed without overflow, so any finite logit (even
    +-1e4) gives a finite, exact loss; the gradient is
    dx = w [(1 - y) sigmoid(x) - p_w y sigmoid(-x)], i.e. sigmoid(x) - y when w = p_w = 1.
    (PyTorch's formula (1 - y) x + (1 + (p_w - 1) y) softplus(-x) is the same function.)

    Args:
        input: logits, any shape.
        target: targets in [0, 1] of the same shape.
        weight: optional rescaling weight broadcastable to the input.
        reduction: "mean" | "sum" | "none".
        pos_weight: optional weight p_w of the positive term, broadcastable to the input (one
            per class along the last axis, as in PyTorch).
    """
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(op, reduction)
    x = _input(op, input)
    y = _target_like(op, target, x)
    if reduction != "none" and weight is None and pos_weight is None and x.size:
        # one fused node (``ops.loss.bce_with_logits``), then / size for the mean
        total = bce_with_logits(x, y, None, 1.0)
        return total if reduction == "sum" else total / x.size
    pos = _softplus(-x)  # -log sigmoid(x)
    if pos_weight is not None:
        pos = pos * _broadcast_weight(op, "pos_weight", pos_weight, x)
    loss = y * pos + (1.0 - y) * _softplus(x)
    if weight is not None:
        loss = loss * _broadcast_weight(op, "weight", weight, x)
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None,
                         reduction: str = "mean") -> cr.Tensor:
    """Binary cross-entropy on probabilities p: loss = -w [y log p + (1 - y) log(1 - p)], each
    log clamped below at -100 as in PyTorch, so p = 0 and p = 1 give finite values (a confident
    wrong answer costs 100) and finite gradients (dp = (p - y) / max(p (1 - p), 1e-12)).
    Prefer :func:`binary_cross_entropy_with_logits`, which is exact for any logit.

    Args:
        input: probabilities in [0, 1], any shape.
        target: targets of the same shape.
        weight: optional rescaling weight broadcastable to the input.
        reduction: "mean" | "sum" | "none".

    Raises:
        InvalidValueError: an input outside [0, 1] (or NaN).
    """
    op = "binary_cross_entropy"
    reduction = _reduction(op, reduction)
    p = _input(op, input)
    y = _target_like(op, target, p)
    _check_probabilities(op, p.data)
    loss = _bce_node(p, y)
    if weight is not None:
        loss = loss * _broadcast_weight(op, "weight", weight, p)
    return _reduce(loss, reduction)


@traceable
def _check_probabilities(op: str, p: Any) -> None:
    """Raise unless every entry of ``p`` lies in [0, 1] (binary_cross_entropy)."""
    if not bool(((p >= 0) & (p <= 1)).all()):
        raise InvalidValueError(f"{op}: the input must hold probabilities in [0, 1], got "
                                f"{_first(p[~((p >= 0) & (p <= 1))])}")


# --------------------------------------------------------------------------- modules
class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _reduction(type(self).__name__, reduction)

    def config(self) -> dict[str, Any]:
        return {"reduction": self.reduction}


def _weight_buffer(weight: Any) -> cr.Tensor | None:
    return None if weight is None else (weight if isinstance(weight, cr.Tensor)
                                        else cr.tensor(weight))


class MSELoss(_Loss):
    """Mean squared error, the lecture's square loss e(h, y) = (h - y)^2.

    Args:
        reduction: "mean" | "sum" | "none". Default: "mean".

    Shape: input (*), target (*) of the same shape; output scalar, or (*) for "none".
    """

    def forward(self, input: Any, target: Any) -> cr.Tensor:
        """The mean (or sum, or elementwise) of (input - target)^2; see :func:`mse_loss`."""
        return mse_loss(input, target, self.reduction)


SquareLoss = MSELoss


class HingeLoss(_Loss):
    """Hinge loss max(0, 1 - y h) for labels y in {-1, +1}.

    Args:
        reduction: "mean" | "sum" | "none". Default: "mean".

    Shape: input (*), target (*) of the same shape.
    """

    def forward(self, input: Any, target: Any) -> cr.Tensor:
        """max(0, 1 - y h) reduced as ``reduction`` says; see :func:`hinge_loss`."""
        return hinge_loss(input, target, self.reduction)


class CrossEntropyLoss(_Loss):
    """Cross-entropy from logits; see :func:`cross_entropy` for the formula.

    Args:
        weight: optional per-class weights, shape (C,) (stored as a buffer).
        ignore_index: label value to skip. Default: -100.
        reduction: "mean" | "sum" | "none". Default: "mean".
        label_smoothing: in [0, 1]. Default: 0.

    Shape: input (N, C), (C,) or (N, C, d1, ...); target integer labels (N,), (), (N, d1, ...)
    or probabilities of the input's shape.
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _weight_buffer(weight))
        self.ignore_index = _check_index("CrossEntropyLoss", ignore_index)
        self.label_smoothing = _smoothing("CrossEntropyLoss", label_smoothing)

    def forward(self, input: Any, target: Any) -> cr.Tensor:
        """Cross-entropy of ``target`` given the logits ``input``; see :func:`cross_entropy`."""
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction,
                             self.label_smoothing)


class NLLLoss(_Loss):
    """Negative log-likelihood of labels given log-probabilities; see :func:`nll_loss`.

    Args:
        weight: optional per-class weights, shape (C,).
        ignore_index: label value to skip. Default: -100.
        reduction: "mean" | "sum" | "none". Default: "mean".
    """

    def __init__(self, weight: Any = None, ignore_index: int = -100,
                 reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _weight_buffer(weight))
        self.ignore_index = _check_index("NLLLoss", ignore_index)

    def forward(self, input: Any, target: Any) -> cr.Tensor:
        """-log p of the target classes given log-probabilities; see :func:`nll_loss`."""
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (stable); see :func:`binary_cross_entropy_with_logits`.

    Args:
        weight: optional rescaling weight broadcastable to the input.
        reduction: "mean" | "sum" | "none". Default: "mean".
        pos_weight: optional weight of positive examples, broadcastable to the input.
    """

    def __init__(self, weight: Any = None, reduction: str = "mean",
                 pos_weight: Any = None) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _weight_buffer(weight))
        self.register_buffer("pos_weight", _weight_buffer(pos_weight))

    def forward(self, input: Any, target: Any) -> cr.Tensor:
        """Binary cross-entropy of ``target`` given logits; see
        :func:`binary_cross_entropy_with_logits`.
        """
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction,
                                                self.pos_weight)


class BCELoss(_Loss):
    """Binary cross-entropy on probabilities (logs clamped at -100); see
    :func:`binary_cross_entropy`.

    Args:
        weight: optional rescaling weight broadcastable to the input.
        reduction: "mean" | "sum" | "none". Default: "mean".
    """

    def __init__(self, weight: Any = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", _weight_buffer(weight))

    def forward(self, input: Any, target: Any) -> cr.Tensor:
        """Binary cross-entropy of ``target`` given probabilities; see
        :func:`binary_cross_entropy`.
        """
        return binary_cross_entropy(input, target, self.weight, self.reduction)


__all__ = [
    "mse_loss", "square_loss", "hinge_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy_with_logits", "binary_cross_entropy", "MSELoss", "SquareLoss",
    "HingeLoss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss", "BCELoss",
]
