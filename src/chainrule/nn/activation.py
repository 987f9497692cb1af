"""Activation functions theta(s), as functions (also in ``chainrule.nn.functional``) and as
modules, plus :func:`get_activation`, which turns a name such as ``"relu"`` into a module.

In the lecture's notation a layer computes the signal s = W x + b and the activation
x = theta(s); these are the thetas. All act elementwise except ``softmax``/``log_softmax``.
"""

from __future__ import annotations

import math
from typing import Any

import chainrule as cr
from chainrule.errors import InvalidValueError
from chainrule.ops.special import erf as _erf
from chainrule.ops.special import softplus as _softplus

from .module import Module, build, register_layer


def _number(op: str, name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v):
        raise InvalidValueError(f"{op}: {name} must be a number, got {v!r}")
    return float(v)


# --------------------------------------------------------------------------- functions
def identity(x: Any) -> cr.Tensor:
    """theta(s) = s."""
    return cr.tensor(x) if not isinstance(x, cr.Tensor) else x


def sign(x: Any) -> cr.Tensor:
    """theta(s) = sign(s) in {-1, 0, +1} (the perceptron's hard threshold).

    Forward only: the gradient is zero everywhere (PyTorch's convention; the derivative is 0
    wherever it exists), so the result is part of the graph but passes no gradient back. A
    network ending in ``sign`` cannot be trained by gradient descent: train with ``tanh`` and
    apply ``sign`` for prediction, as the lecture does.
    """
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    out = cr.sign(x)
    if x.requires_grad and cr.is_grad_enabled():
        # A zero-gradient path keeps the output in the graph (backward works, grads are 0).
        never = cr.zeros_like(x, dtype="bool")
        out = out + cr.where(never, x, 0.0)
    return out


def sigmoid(x: Any) -> cr.Tensor:
    """theta(s) = 1 / (1 + e^{-s}), computed without overflow for any s."""
    return cr.sigmoid(x)


def tanh(x: Any) -> cr.Tensor:
    """theta(s) = tanh(s) = (e^s - e^{-s}) / (e^s + e^{-s}); theta'(s) = 1 - theta(s)^2."""
    return cr.tanh(x)


def relu(x: Any) -> cr.Tensor:
    """theta(s) = max(s, 0); the gradient at s = 0 is 0 (as PyTorch)."""
    return cr.relu(x)


def leaky_relu(x: Any, negative_slope: float = 0.01) -> cr.Tensor:
    """theta(s) = s for s > 0, ``negative_slope`` * s otherwise."""
    return cr.leaky_relu(x, _number("leaky_relu", "negative_slope", negative_slope))


def elu(x: Any, alpha: float = 1.0) -> cr.Tensor:
    """theta(s) = s for s > 0, alpha (e^s - 1) otherwise (Clevert et al., 2015)."""
    alpha = _number("elu", "alpha", alpha)
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    # exp of min(s, 0) so that large positive s cannot overflow in the unused branch.
    neg = (cr.exp(cr.clip(x, max=0.0)) - 1.0) * alpha
    return cr.where(x > 0, x, neg)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> cr.Tensor:
    """theta(s) = (1 / beta) log(1 + e^{beta s}), and s itself where beta s > ``threshold``
    (PyTorch's rule). Finite for every finite s; the gradient is sigmoid(beta s)."""
    beta = _number("softplus", "beta", beta)
    threshold = _number("softplus", "threshold", threshold)
    if beta == 0:
        raise InvalidValueError("softplus: beta must be non-zero")
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    bx = x * beta if beta != 1 else x
    soft = _softplus(bx)
    if beta != 1:
        soft = soft * (1.0 / beta)
    return cr.where(bx > threshold, x, soft)


_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x: Any, approximate: str = "none") -> cr.Tensor:
    """theta(s) = s Phi(s) = s (1 + erf(s / sqrt 2)) / 2 (Hendrycks & Gimpel, 2016), with Phi the
    standard normal CDF. ``approximate="tanh"`` uses
    s (1 + tanh(sqrt(2/pi) (s + 0.044715 s^3))) / 2 instead."""
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    if approximate == "none":
        return x * ((_erf(x * _SQRT_HALF) + 1.0) * 0.5)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * _SQRT_2_OVER_PI
        return x * ((cr.tanh(inner) + 1.0) * 0.5)
    raise InvalidValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(x: Any) -> cr.Tensor:
    """theta(s) = s sigmoid(s) (also called swish)."""
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    return x * cr.sigmoid(x)


