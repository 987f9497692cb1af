"""Reverse-mode automatic differentiation: graph nodes, ``apply``, the backward walk, grad modes.

The graph is define-by-run. ``apply(prim, inputs, *params)`` runs a primitive's forward and, when a
gradient is needed, records a :class:`Node` that points at its parents (the nodes that made the
inputs, or the leaf tensors themselves) in input order. A node does *not* hold its input tensors,
only what the primitive chose to save, so the memory the graph keeps alive is exactly the saved
state (see ``chainrule.memory``).

``backward`` walks the graph iteratively (no recursion): it counts, for every reachable node, how
many consumers will send it a gradient, then processes nodes whose count has reached zero, so each
node's vector-Jacobian product runs once with its complete gradient, and that gradient is freed as
soon as it has been used (the scheme of HIPS autograd's ``toposort``/``backward_pass``).
"""

from __future__ import annotations

import contextvars
import functools
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import ChainruleError, DTypeError, GraphError, IndexingError, ShapeError

if TYPE_CHECKING:
    from .ops.registry import Primitive
    from .tensor import Tensor

_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "chainrule_grad_enabled", default=True
)

# Marks a node whose saved state backward() has already released.
_RELEASED = object()


def is_grad_enabled() -> bool:
    """True unless inside ``no_grad()``."""
    return _grad_enabled.get()


class _GradMode:
    """Context manager and decorator that sets grad mode and restores it in ``finally``."""

    _mode: bool

    def __init__(self) -> None:
        self._tokens: list[contextvars.Token[bool]] = []

    def __enter__(self) -> None:
        self._tokens.append(_grad_enabled.set(self._mode))

    def __exit__(self, *exc: object) -> None:
        _grad_enabled.reset(self._tokens.pop())

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _grad_enabled.set(mode)
            try:
                return fn(*args, **kwargs)
            finally:
                _grad_enabled.reset(token)

        return wrapper


class no_grad(_GradMode):
    """Record nothing inside: outputs do not require grad and no state is saved for backward.

    Use as ``with cr.no_grad(): ...`` or as a decorator ``@cr.no_grad()``.
    """

    _mode = False


class enable_grad(_GradMode):
    """Re-enable recording inside a ``no_grad`` block."""

    _mode = True


class Node:
    """One recorded application of a primitive.

    Attributes:
        prim: the :class:`~chainrule.ops.registry.Primitive` that ran.
        parents: per input, the ``Node`` that produced it, the leaf ``Tensor`` itself (which
            receives its gradient in ``.grad``), or ``None`` when that input needs no gradient.
        needs: per input, whether its gradient is wanted (lets a VJP skip work, e.g. the
            gradient of a network's input).
        saved: whatever the primitive's forward stored for its VJP (``None`` if nothing).
        shape, dtype: of the output, used to shape and cast incoming gradients.
        versions: ``(counter, value)`` pairs for the inputs and the output, so backward can tell
            that saved data was modified in place since it was recorded.
        retained: weak reference to the output tensor when ``retain_grad()`` was called on it.
    """

    __slots__ = ("prim", "parents", "needs", "saved", "shape", "dtype", "versions", "retained")

    def __init__(self, prim: Primitive, parents: tuple[Any, ...], needs: tuple[bool, ...]) -> None:
        self.prim = prim
        self.parents = parents
        self.needs = needs
        self.saved: Any = None
        self.retained: weakref.ref[Tensor] | None = None

    @property
    def name(self) -> str:
        return self.prim.name

    def __repr__(self) -> str:
        return f"<{self.prim.name} node>"


def apply(prim: Primitive, inputs: tuple[Tensor, ...], *params: Any) -> Tensor:
    """Run ``prim`` on tensors ``inputs`` (plus non-tensor ``params``) and record it if needed."""
    from .tensor import Tensor

    arrays = [t.data for t in inputs]
    node = None
    if prim.differentiable and _grad_enabled.get():
        needs = tuple([t._requires_grad for t in inputs])
        if True in needs:
            parents = tuple(
                [(t._node or t) if r else None for t, r in zip(inputs, needs)]
            )
            node = Node(prim, parents, needs)
    try:
        out = prim.forward(node, *arrays, *params)
    except ChainruleError:
        raise
    except (ValueError, TypeError, IndexError) as exc:
        shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
        kind = next(k for base, k in _ERROR_KINDS.items() if isinstance(exc, base))
        raise kind(f"{prim.name}: cannot apply to inputs of shape {shapes}: {exc}") from None
    result = Tensor._from_op(out, node)
    if node is not None:
        node.shape = out.shape
        node.dtype = out.dtype
        node.versions = tuple([(t._version, t._version[0]) for t in inputs]) + (
            (result._version, 0),
        )
    return result


