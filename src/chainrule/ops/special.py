"""Special functions the backend lacks as ufuncs: ``erf`` (for the exact GELU) and a stable
``softplus`` (for softplus activations and the logistic losses).

Both are written with ``xp`` array operations only, so they run on NumPy and CuPy alike.
"""

from __future__ import annotations

import math
from typing import Any

from ..autograd import apply
from ..backend import get_xp
from ..dtypes import get_default_dtype
from ..tensor import Tensor, as_tensor
from .registry import primitive

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

# erf(x) = 2/sqrt(pi) e^{-x^2} sum_k (2x^2)^k x / (2k+1)!!   (all terms positive: no cancellation).
# 36 terms reach float64 round-off (<2e-15 relative) for |x| <= 2.5.
_SERIES_CUT = 2.5
_SERIES = [1.0]
for _k in range(1, 36):
    _SERIES.append(_SERIES[-1] / (2 * _k + 1))
# Beyond the cut, the continued fraction
# erfc(x) = e^{-x^2}/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))) converges in 40 levels.
_CF_DEPTH = 40


def _erf_float64(x: Any) -> Any:
    """erf of a float64 array, accurate to a few units in the last place."""
    xp = get_xp(x)
    a = xp.abs(x)
    small = a <= _SERIES_CUT
    if bool(small.all()):
        out = _erf_series(a)
    else:
        out = xp.empty_like(a)
        out[small] = _erf_series(a[small])
        big = a[~small]
        f = big.copy()
        for k in range(_CF_DEPTH, 0, -1):
            f = big + (k / 2.0) / f
        out[~small] = 1.0 - xp.exp(-big * big) / (math.sqrt(math.pi) * f)
    return xp.copysign(out, x)


def _erf_series(a: Any) -> Any:
    xp = get_xp(a)
    y = 2.0 * a * a
    s = xp.full_like(a, _SERIES[-1])
    for c in _SERIES[-2::-1]:  # Horner in y = 2x^2
        s *= y
        s += c
    s *= a
    s *= xp.exp(-a * a)
    s *= _TWO_OVER_SQRT_PI
    return s


@primitive("erf", kind="unary", saves="the input")
class Erf:
    """erf(x) = 2/sqrt(pi) int_0^x e^{-t^2} dt (computed in float64);
    dx = g 2/sqrt(pi) e^{-x^2}."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        out = _erf_float64(x.astype("float64", copy=False))
        return out.astype(x.dtype, copy=False)

    def vjp(ctx, g):
        x = ctx.saved
        return (g * (_TWO_OVER_SQRT_PI * get_xp(g).exp(-(x * x))),)


@primitive("softplus", kind="unary", saves="the input")
class Softplus:
    """softplus(x) = log(1 + e^x), computed as max(x, 0) + log1p(e^{-|x|}) (finite for any x);
    dx = g sigmoid(x)."""

    def forward(ctx, x):
        xp = get_xp(x)
        if ctx is not None:
            ctx.saved = x
        return xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))

    def vjp(ctx, g):
        x = ctx.saved
        xp = get_xp(g)
        e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
        return (g * xp.where(x >= 0, 1 / (1 + e), e / (1 + e)),)


def _floating(x: Any) -> Tensor:
    x = as_tensor(x)
    if x.dtype.kind in "biu":
        x = x.astype(get_default_dtype())
    return x


def erf(x: Any) -> Tensor:
    """The error function erf(x), elementwise (float64 accuracy; integer input gives the default
    float dtype)."""
    return apply(Erf, (_floating(x),))


def softplus(x: Any) -> Tensor:
    """log(1 + exp(x)), elementwise, finite for every finite x (no threshold; see
    ``chainrule.nn.functional.softplus`` for PyTorch's ``beta``/``threshold``)."""
    return apply(Softplus, (_floating(x),))
