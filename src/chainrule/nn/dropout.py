"""Inverted dropout (Srivastava et al., 2014)."""

from __future__ import annotations

import math
from typing import Any

import chainrule as cr
from chainrule.errors import InvalidValueError

from .module import Module, register_layer


def _probability(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or math.isnan(p) or not 0 <= p <= 1:
        raise InvalidValueError(f"dropout probability must be a number in [0, 1], got {p!r}")
    return float(p)


def dropout(x: Any, p: float = 0.5, training: bool = True,
            generator: cr.Generator | None = None) -> cr.Tensor:
    """Zero each element with probability ``p`` and scale the survivors by 1 / (1 - p), so the
    expected value is unchanged; the identity when ``training`` is False or ``p`` is 0.

    The mask m_i ~ Bernoulli(1 - p) is drawn from ``generator`` (default: the global generator)
    and the gradient is g m_i / (1 - p). With ``p = 1`` everything is zeroed.

    Shape: any -> the same.
    """
    p = _probability(p)
    x = x if isinstance(x, cr.Tensor) else cr.tensor(x)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    u = cr.rand(*x.shape, dtype="float64", generator=generator, device=x.device)
    mask = (u >= p).astype(x.dtype) * (1.0 / (1.0 - p))
    return x * mask


@register_layer
class Dropout(Module):
    """During training, zero each element with probability ``p`` and scale the rest by
    1 / (1 - p) (inverted dropout); in evaluation mode (``model.eval()``), the identity.

    Args:
        p: probability of zeroing an element. Default: 0.5.
        generator: a :class:`chainrule.Generator` for the masks (default: the global one).

    Shape: any -> the same.
    """

    def __init__(self, p: float = 0.5, generator: cr.Generator | None = None) -> None:
        super().__init__()
        self.p = _probability(p)
        self.generator = generator

    def forward(self, x: Any) -> cr.Tensor:
        """``x`` with elements zeroed with probability ``p`` and the rest scaled by
        1 / (1 - p) in training mode; ``x`` itself in evaluation mode.
        """
        return dropout(x, self.p, self.training, self.generator)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``p``), JSON-serialisable."""
        return {"p": self.p}

    def extra_repr(self) -> str:
        """``p=...``: the constructor arguments shown inside this layer's ``repr``."""
        return f"p={self.p}"


__all__ = ["Dropout", "dropout"]
