"""Gradient averaging for data-parallel SGD.

Rank r computes, on its n_r rows of a global batch of B = sum_r n_r rows, the gradient of its
mean loss, g_r = (1/n_r) sum_{i in r} grad l_i. The global batch's gradient is

    g = (1/B) sum_i grad l_i = sum_r (n_r / B) g_r,

so each rank scales its gradient by n_r, the ranks sum the scaled gradients and their n_r in one
``Allreduce`` over a flat buffer, and every rank divides by the summed B: every rank then holds
the gradient one process would have computed for the whole batch, and the same update follows.
A rank whose share of a small last batch is empty contributes zeros.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..backend import to_numpy
from .group import allreduce_sum, broadcast


class GradientAverager:
    """Called once per step, after ``backward()`` and before the optimizer's step.

    Args:
        params: the parameters whose ``.grad`` is averaged (the optimizer's).
    """

    def __init__(self, params: Iterable[Any]) -> None:
        self.params = list(params)
        sizes = [int(np.prod(p.shape)) for p in self.params]
        self._offsets = np.cumsum([0, *sizes])
        dtype = np.result_type(*[p.dtype for p in self.params])
        self._buf = np.zeros(int(self._offsets[-1]) + 1, dtype=np.float64
                             if dtype == np.float64 else dtype)

    def __call__(self, n_local: int) -> int:
        """Average the gradients over the global batch; returns its size B."""
        buf = self._buf
        for p, lo, hi in zip(self.params, self._offsets[:-1], self._offsets[1:]):
            if p.grad is None or n_local == 0:
                buf[lo:hi] = 0
            else:
                np.multiply(to_numpy(p.grad).reshape(-1), n_local, out=buf[lo:hi])
        buf[-1] = n_local
        allreduce_sum(buf, step=True)
        total = int(buf[-1])
        np.divide(buf, total, out=buf)      # the summed count becomes 1; it is not read again
        for p, lo, hi in zip(self.params, self._offsets[:-1], self._offsets[1:]):
            # views of the buffer where the dtype agrees: no copy out (the next step's pack
            # overwrites the buffer after backward has replaced or accumulated into them)
            p.grad = buf[lo:hi].astype(p.dtype, copy=False).reshape(p.shape)
        return total


def broadcast_parameters(tensors: Iterable[Any], root: int = 0) -> None:
    """Make every rank's parameters (and buffers) equal to root's."""
    for t in tensors:
        arr = np.ascontiguousarray(to_numpy(t.data))
        broadcast(arr, root)
        t.data[...] = arr


def broadcast_optimizer_state(optimizer: Any, root: int = 0) -> None:
    """Make every rank's optimizer state (moments, step counts) equal to root's, parameter by
    parameter in the groups' order: after a resume every rank continues from root's state even
    if the checkpoint it read differed. Every rank must hold the same state names."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for name in sorted(state):
                value = state[name]
                if isinstance(value, np.ndarray):
                    arr = np.ascontiguousarray(value)
                    broadcast(arr, root)
                    value[...] = arr
                elif isinstance(value, (int, float, np.integer, np.floating)) and \
                        not isinstance(value, bool):
                    arr = np.array([value], dtype=np.float64)
                    broadcast(arr, root)
                    state[name] = type(value)(arr[0])
