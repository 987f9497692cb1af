"""Dtype rules: the default floating dtype and how Python scalars take a tensor's dtype.

float32 is the default, as in PyTorch. A Python scalar combined with a tensor is "weak": it takes
the tensor's dtype (``x * 2.0`` stays float32), so no op silently promotes to float64.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import DTypeError

float32 = np.dtype(np.float32)
"""32-bit floating point (``numpy.dtype('float32')``): the default dtype of new tensors."""
float64 = np.dtype(np.float64)
"""64-bit floating point: what ``gradcheck`` and the lecture's reference compute in."""
float16 = np.dtype(np.float16)
"""16-bit floating point (``numpy.dtype('float16')``)."""
int32 = np.dtype(np.int32)
"""32-bit integer (``numpy.dtype('int32')``); integer tensors never require grad."""
int64 = np.dtype(np.int64)
"""64-bit integer: the dtype of class labels and of ``argmax``'s indices."""
bool_ = np.dtype(np.bool_)
"""Boolean: the dtype of comparisons (``x > 0``), which carry no gradient."""

_default_float: contextvars.ContextVar[np.dtype] = contextvars.ContextVar(
    "chainrule_default_dtype", default=float32
)


def get_default_dtype() -> np.dtype:
    """The floating dtype that new tensors get when none is given (float32 unless changed)."""
    return _default_float.get()


@contextlib.contextmanager
def default_dtype(dtype: Any) -> Iterator[np.dtype]:
    """Context manager: tensors created inside default to ``dtype`` (a floating dtype).

    Example::

        with cr.default_dtype("float64"):
            x = cr.randn(3)   # float64
    """
    dt = as_dtype(dtype)
    if not is_floating(dt):
        raise DTypeError(f"default dtype must be a floating dtype, got {dt}")
    token = _default_float.set(dt)
    try:
        yield dt
    finally:
        _default_float.reset(token)


def as_dtype(dtype: Any) -> np.dtype:
    """Normalise a dtype spec ("float32", np.float64, float, ...) with a clear error."""
    if dtype is float:
        return get_default_dtype()
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise DTypeError(f"unknown dtype {dtype!r}") from None
    if dt.kind not in "biuf":
        raise DTypeError(f"dtype {dt} is not supported: chainrule tensors hold bool, int or float")
    return dt


def is_floating(dtype: np.dtype) -> bool:
    """True for float16/32/64."""
    return dtype.kind == "f"


def scalar_dtype(value: Any, like: np.dtype) -> np.dtype:
    """The dtype a Python scalar takes next to a tensor of dtype ``like`` (weak typing)."""
    if isinstance(value, (bool, np.bool_)):
        return like
    if isinstance(value, (int, np.integer)):
        return like if like.kind != "b" else int64  # True + 2 is 3, not True
    if isinstance(value, (float, np.floating)):
        return like if is_floating(like) else get_default_dtype()
    raise DTypeError(f"cannot combine a tensor with a value of type {type(value).__name__}")
