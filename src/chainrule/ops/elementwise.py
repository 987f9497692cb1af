"""Elementwise primitives: arithmetic, exp/log family, activations, comparisons, selection.

Each primitive states its derivative in one line and what it saves for backward.

Shape: unary functions keep their input's shape; binary functions (and ``where``) broadcast their
operands like NumPy and return the broadcast shape, and the engine sums each operand's gradient
back to that operand's shape (``autograd.unbroadcast``).

Dtype: a Python number next to a tensor takes the tensor's dtype (``x * 2.0`` stays float32);
an integer tensor next to a float becomes floating (see ``tensor.operands``); functions that only
make sense on reals (exp, log, sqrt, tanh, sigmoid, leaky_relu, true division) cast integer
input to the default float dtype first.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from ..autograd import apply
from ..backend import get_xp, on_device_of
from ..dtypes import as_dtype, get_default_dtype
from ..errors import DTypeError, InvalidValueError
from ..tensor import Tensor, _is_float, as_tensor, operands
from .registry import primitive


# --------------------------------------------------------------------------- arithmetic
@primitive("add", kind="binary")
class Add:
    """a + b;  da = g, db = g."""

    def forward(ctx, a, b):
        return a + b

    def vjp(ctx, g):
        return g, g


@primitive("sub", kind="binary")
class Sub:
    """a - b;  da = g, db = -g."""

    def forward(ctx, a, b):
        return a - b

    def vjp(ctx, g):
        return g, (-g if ctx.needs[1] else None)


@primitive("mul", kind="binary", saves="each input whose partner needs a gradient")
class Mul:
    """a * b;  da = g b, db = g a."""

    def forward(ctx, a, b):
        if ctx is not None:
            need_a, need_b = ctx.needs
            ctx.saved = (a if need_b else None, b if need_a else None)
        return a * b

    def vjp(ctx, g):
        a, b = ctx.saved
        return (g * b if b is not None else None), (g * a if a is not None else None)


@primitive("div", kind="binary", domain="nonzero", saves="b; the output when b needs a gradient")
class Div:
    """a / b;  da = g / b, db = -g (a / b) / b."""

    def forward(ctx, a, b):
        out = a / b
        if ctx is not None:
            ctx.saved = (b, out if ctx.needs[1] else None)
        return out

    def vjp(ctx, g):
        b, out = ctx.saved
        ga = g / b
        return (ga if ctx.needs[0] else None), (-ga * out if out is not None else None)


@primitive("neg", kind="unary")
class Neg:
    """-x;  dx = -g."""

    def forward(ctx, x):
        return -x

    def vjp(ctx, g):
        return (-g,)


@primitive("pow", kind="binary", domain="positive", saves="base, exponent and output")
class Pow:
    """a ** b (tensor exponent);  da = g b a^(b-1) (0 where b = 0), db = g a^b log(a) (0 where
    a = 0 and b >= 0, the limit of a^b log(a))."""

    def forward(ctx, a, b):
        out = a**b
        if ctx is not None:
            ctx.saved = (a, b, out)
        return out

    def vjp(ctx, g):
        a, b, out = ctx.saved
        xp = get_xp(g)
        ga = gb = None
        with _quiet(xp):  # 0 ** -1 and log(0) are computed, then masked
            if ctx.needs[0]:
                if hasattr(b, "shape"):
                    ga = g * xp.where(b == 0, 0, b * a ** (b - 1))
                else:  # a constant Python exponent: CuPy's where() takes no Python bool
                    ga = g * (b * a ** (b - 1) if b != 0 else xp.zeros_like(a))
            if ctx.needs[1]:
                zero = (a == 0) & (b >= 0)
                gb = g * out * xp.log(xp.where(zero, 1, a))
        return ga, gb


@primitive("pow_scalar", kind="other", saves="the base")
class PowScalar:
    """x ** p for a constant Python number p;  dx = g p x^(p-1)."""

    def forward(ctx, x, p):
        if ctx is not None:
            ctx.saved = (x, p)
        if p == 2:
            return x * x  # one multiply; NumPy's power is several times slower
        return x**p

    def vjp(ctx, g):
        x, p = ctx.saved
        if p == 0:
            return (g * 0,)  # x^0 is constant; p x^(p-1) would be 0 * inf = NaN at x = 0
        if p == 2:
            return (g * (2 * x),)
        return (g * p * x ** (p - 1),)


# --------------------------------------------------------------------------- exp/log family
@primitive("exp", kind="unary", saves="the output")
class Exp:
    """exp(x);  dx = g exp(x)."""

    def forward(ctx, x):
        out = get_xp(x).exp(x)
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        return (g * ctx.saved,)


@primitive("log", kind="unary", domain="positive", saves="the input")
class Log:
    """log(x);  dx = g / x."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        return get_xp(x).log(x)

    def vjp(ctx, g):
        return (g / ctx.saved,)


