"""Shape primitives: reshape, transpose, broadcast_to, getitem, concat, stack.

``flatten``, ``squeeze``, ``unsqueeze`` and ``permute`` are thin functions over ``reshape`` and
``transpose``: they only compute a target shape or axis order.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

from ..autograd import apply
from ..backend import get_xp
from ..errors import IndexingError, InvalidValueError, ShapeError
from ..tensor import Tensor, as_tensor
from . import axes as _axes
from .registry import primitive


@primitive("reshape", kind="other", saves="the input's shape", view=True)
class Reshape:
    """x viewed with a new shape of the same size;  dx = g reshaped back."""

    def forward(ctx, x, shape):
        if ctx is not None:
            ctx.saved = x.shape
        return x.reshape(shape)

    def vjp(ctx, g):
        return (g.reshape(ctx.saved),)


@primitive("transpose", kind="other", saves="the axis order", view=True)
class Transpose:
    """x with its axes permuted;  dx = g permuted by the inverse order."""

    def forward(ctx, x, order):
        if ctx is not None:
            ctx.saved = order
        return x.transpose(order)

    def vjp(ctx, g):
        order = ctx.saved
        inverse = [0] * len(order)
        for i, a in enumerate(order):
            inverse[a] = i
        return (g.transpose(inverse),)


@primitive("broadcast_to", kind="other", view=True)
class BroadcastTo:
    """x broadcast to a larger shape (a read-only view);  dx = g summed over the new axes."""

    def forward(ctx, x, shape):
        return get_xp(x).broadcast_to(x, shape)

    def vjp(ctx, g):
        return (g,)  # the engine's unbroadcast sums it back to x's shape


@primitive("getitem", kind="other", view=True,
           saves="the index (index arrays copied) and the input's shape")
class GetItem:
    """x[index] (basic slicing, integer arrays, boolean masks);  dx = g scattered back into
    zeros, with repeated indices accumulating."""

    def forward(ctx, x, index, advanced):
        if ctx is not None:
            # Index arrays are copied: the caller may reuse (and overwrite) them before backward.
            kept = _copy_index(index) if advanced else index
            ctx.saved = (x.shape, kept, advanced)
        return x[index]

    def vjp(ctx, g):
        shape, index, advanced = ctx.saved
        xp = get_xp(g)
        dx = xp.zeros(shape, dtype=g.dtype)
        if advanced:
            xp.add.at(dx, index, g)
        else:
            dx[index] = g
        return (dx,)


@primitive("concat", kind="other", saves="the split points")
class Concat:
    """concatenation along an axis;  dx_k = the slice of g that x_k occupies."""

    def forward(ctx, *args):
        *arrays, axis = args
        if ctx is not None:
            sizes = [a.shape[axis] for a in arrays]
            ctx.saved = (axis, sizes)
        return get_xp(*arrays).concatenate(arrays, axis=axis)

    def vjp(ctx, g):
        axis, sizes = ctx.saved
        out, start = [], 0
        for n, need in zip(sizes, ctx.needs):
            if need:
                idx = [slice(None)] * g.ndim
                idx[axis] = slice(start, start + n)
                out.append(g[tuple(idx)])
            else:
                out.append(None)
            start += n
        return tuple(out)


@primitive("stack", kind="other", saves="the axis")
class Stack:
    """stacking along a new axis;  dx_k = g taken at position k of that axis."""

    def forward(ctx, *args):
        *arrays, axis = args
        if ctx is not None:
            ctx.saved = axis
        return get_xp(*arrays).stack(arrays, axis=axis)

    def vjp(ctx, g):
        axis = ctx.saved
        return tuple(
            g.take(k, axis=axis) if need else None for k, need in enumerate(ctx.needs)
        )


@primitive("index_select", kind="other", saves="the indices, the axis and the input's shape")
class IndexSelect:
    """The entries at ``indices`` (1-D, integer) along one axis, in that order: take(x, indices,
    axis);  dx = g added back at those positions along the axis (repeated indices accumulate)."""

    def forward(ctx, x, axis, indices):
        if ctx is not None:
            # copied: the caller may overwrite its index array before backward
            ctx.saved = (axis, indices.copy(), x.shape)
        return get_xp(x).take(x, indices, axis=axis)

    def vjp(ctx, g):
        axis, indices, shape = ctx.saved
        xp = get_xp(g)
        dx = xp.zeros(shape, dtype=g.dtype)
        xp.add.at(dx, (slice(None),) * axis + (indices,), g)
        return (dx,)


# --------------------------------------------------------------------------- public functions
def _shape_arg(op: str, shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    try:
        return tuple(operator.index(s) for s in shape)
    except TypeError:
        raise InvalidValueError(f"{op}: shape must be integers, got {shape!r}") from None


def reshape(x: Any, *shape: Any) -> Tensor:
    """``x`` with shape ``shape`` (one entry may be -1); accepts ``reshape(2, 3)`` or
    ``reshape((2, 3))``. Shape: ``shape``, of the same size as ``x``."""
    x = as_tensor(x)
    target = _shape_arg("reshape", shape)
    known = math.prod(s for s in target if s != -1)
    if target.count(-1) > 1 or (
        -1 not in target and known != x.size
    ) or (-1 in target and (known == 0 or x.size % known)):
        raise ShapeError(f"reshape: cannot view a tensor of shape {tuple(x.shape)} "
                         f"({x.size} elements) as {target}")
    return apply(Reshape, (x,), target)


def transpose(x: Any, *axes: Any) -> Tensor:
    """Permute or swap axes.

    ``transpose(x)`` reverses all axes (``.T``); ``transpose(x, (2, 0, 1))`` (one sequence)
    permutes, as NumPy; ``transpose(x, dim0, dim1)`` (two integers) swaps those two axes, as
    PyTorch, on a tensor of any rank, so ``transpose(m, 0, 1)`` transposes a matrix.
    """
    x = as_tensor(x)
    if len(axes) == 2 and not isinstance(axes[0], (tuple, list)):
        return swapaxes(x, *axes)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        return apply(Transpose, (x,), tuple(range(x.ndim))[::-1])
    return permute(x, *axes)


def swapaxes(x: Any, axis1: int, axis2: int) -> Tensor:
    """Swap two axes (a 0-d tensor takes axes 0 and -1, as in PyTorch, and stays itself)."""
    x = as_tensor(x)
    a, b = (_axes.single_or_scalar("swapaxes", a, x.ndim) for a in (axis1, axis2))
    if x.ndim == 0:
        return apply(Transpose, (x,), ())
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return apply(Transpose, (x,), tuple(order))


def permute(x: Any, *axes: Any) -> Tensor:
    """Reorder all axes: ``permute(x, 2, 0, 1)``."""
    x = as_tensor(x)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    order = tuple(_axes.single("permute", a, x.ndim) for a in axes)
    if sorted(order) != list(range(x.ndim)):
        raise ShapeError(f"permute: {axes} is not a permutation of {x.ndim} axes")
    return apply(Transpose, (x,), order)


def flatten(x: Any, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes ``start_dim..end_dim`` (inclusive) into one."""
    x = as_tensor(x)
    if x.ndim == 0:
        return reshape(x, 1)
    s = _axes.single("flatten", start_dim, x.ndim)
    e = _axes.single("flatten", end_dim, x.ndim)
    if s > e:
        raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = x.shape
    return reshape(x, shape[:s] + (math.prod(shape[s:e + 1]),) + shape[e + 1:])


