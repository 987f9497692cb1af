"""Stochastic gradient descent: the lecture's update, with PyTorch's momentum options."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..backend import get_xp
from ..compile import _hooks
from ..errors import InvalidValueError
from ._axpy import axpy
from ._flat import flat_step
from .optimizer import Optimizer, check_bool, check_real, decayed_grad


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum: ``torch.optim.SGD``.

    Without options it is the lecture's update
    :math:`w \leftarrow w - \eta\, \partial e/\partial w`.
    For each parameter :math:`p` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`:

    .. math::
        g &\leftarrow -g \quad \text{if maximize} \\
        g &\leftarrow g + \lambda p \quad \text{(weight\_decay } \lambda) \\
        b_1 &= g, \qquad b_t = \mu b_{t-1} + (1 - \tau) g \quad
              \text{(momentum } \mu \ne 0 \text{, dampening } \tau) \\
        g &\leftarrow g + \mu b_t \ \text{(nesterov)} \quad\text{or}\quad g \leftarrow b_t \\
        p &\leftarrow p - \eta g

    On the CPU every line that adds a multiple of an array is rounded once per element, a fused
    multiply-add (``?axpy``: see ``optim._axpy``), as PyTorch's ``add_(..., alpha=)`` rounds
    it: the parameters come out bit for bit as ``torch.optim.SGD``'s from the same gradients,
    with any of these options (``tests/test_sgd_axpy.py``). (The momentum's
    :math:`\mu b_{t-1}` is a plain product, rounded on its own in both.) On CuPy products and
    sums are rounded separately, so the last bits can differ from the CPU's.

    Args:
        params: tensors, ``(name, tensor)`` pairs, or parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`. Default: 1e-3 (PyTorch's).
        momentum: momentum factor :math:`\mu \ge 0`. Default: 0.
        dampening: :math:`\tau \in [0, 1]`. Default: 0.
        weight_decay: L2 penalty :math:`\lambda \ge 0`. Default: 0.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: ascend the objective instead of descending.

    State per parameter: ``"momentum_buffer"`` (:math:`b_t`, only when ``momentum != 0``).
    """


    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_real("lr", group["lr"])
        group["momentum"] = check_real("momentum", group["momentum"])
        group["dampening"] = check_real("dampening", group["dampening"], 0.0, 1.0)
        group["weight_decay"] = check_real("weight_decay", group["weight_decay"])
        group["nesterov"] = check_bool("nesterov", group["nesterov"])
        group["maximize"] = check_bool("maximize", group["maximize"])
        if group["nesterov"] and (group["momentum"] <= 0.0 or group["dampening"] != 0.0):
            raise InvalidValueError("Nesterov momentum requires momentum > 0 and dampening == 0")

    @staticmethod
    def _flat_calls(group: dict[str, Any]) -> int:
        """About how many ufunc calls the update makes per parameter (see ``optim._flat``)."""
        return (2 + 2 * (group["momentum"] != 0.0) + 2 * group["nesterov"]
                + 2 * bool(group["weight_decay"] or group["maximize"]))

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient (see the class docstring)."""
        # cr.compile is tracing: record the update
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.optimizer_step(self, closure, SGD.step)
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum = group["momentum"]
            dampening = group["dampening"]
            nesterov = group["nesterov"]
            decay, maximize = group["weight_decay"], group["maximize"]
            names = ("momentum_buffer",) if momentum != 0.0 else ()
            flat = flat_step(self, group, names, counts_steps=False,
                             calls=self._flat_calls(group))
            if flat is not None:
                buf = flat.state["momentum_buffer"] if names and flat.state is not None else None
                buf = sgd_update(np, flat.param, flat.grad, buf, lr, momentum, dampening,
                                 nesterov, decay, maximize, add_scaled=flat.add_scaled)
                if names and flat.state is None:
                    flat.attach({"momentum_buffer": buf}, counts_steps=False)
                flat.finish(counts_steps=False)
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                if momentum != 0.0:
                    state = self.state.setdefault(p, {})
                    state["momentum_buffer"] = sgd_update(
                        get_xp(p.data), p.data, p.grad, state.get("momentum_buffer"), lr,
                        momentum, dampening, nesterov, decay, maximize, grad_is_ours=False)
                else:
                    sgd_update(get_xp(p.data), p.data, p.grad, None, lr, momentum, dampening,
                               nesterov, decay, maximize, grad_is_ours=False)
                p.bump_version()
        return loss


def sgd_update(xp: Any, param: Any, grad: Any, buf: Any, lr: float, momentum: float,
               dampening: float, nesterov: bool, weight_decay: float, maximize: bool,
               grad_is_ours: bool = True, add_scaled: Callable[[float, Any], None] | None = None
               ) -> Any:
    """One SGD update (see :class:`SGD`) of one parameter, or of a flat group (arrays of shape
    ``(n,)``): the arithmetic is the same elementwise either way.

    Args:
        xp: the array module.
        param: :math:`p`, written in place.
        grad: :math:`g`. With ``grad_is_ours`` (the flat path's gathered copy) it may be
            overwritten; otherwise (a parameter's ``.grad``, the user's) it is only read.
        buf: the momentum buffer :math:`b_{t-1}`, updated in place; None at the first step.
        add_scaled: ``f(alpha, x)`` doing ``param <- param + alpha x`` as ``optim._axpy.axpy``
            does (the flat path's, which keeps the plan); None: ``axpy`` itself.

    Returns:
        the momentum buffer :math:`b_t` (``buf``, or a new array at the first step); None when
        ``momentum == 0``.
    """
    if weight_decay or maximize:
        d_p = decayed_grad(xp, param, grad, weight_decay, maximize)
        scratch = True  # a new array of ours, free to scale in place
    else:
        d_p, scratch = grad, grad_is_ours
    if momentum != 0.0:
        if buf is None:
            buf = xp.array(d_p, dtype=param.dtype, copy=True)
        else:
            buf *= momentum
            if dampening == 0.0:
                buf += d_p
            elif xp is np:  # b + (1 - tau) g rounded once, as PyTorch's add_(alpha=)
                axpy(1.0 - dampening, d_p, buf)
            else:
                buf += (1.0 - dampening) * d_p
        if nesterov:
            if xp is np:  # g + mu b rounded once, into an array of ours
                if not scratch:
                    d_p = np.array(d_p, copy=True)
                axpy(momentum, buf, d_p)
                scratch = True
            else:
                d_p, scratch = d_p + momentum * buf, True  # a new array
        else:
            d_p, scratch = buf, False
    # p <- p - lr * d_p, rounded once on the CPU (a fused multiply-add: see optim._axpy)
    if add_scaled is not None:
        add_scaled(-lr, d_p)
    elif xp is np:
        axpy(-lr, d_p, param)
    else:  # (CuPy: a multiply, then a subtract, each rounded; compile.cuda does the same)
        xp.subtract(param, xp.multiply(d_p, lr, out=d_p) if scratch else lr * d_p, out=param)
    return buf
