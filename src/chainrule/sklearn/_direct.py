"""The estimators' training step without the graph, for the common case.

A training step of ``MLPClassifier`` with the default ``log_loss`` on more than two classes
records two graph nodes, the fused network ``mlp`` and the fused ``cross_entropy``, and
backward walks them in reverse; so does a step with any other loss of the estimators, each one
fused node too (``squared_error`` for the regressor and the lecture's signed square loss,
``bce_with_logits`` for binary and multilabel ``log_loss``, ``hinge``, ``poisson_nll``). When
nothing else can be in the graph -- a network that the ``mlp`` node covers (no dropout, no
checkpointing), on the CPU -- the step may as well call the two primitives itself:

    s = mlp.forward(x; W_1, b_1, ..., W_L, b_L)          (the decision values, (B, K))
    e = cross_entropy.forward(s, y, c)                  (the weighted mean loss, a scalar)
    ds = cross_entropy.vjp(1)                           (c_i (softmax(s_i) - onehot(y_i)) / sum c)
    dW_1, db_1, ..., dW_L, db_L = mlp.vjp(ds)           (the lecture's delta recursion)

(for the other losses, e = node.forward(s, t, c, a_K / sum c): for a square loss
ds = 2 a_K c_i (s_i - t_i) / sum c, for the sigmoid cross-entropy c_i (sigmoid(s_i) - t_i) /
sum c).

These are the functions the graph would run, on the same arrays, in the same order, seeded with
the same 1 that ``backward`` seeds a scalar with, so the fit is bit-identical to the graph's
(``tests/test_sklearn_direct.py`` compares the two). What goes is the engine's bookkeeping of
each step: the Tensors, the nodes and their version counters, the backward traversal, and the
layers' ``.grad`` (the gradients are copied straight into the optimizer's flat buffer). The step
is built once per fit on the parameter arrays of that moment; nothing rebinds them during it.

On the digits benchmark (64-100-10, batches of 200, Adam, one BLAS thread) this cut a step
from about 2.24 to 2.08 million instructions (callgrind), and the float32 fit went from 2.41x to
2.80x the speed of scikit-learn's default (float64) fit (``benchmarks/sklearn_digits.py``).

Everything else (dropout, ``checkpoint_segments``, a GPU, a frozen layer) takes the graph.

With ``compile=True`` (the estimators' default) an unweighted fit replays its step with
``cr.compile`` instead (``BaseMLP._compiled_step``: the same numbers again, without this module's
per-step allocations); this step remains for fits with sample or class weights (whose loss
factor a_K / sum_i w_i changes from batch to batch, which a plan would bake in) and for
``compile=False``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.ops.loss import CrossEntropy
from chainrule.ops.mlp import MLP as FusedMLP


class _Context:
    """What a primitive's forward and VJP read and write on the graph's node: which inputs want
    a gradient (``needs``), what the forward saved for the VJP (``saved``), and whether the VJP
    is the last use of it (``final``: it may then free each saved array once used)."""

    __slots__ = ("final", "needs", "saved")

    def __init__(self, needs: tuple[bool, ...]) -> None:
        self.needs = needs
        self.saved: Any = None
        self.final = True


class DirectStep:
    """``step(x, target, weight) -> (loss, grads)`` for the network ``net`` (an ``nn.MLP`` whose
    fused plan is ``plan``) and the loss of ``head``: ``x`` of shape (B, d_0) in the parameters'
    dtype; ``target`` as the head encodes it (int64 labels (B,) for softmax cross-entropy, the
    targets (B, K) in that dtype for the other losses); ``weight`` None or the rows' float64
    weights (B,). Returns the loss as a 0-d array and the gradients of ``params`` (W_1, b_1,
    ..., W_L, b_L): this step's own arrays, which the caller copies where the optimizer reads
    them."""

    def __init__(self, net: Any, plan: Any, head: Any) -> None:
        from ._heads import SoftmaxCrossEntropy

        self.cross_entropy = type(head) is SoftmaxCrossEntropy
        # otherwise a ScaledLoss head: its node's primitive and factor (n, k, weight) -> float
        self.loss = None if self.cross_entropy else head.primitive
        self.scale = None if self.cross_entropy else head.scale
        linears, self.acts = plan[0], plan[1]
        self.has_bias = bool(net.bias)
        params = []
        for m in linears:
            params.append(m.weight)
            if self.has_bias:
                params.append(m.bias)
        self.params = tuple(params)
        self.datas = tuple(p.data for p in params)
        self.needs = (False,) + (True,) * len(params)

    def __call__(self, x: np.ndarray, target: np.ndarray,
                 weight: np.ndarray | None) -> tuple[Any, tuple[Any, ...]]:
        net_ctx = _Context(self.needs)
        s = FusedMLP.forward(net_ctx, x, *self.datas, self.acts, self.has_bias)
        coef = None if weight is None else weight.astype(s.dtype)  # (as the head casts it)
        if self.cross_entropy:
            prim, loss_ctx = CrossEntropy, _Context((True,))
            loss = prim.forward(loss_ctx, s, target, coef, "mean")
        else:
            prim, loss_ctx = self.loss, _Context((True, False))  # (the targets: a constant)
            n, k = s.shape
            loss = prim.forward(loss_ctx, s, target, coef, self.scale(n, k, weight))
        seed = np.empty((), dtype=loss.dtype)
        seed.fill(1)  # backward's seed for a scalar
        ds = prim.vjp(loss_ctx, seed)[0]
        grads = FusedMLP.vjp(net_ctx, ds)
        return loss, grads[1:]


def direct_step(net: Any, head: Any, device: str, checkpoint_segments: Any,
                dtype: Any) -> DirectStep | None:
    """The graph-free step for this fit, or None where the fit must take the graph: a loss
    that is not one fused node (every head's is: softmax cross-entropy, or a ``ScaledLoss``),
    checkpointing, a device other than the CPU, a network the fused ``mlp`` node does not
    cover, active dropout, or a frozen parameter (``requires_grad`` False, which the user may
    set on ``network_`` between warm fits)."""
    from ._heads import ScaledLoss, SoftmaxCrossEntropy

    if (not (type(head) is SoftmaxCrossEntropy or isinstance(head, ScaledLoss))
            or device != "cpu" or checkpoint_segments is not None):
        return None
    plan = net._fused_plan()
    if plan is None or any(m.p > 0 for m in plan[2]):
        return None
    for p in net.parameters():
        if type(p.data) is not np.ndarray or p.data.dtype != dtype or not p.requires_grad:
            return None  # (a frozen layer: the graph gives it no gradient, zeros in the buffer)
    return DirectStep(net, plan, head)


__all__ = ["DirectStep", "direct_step"]