def squeeze(x: Any, axis: Any = None, **aliases: Any) -> Tensor:
    """Drop axes of length 1 (all of them, or those in ``axis``; ``dim=`` is an alias)."""
    x = as_tensor(x)
    axis, _ = _axes.resolve("squeeze", axis, False, aliases)
    axes = _axes.normalize("squeeze", axis, x.ndim)
    if axes is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    for a in axes:
        if x.shape[a] != 1:
            raise ShapeError(f"squeeze: axis {a} has length {x.shape[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x: Any, axis: int) -> Tensor:
    """Insert an axis of length 1 at position ``axis`` (of the result)."""
    x = as_tensor(x)
    a = _axes.single("unsqueeze", axis, x.ndim + 1)
    return reshape(x, x.shape[:a] + (1,) + x.shape[a:])


def broadcast_to(x: Any, shape: Sequence[int]) -> Tensor:
    """``x`` broadcast to ``shape`` (NumPy's rules)."""
    x = as_tensor(x)
    shape = _shape_arg("broadcast_to", (shape,))
    xp = get_xp(x.data)
    try:
        xp.broadcast_shapes(x.shape, shape)
        ok = len(shape) >= x.ndim and all(
            a in (1, b) for a, b in zip(x.shape[::-1], shape[::-1])
        )
    except ValueError:
        ok = False
    if not ok:
        raise ShapeError(f"broadcast_to: cannot broadcast shape {tuple(x.shape)} to {shape}")
    return apply(BroadcastTo, (x,), shape)


def expand(x: Any, *shape: Any) -> Tensor:
    """PyTorch's ``expand``: broadcast_to where -1 keeps an existing size."""
    x = as_tensor(x)
    target = list(_shape_arg("expand", shape))
    offset = len(target) - x.ndim
    for i, s in enumerate(target):
        if s == -1:
            if i < offset:
                raise ShapeError("expand: -1 is not allowed for a new leading axis")
            target[i] = x.shape[i - offset]
    return broadcast_to(x, tuple(target))


def index_arrays(index: Any) -> Any:
    """An index with tensors replaced by their arrays (and lists by arrays)."""
    if isinstance(index, tuple):
        return tuple(index_arrays(i) for i in index)
    if isinstance(index, Tensor):
        if index.dtype.kind not in "biu":
            raise IndexingError(
                f"tensors used as indices must be integer or bool, not {index.dtype}")
        return index.data
    if isinstance(index, list):
        import numpy as np

        arr = np.asarray(index) if index else np.zeros(0, dtype=np.int64)
        if arr.dtype.kind not in "biu":
            raise IndexingError(f"index lists must hold integers or bools, got {arr.dtype}")
        return arr
    return index


def _copy_index(index: Any) -> Any:
    if isinstance(index, tuple):
        return tuple(_copy_index(i) for i in index)
    return index.copy() if hasattr(index, "copy") else index


def _is_advanced(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(hasattr(p, "dtype") for p in parts)


def getitem(x: Any, index: Any) -> Tensor:
    """``x[index]``: basic slicing, integer arrays and boolean masks (repeated indices in the
    gradient accumulate)."""
    x = as_tensor(x)
    idx = index_arrays(index)
    try:
        return apply(GetItem, (x,), idx, _is_advanced(idx))
    except ShapeError as exc:
        raise IndexingError(str(exc)) from None


def concat(tensors: Sequence[Any], axis: int = 0, **aliases: Any) -> Tensor:
    """Join tensors along an existing axis (``dim=`` is an alias).

    Shape: (..., n_k, ...) for each input -> (..., sum_k n_k, ...).
    """
    axis, _ = _axes.resolve("concat", axis if "dim" not in aliases else None, False, aliases)
    ts = _many("concat", tensors)
    a = _axes.single("concat", axis, ts[0].ndim)
    for t in ts[1:]:
        if t.ndim != ts[0].ndim or any(
            i != a and p != q for i, (p, q) in enumerate(zip(t.shape, ts[0].shape))
        ):
            raise ShapeError(
                f"concat: shapes {[tuple(t.shape) for t in ts]} differ outside axis {a}"
            )
    return apply(Concat, ts, a)


cat = concat


def stack(tensors: Sequence[Any], axis: int = 0, **aliases: Any) -> Tensor:
    """Join same-shaped tensors along a new axis (``dim=`` is an alias).

    Shape: k inputs of shape S -> S with k inserted at ``axis``.
    """
    axis, _ = _axes.resolve("stack", axis if "dim" not in aliases else None, False, aliases)
    ts = _many("stack", tensors)
    if any(t.shape != ts[0].shape for t in ts):
        raise ShapeError(f"stack: shapes differ: {[tuple(t.shape) for t in ts]}")
    return apply(Stack, ts, _axes.single("stack", axis, ts[0].ndim + 1))


def index_select(x: Any, dim: int, index: Any) -> Tensor:
    """The slices of ``x`` at positions ``index`` along axis ``dim``, in ``index``'s order
    (PyTorch's ``index_select``; NumPy's ``take`` with an axis). ``index`` is a 1-D (or 0-d)
    integer tensor, array or list, each entry in [0, n) for an axis of length n; a 0-d ``x``
    takes ``dim`` 0 or -1 and one index, 0. Gradient: each selected slice's gradient is added
    back at its position (repeated indices accumulate).

    Shape: ``x``'s shape with axis ``dim`` of length ``len(index)``.
    """
    x = as_tensor(x)
    xp = get_xp(x.data)
    idx = xp.asarray(index_arrays(index))
    if idx.dtype.kind not in "iu":
        raise IndexingError(f"index_select: the index must hold integers, got {idx.dtype}")
    if idx.ndim > 1:
        raise IndexingError(f"index_select: the index must be 1-D, got shape {tuple(idx.shape)}")
    idx = idx.reshape(-1)
    d = _axes.single_or_scalar("index_select", dim, x.ndim)
    n = 1 if d is None else x.shape[d]
    if idx.size and (bool((idx < 0).any()) or bool((idx >= n).any())):
        raise IndexingError(f"index_select: indices {idx[:8].tolist()} out of range for axis "
                            f"{dim} of length {n} (shape {tuple(x.shape)}); expected each in "
                            f"[0, {n})")
    if d is None:  # 0-d: its one element, as PyTorch (a copy, like every index_select)
        if idx.size != 1:
            raise IndexingError("index_select: a 0-d tensor takes exactly one index")
        from .unary import clone

        return clone(x)
    return apply(IndexSelect, (x,), d, idx)


def _many(op: str, tensors: Sequence[Any]) -> tuple[Tensor, ...]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise InvalidValueError(f"{op}: expected a non-empty list of tensors")
    first = next((t for t in tensors if isinstance(t, Tensor)), None)
    return tuple(as_tensor(t, first) for t in tensors)
