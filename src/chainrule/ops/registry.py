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

``forward(ctx, *arrays, *params)`` receives backend arrays (a binary elementwise primitive may
also receive a Python number for one operand: ``x * 2.0`` passes the 2.0 through as NumPy's weak
scalar, so no array is made for it); ``ctx`` is the graph node when a gradient will be needed
(store what the VJP needs in ``ctx.saved``) and ``None`` otherwise, so nothing is saved under
``no_grad``. ``vjp(ctx, g)`` returns one gradient (or ``None``) per input, reading
``ctx.needs`` to skip the ones nobody wants; the engine sums each back to its input's shape
(``unbroadcast``) and casts it to its dtype. A VJP must not write into ``g`` or into saved arrays:
both may be shared.

``kind`` and ``domain`` describe the inputs for the registry-driven gradient tests: ``"unary"``
and ``"binary"`` (broadcasting elementwise), ``"reduce"`` (takes ``axis``, ``keepdims``), and
``"other"`` (the tests hold explicit cases, and fail for a primitive that has none).

``view=True`` marks a primitive whose output may be a view of its first input (reshape,
transpose, slicing): such an output shares the input's version counter, so an in-place write
through either one invalidates graphs that saved the other.
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
    view: bool = False

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


REGISTRY: dict[str, Primitive] = {}
"""Every registered primitive by name; ``tests/test_ops.py`` gradient-checks each one."""


def primitive(
    name: str,
    *,
    kind: str,
    domain: str = "real",
    differentiable: bool = True,
    saves: str = "nothing",
    view: bool = False,
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
            view=view,
        )
        REGISTRY[name] = prim
        return prim

    return register


def _no_vjp(ctx: Any, g: Any) -> tuple[None, ...]:  # pragma: no cover - never recorded
    raise RuntimeError("a non-differentiable primitive was recorded in a graph")
