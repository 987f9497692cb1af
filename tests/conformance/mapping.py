"""How each OpInfo entry is spelled in chainrule: one function per PyTorch operator that calls
chainrule's counterpart with the sample's arguments (already converted: tensors are chainrule
tensors, ``torch.float64`` is ``"float64"``).

A mapping passes arguments through unchanged wherever chainrule spells them as PyTorch does; an
argument it does not know then reaches chainrule and fails the sample, as it should. Where
chainrule deliberately differs, the mapping says so through ``call`` with the tag of an entry of
``allowlist.py``: ``call.translate(tag)`` before rewriting an argument into chainrule's convention,
``call.refuse(tag)`` before a call that must raise a ``ChainruleError``, ``call.unsupported(tag)``
to skip the sample. A tag that is not listed for the operator fails the sample.

Not mapped, on purpose: the factories (``zeros``, ``ones``, ``full``, ``arange``, ``eye``,
``*_like``), which have no input to differentiate; ``nn.functional.dropout``, whose masks come
from another generator; conversions (``double``, ``float``, ``item``).

Imports nothing from PyTorch: the samples reach it converted.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import chainrule as cr
import chainrule.nn.functional as F

from . import report
from .allowlist import ALLOWLIST


class Unsupported(Exception):
    """Raised by ``Call.unsupported``: the sample is skipped with the entry's reason."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


class NotListed(AssertionError):
    """A mapping asked for a difference the allowlist does not name for this operator."""


class Call:
    """One sample's call: the allowlisted differences its mapping used."""

    def __init__(self, op: str) -> None:
        self.op = op
        self.translated: list[str] = []
        self.refusal: str | None = None

    def _entry(self, tag: str, kind: str) -> None:
        d = ALLOWLIST.get(tag)
        if d is None or d.kind != kind or self.op not in d.ops:
            raise NotListed(f"{self.op}: the mapping uses {kind} {tag!r}, which allowlist.py "
                            "does not list for this operator")
        report.USED.add(tag)

    def translate(self, tag: str) -> None:
        self._entry(tag, "translate")
        self.translated.append(tag)

    def refuse(self, tag: str) -> None:
        self._entry(tag, "refuse")
        self.refusal = tag

    def unsupported(self, tag: str) -> None:
        self._entry(tag, "unsupported")
        raise Unsupported(tag)


MAPPINGS: dict[str, Callable[..., Any]] = {}


