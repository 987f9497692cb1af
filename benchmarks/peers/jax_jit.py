"""JAX on the CPU: the whole step under ``jax.jit`` (optional: skipped when jax is absent).

The step is the usual functional one: ``value_and_grad`` of the mean softmax cross-entropy
(``optax``-free: log-softmax and the picked log-probabilities), then plain SGD on the parameter
pytree, all in one jitted function whose parameter buffers are donated (updated in place by
XLA). The batches are device arrays made once (``jnp.asarray``), as the other peers pre-wrap
theirs. JAX dispatches asynchronously: ``train`` waits for the last step's result before it
returns, so a chunk's time covers every step it ran.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ._base import Data, Workload

DESCRIPTION = ("jax.jit(step, donate_argnums=0): value_and_grad of the mean softmax "
               "cross-entropy of an MLP, then SGD on the parameter pytree; float32 on the CPU; "
               "batches pre-made by jnp.asarray; block_until_ready after each chunk")


def missing() -> str | None:
    if importlib.util.find_spec("jax") is None:
        return "jax is not installed (optional peer: pip install jax jaxlib)"
    return None


def versions() -> dict[str, str]:
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "numpy": np.__version__,
            "jax_backend": jax.default_backend()}


class JaxTrainer:
    def __init__(self, w: Workload, data: Data, lr: float, seed: int) -> None:
        import os

        if os.environ.get("OMP_NUM_THREADS") == "1":  # the harness's --threads 1: XLA too
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_"
                                       "thread_eigen=false intra_op_parallelism_threads=1")
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_platforms", "cpu")
        rng = np.random.default_rng(seed)
        params = []
        for a, b in zip(w.sizes[:-1], w.sizes[1:]):
            bound = 1.0 / np.sqrt(a)  # PyTorch's nn.Linear default, as the NumPy peer
            params.append((jnp.asarray(rng.uniform(-bound, bound, (a, b)).astype(np.float32)),
                           jnp.asarray(rng.uniform(-bound, bound, b).astype(np.float32))))
        act = jax.nn.relu if w.activation == "relu" else jnp.tanh
        n_layers = len(params)

        def loss_fn(params, x, y):
            h = x
            for k, (W, b) in enumerate(params):
                h = h @ W + b
                if k < n_layers - 1:
                    h = act(h)
            logp = jax.nn.log_softmax(h, axis=-1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

        def step(params, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
            return params, loss

        self.step = jax.jit(step, donate_argnums=0)
        self.params = params
        self.batches = [(jnp.asarray(X), jnp.asarray(y.astype(np.int32)))
                        for X, y in data.batches()]
        self.n_params = int(sum(W.size + b.size for W, b in params))
        self.dtype = ",".join(sorted({str(W.dtype) for W, _ in params}))
        self.i = 0
        self._loss = None

    def train(self, steps: int) -> None:
        step, batches = self.step, self.batches
        params, i, n = self.params, self.i, len(batches)
        loss = None
        for _ in range(steps):
            xb, yb = batches[i]
            i = (i + 1) % n
            params, loss = step(params, xb, yb)
        if loss is not None:
            loss.block_until_ready()
        self.params, self.i, self._loss = params, i, loss

    def loss(self) -> float | None:
        return None if self._loss is None else float(self._loss)


def make_trainer(w: Workload, data: Data, lr: float, seed: int) -> JaxTrainer:
    return JaxTrainer(w, data, lr, seed)
