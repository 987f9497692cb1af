"""The floor: per step only the matrix products that any implementation must do.

Forward ``Z_l = A_{l-1} . W_l`` per layer, then ``dW_l = A_{l-1}^T . delta_l`` per layer and
``delta_{l-1} = delta_l . W_l^T`` for every layer but the first, all with ``np.dot`` into
preallocated float32 buffers (``np.matmul`` is far slower for some of these shapes, e.g. the
batch-1 outer product (784x1).(1x256)). No activation, no loss, no update, no allocation:
nothing real trains this fast.
"""

from __future__ import annotations

import numpy as np

from ._base import Data, Workload

DESCRIPTION = ("only the matrix products: forward X.W per layer, dW = A^T.delta per layer, "
               "dA = delta.W^T for all but the first layer; np.dot into preallocated buffers")


def missing() -> str | None:
    return None


def versions() -> dict[str, str]:
    return {"numpy": np.__version__}


class MatmulFloor:
    def __init__(self, w: Workload, data: Data, lr: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        B = data.batch
        pairs = list(zip(w.sizes[:-1], w.sizes[1:]))
        self.W = [rng.standard_normal((a, b), dtype=np.float32) / np.float32(np.sqrt(a))
                  for a, b in pairs]
        self.Z = [np.empty((B, b), np.float32) for _, b in pairs]
        self.dW = [np.empty((a, b), np.float32) for a, b in pairs]
        # delta[l] is the gradient at layer l's output; the last one is a given seed
        self.delta = [np.empty((B, b), np.float32) for _, b in pairs]
        self.delta[-1][...] = rng.standard_normal((B, pairs[-1][1]), dtype=np.float32)
        self.batches = data.batches()
        self.n_params = int(sum(a * b + b for a, b in pairs))
        self.dtype = "float32"
        self.i = 0

    def train(self, steps: int) -> None:
        W, Z, dW, delta = self.W, self.Z, self.dW, self.delta
        dot = np.dot
        L = len(W)
        batches, i, n = self.batches, self.i, len(self.batches)
        for _ in range(steps):
            X = batches[i][0]
            i = (i + 1) % n
            dot(X, W[0], out=Z[0])
            for l in range(1, L):
                dot(Z[l - 1], W[l], out=Z[l])
            for l in range(L - 1, 0, -1):
                dot(Z[l - 1].T, delta[l], out=dW[l])
                dot(delta[l], W[l].T, out=delta[l - 1])
            dot(X.T, delta[0], out=dW[0])
        self.i = i

    def loss(self) -> float | None:
        return None


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> MatmulFloor:
    return MatmulFloor(w, data, lr, seed)
