"""scikit-learn's MLPClassifier with plain SGD, timed through ``partial_fit`` over blocks.

One ``partial_fit(X_block, y_block)`` call with ``shuffle=False`` makes one pass over the block
in minibatches of ``batch_size``: a block of k contiguous batches is k SGD steps of batch b.
The trainer cycles over the same fixed batches as every other peer, in blocks of at most one
epoch (all the fixed batches, 56 to 2048 steps), so the per-call input validation is shared by
many steps. Throughput is then steps per second times the batch, as for every peer.
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np

from ._base import Data, Workload

DESCRIPTION = ("MLPClassifier(solver='sgd', learning_rate='constant', momentum=0, alpha=0, "
               "shuffle=False, batch_size=b).partial_fit over blocks of k fixed batches "
               "(= k SGD steps per call; float32 input and weights)")


def missing() -> str | None:
    if importlib.util.find_spec("sklearn") is None:
        return "scikit-learn is not installed"
    return None


def versions() -> dict[str, str]:
    import sklearn

    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__}


class SklearnTrainer:
    def __init__(self, w: Workload, data: Data, lr: float, seed: int) -> None:
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(
            hidden_layer_sizes=tuple(w.sizes[1:-1]), activation=w.activation, solver="sgd",
            learning_rate="constant", learning_rate_init=lr, momentum=0.0,
            nesterovs_momentum=False, alpha=0.0, batch_size=w.batch, shuffle=False,
            early_stopping=False, tol=0.0, n_iter_no_change=10**9, max_iter=1,
            random_state=seed,
        )
        self.X, self.y, self.b, self.nb = data.X, data.y, data.batch, data.n_batches
        self.classes = np.arange(data.n_classes)
        self.pos = 0
        self.n_params = sum(a * b + b for a, b in zip(w.sizes[:-1], w.sizes[1:]))
        self.dtype = "unfitted"

    def train(self, steps: int) -> None:
        done = 0
        b = self.b
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            while done < steps:
                k = min(steps - done, self.nb - self.pos)
                lo, hi = self.pos * b, (self.pos + k) * b
                self.clf.partial_fit(self.X[lo:hi], self.y[lo:hi], classes=self.classes)
                done += k
                self.pos = (self.pos + k) % self.nb
        coefs = self.clf.coefs_ + self.clf.intercepts_
        self.dtype = ",".join(sorted({str(c.dtype) for c in coefs}))
        self.n_params = int(sum(c.size for c in coefs))

    def loss(self) -> float | None:
        # loss_ is the mean over the last partial_fit block, not the last step alone
        return float(self.clf.loss_) if hasattr(self.clf, "loss_") else None


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> SklearnTrainer:
    return SklearnTrainer(w, data, lr, seed)
