"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..backend import get_xp
from ..compile import _hooks
from ._flat import flat_step
from .optimizer import Optimizer, check_bool, check_real, decayed_grad


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), with PyTorch's options and order: ``torch.optim.RMSprop``.

    For each parameter :math:`p` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`
    (:math:`s_0 = \bar g_0 = b_0 = 0`):

    .. math::
        g &\leftarrow -g \quad \text{if maximize} \\
        g &\leftarrow g + \lambda p \quad \text{(weight\_decay } \lambda) \\
        s_t &= \alpha s_{t-1} + (1 - \alpha) g^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha) g \quad \text{(centered only)} \\
        d &= \sqrt{s_t} + \epsilon \quad\text{or, centered,}\quad
             d = \sqrt{s_t - \bar g_t^2} + \epsilon \\
        b_t &= \mu b_{t-1} + g / d, \quad p \leftarrow p - \eta b_t
             \quad \text{(momentum } \mu > 0) \\
        p &\leftarrow p - \eta\, g / d \quad \text{(no momentum)}

    Args:
        params: tensors, ``(name, tensor)`` pairs, or parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`. Default: 1e-2.
        alpha: smoothing constant :math:`\alpha \in [0, 1]`. Default: 0.99.
        eps: :math:`\epsilon \ge 0`, added to the denominator. Default: 1e-8.
        weight_decay: L2 penalty :math:`\lambda \ge 0`. Default: 0.
        momentum: momentum factor :math:`\mu \ge 0`. Default: 0.
        centered: normalise by an estimate of the gradient's variance instead of its second
            moment. Default: False.
        maximize: ascend the objective instead of descending.

    State per parameter: ``"step"``, ``"square_avg"`` (:math:`s_t`), ``"momentum_buffer"``
    (:math:`b_t`, when momentum > 0) and ``"grad_avg"`` (:math:`\bar g_t`, when centered).
    """


    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_real("lr", group["lr"])
        group["alpha"] = check_real("alpha", group["alpha"], 0.0, 1.0)
        group["eps"] = check_real("eps", group["eps"])
        group["weight_decay"] = check_real("weight_decay", group["weight_decay"])
        group["momentum"] = check_real("momentum", group["momentum"])
        group["centered"] = check_bool("centered", group["centered"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    @staticmethod
    def _flat_calls(group: dict[str, Any]) -> int:
        """About how many ufunc calls the update makes per parameter (see ``optim._flat``)."""
        return (9 + 2 * (group["momentum"] > 0.0) + 5 * group["centered"]
                + 2 * (group["weight_decay"] != 0.0) + group["maximize"])

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One RMSprop update of every parameter that has a gradient (see the class docstring)."""
        # cr.compile is tracing: record the update
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.optimizer_step(self, closure, RMSprop.step)
        loss = self._evaluate(closure)
        for group in self.param_groups:
            momentum = group["momentum"]
            options = (float(group["lr"]), group["alpha"], group["eps"], group["weight_decay"],
                       momentum, group["maximize"])
            names = ("square_avg",) + (("momentum_buffer",) if momentum > 0.0 else ()) \
                + (("grad_avg",) if group["centered"] else ())
            flat = flat_step(self, group, names, counts_steps=True,
                             calls=self._flat_calls(group))
            if flat is not None:
                state = flat.counted_state(names)
                rmsprop_update(np, flat.param, flat.grad, state["square_avg"],
                               state.get("momentum_buffer"), state.get("grad_avg"), *options)
                flat.finish(counts_steps=True)
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._counted_state(p, names)
                rmsprop_update(get_xp(p.data), p.data, p.grad, state["square_avg"],
                               state["momentum_buffer"] if momentum > 0.0 else None,
                               state["grad_avg"] if group["centered"] else None, *options)
                p.bump_version()
        return loss


def rmsprop_update(xp: Any, param: Any, grad: Any, square_avg: Any, momentum_buffer: Any,
                   grad_avg: Any, lr: float, alpha: float, eps: float, weight_decay: float,
                   momentum: float, maximize: bool) -> None:
    r"""One RMSprop update on arrays of one shape: a parameter's, or a flat group's ``(n,)`` (see
    :class:`RMSprop` for the formulas).

    ``param`` (:math:`p`), ``square_avg`` (:math:`s`), ``momentum_buffer`` (:math:`b`, None
    without momentum) and ``grad_avg`` (:math:`\bar g`, None unless centered) are updated in
    place; ``grad`` (:math:`g`) is only read.
    """
    g = decayed_grad(xp, param, grad, weight_decay, maximize)
    tmp = xp.empty_like(param)

    # s <- alpha s + (1 - alpha) g^2
    square_avg *= alpha
    xp.multiply(g, 1.0 - alpha, out=tmp)
    tmp *= g
    square_avg += tmp

    # d = sqrt(s - gbar^2) + eps (centered) or sqrt(s) + eps
    if grad_avg is not None:
        grad_avg *= alpha
        grad_avg += xp.multiply(g, 1.0 - alpha, out=tmp)
        xp.multiply(grad_avg, grad_avg, out=tmp)
        xp.subtract(square_avg, tmp, out=tmp)
        xp.sqrt(tmp, out=tmp)
    else:
        xp.sqrt(square_avg, out=tmp)
    tmp += eps

    xp.divide(g, tmp, out=tmp)
    if momentum_buffer is not None:
        # b <- mu b + g / d ;  p <- p - lr b
        momentum_buffer *= momentum
        momentum_buffer += tmp
        xp.multiply(momentum_buffer, lr, out=tmp)
    else:
        tmp *= lr
    xp.subtract(param, tmp, out=param)
