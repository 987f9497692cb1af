"""A hand-written NumPy MLP classifier: the fastest scikit-learn-style fit this benchmark's
author could write in plain NumPy, as a yardstick for ``chainrule.sklearn.MLPClassifier``.

It trains what ``sklearn_digits`` trains -- one hidden ReLU layer, softmax cross-entropy, an L2
penalty alpha / (2 B) ||W||^2 per batch, Adam (PyTorch's update order, as chainrule's), batches
of ``batch_size`` in a shuffled order each epoch, scikit-learn's stopping rule (``tol``,
``n_iter_no_change``) -- with everything a hand-written loop can do that an engine does not:

- every intermediate goes into an array allocated once per batch size (``out=``), the batch is
  gathered with ``take(out=)``, and the gradients are written straight into one flat buffer;
- parameters, gradients and Adam's moments are flat arrays, so the update is 13 ufunc calls;
- nothing is validated, nothing is generic: 2 layers, ReLU, float32 or float64 as given.

Its time per epoch is what NumPy itself costs for this fit; chainrule's estimator runs the same
products and the same update, so the gap between the two is the library's own overhead, and
this row's speed-up over scikit-learn is the most any NumPy implementation is likely to reach.
Benchmark code only: nothing in ``chainrule`` imports it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


class HandwrittenMLPClassifier:
    """fit(X, y) / score(X, y) with scikit-learn's MLPClassifier defaults for one hidden layer
    (``hidden``, ReLU, Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8, alpha 1e-4, batch 200, up
    to 200 epochs, tol 1e-4, 10 epochs of patience). Weights are initialised as scikit-learn's
    (Glorot uniform, bound sqrt(6 / (fan_in + fan_out)), biases too) from ``random_state``."""

    def __init__(self, hidden: int = 100, alpha: float = 1e-4, lr: float = 1e-3,
                 batch_size: int = 200, max_iter: int = 200, tol: float = 1e-4,
                 n_iter_no_change: int = 10, random_state: int = 0,
                 dtype: Any = np.float32) -> None:
        self.hidden, self.alpha, self.lr = hidden, alpha, lr
        self.batch_size, self.max_iter, self.tol = batch_size, max_iter, tol
        self.n_iter_no_change, self.random_state = n_iter_no_change, random_state
        self.dtype = np.dtype(dtype)

    def set_params(self, **params: Any) -> HandwrittenMLPClassifier:
        for name, value in params.items():
            if not hasattr(self, name):
                raise ValueError(f"unknown parameter {name!r}")
            setattr(self, name, value)
        return self

    def fit(self, X: np.ndarray, y: np.ndarray) -> HandwrittenMLPClassifier:
        dt = self.dtype
        X = np.ascontiguousarray(X, dtype=dt)
        self.classes_, labels = np.unique(y, return_inverse=True)
        labels = labels.astype(np.int64)
        n, d = X.shape
        h, k = self.hidden, len(self.classes_)
        rng = np.random.RandomState(self.random_state)
        sizes = [(h, d), (k, h)]
        nw = h * d + k * h
        P = np.empty(nw + h + k, dt)  # W1 (h, d), W2 (k, h), b1, b2
        W1, W2 = P[:h * d].reshape(h, d), P[h * d:nw].reshape(k, h)
        b1, b2 = P[nw:nw + h], P[nw + h:]
        for W, b, (fan_out, fan_in) in ((W1, b1, sizes[0]), (W2, b2, sizes[1])):
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            W[...] = rng.uniform(-bound, bound, (fan_in, fan_out)).T
            b[...] = rng.uniform(-bound, bound, fan_out)
        G = np.empty_like(P)
        gW1, gW2 = G[:h * d].reshape(h, d), G[h * d:nw].reshape(k, h)
        gb1, gb2 = G[nw:nw + h], G[nw + h:]
        m, v, tmp = np.zeros_like(P), np.zeros_like(P), np.empty_like(P)
        decay_tmp = np.empty(nw, dt)
        ones_k = np.ones(k, dt)
        beta1, beta2, eps, lr, alpha = 0.9, 0.999, 1e-8, self.lr, self.alpha
        buffers: dict[int, tuple[np.ndarray, ...]] = {}

        def arrays(b: int) -> tuple[np.ndarray, ...]:
            a = buffers.get(b)
            if a is None:
                a = buffers[b] = (
                    np.empty((b, d), dt), np.empty(b, np.int64), np.arange(0, b * k, k),
                    np.empty(b, np.int64), np.empty((b, h), dt), np.empty((b, k), dt),
                    np.empty((b, k), dt, order="F"), np.empty((b, 1), dt), np.empty(b, dt),
                    np.empty(b, dt), np.empty(b, dt), np.empty((b, h), dt),
                    np.empty((b, h), bool), np.ones(b, dt))
            return a

        t = 0
        order = np.arange(n)
        bs = min(self.batch_size, n)
        bounds = [(s, min(s + bs, n)) for s in range(0, n, bs)]
        best, no_improvement = np.inf, 0
        self.loss_curve_ = []
        for epoch in range(self.max_iter):
            rng.shuffle(order)
            total = 0.0
            for start, stop in bounds:
                idx = order[start:stop]
                b = stop - start
                xb, lb, off, flat, a1, s2, s2f, mx, ssum, lrow, pick, d1, mask, ones = arrays(b)
                X.take(idx, axis=0, out=xb, mode="clip")
                labels.take(idx, out=lb, mode="clip")
                np.add(lb, off, out=flat)
                # forward
                np.dot(xb, W1.T, out=a1)
                a1 += b1
                np.maximum(a1, 0, out=a1)
                np.dot(a1, W2.T, out=s2)
                s2 += b2
                # softmax cross-entropy, its gradient (p - onehot(y)) / B in place of s2
                s2f[...] = s2
                np.maximum.reduce(s2f, axis=1, keepdims=True, out=mx)
                np.subtract(s2, mx, out=s2)
                s2.reshape(-1).take(flat, out=pick, mode="clip")
                np.exp(s2, out=s2)
                np.dot(s2, ones_k, out=ssum)
                np.log(ssum, out=lrow)
                lrow -= pick
                w = P[:nw]
                loss = float(np.add.reduce(lrow)) / b + 0.5 * alpha * float(w @ w) / b
                s2 /= ssum.reshape(-1, 1)
                scale = dt.type(1.0 / b)
                s2 *= scale
                s2.reshape(-1)[flat] -= scale
                # backward, into the flat gradient buffer
                np.dot(s2.T, a1, out=gW2)
                np.dot(ones, s2, out=gb2)
                np.dot(s2, W2, out=d1)
                np.greater(a1, 0, out=mask)
                d1 *= mask
                np.dot(d1.T, xb, out=gW1)
                np.dot(ones, d1, out=gb1)
                np.multiply(w, alpha / b, out=decay_tmp)
                G[:nw] += decay_tmp
                # Adam (PyTorch's order of operations)
                t += 1
                m *= beta1
                m += np.multiply(G, 1.0 - beta1, out=tmp)
                v *= beta2
                np.multiply(G, 1.0 - beta2, out=tmp)
                tmp *= G
                v += tmp
                np.sqrt(v, out=tmp)
                tmp /= math.sqrt(1.0 - beta2 ** t)
                tmp += eps
                np.divide(m, tmp, out=tmp)
                tmp *= lr / (1.0 - beta1 ** t)
                np.subtract(P, tmp, out=P)
                total += loss * b
            self.loss_ = total / n
            self.loss_curve_.append(self.loss_)
            self.n_iter_ = epoch + 1
            no_improvement = no_improvement + 1 if self.loss_ > best - self.tol else 0
            best = min(best, self.loss_)
            if no_improvement > self.n_iter_no_change:
                break
        self.coefs_ = [W1.T.copy(), W2.T.copy()]
        self.intercepts_ = [b1.copy(), b2.copy()]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        W1, W2 = self.coefs_
        b1, b2 = self.intercepts_
        a = np.maximum(np.asarray(X, dtype=self.dtype) @ W1 + b1, 0)
        return self.classes_[np.argmax(a @ W2 + b2, axis=1)]

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(X) == y))


__all__ = ["HandwrittenMLPClassifier"]
