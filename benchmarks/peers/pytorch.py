"""PyTorch on the CPU (optional: skipped when torch is not installed; never a requirement)."""

from __future__ import annotations

import importlib.util

import numpy as np

from ._base import Data, Workload

DESCRIPTION = ("opt.zero_grad(); loss = F.cross_entropy(model(xb), yb); loss.backward(); "
               "opt.step() with nn.Sequential(Linear, ReLU/Tanh, ...) and torch.optim.SGD; "
               "batches pre-wrapped by torch.from_numpy; default threads")


def missing() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (optional peer: pip install torch)"
    return None


def versions() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__, "numpy": np.__version__,
            "torch_threads": str(torch.get_num_threads()),
            "torch_mkl": str(torch.backends.mkl.is_available()),
            "torch_mkldnn": str(torch.backends.mkldnn.is_available())}


class TorchTrainer:
    def __init__(self, w: Workload, data: Data, lr: float, seed: int) -> None:
        import torch

        torch.manual_seed(seed)
        act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[w.activation]
        layers: list[torch.nn.Module] = []
        for k, (n_in, n_out) in enumerate(zip(w.sizes[:-1], w.sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out))
            if k < len(w.sizes) - 2:
                layers.append(act())
        self.model = torch.nn.Sequential(*layers)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.cross_entropy = torch.nn.functional.cross_entropy
        self.batches = [(torch.from_numpy(X), torch.from_numpy(y)) for X, y in data.batches()]
        params = list(self.model.parameters())
        self.n_params = int(sum(p.numel() for p in params))
        self.dtype = ",".join(sorted({str(p.dtype).replace("torch.", "") for p in params}))
        self.i = 0
        self._loss = None

    def train(self, steps: int) -> None:
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
        return None if self._loss is None else float(self._loss.item())


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> TorchTrainer:
    return TorchTrainer(w, data, lr, seed)
