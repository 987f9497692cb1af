"""More unary elementwise primitives: the trigonometric pair, the accurate log1p/expm1, rsqrt,
square, and clone (a differentiable copy).

Each keeps its input's shape; integer and bool input is cast to the default float dtype first
(``square`` and ``clone`` keep integer dtypes, as PyTorch does).
"""

from __future__ import annotations

from typing import Any

from ..autograd import apply
from ..backend import get_xp
from ..tensor import Tensor, as_tensor
from .elementwise import _floating_unary, _unary
from .registry import primitive


@primitive("sin", kind="unary", saves="the input")
class Sin:
    """sin(x);  dx = g cos(x)."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        return get_xp(x).sin(x)

    def vjp(ctx, g):
        return (g * get_xp(g).cos(ctx.saved),)


@primitive("cos", kind="unary", saves="the input")
class Cos:
    """cos(x);  dx = -g sin(x)."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        return get_xp(x).cos(x)

    def vjp(ctx, g):
        return (-g * get_xp(g).sin(ctx.saved),)


@primitive("log1p", kind="unary", domain="positive", saves="the input")
class Log1p:
    """log(1 + x), accurate for small |x|;  dx = g / (1 + x)."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        return get_xp(x).log1p(x)

    def vjp(ctx, g):
        return (g / (1 + ctx.saved),)


@primitive("expm1", kind="unary", saves="the output")
class Expm1:
    """exp(x) - 1, accurate for small |x|;  dx = g (y + 1) (y the output, as PyTorch)."""

    def forward(ctx, x):
        out = get_xp(x).expm1(x)
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        return (g * (ctx.saved + 1),)


@primitive("rsqrt", kind="unary", domain="positive", saves="the output")
class Rsqrt:
    """1 / sqrt(x);  dx = -g y^3 / 2 (y the output)."""

    def forward(ctx, x):
        out = 1 / get_xp(x).sqrt(x)
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        y = ctx.saved
        return (g * (-0.5 * y * y * y),)


@primitive("square", kind="unary", saves="the input")
class Square:
    """x^2;  dx = 2 g x."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        return x * x

    def vjp(ctx, g):
        return (g * (2 * ctx.saved),)


@primitive("clone", kind="unary")
class Clone:
    """A copy of x, with its own memory (never a view: writing into it leaves x alone);
    dx = g."""

    def forward(ctx, x):
        return x.copy()

    def vjp(ctx, g):
        return (g,)


sin = _floating_unary(Sin)
cos = _floating_unary(Cos)
log1p = _floating_unary(Log1p)
expm1 = _floating_unary(Expm1)
rsqrt = _floating_unary(Rsqrt)
square = _unary(Square)


def clone(x: Any) -> Tensor:
    """A copy of ``x`` in new memory that stays in the graph (the gradient passes through
    unchanged), PyTorch's ``clone``; ``detach()`` instead cuts the graph and shares the memory."""
    return apply(Clone, (as_tensor(x),))


__all__ = ["sin", "cos", "log1p", "expm1", "rsqrt", "square", "clone"]
