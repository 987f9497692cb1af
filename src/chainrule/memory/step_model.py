"""The model of a training step's memory: ``estimate``, ``estimate_mlp`` (from sizes alone) and
``max_batch_size``.

A training step is modelled as a sequence of allocations and frees of whole arrays, following the
engine step by step (see the comment in ``plan``); the predicted peak is the largest total over
that sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidValueError
from .plan import (
    _OVERHEAD, _ELIDE_BYTES, _MASK_ALWAYS, _flat_update, _mlp_plan, _optimizer,
    _optimizer_factor, _Plan, _plan_of, _ufunc_buffer, _update_scratch, _update_temps,
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
    optimizer = _optimizer(optimizer)
    state_factor = _optimizer_factor(optimizer)
    S = int(state_factor * P)
    # On the flat path the optimizer keeps a gradient buffer the size of the group, and its
    # temporaries are group-sized.
    flat = plan.flat_params and _flat_update(optimizer, param_sizes)
    if flat:
        S += P
    heap = _Heap()
    fixed, per_module, per_state = _OVERHEAD[plan.fused]
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
        buffer = _ufunc_buffer(layer.out // s * B, layer.fwd_buffer)
        if layer.in_place:  # the output is the input's buffer, overwritten
            heap.spike(layer.fwd_work * B + buffer)
            if rec and layer.saves_output:
                heap.hold(cur, k, saver=True)
                saved_out[k] = cur
            return cur
        out = heap.new(layer.out * B)
        temp = 0
        if layer.internal:
            if rec:
                internals[k] = heap.new(layer.internal * B, ("mask", k))
                heap.hold(internals[k], ("mask", k), saver=True)
            elif layer.name in _MASK_ALWAYS:
                temp += layer.internal * B
        heap.spike(temp + layer.fwd_work * B + buffer)
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
        small, large = layer.bwd_work
        work = (large if layer.out * B >= _ELIDE_BYTES else small) * B \
            + _ufunc_buffer(layer.out // s * B, layer.bwd_buffer)
        if layer.grad_in_place:  # g is scaled in place: it is the input gradient
            heap.spike(work)
            for saved in (saved_in.pop(k, None), saved_out.pop(k, None)):
                if saved is not None:
                    heap.let_go(saved, k)
            return g
        dx = heap.new(saved_in_size[k] * B) if input_grad[k] else None
        heap.add("gradients", sum(layer.params))
        heap.spike(work)
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
    # row indices, row maxima, picked logits, sums (exp in place); the buffer of dividing the
    # exponentials by their row sums
    heap.spike((8 + 3 * s) * B + _ufunc_buffer(C * B, s))
    heap.let_go(cur, "cur")
    if not zero_grad_first:
        heap.add("gradients", -P)
    g = heap.new(C * s * B)  # dlogits
    if plan.fused:  # the engine holds a node's incoming gradient through its VJP: the whole net
        heap.hold(g, "engine")
        dlogits = g
    heap.spike((8 + 2 * s) * B)
    heap.let_go(probs, "ce")
    heap.let_go(labels, "ce")

    for i in range(len(pieces) - 1, -1, -1):
        a, b = pieces[i]
        if i == len(pieces) - 1:
            for k in range(b - 1, a - 1, -1):
                g = backward(k, g)
            if plan.fused:
                heap.let_go(dlogits, "engine")
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

    # The update: parameter-sized temporaries, one parameter at a time, or group-sized ones on
    # the flat path.
    largest = P if flat else max(param_sizes, default=0)
    heap.spike(_update_temps(optimizer, flat, largest) * largest
               + _update_scratch(optimizer, largest, plan.itemsize))
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
    for MLPs of 1 to 32 layers, every optimizer and several batch sizes: to 2% for steps of
    8 MiB or more, to 10% below, where Python's objects are a good part of the step (the sweep's
    largest error was 4%); the modelled quantity is tracemalloc's count.

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


def _check_sizes(sizes: Any, what: str) -> list[int]:
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
        raise InvalidValueError(f"{what}: sizes must be a list of at least two layer widths, "
                                f"got {sizes!r}")
    for n in sizes:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise InvalidValueError(f"{what}: layer widths must be positive integers, got "
                                    f"{list(sizes)}")
    return [int(n) for n in sizes]


def _floating(dtype: Any, what: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise InvalidValueError(f"{what}: not a dtype: {dtype!r}") from exc
    if dt.kind != "f":
        raise InvalidValueError(f"{what}: dtype must be floating, got {dt}")
    return dt


def estimate_mlp(sizes: Sequence[int], batch_size: int, *, activation: Any = "relu",
                 dtype: Any = "float32", optimizer: Any = "adam", dropout: float = 0.0,
                 checkpoint_segments: int | None = None,
                 zero_grad_first: bool = False) -> MemoryEstimate:
    """Predict one training step of ``nn.MLP(sizes, activation=activation, dropout=dropout,
    dtype=dtype)`` from its sizes alone, without building it.

    The same prediction as :func:`estimate` of that model (tested equal, field by field), but
    nothing proportional to the network is allocated: the arithmetic is exact Python integers,
    so ``estimate_mlp([784, 10**9, 10], 32)`` answers (about 3 TiB) in microseconds. This is the
    check to run before allocating a model whose size comes from a user.

    Args:
        sizes: layer widths, input first and classes last (at least two).
        batch_size: samples per step.
        activation: the hidden activation, as ``nn.MLP`` takes it. Default: "relu".
        dtype: the floating dtype of parameters and activations. Default: "float32".
        optimizer: a name or an optimizer instance, as for :func:`estimate`. Default: "adam".
        dropout: dropout probability after each hidden activation. Default: 0.
        checkpoint_segments: activation checkpointing with this many segments (None or 1:
            none), as ``nn.MLP(..., checkpoint_segments=k)`` runs it.
        zero_grad_first: as for :func:`estimate`.

    Returns:
        A :class:`MemoryEstimate`.

    Raises:
        InvalidValueError: sizes that are not positive integers, a batch size that is not, a
            non-floating dtype, an unknown activation or optimizer, dropout outside [0, 1].
    """
    widths = _check_sizes(sizes, "estimate_mlp")
    batch_size = _check_batch(batch_size)
    segments = _check_segments(checkpoint_segments)
    dt = _floating(dtype, "estimate_mlp")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating)) \
            or not 0 <= dropout <= 1:
        raise InvalidValueError(f"estimate_mlp: dropout must be a probability in [0, 1], got "
                                f"{dropout!r}")
    optimizer = _optimizer(optimizer)
    plan = _mlp_plan(widths, activation, dt, float(dropout), checkpointed=segments > 1)
    return _from_plan(plan, batch_size, segments, optimizer, bool(zero_grad_first))


_NO_LIMIT = 1 << 62


def _largest_batch(plan: _Plan, budget: int, segments: int, optimizer: Any,
                   zero_grad_first: bool, limit: int | None = None) -> int:
    """The largest batch in [1, limit] whose step fits ``budget`` (0: none), by doubling and
    bisection (the peak grows with the batch)."""
    optimizer = _optimizer(optimizer)
    limit = _NO_LIMIT if limit is None else limit

    def fits(b: int) -> bool:
        return _from_plan(plan, b, segments, optimizer, zero_grad_first).peak <= budget

    if not fits(1):
        return 0
    lo, hi = 1, 2  # fits(lo); hi: the next candidate
    while True:
        if hi >= limit:
            if fits(limit):
                return limit
            hi = limit
            break
        if not fits(hi):
            break
        lo, hi = hi, hi * 2
    while hi - lo > 1:  # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def max_batch_size(model: Any, budget_bytes: int | str, checkpoint_segments: int | None = None,
                   *, dtype: Any = None, optimizer: Any = "sgd", zero_grad_first: bool = False,
                   limit: int | None = None) -> int:
    """The largest batch whose training step :func:`estimate` puts within ``budget_bytes``.

    Args:
        model: as for :func:`estimate`.
        budget_bytes: a byte count, or a string for :func:`parse_bytes` (``"2GiB"``).
        checkpoint_segments: as for :func:`estimate` (None: the model's own setting).
        dtype: as for :func:`estimate`.
        optimizer: as for :func:`estimate`.
        zero_grad_first: as for :func:`estimate`.
        limit: the largest batch worth having (the number of training rows, say): the answer
            is at most this. None: no cap.

    Returns:
        The batch size (at most ``limit``), or 0 when not even one sample fits (the parameters
        alone may not).
    """
    budget = parse_bytes(budget_bytes)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 1):
        raise InvalidValueError(f"limit must be a positive integer or None, got {limit!r}")
    if checkpoint_segments is None:
        checkpoint_segments = getattr(model, "checkpoint_segments", None)
    segments = _check_segments(checkpoint_segments)
    optimizer = _optimizer(optimizer)
    return _largest_batch(_plan_of(model, dtype, segments > 1), budget, segments, optimizer,
                          bool(zero_grad_first), None if limit is None else int(limit))
