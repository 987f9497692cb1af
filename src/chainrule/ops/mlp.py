"""The fused multilayer perceptron: a whole stack of affine layers and activations as one node.

``mlp(x, weights, biases, activations)`` computes the lecture's forward propagation

    x^(0) = x,   s^(l) = x^(l-1) W^(l)T + b^(l),   x^(l) = theta_l(s^(l)),   l = 1..L,

and records ONE graph node whose VJP is the lecture's backpropagation (the delta recursion)

    delta^(L) = g * theta_L'(s^(L)),
    dW^(l) = delta^(l)T x^(l-1),   db^(l) = sum over the batch of delta^(l),
    delta^(l-1) = (delta^(l) W^(l)) * theta_{l-1}'(s^(l-1)),   dx = delta^(1) W^(1).

It gives the same numbers as the chain of ``linear`` and activation nodes, operation for operation
(the products use the same BLAS entry points, the derivatives the same formulas), so the two
agree bit for bit; what it saves is the Python work of 2L nodes: L - 1 fewer ``apply`` and
backward visits, no intermediate Tensors, and activations computed in place on the fresh output of
each product. On the 64-64-10 tanh MLP at batch 32 (digits) the forward and backward of the
network went from ~45 to ~20 us (see ``benchmarks/results/mlp.md`` for whole training steps).

Only activations whose derivative is a function of their output are fused (the output is what the
next layer saves anyway, so the node keeps the arrays the unfused chain keeps, except the leaky
ReLU's boolean mask, which it does not need):

    "identity": theta' = 1;  "relu": theta' = [y > 0];  "tanh": theta' = 1 - y^2;
    "sigmoid": theta' = y (1 - y);
    ("leaky_relu", a) with a >= 0: theta' = 1 where y > 0, else a.

For the leaky ReLU y = s if s > 0 else a s. With a >= 0, y > 0 exactly where s > 0 (where
s <= 0 or s is NaN, a s is <= 0, NaN, or -0.0), so [y > 0] is the mask [s > 0] that the unfused
``leaky_relu`` keeps. A negative slope flips the sign, so it is not fused.

:class:`chainrule.nn.MLP` uses this node when its layers allow it (see ``MLP.forward``).
"""

from __future__ import annotations

from typing import Any

from ..autograd import apply
from ..backend import get_xp
from ..errors import InvalidValueError, ShapeError
from ..tensor import Tensor, as_tensor
from .nn import _transpose_product
from .reduce import sum_2d
from .registry import primitive

FUSED_ACTIVATIONS = ("identity", "relu", "tanh", "sigmoid", "leaky_relu")
LEAKY_RELU_SLOPE = 0.01  # the slope of a bare "leaky_relu" (nn.LeakyReLU's default)


def fused_activation(act: Any) -> Any:
    """One activation as the node takes it: a name from ``FUSED_ACTIVATIONS``, or the leaky
    ReLU as ``("leaky_relu", a)`` (a bare "leaky_relu" has a = 0.01), a a number >= 0.
    Raises InvalidValueError for anything else."""
    if isinstance(act, str) and act in FUSED_ACTIVATIONS:
        return ("leaky_relu", LEAKY_RELU_SLOPE) if act == "leaky_relu" else act
    if (isinstance(act, tuple) and len(act) == 2 and act[0] == "leaky_relu"
            and isinstance(act[1], (int, float)) and not isinstance(act[1], bool)
            and act[1] >= 0):  # (NaN fails the comparison)
        return act
    raise InvalidValueError(f"mlp: unknown activation {act!r}; expected one of "
                            f"{', '.join(FUSED_ACTIVATIONS)}, or ('leaky_relu', slope) with a "
                            "slope >= 0")


def _activate(xp: Any, s: Any, act: str) -> Any:
    """theta(s), in place on ``s`` (a fresh array of this forward) where the unfused primitive's
    formula allows it; the same arithmetic as ``Relu``/``Tanh``/``Sigmoid.forward``."""
    if act == "relu":
        return xp.maximum(s, 0, out=s)
    if act == "tanh":
        return xp.tanh(s, out=s)
    if type(act) is tuple:  # ("leaky_relu", a): LeakyRelu.forward's where(s > 0, s, s a)
        return xp.where(s > 0, s, s * act[1])
    if act == "sigmoid":
        e = xp.exp(-xp.abs(s))
        out = xp.where(s >= 0, 1.0, e)
        e += 1
        out /= e
        return out
    return s


