"""Adagrad: per-coordinate step sizes from the sum of all past squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..backend import get_xp
from ..compile import _hooks
from ._flat import flat_step
from .optimizer import Optimizer, check_bool, check_real, decayed_grad


class Adagrad(Optimizer):
    r"""Adagrad (Duchi, Hazan & Singer, 2011), with PyTorch's options: ``torch.optim.Adagrad``.

    For each parameter :math:`p` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`
    (:math:`S_0 = ` ``initial_accumulator_value``):

    .. math::
        g &\leftarrow -g \quad \text{if maximize} \\
        g &\leftarrow g + \lambda p \quad \text{(weight\_decay } \lambda) \\
        \tilde\eta_t &= \frac{\eta}{1 + (t - 1)\,\delta} \quad \text{(lr\_decay } \delta) \\
        S_t &= S_{t-1} + g^2 \\
        p &\leftarrow p - \tilde\eta_t\, \frac{g}{\sqrt{S_t} + \epsilon}

    Args:
        params: tensors, ``(name, tensor)`` pairs, or parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`. Default: 1e-2.
        lr_decay: :math:`\delta \ge 0`. Default: 0.
        weight_decay: L2 penalty :math:`\lambda \ge 0`. Default: 0.
        initial_accumulator_value: :math:`S_0 \ge 0`. Default: 0.
        eps: :math:`\epsilon \ge 0`, added to the denominator. Default: 1e-10.
        maximize: ascend the objective instead of descending.

    State per parameter: ``"step"`` (int :math:`t`) and ``"sum"`` (:math:`S_t`).
    """


    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_real("lr", group["lr"])
        group["lr_decay"] = check_real("lr_decay", group["lr_decay"])
        group["weight_decay"] = check_real("weight_decay", group["weight_decay"])
        group["initial_accumulator_value"] = check_real(
            "initial_accumulator_value", group["initial_accumulator_value"])
        group["eps"] = check_real("eps", group["eps"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    @staticmethod
    def _flat_calls(group: dict[str, Any]) -> int:
        """About how many ufunc calls the update makes per parameter (see ``optim._flat``)."""
        return 7 + 2 * (group["weight_decay"] != 0.0) + group["maximize"]

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adagrad update of every parameter that has a gradient (see the class docstring)."""
        # cr.compile is tracing: record the update
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.optimizer_step(self, closure, Adagrad.step)
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr, lr_decay = float(group["lr"]), group["lr_decay"]
            options = (group["eps"], group["weight_decay"], group["maximize"])
            flat = flat_step(self, group, ("sum",), counts_steps=True,
                             calls=self._flat_calls(group))
            if flat is not None:
                state = flat.counted_state(("sum",), group["initial_accumulator_value"])
                clr = lr / (1.0 + flat.step * lr_decay)
                adagrad_update(np, flat.param, flat.grad, state["sum"], clr, *options)
                flat.finish(counts_steps=True)
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._counted_state(p, ("sum",), group["initial_accumulator_value"])
                clr = lr / (1.0 + (state["step"] - 1) * lr_decay)
                adagrad_update(get_xp(p.data), p.data, p.grad, state["sum"], clr, *options)
                p.bump_version()
        return loss


def adagrad_update(xp: Any, param: Any, grad: Any, sum_sq: Any, clr: float, eps: float,
                   weight_decay: float, maximize: bool) -> None:
    r"""One Adagrad update with the step's decayed learning rate ``clr`` (:math:`\tilde\eta_t`), on
    arrays of one shape: a parameter's, or a flat group's ``(n,)`` (see :class:`Adagrad`).

    ``param`` (:math:`p`) and ``sum_sq`` (:math:`S`) are updated in place; ``grad`` (:math:`g`)
    is only read.
    """
    g = decayed_grad(xp, param, grad, weight_decay, maximize)
    tmp = xp.empty_like(param)

    # S <- S + g^2 ;  p <- p - clr * g / (sqrt(S) + eps)
    xp.multiply(g, g, out=tmp)
    sum_sq += tmp
    xp.sqrt(sum_sq, out=tmp)
    tmp += eps
    xp.divide(g, tmp, out=tmp)
    tmp *= clr
    xp.subtract(param, tmp, out=param)
