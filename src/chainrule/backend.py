"""The array backend: the only module that knows CuPy exists.

Primitives never name NumPy: they call ``xp = get_xp(array)`` and use ``xp.<fn>``, so one derivative
rule serves the CPU (NumPy) and the GPU (CuPy, imported lazily and only when a CuPy array or the
``"cuda"`` device is actually used).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

_cupy: ModuleType | None = None


def _load_cupy() -> ModuleType:
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415 - optional, imported on first GPU use only
        except ImportError as exc:  # pragma: no cover - depends on the machine
            from .errors import InvalidValueError

            raise InvalidValueError(
                "device 'cuda' needs CuPy: install chainrule[gpu] (cupy) on a machine with a GPU"
            ) from exc
        _cupy = cupy
    return _cupy


def is_cupy_array(a: Any) -> bool:
    """True for a CuPy ndarray, checked without importing CuPy."""
    return type(a).__module__.startswith("cupy")


def get_xp(*arrays: Any) -> ModuleType:
    """The array module (``numpy`` or ``cupy``) that owns ``arrays``; NumPy when none is CuPy."""
    for a in arrays:
        if type(a) is not np.ndarray and is_cupy_array(a):
            return _load_cupy()
    return np


def to_numpy(a: Any) -> np.ndarray:
    """A NumPy copy (GPU) or the array itself (CPU)."""
    if is_cupy_array(a):
        return a.get()
    return np.asarray(a)


def normalize_device(device: str | None) -> str:
    """``None``/``"cpu"`` -> ``"cpu"``; ``"cuda"``/``"cuda:N"``/``"gpu"`` -> ``"cuda:N"``."""
    if device is None or device == "cpu":
        return "cpu"
    if isinstance(device, str):
        if device in ("cuda", "gpu"):
            return "cuda:0"
        if device.startswith("cuda:") and device[5:].isdigit():
            return device
    from .errors import InvalidValueError

    raise InvalidValueError(f"unknown device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def xp_for_device(device: str | None) -> ModuleType:
    """The array module for a device name."""
    return np if normalize_device(device) == "cpu" else _load_cupy()


def device_of(a: Any) -> str:
    """``"cpu"`` or ``"cuda:N"`` for an array."""
    if is_cupy_array(a):
        return f"cuda:{a.device.id}"
    return "cpu"


def on_device_of(a: Any, ref: Any) -> Any:
    """``a`` on the device of the array ``ref`` when ``a`` is an array (NumPy or CuPy) that lives
    elsewhere; anything else (numbers, lists, arrays already there) unchanged. For operands that
    meet a tensor's data: CuPy takes no NumPy arrays and NumPy no CuPy ones."""
    if hasattr(a, "shape"):
        device = device_of(ref)
        if device_of(a) != device:
            return move_to(a, device)
    return a


def move_to(a: Any, device: str | None) -> Any:
    """``a`` on ``device``, copied only when it lives elsewhere."""
    target = normalize_device(device)
    if device_of(a) == target:
        return a
    if target == "cpu":
        return a.get()
    cp = _load_cupy()
    with cp.cuda.Device(int(target.split(":")[1])):
        return cp.asarray(a)