@primitive("sqrt", kind="unary", domain="positive", saves="the output")
class Sqrt:
    """sqrt(x);  dx = g / (2 sqrt(x))."""

    def forward(ctx, x):
        out = get_xp(x).sqrt(x)
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        return (g / (2 * ctx.saved),)


@primitive("abs", kind="unary", domain="nonzero", saves="the input")
class Abs:
    """|x|;  dx = g sign(x) (0 at x = 0, as PyTorch)."""

    def forward(ctx, x):
        if ctx is not None:
            ctx.saved = x
        return get_xp(x).abs(x)

    def vjp(ctx, g):
        return (g * get_xp(g).sign(ctx.saved),)


# --------------------------------------------------------------------------- activations
@primitive("tanh", kind="unary", saves="the output")
class Tanh:
    """tanh(x);  dx = g (1 - tanh(x)^2)."""

    def forward(ctx, x):
        out = get_xp(x).tanh(x)
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        y = ctx.saved
        xp = get_xp(g)
        # (1 - y^2) g with one temporary, updated in place: a third fewer passes and
        # allocations than g * (1 - y * y) (143 against 245 us on a 1024 x 256 float32 array).
        d = xp.square(y, out=xp.empty_like(g))
        xp.subtract(1, d, out=d)
        d *= g
        return (d,)


@primitive("sigmoid", kind="unary", saves="the output")
class Sigmoid:
    """sigma(x) = 1 / (1 + exp(-x));  dx = g sigma(x) (1 - sigma(x)).

    Computed from e = exp(-|x|) as 1 / (1 + e) for x >= 0 and e / (1 + e) below: it never
    overflows, and keeps full relative precision for very negative x (sigma(-20) in float32 is
    2.06e-9, not the 0 that (1 + tanh(x/2)) / 2 rounds to)."""

    def forward(ctx, x):
        xp = get_xp(x)
        e = xp.exp(-xp.abs(x))
        out = xp.where(x >= 0, 1.0, e)
        e += 1
        out /= e
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        y = ctx.saved
        return (g * y * (1 - y),)


@primitive("relu", kind="unary", domain="nonzero",
           saves="the output (the next layer saves it too, so in a network it costs nothing)")
class Relu:
    """max(x, 0);  dx = g [y > 0] (0 at x = 0, as PyTorch)."""

    def forward(ctx, x):
        out = get_xp(x).maximum(x, 0)
        if ctx is not None:
            ctx.saved = out
        return out

    def vjp(ctx, g):
        xp = get_xp(g)
        # [y > 0] written straight into a float array of g's dtype, then scaled by g in place:
        # no boolean temporary (153 against 187 us on a 1024 x 256 float32 array).
        dx = xp.greater(ctx.saved, 0, out=xp.empty_like(g))
        dx *= g
        return (dx,)


@primitive("leaky_relu", kind="other", saves="a boolean mask x > 0 (1 byte/element)")
class LeakyRelu:
    """x if x > 0 else a x;  dx = g (1 if x > 0 else a)."""

    def forward(ctx, x, slope):
        mask = x > 0  # computed in forward either way: it also selects the output
        if ctx is not None:
            ctx.saved = (mask, slope)
        return get_xp(x).where(mask, x, x * slope)

    def vjp(ctx, g):
        mask, slope = ctx.saved
        return (get_xp(g).where(mask, g, g * slope),)


@primitive("sign", kind="unary", differentiable=False)
class Sign:
    """sign(x) in {-1, 0, 1}. Not differentiable: its output never requires grad (the true
    derivative is 0 almost everywhere, so no gradient flows through it)."""

    def forward(ctx, x):
        return get_xp(x).sign(x)