_ERROR_KINDS: dict[type[Exception], type[Exception]] = {
    ValueError: ShapeError,
    TypeError: DTypeError,
    IndexError: IndexingError,
}


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving an array of ``shape``.

    The single broadcasting rule of the engine: every binary op's gradient passes through here.
    """
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra:
        g = g.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    return g.reshape(shape)


def backward(root: Tensor, grad: Any = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) (contracted with ``grad``) into every leaf's ``.grad``.

    Args:
        root: the tensor to differentiate; must require grad.
        grad: the vector of the vector-Jacobian product, shape ``root.shape``; may be omitted
            only when ``root`` has one element (it is then 1).
        retain_graph: keep saved state so backward can run through this graph again.
    """
    from .backend import get_xp

    if not root._requires_grad:
        raise GraphError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "had requires_grad=True (or it was computed under no_grad())"
        )
    xp = get_xp(root.data)
    if grad is None:
        if root.data.size != 1:
            raise GraphError(
                f"backward() without a gradient needs a scalar, but the tensor has shape "
                f"{tuple(root.shape)}: pass grad= of that shape, or reduce it first (e.g. .sum())"
            )
        seed = xp.ones(root.shape, dtype=root.dtype)
    else:
        seed = grad.data if hasattr(grad, "_node") else xp.asarray(grad)
        if tuple(seed.shape) != tuple(root.shape):
            raise ShapeError(
                f"backward(): grad has shape {tuple(seed.shape)} but the tensor has shape "
                f"{tuple(root.shape)}"
            )
        if seed.dtype != root.dtype:
            seed = seed.astype(root.dtype)

    start = root._node
    if start is None:  # a leaf: its gradient is the seed itself
        _accumulate_leaf(root, seed, seed, xp)
        return

    # 1. Count, for each reachable node, how many consumers will send it a gradient.
    pending: dict[Node, int] = {}
    stack = [start]
    seen = {start}
    while stack:
        node = stack.pop()
        if node.saved is _RELEASED:
            raise GraphError(
                f"backward through the graph a second time (at {node.prim.name}): its saved "
                "state was freed by the first backward(); pass retain_graph=True to the first call"
            )
        for parent in node.parents:
            if type(parent) is Node:
                pending[parent] = pending.get(parent, 0) + 1
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)

    # 2. Process nodes once all their consumers have contributed; free each gradient after use.
    grads: dict[Node, Any] = {start: seed}
    ready = [start]
    while ready:
        node = ready.pop()
        g = grads.pop(node)
        if node.retained is not None:
            owner = node.retained()
            if owner is not None:
                _accumulate_leaf(owner, g, None, xp)
        for counter, value in node.versions:
            if counter[0] != value:
                raise GraphError(
                    f"a tensor needed to differentiate {node.prim.name} was modified by an "
                    "in-place operation after it was used; compute on a copy (or out of place)"
                )
        in_grads = node.prim.vjp(node, g)
        if not retain_graph:
            node.saved = _RELEASED
        for parent, gi in zip(node.parents, in_grads):
            if parent is None or gi is None:
                continue
            if gi.shape != parent.shape:
                gi = unbroadcast(gi, parent.shape)
            if gi.dtype != parent.dtype:
                gi = gi.astype(parent.dtype)
            if type(parent) is Node:
                if parent in grads:
                    grads[parent] = grads[parent] + gi
                else:
                    grads[parent] = gi
                left = pending[parent] - 1
                pending[parent] = left
                if left == 0:
                    ready.append(parent)
            else:
                _accumulate_leaf(parent, gi, g, xp)


def _accumulate_leaf(t: Tensor, g: Any, upstream: Any, xp: Any) -> None:
    """``t.grad += g``; the first gradient is copied when it may alias another array."""
    if t.grad is None:
        if upstream is None or xp.may_share_memory(g, upstream) or not getattr(g.flags, "writeable", True):
            g = g.copy()
        t.grad = g
    else:
        t.grad = t.grad + g
