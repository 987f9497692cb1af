"""Axis arguments: NumPy's ``axis``/``keepdims`` and PyTorch's ``dim``/``keepdim`` aliases.

Each spelling keeps its library's meaning where the two disagree: for a reduction, ``axis=()``
reduces nothing (NumPy) while ``dim=()`` reduces every axis (PyTorch's ``sum(x, dim=())``).
A bool is never an axis (``x.var(True)`` is PyTorch's ``unbiased``, not axis 1).
"""

from __future__ import annotations

import operator
from typing import Any

from ..errors import InvalidValueError, ShapeError


def resolve(op: str, axis: Any, keepdims: Any, aliases: dict[str, Any],
            reduction: bool = False) -> tuple[Any, bool]:
    """Merge ``dim=``/``keepdim=`` into ``axis``/``keepdims``; unknown keywords are an error.

    For a ``reduction``, ``dim=()`` (an empty tuple or list) becomes ``axis=None``, every axis, as
    in PyTorch; ``axis=()`` stays NumPy's "no axis".
    """
    if not aliases:
        return axis, bool(keepdims)
    unknown = set(aliases) - {"dim", "keepdim"}
    if unknown:
        raise InvalidValueError(f"{op}: unexpected keyword argument(s) {sorted(unknown)}")
    if "dim" in aliases:
        if axis is not None:
            raise InvalidValueError(f"{op}: give either axis= or dim=, not both")
        axis = aliases["dim"]
        if reduction and isinstance(axis, (tuple, list)) and len(axis) == 0:
            axis = None
    if "keepdim" in aliases:
        keepdims = aliases["keepdim"]
    return axis, bool(keepdims)


def normalize(op: str, axis: Any, ndim: int) -> tuple[int, ...] | None:
    """``axis`` (None, int or sequence) as a sorted tuple of non-negative axes, or None for all."""
    if axis is None:
        return None
    if type(axis) is int and -ndim <= axis < ndim:
        return (axis % ndim,)  # the common case, without the general checks below
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    out = []
    for a in axes:
        a = _index(op, a)
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ShapeError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % max(ndim, 1) if ndim else 0)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else None


def single(op: str, axis: Any, ndim: int) -> int:
    """One axis as a non-negative int."""
    a = _index(op, axis)
    if not -ndim <= a < ndim:
        raise ShapeError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
    return a % ndim


def single_or_scalar(op: str, axis: Any, ndim: int) -> int | None:
    """One axis as a non-negative int, or None for a 0-d tensor, which (as in PyTorch) takes
    ``dim`` 0 or -1 as if it had one axis: ``argmax``, ``softmax``, ``transpose(x, 0, 0)`` of a
    0-d tensor are the tensor's own (trivial) answers."""
    if ndim == 0:
        single(op, axis, 1)
        return None
    return single(op, axis, ndim)


def _index(op: str, axis: Any) -> int:
    if isinstance(axis, bool) or (hasattr(axis, "dtype") and axis.dtype.kind == "b"):
        raise InvalidValueError(f"{op}: axis must be an int, got a bool ({axis})")
    try:
        return operator.index(axis)
    except TypeError:
        raise InvalidValueError(f"{op}: axis must be an int, got {type(axis).__name__}") from None


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape a reduction over ``axes`` has with keepdims=True."""
    if axes is None:
        return (1,) * len(shape)
    return tuple(1 if i in axes else n for i, n in enumerate(shape))
