"""``cr.compile(fn)``: trace a training step once per input signature, replay it after.

    model = cr.nn.MLP([784, 256, 128, 10], "relu")
    opt = cr.optim.SGD(model.parameters(), lr=0.01)

    @cr.compile
    def step(x, y):
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for x, y in batches:
        loss = step(x, y)          # a 0-d tensor; loss.item() after the step, not inside

The first call for a given signature (the shapes, dtypes and devices of the array arguments,
whether tensor arguments require grad, the values of the other arguments, grad mode) runs ``fn``
eagerly while :mod:`.trace` records it; :mod:`.plan` turns the record into one generated Python
function (and, on a GPU, a CUDA graph: :mod:`.cuda`). Later calls with that signature replay it:
the forward primitives, the VJPs in the order the backward walk ran them, the optimizer's update,
with no Tensor or graph node made. The parameters it produces are bit-identical to the eager
step's, in float32 and float64, for every optimizer, clipping, dropout and loss
(``tests/test_compile.py``).

What changes between calls without a new trace: the arrays passed in; the learning rates (and
every other option) of the optimizers' groups, read at each replay, so schedulers work; Adam's
step counts and all optimizer state; the random generators' states (dropout draws from them at
each replay, as eagerly). A plan's guards send a call back to tracing when the parameters'
arrays were replaced (``model.to``, ``load_state_dict`` that rebinds), a module's training mode
changed, or the gradients are not in the state the trace assumed (a new trace then follows the
new situation); a small cache (``cache_size`` signatures, least recently used out) keeps one
plan per signature.

A step that cannot be replayed runs eagerly, with a one-line :class:`CompileWarning` naming the
reason, once per signature: Python that reads a value of the step (``loss.item()``, ``if
loss > 1``, ``float(x)``: move it after the step), in-place tensor operations, a closure passed
to ``optimizer.step``, a graph recorded before the step. Code that works on ``.data`` arrays
directly is invisible to the tracer (its results would be frozen into the plan): write it with
tensor operations, or do not compile that step.
"""

from __future__ import annotations

import collections
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import autograd
from ..tensor import Tensor
from . import _hooks
from .plan import Abort, Plan, Retrace, build_plan
from .trace import Tracer, _is_array

_EAGER = "eager"
MAX_RETRACES = 8    # guard failures of one signature before it runs eagerly for good
MAX_ABORTS = 16     # traced checks answering differently before the same


class CompileWarning(UserWarning):
    """``cr.compile`` runs a step eagerly (the message says why)."""


