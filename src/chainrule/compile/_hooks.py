"""The one switch that the engine's hook sites read: the active tracer of ``cr.compile``.

``TRACER`` is None except while ``cr.compile`` traces a step (its first call for a set of input
shapes). The hook sites (``autograd.apply`` and ``backward``, the optimizers' ``step`` and
``zero_grad``, gradient clipping, the random generators, tensor construction, the calls that read
a tensor's value) each test it once, so eager code pays one global lookup per call; while it is
set, they hand the call to the tracer, which runs it as usual and records it.

This module imports nothing from chainrule, so that the engine can import it first.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

TRACER: Any = None
_LOCAL = threading.local()


def active() -> Any:
    """The tracer, when the calling thread is the one tracing and has not paused it; else None
    (another thread's chainrule calls run as usual while a step is traced)."""
    tracer = TRACER
    if tracer is None or tracer.thread != threading.get_ident() or getattr(_LOCAL, "paused",
                                                                            False):
        return None
    return tracer


def set_paused(value: bool) -> bool:
    """Pause (or resume) the tracer for the calling thread; returns the previous setting."""
    previous = getattr(_LOCAL, "paused", False)
    _LOCAL.paused = value
    return previous


def traceable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` as a pure function of arrays (a check, or a derived array such as validated
    labels) that a compiled step must run again at every replay: while tracing, the call is
    recorded with its array arguments as inputs; its array results become values of the plan and
    its other results guards (a replay whose result differs runs the step eagerly instead, which
    raises the function's error if it has one)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if TRACER is None or (tracer := active()) is None:
            return fn(*args, **kwargs)
        return tracer.pyfunc(fn, args, kwargs)

    wrapper.__wrapped_traceable__ = fn  # type: ignore[attr-defined]
    return wrapper
