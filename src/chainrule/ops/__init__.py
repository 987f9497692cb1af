"""The differentiable primitives, one file per family, and the functions users call.

``REGISTRY`` maps each primitive's name to its definition (forward, VJP, what it saves); the test
suite walks it, so every registered primitive is gradient-checked. Every module that registers
primitives is imported here, so the registry is complete as soon as ``chainrule`` is imported.
"""

from .elementwise import (
    abs, add, astype, clamp, clip, div, eq, exp, ge, gt, le, leaky_relu, log, lt, maximum,
    minimum, mul, ne, neg, pow, relu, sigmoid, sign, sqrt, sub, tanh, where,
)
from .unary import clone, cos, expm1, log1p, rsqrt, sin, square
from .linalg import matmul
from .nn import linear, log_softmax, logsumexp, softmax
from .reduce import ValuesIndices, amax, amin, argmax, argmin, max, mean, min, std, sum, var
from .registry import REGISTRY, Primitive, primitive
from .shape import (
    broadcast_to, cat, concat, expand, flatten, getitem, index_arrays, index_select, permute,
    reshape, squeeze, stack, swapaxes, transpose, unsqueeze,
)
from . import loss  # the fused losses, used through chainrule.nn.functional
from .special import erf, softplus

__all__ = [
    "REGISTRY", "Primitive", "primitive",
    "abs", "add", "astype", "clamp", "clip", "div", "eq", "exp", "ge", "gt", "le", "leaky_relu",
    "log", "lt", "maximum", "minimum", "mul", "ne", "neg", "pow", "relu", "sigmoid", "sign",
    "sqrt", "sub", "tanh", "where", "matmul", "linear", "log_softmax", "logsumexp", "softmax",
    "argmax", "argmin", "max", "mean", "min", "std", "sum", "var", "broadcast_to", "cat",
    "concat", "expand", "flatten", "getitem", "index_arrays", "permute", "reshape", "squeeze",
    "stack", "swapaxes", "transpose", "unsqueeze", "erf", "softplus", "loss",
    "clone", "cos", "expm1", "log1p", "rsqrt", "sin", "square", "amax", "amin", "index_select",
    "ValuesIndices",
]
