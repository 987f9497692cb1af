"""Neural-network primitives with hand-written VJPs where one node beats a composite:
``logsumexp``, ``softmax``, ``log_softmax`` (numerically stable by max-shifting) and the fused
affine map ``linear`` (s = x W^T + b, the lecture's signal, as one node)."""

from __future__ import annotations

from typing import Any

from ..autograd import apply
from ..backend import get_xp
from ..dtypes import as_dtype
from ..errors import DTypeError, ShapeError
from ..tensor import Tensor, as_tensor
from .elementwise import _floating
from . import axes as _axes
from .reduce import sum_2d
from .registry import primitive


def _lse(x, axes):
    """log(sum(exp(x))) over ``axes`` with keepdims, stable for any finite x and for -inf rows;
    -inf (the log of an empty sum) over axes without elements."""
    xp = get_xp(x)
    if x.size == 0:
        kept = _axes.kept_shape(x.shape, (axes,) if isinstance(axes, int) else axes)
        return xp.full(kept, -xp.inf, dtype=x.dtype)
    m = x.max(axis=axes, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)
    s = xp.exp(x - m).sum(axis=axes, keepdims=True)
    return xp.log(s) + m


@primitive("logsumexp", kind="reduce", saves="the input and the output")
class LogSumExp:
    """log sum_i exp(x_i);  dx = g softmax(x)."""

    def forward(ctx, x, axes, keepdims):
        out = _lse(x, axes)
        if ctx is not None:
            ctx.saved = (x, out)
        if keepdims:
            return out
        return out.reshape(() if axes is None else
                           tuple(n for i, n in enumerate(x.shape) if i not in axes))

    def vjp(ctx, g):
        x, out = ctx.saved
        xp = get_xp(g)
        return (xp.exp(x - out) * g.reshape(out.shape),)


@primitive("softmax", kind="other", saves="the output")
class Softmax:
    """p_i = exp(x_i) / sum_j exp(x_j) along an axis (None for a 0-d x);  dx = p (g - sum(g p))."""

    def forward(ctx, x, axis):
        xp = get_xp(x)
        if x.size == 0:
            e = xp.empty_like(x)  # nothing to normalise: an empty result of x's shape
        else:
            e = xp.exp(x - x.max(axis=axis, keepdims=True))
            e /= e.sum(axis=axis, keepdims=True)
        if ctx is not None:
            ctx.saved = (e, axis)
        return e

    def vjp(ctx, g):
        p, axis = ctx.saved
        gp = g * p
        gp -= p * gp.sum(axis=axis, keepdims=True)
        return (gp,)


@primitive("log_softmax", kind="other", saves="the output")
class LogSoftmax:
    """x_i - logsumexp(x) along an axis;  dx = g - softmax(x) sum(g).

    Computed as (x - m) - log(sum(exp(x - m))), m the maximum: subtracting the shifted values
    keeps the precision that x - logsumexp(x) loses when the logits are large (at 1e4 in
    float32, logsumexp rounds to a multiple of 2^-10: outputs off by 2.4e-4)."""

    def forward(ctx, x, axis):
        xp = get_xp(x)
        if x.size == 0:
            out = xp.empty_like(x)      # nothing to normalise: an empty result of x's shape
        else:
            m = x.max(axis=axis, keepdims=True)
            z = x - xp.where(xp.isfinite(m), m, 0)
            out = z - xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
        if ctx is not None:
            ctx.saved = (out, axis)
        return out

    def vjp(ctx, g):
        out, axis = ctx.saved
        xp = get_xp(g)
        return (g - xp.exp(out) * g.sum(axis=axis, keepdims=True),)


def _transpose_product(batch: int, weight_size: int) -> bool:
    """Whether ``linear`` computes x W^T as (W x^T)^T, the same product with the operands'
    roles swapped. OpenBLAS (0.3.31, SkylakeX kernels, 1 or 2 threads) blocks the two
    differently: with 8 to 64 rows in the batch and a weight of 32k entries or more, (W x^T)^T
    is 1.2-2x faster (784 -> 256 at batch 16: 94 against 148 us); elsewhere it is equal or up to
    30% slower (small weights, large batches). The result is then a transposed (F-ordered) view,
    which elementwise ops and the next product take as it is. The training step of the
    784-256-128-10 MLP at batch 16 went from 23,200 to 26,600 samples/s (one thread)."""
    return 8 <= batch <= 64 and weight_size >= 32768


