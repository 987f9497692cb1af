"""The primitive registry: every differentiable operation, defined once with its VJP.

A primitive is written as a small class used as a namespace, its forward and its vector-Jacobian
product side by side::

    @primitive("tanh", kind="unary")
    class Tanh:
        "y = tanh(x);  dx = g * (1 - y^2).  Saves: y."
        def forward(ctx, x):
            y = get_xp(x).tanh(x)
            if ctx is not None:
                ctx.saved = y
            return y
        def vjp(ctx, g):
            y = ctx.saved
            return (g * (1 - y * y),)

``forward(ctx, *arrays, *params)`` receives backend arrays; ``ctx`` is the graph node when a
gradient will be needed (store what the VJP needs in ``ctx.saved``) and ``None`` otherwise, so
nothing is saved under ``no_grad``. ``vjp(ctx, g)`` returns one gradient (or ``None``) per array
input; the engine sums it back to the input's shape (``unbroadcast``) and casts it to its dtype.

``kind`` and ``domain`` describe the inputs for the registry-driven gradient tests: ``"unary"``
and ``"binary"`` (broadcasting elementwise), ``"reduce"`` (takes ``axis``, ``keepdims``), and
``"other"`` (the tests hold explicit cases, and fail for a primitive that has none).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("unary", "binary", "reduce", "other")
DOMAINS = ("real", "positive", "nonzero", "unit", "smooth")


@dataclass(frozen=True)
class Primitive:
    """A registered primitive. ``saves`` documents what its forward keeps for the VJP."""

    name: str
    forward: Callable[..., Any]
    vjp: Callable[..., Any]
    kind: str
    domain: str
    differentiable: bool
    saves: str
    doc: str

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


REGISTRY: dict[str, Primitive] = {}


def primitive(
    name: str,
    *,
    kind: str,
    domain: str = "real",
    differentiable: bool = True,
    saves: str = "nothing",
) -> Callable[[type], Primitive]:
    """Class decorator registering ``cls.forward``/``cls.vjp`` under ``name``.

    ``domain`` is where finite differences are valid: ``real`` (anywhere), ``positive``,
    ``nonzero`` (away from a kink or pole at 0), ``unit`` (inside (-1, 1)), ``smooth`` (real, but
    the tests keep inputs apart so that ties and kinks are avoided).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown primitive kind {kind!r}")
    if domain not in DOMAINS:
        raise ValueError(f"unknown primitive domain {domain!r}")

    def register(cls: type) -> Primitive:
        if name in REGISTRY:
            raise ValueError(f"primitive {name!r} is registered twice")
        vjp = getattr(cls, "vjp", None)
        if differentiable and vjp is None:
            raise ValueError(f"differentiable primitive {name!r} has no vjp")
        prim = Primitive(
            name=name,
            forward=cls.forward,
            vjp=vjp or _no_vjp,
            kind=kind,
            domain=domain,
            differentiable=differentiable,
            saves=saves,
            doc=(cls.__doc__ or "").strip(),
        )
        REGISTRY[name] = prim
        return prim

    return register


def _no_vjp(ctx: Any, g: Any) -> tuple[None, ...]:  # pragma: no cover - never recorded
    raise RuntimeError("a non-differentiable primitive was recorded in a graph")
