"""Each supported layer as ONNX nodes, computing what its ``forward`` computes, in the same order
of operations where the precision depends on it.

ONNX Runtime has no float64 kernel for ``Elu``, ``Softplus`` and ``Erf``; in float64 these are
built from elementary operators instead: ELU and softplus with chainrule's own formulas, erf
with chainrule's own algorithm (``chainrule.ops.special``: a 36-term series up to 2.5, a
40-level continued fraction beyond), so a float64 model agrees to round-off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InvalidValueError, ShapeError
from ..ops import special as _special
from ._graph import Graph, Value

Handler = Callable[[Graph, Any, Value, str], Value]


def _same(g: Graph, v: Value, name: str) -> Value:
    return Value(name, v.shape, v.dtype)


def _unary(op: str, **attrs: Any) -> Handler:
    def handler(g: Graph, m: Any, v: Value, where: str) -> Value:
        _floating(v, where, m)
        return _same(g, v, g.op(op, [v.name], **attrs))

    return handler


def _floating(v: Value, where: str, m: Any) -> None:
    if v.dtype.kind != "f":
        raise InvalidValueError(f"ONNX export: {_label(where, m)} gets a {v.dtype} tensor; "
                                "expected a floating one")


def _label(where: str, m: Any) -> str:
    return f"{where or 'the model'} ({type(m).__name__})"


def _mul(g: Graph, a: str, b: str) -> str:
    return g.op("Mul", [a, b])


def _add(g: Graph, a: str, b: str) -> str:
    return g.op("Add", [a, b])


# ------------------------------------------------------------------ affine layers and shapes
def linear(g: Graph, m: Any, v: Value, where: str) -> Value:
    """s = x W^T + b: ``Gemm`` for a 2-D input, ``MatMul`` + ``Add`` for more axes."""
    if len(v.shape) < 1 or v.shape[-1] != m.in_features:
        raise ShapeError(f"ONNX export: {_label(where, m)} takes {m.in_features} features, but "
                         f"its input has shape {_shape(v.shape)}")
    w = m.weight.numpy()
    dt = np.result_type(v.dtype, w.dtype)  # NumPy's promotion, as the forward's
    x = g.cast(v, dt)
    prefix = f"{where}." if where else ""
    weight = g.const(w.astype(dt) if len(v.shape) == 2 else w.T.astype(dt),
                     f"{prefix}weight")
    bias = None if m.bias is None else g.const(m.bias.numpy().astype(dt), f"{prefix}bias")
    if len(v.shape) == 2:
        out = g.op("Gemm", [x.name, weight] + ([bias] if bias is not None else []), "linear",
                   transB=1)
    else:
        out = g.op("MatMul", [x.name, weight], "linear")
        if bias is not None:
            out = _add(g, out, bias)
    return Value(out, v.shape[:-1] + (m.out_features,), dt)


def flatten(g: Graph, m: Any, v: Value, where: str) -> Value:
    r = len(v.shape)
    start = m.start_dim + r if m.start_dim < 0 else m.start_dim
    end = m.end_dim + r if m.end_dim < 0 else m.end_dim
    if not 0 <= start < r or not 0 <= end < r:
        raise ShapeError(f"ONNX export: {_label(where, m)} cannot flatten axes "
                         f"{m.start_dim}..{m.end_dim} of a {r}-D input")
    if start >= end:
        return v
    merged = v.shape[start:end + 1]
    size = None if None in merged else int(np.prod(merged))
    shape = v.shape[:start] + (size,) + v.shape[end + 1:]
    # Reshape's 0 copies the input's axis at the same position (the axes before the merged
    # ones keep theirs); the merged axis is -1 when it holds the batch axis.
    target = [0] * start + [-1 if size is None else size] + [int(d) for d in shape[start + 1:]]
    out = g.op("Reshape", [v.name, g.const(np.asarray(target, dtype=np.int64), "shape")],
               "flatten")
    return Value(out, shape, v.dtype)


def identity(g: Graph, m: Any, v: Value, where: str) -> Value:
    return v


# ------------------------------------------------------------------ activations
def leaky_relu(g: Graph, m: Any, v: Value, where: str) -> Value:
    """where(x > 0, x, x slope). ``LeakyRelu``'s slope is a float32 attribute: in float64 the
    slope is a float64 constant instead."""
    _floating(v, where, m)
    if v.dtype == np.float32:
        return _same(g, v, g.op("LeakyRelu", [v.name], alpha=float(m.negative_slope)))
    scaled = _mul(g, v.name, g.scalar(m.negative_slope, v.dtype))
    positive = g.op("Greater", [v.name, g.scalar(0.0, v.dtype)])
    return _same(g, v, g.op("Where", [positive, v.name, scaled], "leaky_relu"))


def elu(g: Graph, m: Any, v: Value, where: str) -> Value:
    """where(x > 0, x, (exp(min(x, 0)) - 1) alpha), as ``nn.functional.elu``."""
    _floating(v, where, m)
    if v.dtype == np.float32:
        return _same(g, v, g.op("Elu", [v.name], alpha=float(m.alpha)))
    zero = g.scalar(0.0, v.dtype)
    neg = g.op("Exp", [g.op("Min", [v.name, zero])])
    neg = _mul(g, g.op("Sub", [neg, g.scalar(1.0, v.dtype)]), g.scalar(m.alpha, v.dtype))
    positive = g.op("Greater", [v.name, zero])
    return _same(g, v, g.op("Where", [positive, v.name, neg], "elu"))


def _softplus(g: Graph, x: str, dtype: np.dtype) -> str:
    """log(1 + e^x) as ``ops.special.softplus``: max(x, 0) + log1p(e^{-|x|}), with log1p(e) as
    log(u) e / (u - 1), u = 1 + e (exact to a few ulps; e where u rounds to 1)."""
    if dtype == np.float32:
        return g.op("Softplus", [x])
    one = g.scalar(1.0, dtype)
    e = g.op("Exp", [g.op("Neg", [g.op("Abs", [x])])])
    u = _add(g, one, e)
    d = g.op("Sub", [u, one])
    ratio = g.op("Div", [e, d])
    log1p = g.op("Where", [g.op("Equal", [d, g.scalar(0.0, dtype)]), e,
                           _mul(g, g.op("Log", [u]), ratio)])
    return _add(g, g.op("Max", [x, g.scalar(0.0, dtype)]), log1p)


def softplus(g: Graph, m: Any, v: Value, where: str) -> Value:
    """where(beta x > threshold, x, softplus(beta x) / beta), as ``nn.functional.softplus``."""
    _floating(v, where, m)
    bx = v.name if m.beta == 1 else _mul(g, v.name, g.scalar(m.beta, v.dtype))
    soft = _softplus(g, bx, v.dtype)
    if m.beta != 1:
        soft = _mul(g, soft, g.scalar(1.0 / m.beta, v.dtype))
    linear_part = g.op("Greater", [bx, g.scalar(m.threshold, v.dtype)])
    return _same(g, v, g.op("Where", [linear_part, v.name, soft], "softplus"))


def _erf(g: Graph, x: str, dtype: np.dtype) -> str:
    if dtype == np.float32:
        return g.op("Erf", [x])
    # chainrule.ops.special._erf_float64, operation for operation
    c = _special._SERIES_CUT
    a = g.op("Abs", [x])
    small = g.op("LessOrEqual", [a, g.scalar(c, dtype)])
    s_in = g.op("Min", [a, g.scalar(c, dtype)])        # each branch sees only its own range
    y = _mul(g, _mul(g, g.scalar(2.0, dtype), s_in), s_in)
    # Horner in y / 16 with the coefficients c_k 16^k: scaling by powers of two is exact, so
    # every step is the unscaled one times 16^k, bit for bit; and no coefficient is below
    # float32's range (ONNX Runtime drops an Add of a float64 constant that rounds to 0 in
    # float32, such as c_34 = 3e-50, which costs 1e-13 here).
    y = _mul(g, y, g.scalar(1 / 16, dtype))
    coefs = [c * 16.0**k for k, c in enumerate(_special._SERIES)]
    s = g.scalar(coefs[-1], dtype)
    for coef in coefs[-2::-1]:
        s = _add(g, _mul(g, s, y), g.scalar(coef, dtype))
    s = _mul(g, s, s_in)
    s = _mul(g, s, g.op("Exp", [g.op("Neg", [_mul(g, s_in, s_in)])]))
    s = _mul(g, s, g.scalar(_special._TWO_OVER_SQRT_PI, dtype))
    big = g.op("Max", [a, g.scalar(c, dtype)])
    f = big
    for k in range(_special._CF_DEPTH, 0, -1):
        f = _add(g, big, g.op("Div", [g.scalar(k / 2.0, dtype), f]))
    tail = g.op("Div", [g.op("Exp", [g.op("Neg", [_mul(g, big, big)])]),
                        _mul(g, g.scalar(math.sqrt(math.pi), dtype), f)])
    cf = g.op("Sub", [g.scalar(1.0, dtype), tail])
    out = g.op("Where", [small, s, cf])
    negative = g.op("Less", [x, g.scalar(0.0, dtype)])
    return g.op("Where", [negative, g.op("Neg", [out]), out], "erf")


def gelu(g: Graph, m: Any, v: Value, where: str) -> Value:
    """x ((erf(x sqrt(1/2)) + 1) / 2), or the tanh form, as ``nn.functional.gelu``."""
    _floating(v, where, m)
    dt, x = v.dtype, v.name
    if m.approximate == "none":
        inner = _erf(g, _mul(g, x, g.scalar(math.sqrt(0.5), dt)), dt)
    else:
        cube = _mul(g, _mul(g, _mul(g, x, x), x), g.scalar(0.044715, dt))
        inner = g.op("Tanh", [_mul(g, _add(g, x, cube), g.scalar(math.sqrt(2.0 / math.pi), dt))])
    half = _mul(g, _add(g, inner, g.scalar(1.0, dt)), g.scalar(0.5, dt))
    return _same(g, v, g.op("Mul", [x, half], "gelu"))


def _sigmoid(g: Graph, x: str, dtype: np.dtype) -> str:
    """1 / (1 + e^{-x}). In float64 as ``ops.elementwise.Sigmoid`` computes it, from
    e = e^{-|x|}: where(x >= 0, 1, e) / (1 + e). (ONNX Runtime's float64 ``Sigmoid`` is off by
    up to 3e-12 relative, and 1.30 fuses x * Sigmoid(x) into a ``QuickGelu`` it has no float64
    kernel for.)"""
    if dtype == np.float32:
        return g.op("Sigmoid", [x])
    e = g.op("Exp", [g.op("Neg", [g.op("Abs", [x])])])
    top = g.op("Where", [g.op("GreaterOrEqual", [x, g.scalar(0.0, dtype)]),
                         g.scalar(1.0, dtype), e])
    return g.op("Div", [top, _add(g, e, g.scalar(1.0, dtype))], "sigmoid")


def sigmoid(g: Graph, m: Any, v: Value, where: str) -> Value:
    _floating(v, where, m)
    return _same(g, v, _sigmoid(g, v.name, v.dtype))


def silu(g: Graph, m: Any, v: Value, where: str) -> Value:
    _floating(v, where, m)
    return _same(g, v, g.op("Mul", [v.name, _sigmoid(g, v.name, v.dtype)], "silu"))


def softmax(g: Graph, m: Any, v: Value, where: str) -> Value:
    _floating(v, where, m)
    _axis(m, v, where)
    return _same(g, v, g.op("Softmax", [v.name], axis=int(m.dim)))


def log_softmax(g: Graph, m: Any, v: Value, where: str) -> Value:
    _floating(v, where, m)
    _axis(m, v, where)
    return _same(g, v, g.op("LogSoftmax", [v.name], axis=int(m.dim)))


def _axis(m: Any, v: Value, where: str) -> None:
    if not -len(v.shape) <= m.dim < len(v.shape):
        raise ShapeError(f"ONNX export: {_label(where, m)} has dim={m.dim}, but its input has "
                         f"shape {_shape(v.shape)}")


# ------------------------------------------------------------------ preprocessing
def _raw(g: Graph, m: Any, v: Value, where: str) -> Value:
    """The input of a preprocessing layer: rows of ``num_features`` values, as float64."""
    if len(v.shape) != 2 or v.shape[1] != m.num_features:
        raise ShapeError(f"ONNX export: {_label(where, m)} expects rows of {m.num_features} "
                         f"raw features, shape (N, {m.num_features}); got {_shape(v.shape)}")
    return g.cast(v, np.float64)


def standardize(g: Graph, m: Any, v: Value, where: str) -> Value:
    """(x - mean) / scale in float64, then the layer's dtype."""
    x = _raw(g, m, v, where)
    prefix = f"{where}." if where else ""
    centred = g.op("Sub", [x.name, g.const(m.mean.numpy().astype(np.float64), f"{prefix}mean")])
    out = g.op("Div", [centred, g.const(m.scale.numpy().astype(np.float64), f"{prefix}scale")],
               "standardized")
    return g.cast(Value(out, x.shape, np.dtype(np.float64)), m.dtype)


