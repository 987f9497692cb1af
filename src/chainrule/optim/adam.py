"""Adam and AdamW, each written out in full: they differ only in where weight decay enters."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from ..backend import get_xp
from .optimizer import Optimizer, check_betas, check_bool, check_real, grad_with_decay


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

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adam update of every parameter that has a gradient (see the class docstring)."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = group["betas"]
            eps = group["eps"]
            amsgrad = group["amsgrad"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = get_xp(p.data)
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {"step": 0, "exp_avg": xp.zeros_like(p.data),
                                             "exp_avg_sq": xp.zeros_like(p.data)}
                    if amsgrad:
                        state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                g = grad_with_decay(p, group["weight_decay"], group["maximize"])
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                tmp = xp.empty_like(p.data)

                # m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
                m *= beta1
                m += xp.multiply(g, 1.0 - beta1, out=tmp)
                v *= beta2
                xp.multiply(g, 1.0 - beta2, out=tmp)
                tmp *= g
                v += tmp
                if amsgrad:
                    v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])

                # p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
                step_size = lr / (1.0 - beta1 ** t)
                xp.sqrt(v, out=tmp)
                tmp /= math.sqrt(1.0 - beta2 ** t)
                tmp += eps
                xp.divide(m, tmp, out=tmp)
                tmp *= step_size
                xp.subtract(p.data, tmp, out=p.data)
                p.bump_version()
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

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One AdamW update of every parameter that has a gradient (see the class docstring)."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            beta1, beta2 = group["betas"]
            eps = group["eps"]
            weight_decay = group["weight_decay"]
            amsgrad = group["amsgrad"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = get_xp(p.data)
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {"step": 0, "exp_avg": xp.zeros_like(p.data),
                                             "exp_avg_sq": xp.zeros_like(p.data)}
                    if amsgrad:
                        state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                g = grad_with_decay(p, 0.0, group["maximize"])
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                tmp = xp.empty_like(p.data)

                # p <- p - lr * wd * p, written as p *= (1 - lr wd) like PyTorch
                if weight_decay != 0.0:
                    p.data *= 1.0 - lr * weight_decay

                # m <- beta1 m + (1 - beta1) g ;  v <- beta2 v + (1 - beta2) g^2
                m *= beta1
                m += xp.multiply(g, 1.0 - beta1, out=tmp)
                v *= beta2
                xp.multiply(g, 1.0 - beta2, out=tmp)
                tmp *= g
                v += tmp
                if amsgrad:
                    v = xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])

                # p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
                step_size = lr / (1.0 - beta1 ** t)
                xp.sqrt(v, out=tmp)
                tmp /= math.sqrt(1.0 - beta2 ** t)
                tmp += eps
                xp.divide(m, tmp, out=tmp)
                tmp *= step_size
                xp.subtract(p.data, tmp, out=p.data)
                p.bump_version()
        return loss
