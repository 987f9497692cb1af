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

In-place modification is tracked with version counters: every tensor carries a one-element list
that in-place writes increment (views and ``detach()`` share their base's list). A node snapshots
the counters of its inputs and its output; backward refuses to run a node whose snapshot is stale,
because its saved arrays may no longer hold the values the forward saw.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import operator
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import get_xp
from .compile import _hooks
from .errors import (
    ChainruleError, DTypeError, GraphError, IndexingError, InvalidValueError, ShapeError,
)

if TYPE_CHECKING:
    from .ops.registry import Primitive
    from .tensor import Tensor

# tensor.py imports this module, and apply() makes Tensors: a module reference (not the class,
# which does not exist yet while the two are first imported) resolves the cycle. import_module,
# because the package attribute ``chainrule.tensor`` is the factory function, not this module.
_tensor = importlib.import_module(".tensor", __package__)

_grad_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "chainrule_grad_enabled", default=True
)

# Marks a node whose saved state backward() has already released.
_RELEASED = object()

# True while a ``detect_anomaly()`` block is open in some thread (``chainrule.anomaly``): then
# apply() and backward() call its checks, which look at the per-thread mode. Off, the cost is
# this flag's test per operation.
_anomaly_on = False


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
            receives its gradient in ``.grad``), or ``None`` when that input needs no gradient
            (a constant, a Python number, a tensor that does not require grad).
        needs: per input, whether its gradient is wanted (lets a VJP skip work, e.g. the
            gradient of a network's input).
        saved: whatever the primitive's forward stored for its VJP (``None`` if nothing).
        shape, dtype: of the output, used to shape and cast incoming gradients.
        versions: the version counters of the tensor inputs and of the output (none when the
            primitive saved nothing, so that no in-place change can affect its VJP).
        version_sum: the sum of those counters' values when the node was recorded.
        retained: weak reference to the output tensor when ``retain_grad()`` was called on it.
        final: set by ``backward`` just before the VJP runs: True when this is the VJP's last use
            of ``saved`` (no ``retain_graph``), so a VJP that walks several layers (the fused
            ``mlp``) may drop each saved array as soon as it is done with it, as the unfused
            chain of nodes would.
        site: where the forward was called (a ``chainrule.anomaly.Site``), set only for nodes
            recorded in anomaly mode.
    """

    __slots__ = ("prim", "parents", "needs", "saved", "shape", "dtype", "versions", "version_sum",
                 "retained", "final", "site")

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


def apply(prim: Primitive, inputs: tuple[Any, ...], *params: Any) -> Tensor:
    """Run ``prim`` on ``inputs`` (plus non-tensor ``params``) and record a node if needed.

    ``inputs`` are tensors; a binary elementwise primitive may also get a Python number, which
    reaches its forward as a NumPy "weak" scalar (it takes the other operand's dtype) and is a
    constant of the graph. A node is recorded when grad mode is on, the primitive is
    differentiable, some input requires grad and the output is floating.
    """
    # This runs for every op of every step, so it does its bookkeeping in one pass over the
    # inputs and skips what the common case does not need (1.7 instead of 2.4 us per recorded
    # op, measured on small arrays).
    # cr.compile is tracing a step: record this op
    if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
        return _tr.apply(prim, inputs, params)
    Tensor = _tensor.Tensor
    node = None
    if prim.differentiable and _grad_enabled.get():
        arrays = []
        needs = []
        parents = []
        for t in inputs:
            if isinstance(t, Tensor):
                arrays.append(t.data)
                if t._requires_grad:
                    needs.append(True)
                    parents.append(t._node or t)
                    continue
            else:
                arrays.append(t)
            needs.append(False)
            parents.append(None)
        if True in needs:
            node = Node(prim, tuple(parents), tuple(needs))
    else:
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
    try:
        out = prim.forward(node, *arrays, *params)
    except ChainruleError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError) as exc:
        raise _forward_error(prim, arrays, exc) from None
    if type(out) is not np.ndarray and isinstance(out, np.generic):
        out = np.asarray(out)  # NumPy gives scalars for full reductions: keep 0-d arrays
    if _anomaly_on:
        _anomaly.check_forward(prim, arrays, out, node)
    result = Tensor._from_op(out, None)
    if prim.view and get_xp(out).may_share_memory(out, arrays[0]):
        # A view writes through to its base (recorded or not): share the counter, so an in-place
        # write to either invalidates every node that saved the other.
        result._version = inputs[0]._version
    if node is None or out.dtype.kind != "f":
        return result  # integer and bool results are constants: nothing flows back through them
    result._node = node
    result._requires_grad = True
    node.shape = out.shape
    node.dtype = out.dtype
    if node.saved is None:
        node.versions = ()  # a VJP that saved nothing cannot see an in-place change
        return result
    # Counters only grow, so their sum changes exactly when one of them is bumped.
    counter = result._version
    counters = [counter]
    total = counter[0]
    for t in inputs:
        if isinstance(t, Tensor):
            counter = t._version
            counters.append(counter)
            total += counter[0]
    node.versions = counters
    node.version_sum = total
    return result


def _forward_error(prim: Primitive, arrays: list[Any], exc: Exception) -> ChainruleError:
    """A backend exception from a forward as a chainrule error naming the op, shapes and dtypes."""
    described = ", ".join(
        f"{tuple(a.shape)} {a.dtype}" if hasattr(a, "shape") else repr(a) for a in arrays
    )
    text = f"{prim.name}: cannot apply to inputs {described}: {str(exc).rstrip('.')}"
    if isinstance(exc, IndexError):
        return IndexingError(f"{text}; expected indices within the tensor's shape")
    if isinstance(exc, TypeError):
        return DTypeError(f"{text}; expected dtypes this operation supports")
    if isinstance(exc, OverflowError):
        return InvalidValueError(f"{text}; expected a value that fits the tensor's dtype")
    # NumPy raises ValueError both for shapes that do not broadcast and for bad values (an
    # integer to a negative integer power): tell them apart by what the message talks about.
    if "broadcast" in str(exc):
        shapes = " and ".join(str(tuple(a.shape)) for a in arrays if hasattr(a, "shape"))
        return ShapeError(f"{prim.name}: shapes {shapes} do not broadcast together: expected "
                          "the dimensions, aligned from the right, to be equal or 1")
    if any(w in str(exc) for w in ("shape", "dimension", "axis", "size")):
        return ShapeError(f"{text}; expected compatible shapes")
    return InvalidValueError(text)


def unbroadcast(g: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``g`` over the axes that broadcasting added or stretched, giving an array of ``shape``.

    The single broadcasting rule of the engine: every binary op's gradient passes through here.
    Shape: ``g`` has the broadcast shape, of which ``shape`` is a broadcastable part; the result
    has ``shape``.
    """
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    if extra > 0:
        g = g.sum(axis=tuple(range(extra)))
    elif extra < 0:  # fewer axes than the input (a VJP that kept a size-1 axis squeezed)
        g = g.reshape((1,) * -extra + g.shape)
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

    Raises:
        GraphError: ``root`` does not require grad, ``grad`` is missing for a non-scalar, the
            graph was already released by an earlier backward, or a tensor it saved was modified
            in place. These are all detected before any ``.grad`` is touched.
    """
    # cr.compile is tracing a step: record the walk
    if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
        _tr.backward(root, grad, retain_graph)
        return
    if not root._requires_grad:
        raise GraphError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "had requires_grad=True (or it was computed under no_grad())"
        )
    seed = _seed(root, grad)
    start = root._node
    if start is None:  # a leaf: its gradient is the seed itself (copied: it may be the user's)
        _accumulate(root, seed, copy=True)
        return
    pending = _count_consumers(start)

    # Process nodes once all their consumers have contributed; free each gradient after use.
    # This loop runs once per node of every training step, so it is written for speed: the
    # common cases (a gradient of the right shape and dtype, a node with one consumer) cost a
    # few comparisons (backward of a 6-node MLP on small arrays, VJPs included: 36 -> 32 us).
    grads: dict[Node, Any] = {start: seed}
    ready = [start]
    while ready:
        node = ready.pop()
        g = grads.pop(node, None)
        parents = node.parents
        repeats = None  # whether one array is the gradient of two inputs (found when needed)
        if g is None:  # every consumer sent None (e.g. a checkpoint's parameters): nothing to do
            in_grads: tuple[Any, ...] = (None,) * len(parents)
        else:
            if node.retained is not None:
                owner = node.retained()
                if owner is not None:
                    _accumulate(owner, g, copy=True)
            node.final = not retain_graph
            in_grads = node.prim.vjp(node, g)
            if len(in_grads) != len(parents):
                raise GraphError(f"{node.prim.name}: the VJP returned {len(in_grads)} "
                                 f"gradients for {len(parents)} inputs")
            if _anomaly_on:
                _anomaly.check_backward(node, g, in_grads)
        if not retain_graph:
            node.saved = _RELEASED
        for parent, gi in zip(parents, in_grads):
            if parent is None:
                continue
            if type(parent) is Node:
                if gi is not None:
                    if gi.shape != parent.shape or gi.dtype != parent.dtype:
                        gi = _conform(gi, parent.shape, parent.dtype)
                    have = grads.get(parent)
                    grads[parent] = gi if have is None else have + gi
                left = pending[parent] - 1
                pending[parent] = left
                if left == 0:
                    ready.append(parent)
            elif gi is not None:
                data = parent.data
                if gi.shape != data.shape or gi.dtype != data.dtype:
                    gi = _conform(gi, data.shape, data.dtype)
                if parent.grad is None:
                    # The first gradient becomes the leaf's .grad: copy it when it may alias the
                    # incoming gradient (the user's seed), a view, or another input's gradient.
                    # (A read-only array is a broadcast view, whose base is set; NumPy's scalar
                    # for a 0-d result becomes a fresh 0-d array.)
                    gi = _array(gi)
                    shared = gi is g or gi.base is not None
                    if not shared and len(in_grads) > 1:
                        if repeats is None:
                            repeats = _has_repeats(in_grads)
                        shared = repeats and _repeated(gi, in_grads)
                    parent.grad = gi.copy() if shared else gi
                else:
                    parent.grad = _array(parent.grad + gi)


def _conform(g: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A VJP's gradient summed back to its input's ``shape`` and cast to its ``dtype``."""
    if g.shape != shape:
        g = unbroadcast(g, shape)
    return g if g.dtype == dtype else g.astype(dtype)


def _repeated(a: Any, arrays: tuple[Any, ...]) -> bool:
    """True when ``a`` occurs more than once in ``arrays`` (by identity)."""
    seen = False
    for h in arrays:
        if h is a:
            if seen:
                return True
            seen = True
    return False


def _seed(root: Tensor, grad: Any) -> Any:
    """The gradient that starts the backward pass, as an array of root's shape and dtype."""
    data = root.data
    xp = get_xp(data)
    if grad is None:
        if data.size != 1:
            raise GraphError(
                f"backward() without a gradient needs a scalar, but the tensor has shape "
                f"{tuple(root.shape)}: pass grad= of that shape, or reduce it first (e.g. .sum())"
            )
        seed = xp.empty(data.shape, dtype=data.dtype)
        seed.fill(1)  # half the cost of xp.ones for one element
        return seed
    seed = grad.data if isinstance(grad, _tensor.Tensor) else xp.asarray(grad)
    if seed.dtype.kind not in "biuf":
        raise DTypeError(f"backward(): grad must be numeric, got dtype {seed.dtype}")
    if tuple(seed.shape) != tuple(root.shape):
        raise ShapeError(
            f"backward(): grad has shape {tuple(seed.shape)} but the tensor has shape "
            f"{tuple(root.shape)}"
        )
    return seed if seed.dtype == root.dtype else seed.astype(root.dtype)


_first = operator.itemgetter(0)


def _count_consumers(start: Node) -> dict[Node, int]:
    """For every node reachable from ``start``, how many consumers will send it a gradient.

    Also refuses, before anything is computed, a graph that an earlier backward released or whose
    saved data was modified in place.
    """
    pending: dict[Node, int] = {}  # also the set of nodes seen so far
    stack = [start]
    while stack:
        node = stack.pop()
        if node.saved is _RELEASED:
            raise GraphError(
                f"backward through the graph a second time (at {node.prim.name}): its saved "
                "state was freed by the first backward(); pass retain_graph=True to the first call"
            )
        versions = node.versions
        if versions:
            if sum(map(_first, versions)) != node.version_sum:
                raise GraphError(
                    f"a tensor needed to differentiate {node.prim.name} (shape "
                    f"{tuple(node.shape)}) was modified by an in-place operation after it was "
                    "used; compute on a copy (or out of place)"
                )
        for parent in node.parents:
            if type(parent) is Node:
                if parent in pending:
                    pending[parent] += 1
                else:
                    pending[parent] = 1
                    stack.append(parent)
    return pending


def _has_repeats(arrays: tuple[Any, ...]) -> bool:
    """True when one array (by identity, Nones aside) occurs twice in ``arrays``."""
    ids = [id(a) for a in arrays if a is not None]
    return len(set(ids)) != len(ids)


def _accumulate(t: Tensor, g: Any, copy: bool) -> None:
    """``t.grad += g`` out of place, so no array the user holds is ever written; ``copy`` the
    first gradient when ``g`` may be shared with another array."""
    if t.grad is None:
        t.grad = _array(g.copy() if copy else g)
    else:
        t.grad = _array(t.grad + g)


def _array(a: Any) -> Any:
    """``a``, or a 0-d array for the NumPy scalar that arithmetic on 0-d arrays returns: a
    ``.grad`` is always an array (in-place updates such as gradient clipping need one)."""
    return np.asarray(a) if isinstance(a, np.generic) else a


from . import anomaly as _anomaly  # noqa: E402  (anomaly refers back to this module)