def impute(g: Graph, m: Any, v: Value, where: str) -> Value:
    """NaN -> the column's fill value, in float64, then the layer's dtype."""
    x = _raw(g, m, v, where)
    prefix = f"{where}." if where else ""
    fill = g.const(m.fill.numpy().astype(np.float64).reshape(1, -1), f"{prefix}fill")
    out = g.op("Where", [g.op("IsNaN", [x.name]), fill, x.name], "imputed")
    return g.cast(Value(out, x.shape, np.dtype(np.float64)), m.dtype)


def one_hot(g: Graph, m: Any, v: Value, where: str) -> Value:
    """Each categorical column (codes 0..k-1) as k indicator columns, numeric columns as they
    are, in float64, then the layer's dtype. A code outside 0..k-1 (which the layer refuses)
    gives k zeros here: check codes before the runtime, as ``chainrule predict`` does."""
    x = _raw(g, m, v, where)
    axis = g.const(np.asarray([1], dtype=np.int64), "axis1")

    def columns(lo: int, hi: int) -> str:
        return g.op("Slice", [x.name, g.const(np.asarray([lo], dtype=np.int64), "start"),
                              g.const(np.asarray([hi], dtype=np.int64), "end"), axis])

    pieces: list[str] = []
    start = 0
    for j, k in zip(m.columns, m.categories):
        if j > start:
            pieces.append(columns(start, j))
        codes = g.const(np.arange(k, dtype=np.float64).reshape(1, k), f"categories_{j}")
        equal = g.op("Equal", [columns(j, j + 1), codes])
        pieces.append(g.op("Cast", [equal], "one_hot",
                           to=g.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np.float64))))
        start = j + 1
    if start < m.num_features:
        pieces.append(columns(start, m.num_features))
    out = pieces[0] if len(pieces) == 1 else g.op("Concat", pieces, "encoded", axis=1)
    return g.cast(Value(out, (None, m.out_features), np.dtype(np.float64)), m.dtype)


def _shape(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def handlers() -> dict[type, Handler]:
    """Layer type -> handler. Containers are walked by the exporter itself."""
    from .. import nn

    return {
        nn.Linear: linear, nn.Flatten: flatten, nn.Identity: identity, nn.Dropout: identity,
        nn.Sign: _unary("Sign"), nn.Sigmoid: sigmoid, nn.Tanh: _unary("Tanh"),
        nn.ReLU: _unary("Relu"), nn.LeakyReLU: leaky_relu, nn.ELU: elu,
        nn.Softplus: softplus, nn.GELU: gelu, nn.SiLU: silu, nn.Softmax: softmax,
        nn.LogSoftmax: log_softmax, nn.Standardize: standardize, nn.Impute: impute,
        nn.OneHot: one_hot,
    }
