"""The optimizer base class: parameter groups, per-parameter state, and its ``state_dict``.

An optimizer holds ``param_groups``, a list of dicts, each with a ``"params"`` list of tensors and
that group's options (``lr``, ``weight_decay``, ...), and ``state``, a dict from parameter to that
parameter's running quantities (momentum buffers, moment estimates, the step count). Subclasses
implement :meth:`Optimizer.step` and :meth:`Optimizer._check_group`, nothing else.

Updates are written into ``p.data`` in place with backend ufuncs (``out=``): no Tensor objects are
made in the hot path, and a float32 parameter stays float32 because every hyper-parameter reaches
the arithmetic as a Python float (a weak scalar: it never promotes an array). Each update ends
with ``p.bump_version()``, so a graph that saved the old values refuses to backpropagate.

Each optimizer writes its update rule once, as a function of arrays (parameter, gradient, state),
and applies it per parameter or, when a small group's parameters tile one 1-D array (see
:mod:`._flat`), once to the whole group: same ufuncs, bit-identical results, fewer calls.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..backend import device_of, get_xp, move_to
from ..compile import _hooks
from ..errors import InvalidValueError, ShapeError
from ..tensor import Tensor
from ._axpy import axpy
from ._flat import FlatCache


def decayed_grad(xp: Any, param: Any, grad: Any, weight_decay: float, maximize: bool) -> Any:
    """``(-grad if maximize else grad) + weight_decay * param`` as a new array; ``grad`` itself
    (never to be written) when neither option applies. ``param`` and ``grad`` are arrays of one
    shape (a parameter's, or a flat group's).

    On the CPU each element is rounded once (a fused multiply-add, ``optim._axpy``), as
    PyTorch's ``grad.add(param, alpha=weight_decay)`` rounds it in its optimizers; on CuPy the
    product and the sum are rounded separately."""
    if weight_decay != 0.0:
        if xp is np:
            out = np.negative(grad) if maximize else np.array(grad, copy=True)
            axpy(weight_decay, param, out)
            return out
        out = xp.multiply(param, weight_decay)
        if maximize:
            xp.subtract(out, grad, out=out)
        else:
            xp.add(out, grad, out=out)
        return out
    if maximize:
        return xp.negative(grad)
    return grad


# ---------------------------------------------------------------------- hyper-parameter checks
def check_real(name: str, value: Any, low: float | None = 0.0, high: float | None = None,
               high_open: bool = False) -> float:
    """``value`` as a Python float, with ``low <= value`` and ``value <= high`` (``<`` if
    ``high_open``); an :class:`InvalidValueError` naming the option otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidValueError(f"{name} must be finite, got {v}")
    if low is not None and v < low:
        raise InvalidValueError(f"invalid {name} {v}: must be >= {low}")
    if high is not None and (v >= high if high_open else v > high):
        bound = f"< {high}" if high_open else f"<= {high}"
        raise InvalidValueError(f"invalid {name} {v}: must be {bound}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool; only ``True``/``False`` (or the integers 1/0) are accepted."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise InvalidValueError(f"{name} must be True or False, got {value!r}")


def check_betas(value: Any) -> tuple[float, float]:
    """Two coefficients in ``[0, 1)``, as a tuple of Python floats (a JSON list is accepted)."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise InvalidValueError(f"betas must be a pair (beta1, beta2), got {value!r}")
    return (check_real("betas[0]", value[0], 0.0, 1.0, high_open=True),
            check_real("betas[1]", value[1], 0.0, 1.0, high_open=True))


# ---------------------------------------------------------------------- the base class
class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of tensors (each ``requires_grad=True``, a leaf), of
            ``(name, tensor)`` pairs (as ``named_parameters()`` yields), or of dicts
            ``{"params": [...], **options}``, one per parameter group, whose options override
            ``defaults`` for that group.
        defaults: the default value of every option.

    Attributes:
        param_groups: list of dicts, each with ``"params"`` (a list of tensors) and every option.
        state: dict from parameter tensor to a dict of its state (arrays and Python numbers).
        defaults: the options a group gets when it does not set them.
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._flat = FlatCache()
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, (Tensor, dict)) or not isinstance(params, Iterable):
            raise InvalidValueError(
                "params must be an iterable of tensors or of dicts (parameter groups), got "
                f"{type(params).__name__}; wrap a single tensor in a list"
            )
        items = list(params)
        if not items:
            raise InvalidValueError("optimizer got an empty parameter list")
        groups = items if isinstance(items[0], dict) else [{"params": items}]
        for group in groups:
            self.add_param_group(group)

    # -------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (unset options take ``defaults``).

        Useful to make frozen layers trainable later in fine-tuning.
        """
        if not isinstance(param_group, dict):
            raise InvalidValueError(
                f"a parameter group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise InvalidValueError("a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise InvalidValueError(
                "parameters must come in an ordered collection (a list), not a set: the order "
                "of a set changes between runs and state_dict() depends on it"
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise InvalidValueError("give either all parameters with names or none")
            params = [p[1] for p in params]
        for i, p in enumerate(params):
            _check_param(p, i)
        seen = {id(p) for p in params}
        if len(seen) != len(params):
            raise InvalidValueError("a parameter group lists the same parameter more than once")
        for group in self.param_groups:
            if any(id(p) in seen for p in group["params"]):
                raise InvalidValueError("some parameters appear in more than one parameter group")

        group = {k: v for k, v in param_group.items() if k not in ("params", "param_names")}
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        self._check_group(group)
        group["params"] = params
        if names:
            group["param_names"] = [str(n) for n in names]
        self.param_groups.append(group)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Validate a group's options and normalise them in place (Python floats and bools)."""
        raise NotImplementedError

    def _counted_state(self, p: Tensor, names: tuple[str, ...], fill: float = 0.0
                       ) -> dict[str, Any]:
        """``p``'s state on the per-parameter path, made at its first step (``{"step": 0}`` and
        an array of ``fill`` per name, like ``p``), with ``"step"`` advanced by one."""
        state = self.state.get(p)
        if state is None:
            xp = get_xp(p.data)
            state = self.state[p] = {"step": 0}
            for name in names:
                state[name] = xp.full_like(p.data, fill)
        state["step"] += 1
        return state

    @staticmethod
    def _flat_calls(group: dict[str, Any]) -> int:
        """About how many ufunc calls the update makes per parameter under ``group``'s options:
        what the flat path saves (``chainrule.optim._flat``); 0 for an optimizer without one."""
        return 0

    # -------------------------------------------------------------- stepping
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; parameters whose ``grad`` is None are
        skipped.

        Args:
            closure: optional function that re-evaluates the model (zero_grad, forward,
                backward) and returns the loss; it is called with grad enabled before the update.

        Returns:
            the closure's loss, or None.
        """
        raise NotImplementedError

    @staticmethod
    def _evaluate(closure: Callable[[], Any] | None) -> Any:
        if closure is None:
            return None
        with enable_grad():
            return closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (the default, frees the memory), or to zeros
        in place when ``set_to_none=False``."""
        # cr.compile is tracing: record the reset
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.zero_grad([p for g in self.param_groups for p in g["params"]],
                                    set_to_none, "optimizer")
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif getattr(p.grad.flags, "writeable", True):
                    p.grad.fill(0)
                else:
                    p.grad = get_xp(p.grad).zeros_like(p.grad)

    # -------------------------------------------------------------- state_dict
    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the optimizer, in PyTorch's layout, with no tensors in it::

            {"state": {0: {"step": 3, "exp_avg": array, ...}, 1: {...}},
             "param_groups": [{"lr": 0.001, "betas": (0.9, 0.999), ..., "params": [0, 1]}, ...]}

        Parameters are numbered 0, 1, ... in group order; ``"state"`` holds an entry for each
        parameter that has state, keyed by that number. State values are backend arrays (copies,
        so later steps do not change the snapshot) of the parameter's shape, or Python numbers
        (``"step"``, an int). Group options are Python floats, bools, ints, tuples of floats
        (``betas``) and, when parameters were given with names, the list ``"param_names"``;
        a scheduler adds ``"initial_lr"``. Everything except the arrays is JSON-serialisable.
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: (list(v) if isinstance(v, list) else v)
                      for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, s in self.state.items():
            if id(p) in index:
                state[index[id(p)]] = {k: (v.copy() if hasattr(v, "shape") else v)
                                       for k, v in s.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (or the same structure read back from a file).

        The number of groups and of parameters in each must match this optimizer's; the saved
        group options replace the current ones (parameters stay this optimizer's); arrays are
        copied onto each parameter's device and cast to its dtype. ``"state"`` keys may be ints
        or their decimal strings (JSON object keys), and ``betas`` a list.
        """
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise InvalidValueError(
                "an optimizer state_dict is a dict with the keys 'state' and 'param_groups'"
            )
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise InvalidValueError(
                f"the loaded state_dict has {len(saved_groups)} parameter groups, this optimizer "
                f"has {len(self.param_groups)}"
            )
        by_index: dict[int, Tensor] = {}
        new_groups = []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            ids = list(saved.get("params", ()))
            if len(ids) != len(group["params"]):
                raise InvalidValueError(
                    f"parameter group {gi} of the loaded state_dict has {len(ids)} parameters, "
                    f"this optimizer's has {len(group['params'])}"
                )
            for i, p in zip(ids, group["params"]):
                by_index[int(i)] = p
            new = {k: v for k, v in group.items() if k != "params"}
            new.update({k: (list(v) if isinstance(v, list) else v)
                        for k, v in saved.items() if k != "params"})
            self._check_group(new)
            new["params"] = group["params"]
            new_groups.append(new)

        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, saved in state_dict["state"].items():
            try:
                p = by_index[int(key)]
            except (KeyError, ValueError):
                raise InvalidValueError(
                    f"the loaded state_dict has state for parameter {key!r}, which no group lists"
                ) from None
            new_state[p] = {name: _restore(name, value, p) for name, value in saved.items()}
        self.param_groups = new_groups
        self.state = new_state

    def __getstate__(self) -> dict[str, Any]:
        # The flat-path cache holds views of arrays; a copy (copy.deepcopy, pickle) would no
        # longer share their memory, so it is left out and rebuilt on the next step.
        state = self.__dict__.copy()
        state.pop("_flat", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._flat = FlatCache()

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(group):
                if k not in ("params", "param_names"):
                    lines.append(f"    {k}: {group[k]}")
        lines.append(")")
        return "\n".join(lines)


def _check_param(p: Any, i: int) -> None:
    if not isinstance(p, Tensor):
        raise InvalidValueError(
            f"an optimizer optimizes tensors; parameter {i} is a {type(p).__name__}"
        )
    if not p.requires_grad:
        raise InvalidValueError(
            f"parameter {i} (shape {tuple(p.shape)}) does not require grad, so it would never "
            "get a gradient; create it with requires_grad=True or leave it out"
        )
    if not p.is_leaf:
        raise InvalidValueError(
            f"parameter {i} is not a leaf tensor (an op made it); optimize the tensor it was "
            "computed from"
        )


def _restore(name: str, value: Any, p: Tensor) -> Any:
    """A loaded state value: ``step`` as an int, other numbers as they are, arrays as a copy
    with the parameter's shape, dtype and device."""
    if name == "step":
        return int(value)
    if isinstance(value, (numbers.Number, bool)):
        return value
    if not hasattr(value, "shape"):
        raise InvalidValueError(
            f"state {name!r} must be an array or a number, got {type(value).__name__}"
        )
    if tuple(value.shape) != tuple(p.shape):
        raise ShapeError(
            f"state {name!r} has shape {tuple(value.shape)}, its parameter {tuple(p.shape)}"
        )
    xp = get_xp(p.data)
    arr = move_to(value, device_of(p.data))
    return xp.array(arr, dtype=p.data.dtype, copy=True)
