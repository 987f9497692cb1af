"""Tensor factories: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``eye``, ``*_like``,
``rand``, ``randn``, ``randint``.

Floating factories default to the default dtype (float32; see ``chainrule.default_dtype``).
Shapes may be given as ``zeros(2, 3)`` or ``zeros((2, 3))``.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from . import random as _random
from .backend import device_of, get_xp, move_to, xp_for_device
from .compile import _hooks
from .dtypes import as_dtype, get_default_dtype
from .errors import DTypeError, InvalidValueError
from .tensor import Tensor


def _shape(op: str, size: tuple[Any, ...]) -> tuple[int, ...]:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    try:
        shape = tuple(operator.index(s) for s in size)
    except TypeError:
        raise InvalidValueError(f"{op}: sizes must be integers, got {size!r}") from None
    if any(s < 0 for s in shape):
        raise InvalidValueError(f"{op}: negative size in {shape}")
    return shape


def _float_dtype(dtype: Any) -> np.dtype:
    return get_default_dtype() if dtype is None else as_dtype(dtype)


def _random_dtype(op: str, dtype: Any) -> np.dtype:
    dt = _float_dtype(dtype)
    if dt.kind != "f":
        raise DTypeError(f"{op}: samples are floating point; got dtype {dt} (use randint)")
    return dt


def _make(arr: Any, requires_grad: bool, device: str | None) -> Tensor:
    if device is not None:
        arr = move_to(arr, device)
    t = Tensor._from_op(arr, None)
    if requires_grad:
        t.requires_grad = True
    return t


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False,
           device: str | None = None) -> Tensor:
    """A new tensor holding a copy of ``data`` (a number, nested list, array or tensor).

    Python floats become the default dtype (float32), Python ints int64, bools bool; an array
    keeps its dtype unless ``dtype`` is given.
    """
    src = data.data if isinstance(data, Tensor) else data
    tracer = _hooks.TRACER and _hooks.active()
    if tracer:  # cr.compile is tracing: the copy is an op of the step
        with tracer.paused():
            t = tensor(data, dtype, requires_grad, device)
        tracer.tensor_made(t, src, "tensor", (dtype, device))
        return t
    t = Tensor(src, dtype=dtype, device=device)
    if hasattr(src, "dtype") and device_of(src) == t.device:
        if get_xp(t.data).may_share_memory(t.data, src):
            t.data = t.data.copy()
    if requires_grad:
        t.requires_grad = True
    return t


def zeros(*size: Any, dtype: Any = None, requires_grad: bool = False,
          device: str | None = None) -> Tensor:
    """A tensor of zeros. Shape: ``size``."""
    xp = xp_for_device(device)
    return _make(xp.zeros(_shape("zeros", size), dtype=_float_dtype(dtype)), requires_grad, device)


def ones(*size: Any, dtype: Any = None, requires_grad: bool = False,
         device: str | None = None) -> Tensor:
    """A tensor of ones. Shape: ``size``."""
    xp = xp_for_device(device)
    return _make(xp.ones(_shape("ones", size), dtype=_float_dtype(dtype)), requires_grad, device)


def full(size: Any, fill_value: float, dtype: Any = None, requires_grad: bool = False,
         device: str | None = None) -> Tensor:
    """A tensor filled with ``fill_value``. Shape: ``size``."""
    if not isinstance(fill_value, (bool, int, float, np.bool_, np.integer, np.floating)):
        raise InvalidValueError(f"full: fill_value must be a number, got {fill_value!r}")
    if dtype is None and isinstance(fill_value, (bool, np.bool_)):
        dtype = np.bool_
    elif dtype is None and isinstance(fill_value, (int, np.integer)):
        dtype = np.int64
    dt = _float_dtype(dtype)
    if dt.kind != "f" and isinstance(fill_value, float) and not math.isfinite(fill_value):
        raise InvalidValueError(f"full: cannot fill a {dt} tensor with {fill_value}")
    xp = xp_for_device(device)
    return _make(xp.full(_shape("full", (size,)), fill_value, dtype=dt), requires_grad, device)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False, device: str | None = None) -> Tensor:
    """Evenly spaced values in [start, stop). Integers give int64, floats the default dtype."""
    if stop is None:
        start, stop = 0, start
    for v in (start, stop, step):
        if isinstance(v, float) and math.isnan(v):
            raise InvalidValueError("arange: NaN bound or step")
    if step == 0:
        raise InvalidValueError("arange: step must not be zero")
    if dtype is None:
        ints = all(isinstance(v, (int, np.integer)) for v in (start, stop, step))
        dtype = np.int64 if ints else get_default_dtype()
    xp = xp_for_device(device)
    return _make(xp.arange(start, stop, step, dtype=as_dtype(dtype)), requires_grad, device)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False,
        device: str | None = None) -> Tensor:
    """The identity matrix. Shape: (n, m), m defaults to n."""
    n, m = _shape("eye", (n, n if m is None else m))
    xp = xp_for_device(device)
    return _make(xp.eye(n, m, dtype=_float_dtype(dtype)), requires_grad, device)


def zeros_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with ``t``'s shape, dtype and device."""
    t = t if isinstance(t, Tensor) else Tensor(t)
    xp = xp_for_device(t.device)
    return _make(xp.zeros(t.shape, dtype=as_dtype(dtype) if dtype else t.dtype), requires_grad,
                 None)


def ones_like(t: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with ``t``'s shape, dtype and device."""
    t = t if isinstance(t, Tensor) else Tensor(t)
    xp = xp_for_device(t.device)
    return _make(xp.ones(t.shape, dtype=as_dtype(dtype) if dtype else t.dtype), requires_grad,
                 None)


def rand(*size: Any, dtype: Any = None, requires_grad: bool = False, device: str | None = None,
         generator: _random.Generator | None = None) -> Tensor:
    """Uniform samples from [0, 1). Shape: ``size``."""
    gen = _random.resolve(generator)
    arr = gen.uniform(_shape("rand", size), 0.0, 1.0, _random_dtype("rand", dtype))
    return _make(arr, requires_grad, device)


def randn(*size: Any, dtype: Any = None, requires_grad: bool = False, device: str | None = None,
          generator: _random.Generator | None = None) -> Tensor:
    """Standard normal samples. Shape: ``size``."""
    gen = _random.resolve(generator)
    arr = gen.normal(_shape("randn", size), 0.0, 1.0, _random_dtype("randn", dtype))
    return _make(arr, requires_grad, device)


def randint(low: int, high: int, size: Any, device: str | None = None,
            generator: _random.Generator | None = None) -> Tensor:
    """Integers drawn uniformly from [low, high). Shape: ``size``."""
    if high <= low:
        raise InvalidValueError(f"randint: high ({high}) must exceed low ({low})")
    gen = _random.resolve(generator)
    return _make(gen.integers(low, high, _shape("randint", (size,))).astype(np.int64), False,
                 device)