def _times_derivative(xp: Any, delta: Any, y: Any, act: str, owned: bool = False) -> Any:
    """delta * theta'(s) from the activation's output y, with the arithmetic of the unfused
    VJPs (``Relu``/``Tanh``/``Sigmoid.vjp``), so both paths round identically. Writes into
    ``delta`` only when ``owned`` (a fresh array of this VJP's, not the caller's gradient).

    For ReLU an owned delta is multiplied in place by the boolean mask [y > 0] (a quarter of
    delta's bytes for float32) instead of filling a new float array with the mask first: the
    product is the same (x * 1 and x * 0 do not depend on the order of the operands, for inf
    and NaN too), and one array of delta's size is neither allocated nor written: 1.5 MB a
    step at batch 1024 of the 784-256-128-10 network (147k against 143k samples/s there, two
    separate runs of ``benchmarks.mlp``: within the noise, but not slower)."""
    if act == "relu":
        if owned:
            delta *= xp.greater(y, 0)
            return delta
        d = xp.greater(y, 0, out=xp.empty_like(delta))
        d *= delta
        return d
    if act == "tanh":
        d = xp.square(y, out=xp.empty_like(delta))
        xp.subtract(1, d, out=d)
        d *= delta
        return d
    if act == "sigmoid":
        return delta * y * (1 - y)
    if type(act) is tuple:  # ("leaky_relu", a): LeakyRelu.vjp's where(mask, g, g a)
        return xp.where(xp.greater(y, 0), delta, delta * act[1])
    return delta


_REACH: dict[tuple[Any, ...], tuple[tuple[bool, ...], tuple[bool, ...]]] = {}


