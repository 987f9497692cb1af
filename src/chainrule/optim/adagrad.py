"""Adagrad: per-coordinate step sizes from the sum of all past squared gradients."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..backend import get_xp
from .optimizer import Optimizer, check_bool, check_real, grad_with_decay


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

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One Adagrad update of every parameter that has a gradient (see the class docstring)."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            eps = group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = get_xp(p.data)
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {
                        "step": 0,
                        "sum": xp.full_like(p.data, group["initial_accumulator_value"]),
                    }
                g = grad_with_decay(p, group["weight_decay"], group["maximize"])
                state["step"] += 1
                clr = lr / (1.0 + (state["step"] - 1) * group["lr_decay"])
                tmp = xp.empty_like(p.data)

                # S <- S + g^2 ;  p <- p - clr * g / (sqrt(S) + eps)
                xp.multiply(g, g, out=tmp)
                state["sum"] += tmp
                xp.sqrt(state["sum"], out=tmp)
                tmp += eps
                xp.divide(g, tmp, out=tmp)
                tmp *= clr
                xp.subtract(p.data, tmp, out=p.data)
                p.bump_version()
        return loss
