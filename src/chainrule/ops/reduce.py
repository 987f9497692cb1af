"""Reductions: sum, mean, max, min, var (and std built on var), argmax/argmin.

All take ``axis`` (None, an int or a tuple) and ``keepdims``, or PyTorch's ``dim``/``keepdim``.
The VJP of a reduction reshapes the incoming gradient to the kept-dims shape and broadcasts it.
"""

from __future__ import annotations

from typing import Any

from ..autograd import apply
from ..backend import get_xp
from ..errors import InvalidValueError, ShapeError
from ..tensor import Tensor, as_tensor
from .elementwise import _floating, _quiet
from . import axes as _axes
from .constants import cached_constant
from .registry import primitive


def sum_2d(a: Any, axis: int) -> Any:
    """The sum of a 2-D array over ``axis`` (0: shape (k,) from (n, k); 1: shape (n,)), computed
    as a product with a vector of ones. BLAS's matrix-vector product is 2-8x faster than NumPy's
    sum over the outer axis or over short rows (1024 x 256 over axis 0: 14 against 37 us;
    1024 x 10 over axis 1: 2.7 against 21 us; 32 x 64 over axis 0: 0.7 against 1.3 us). The
    ones are a read-only constant kept per length and dtype (``constants.cached_constant``)."""
    ones = cached_constant(get_xp(a), "ones", 0, a.shape[axis], a.dtype)
    return ones.dot(a) if axis == 0 else a.dot(ones)


def _expand(g, shape, axes):
    """Gradient of a reduction, reshaped to keepdims form (broadcasts against the input)."""
    return g.reshape(_axes.kept_shape(shape, axes))


@primitive("sum", kind="reduce", saves="the input's shape")
class Sum:
    """sum over axes;  dx = g broadcast back over the reduced axes."""

    def forward(ctx, x, axes, keepdims):
        if ctx is not None:
            ctx.saved = (x.shape, axes)
        return x.sum(axis=axes, keepdims=keepdims)

    def vjp(ctx, g):
        shape, axes = ctx.saved
        return (get_xp(g).broadcast_to(_expand(g, shape, axes), shape),)


@primitive("mean", kind="reduce", saves="the input's shape")
class Mean:
    """mean over axes;  dx = g / n broadcast back (n = number of reduced elements)."""

    def forward(ctx, x, axes, keepdims):
        if ctx is not None:
            ctx.saved = (x.shape, axes)
        # sum / n: NumPy's mean computes the same pairwise sum but costs ~3 us more per call
        with _quiet(get_xp(x)):  # the mean of nothing is NaN, as in NumPy, without a warning
            return x.sum(axis=axes, keepdims=keepdims) / _count(x.shape, axes)

    def vjp(ctx, g):
        shape, axes = ctx.saved
        n = _count(shape, axes)
        return (get_xp(g).broadcast_to(_expand(g, shape, axes) / n, shape),)


def _count(shape, axes) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axes is None or i in axes:
            n *= s
    return n


@primitive("max", kind="reduce", domain="smooth", saves="the input and the output")
class Max:
    """max over axes;  dx = g [x = max] / (number of maxima): tied maxima share the gradient
    equally (PyTorch's ``amax`` rule)."""

    def forward(ctx, x, axes, keepdims):
        if x.size == 0:
            _check_nonempty("max", x, axes)
        out = x.max(axis=axes, keepdims=True)
        if ctx is not None:
            ctx.saved = (x, out, axes)
        return out if keepdims else out.reshape(_reduced_shape(x.shape, axes))

    def vjp(ctx, g):
        x, out, axes = ctx.saved
        return (_share_extremum(g, x, out, axes),)


@primitive("min", kind="reduce", domain="smooth", saves="the input and the output")
class Min:
    """min over axes;  dx = g [x = min] / (number of minima)."""

    def forward(ctx, x, axes, keepdims):
        if x.size == 0:
            _check_nonempty("min", x, axes)
        out = x.min(axis=axes, keepdims=True)
        if ctx is not None:
            ctx.saved = (x, out, axes)
        return out if keepdims else out.reshape(_reduced_shape(x.shape, axes))

    def vjp(ctx, g):
        x, out, axes = ctx.saved
        return (_share_extremum(g, x, out, axes),)


def _share_extremum(g, x, out, axes):
    hit = (x == out).astype(g.dtype)
    hit /= hit.sum(axis=axes, keepdims=True)
    return hit * _expand(g, x.shape, axes)


