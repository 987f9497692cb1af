"""Accounting and measurement: the saved state behind a tensor (each buffer once), and
``track()``, the peak memory allocated inside a block (tracemalloc)."""

from __future__ import annotations

import contextlib
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..autograd import Node
from ..tensor import Tensor



@dataclass(frozen=True)
class SavedMemory:
    """Bytes held by a graph's saved state.

    Attributes:
        total: every distinct buffer the nodes saved.
        leaves: the part of ``total`` that belongs to leaf tensors the graph differentiates
            (parameters, and inputs with ``requires_grad``): memory that exists anyway.
        activations: ``total - leaves``: the memory that the graph keeps alive for backward.
        nodes: the number of recorded nodes walked.
    """

    total: int
    leaves: int
    activations: int
    nodes: int


def _root(a: Any) -> Any:
    """The array that owns ``a``'s memory (follows ``.base`` through views)."""
    while getattr(a, "base", None) is not None and hasattr(a.base, "nbytes"):
        a = a.base
    return a


def _arrays(obj: Any) -> list[Any]:
    """Arrays inside a node's saved state (arrays, and tuples and lists of them, nested)."""
    if hasattr(obj, "nbytes") and hasattr(obj, "shape"):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in _arrays(item)]
    return []


def _nodes(tensor: Tensor) -> Iterator[Node]:
    """Every node of the graph behind ``tensor``, each once (iteratively)."""
    start = tensor._node
    if start is None:
        return
    seen = {start}
    stack = [start]
    while stack:
        node = stack.pop()
        yield node
        for parent in node.parents:
            if type(parent) is Node and parent not in seen:
                seen.add(parent)
                stack.append(parent)


def _saved_buffers(tensor: Tensor) -> tuple[dict[int, Any], set[int], int]:
    """The buffers the graph behind ``tensor`` saved (by id of the array owning the memory), the
    ids of those that are leaves' arrays (parameters, inputs), and the number of nodes."""
    buffers: dict[int, Any] = {}
    leaf_buffers: set[int] = set()
    n = 0
    for node in _nodes(tensor):
        n += 1
        for a in _arrays(node.saved):
            r = _root(a)
            buffers[id(r)] = r
        for parent in node.parents:
            if isinstance(parent, Tensor):
                leaf_buffers.add(id(_root(parent.data)))
    return buffers, leaf_buffers, n


def saved(tensor: Tensor) -> SavedMemory:
    """Walk the graph that produced ``tensor`` and total its saved state.

    Each buffer is counted once: arrays saved by several nodes, and views of one array, share it.
    After ``backward()`` (without ``retain_graph``) everything has been released and the totals
    are 0.
    """
    buffers, leaf_buffers, n = _saved_buffers(tensor)
    total = sum(int(r.nbytes) for r in buffers.values())
    leaves = sum(int(r.nbytes) for k, r in buffers.items() if k in leaf_buffers)
    return SavedMemory(total=total, leaves=leaves, activations=total - leaves, nodes=n)


def saved_bytes(tensor: Tensor, exclude: Iterable[Any] = ()) -> int:
    """Bytes the graph behind ``tensor`` keeps alive for backward, each buffer once.

    Parameters (leaves that require grad) are not counted: they exist anyway. Arrays the graph
    saved that the caller holds anyway, such as the input batch the first layer saves, can be
    left out by passing them (tensors or arrays) in ``exclude``.

    Example::

        loss = F.cross_entropy(model(x), y)
        cr.memory.saved_bytes(loss, exclude=[x])   # the activations of this batch
    """
    skip = {id(_root(t.data if isinstance(t, Tensor) else t)) for t in exclude}
    buffers, leaf_buffers, _ = _saved_buffers(tensor)
    return sum(int(r.nbytes) for k, r in buffers.items() if k not in leaf_buffers | skip)


# ============================================================================ measurement


@dataclass
class Tracked:
    """What :func:`track` saw. ``peak`` and ``retained`` are filled in when the block ends.

    Attributes:
        baseline: bytes traced at entry (everything allocated before, and still alive).
        peak: the highest traced total inside the block, minus ``baseline``.
        retained: traced bytes at exit minus ``baseline`` (what the block left allocated).
    """

    baseline: int = 0
    peak: int = 0
    retained: int = 0
    _high: int = field(default=0, repr=False)


_open: list[Tracked] = []  # the tracked blocks now open, outermost first (they may nest)


@contextlib.contextmanager
def track() -> Iterator[Tracked]:
    """Measure the peak memory allocated inside a block, with :mod:`tracemalloc`.

    Starts tracing if it is not on (and stops it at the end); blocks may nest. The numbers count
    every NumPy array and Python object allocated inside the block (NumPy reports its data
    allocations to tracemalloc), above what was allocated at entry. Memory allocated before
    tracing began is invisible, and so is its release: to see saved state being freed during
    ``backward()``, the forward must run inside an enclosing ``track()`` (or after
    ``tracemalloc.start()``).

    Example::

        with cr.memory.track() as t:
            loss = F.cross_entropy(model(x), y); loss.backward(); opt.step()
        print(t.peak)      # bytes above the level at entry
    """
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    current, high = tracemalloc.get_traced_memory()
    for outer in _open:
        outer._high = max(outer._high, high)
    tracemalloc.reset_peak()
    t = Tracked(baseline=current, _high=current)
    _open.append(t)
    try:
        yield t
    finally:
        _open.remove(t)
        current, high = tracemalloc.get_traced_memory()
        t.peak = max(t._high, high) - t.baseline
        t.retained = current - t.baseline
        for outer in _open:
            outer._high = max(outer._high, high)
        if started:
            tracemalloc.stop()
