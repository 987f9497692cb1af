"""Adam and AdamW: one update rule (:func:`adam_update`); they differ only in where weight decay
enters."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..backend import get_xp
from ..compile import _hooks
from ._flat import flat_step
from .optimizer import Optimizer, check_betas, check_bool, check_real, decayed_grad


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with PyTorch's defaults and update order: ``torch.optim.Adam``.

    For each parameter :math:`p` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`
    (:math:`m_0 = v_0 = \hat v^{\max}_0 = 0`):

    .. math::
        g &\leftarrow -g \quad \text{if maximize} \\
        g &\leftarrow g + \lambda p \quad \text{(weight\_decay } \lambda
             \text{: an L2 term in the gradient)} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        v^{\max}_t &= \max(v^{\max}_{t-1}, v_t) \quad \text{(amsgrad; then } v_t
             \text{ below means } v^{\max}_t) \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t} \cdot
             \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Args:
        params: tensors, ``(name, tensor)`` pairs, or parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`. Default: 1e-3.
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`. Default: (0.9, 0.999).
        eps: :math:`\epsilon \ge 0`, added to the denominator. Default: 1e-8.
        weight_decay: :math:`\lambda \ge 0`, coupled (added to the gradient). Default: 0.
            For decoupled decay use :class:`AdamW`.
        amsgrad: normalise by the running maximum of :math:`v_t` (AMSGrad). Default: False.
        maximize: ascend the objective instead of descending.

    State per parameter: ``"step"`` (int :math:`t`), ``"exp_avg"`` (:math:`m_t`),
    ``"exp_avg_sq"`` (:math:`v_t`) and, with amsgrad, ``"max_exp_avg_sq"``.
    """


    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_real("lr", group["lr"])
        group["betas"] = check_betas(group["betas"])
        group["eps"] = check_real("eps", group["eps"])
        group["weight_decay"] = check_real("weight_decay", group["weight_decay"])
        group["amsgrad"] = check_bool("amsgrad", group["amsgrad"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    @staticmethod
    def _flat_calls(group: dict[str, Any]) -> int:
        return _adam_calls(group, decoupled=False)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adam update of every parameter that has a gradient (see the class docstring)."""
        # cr.compile is tracing: record the update
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.optimizer_step(self, closure, Adam.step)
        loss = self._evaluate(closure)
        for group in self.param_groups:
            _adam_group_step(self, group, decoupled=False)
        return loss


class AdamW(Optimizer):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, ``torch.optim.AdamW``.

    The weights decay directly, before the Adam step, instead of through the gradient. For each
    parameter :math:`p` with gradient :math:`g`, at step :math:`t = 1, 2, \dots`
    (:math:`m_0 = v_0 = v^{\max}_0 = 0`):

    .. math::
        g &\leftarrow -g \quad \text{if maximize} \\
        p &\leftarrow p - \eta \lambda p \quad \text{(decoupled weight\_decay } \lambda) \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g^2 \\
        v^{\max}_t &= \max(v^{\max}_{t-1}, v_t) \quad \text{(amsgrad; then } v_t
             \text{ below means } v^{\max}_t) \\
        p &\leftarrow p - \frac{\eta}{1 - \beta_1^t} \cdot
             \frac{m_t}{\sqrt{v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    Args:
        params: tensors, ``(name, tensor)`` pairs, or parameter-group dicts.
        lr: learning rate :math:`\eta \ge 0`. Default: 1e-3.
        betas: :math:`(\beta_1, \beta_2)`, each in :math:`[0, 1)`. Default: (0.9, 0.999).
        eps: :math:`\epsilon \ge 0`. Default: 1e-8.
        weight_decay: decoupled decay :math:`\lambda \ge 0`. Default: 1e-2 (PyTorch's).
        amsgrad: normalise by the running maximum of :math:`v_t` (AMSGrad). Default: False.
        maximize: ascend the objective instead of descending.

    State per parameter: ``"step"``, ``"exp_avg"``, ``"exp_avg_sq"`` and, with amsgrad,
    ``"max_exp_avg_sq"`` (as for :class:`Adam`).
    """


    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _check_group(self, group: dict[str, Any]) -> None:
        group["lr"] = check_real("lr", group["lr"])
        group["betas"] = check_betas(group["betas"])
        group["eps"] = check_real("eps", group["eps"])
        group["weight_decay"] = check_real("weight_decay", group["weight_decay"])
        group["amsgrad"] = check_bool("amsgrad", group["amsgrad"])
        group["maximize"] = check_bool("maximize", group["maximize"])

    @staticmethod
    def _flat_calls(group: dict[str, Any]) -> int:
        return _adam_calls(group, decoupled=True)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One AdamW update of every parameter that has a gradient (see the class docstring)."""
        # cr.compile is tracing: record the update
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            return _tr.optimizer_step(self, closure, AdamW.step)
        loss = self._evaluate(closure)
        for group in self.param_groups:
            _adam_group_step(self, group, decoupled=True)
        return loss


def _adam_calls(group: dict[str, Any], decoupled: bool) -> int:
    """About how many ufunc calls the update makes per parameter (see ``optim._flat``)."""
    return (11 + len(_STATE_NAMES[group["amsgrad"]])
            + (group["weight_decay"] != 0.0) * (1 if decoupled else 2) + group["maximize"])


def _adam_group_step(opt: Optimizer, group: dict[str, Any], decoupled: bool) -> None:
    """Update one parameter group of an :class:`Adam` (or, ``decoupled``, :class:`AdamW`): the
    whole group at once when it is flat (see :mod:`._flat`), else parameter by parameter."""
    beta1, beta2 = group["betas"]
    options = (float(group["lr"]), beta1, beta2, group["eps"], group["weight_decay"],
               decoupled, group["maximize"])
    names = _STATE_NAMES[group["amsgrad"]]
    flat = flat_step(opt, group, names, counts_steps=True, calls=_adam_calls(group, decoupled))
    if flat is not None:
        state = flat.counted_state(names)
        adam_update(np, flat.param, flat.grad, state["exp_avg"], state["exp_avg_sq"],
                    state.get("max_exp_avg_sq"), flat.step + 1, *options)
        flat.finish(counts_steps=True)
        return
    for p in group["params"]:
        if p.grad is None:
            continue
        state = opt._counted_state(p, names)
        adam_update(get_xp(p.data), p.data, p.grad, state["exp_avg"], state["exp_avg_sq"],
                    state["max_exp_avg_sq"] if group["amsgrad"] else None, state["step"],
                    *options)
        p.bump_version()


_STATE_NAMES = {False: ("exp_avg", "exp_avg_sq"),
                True: ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")}


def adam_update(xp: Any, param: Any, grad: Any, exp_avg: Any, exp_avg_sq: Any,
                max_exp_avg_sq: Any, t: int, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, decoupled: bool, maximize: bool) -> None:
    r"""Step ``t`` (1, 2, ...) of Adam, or AdamW when ``decoupled``, on arrays of one shape: a
    parameter's, or a flat group's ``(n,)`` (see the class docstrings for the formulas).

    ``param`` (:math:`p`), ``exp_avg`` (:math:`m`), ``exp_avg_sq`` (:math:`v`) and
    ``max_exp_avg_sq`` (:math:`v^{\max}`, None without amsgrad) are updated in place; ``grad``
    (:math:`g`) is only read.
    """
    if decoupled:
        g = decayed_grad(xp, param, grad, 0.0, maximize)
    else:
        g = decayed_grad(xp, param, grad, weight_decay, maximize)
    m, v = exp_avg, exp_avg_sq
    tmp = xp.empty_like(param)

    # AdamW: p <- p - lr * wd * p, written as p *= (1 - lr wd) like PyTorch
    if decoupled and weight_decay != 0.0:
        param *= 1.0 - lr * weight_decay

    # m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
    m *= beta1
    m += xp.multiply(g, 1.0 - beta1, out=tmp)
    v *= beta2
    xp.multiply(g, 1.0 - beta2, out=tmp)
    tmp *= g
    v += tmp
    if max_exp_avg_sq is not None:
        v = xp.maximum(max_exp_avg_sq, v, out=max_exp_avg_sq)

    # p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    step_size = lr / (1.0 - beta1 ** t)
    xp.sqrt(v, out=tmp)
    tmp /= math.sqrt(1.0 - beta2 ** t)
    tmp += eps
    xp.divide(m, tmp, out=tmp)
    tmp *= step_size
    xp.subtract(param, tmp, out=param)
