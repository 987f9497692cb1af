"""``Linear`` (the affine map of one layer) and ``Flatten``."""

from __future__ import annotations

import math
import operator
from typing import Any

import chainrule as cr
from chainrule.errors import DTypeError, InvalidValueError

from . import init
from .module import Module, Parameter, register_layer


def _features(name: str, n: Any) -> int:
    if isinstance(n, bool):
        raise InvalidValueError(f"Linear: {name} must be a non-negative integer, got {n!r}")
    try:
        n = operator.index(n)
    except TypeError:
        raise InvalidValueError(f"Linear: {name} must be a non-negative integer, "
                                f"got {n!r}") from None
    if n < 0:
        raise InvalidValueError(f"Linear: {name} must be a non-negative integer, got {n}")
    return n


def _float_dtype(op: str, dtype: Any) -> Any:
    dt = cr.get_default_dtype() if dtype is None else cr.zeros(0, dtype=dtype).dtype
    if dt.kind != "f":
        raise DTypeError(f"{op}: dtype must be floating, got {dt}")
    return dt


@register_layer
class Linear(Module):
    r"""The affine map of a layer: the lecture's signal s = W x + b, batched as
    s = x W^T + b (one fused graph node, ``cr.linear``).

    The lecture's weight w_ij^(l), from unit i of layer l-1 to unit j of layer l, is
    ``weight[j, i]`` of layer l (the bias b_j plays the role of w_0j with x_0 = 1).

    Args:
        in_features: size of each input sample, d^(l-1).
        out_features: size of each output sample, d^(l).
        bias: if False, the layer learns no additive bias. Default: True.
        dtype: floating dtype of the parameters. Default: the default dtype (float32).
        generator: a :class:`chainrule.Generator` for the initial values (default: the global
            one, seeded by ``cr.manual_seed``).

    Shape:
        - Input: (*, in_features), any number of leading axes.
        - Output: (*, out_features).

    Attributes:
        weight: Parameter of shape (out_features, in_features), initialised from
            U(-1/sqrt(in_features), 1/sqrt(in_features)) (PyTorch's default: Kaiming uniform with
            a = sqrt(5)).
        bias: Parameter of shape (out_features,), from the same distribution; None if
            ``bias=False``.

    Example::

        >>> layer = cr.nn.Linear(3, 2)
        >>> layer(cr.randn(5, 3)).shape
        (5, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype: Any = None,
                 generator: cr.Generator | None = None) -> None:
        super().__init__()
        self.in_features = _features("in_features", in_features)
        self.out_features = _features("out_features", out_features)
        if not isinstance(bias, bool):
            raise InvalidValueError(f"Linear: bias must be True or False, got {bias!r}")
        dt = _float_dtype("Linear", dtype)
        self.generator = generator
        self.weight = Parameter(cr.zeros(self.out_features, self.in_features, dtype=dt))
        if bias:
            self.bias = Parameter(cr.zeros(self.out_features, dtype=dt))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator: cr.Generator | None = None) -> None:
        """Redraw weight and bias from U(-1/sqrt(in_features), 1/sqrt(in_features))."""
        gen = generator if generator is not None else self.generator
        init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=gen)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound, generator=gen)

    def forward(self, x: Any) -> cr.Tensor:
        """s = x W^T + b for ``x`` of shape (*, in_features); returns (*, out_features)."""
        return cr.linear(x, self.weight, self.bias)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``in_features``, ``out_features``,
        ``bias``, ``dtype``), JSON-serialisable.
        """
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "dtype": str(self.weight.dtype)}

    def extra_repr(self) -> str:
        """``in_features=..., out_features=..., bias=...``: the constructor arguments shown inside
        this layer's ``repr``.
        """
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


@register_layer
class Flatten(Module):
    """Merge axes ``start_dim`` .. ``end_dim`` (inclusive) into one.

    Args:
        start_dim: first axis to merge. Default: 1 (keeps the batch axis).
        end_dim: last axis to merge. Default: -1.

    Shape:
        - Input: (N, d1, d2, ..., dk) for the defaults.
        - Output: (N, d1 * d2 * ... * dk).
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        for name, v in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise InvalidValueError(f"Flatten: {name} must be an int, got {v!r}")
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Any) -> cr.Tensor:
        """``x`` with axes ``start_dim`` .. ``end_dim`` merged into one."""
        return cr.flatten(x, self.start_dim, self.end_dim)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``start_dim``, ``end_dim``),
        JSON-serialisable.
        """
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}

    def extra_repr(self) -> str:
        """``start_dim=..., end_dim=...``: the constructor arguments shown inside this layer's
        ``repr``.
        """
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


__all__ = ["Linear", "Flatten"]
