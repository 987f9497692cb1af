"""Activation checkpointing: trade recomputation for the memory of saved activations.

``checkpoint(fn, *inputs)`` runs ``fn`` without recording (so nothing inside it is saved for
backward), keeps only its inputs and the random-number state, and records a single node. When
backward reaches that node it runs ``fn`` again with recording, from the same inputs and the same
random state (so dropout draws the same mask), and backpropagates through the recomputed graph.
This is PyTorch's ``CheckpointFunction`` scheme. The recomputation performs the same operations
on the same arrays in the same order, so the gradients are bit-identical to those of the
uncheckpointed computation, in every dtype, with or without dropout.

Cost: one extra forward of the checkpointed part per backward. Memory: the checkpointed part keeps
only its inputs between forward and backward; during backward one segment at a time holds its
full saved state. ``checkpoint_sequential(modules, k, x)`` splits a chain of L layers into k
segments: about ``sqrt(L)`` segments bring the saved state of the chain from O(L) layers' worth to
O(sqrt(L)) (Chen et al., 2016, "Training deep nets with sublinear memory cost").

The parameters ``fn`` uses must be visible to the checkpoint node, or their gradients would be
lost when no input requires grad (an MLP's first segment, whose input is data): when ``fn`` is a
module (or a list of modules, as in ``checkpoint_sequential``) its parameters are found
automatically; for a plain function pass them as ``params=``. Likewise the random state restored
for the recomputation is that of the default generator and of every ``generator`` attribute of
the modules inside ``fn``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from . import random as _random
from .autograd import apply, enable_grad, no_grad
from .backend import get_xp
from .errors import InvalidValueError
from .ops.registry import Primitive
from .tensor import Tensor


def _generators(fn: Any) -> list[_random.Generator]:
    """The default generator and every generator a module inside ``fn`` owns (each once)."""
    gens = [_random.default_generator]
    modules = fn.modules() if hasattr(fn, "modules") else ()
    for m in modules:
        g = getattr(m, "generator", None)
        if isinstance(g, _random.Generator) and all(g is not h for h in gens):
            gens.append(g)
    return gens


def _forward(ctx: Any, *args: Any) -> Any:
    *arrays, fn, n_inputs = args
    gens = _generators(fn)
    states = [g.get_state() for g in gens]
    with no_grad():
        out = fn(*[Tensor._from_op(a, None) for a in arrays[:n_inputs]])
    if not isinstance(out, Tensor):
        raise InvalidValueError(f"checkpoint: fn must return a single Tensor, got "
                                f"{type(out).__name__}")
    if ctx is not None:
        # Only the inputs (not the parameters, which live anyway) and the random state.
        ctx.saved = (tuple(arrays[:n_inputs]), fn, gens, states)
    return out.data


def _vjp(ctx: Any, g: Any) -> tuple[Any, ...]:
    inputs, fn, gens, states = ctx.saved
    needs = ctx.needs
    later = [gen.get_state() for gen in gens]
    for gen, state in zip(gens, states):
        gen.set_state(state)
    try:
        xs = []
        for a, need in zip(inputs, needs):
            x = Tensor._from_op(a, None)
            x._requires_grad = need
            xs.append(x)
        with enable_grad():
            out = fn(*xs)
    finally:
        for gen, state in zip(gens, later):
            gen.set_state(state)
    if out.requires_grad:
        if out._node is not None:
            # The recomputed output's values are not needed by its backward (only its node
            # is): swap them for a zero-stride view, so that the segment's backward does not
            # hold one more activation-sized array alive. ``out`` is our own op output here.
            out.data = _placeholder(out.data)
        # Parameters are leaves of the recomputed graph: their .grad is accumulated here, so the
        # outer node returns None for them.
        out.backward(g)
    return tuple(x.grad for x in xs) + (None,) * (len(needs) - len(inputs))


def _placeholder(a: Any) -> Any:
    """A read-only array of ``a``'s shape and dtype that owns one element."""
    xp = get_xp(a)
    return xp.broadcast_to(xp.zeros((), dtype=a.dtype), a.shape)


