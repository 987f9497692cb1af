"""A real training step, measured with tracemalloc: ``training_step`` and ``measure_step``."""

from __future__ import annotations

import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidValueError
from ..tensor import Tensor
from .accounting import saved_bytes, track
from .plan import _children, _model_dtype, _optimizer, _plan_of
from .step_model import _check_batch


@dataclass(frozen=True)
class MeasuredStep:
    """The measured memory of a training step (bytes, tracemalloc's count).

    Attributes:
        peak: the parameters plus the highest traced total above the level before the optimizer
            and batch were made: comparable with :attr:`MemoryEstimate.peak`.
        steady: what the step starts from: parameters, last step's gradients (unless
            ``zero_grad_first``), optimizer state and batch.
        saved: :func:`saved_bytes` of the loss after the forward (the batch excluded).
    """

    peak: int
    steady: int
    saved: int


def training_step(model: Any, optimizer: Any, x: Tensor, y: Tensor,
                  checkpoint_segments: int | None = None,
                  zero_grad_first: bool = False) -> tuple[Tensor, int]:
    """One step as the Trainer runs it: forward, cross-entropy, ``zero_grad()``, backward,
    update. Returns the loss and :func:`saved_bytes` of it before backward (x excluded).

    ``checkpoint_segments`` runs the forward as
    ``checkpoint_sequential(list(model), checkpoint_segments, x)``; None calls ``model(x)``.
    """
    from ..checkpoint import checkpoint_sequential
    from ..nn.functional import cross_entropy

    if zero_grad_first:
        optimizer.zero_grad()
    if checkpoint_segments is None:
        logits = model(x)
    else:
        logits = checkpoint_sequential(_children(model), checkpoint_segments, x)
    loss = cross_entropy(logits, y)
    loss.item()
    kept = saved_bytes(loss, exclude=[x])
    if not zero_grad_first:
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss, kept


def measure_step(model: Any, batch_size: int, *, optimizer: Any = "sgd",
                 checkpoint_segments: int | None = None, zero_grad_first: bool = False,
                 seed: int = 0) -> MeasuredStep:
    """Measure the peak memory of a real training step of ``model`` with tracemalloc.

    Makes a random batch (normal inputs in the model's dtype, uniform int64 labels) and the
    optimizer, runs one step to create the gradients and the optimizer state, then measures the
    second step (in training mode). Afterwards the model is as it was: parameters, gradients,
    training flag and the random state of its generators (and the default one) are restored.

    Args:
        model: as for :func:`estimate`.
        batch_size: samples per step.
        optimizer: a name, as for :func:`estimate` (with PyTorch's default options; "sgd" and
            "momentum" use lr 0.01, momentum 0.9), or an optimizer instance, whose class and
            options (``defaults``) are used on the model's parameters (the instance itself is
            not touched).
        checkpoint_segments: see :func:`training_step`.
        zero_grad_first: clear the gradients before the forward instead of after it.
        seed: for the batch.

    Returns:
        A :class:`MeasuredStep`.
    """
    import chainrule as cr
    from .. import optim
    from ..checkpoint import _generators

    batch_size = _check_batch(batch_size)
    if not isinstance(optimizer, (str, optim.Optimizer)):
        raise InvalidValueError(f"optimizer must be a name or an Optimizer, got "
                                f"{type(optimizer).__name__}")
    template = _optimizer(optimizer)       # a name: that class with its options
    cls, kwargs = type(template), dict(template.defaults)
    params = list(model.parameters())
    dtype = _model_dtype(model)
    d_in = _children(model)[0].in_features
    n_classes = _plan_of(model).classes
    gen = cr.Generator(seed)

    def batch(n: int) -> tuple[Tensor, Tensor]:
        x = cr.tensor(gen.normal((n, d_in), 0.0, 1.0, dtype))
        y = cr.tensor(gen.integers(0, n_classes, (n,)).astype(np.int64))
        return x, y

    def step(opt: Any, x: Tensor, y: Tensor) -> int:
        return training_step(model, opt, x, y, checkpoint_segments, zero_grad_first)[1]

    # What the measurement changes, to put back afterwards (copied before tracing starts).
    gens = _generators(model)
    before = ([p.data.copy() for p in params], [p.grad for p in params],
              [g.get_state() for g in gens], model.training)
    try:
        model.train()
        # Warm up outside the measurement (first calls allocate caches), then clear.
        for p in params:
            p.grad = None
        step(cls(params, **kwargs), *batch(2))
        for p in params:
            p.grad = None
        p_bytes = sum(int(p.data.nbytes) for p in params)
        with track() as whole:
            opt = cls(params, **kwargs)
            x, y = batch(batch_size)
            step(opt, x, y)  # creates the gradients and the optimizer state
            if zero_grad_first:
                opt.zero_grad()
            steady_now = tracemalloc.get_traced_memory()[0]
            with track() as measured:
                kept = step(opt, x, y)
    finally:
        for p, data, grad in zip(params, before[0], before[1]):
            p.data[...] = data
            p.grad = grad
            p.bump_version()
        for g, state in zip(gens, before[2]):
            g.set_state(state)
        model.train(before[3])
    steady = p_bytes + steady_now - whole.baseline
    return MeasuredStep(peak=steady + measured.peak, steady=steady, saved=kept)