# --------------------------------------------------------------------------- selection
@primitive("maximum", kind="binary", domain="smooth", saves="both inputs")
class Maximum:
    """max(a, b) elementwise;  da = g [a > b] + g/2 [a = b], db likewise (ties split, as
    PyTorch)."""

    def forward(ctx, a, b):
        if ctx is not None:
            ctx.saved = (a, b)
        return get_xp(a, b).maximum(a, b)

    def vjp(ctx, g):
        a, b = ctx.saved
        return _split_select(g, a > b, a == b, ctx.needs)


@primitive("minimum", kind="binary", domain="smooth", saves="both inputs")
class Minimum:
    """min(a, b) elementwise;  da = g [a < b] + g/2 [a = b], db likewise."""

    def forward(ctx, a, b):
        if ctx is not None:
            ctx.saved = (a, b)
        return get_xp(a, b).minimum(a, b)

    def vjp(ctx, g):
        a, b = ctx.saved
        return _split_select(g, a < b, a == b, ctx.needs)


def _split_select(g, a_wins, tie, needs):
    xp = get_xp(g)
    share = xp.where(a_wins, 1.0, xp.where(tie, 0.5, 0.0)).astype(g.dtype)
    ga = g * share if needs[0] else None
    gb = g * (1 - share) if needs[1] else None
    return ga, gb


@primitive("clip", kind="other", saves="a boolean mask lo <= x <= hi")
class Clip:
    """min(max(x, lo), hi);  dx = g [lo <= x <= hi] (the boundary passes gradient, as PyTorch)."""

    def forward(ctx, x, lo, hi):
        xp = get_xp(x)
        if ctx is not None:
            if lo is None:
                ctx.saved = x <= hi
            elif hi is None:
                ctx.saved = x >= lo
            else:
                ctx.saved = (x >= lo) & (x <= hi)
        # maximum/minimum rather than xp.clip: the same values, at a third of the call overhead
        out = x if lo is None else xp.maximum(x, lo)
        return out if hi is None else xp.minimum(out, hi)

    def vjp(ctx, g):
        return (g * ctx.saved,)


@primitive("clip_tensor", kind="other", saves="the input and the bounds")
class ClipTensor:
    """min(max(x, lo), hi) with tensor bounds, all three broadcasting (either bound may be None,
    where lo > hi the result is hi);  dx = g [lo <= x <= hi], dlo = g [x < lo < hi],
    dhi = g [x > hi or hi < lo] (PyTorch's rule: each element's gradient goes to whichever of
    x, lo and hi it is equal to in the result, x when x equals a bound)."""

    def forward(ctx, x, lo, hi):
        xp = get_xp(x, lo, hi)
        out = x if lo is None else xp.maximum(x, lo)
        out = out if hi is None else xp.minimum(out, hi)
        if ctx is not None:
            ctx.saved = (x, lo, hi)
        return out

    def vjp(ctx, g):
        x, lo, hi = ctx.saved
        xp = get_xp(g)
        need_x, need_lo, need_hi = ctx.needs
        if lo is None:
            inside, below, above = x <= hi, None, x > hi
        elif hi is None:
            inside, below, above = x >= lo, x < lo, None
        else:
            inside = (x >= lo) & (x <= hi)
            below = (x < lo) & (lo < hi)
            above = (x > hi) | (hi < lo)
        return ((xp.where(inside, g, 0) if need_x else None),
                (xp.where(below, g, 0) if need_lo else None),
                (xp.where(above, g, 0) if need_hi else None))


@primitive("div_trunc", kind="binary", domain="nonzero", differentiable=False)
class DivTrunc:
    """a / b rounded toward zero (``div(a, b, rounding_mode="trunc")``; integers stay integers).
    Not differentiable: a step function, whose derivative is 0 wherever it exists (PyTorch
    records it with a zero gradient; here the output is a constant, which gives the same
    gradients)."""

    def forward(ctx, a, b):
        xp = get_xp(a, b)
        if _integer_operands(a, b):
            q = xp.floor_divide(a, b)
            return q + ((xp.remainder(a, b) != 0) & ((a < 0) != (b < 0)))
        return xp.trunc(a / b)


@primitive("div_floor", kind="binary", domain="nonzero", differentiable=False)
class DivFloor:
    """a / b rounded toward minus infinity (``div(a, b, rounding_mode="floor")``, Python's and
    NumPy's ``//``; integers stay integers). Not differentiable, as ``div_trunc``."""

    def forward(ctx, a, b):
        return get_xp(a, b).floor_divide(a, b)