CHECKPOINT = Primitive(
    name="checkpoint", forward=_forward, vjp=_vjp, kind="other", domain="real",
    differentiable=True, saves="the inputs and the random state (not the activations inside)",
    doc="fn(*inputs) recomputed in backward; a higher-order node, not a registered primitive.",
)


def checkpoint(fn: Callable[..., Tensor], *inputs: Any,
               params: Iterable[Tensor] | None = None) -> Tensor:
    """``fn(*inputs)``, saving only the inputs (and the random state) for backward; the
    activations inside ``fn`` are recomputed when backward needs them.

    Args:
        fn: a module, or a function of tensors, returning one tensor. It must be deterministic
            given its inputs and the random state (no reads of mutable Python state).
        inputs: its tensor arguments (other values are converted with ``cr.tensor``).
        params: tensors ``fn`` uses besides its inputs, so that they receive gradients (found
            automatically when ``fn`` has a ``parameters()`` method, as a module does).

    Returns:
        ``fn(*inputs)``, connected to the graph through one node. Without grad mode (or when
        nothing requires grad) this is just ``fn(*inputs)`` run without recording.

    Example::

        h = cr.checkpoint(block, x)      # block: a Module; x: (N, d)
        loss = h.sum(); loss.backward()  # block's forward runs again here
    """
    if not callable(fn):
        raise InvalidValueError(f"checkpoint: fn must be callable, got {type(fn).__name__}")
    ts = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
    if params is not None:
        extra = list(params)
    else:
        extra = list(fn.parameters()) if hasattr(fn, "parameters") else []
    return apply(CHECKPOINT, ts + tuple(extra), fn, len(ts))


class _Segment:
    """Modules run one after another: one checkpointed segment."""

    def __init__(self, modules: Sequence[Any]) -> None:
        self.mods = list(modules)

    def __call__(self, x: Tensor) -> Tensor:
        for m in self.mods:
            x = m(x)
        return x

    def modules(self) -> Iterable[Any]:
        for m in self.mods:
            if hasattr(m, "modules"):
                yield from m.modules()

    def parameters(self) -> list[Tensor]:
        seen: set[int] = set()
        out = []
        for m in self.mods:
            for p in (m.parameters() if hasattr(m, "parameters") else ()):
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out


def split(n: int, segments: int) -> list[tuple[int, int]]:
    """``[start, stop)`` bounds of ``min(segments, n)`` consecutive pieces of ``range(n)`` whose
    lengths differ by at most one (longer pieces first), e.g. ``split(7, 3)`` is
    ``[(0, 3), (3, 5), (5, 7)]``. ``checkpoint_sequential`` cuts its modules this way."""
    k = max(1, min(segments, n))
    base, extra = divmod(n, k)
    bounds = []
    start = 0
    for i in range(k):
        stop = start + base + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def checkpoint_sequential(modules: Sequence[Any], segments: int, x: Any) -> Tensor:
    """Run ``modules`` in order on ``x``, cut into ``segments`` pieces of nearly equal length;
    every piece but the last is checkpointed.

    The last piece is recorded normally, because backward needs its activations at once. With L
    layers, about sqrt(L) segments minimise the peak: (segments - 1) saved segment inputs plus
    one segment's activations during its recomputation. ``segments=1`` is the plain forward.

    Args:
        modules: callables of one tensor (typically ``list(model)`` of a ``Sequential``).
        segments: the number of pieces, a positive integer (capped at ``len(modules)``).
        x: the input of the first module.

    Returns:
        The output of the last module.
    """
    mods = list(modules)
    if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
        raise InvalidValueError(f"checkpoint_sequential: segments must be a positive integer, "
                                f"got {segments!r}")
    if not mods:
        raise InvalidValueError("checkpoint_sequential: no modules")
    pieces = [mods[a:b] for a, b in split(len(mods), segments)]
    for piece in pieces[:-1]:
        x = checkpoint(_Segment(piece), x)
    for m in pieces[-1]:  # in this frame, so that each output is dropped once it is used
        x = m(x)
    return x


__all__ = ["checkpoint", "checkpoint_sequential", "split"]
