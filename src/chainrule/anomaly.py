"""Anomaly detection: which operation made the first NaN or infinity, and where the user's code
called it.

    with cr.detect_anomaly():
        loss = model(x).log().mean()     # AnomalyError: log produced NaN ... at train.py:12
        loss.backward()                  # or: the backward of sqrt produced inf ... at ...

In anomaly mode every primitive's output is checked as it is made: the first one that holds a
NaN or an infinity although its inputs were finite raises :class:`AnomalyError`, naming the
primitive, its inputs' shapes and dtypes, and the file and line of the code that called it (the
innermost frame outside chainrule; for a model inside chainrule's own code, such as
``chainrule train``, the chainrule layer that called it). Every node recorded in anomaly mode
keeps that place (PyTorch's "traceback of forward call"), so backward, which also checks every
vector-Jacobian product, can name the node whose VJP first turned finite gradients into
non-finite ones and where its forward was called.

Off, it costs one test of a module flag per operation (``benchmarks/anomaly.py`` measures it);
on, every operation's output and inputs are scanned for non-finite values and the caller's
frame is looked up. The mode is per thread (a context variable), like ``no_grad``; inside it, a
fused ``nn.MLP`` runs its layers one by one, so the error names the layer's own operation.
"""

from __future__ import annotations

import contextvars
import functools
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from . import autograd
from .backend import get_xp
from .errors import AnomalyError

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("chainrule_anomaly",
                                                                default=False)
_position: contextvars.ContextVar[tuple[int, int | None] | None] = contextvars.ContextVar(
    "chainrule_anomaly_at", default=None)
_active = 0   # detect_anomaly blocks open in any thread: autograd's flag is on while > 0


def is_anomaly_enabled() -> bool:
    """True inside ``detect_anomaly()`` (in this thread or context)."""
    return _enabled.get()


class detect_anomaly:
    """Context manager and decorator: check every operation's output and every gradient for
    NaN and infinity, and raise :class:`~chainrule.AnomalyError` naming the operation that made
    the first one and where it was called (see :mod:`chainrule.anomaly`).

    Args:
        enabled: False turns anomaly mode off inside the block (as in PyTorch's
            ``set_detect_anomaly``). Default: True.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self._tokens: list[tuple[contextvars.Token[Any], contextvars.Token[Any]]] = []

    def __enter__(self) -> detect_anomaly:
        global _active
        self._tokens.append((_enabled.set(self.enabled), _position.set(None)))
        if self.enabled:    # (a block that turns the mode off leaves the flag as it is)
            _active += 1
            autograd._anomaly_on = True
        return self

    def __exit__(self, *exc: object) -> None:
        global _active
        on, at = self._tokens.pop()
        _enabled.reset(on)
        _position.reset(at)
        if self.enabled:
            _active -= 1
            autograd._anomaly_on = _active > 0

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with detect_anomaly(self.enabled):
                return fn(*args, **kwargs)

        return wrapper


def set_position(epoch: int | None, batch: int | None = None) -> None:
    """Say which epoch and batch a training loop is at, for the errors raised until the next
    call in this anomaly block (``set_position(None)`` clears it); a no-op outside anomaly mode.
    ``chainrule.train.Trainer`` calls it every batch."""
    if _enabled.get():
        _position.set(None if epoch is None else (epoch, batch))


# --------------------------------------------------------------------------- call sites
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_ENGINE_FILES = {os.path.join(_PACKAGE, f) for f in ("autograd.py", "tensor.py", "anomaly.py",
                                                     "creation.py", "checkpoint.py")}
_ENGINE, _LIBRARY, _CLI, _USER = range(4)
_kinds: dict[str, int] = {}


def _kind(filename: str) -> int:
    """What a frame's file is: the engine (primitives, apply), the rest of chainrule (layers,
    losses, training), chainrule's command line, or user code."""
    kind = _kinds.get(filename)
    if kind is None:
        path = os.path.abspath(filename)
        if not path.startswith(_PACKAGE):
            kind = _USER
        elif path in _ENGINE_FILES or path.startswith(os.path.join(_PACKAGE, "ops") + os.sep):
            kind = _ENGINE
        elif path.startswith(os.path.join(_PACKAGE, "cli") + os.sep):
            kind = _CLI
        else:
            kind = _LIBRARY
        _kinds[filename] = kind
    return kind


class Site:
    """Where an operation was called: the innermost frame of user code (``user``) and the
    innermost chainrule frame outside the engine (``library``: a layer, a loss), each
    ``(filename, line, function)`` or None; and its inputs' shapes and dtypes (``inputs``,
    formatted when asked for)."""

    __slots__ = ("user", "library", "_inputs")

    def __init__(self, user: tuple[str, int, str] | None,
                 library: tuple[str, int, str] | None, inputs: list[Any]) -> None:
        self.user, self.library, self._inputs = user, library, inputs

    @property
    def inputs(self) -> str:
        return ", ".join(f"{s} {d}" if d is not None else f"the number {s!r}"
                         for s, d in self._inputs)

    def __str__(self) -> str:
        parts = []
        if self.user is not None:
            parts.append(f"called at {_where(self.user)}")
        if self.library is not None:
            parts.append(("via " if parts else "called at ") + _where(self.library))
        return ", ".join(parts) or "called from an unknown place"