class CompiledStep:
    """The callable that ``cr.compile(fn)`` returns. ``stats`` counts traces, replays, eager
    calls, retraces and aborts; ``plans`` maps each signature to its plan (``plan.source`` is
    the generated code) or to the reason it runs eagerly."""

    def __init__(self, fn: Callable[..., Any], options: dict[str, Any]) -> None:
        self.fn = fn
        self.options = options
        self.cache_size = int(options.get("cache_size", 8))
        self.plans: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self.reasons: dict[Any, str] = {}
        self.stats = collections.Counter()
        self._retraces: collections.Counter = collections.Counter()
        self._aborts: collections.Counter = collections.Counter()
        functools.update_wrapper(self, fn)

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _hooks.TRACER is not None or not self.options.get("enabled", True):
            return self.fn(*args, **kwargs)  # inside another trace: part of that one
        key = _signature(args, kwargs)
        if key is None:
            self.stats["eager"] += 1
            return self.fn(*args, **kwargs)
        plan = self.plans.get(key)
        if plan is not None:
            if plan is _EAGER:
                self.stats["eager"] += 1
                return self.fn(*args, **kwargs)
            try:
                out = plan(*args)
            except Retrace:
                self._retraces[key] += 1
                self.stats["retraces"] += 1
                if self._retraces[key] > MAX_RETRACES:
                    self._give_up(key, f"its guards failed {MAX_RETRACES} times (the "
                                       "parameters, modules or gradients keep changing between "
                                       "calls)")
                    return self.fn(*args, **kwargs)
            except Abort:
                self._aborts[key] += 1
                self.stats["aborts"] += 1
                if self._aborts[key] > MAX_ABORTS:
                    self._give_up(key, "a check inside the step keeps answering differently "
                                       "from the traced call (e.g. a label out of range, or a "
                                       "weighted mean whose weights change)")
                return self.fn(*args, **kwargs)
            else:
                self.plans.move_to_end(key)
                self.stats["replays"] += 1
                return out
        return self._trace(key, args, kwargs)

    def _trace(self, key: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        tr = Tracer(args)
        self.stats["traces"] += 1
        _hooks.TRACER = tr
        paused = _hooks.set_paused(False)
        try:
            result = self.fn(*args, **kwargs)
        finally:
            _hooks.TRACER = None
            _hooks.set_paused(paused)
        enc = tr.encode_result(result)
        reason = tr.reason
        plan: Plan | str | None = None
        if reason is None:
            try:
                plan = build_plan(tr, enc, len(args), [isinstance(a, Tensor) for a in args],
                                  self.options)
            except Exception as exc:  # noqa: BLE001 - a plan we cannot build runs eagerly
                if self.options.get("strict"):
                    raise
                plan = f"building the plan failed ({type(exc).__name__}: {exc})"
            if isinstance(plan, str):
                reason = plan
        if reason is not None:
            self._give_up(key, reason)
        else:
            self.plans[key] = plan
            self.plans.move_to_end(key)
            while len(self.plans) > self.cache_size:
                old, _ = self.plans.popitem(last=False)
                self.reasons.pop(old, None)
        return result

    def _give_up(self, key: Any, reason: str) -> None:
        self.plans[key] = _EAGER
        self.plans.move_to_end(key)
        self.reasons[key] = reason
        if self.options.get("strict"):
            raise RuntimeError(f"cr.compile: {reason}")
        if self.options.get("warn", True):
            name = getattr(self.fn, "__qualname__", repr(self.fn))
            warnings.warn(f"cr.compile: {reason}; {name} runs eagerly", CompileWarning,
                          stacklevel=4)

    # ------------------------------------------------------------------ inspection
    @property
    def plan(self) -> Plan | None:
        """The most recently used plan (None when there is none)."""
        for p in reversed(self.plans.values()):
            if p is not _EAGER:
                return p
        return None

    def check(self) -> None:
        """Read the device flags of CUDA-graph plans (a synchronisation): raise for a label out
        of range or a non-finite loss that a replay met since the last check (the CPU plans
        check at every replay: nothing to do)."""
        for p in self.plans.values():
            if p is not _EAGER and hasattr(p, "check"):
                p.check()

    def clear(self) -> None:
        """Forget every plan (the next call traces again)."""
        self.plans.clear()
        self.reasons.clear()
        self._retraces.clear()
        self._aborts.clear()


def _signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The cache key of a call, or None when an argument cannot be part of one."""
    parts: list[Any] = [autograd._grad_enabled.get()]
    for a in args:
        if isinstance(a, Tensor):
            d = a.data
            parts.append((type(d), d.shape, d.dtype, a._requires_grad, _device_id(d)))
        elif type(a) is np.ndarray:
            parts.append((np.ndarray, a.shape, a.dtype))
        elif _is_array(a):
            parts.append((type(a), a.shape, a.dtype, _device_id(a)))
        else:
            try:
                hash(a)
            except TypeError:
                return None
            parts.append(("static", type(a), a))
    if kwargs:
        try:
            items = tuple(sorted(kwargs.items()))
            hash(items)
        except TypeError:
            return None
        if any(isinstance(v, Tensor) or _is_array(v) for _, v in items):
            return None  # arrays by keyword: not supported, run eagerly
        parts.append(items)
    return tuple(parts)


def _device_id(a: Any) -> Any:
    if type(a) is np.ndarray:
        return None
    dev = getattr(a, "device", None)
    return getattr(dev, "id", dev)


def compile(fn: Callable[..., Any] | None = None, *, cache_size: int = 8, warn: bool = True,
            kernels: bool = True, fused: bool = True, cuda_graph: bool | str = "auto",
            strict: bool = False, enabled: bool = True) -> Any:
    """Compile a training step: trace it at its first call (per signature), replay it after.

    Args:
        fn: the step, ``fn(*args)`` with tensors or arrays as positional arguments (other
            positional and keyword arguments are static: part of the signature). It returns
            tensors, arrays, numbers, or tuples/lists/dicts of them. Usable as a decorator,
            with or without options: ``@cr.compile`` or ``@cr.compile(cache_size=2)``.
        cache_size: how many signatures keep a plan (least recently used out).
        warn: warn (:class:`CompileWarning`, one line) when a step runs eagerly.
        kernels: use the buffered kernels for the fused network, the losses and the
            optimizers (False: every op calls its eager function; for testing).
        fused: let those kernels use the loops of :mod:`chainrule.compile.fused` when Numba
            is installed (elementwise chains in one pass; the same numbers).
        cuda_graph: on a GPU, capture the plan as a CUDA graph (``"auto"``: when every op of
            the plan can be captured).
        strict: raise instead of falling back to eager (for tests).
        enabled: False returns a wrapper that always runs ``fn`` eagerly.

    Returns:
        a :class:`CompiledStep`, called like ``fn``.
    """
    options = dict(cache_size=cache_size, warn=warn, kernels=kernels, fused=fused,
                   cuda_graph=cuda_graph, strict=strict, enabled=enabled)
    if fn is None:
        return lambda f: CompiledStep(f, dict(options, label=getattr(f, "__qualname__", "step")))
    return CompiledStep(fn, dict(options, label=getattr(fn, "__qualname__", "step")))


__all__ = ["compile", "CompiledStep", "CompileWarning"]
