"""The model of a training step's memory: ``estimate`` and ``max_batch_size``.

A training step is modelled as a sequence of allocations and frees of whole arrays, following the
engine step by step (see the comment in ``plan``); the predicted peak is the largest total over
that sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidValueError
from .plan import (
    _OVERHEAD, _ELIDE_BYTES, _MASK_ALWAYS, _flat_update, _optimizer_factor, _Plan, _plan_of,
)
from .units import parse_bytes


# ---------------------------------------------------------------------------- the simulation

_CATEGORIES = ("parameters", "gradients", "optimizer_state", "activations", "other")


class _Buf:
    __slots__ = ("size", "users", "savers", "batch")

    def __init__(self, size: int, batch: bool = False) -> None:
        self.size = size
        self.users: set[Any] = set()
        self.savers: set[Any] = set()
        self.batch = batch


class _Heap:
    """Live bytes by category, with the peak and what made it up."""

    def __init__(self) -> None:
        self.parts = dict.fromkeys(_CATEGORIES, 0)
        self.peak = 0
        self.at_peak = dict(self.parts)
        self.saved_high = 0

    def _cat(self, b: _Buf) -> str:
        return "activations" if b.savers and not b.batch else "other"

    def _move(self, b: _Buf, sign: int) -> None:
        if b.users or b.savers:
            self.parts[self._cat(b)] += sign * b.size

    def new(self, size: int, user: Any = "cur", batch: bool = False) -> _Buf:
        b = _Buf(size, batch)
        b.users.add(user)
        self._move(b, 1)
        return b

    def hold(self, b: _Buf, who: Any, saver: bool = False) -> None:
        self._move(b, -1)
        (b.savers if saver else b.users).add(who)
        self._move(b, 1)
        self.saved_high = max(self.saved_high, self.parts["activations"])

    def let_go(self, b: _Buf, who: Any) -> None:
        self._move(b, -1)
        b.users.discard(who)
        b.savers.discard(who)
        self._move(b, 1)

    def add(self, category: str, n: int) -> None:
        self.parts[category] += n
        self.saved_high = max(self.saved_high, self.parts["activations"])

    def spike(self, extra: int = 0) -> None:
        """A moment of the step: the live bytes plus ``extra`` bytes of temporaries."""
        total = sum(self.parts.values()) + extra
        if total > self.peak:
            self.peak = total
            self.at_peak = dict(self.parts)
            self.at_peak["other"] += extra


def _segments_of(n: int, segments: int | None) -> list[tuple[int, int]]:
    from ..checkpoint import split

    if not segments or segments <= 1:
        return [(0, n)]
    return split(n, segments)


def _simulate(plan: _Plan, batch: int, segments: int | None, optimizer: Any,
              zero_grad_first: bool) -> tuple[_Heap, dict[str, int]]:
    B = batch
    layers = plan.layers
    s = plan.itemsize
    param_sizes = [p for layer in layers for p in layer.params]
    P = sum(param_sizes)
    state_factor, opt_temps = _optimizer_factor(optimizer)
    S = int(state_factor * P)
    # On the flat path the optimizer keeps a gradient buffer the size of the group, and its
    # temporaries are group-sized.
    flat = plan.flat_params and _flat_update(optimizer, param_sizes)
    if flat:
        S += P
    heap = _Heap()
    fixed, per_module, per_state = _OVERHEAD
    heap.add("other", fixed + per_module * len(layers)
             + int(per_state * state_factor * len(param_sizes)))
    heap.add("parameters", P)
    heap.add("optimizer_state", S)
    if not zero_grad_first:
        heap.add("gradients", P)  # the last step's gradients live until zero_grad()
    x = heap.new(plan.x * B, "batch", batch=True)
    heap.new(plan.label_itemsize * B, "batch", batch=True)
    # A layer is recorded (saves, gets a gradient) once a parameter precedes or is in it.
    recorded = []
    seen_param = False
    for layer in layers:
        seen_param = seen_param or bool(layer.params)
        recorded.append(seen_param)
    input_grad = [k > 0 and recorded[k - 1] for k in range(len(layers))]

    def forward(k: int, cur: _Buf, record: bool) -> _Buf:
        layer = layers[k]
        if layer.out == 0:
            return cur
        rec = record and recorded[k]
        out = heap.new(layer.out * B)
        temp = 0
        if layer.internal:
            if rec:
                internals[k] = heap.new(layer.internal * B, ("mask", k))
                heap.hold(internals[k], ("mask", k), saver=True)
            elif layer.name in _MASK_ALWAYS:
                temp += layer.internal * B
        heap.spike(temp + layer.fwd_work * B)
        if rec and layer.saves_input:
            heap.hold(cur, k, saver=True)
            saved_in[k] = cur
        if rec and layer.saves_output:
            heap.hold(out, k, saver=True)
            saved_out[k] = out
        heap.let_go(cur, "cur")
        return out

    def backward(k: int, g: _Buf, leaf_input: bool = False) -> _Buf:
        layer = layers[k]
        if layer.out == 0 or not recorded[k]:
            return g
        dx = heap.new(saved_in_size[k] * B) if input_grad[k] else None
        heap.add("gradients", sum(layer.params))
        small, large = layer.bwd_work
        heap.spike((large if layer.out * B >= _ELIDE_BYTES else small) * B)
        mask = internals.pop(k, None)
        if mask is not None:
            heap.let_go(mask, ("mask", k))
        for saved in (saved_in.pop(k, None), saved_out.pop(k, None)):
            if saved is not None:
                heap.let_go(saved, k)
        if leaf_input and dx is not None and layer.name == "Linear":
            # linear's input gradient is a reshaped view: a leaf's .grad gets a copy of it
            heap.spike(dx.size)
        heap.let_go(g, "cur")
        return dx if dx is not None else heap.new(0)

    internals: dict[int, _Buf] = {}
    saved_in: dict[int, _Buf] = {}
    saved_out: dict[int, _Buf] = {}
    saved_in_size = []
    width = plan.x
    for layer in layers:
        saved_in_size.append(width)
        width = layer.out or width

    pieces = _segments_of(len(layers), segments)
    cur = x
    heap.hold(x, "cur")
    checkpoints: list[_Buf] = []
    for i, (a, b) in enumerate(pieces):
        last = i == len(pieces) - 1
        if not last:
            heap.hold(cur, ("ckpt", i), saver=True)
            checkpoints.append(cur)
        for k in range(a, b):
            cur = forward(k, cur, record=last)

    # The loss: softmax cross-entropy saves its probabilities and a copy of the labels; the
    # caller keeps the logits (the Trainer does) until the step ends.
    C = plan.classes
    heap.hold(cur, "logits")
    probs = heap.new(C * s * B, "ce")
    labels = heap.new(plan.label_itemsize * B, "ce")
    heap.hold(probs, "ce", saver=True)
    heap.hold(labels, "ce", saver=True)
    heap.spike((8 + 3 * s) * B)  # row indices, row maxima, picked logits, sums (exp in place)
    heap.let_go(cur, "cur")
    if not zero_grad_first:
        heap.add("gradients", -P)
    g = heap.new(C * s * B)  # dlogits
    heap.spike((8 + 2 * s) * B)
    heap.let_go(probs, "ce")
    heap.let_go(labels, "ce")

    for i in range(len(pieces) - 1, -1, -1):
        a, b = pieces[i]
        if i == len(pieces) - 1:
            for k in range(b - 1, a - 1, -1):
                g = backward(k, g)
            continue
        # A checkpoint's VJP: recompute the segment with recording, then backpropagate through
        # it while the outer loop still holds the segment's output gradient.
        outer = g
        heap.hold(outer, "outer")
        cur = checkpoints[i]
        heap.hold(cur, "cur")
        for k in range(a, b):
            cur = forward(k, cur, record=True)
        heap.let_go(cur, "cur")  # the recomputed output: only its node is needed
        for k in range(b - 1, a - 1, -1):
            g = backward(k, g, leaf_input=k == a)  # the segment's input is a leaf in there
        heap.let_go(outer, "outer")
        heap.let_go(checkpoints[i], ("ckpt", i))
    heap.let_go(g, "cur")

    # The update: one parameter-sized temporary at a time (two with weight decay), or
    # group-sized ones on the flat path.
    largest = P if flat else max(param_sizes, default=0)
    heap.spike(opt_temps * largest)
    sizes = dict(parameters=P, gradients=P, optimizer_state=S,
                 batch=(plan.x + plan.label_itemsize) * B)
    return heap, sizes


# ============================================================================ estimates


@dataclass(frozen=True)
class MemoryEstimate:
    """The predicted memory of one training step (bytes, as :func:`track` counts them).

    The step is the one :class:`chainrule.train.Trainer` runs: forward, softmax cross-entropy,
    ``zero_grad()``, backward, optimizer step (with ``zero_grad_first``: PyTorch's idiom, which
    clears the gradients before the forward instead).

    Attributes:
        batch_size: samples per step.
        checkpoint_segments: segments of activation checkpointing (1: none).
        parameters: the weights and biases.
        gradients: one gradient per parameter.
        optimizer_state: the optimizer's running arrays (momentum, moment estimates).
        activations: the most bytes saved for backward alive at one moment: at the end of the
            forward without checkpointing (what :func:`saved_bytes` of the loss reports, less
            the input batch), during a segment's recomputation with it.
        batch: the input batch and its labels.
        peak: the predicted peak of the step, which the parts above (and temporaries) reach at
            their largest simultaneous moment; it is less than their sum, because gradients and
            activations are never all alive at once.
        at_peak: what the peak is made of: ``parameters``, ``gradients``, ``optimizer_state``,
            ``activations`` and ``other`` (the batch, gradients in flight, temporaries).
    """

    batch_size: int
    checkpoint_segments: int
    parameters: int
    gradients: int
    optimizer_state: int
    activations: int
    batch: int
    peak: int
    at_peak: Mapping[str, int]

    @property
    def total(self) -> int:
        """The same as ``peak``."""
        return self.peak

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return {"batch_size": self.batch_size, "checkpoint_segments": self.checkpoint_segments,
                "parameters": self.parameters, "gradients": self.gradients,
                "optimizer_state": self.optimizer_state, "activations": self.activations,
                "batch": self.batch, "peak": self.peak, "at_peak": dict(self.at_peak)}


def _check_batch(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise InvalidValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


def _check_segments(segments: Any) -> int:
    if segments is None:
        return 1
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)) \
            or segments < 1:
        raise InvalidValueError(f"checkpoint_segments must be a positive integer or None, got "
                                f"{segments!r}")
    return int(segments)


def _from_plan(plan: _Plan, batch_size: int, segments: int, optimizer: Any,
               zero_grad_first: bool) -> MemoryEstimate:
    segments = min(segments, len(plan.layers))
    heap, sizes = _simulate(plan, batch_size, segments, optimizer, zero_grad_first)
    return MemoryEstimate(batch_size=batch_size, checkpoint_segments=segments,
                          parameters=sizes["parameters"], gradients=sizes["gradients"],
                          optimizer_state=sizes["optimizer_state"],
                          activations=heap.saved_high, batch=sizes["batch"], peak=heap.peak,
                          at_peak=dict(heap.at_peak))


def estimate(model: Any, batch_size: int, dtype: Any = None, *, optimizer: Any = "sgd",
             checkpoint_segments: int | None = None,
             zero_grad_first: bool = False) -> MemoryEstimate:
    """Predict the memory of one training step of ``model`` on a batch of ``batch_size``.

    The model is a chain of modules starting with a ``Linear`` (an :class:`~chainrule.nn.MLP`
    or a :class:`~chainrule.nn.Sequential`) trained with softmax cross-entropy on integer labels.
    What each layer saves for backward is read off a tiny forward of that layer (2 and 4
    samples), so the estimate follows the engine's primitives; the rest is the step's sequence of
    allocations (see the comment above ``_Layer``). Agreement with :func:`measure_step` is tested
    to 10% for MLPs of 1 to 32 layers; the modelled quantity is tracemalloc's count.

    Args:
        model: the network (its parameters are not touched; random state is restored).
        batch_size: samples per step.
        dtype: floating dtype to estimate for. Default: the model's parameter dtype.
        optimizer: ``"sgd"``, ``"momentum"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``,
            ``"adagrad"``, or an optimizer instance (its options decide its state).
        checkpoint_segments: activation checkpointing with this many segments over the model's
            children (as ``checkpoint_sequential``); None takes the model's own
            ``checkpoint_segments`` (none if it has no such attribute); 1 means none.
        zero_grad_first: the step clears gradients before the forward (PyTorch's idiom) rather
            than after it (the Trainer's order, in which last step's gradients live through the
            forward).

    Returns:
        A :class:`MemoryEstimate`; ``.peak`` is the number to compare with a budget.
    """
    batch_size = _check_batch(batch_size)
    if checkpoint_segments is None:
        checkpoint_segments = getattr(model, "checkpoint_segments", None)
    segments = _check_segments(checkpoint_segments)
    return _from_plan(_plan_of(model, dtype, segments > 1), batch_size, segments, optimizer,
                      bool(zero_grad_first))


def _largest_batch(plan: _Plan, budget: int, segments: int, optimizer: Any,
                   zero_grad_first: bool, limit: int = 1 << 40) -> int:
    def fits(b: int) -> bool:
        return _from_plan(plan, b, segments, optimizer, zero_grad_first).peak <= budget

    if not fits(1):
        return 0
    lo = 1
    hi = 2
    while hi <= limit and fits(hi):
        lo, hi = hi, hi * 2
    if hi > limit:
        return lo
    while hi - lo > 1:  # the peak grows with the batch: fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def max_batch_size(model: Any, budget_bytes: int | str, checkpoint_segments: int | None = None,
                   *, dtype: Any = None, optimizer: Any = "sgd",
                   zero_grad_first: bool = False) -> int:
    """The largest batch whose training step :func:`estimate` puts within ``budget_bytes``.

    Args:
        model: as for :func:`estimate`.
        budget_bytes: a byte count, or a string for :func:`parse_bytes` (``"2GiB"``).
        checkpoint_segments: as for :func:`estimate` (None: the model's own setting).
        dtype, optimizer, zero_grad_first: as for :func:`estimate`.

    Returns:
        The batch size, or 0 when not even one sample fits (the parameters alone may not).
    """
    budget = parse_bytes(budget_bytes)
    if checkpoint_segments is None:
        checkpoint_segments = getattr(model, "checkpoint_segments", None)
    segments = _check_segments(checkpoint_segments)
    _optimizer_factor(optimizer)
    return _largest_batch(_plan_of(model, dtype, segments > 1), budget, segments, optimizer,
                          bool(zero_grad_first))
