"""The optimizer of the scikit-learn estimators, over the network's parameters gathered into
two flat buffers (weights, biases)."""

from __future__ import annotations

from typing import Any

import chainrule as cr
from chainrule.backend import get_xp
from chainrule.nn.module import flatten_parameters


def make_optimizer(est: Any, net: Any) -> tuple[FlatParams, Any]:
    """The flat parameters of ``net`` and a fresh optimizer of ``est.solver`` over them: group 0
    holds the weights (whose weight decay carries the L2 penalty), group 1 the biases."""
    flat = FlatParams(net)
    decay = est.alpha if est.solver == "adamw" else 0.0
    groups = [{"params": [flat.weights], "weight_decay": decay},
              {"params": [flat.biases], "weight_decay": 0.0}]
    lr = est.learning_rate_init
    optim = cr.optim
    if est.solver == "sgd":
        opt = optim.SGD(groups, lr=lr, momentum=est.momentum,
                        nesterov=bool(est.nesterovs_momentum and est.momentum > 0))
    elif est.solver == "adam":
        opt = optim.Adam(groups, lr=lr, betas=(est.beta_1, est.beta_2), eps=est.epsilon)
    elif est.solver == "adamw":
        opt = optim.AdamW(groups, lr=lr, betas=(est.beta_1, est.beta_2), eps=est.epsilon)
    elif est.solver == "rmsprop":
        opt = optim.RMSprop(groups, lr=lr, eps=est.epsilon)
    else:
        opt = optim.Adagrad(groups, lr=lr)
    return flat, opt


class FlatParams:
    """The weights and the biases of a network, each gathered into one contiguous buffer that
    the layers' parameters view, so the optimizer makes one update per group and step instead of
    one per layer (its per-parameter overhead is most of a small network's step).

    The layers stay ordinary: their parameters receive gradients from backward as usual, and
    :meth:`gather_grads` concatenates those into the flat parameters' ``grad``.
    """

    def __init__(self, net: Any) -> None:
        self.layer_weights = [layer.weight for layer in net.linears]
        self.layer_biases = [layer.bias for layer in net.linears]
        self.weights = _flatten(self.layer_weights)
        self.biases = _flatten(self.layer_biases)
        self._all = (*self.layer_weights, *self.layer_biases, self.weights, self.biases)
        self._groups = ((self.weights, tuple(self.layer_weights)),
                        (self.biases, tuple(self.layer_biases)))

    def release_grads(self) -> None:
        for p in self._all:
            p.grad = None

    def gather_grads(self) -> None:
        for flat, params in self._groups:
            xp = get_xp(flat.data)
            grads = []
            for p in params:
                g = p.grad
                grads.append(xp.zeros(p.data.size, dtype=p.dtype) if g is None
                             else g.reshape(-1))
            flat.grad = xp.concatenate(grads)


def _flatten(params: list[Any]) -> Any:
    """One Parameter holding ``params`` back to back; each of them becomes a view of it."""
    return cr.nn.Parameter(flatten_parameters(params))


__all__ = ["FlatParams", "make_optimizer"]
