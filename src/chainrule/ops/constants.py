"""Small read-only constants that the hot primitives would otherwise make at every call."""

from __future__ import annotations

from typing import Any

import numpy as np

_CACHE: dict[tuple[Any, ...], Any] = {}


def cached_constant(xp: Any, what: str, n: int, c: int, dtype: Any) -> Any:
    """A read-only NumPy constant, made once per shape (a training loop sees one or two batch
    shapes): ``"offsets"``, [0, c, 2c, ..., (n-1) c] (the flat index of each row's first
    element, for ``cross_entropy``); ``"ones"``, c ones (sums as a matrix-vector product, as
    ``sum_2d`` computes them). Other backends get a fresh array. At most 64 are kept."""
    if xp is not np:
        return xp.arange(0, n * c, c, dtype=dtype) if what == "offsets" else xp.ones(c, dtype)
    key = (what, n, c, dtype)
    a = _CACHE.get(key)
    if a is None:
        if len(_CACHE) >= 64:
            _CACHE.clear()
        a = np.arange(0, n * c, c, dtype=dtype) if what == "offsets" else np.ones(c, dtype)
        a.flags.writeable = False
        _CACHE[key] = a
    return a


__all__ = ["cached_constant"]
