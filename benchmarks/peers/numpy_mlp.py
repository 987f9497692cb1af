"""A hand-written NumPy MLP: what a careful person writes without an autodiff engine.

float32 throughout, weights stored (in, out) so the forward is ``np.dot(A, W)``, activations
in place, the fused softmax-cross-entropy gradient ``(p - onehot(y)) / B``, the mean loss
computed every step (as the other peers do), and in-place SGD.
"""

from __future__ import annotations

import numpy as np

from ._base import Data, Workload

DESCRIPTION = ("float32 forward/backward with np.dot, in-place activations, fused softmax-CE "
               "gradient p - y, loss computed, in-place SGD")


def missing() -> str | None:
    return None


def versions() -> dict[str, str]:
    return {"numpy": np.__version__}


class NumpyMLP:
    def __init__(self, w: Workload, data: Data, lr: float, seed: int) -> None:
        rng = np.random.default_rng(seed)
        # PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b
        self.W = [rng.uniform(-1, 1, (a, b)).astype(np.float32) / np.float32(np.sqrt(a))
                  for a, b in zip(w.sizes[:-1], w.sizes[1:])]
        self.b = [rng.uniform(-1, 1, b).astype(np.float32) / np.float32(np.sqrt(a))
                  for a, b in zip(w.sizes[:-1], w.sizes[1:])]
        self.tanh = w.activation == "tanh"
        self.lr = np.float32(lr)
        self.batches = data.batches()
        self.rows = np.arange(data.batch)
        self.n_params = int(sum(a.size for a in self.W + self.b))
        self.dtype = ",".join(sorted({str(a.dtype) for a in self.W + self.b}))
        self.i = 0
        self._loss: float | None = None

    def step(self, X: np.ndarray, y: np.ndarray) -> np.float32:
        W, b, lr, rows = self.W, self.b, self.lr, self.rows
        L = len(W)
        A = [X]
        for l in range(L):
            Z = np.dot(A[l], W[l])
            Z += b[l]
            if l < L - 1:
                if self.tanh:
                    np.tanh(Z, out=Z)
                else:
                    np.maximum(Z, 0, out=Z)
            A.append(Z)
        P = A[L]  # logits -> probabilities, in place
        P -= P.max(axis=1, keepdims=True)
        np.exp(P, out=P)
        P /= P.sum(axis=1, keepdims=True)
        loss = -np.log(P[rows, y]).mean()
        delta = P
        delta[rows, y] -= 1
        delta *= np.float32(1.0 / len(y))
        for l in range(L - 1, -1, -1):
            dW = np.dot(A[l].T, delta)
            db = delta.sum(axis=0)
            if l > 0:
                prev = np.dot(delta, W[l].T)  # before W[l] is updated
                if self.tanh:
                    a = A[l]
                    prev *= 1 - a * a
                else:
                    prev *= A[l] > 0
            dW *= lr
            W[l] -= dW
            db *= lr
            b[l] -= db
            if l > 0:
                delta = prev
        return loss

    def train(self, steps: int) -> None:
        batches, i, n = self.batches, self.i, len(self.batches)
        loss = None
        for _ in range(steps):
            X, y = batches[i]
            i = (i + 1) % n
            loss = self.step(X, y)
        self.i = i
        self._loss = None if loss is None else float(loss)

    def loss(self) -> float | None:
        return self._loss


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> NumpyMLP:
    return NumpyMLP(w, data, lr, seed)
