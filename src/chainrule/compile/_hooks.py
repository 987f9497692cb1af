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
from collections.abc import Callable
from typing import Any

TRACER: Any = None


def traceable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``fn`` as a pure function of arrays (a check, or a derived array such as validated
    labels) that a compiled step must run again at every replay: while tracing, the call is
    recorded with its array arguments as inputs; its array results become values of the plan and
    its other results guards (a replay whose result differs runs the step eagerly instead, which
    raises the function's error if it has one)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = TRACER
        if tracer is None:
            return fn(*args, **kwargs)
        return tracer.pyfunc(fn, args, kwargs)

    wrapper.__wrapped_traceable__ = fn  # type: ignore[attr-defined]
    return wrapper