def _reduced_shape(shape, axes):
    if axes is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i not in axes)


def _check_nonempty(op, x, axes):
    if any(n == 0 for i, n in enumerate(x.shape) if axes is None or i in axes):
        raise ShapeError(f"{op}: reduction over an empty axis of a tensor of shape "
                         f"{tuple(x.shape)} (axis {'all' if axes is None else axes}); "
                         "expected every reduced axis to have at least one element")


@primitive("var", kind="reduce", saves="the centred input x - mean(x)")
class Var:
    """variance with ``ddof`` (default 0, NumPy's convention; PyTorch's default is 1);
    dx = 2 g (x - mean) / (n - ddof)."""

    def forward(ctx, x, axes, keepdims, ddof=0):
        n = _count(x.shape, axes)
        if n - ddof <= 0:
            raise ShapeError(f"var: {n} element(s) with ddof={ddof} leaves no degrees of freedom")
        centred = x - x.mean(axis=axes, keepdims=True)
        out = (centred * centred).sum(axis=axes, keepdims=keepdims) / (n - ddof)
        if ctx is not None:
            ctx.saved = (centred, axes, n - ddof)
        return out.astype(x.dtype, copy=False)

    def vjp(ctx, g):
        centred, axes, dof = ctx.saved
        return (centred * (_expand(g, centred.shape, axes) * (2.0 / dof)),)


@primitive("argmax", kind="other", differentiable=False)
class ArgMax:
    """Index of the maximum along one axis (or of the flattened tensor); not differentiable."""

    def forward(ctx, x, axis, keepdims):
        return get_xp(x).argmax(x, axis=axis, keepdims=keepdims)


@primitive("argmin", kind="other", differentiable=False)
class ArgMin:
    """Index of the minimum along one axis (or of the flattened tensor); not differentiable."""

    def forward(ctx, x, axis, keepdims):
        return get_xp(x).argmin(x, axis=axis, keepdims=keepdims)


# --------------------------------------------------------------------------- public functions
def _reduction(prim, doc, floating=False):
    def fn(x: Any, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        x = _floating(x) if floating else as_tensor(x)
        axis, keepdims = _axes.resolve(prim.name, axis, keepdims, aliases)
        return apply(prim, (x,), _axes.normalize(prim.name, axis, x.ndim), keepdims)

    fn.__name__ = prim.name
    fn.__doc__ = (f"{doc}\n\n{prim.doc}\n\nShape: the input's shape without the reduced axes "
                  "(kept as 1 with ``keepdims``); ``axis`` is None (all), an int or a tuple.")
    return fn


sum = _reduction(Sum, "Sum over ``axis`` (all axes when None).")  # noqa: A001
mean = _reduction(Mean, "Mean over ``axis`` (all axes when None; integer input gives the "
                        "default float dtype).", floating=True)
max = _reduction(Max, "Maximum over ``axis``; ties share the gradient equally.")  # noqa: A001
min = _reduction(Min, "Minimum over ``axis``; ties share the gradient equally.")  # noqa: A001


def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0, **aliases: Any) -> Tensor:
    """Variance over ``axis`` with ``ddof`` delta degrees of freedom (``correction=`` is an alias).

    Shape: the input's shape without the reduced axes (kept as 1 with ``keepdims``).
    """
    if "correction" in aliases:
        ddof = aliases.pop("correction")
    x = _floating(x)
    axis, keepdims = _axes.resolve("var", axis, keepdims, aliases)
    return apply(Var, (x,), _axes.normalize("var", axis, x.ndim), keepdims, int(ddof))


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: int = 0, **aliases: Any) -> Tensor:
    """Standard deviation, sqrt(var(x)); same arguments as :func:`var`."""
    from .elementwise import sqrt

    return sqrt(var(x, axis, keepdims, ddof, **aliases))


def _arg(prim):
    def fn(x: Any, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        x = as_tensor(x)
        axis, keepdims = _axes.resolve(prim.name, axis, keepdims, aliases)
        if axis is not None:
            axis = _axes.single(prim.name, axis, x.ndim)
        if x.size == 0:
            raise ShapeError(f"{prim.name} of an empty tensor")
        return apply(prim, (x,), axis, keepdims)

    fn.__name__ = prim.name
    fn.__doc__ = prim.doc
    return fn


argmax = _arg(ArgMax)
argmin = _arg(ArgMin)

__all__ = ["sum", "mean", "max", "min", "var", "std", "argmax", "argmin", "InvalidValueError"]
