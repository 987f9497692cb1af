"""What every peer shares: the workloads, their data, and the trainer contract."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Workload:
    """One benchmark row: an MLP, an activation, a batch size and the data it trains on.

    ``sizes`` counts units per layer, input first: (784, 256, 128, 10) is two hidden layers.
    ``data`` is "synthetic" (uniform [0, 1) features, uniform labels, like MNIST's shapes) or
    "digits" (scikit-learn's 8x8 digits, features scaled to [0, 1]).
    """

    name: str
    sizes: tuple[int, ...]
    activation: str
    batch: int
    data: str

    @property
    def label(self) -> str:
        return f"{'-'.join(map(str, self.sizes))} {self.activation}, batch {self.batch}"


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("mnist-b1", (784, 256, 128, 10), "relu", 1, "synthetic"),
        Workload("mnist-b16", (784, 256, 128, 10), "relu", 16, "synthetic"),
        Workload("mnist-b128", (784, 256, 128, 10), "relu", 128, "synthetic"),
        Workload("mnist-b1024", (784, 256, 128, 10), "relu", 1024, "synthetic"),
        Workload("digits-b32", (64, 64, 10), "tanh", 32, "digits"),
    )
}

# Distinct batches per synthetic workload: at least 8 and at least 2048 samples, so batch-1
# rows do not train on one cached sample, and the largest row stays at 8 x 3.2 MB.
MIN_BATCHES = 8
MIN_SAMPLES = 2048


@dataclass
class Data:
    """The fixed batches a workload cycles over: ``X`` (n, features) float32 and ``y`` (n,)
    int64 labels, with n = ``n_batches * batch``; batch ``i`` is rows ``i*batch:(i+1)*batch``."""

    X: np.ndarray
    y: np.ndarray
    n_batches: int
    batch: int
    n_classes: int

    def batches(self) -> list[tuple[np.ndarray, np.ndarray]]:
        b = self.batch
        return [(self.X[i * b:(i + 1) * b], self.y[i * b:(i + 1) * b])
                for i in range(self.n_batches)]


def make_data(w: Workload, seed: int = 0) -> Data:
    """The batches of workload ``w``; the same arrays (same seed) for every peer."""
    rng = np.random.default_rng(seed)
    n_classes = w.sizes[-1]
    if w.data == "synthetic":
        n_batches = max(MIN_BATCHES, math.ceil(MIN_SAMPLES / w.batch))
        n = n_batches * w.batch
        X = rng.random((n, w.sizes[0]), dtype=np.float32)
        y = rng.integers(0, n_classes, size=n, dtype=np.int64)
    elif w.data == "digits":
        X_all, y_all = load_digits()
        order = rng.permutation(len(X_all))
        n_batches = len(X_all) // w.batch  # 1797 // 32 = 56 full batches, one epoch
        n = n_batches * w.batch
        X = np.ascontiguousarray(X_all[order[:n]] / 16.0, dtype=np.float32)
        y = y_all[order[:n]].astype(np.int64)
    else:
        raise ValueError(f"unknown data {w.data!r}")
    return Data(X=X, y=y, n_batches=n_batches, batch=w.batch, n_classes=n_classes)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (1797 x 64, values 0..16, labels 0..9), read from the CSV file
    that scikit-learn ships, so that workers of other peers do not import scikit-learn (and
    load its OpenMP runtime and a second OpenBLAS) just for the data."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the digits workload needs scikit-learn's data (pip install "
                           "scikit-learn)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.exists():
        from sklearn.datasets import load_digits as sk_load_digits

        return sk_load_digits(return_X_y=True)
    table = np.loadtxt(path, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


class Trainer(Protocol):
    n_params: int
    dtype: str

    def train(self, steps: int) -> None: ...

    def loss(self) -> float | None: ...
