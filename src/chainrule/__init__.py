"""chainrule: feed-forward neural networks and reverse-mode automatic differentiation on NumPy.

    import chainrule as cr
    x = cr.tensor([[1.5, -1.0, 1.3]], requires_grad=True)
    W = cr.randn(3, 3, requires_grad=True)
    h = (x @ W.T).relu().sum()
    h.backward()            # x.grad, W.grad
"""

from . import ops
from .anomaly import detect_anomaly, is_anomaly_enabled
from .autograd import enable_grad, is_grad_enabled, no_grad
from .backend import get_xp, to_numpy
from .creation import (
    arange, eye, full, ones, ones_like, rand, randint, randn, tensor, zeros, zeros_like,
)
from .dtypes import (
    bool_, default_dtype, float16, float32, float64, get_default_dtype, int32, int64,
)
from .errors import (
    ChainruleError, DTypeError, FileFormatError, GradcheckError, GraphError, IndexingError,
    InvalidValueError, ShapeError,
)
from .errors import AnomalyError
from .ops import (
    abs, add, argmax, argmin, broadcast_to, cat, clamp, clip, concat, div, exp, expand,
    flatten, leaky_relu, linear, log, log_softmax, logsumexp, matmul, max, maximum, mean,
    min, minimum, mul, neg, permute, pow, relu, reshape, sigmoid, sign, softmax, sqrt,
    squeeze, stack, std, sub, sum, swapaxes, tanh, transpose, unsqueeze, var, where,
)
from .ops import (
    amax, amin, clone, cos, erf, expm1, index_select, log1p, rsqrt, sin, square, ValuesIndices,
)
from .random import Generator, default_generator, manual_seed
from .tensor import Tensor
from .testing import gradcheck

# Functions whose module has the same name are imported eagerly (both modules are small and
# depend on the engine only), so ``cr.checkpoint`` and ``cr.explain`` are always the functions.
from .checkpoint import checkpoint, checkpoint_sequential  # noqa: E402
from .explain import explain  # noqa: E402
from .compile import compile  # noqa: E402,A004  (the function; the package is chainrule.compile)

__version__ = "0.1.0"

# The layers above the engine load on first use (PEP 562), so ``import chainrule`` stays light and
# the engine never depends on them: ``cr.nn``, ``cr.optim``, ``cr.save``, ...
_LAZY_MODULES = ("nn", "optim", "data", "io", "memory", "train", "reference", "runs", "viz",
                 "sklearn", "onnx", "interop")
_LAZY_FUNCTIONS = {"save": "io", "load": "io", "load_state": "io", "from_dlpack": "interop"}


def __getattr__(name: str):  # noqa: ANN202 - module-level attribute hook
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(f".{_LAZY_FUNCTIONS[name]}", __name__), name)
    raise AttributeError(f"module 'chainrule' has no attribute {name!r}")

__all__ = [
    "Tensor", "tensor", "zeros", "ones", "full", "arange", "eye", "zeros_like", "ones_like",
    "rand", "randn", "randint", "Generator", "default_generator", "manual_seed",
    "no_grad", "enable_grad", "is_grad_enabled", "gradcheck", "get_xp", "to_numpy",
    "default_dtype", "get_default_dtype", "float16", "float32", "float64", "int32", "int64",
    "bool_", "ChainruleError", "DTypeError", "FileFormatError", "GradcheckError", "GraphError",
    "IndexingError", "InvalidValueError", "ShapeError", "ops",
    "abs", "add", "argmax", "argmin", "broadcast_to", "cat", "clamp", "clip", "concat", "div",
    "exp", "expand", "flatten", "leaky_relu", "linear", "log", "log_softmax", "logsumexp",
    "matmul", "max", "maximum", "mean", "min", "minimum", "mul", "neg", "permute", "pow", "relu",
    "reshape", "sigmoid", "sign", "softmax", "sqrt", "squeeze", "stack", "std", "sub", "sum",
    "swapaxes", "tanh", "transpose", "unsqueeze", "var", "where",
    "amax", "amin", "clone", "cos", "erf", "expm1", "index_select", "log1p", "rsqrt", "sin",
    "square", "ValuesIndices",
    "nn", "optim", "save", "load", "load_state", "checkpoint", "checkpoint_sequential",
    "explain", "detect_anomaly", "is_anomaly_enabled", "AnomalyError", "from_dlpack", "onnx",
    "interop", "compile",
]
