"""chainrule, through the public API a user would write: nn.MLP, optim.SGD, cross_entropy."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from ._base import Data, Workload

DESCRIPTION = ("opt.zero_grad(); loss = F.cross_entropy(model(xb), yb); loss.backward(); "
               "opt.step() with cr.nn.MLP and cr.optim.SGD; batches pre-wrapped by cr.tensor")


def missing() -> str | None:
    return None if importlib.util.find_spec("chainrule") else "chainrule is not installed"


def versions() -> dict[str, str]:
    import chainrule as cr

    return {"chainrule": cr.__version__, "numpy": np.__version__}


class ChainruleTrainer:
    compiled = False  # the step under cr.compile (benchmarks.peers.chainrule_compiled)

    def __init__(self, w: Workload, data: Data, lr: float, seed: int) -> None:
        import chainrule as cr

        cr.manual_seed(seed)
        self.model = cr.nn.MLP(list(w.sizes), activation=w.activation)
        self.opt = cr.optim.SGD(self.model.parameters(), lr=lr)
        self.cross_entropy = cr.nn.functional.cross_entropy
        self.batches = [(cr.tensor(X), cr.tensor(y)) for X, y in data.batches()]
        params = list(self.model.parameters())
        self.n_params = int(sum(np.asarray(p.data).size for p in params))
        self.dtype = ",".join(sorted({str(p.data.dtype) for p in params}))
        self.i = 0
        self._loss: Any = None
        self.step = None
        if self.compiled:
            model, opt, ce = self.model, self.opt, self.cross_entropy

            def step(xb: Any, yb: Any) -> Any:
                opt.zero_grad()
                loss = ce(model(xb), yb)
                loss.backward()
                opt.step()
                return loss

            self.step = cr.compile(step, strict=True)

    def train(self, steps: int) -> None:
        if self.step is not None:
            step, batches = self.step, self.batches
            i, n = self.i, len(batches)
            loss = None
            for _ in range(steps):
                xb, yb = batches[i]
                i = (i + 1) % n
                loss = step(xb, yb)
            self.i = i
            self._loss = loss
            return
        model, opt, ce, batches = self.model, self.opt, self.cross_entropy, self.batches
        i, n = self.i, len(batches)
        loss = None
        for _ in range(steps):
            xb, yb = batches[i]
            i = (i + 1) % n
            opt.zero_grad()
            loss = ce(model(xb), yb)
            loss.backward()
            opt.step()
        self.i = i
        self._loss = loss

    def loss(self) -> float | None:
        return None if self._loss is None else float(np.asarray(self._loss.data))


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> ChainruleTrainer:
    return ChainruleTrainer(w, data, lr, seed)
