"""The optimizer of the scikit-learn estimators, over the network's parameters gathered into
one flat buffer (weights first, then biases)."""

from __future__ import annotations

from typing import Any

import chainrule as cr
from chainrule.backend import get_xp
from chainrule.compile import traceable
from chainrule.nn.module import flatten_parameters


def make_optimizer(est: Any, net: Any) -> tuple[FlatParams, Any]:
    """The flat parameters of ``net`` and a fresh optimizer of ``est.solver`` over them.

    One parameter group holds everything, so a step is one update of one array. The L2 penalty's
    gradient (alpha / sum_i w_i) W is added to the weights' part of the gathered gradient by
    :meth:`FlatParams.gather_grads`, exactly as a ``weight_decay`` restricted to the weights would
    add it (``decay * W + g``), so no second group is needed for the biases. AdamW's decay is
    decoupled from the gradient, so ``adamw`` keeps two groups: the weights (decay alpha) and
    the biases (no decay)."""
    flat = FlatParams(net)
    if est.solver == "adamw":
        groups: list[dict[str, Any]] = [
            {"params": [flat.weights], "weight_decay": est.alpha},
            {"params": [flat.biases], "weight_decay": 0.0}]
    else:
        groups = [{"params": [flat.all], "weight_decay": 0.0}]
    lr = est.learning_rate_init
    optim = cr.optim
    if est.solver == "sgd":
        opt = optim.SGD(groups, lr=lr, momentum=est.momentum,
                        nesterov=bool(est.nesterovs_momentum and est.momentum > 0))
    elif est.solver == "adam":
        opt = optim.Adam(groups, lr=lr, betas=(est.beta_1, est.beta_2), eps=est.epsilon)
    elif est.solver == "adamw":
        opt = optim.AdamW(groups, lr=lr, betas=(est.beta_1, est.beta_2), eps=est.epsilon)
    elif est.solver == "rmsprop":
        opt = optim.RMSprop(groups, lr=lr, eps=est.epsilon)
    else:
        opt = optim.Adagrad(groups, lr=lr)
    return flat, opt