def _reach(needs: tuple[bool, ...], layers: int, step: int
           ) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Per layer, whether a gradient is wanted below it (``wanted_below``: then the delta
    passes through W_l) and whether a delta reaches it (``reached``: a gradient is wanted at
    or below it, its own parameters' or something's below). Layers above everything wanted
    keep nothing, as the unfused chain records nothing for them. ``needs`` is the node's
    (input, W_1, [b_1,] ...); computed once per pattern (a training loop has one)."""
    key = (needs, layers, step)
    found = _REACH.get(key)
    if found is None:
        wanted_below: list[bool] = []
        reached: list[bool] = []
        below = needs[0]
        for l in range(layers):
            wanted_below.append(below)
            below = below or any(needs[1 + l * step:1 + (l + 1) * step])
            reached.append(below)
        found = (tuple(wanted_below), tuple(reached))
        if len(_REACH) >= 256:
            _REACH.clear()
        _REACH[key] = found
    return found


@primitive("mlp", kind="other",
           saves="each layer's input x^(l-1) (for dW) and each weight (for delta), as the chain "
                 "of linear and activation nodes does; the activations' outputs are those inputs")
class MLP:
    """h = theta_L(... theta_1(x W_1^T + b_1) ...) W_L^T + b_L ...) for x (..., d0), W_l (d_l,
    d_{l-1}), b_l (d_l,); the VJP is the delta recursion (see the module docstring).

    Inputs: x, W_1, [b_1,] W_2, [b_2,] ... ; params: the activations (one name per layer) and
    whether the layers have biases."""

    def forward(ctx, x, *rest):
        acts, has_bias = rest[-2], rest[-1]
        params = rest[:-2]
        xp = get_xp(x)
        step = 2 if has_bias else 1
        x_shape = x.shape
        a = x if x.ndim == 2 else x.reshape(-1, x_shape[-1])
        n = a.shape[0]
        saved_inputs = []  # x^(l-1) per layer, or None where dW^(l) is not wanted
        outputs = []  # x^(l) per layer, kept where theta_l' is needed
        if ctx is not None:
            needs = ctx.needs
            wanted_below, reached = _reach(needs, len(acts), step)
        for l, act in enumerate(acts):
            w = params[l * step]
            s = w.dot(a.T).T if _transpose_product(n, w.size) else a.dot(w.T)
            if has_bias:
                s += params[l * step + 1]
            s = _activate(xp, s, act)
            if ctx is not None:
                saved_inputs.append(a if needs[1 + l * step] else None)
                outputs.append(s if act != "identity" and reached[l] else None)
            a = s
        if ctx is not None:
            weights = tuple(params[l * step] if wanted_below[l] else None
                            for l in range(len(acts)))
            ctx.saved = (saved_inputs, outputs, weights, wanted_below, acts, has_bias, x_shape)
        return a if len(x_shape) == 2 else a.reshape(x_shape[:-1] + (a.shape[-1],))

    def vjp(ctx, g):
        inputs, outputs, weights, wanted_below, acts, has_bias, x_shape = ctx.saved
        xp = get_xp(g)
        needs = ctx.needs
        step = 2 if has_bias else 1
        delta = g if g.ndim == 2 else g.reshape(-1, g.shape[-1])
        grads: list[Any] = [None] * len(needs)
        release = ctx.final  # free each layer's saved arrays once used, as the unfused chain does
        owned = False  # whether delta is a fresh array of this VJP's (not the incoming g)
        for l in range(len(acts) - 1, -1, -1):
            y = outputs[l]
            if y is not None:
                delta = _times_derivative(xp, delta, y, acts[l], owned)
                if release:
                    outputs[l] = y = None
            if needs[1 + l * step]:
                grads[1 + l * step] = delta.T.dot(inputs[l])
                if release:
                    inputs[l] = None
            if has_bias and needs[2 + l * step]:
                grads[2 + l * step] = sum_2d(delta, 0)
            if not wanted_below[l]:
                break
            delta = delta.dot(weights[l])
            owned = True
        else:
            if needs[0]:
                grads[0] = delta.reshape(x_shape)
        return tuple(grads)


def mlp(x: Any, weights: list[Any], biases: list[Any] | None, activations: list[str]) -> Tensor:
    """The network x -> theta_L(...theta_1(x W_1^T + b_1)...) as one graph node (see the module
    docstring for the formulas and the VJP).

    Args:
        x: input of shape (..., d0), d0 = ``weights[0].shape[1]``.
        weights: L matrices, W_l of shape (d_l, d_{l-1}) (``nn.Linear``'s layout).
        biases: L vectors, b_l of shape (d_l,), or None for layers without biases.
        activations: L entries, one per layer: a name from ``FUSED_ACTIVATIONS`` ("identity"
            for none; "leaky_relu" has slope 0.01) or ``("leaky_relu", slope)``, slope >= 0.

    Shape: (..., d0) -> (..., d_L).
    """
    x = as_tensor(x)
    acts = tuple(fused_activation(a) for a in activations)
    params = network_inputs(x, weights, biases, acts)
    return run(x, params, acts, biases is not None)


def network_inputs(x: Tensor, weights: list[Any], biases: list[Any] | None,
                   activations: list[str]) -> tuple[Tensor, ...]:
    """The parameters (W_1, [b_1,] W_2, ...) as tensors, after checking that the layers chain:
    each weight 2-D, each width matching the previous layer's (the first the input's), each bias
    of its layer's width. Raises ShapeError or InvalidValueError naming the layer."""
    if len(weights) != len(activations) or not weights:
        raise InvalidValueError(f"mlp: got {len(weights)} weights for {len(activations)} "
                                "activations: expected one activation per layer")
    for act in activations:
        fused_activation(act)  # raises for anything the node does not take
    params: list[Tensor] = []
    width = x.data.shape[-1] if x.data.ndim else None
    for l, w in enumerate(weights):
        w = as_tensor(w, x)
        shape = w.data.shape
        if len(shape) != 2:
            raise ShapeError(f"mlp: layer {l + 1}'s weight must be 2-D (out, in), got shape "
                             f"{tuple(shape)}")
        if width is not None and shape[1] != width:
            what = "input" if l == 0 else f"output of layer {l}"
            raise ShapeError(f"mlp: the {what} has {width} features but layer {l + 1}'s weight "
                             f"of shape {tuple(shape)} expects {shape[1]} features")
        params.append(w)
        if biases is not None:
            b = as_tensor(biases[l], x)
            if b.data.shape != (shape[0],):
                raise ShapeError(f"mlp: layer {l + 1}'s bias must have shape ({shape[0]},), got "
                                 f"{tuple(b.data.shape)}")
            params.append(b)
        width = shape[0]
    return tuple(params)


def run(x: Tensor, params: tuple[Tensor, ...], activations: tuple[Any, ...],
        has_bias: bool) -> Tensor:
    """Apply the fused node to ``x`` with parameters that ``network_inputs`` has checked; only
    the input's width is checked here (``nn.MLP`` calls this directly with a parameter list it
    validated once)."""
    shape = x.data.shape
    if not shape:
        raise ShapeError("mlp: input must have at least one dimension")
    w = params[0].data.shape
    if shape[-1] != w[1]:
        raise ShapeError(f"mlp: the input has {shape[-1]} features but layer 1's weight of "
                         f"shape {tuple(w)} expects {w[1]} features")
    return apply(MLP, (x, *params), activations, has_bias)


__all__ = ["mlp", "fused_activation", "FUSED_ACTIVATIONS"]