def _dim(op: str, dim: Any, axis: Any) -> Any:
    if axis is None:
        return dim
    if dim != -1:
        raise InvalidValueError(f"{op}: give either dim= or axis=, not both")
    return axis


def softmax(x: Any, dim: int = -1, *, axis: int | None = None, dtype: Any = None) -> cr.Tensor:
    """theta(s)_k = e^{s_k} / sum_j e^{s_j} along ``dim`` (``axis=`` is NumPy's name for it),
    computed stably (shifted by the maximum); ``dtype`` casts the input first, as in PyTorch."""
    return cr.softmax(x, axis=_dim("softmax", dim, axis), dtype=dtype)


def log_softmax(x: Any, dim: int = -1, *, axis: int | None = None,
                dtype: Any = None) -> cr.Tensor:
    """log(softmax(s)) = s_k - logsumexp(s) along ``dim`` (or ``axis=``), without forming
    softmax; ``dtype`` casts the input first."""
    return cr.log_softmax(x, axis=_dim("log_softmax", dim, axis), dtype=dtype)


# --------------------------------------------------------------------------- modules
class _Activation(Module):
    """An activation layer without parameters; ``config()`` is its keyword arguments."""

    def config(self) -> dict[str, Any]:
        return {}


@register_layer
class Identity(_Activation):
    """theta(s) = s. Any extra arguments are ignored (PyTorch's ``nn.Identity``).

    Shape: any -> the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        """Return ``x`` unchanged: theta(s) = s."""
        return x


@register_layer
class Sign(_Activation):
    """theta(s) = sign(s). Forward only: the gradient is zero (see :func:`sign`)."""

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = sign(s^(l)) elementwise, in {-1, 0, 1}; no gradient flows through it."""
        return sign(x)


@register_layer
class Sigmoid(_Activation):
    """theta(s) = 1 / (1 + e^{-s}). Shape: any -> the same."""

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = 1 / (1 + e^{-s^(l)}) elementwise; shape unchanged."""
        return cr.sigmoid(x)


@register_layer
class Tanh(_Activation):
    """theta(s) = tanh(s), the lecture's soft threshold. Shape: any -> the same."""

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = tanh(s^(l)) elementwise; shape unchanged."""
        return cr.tanh(x)


@register_layer
class ReLU(_Activation):
    """theta(s) = max(s, 0). Shape: any -> the same."""

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = max(s^(l), 0) elementwise; shape unchanged."""
        return cr.relu(x)


@register_layer
class LeakyReLU(_Activation):
    """theta(s) = s for s > 0, ``negative_slope`` * s otherwise.

    Args:
        negative_slope: the slope for s <= 0. Default: 0.01.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = _number("LeakyReLU", "negative_slope", negative_slope)

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = s^(l) where s^(l) > 0, else ``negative_slope`` * s^(l); shape unchanged."""
        return cr.leaky_relu(x, self.negative_slope)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``negative_slope``), JSON-serialisable."""
        return {"negative_slope": self.negative_slope}

    def extra_repr(self) -> str:
        """``negative_slope=...``: the constructor arguments shown inside this layer's ``repr``."""
        return f"negative_slope={self.negative_slope}"


@register_layer
class ELU(_Activation):
    """theta(s) = s for s > 0, alpha (e^s - 1) otherwise.

    Args:
        alpha: the value approached as s -> -infinity is -alpha. Default: 1.0.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = _number("ELU", "alpha", alpha)

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = s^(l) where s^(l) > 0, else alpha (e^{s^(l)} - 1); shape unchanged."""
        return elu(x, self.alpha)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``alpha``), JSON-serialisable."""
        return {"alpha": self.alpha}

    def extra_repr(self) -> str:
        """``alpha=...``: the constructor arguments shown inside this layer's ``repr``."""
        return f"alpha={self.alpha}"


