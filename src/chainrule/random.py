"""Random number generation: an explicit :class:`Generator`, and ``manual_seed`` for the default.

Every random factory and layer initialiser takes ``generator=``; without it they draw from the
default generator, which ``manual_seed`` reseeds (as ``torch.manual_seed`` does).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from .compile import _hooks
from .errors import InvalidValueError


def _check_seed(seed: Any) -> int:
    if isinstance(seed, float) and (math.isnan(seed) or not seed.is_integer()):
        raise InvalidValueError(f"seed must be a non-negative integer, got {seed!r}")
    try:
        s = operator.index(seed) if not isinstance(seed, float) else int(seed)
    except TypeError:
        raise InvalidValueError(f"seed must be a non-negative integer, got {seed!r}") from None
    if s < 0:
        raise InvalidValueError(f"seed must be a non-negative integer, got {seed}")
    return s


def check_state(state: Any) -> dict[str, Any]:
    """A validated copy of a PCG64 state as :meth:`Generator.get_state` returns it::

        {"bit_generator": "PCG64", "state": {"state": s, "inc": i}, "has_uint32": h,
         "uinteger": u}

    with s, i integers in [0, 2**128), i odd (PCG's increment always is), h 0 or 1 and u in
    [0, 2**32). NumPy itself would raise OverflowError or TypeError for some of these defects and
    accept others silently (an even increment); a state read from a file is checked here first.

    Raises:
        InvalidValueError: naming the first field that is missing, of the wrong type or out of
            range.
    """
    def bad(what: str) -> InvalidValueError:
        return InvalidValueError(f"not a valid generator state: {what}")

    def uint(value: Any, bits: int, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad(f"{name} must be an integer, got {type(value).__name__}")
        if not 0 <= value < 2**bits:
            raise bad(f"{name} must be " + ("0 or 1" if bits == 1 else f"in [0, 2**{bits})")
                      + f", got {value}")
        return int(value)

    if not isinstance(state, dict):
        raise bad(f"expected a dict, got {type(state).__name__}")
    keys = {"bit_generator", "state", "has_uint32", "uinteger"}
    if set(state) != keys:
        raise bad(f"expected the keys {sorted(keys)}, got {sorted(map(str, state))}")
    if state["bit_generator"] != "PCG64":
        raise bad(f"bit_generator must be 'PCG64', got {state['bit_generator']!r}")
    inner = state["state"]
    if not isinstance(inner, dict) or set(inner) != {"state", "inc"}:
        raise bad("'state' must be a dict with the keys 'state' and 'inc'")
    s = uint(inner["state"], 128, "state.state")
    inc = uint(inner["inc"], 128, "state.inc")
    if inc % 2 == 0:
        raise bad("state.inc must be odd")
    has = uint(state["has_uint32"], 1, "has_uint32")
    u = uint(state["uinteger"], 32, "uinteger")
    return {"bit_generator": "PCG64", "state": {"state": s, "inc": inc}, "has_uint32": has,
            "uinteger": u}


class Generator:
    """A seeded source of random numbers (NumPy's PCG64 underneath).

    Args:
        seed: a non-negative integer, or None for a fresh unpredictable seed.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(None if seed is None else _check_seed(seed))

    def manual_seed(self, seed: int) -> Generator:
        """Reseed in place and return self."""
        self._rng = np.random.default_rng(_check_seed(seed))
        return self

    def get_state(self) -> dict[str, Any]:
        """The generator's state as a JSON-serialisable dict."""
        return self._rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state` (checked first by :func:`check_state`)."""
        self._rng.bit_generator.state = check_state(state)

    @property
    def numpy(self) -> np.random.Generator:
        """The underlying ``numpy.random.Generator``."""
        return self._rng

    def uniform(self, shape: tuple[int, ...], low: float, high: float, dtype: Any) -> np.ndarray:
        """Samples of U(low, high) with ``shape`` and ``dtype`` (a NumPy array). For [0, 1) in
        float32/float64 they are drawn in that dtype, so a value never rounds up to 1.
        """
        # cr.compile: a draw is an op of the step
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.rand(self, "uniform", (shape, low, high, dtype,))
        if low == 0 and high == 1 and np.dtype(dtype) in (np.float32, np.float64):
            # Drawn in the target dtype: a float64 draw just below 1 would round up to 1.0 when
            # cast to float32, outside [0, 1). (float64 draws are the same numbers as before.)
            return self._rng.random(size=shape, dtype=dtype)
        return self._rng.uniform(low, high, size=shape).astype(dtype, copy=False)

    def normal(self, shape: tuple[int, ...], mean: float, std: float, dtype: Any) -> np.ndarray:
        """Samples of N(mean, std^2) with ``shape`` and ``dtype`` (a NumPy array)."""
        # cr.compile: a draw is an op of the step
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.rand(self, "normal", (shape, mean, std, dtype,))
        if np.dtype(dtype) in (np.float32, np.float64):
            out = self._rng.standard_normal(size=shape, dtype=dtype)
        else:
            out = self._rng.standard_normal(size=shape).astype(dtype)
        if std != 1:
            out *= std
        if mean != 0:
            out += mean
        return out

    def integers(self, low: int, high: int, shape: tuple[int, ...]) -> np.ndarray:
        """Integers drawn uniformly from [low, high) with ``shape`` (a NumPy int64 array)."""
        # cr.compile: a draw is an op of the step
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.rand(self, "integers", (low, high, shape,))
        return self._rng.integers(low, high, size=shape)

    def permutation(self, n: int) -> np.ndarray:
        """A random permutation of 0..n-1 (a NumPy int64 array), e.g. an epoch's order."""
        # cr.compile: a draw is an op of the step
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.rand(self, "permutation", (n,))
        return self._rng.permutation(n)


default_generator = Generator()
"""The global generator that creation functions and layers use when given none;
``cr.manual_seed(s)`` reseeds it."""


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (used when no ``generator=`` is given) and return it."""
    return default_generator.manual_seed(seed)


def resolve(generator: Generator | None) -> Generator:
    """``generator`` or the default one."""
    if generator is None:
        return default_generator
    if not isinstance(generator, Generator):
        raise InvalidValueError(
            f"generator must be a chainrule.Generator, got {type(generator).__name__}")
    return generator