def _where(frame: tuple[str, int, str]) -> str:
    filename, line, function = frame
    path = os.path.abspath(filename)
    if path.startswith(_PACKAGE):
        shown = "chainrule/" + path[len(_PACKAGE):].replace(os.sep, "/")
    else:
        try:
            rel = os.path.relpath(path)
            shown = rel if not rel.startswith("..") else path
        except ValueError:   # another drive (Windows)
            shown = path
    return f"{shown}:{line} (in {function})"


def _site(arrays: Any) -> Site:
    """The caller of the operation being applied, found by walking up from here."""
    frame = sys._getframe(2)
    library = None
    while frame is not None:
        code = frame.f_code
        kind = _kind(code.co_filename)
        if kind == _USER:
            return Site((code.co_filename, frame.f_lineno, code.co_name), library,
                        _describe(arrays))
        if kind == _CLI:
            break          # chainrule's own program: no user code above
        if kind == _LIBRARY and library is None:
            library = (code.co_filename, frame.f_lineno, code.co_name)
        frame = frame.f_back
    return Site(None, library, _describe(arrays))


def _describe(arrays: Any) -> list[Any]:
    return [(tuple(a.shape), a.dtype) if hasattr(a, "shape") else (a, None) for a in arrays]


def _finite(a: Any) -> bool:
    """No NaN or infinity in ``a`` (an array or a number)."""
    if hasattr(a, "dtype"):
        if a.dtype.kind not in "fc":
            return True
        # One reduction instead of isfinite's boolean array: a NaN or an infinity makes the sum
        # NaN or infinite; only a finite sum that overflowed needs the full test.
        total = float(a.sum()) if a.dtype.kind == "f" else complex(a.sum())
        if math.isfinite(abs(total)):
            return True
        return bool(get_xp(a).isfinite(a).all())
    if isinstance(a, float):
        return math.isfinite(a)
    return True


def _what(a: Any) -> str:
    xp = get_xp(a)
    nan = int(xp.isnan(a).sum())
    inf = int(xp.isinf(a).sum())
    parts = []
    if nan:
        parts.append(f"{nan} NaN")
    if inf:
        parts.append(f"{inf} inf")
    return " and ".join(parts) + f" among {a.size} values"


def _suffix() -> str:
    at = _position.get()
    if at is None:
        return ""
    epoch, batch = at
    return f" (training: epoch {epoch}" + (f", batch {batch})" if batch is not None else ")")


# --------------------------------------------------------------------------- the checks
def check_forward(prim: Any, arrays: list[Any], out: Any, node: Any) -> None:
    """Called by ``autograd.apply`` after a forward while some thread is in anomaly mode:
    records the node's call site, and raises when ``out`` is the first non-finite value."""
    if not _enabled.get():
        return
    site = None
    if node is not None:
        site = node.site = _site(arrays)
    if getattr(out, "dtype", None) is None or out.dtype.kind != "f" or _finite(out):
        return
    if not all(_finite(a) for a in arrays):
        return     # NaN in, NaN out: the operation that made it was not recorded here
    site = site or _site(arrays)
    raise AnomalyError(
        f"{prim.name} produced NaN/inf from finite inputs ({site.inputs}): {_what(out)}; "
        f"{site}{_suffix()}")


def check_backward(node: Any, g: Any, in_grads: tuple[Any, ...]) -> None:
    """Called by ``autograd.backward`` after a node's VJP in anomaly mode: raises when it made a
    non-finite gradient out of a finite one."""
    if not _enabled.get():
        return
    for i, gi in enumerate(in_grads):
        if gi is not None and not _finite(gi):
            break
    else:
        return
    site = getattr(node, "site", None)
    where = (f"its forward was {site} with inputs {site.inputs}" if site is not None else
             "its forward was recorded outside anomaly mode, so where it was called is unknown")
    if not _finite(g):
        raise AnomalyError(
            f"backward: the gradient arriving at {node.prim.name} (shape {tuple(g.shape)}) is "
            f"not finite ({_what(g)}): it is the seed given to backward(), or a sum of "
            f"gradients that overflowed; {where}{_suffix()}")
    raise AnomalyError(
        f"backward of {node.prim.name} produced NaN/inf in the gradient of its input {i} "
        f"(shape {tuple(gi.shape)}, {gi.dtype}) from a finite gradient: {_what(gi)}; "
        f"{where}{_suffix()}")


__all__ = ["detect_anomaly", "is_anomaly_enabled", "set_position", "AnomalyError", "Site"]