def maps(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for n in names:
            assert n not in MAPPINGS, n
            MAPPINGS[n] = fn
        return fn

    return register


def _same(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A mapping that passes every argument through to ``fn``."""

    def mapping(call: Call, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return mapping


def _function(name: str) -> Callable[..., Any]:
    """``cr.<name>(*args, **kwargs)``, looked up at call time (a missing one fails the sample)."""
    return _same(lambda *args, **kwargs: getattr(cr, name)(*args, **kwargs))


def _method(name: str) -> Callable[..., Any]:
    """``x.<name>(*args, **kwargs)``."""
    return _same(lambda x, *args, **kwargs: getattr(x, name)(*args, **kwargs))


# --------------------------------------------------------------------------- elementwise
for _name in ("abs", "exp", "log", "sqrt", "tanh", "sigmoid", "neg", "sign", "erf", "sin", "cos",
              "log1p", "expm1", "rsqrt", "square", "add", "sub", "mul", "pow", "maximum",
              "minimum", "matmul", "sum", "mean", "logsumexp", "argmax", "argmin",
              "amax", "amin", "softmax", "log_softmax", "flatten", "unsqueeze", "transpose",
              "permute", "broadcast_to", "stack", "index_select", "clamp"):
    MAPPINGS[_name] = _function(_name)

# PyTorch's variants of one operator, under the same chainrule function
MAPPINGS["div.no_rounding_mode"] = MAPPINGS["div.trunc_rounding"] = \
    MAPPINGS["div.floor_rounding"] = _same(cr.div)
MAPPINGS["softmax.with_dtype"] = MAPPINGS["softmax"]
MAPPINGS["log_softmax.with_dtype"] = MAPPINGS["log_softmax"]

# PyTorch's other names for operations chainrule offers under one name
MAPPINGS["true_divide"] = _same(cr.div)
MAPPINGS["mm"] = MAPPINGS["mv"] = MAPPINGS["dot"] = _same(cr.matmul)
MAPPINGS["max.binary"] = _same(cr.maximum)
MAPPINGS["min.binary"] = _same(cr.minimum)
MAPPINGS["clamp_min"] = _same(lambda x, bound: cr.clamp(x, min=bound))
MAPPINGS["clamp_max"] = _same(lambda x, bound: cr.clamp(x, max=bound))

# comparisons are chainrule's operators
for _name, _op in (("lt", operator.lt), ("le", operator.le), ("gt", operator.gt),
                   ("ge", operator.ge), ("eq", operator.eq), ("ne", operator.ne)):
    MAPPINGS[_name] = _same(_op)

# reflected operators and methods, called as methods
for _name in ("__radd__", "__rsub__", "__rmul__", "__rpow__", "__rmatmul__", "__getitem__",
              "reshape", "view", "expand", "clone"):
    MAPPINGS[_name] = _method(_name)
MAPPINGS["__rdiv__"] = _method("__rtruediv__")  # PyTorch's name for reflected true division
MAPPINGS["T"] = _same(lambda x: x.T)


@maps("cat")
def _cat(call: Call, tensors: Any, *args: Any, **kwargs: Any) -> Any:
    if len({t.ndim for t in tensors}) > 1 and any(t.shape == (0,) for t in tensors):
        call.refuse("cat-legacy-empty")
    return cr.cat(tensors, *args, **kwargs)


# torch.nn.functional
for _name in ("relu", "leaky_relu", "softplus", "gelu", "silu", "elu", "linear", "mse_loss",
              "cross_entropy", "nll_loss", "binary_cross_entropy",
              "binary_cross_entropy_with_logits"):
    MAPPINGS[f"nn.functional.{_name}"] = _same(getattr(F, _name))


# --------------------------------------------------------------------------- reductions
@maps("max.reduction_no_dim", "min.reduction_no_dim")
def _extremum(call: Call, x: Any) -> Any:
    return getattr(x, call.op.split(".")[0])()


@maps("max.reduction_with_dim", "min.reduction_with_dim")
def _extremum_dim(call: Call, x: Any, dim: Any, keepdim: bool = False) -> Any:
    # PyTorch's max(x, 1) returns (values, indices); chainrule's positional argument is NumPy's
    # axis (a tensor of maxima), and (values, indices) is spelled dim=
    call.translate("positional-dim-of-max")
    return getattr(x, call.op.split(".")[0])(dim=dim, keepdim=keepdim)


@maps("where")
def _where(call: Call, x: Any, condition: Any, other: Any) -> Any:
    return cr.where(condition, x, other)  # OpInfo's sample puts x first


@maps("var", "std", "var.unbiased", "std.unbiased")
def _variance(call: Call, x: Any, *args: Any, **kwargs: Any) -> Any:
    if args:  # var(x, unbiased): chainrule's first positional argument is the axis
        call.translate("positional-unbiased")
        (kwargs["unbiased"],) = args
    if kwargs.get("correction", 0) is None:
        call.translate("correction-none")
        kwargs["correction"] = 1
    if "correction" not in kwargs and "unbiased" not in kwargs:
        call.translate("default-correction")
        kwargs["correction"] = 1
    return getattr(cr, call.op.split(".")[0])(x, **kwargs)


@maps("squeeze", "squeeze.multiple")
def _squeeze(call: Call, x: Any, *dims: Any) -> Any:
    if dims:
        axes = dims[0] if isinstance(dims[0], (tuple, list)) else dims
        if any(x.shape[d] != 1 for d in axes if x.ndim):
            call.refuse("squeeze-non-unit")
    return cr.squeeze(x, *dims)
