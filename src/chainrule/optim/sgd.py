"""Stochastic gradient descent: the lecture's update, with PyTorch's momentum options."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..backend import get_xp
from ..errors import InvalidValueError
from .optimizer import Optimizer, check_bool, check_real, grad_with_decay


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

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient (see the class docstring)."""
        loss = self._evaluate(closure)
        for group in self.param_groups:
            lr = float(group["lr"])
            momentum = group["momentum"]
            dampening = group["dampening"]
            nesterov = group["nesterov"]
            decay, maximize = group["weight_decay"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = get_xp(p.data)
                d_p = grad_with_decay(p, decay, maximize) if decay or maximize else p.grad
                if momentum != 0.0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = xp.array(d_p, dtype=p.data.dtype,
                                                                  copy=True)
                    else:
                        buf *= momentum
                        if dampening == 0.0:
                            buf += d_p
                        else:
                            buf += (1.0 - dampening) * d_p
                    d_p = d_p + momentum * buf if nesterov else buf
                xp.subtract(p.data, lr * d_p, out=p.data)
                p.bump_version()
        return loss
