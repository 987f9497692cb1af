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

    wrapper = _fixed_wrapper(fn)
    if wrapper is None:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if TRACER is None or (tracer := active()) is None:
                return fn(*args, **kwargs)
            return tracer.pyfunc(fn, args, kwargs)

    wrapper.__wrapped_traceable__ = fn  # type: ignore[attr-defined]
    return wrapper


def _fixed_wrapper(fn: Callable[..., Any]) -> Any:
    """For a function of plain parameters, a wrapper with the same parameters (no *args and
    **kwargs to pack on every eager call: these wrap hot checks such as the labels' range)."""
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD for p in params):
        return None
    ns: dict[str, Any] = {"_fn": fn, "_active": active, "_mod": __import__(__name__, None, None,
                                                                            ["TRACER"])}
    sig = []
    for p in params:
        if p.default is p.empty:
            sig.append(p.name)
        else:
            ns[f"_d_{p.name}"] = p.default
            sig.append(f"{p.name}=_d_{p.name}")
    names = ", ".join(p.name for p in params)
    src = (f"def wrapper({', '.join(sig)}):\n"
           f"    if _mod.TRACER is None or (tracer := _active()) is None:\n"
           f"        return _fn({names})\n"
           f"    return tracer.pyfunc(_fn, ({names}{',' if len(params) == 1 else ''}), {{}})\n")
    exec(compile(src, f"<traceable {fn.__qualname__}>", "exec"), ns)  # noqa: S102
    return functools.wraps(fn)(ns["wrapper"])