class FlatParams:
    """The weights and the biases of a network gathered into one contiguous buffer, of shape
    (n,) with n the number of parameters: ``W_1 .. W_L`` then ``b_1 .. b_L``; the layers'
    parameters become views of it. The optimizer then makes one update per step instead of one
    per layer (its per-parameter overhead is most of a small network's step).

    The layers stay ordinary: their parameters receive gradients from backward as usual, and
    :meth:`gather_grads` copies those into one gradient buffer, of shape (n,), allocated once.

    Attributes:
        all: the Parameter over the whole buffer (the optimizer's, except for ``adamw``).
        weights, biases: Parameters over its first ``n_weights`` and its remaining entries.
        n_weights: sum_l of the size of W_l.
    """

    def __init__(self, net: Any) -> None:
        self.layer_weights = [layer.weight for layer in net.linears]
        self.layer_biases = [layer.bias for layer in net.linears]
        self._layer_params = (*self.layer_weights, *self.layer_biases)
        base = flatten_parameters(self._layer_params)
        self._datas = tuple(p.data for p in self._layer_params)  # the views of ``base``
        self.n_weights = nw = sum(int(w.data.size) for w in self.layer_weights)
        self.all = cr.nn.Parameter(base)
        self.weights = cr.nn.Parameter(base[:nw])
        self.biases = cr.nn.Parameter(base[nw:])
        self._all = (*self._layer_params, self.all, self.weights, self.biases)
        self._grad: Any = None  # the gradient buffer, made at the first gather
        self._grad_views: tuple[Any, ...] = ()
        self._scratch: Any = None  # decay * W, shape (n_weights,)

    def views(self, net: Any) -> bool:
        """Whether ``net``'s layers still hold this buffer's parameters: the same Parameter
        objects, their ``data`` still views of the buffer. Not so once the user replaced
        ``network_``, or moved it (``to()`` rebinds every ``data``); the optimizer over this
        buffer would then update arrays that the network no longer uses."""
        layers = net.linears
        if len(layers) != len(self.layer_weights):
            return False
        for layer, w, b in zip(layers, self.layer_weights, self.layer_biases):
            if layer.weight is not w or layer.bias is not b:
                return False
        # the same arrays as when they were made views of the buffer (identity: any backend)
        return all(p.data is d for p, d in zip(self._layer_params, self._datas))

    def release_grads(self) -> None:
        for p in self._all:
            p.grad = None

    def flush_subnormals(self, optimizer: Any) -> None:
        """Set to zero every parameter and every optimizer-state entry (of the parameters'
        dtype) whose magnitude is below the smallest normal number of that dtype (about 1.2e-38
        in float32): what the CPU's flush-to-zero mode does to every result (TensorFlow runs its
        CPU threads in it, ``ScopedFlushDenormal``; PyTorch offers
        ``torch.set_flush_denormal(True)``), which NumPy cannot switch on.

        Why: with an L2 penalty, Adam drives the weights of an input that is always zero (the
        border pixels of digits) towards 0 geometrically, until their gradient underflows and
        they stay subnormal for good. Arithmetic on subnormal numbers takes a slow path on x86
        (a microcode assist, ~100 cycles), and a matrix product with a few hundred subnormal
        weights runs several times slower: a float32 digits fit (64-100-10, Adam, alpha 1e-4,
        tol 0) went from 1.6 ms per epoch at epoch 100 to 4.0 ms at epoch 400, with 507
        subnormal weights at epoch 600. Flushed once per epoch (a few passes over the parameters
        and the state), the same fit ran at 2.1-2.3 ms per epoch from epoch 200 to 400 and had
        no subnormal weight left: within an epoch the penalty's gradient of the tiny weights and
        Adam's first moment still underflow (315 subnormal entries of the moment at the end of
        epoch 250), which only a per-step flush or the CPU's flush-to-zero mode would avoid.
        The values flushed are below 1.2e-38 (2.2e-308 in float64, which a fit practically
        never reaches): their contribution to any output is nil."""
        base = self.all.data
        xp = get_xp(base)
        tiny = xp.finfo(base.dtype).tiny
        arrays = [base]
        for state in optimizer.state.values():
            for value in state.values():
                if getattr(value, "dtype", None) == base.dtype and getattr(value, "ndim", 0):
                    arrays.append(value)
        for a in arrays:
            xp.putmask(a, xp.abs(a) < tiny, 0)

    def grad_views(self, params: tuple[Any, ...]) -> tuple[Any, ...]:
        """The views of the gradient buffer that hold the gradients of ``params`` (layer
        parameters, in any order)."""
        self._ensure_buffer()
        where = {id(p): v for p, v in zip(self._layer_params, self._grad_views)}
        return tuple(where[id(p)] for p in params)

    def _ensure_buffer(self) -> None:
        base = self.all.data
        buf = self._grad
        if buf is None or get_xp(buf) is not get_xp(base) or buf.dtype != base.dtype:
            buf = self._grad = get_xp(base).empty_like(base)
            start, views = 0, []
            for p in self._layer_params:
                size = int(p.data.size)
                views.append(buf[start:start + size].reshape(p.data.shape))
                start += size
            self._grad_views = tuple(views)
            self._scratch = None

    @traceable  # (a compiled step replays it: it reads the layers' .grad, writes the buffer)
    def gather_grads(self, decay: Any = 0.0, grads: tuple[Any, ...] | None = None,
                     views: tuple[Any, ...] | None = None) -> tuple[Any, Any, Any]:
        """Copy the layers' gradients into the gradient buffer (zeros where a layer has none);
        with ``decay`` > 0, add ``decay * W`` to the weights' part (``decay``: a Python float,
        or a 0-d array of the parameters' dtype, which rounds it the same way); then hand the
        buffer (or its two parts) to the flat parameters as their ``grad``, and return those
        three gradients. With ``grads`` and ``views`` (from
        :meth:`grad_views`), those arrays are copied instead of the layers' ``.grad`` (the
        graph-free step of ``_direct``)."""
        self._ensure_buffer()
        buf = self._grad
        if grads is None:
            views = self._grad_views
            grads = tuple(p.grad for p in self._layer_params)
        for view, g in zip(views, grads):
            if g is None:
                view.fill(0)
            else:
                view[...] = g
        nw = self.n_weights
        if decay:
            base = self.all.data
            scratch = self._scratch
            if scratch is None:
                scratch = self._scratch = get_xp(base).empty_like(base[:nw])
            get_xp(base).multiply(base[:nw], decay, out=scratch)
            buf[:nw] += scratch  # g + decay * W, as weight_decay computes it
        self.all.grad = buf
        self.weights.grad = buf[:nw]
        self.biases.grad = buf[nw:]
        return self.all.grad, self.weights.grad, self.biases.grad  # (what a trace follows)


__all__ = ["FlatParams", "make_optimizer"]