def _integer_operands(a: Any, b: Any) -> bool:
    kinds = [x.dtype.kind if hasattr(x, "dtype") else ("f" if isinstance(x, float) else "i")
             for x in (a, b)]
    return all(k in "biu" for k in kinds)


@primitive("where", kind="other", saves="the condition")
class Where:
    """cond ? a : b (cond is a boolean array, not differentiated);  da = g [cond],
    db = g [!cond]."""

    def forward(ctx, a, b, cond):
        if ctx is not None:
            ctx.saved = cond
        return get_xp(cond, a, b).where(cond, a, b)

    def vjp(ctx, g):
        xp = get_xp(g)
        cond = ctx.saved
        ga = xp.where(cond, g, 0) if ctx.needs[0] else None
        gb = xp.where(cond, 0, g) if ctx.needs[1] else None
        return ga, gb


@primitive("astype", kind="other")
class AsType:
    """x cast to a dtype;  dx = g cast back (the engine casts gradients to each input's dtype)."""

    def forward(ctx, x, dtype):
        if dtype.kind in "biu" and x.dtype.kind == "f" and not bool(get_xp(x).isfinite(x).all()):
            raise InvalidValueError(f"astype: cannot convert NaN or infinity to {dtype} "
                                    f"(tensor of shape {tuple(x.shape)})")
        return x.astype(dtype)

    def vjp(ctx, g):
        return (g,)


# --------------------------------------------------------------------------- comparisons
def _comparison(name: str, fn: str):
    def forward(ctx, a, b):
        return getattr(get_xp(a, b), fn)(a, b)

    cls = type(name, (), {"forward": forward, "__doc__": f"a {name} b as a bool tensor; "
                          "not differentiable (no gradient flows through it)."})
    return primitive(name, kind="binary", differentiable=False)(cls)


LT = _comparison("lt", "less")
LE = _comparison("le", "less_equal")
GT = _comparison("gt", "greater")
GE = _comparison("ge", "greater_equal")
EQ = _comparison("eq", "equal")
NE = _comparison("ne", "not_equal")


# --------------------------------------------------------------------------- public functions
def add(a: Any, b: Any, alpha: Any = 1) -> Tensor:
    """a + alpha b, broadcasting (PyTorch's ``alpha``, a number; an integer for integer
    operands);  da = g, db = alpha g."""
    if alpha != 1 or type(alpha) is not int:
        b = _times_alpha("add", a, b, alpha)
    return apply(Add, operands(a, b))


def sub(a: Any, b: Any, alpha: Any = 1) -> Tensor:
    """a - alpha b, broadcasting (PyTorch's ``alpha``);  da = g, db = -alpha g."""
    if alpha != 1 or type(alpha) is not int:
        b = _times_alpha("sub", a, b, alpha)
    return apply(Sub, operands(a, b))


def _times_alpha(op: str, a: Any, b: Any, alpha: Any) -> Any:
    alpha = _number(op, "alpha", alpha)
    a_t, b_t = operands(a, b)
    if isinstance(alpha, float) and not (_is_float(a_t) or _is_float(b_t)):
        raise InvalidValueError(f"{op}: alpha must be an integer for integer operands, got "
                                f"{alpha}")
    return b_t * alpha if isinstance(b_t, (int, float)) else mul(b_t, alpha)


def mul(a: Any, b: Any) -> Tensor:
    """a * b, broadcasting;  da = g b, db = g a."""
    return apply(Mul, operands(a, b))


def div(a: Any, b: Any, rounding_mode: str | None = None) -> Tensor:
    """a / b, broadcasting.

    ``rounding_mode=None`` is true division (integer inputs give the default float dtype):
    da = g / b, db = -g a / b^2. ``"trunc"`` rounds the quotient toward zero and ``"floor"``
    toward minus infinity (PyTorch's modes; integer inputs stay integers, and an integer
    division by zero is an error); both are step functions, so their output is a constant (no
    gradient flows through it; PyTorch's is zero).
    """
    if rounding_mode is not None:
        return _div_rounded(a, b, rounding_mode)
    a, b = operands(a, b)
    if not (_is_float(a) or _is_float(b)):
        a = a.astype(get_default_dtype()) if isinstance(a, Tensor) else float(a)
        b = b.astype(get_default_dtype()) if isinstance(b, Tensor) else float(b)
    return apply(Div, (a, b))