@primitive("linear", kind="other", saves="x when W needs a gradient; W when x does")
class Linear:
    """s = x W^T + b for x of shape (..., in), W (out, in), b (out,);
    dx = g W, dW = g^T x, db = sum of g over the batch."""

    def forward(ctx, x, w, *bias):
        if x.shape[-1] != w.shape[1]:
            raise ShapeError(f"linear: input has {x.shape[-1]} features but the weight of shape "
                             f"{tuple(w.shape)} expects {w.shape[1]}")
        x2 = x if x.ndim == 2 else x.reshape(-1, x.shape[-1])
        out = w.dot(x2.T).T if _transpose_product(x2.shape[0], w.size) else x2.dot(w.T)
        if bias:
            out += bias[0]
        if ctx is not None:
            ctx.saved = (x2 if ctx.needs[1] else None, w if ctx.needs[0] else None, x.shape)
        return out if x.ndim == 2 else out.reshape(x.shape[:-1] + (w.shape[0],))

    def vjp(ctx, g):
        x2, w, x_shape = ctx.saved
        g2 = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
        needs = ctx.needs
        dx = g2.dot(w).reshape(x_shape) if needs[0] else None
        dw = g2.T.dot(x2) if needs[1] else None
        if len(needs) == 3:
            return dx, dw, (sum_2d(g2, 0) if needs[2] else None)
        return dx, dw


def logsumexp(x: Any, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
    """log(sum(exp(x))) over ``axis`` (all axes when None), computed without overflow."""
    x = _floating(x)
    axis, keepdims = _axes.resolve("logsumexp", axis, keepdims, aliases, reduction=True)
    return apply(LogSumExp, (x,), _axes.normalize("logsumexp", axis, x.ndim), keepdims)


def softmax(x: Any, axis: int = -1, dtype: Any = None, **aliases: Any) -> Tensor:
    """Softmax along ``axis`` (default the last; ``dim=`` is an alias): p_i = e^{x_i} / sum_j
    e^{x_j}. ``dtype``, as in PyTorch, casts the input first (a float32 input with
    ``dtype="float64"`` is computed in float64). A 0-d tensor takes axis 0 or -1 (giving 1); an
    empty tensor gives an empty result.

    Shape: the input's.
    """
    return apply(Softmax, *_softmax_args("softmax", x, axis, dtype, aliases))


def log_softmax(x: Any, axis: int = -1, dtype: Any = None, **aliases: Any) -> Tensor:
    """log(softmax(x)) along ``axis``, computed as x - logsumexp(x) (stable); arguments as for
    :func:`softmax`."""
    return apply(LogSoftmax, *_softmax_args("log_softmax", x, axis, dtype, aliases))


def _softmax_args(op: str, x: Any, axis: Any, dtype: Any, aliases: dict[str, Any]):
    x = _floating(x)
    if dtype is not None:
        dt = as_dtype(dtype)
        if dt.kind != "f":
            raise DTypeError(f"{op}: dtype must be floating, got {dt}")
        if dt != x.dtype:
            x = x.astype(dt)
    axis, _ = _axes.resolve(op, axis if "dim" not in aliases else None, False, aliases)
    return (x,), _axes.single_or_scalar(op, axis, x.ndim)


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """The affine map s = x W^T + b as one node (PyTorch's ``F.linear``).

    Shape: x (..., in), weight (out, in), bias (out,) -> (..., out).
    """
    x = as_tensor(x)
    w = as_tensor(weight, x)
    w_shape = w.data.shape  # (the arrays' attributes: Tensor's properties cost a call each)
    if len(w_shape) != 2:
        raise ShapeError(f"linear: weight must be 2-D (out, in), got shape {tuple(w.shape)}")
    if x.data.ndim == 0:
        raise ShapeError("linear: input must have at least one dimension")
    if bias is None:
        return apply(Linear, (x, w))
    b = as_tensor(bias, x)
    if b.data.shape != (w_shape[0],):
        raise ShapeError(f"linear: bias must have shape ({w.shape[0]},), got {tuple(b.shape)}")
    return apply(Linear, (x, w, b))
