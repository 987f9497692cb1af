"""Reductions: sum, mean, max, min, var (and std built on var), argmax/argmin.

All take ``axis`` (None, an int or a tuple) and ``keepdims``, or PyTorch's ``dim``/``keepdim``.
The VJP of a reduction reshapes the incoming gradient to the kept-dims shape and broadcasts it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

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
    """variance with ``ddof`` (default 0, NumPy's convention; PyTorch's default is 1; any real
    number, as PyTorch's fractional ``correction``);  dx = 2 g (x - mean) / (n - ddof)."""

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
class ValuesIndices(NamedTuple):
    """What ``max(x, dim=d)`` and ``min(x, dim=d)`` return, as PyTorch's ``torch.return_types.max``:
    the extreme values along ``d`` and their indices (int64), so ``v, i = x.max(dim=1)`` unpacks
    the two, not the rows."""

    values: Tensor
    indices: Tensor


def _reduction(prim, doc, floating=False):
    def fn(x: Any, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        x = _floating(x) if floating else as_tensor(x)
        axis, keepdims = _axes.resolve(prim.name, axis, keepdims, aliases, reduction=True)
        return apply(prim, (x,), _axes.normalize(prim.name, axis, x.ndim), keepdims)

    fn.__name__ = prim.name
    fn.__doc__ = (f"{doc}\n\n{prim.doc}\n\nShape: the input's shape without the reduced axes "
                  "(kept as 1 with ``keepdims``); ``axis`` is None (all), an int or a tuple "
                  "(``axis=()`` reduces nothing, as in NumPy; ``dim=()`` every axis, as in "
                  "PyTorch).")
    return fn


sum = _reduction(Sum, "Sum over ``axis`` (all axes when None).")  # noqa: A001
mean = _reduction(Mean, "Mean over ``axis`` (all axes when None; integer input gives the "
                        "default float dtype).", floating=True)
amax = _reduction(Max, "Maximum over ``axis`` or ``dim`` (None or a tuple; all axes when None); "
                       "ties share the gradient equally (PyTorch's ``amax``).")
amin = _reduction(Min, "Minimum over ``axis`` or ``dim`` (None or a tuple; all axes when None); "
                       "ties share the gradient equally (PyTorch's ``amin``).")
amax.__name__, amin.__name__ = "amax", "amin"


def _extremum(name: str, reduce_fn, arg_fn):
    def fn(x: Any, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Any:
        if aliases.get("dim") is not None:
            return _with_indices(name, arg_fn, x, axis, keepdims, aliases)
        return reduce_fn(x, axis, keepdims, **aliases)

    fn.__name__ = name
    fn.__doc__ = f"""The {name}imum over ``axis`` (all axes when None; an int or a tuple), or, given
    ``dim=d`` (PyTorch's spelling), the pair ``(values, indices)`` along that one axis.

    ``x.{name}(axis=1)`` and ``x.{name}(1)`` give a tensor (NumPy's ``{name}``; tied extremes
    share the gradient equally, as PyTorch's ``a{name}``); ``x.{name}(dim=1)`` gives a
    :class:`ValuesIndices` named tuple ``(values, indices)`` as PyTorch's ``{name}(x, 1)`` does,
    whose gradient flows to the element each index names. ``keepdim=True`` keeps the axis.

    Shape: the input's shape without the reduced axes (kept as 1 with ``keepdims``).
    """
    return fn


def _with_indices(name: str, arg_fn, x: Any, axis: Any, keepdims: bool,
                  aliases: dict[str, Any]) -> ValuesIndices:
    x = as_tensor(x)
    dim, keepdim = _axes.resolve(name, axis, keepdims, aliases)
    if isinstance(dim, (tuple, list)):
        raise InvalidValueError(f"{name}(dim=) takes one axis and returns (values, indices), as "
                                f"PyTorch's; for several axes use axis={tuple(dim)} or "
                                f"a{name}(dim=...), which return the values")
    d = _axes.single_or_scalar(name, dim, x.ndim)
    if d is None:  # a 0-d tensor: its own extreme, at index 0
        from .shape import reshape

        return ValuesIndices(reshape(x, ()), arg_fn(x))
    indices = arg_fn(x, d, True)
    values = _take_along(x, indices, d)
    if not keepdim:
        from .shape import squeeze

        values, indices = squeeze(values, d), squeeze(indices, d)
    return ValuesIndices(values, indices)


def _take_along(x: Tensor, indices: Tensor, axis: int) -> Tensor:
    """x[..., indices, ...] along ``axis`` (indices of x's shape with that axis of length 1), as
    an indexing of ``x``: the gradient reaches exactly the indexed elements."""
    from .shape import getitem

    xp = get_xp(x.data)
    index = []
    for k, n in enumerate(x.shape):
        if k == axis:
            index.append(indices.data)
        else:
            shape = [1] * x.ndim
            shape[k] = n
            index.append(xp.arange(n).reshape(shape))
    return getitem(x, tuple(index))


max = _extremum("max", _reduction(Max, ""), lambda *a: argmax(*a))  # noqa: A001
min = _extremum("min", _reduction(Min, ""), lambda *a: argmin(*a))  # noqa: A001


def var(x: Any, axis: Any = None, keepdims: bool = False, ddof: float = 0,
        **aliases: Any) -> Tensor:
    """Variance over ``axis``: sum((x - mean)^2) / (n - ddof), with ``ddof`` delta degrees of
    freedom (default 0, NumPy's convention; PyTorch's default is 1). PyTorch's ``correction=``
    is an alias of ``ddof`` (and may be fractional, as ``ddof``), ``unbiased=True``/``False``
    means ``ddof=1``/``0``; ``correction=None``, PyTorch's "its default", is refused because the
    two defaults differ.

    Shape: the input's shape without the reduced axes (kept as 1 with ``keepdims``).
    """
    ddof = _ddof("var", ddof, aliases)
    x = _floating(x)
    axis, keepdims = _axes.resolve("var", axis, keepdims, aliases, reduction=True)
    return apply(Var, (x,), _axes.normalize("var", axis, x.ndim), keepdims, ddof)


def _ddof(op: str, ddof: Any, aliases: dict[str, Any]) -> float:
    """``ddof`` merged with PyTorch's ``correction=`` and ``unbiased=`` (removed from
    ``aliases``), as a number."""
    given = [k for k in ("correction", "unbiased") if k in aliases]
    if len(given) > 1 or (given and ddof != 0):
        raise InvalidValueError(f"{op}: give one of ddof=, correction= and unbiased=")
    if "unbiased" in aliases:
        unbiased = aliases.pop("unbiased")
        if not isinstance(unbiased, (bool, np.bool_)):
            raise InvalidValueError(f"{op}: unbiased must be True or False, got {unbiased!r}")
        return 1 if unbiased else 0
    if "correction" in aliases:
        ddof = aliases.pop("correction")
        if ddof is None:
            raise InvalidValueError(
                f"{op}: correction=None means PyTorch's default, 1, which is not chainrule's "
                "(ddof=0, NumPy's): pass the number")
    if isinstance(ddof, (np.integer, np.floating)):
        ddof = ddof.item()
    if isinstance(ddof, bool) or not isinstance(ddof, (int, float)) or not math.isfinite(ddof):
        raise InvalidValueError(f"{op}: ddof/correction must be a finite number, got {ddof!r}")
    return ddof


def std(x: Any, axis: Any = None, keepdims: bool = False, ddof: float = 0,
        **aliases: Any) -> Tensor:
    """Standard deviation, sqrt(var(x)); same arguments as :func:`var`."""
    from .elementwise import sqrt

    return sqrt(var(x, axis, keepdims, ddof, **aliases))


def _arg(prim):
    def fn(x: Any, axis: Any = None, keepdims: bool = False, **aliases: Any) -> Tensor:
        x = as_tensor(x)
        axis, keepdims = _axes.resolve(prim.name, axis, keepdims, aliases)
        if axis is not None:
            # a 0-d tensor takes dim 0 or -1, as in PyTorch: its index is 0
            axis = _axes.single_or_scalar(prim.name, axis, x.ndim)
        if x.size == 0 and (axis is None or x.shape[axis] == 0):
            raise ShapeError(f"{prim.name} over an empty axis of a tensor of shape "
                             f"{tuple(x.shape)}: expected at least one element to pick from")
        return apply(prim, (x,), axis, keepdims)

    fn.__name__ = prim.name
    fn.__doc__ = prim.doc
    return fn


argmax = _arg(ArgMax)
argmin = _arg(ArgMin)

__all__ = ["sum", "mean", "max", "min", "amax", "amin", "var", "std", "argmax", "argmin",
           "ValuesIndices", "InvalidValueError"]