@register_layer
class Softplus(_Activation):
    """theta(s) = (1 / beta) log(1 + e^{beta s}); s itself where beta s > threshold.

    Args:
        beta: sharpness. Default: 1.0.
        threshold: above this value of beta s the layer is linear. Default: 20.0.
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = _number("Softplus", "beta", beta)
        self.threshold = _number("Softplus", "threshold", threshold)
        if self.beta == 0:
            raise InvalidValueError("Softplus: beta must be non-zero")

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = log(1 + e^{beta s^(l)}) / beta (s^(l) where beta s^(l) > threshold)."""
        return softplus(x, self.beta, self.threshold)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``beta``, ``threshold``),
        JSON-serialisable.
        """
        return {"beta": self.beta, "threshold": self.threshold}

    def extra_repr(self) -> str:
        """``beta=..., threshold=...``: the constructor arguments shown inside this layer's
        ``repr``.
        """
        return f"beta={self.beta}, threshold={self.threshold}"


@register_layer
class GELU(_Activation):
    """theta(s) = s Phi(s), Phi the standard normal CDF.

    Args:
        approximate: ``"none"`` (exact, with erf) or ``"tanh"``. Default: ``"none"``.
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise InvalidValueError(f"GELU: approximate must be 'none' or 'tanh', got "
                                    f"{approximate!r}")
        self.approximate = approximate

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = s^(l) Phi(s^(l)) elementwise (tanh approximation if asked); shape unchanged."""
        return gelu(x, self.approximate)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``approximate``), JSON-serialisable."""
        return {"approximate": self.approximate}

    def extra_repr(self) -> str:
        """``approximate=...``: the constructor arguments shown inside this layer's ``repr``."""
        return f"approximate={self.approximate!r}"


@register_layer
class SiLU(_Activation):
    """theta(s) = s sigmoid(s). Shape: any -> the same."""

    def forward(self, x: Any) -> cr.Tensor:
        """x^(l) = s^(l) sigmoid(s^(l)) elementwise; shape unchanged."""
        return silu(x)


class _AlongDim(_Activation):
    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise InvalidValueError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


@register_layer
class Softmax(_AlongDim):
    """theta(s)_k = e^{s_k} / sum_j e^{s_j} along ``dim``.

    Args:
        dim: the axis that sums to 1. Default: -1.
    """

    def forward(self, x: Any) -> cr.Tensor:
        """p_k = e^{s_k} / sum_j e^{s_j} along ``dim``; shape unchanged."""
        return cr.softmax(x, axis=self.dim)


@register_layer
class LogSoftmax(_AlongDim):
    """log(softmax(s)) along ``dim``.

    Args:
        dim: the axis. Default: -1.
    """

    def forward(self, x: Any) -> cr.Tensor:
        """log p_k = s_k - log sum_j e^{s_j} along ``dim``; shape unchanged."""
        return cr.log_softmax(x, axis=self.dim)


ACTIVATIONS: dict[str, type] = {
    "identity": Identity, "sign": Sign, "sigmoid": Sigmoid, "tanh": Tanh, "relu": ReLU,
    "leaky_relu": LeakyReLU, "elu": ELU, "softplus": Softplus, "gelu": GELU, "silu": SiLU,
    "softmax": Softmax, "log_softmax": LogSoftmax,
}
"""Activation names accepted wherever an activation is asked for, and their module classes."""


def _key(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


_BY_KEY = {_key(n): n for n in ACTIVATIONS}


def activation_name(name: str) -> str:
    """The canonical name of an activation: ``"ReLU"``, ``"relu"`` -> ``"relu"``,
    ``"LeakyReLU"`` -> ``"leaky_relu"``. Raises InvalidValueError for an unknown one."""
    if not isinstance(name, str) or _key(name) not in _BY_KEY:
        raise InvalidValueError(f"unknown activation {name!r}; valid names: "
                                f"{', '.join(ACTIVATIONS)}")
    return _BY_KEY[_key(name)]


def get_activation(activation: Any) -> Module:
    """An activation module from a name (``"relu"``, case and underscores ignored, so the class
    name ``"LeakyReLU"`` works too), a module (returned as is), a module class (instantiated with
    its defaults), a spec dict (see :func:`chainrule.nn.build`), or None (:class:`Identity`).

    Raises:
        InvalidValueError: an unknown name, listing the valid ones.
    """
    if activation is None:
        return Identity()
    if isinstance(activation, str):
        return ACTIVATIONS[activation_name(activation)]()
    if isinstance(activation, Module):
        return activation
    if isinstance(activation, type) and issubclass(activation, Module):
        return activation()
    if isinstance(activation, dict):
        return build(activation)
    raise InvalidValueError(
        f"an activation must be a name ({', '.join(ACTIVATIONS)}), a Module, a Module class, a "
        f"spec dict or None; got {type(activation).__name__}")


__all__ = [
    "identity", "sign", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
    "silu", "softmax", "log_softmax", "Identity", "Sign", "Sigmoid", "Tanh", "ReLU", "LeakyReLU",
    "ELU", "Softplus", "GELU", "SiLU", "Softmax", "LogSoftmax", "ACTIVATIONS", "get_activation",
    "activation_name",
]
