"""Fused loss primitives: one graph node where a composite would be slower or less stable.

``cross_entropy`` is the hot path of classification (softmax cross-entropy against class indices,
with optional per-row weights); ``binary_cross_entropy`` on probabilities needs PyTorch's clamped
logarithms *and* a matching gradient, which no composite of ``log`` and ``clip`` gives at p = 0
or 1. Inputs are validated by ``chainrule.nn.functional``; these functions assume valid arrays.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from ..autograd import apply
from ..backend import get_xp
from ..tensor import Tensor
from .constants import cached_constant
from .registry import primitive

REDUCTIONS = ("mean", "sum", "none")


def _quiet(xp: Any) -> Any:
    """Silence log(0) warnings where the result is clamped on purpose."""
    errstate = getattr(xp, "errstate", None)
    return errstate(divide="ignore") if errstate is not None else contextlib.nullcontext()


@primitive("cross_entropy", kind="other",
           saves="the softmax probabilities, the labels (as flat indices) and the per-row weights")
class CrossEntropy:
    """Softmax cross-entropy of logits x (N, C) against labels y (N,) with per-row weights c
    (None for all ones): loss_i = c_i (logsumexp(x_i) - x_{i,y_i}), then summed, averaged
    (divided by sum_i c_i) or kept per row;  dx_i = c_i (softmax(x_i) - onehot(y_i)) g_i
    (g_i = g / sum_i c_i for the mean)."""

    def forward(ctx, x, labels, coef, reduction):
        xp = get_xp(x)
        if not x.flags.c_contiguous:
            x = xp.ascontiguousarray(x)  # the flat indices below address C-ordered rows
        n, c = x.shape
        # Each row's label as an index into the flattened (N, C) array: a pick from the flat
        # array and, in the VJP, a flat in-place subtract, instead of indexing with an arange
        # and the labels (32 x 10: 0.5 against 1.2 us for the pick, 0.8 against 2.3 us for the
        # subtract). The sum is a new array, so the graph keeps the labels as they were even if
        # the caller later writes into theirs (no defensive copy of the labels is needed).
        if labels.dtype != xp.int64:
            labels = labels.astype(xp.int64)  # narrow offsets would overflow; uint64 would float
        flat = labels + cached_constant(xp, "offsets", n, c, xp.int64)
        m = _row_max(xp, x)
        loss, e, s = _row_losses(xp, x, m, flat)
        # The shift m only has to make exp() safe. An infinite or NaN row maximum makes that
        # row's loss NaN, so a finite sum proves every m finite; only otherwise are the rows
        # redone with the non-finite maxima replaced by 0 (which keeps -inf logits exact). This
        # saves the isfinite/where passes of every ordinary step.
        total = _total(xp, loss)
        if not math.isfinite(total) and not bool(xp.isfinite(m).all()):
            loss, e, s = _row_losses(xp, x, xp.where(xp.isfinite(m), m, 0), flat)
            total = _total(xp, loss)
        if coef is not None:
            loss *= coef
            total = _total(xp, loss)
        denom = None
        if reduction == "none":
            out = loss
        elif reduction == "sum":
            out = total
        else:
            denom = float(n if coef is None else coef.sum())
            out = total / denom if denom != 0 else xp.nan
        if ctx is not None:
            e /= s  # the softmax, in place: e is this forward's own (C-ordered) array
            ctx.saved = (e, flat, coef, reduction, denom)
        return xp.asarray(out, dtype=x.dtype)

    def vjp(ctx, g):
        p, flat, coef, reduction, denom = ctx.saved
        n = p.shape[0]
        # scale: d(out)/d(loss_i). For sum and mean a NumPy scalar (g[()]), which broadcasts
        # over the rows (arithmetic on a scalar costs less than on a 0-d array); a column for
        # "none" or per-row weights. With the flat label indices this VJP went from 4.0 to
        # 1.4 us at 32 x 10 float32 (49 000 -> 20 000 instructions; 1024 x 10: 177 000 -> 61 000).
        if reduction == "none":
            scale = g.reshape(n, 1)
        elif reduction == "sum":
            scale = g[()]
        else:
            scale = g[()] / denom if denom else g[()] * 0
        if coef is not None:
            scale = scale * coef.reshape(n, 1)
        dx = p * scale  # C-ordered like p, so reshape(-1) is a view
        dx.reshape(-1)[flat] -= scale if scale.ndim == 0 else scale.reshape(-1)
        return (dx,)


def _total(xp: Any, loss: Any) -> Any:
    """The sum of the per-row losses (NumPy's pairwise sum, called without ``ndarray.sum``'s
    Python wrapper)."""
    return np.add.reduce(loss) if xp is np else loss.sum()


def _row_max(xp: Any, x: Any) -> Any:
    """Each row's maximum, shape (N, 1). NumPy reduces a short contiguous row element by element;
    on a column-major copy the same maximum is an elementwise maximum of whole columns, 5-10x
    faster for few classes (1024 x 10: 4.8 against 51 us; 32 x 10: 1.2 against 2.3 us) but
    slower for many (32 x 1000: 26 against 4 us), hence the bounds. (``np.maximum.reduce`` is
    ``ndarray.max`` without its Python wrapper.)"""
    if x.shape[0] >= 8 and x.shape[1] <= 32:
        x = xp.asfortranarray(x)
    if xp is np:
        return np.maximum.reduce(x, axis=1, keepdims=True)
    return x.max(axis=1, keepdims=True)


def _row_losses(xp: Any, x: Any, m: Any, flat: Any) -> tuple[Any, Any, Any]:
    """Per-row logsumexp(x_i) - x_{i, y_i} computed with the shift m (N, 1), and exp(x - m) with
    its row sums (the softmax's numerator and denominator); ``flat`` holds the flat index of
    each row's label."""
    z = x - m
    picked = z.reshape(-1)[flat]
    e = xp.exp(z, out=z)  # z is a fresh array and picked has what the loss needs from it
    s = e.dot(cached_constant(xp, "ones", 0, e.shape[1], e.dtype))  # = sum_2d(e, 1)
    loss = xp.log(s)
    loss -= picked
    return loss, e, s.reshape(-1, 1)


def _row_weighted_total(xp: Any, loss: Any, coef: Any) -> Any:
    """sum_i c_i sum_j loss_ij (``loss`` is this forward's own array, weighted in place)."""
    if coef is not None:
        loss *= coef.reshape((-1,) + (1,) * (loss.ndim - 1))
    return np.add.reduce(loss.reshape(-1)) if xp is np else loss.sum()


def _row_scale(g: Any, coef: Any, scale: float, ndim: int) -> Any:
    """g scale, times each row's weight c_i when there are weights (broadcasting over rows)."""
    s = g[()] * scale
    return s if coef is None else s * coef.reshape((-1,) + (1,) * (ndim - 1))


def _f_minus_tx_vjp(ctx: Any, g: Any) -> tuple[Any, Any]:
    """The VJP of scale * sum_i c_i sum_j [f(x_ij) - t_ij x_ij] from the saved
    (f'(x), t, c, scale, x or None): dx = scale g c_i (f'(x_ij) - t_ij), dt = -scale g c_i x_ij.
    f'(x) is the forward's own array: on the VJP's last use it becomes dx in place."""
    fprime, t, coef, scale, x = ctx.saved
    s = _row_scale(g, coef, scale, fprime.ndim)
    needs = ctx.needs
    dt = -(x * s) if needs[1] else None
    dx = get_xp(fprime).subtract(fprime, t, out=fprime) if ctx.final else fprime - t
    dx *= s
    return (dx if needs[0] else None, dt)


@primitive("squared_error", kind="other", saves="the differences x - t and the row weights")
class SquaredError:
    """scale * sum_i c_i sum_j (x_ij - t_ij)^2, a scalar, for x and t of one shape (N, ...) and
    row weights c (N,) (None for all ones);  dx = 2 scale g c_i (x_ij - t_ij),  dt = -dx.

    One node for what the chain sub, mul, sum, mul computes (the square loss of the scikit-learn
    regressor, with its weights and its 1 / 2K). Without weights it gives the chain's numbers
    bit for bit: the chain's gradient g' e + g' e (g' = g scale) is 2 (g' e) exactly, and so is
    e (2 scale g), since doubling is exact in binary floating point."""

    def forward(ctx, x, t, coef, scale):
        xp = get_xp(x)
        e = xp.asarray(x - t)  # an array even for 0-d operands (NumPy gives a scalar there),
        # since the VJP writes into it
        total = _row_weighted_total(xp, e * e, coef)
        if ctx is not None:
            ctx.saved = (e, coef, scale)
        return xp.asarray(total * scale, dtype=x.dtype)

    def vjp(ctx, g):
        e, coef, scale = ctx.saved
        xp = get_xp(g)
        s = _row_scale(g, coef, 2 * scale, e.ndim)
        # e is this node's own array: on its last use it becomes dx in place
        dx = xp.multiply(e, s, out=e) if ctx.final else e * s
        needs = ctx.needs
        return (dx if needs[0] else None, -dx if needs[1] else None)


@primitive("bce_with_logits", kind="other",
           saves="sigmoid(x), the targets and the row weights (and x when t needs a gradient)")
class BCEWithLogits:
    """scale * sum_i c_i sum_j [softplus(x_ij) - t_ij x_ij], a scalar: the binary cross-entropy
    of sigmoid(x) against targets t in [0, 1], for x and t of one shape (N, ...) and row
    weights c (N,) (None for all ones);  dx = scale g c_i (sigmoid(x_ij) - t_ij),
    dt = -scale g c_i x_ij.

    softplus(x) - t x is computed as max(x, 0) - t x + log1p(exp(-|x|)): no overflow for any
    finite logit, and exact where the sigmoid saturates. One node for the chain of softplus,
    products and sums of ``F.binary_cross_entropy_with_logits`` (the binary and multilabel
    ``log_loss`` of the scikit-learn classifier)."""

    def forward(ctx, x, t, coef, scale):
        xp = get_xp(x)
        e = xp.exp(-xp.abs(x))
        loss = xp.log1p(e)
        loss += xp.maximum(x, 0)
        loss -= x * t
        total = _row_weighted_total(xp, loss, coef)
        if ctx is not None:
            p = xp.where(x >= 0, 1.0, e)  # sigmoid(x) from e, as the sigmoid primitive
            e += 1
            p /= e
            ctx.saved = (p, t, coef, scale, x if ctx.needs[1] else None)
        return xp.asarray(total * scale, dtype=x.dtype)

    def vjp(ctx, g):
        return _f_minus_tx_vjp(ctx, g)  # f = softplus, f' = sigmoid


@primitive("hinge", kind="other", saves="the targets, the active-margin mask and the row weights "
                                       "(and x when t needs a gradient)")
class Hinge:
    """scale * sum_i c_i sum_j max(0, 1 - t_ij x_ij), a scalar, for x and t (labels in {-1, +1})
    of one shape (N, ...) and row weights c (N,) (None for all ones);
    dx = -scale g c_i t_ij [1 - t_ij x_ij > 0],  dt = -scale g c_i x_ij [1 - t_ij x_ij > 0]
    (the subgradient 0 at the kink, as relu's)."""

    def forward(ctx, x, t, coef, scale):
        xp = get_xp(x)
        margin = xp.asarray(x * t)  # an array even for 0-d operands: written in place below
        xp.subtract(1, margin, out=margin)
        active = margin > 0
        xp.maximum(margin, 0, out=margin)
        total = _row_weighted_total(xp, margin, coef)
        if ctx is not None:
            ctx.saved = (t, active, coef, scale, x if ctx.needs[1] else None)
        return xp.asarray(total * scale, dtype=x.dtype)

    def vjp(ctx, g):
        t, active, coef, scale, x = ctx.saved
        s = _row_scale(g, coef, -scale, active.ndim)
        needs = ctx.needs
        dx = t * s if needs[0] else None
        if dx is not None:
            dx *= active
        dt = None
        if needs[1]:
            dt = x * s
            dt *= active
        return (dx, dt)


@primitive("poisson_nll", kind="other", saves="exp(x), the targets and the row weights (and x "
                                             "when t needs a gradient)")
class PoissonNLL:
    """scale * sum_i c_i sum_j [exp(x_ij) - t_ij x_ij], a scalar: the Poisson negative
    log-likelihood of counts t under the mean exp(x), without its constant log(t!) (PyTorch's
    ``poisson_nll_loss`` with ``log_input=True``), for x and t of one shape (N, ...) and row
    weights c (N,) (None for all ones);  dx = scale g c_i (exp(x_ij) - t_ij),
    dt = -scale g c_i x_ij."""

    def forward(ctx, x, t, coef, scale):
        xp = get_xp(x)
        mu = xp.asarray(xp.exp(x))  # an array even for 0-d x: the VJP writes into it
        loss = mu - x * t
        total = _row_weighted_total(xp, loss, coef)
        if ctx is not None:
            ctx.saved = (mu, t, coef, scale, x if ctx.needs[1] else None)
        return xp.asarray(total * scale, dtype=x.dtype)

    def vjp(ctx, g):
        return _f_minus_tx_vjp(ctx, g)  # f = f' = exp


@primitive("binary_cross_entropy", kind="other",
           saves="p and y; the clamped logarithms when y needs a gradient")
class BinaryCrossEntropy:
    """-(y log p + (1 - y) log(1 - p)) elementwise, each log clamped below at -100 (PyTorch's
    rule, finite at p = 0 and p = 1);  dp = g (p - y) / max(p (1 - p), 1e-12),
    dy = -g (log p - log(1 - p)) with the clamped logs."""

    def forward(ctx, p, y):
        xp = get_xp(p)
        with _quiet(xp):
            log_p = xp.maximum(xp.log(p), -100)
            log_q = xp.maximum(xp.log1p(-p), -100)
        if ctx is not None:
            ctx.saved = (p, y, (log_p, log_q) if ctx.needs[1] else None)
        return -(y * log_p + (1 - y) * log_q)

    def vjp(ctx, g):
        p, y, logs = ctx.saved
        xp = get_xp(g)
        dp = g * (p - y) / xp.maximum(p * (1 - p), 1e-12) if ctx.needs[0] else None
        dy = -g * (logs[0] - logs[1]) if logs is not None else None
        return dp, dy


def softmax_cross_entropy(logits: Tensor, labels: Any, coef: Any, reduction: str) -> Tensor:
    """The fused ``cross_entropy`` node (no validation: see ``chainrule.nn.functional``).

    Args:
        logits: tensor of shape (N, C).
        labels: backend integer array of shape (N,), every entry in [0, C).
        coef: None, or a backend array of shape (N,) and the logits' dtype: the weight of each row
            (0 drops a row, as ``ignore_index`` does).
        reduction: "mean" (weighted mean), "sum" or "none" (shape (N,)).
    """
    return apply(CrossEntropy, (logits,), labels, coef, reduction)


def squared_error(x: Tensor, t: Any, coef: Any, scale: float) -> Tensor:
    """The fused ``squared_error`` node: scale * sum_i c_i sum_j (x_ij - t_ij)^2 (no validation).

    Args:
        x: tensor of shape (N, ...).
        t: tensor or backend array of x's shape and dtype (a constant unless a tensor that
            requires grad).
        coef: None, or a backend array of shape (N,) in x's dtype: each row's weight.
        scale: the factor in front (1 / (2 K N) for the regressor's half squared error).
    """
    return apply(SquaredError, (x, t), coef, scale)


def bce_with_logits(x: Tensor, t: Any, coef: Any, scale: float) -> Tensor:
    """The fused ``bce_with_logits`` node: scale * sum_i c_i sum_j [softplus(x_ij) - t_ij x_ij]
    (no validation).

    Args:
        x: logits, a tensor of shape (N, ...).
        t: targets in [0, 1], a tensor or backend array of x's shape and dtype.
        coef: None, or a backend array of shape (N,) in x's dtype: each row's weight.
        scale: the factor in front (1 / sum_i c_i for the classifier's weighted mean).
    """
    return apply(BCEWithLogits, (x, t), coef, scale)


def hinge(x: Tensor, t: Any, coef: Any, scale: float) -> Tensor:
    """The fused ``hinge`` node: scale * sum_i c_i sum_j max(0, 1 - t_ij x_ij) (no validation;
    arguments as for :func:`squared_error`, t in {-1, +1})."""
    return apply(Hinge, (x, t), coef, scale)


def poisson_nll(x: Tensor, t: Any, coef: Any, scale: float) -> Tensor:
    """The fused ``poisson_nll`` node: scale * sum_i c_i sum_j [exp(x_ij) - t_ij x_ij] for
    log-means x and counts t (no validation; arguments as for :func:`squared_error`)."""
    return apply(PoissonNLL, (x, t), coef, scale)


def binary_cross_entropy(p: Tensor, y: Tensor) -> Tensor:
    """The elementwise ``binary_cross_entropy`` node on probabilities ``p`` and targets ``y`` of
    the same shape and dtype (no validation, no reduction)."""
    return apply(BinaryCrossEntropy, (p, y))
