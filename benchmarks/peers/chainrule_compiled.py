"""chainrule with the step under ``cr.compile``: the same public-API step as the ``chainrule``
peer, traced at its first call and replayed after (bit-identical parameters)."""

from __future__ import annotations

from ._base import Data, Workload
from .chainrule import ChainruleTrainer, missing, versions  # noqa: F401 - the peer contract

DESCRIPTION = ("the chainrule step (zero_grad; cross_entropy(model(xb), yb); backward; "
               "opt.step()) as one function under cr.compile: traced once, then replayed")


class CompiledTrainer(ChainruleTrainer):
    compiled = True


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> CompiledTrainer:
    return CompiledTrainer(w, data, lr, seed)