def _div_rounded(a: Any, b: Any, mode: Any) -> Tensor:
    prim = {"trunc": DivTrunc, "floor": DivFloor}.get(mode) if isinstance(mode, str) else None
    if prim is None:
        raise InvalidValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got "
                                f"{mode!r}")
    a, b = operands(a, b)
    if not (_is_float(a) or _is_float(b)):
        divisor = b.data if isinstance(b, Tensor) else b
        if bool(get_xp(divisor).any(get_xp(divisor).asarray(divisor) == 0)):
            raise InvalidValueError(f"div: integer division by zero (rounding_mode={mode!r})")
    return apply(prim, (a, b))


def neg(x: Any) -> Tensor:
    """-x;  dx = -g."""
    return apply(Neg, (as_tensor(x),))


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001 - the operator's name
    """a ** b, broadcasting;  da = g b a^(b-1), db = g a^b log(a). A constant Python exponent
    uses the cheaper ``pow_scalar`` rule (and an integer base with a float or negative exponent
    becomes the default float dtype)."""
    if isinstance(b, (np.integer, np.floating)):
        b = b.item()  # a weak Python number: a float32 base stays float32
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if a.dtype.kind in "iu" and (isinstance(b, float) or b < 0):
            a = a.astype(get_default_dtype())
        return apply(PowScalar, (a,), b)
    return apply(Pow, operands(a, b))


def _unary(prim):
    def fn(x: Any) -> Tensor:
        return apply(prim, (as_tensor(x),))

    fn.__name__ = prim.name
    fn.__doc__ = prim.doc
    return fn


def _floating(x: Any) -> Tensor:
    """``x`` as a floating tensor: integer and bool input is cast to the default float dtype."""
    x = as_tensor(x)
    if x.dtype.kind in "biu":
        x = x.astype(get_default_dtype())
    return x


def _floating_unary(prim):
    """Unary function whose integer input is first cast to the default float dtype."""

    def fn(x: Any) -> Tensor:
        return apply(prim, (_floating(x),))

    fn.__name__ = prim.name
    fn.__doc__ = prim.doc
    return fn


exp = _floating_unary(Exp)
log = _floating_unary(Log)
sqrt = _floating_unary(Sqrt)
tanh = _floating_unary(Tanh)
sigmoid = _floating_unary(Sigmoid)
abs = _unary(Abs)  # noqa: A001
relu = _unary(Relu)
sign = _unary(Sign)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> Tensor:
    """x if x > 0 else negative_slope * x (integer input gives the default float dtype)."""
    slope = _number("leaky_relu", "negative_slope", negative_slope)
    return apply(LeakyRelu, (_floating(x),), slope)


def maximum(a: Any, b: Any) -> Tensor:
    """Elementwise maximum, broadcasting;  da = g [a > b], db = g [b > a], ties split g/2."""
    return apply(Maximum, operands(a, b))


def minimum(a: Any, b: Any) -> Tensor:
    """Elementwise minimum, broadcasting;  da = g [a < b], db = g [b < a], ties split g/2."""
    return apply(Minimum, operands(a, b))


def clip(x: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002 - NumPy's names
    """Clamp to [min, max] (either may be None); gradient 1 inside and on the bounds, 0 outside.

    The bounds are numbers (``min > max`` is then an error) or tensors (arrays, lists) that
    broadcast with ``x``, as PyTorch's ``clamp(x, min_tensor, max_tensor)``: elementwise
    min(max(x, min), max), so where min > max the result is max; each element's gradient goes
    to x when x lies within its bounds (on them included), else to the bound it takes.

    Shape: ``x``'s, or the broadcast shape of ``x`` and tensor bounds.
    """
    if min is None and max is None:
        raise InvalidValueError("clip: give at least one of min and max")
    if _is_tensor_bound(min) or _is_tensor_bound(max):
        return _clip_tensor(x, min, max)
    lo = None if min is None else _number("clip", "min", min)
    hi = None if max is None else _number("clip", "max", max)
    if lo is not None and hi is not None and lo > hi:
        raise InvalidValueError(f"clip: min ({lo}) is greater than max ({hi})")
    x = as_tensor(x)
    if isinstance(lo, float) or isinstance(hi, float):
        x = _floating(x)  # clipping integers to a float bound gives floats, in the default dtype
    return apply(Clip, (x,), lo, hi)


clamp = clip


def _is_tensor_bound(v: Any) -> bool:
    return isinstance(v, (Tensor, list, tuple)) or (hasattr(v, "shape") and
                                                     not isinstance(v, np.generic))


def _clip_bound(v: Any, x: Tensor) -> Any:
    if v is None or isinstance(v, Tensor):
        return v
    return as_tensor(v, x) if _is_tensor_bound(v) else _number("clip", "bound", v)


def _clip_tensor(x: Any, lo: Any, hi: Any) -> Tensor:
    """``clip`` with a tensor bound: the three become tensors of one dtype (a floating one when
    any is floating, as PyTorch promotes), except number bounds, which stay weak scalars."""
    x = as_tensor(x)
    bounds = [_clip_bound(v, x) for v in (lo, hi)]
    tensors = [t for t in [x, *bounds] if isinstance(t, Tensor)]
    floating = next((t.dtype for t in tensors if t.dtype.kind == "f"), None)
    if floating is None and any(isinstance(v, float) for v in bounds):
        floating = get_default_dtype()
    if floating is not None:
        x, lo, hi = (t.astype(floating) if isinstance(t, Tensor) and t.dtype.kind != "f" else t
                     for t in (x, *bounds))
    else:
        lo, hi = bounds
    return apply(ClipTensor, (x, lo, hi))


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (all three broadcast together; ``cond`` is a
    boolean tensor or array and is not differentiated);  da = g [cond], db = g [not cond]."""
    c = cond.data if isinstance(cond, Tensor) else cond
    like = next((t.data for t in (a, b) if isinstance(t, Tensor)), None)
    if like is not None:
        c = on_device_of(c, like)  # a NumPy condition next to CuPy tensors, or back
    xp = get_xp(like) if like is not None and not hasattr(c, "shape") else get_xp(c)
    c = xp.asarray(c)
    if c.dtype != bool:
        raise DTypeError(f"where: the condition must be boolean, got {c.dtype}")
    return apply(Where, operands(a, b), c)


def astype(x: Any, dtype: Any) -> Tensor:
    """``x`` cast to ``dtype``; between floating dtypes dx = g cast back, while a cast to an
    integer or bool dtype gives a constant (NaN or infinity cannot be cast to an integer)."""
    return apply(AsType, (as_tensor(x),), as_dtype(dtype))


def lt(a: Any, b: Any) -> Tensor:
    """a < b elementwise, broadcasting, as a bool tensor; not differentiable."""
    return apply(LT, operands(a, b))


def le(a: Any, b: Any) -> Tensor:
    """a <= b elementwise, broadcasting, as a bool tensor; not differentiable."""
    return apply(LE, operands(a, b))


def gt(a: Any, b: Any) -> Tensor:
    """a > b elementwise, broadcasting, as a bool tensor; not differentiable."""
    return apply(GT, operands(a, b))


def ge(a: Any, b: Any) -> Tensor:
    """a >= b elementwise, broadcasting, as a bool tensor; not differentiable."""
    return apply(GE, operands(a, b))


def eq(a: Any, b: Any) -> Tensor:
    """a == b elementwise, broadcasting, as a bool tensor; not differentiable."""
    return apply(EQ, operands(a, b))


def ne(a: Any, b: Any) -> Tensor:
    """a != b elementwise, broadcasting, as a bool tensor; not differentiable."""
    return apply(NE, operands(a, b))


def _number(op: str, label: str, v: Any) -> int | float:
    """``v`` as a Python int or float (weak in NumPy's arithmetic), never NaN."""
    if isinstance(v, (np.integer, np.floating)):
        v = v.item()
    if isinstance(v, Tensor) or not isinstance(v, (int, float)) or isinstance(v, bool):
        raise InvalidValueError(f"{op}: {label} must be a number, got {type(v).__name__}")
    if math.isnan(v):
        raise InvalidValueError(f"{op}: {label} is NaN")
    return v


def _quiet(xp):
    """Silence floating-point warnings inside a block (log(0) where the result is masked)."""
    errstate = getattr(xp, "errstate", None)
    return errstate(all="ignore") if errstate is not None else contextlib.nullcontext()
