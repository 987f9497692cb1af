"""What the step model needs to know about a network: per layer and per sample, its output,
what its node saves, and its temporaries (see ``step_model``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..autograd import enable_grad
from ..errors import InvalidValueError
from ..tensor import Tensor
from .accounting import _arrays, _nodes, _root

# A training step is modelled as a sequence of allocations and frees of whole arrays (the
# engine's behaviour, step by step): the forward of each layer allocates its output and what
# its node saves, next to temporaries; the loss saves its probabilities and labels; backward
# walks the layers in reverse, holding one incoming gradient and making the input gradient and
# the parameter gradients, and releases each node's saved state after its VJP; the optimizer then
# updates each parameter (or, on its flat path, the whole group at once) with the temporaries
# its update rule makes (``_update_temps``). Inside nn.MLP's fused node some of this happens in
# place (see ``_as_fused``), and the engine holds the node's incoming gradient through its whole
# VJP. Buffers are tracked with their holders (the running value, the nodes that saved it, a
# checkpoint), so an array saved by two nodes (a tanh output that the next layer also saves) is
# counted once and freed when its last holder lets go. The peak is the maximum over all these
# moments.
#
# Per layer the model needs, per sample of the batch: its output size, whether its node saves
# its input or its output, the bytes of the other arrays it saves (masks), and the temporaries
# of its forward and VJP. The saved state is read off a real graph (a 2- and a 4-sample forward
# of the layer), so it follows the engine; the temporaries come from the table below, which
# follows the primitives' code (see ops/).

# Temporaries per output element, in bytes and in multiples of the itemsize, of a layer's forward
# and of its VJP (beyond the input gradient). NumPy reuses a temporary operand of 256 KiB or more
# in place ("temporary elision"), so a large VJP such as g * y * (1 - y) needs one array fewer:
# hence a small and a large figure for each.
_WORK = {  # name: ((forward bytes, itemsizes), (VJP small, VJP large, in itemsizes))
    "Linear": ((0, 0), (0, 0)),           # x W^T into its output, bias added in place
    "ReLU": ((0, 0), (0, 0)),             # maximum; VJP [y > 0] into its result, times g
    "Tanh": ((0, 0), (0, 0)),             # VJP y^2 into its result, then 1 - it, times g
    "Sigmoid": ((1, 1), (2, 1)),          # exp(-|x|) and the mask x >= 0; VJP g * y * (1 - y)
    "LeakyReLU": ((0, 1), (1, 1)),        # where(mask, x, x * slope); likewise its VJP
    "Dropout": ((8, 0), (0, 0)),          # a float64 uniform draw per element; VJP g * mask
}
_GENERIC_WORK = ((0, 1), (1, 1))
_ELIDE_BYTES = 256 * 1024
# Layers whose saved arrays are computed even without recording (a dropout mask is part of the
# computation; a ReLU mask is made only for backward).
_MASK_ALWAYS = ("Dropout", "LeakyReLU")
# Python objects (tensors, nodes, tuples, optimizer bookkeeping), which tracemalloc counts too:
# a fixed part, a part per module, a part per optimizer state array, fitted (least squares) to
# measured steps of MLPs of 2 to 33 layers of width 8 to 64 at batch 8, where they are most of
# the step: nn.MLP's one fused node, and the chain of nodes (dropout, checkpointing), which makes
# more objects per module. Only small models notice.
_OVERHEAD = {True: (3900, 490, 87), False: (2400, 765, 26)}


@dataclass(frozen=True)
class _Layer:
    """One module of a chain, sizes in bytes per sample."""

    name: str
    out: int                # output; 0 when the module returns its input (or a view of it)
    saves_input: bool
    saves_output: bool
    internal: int           # other arrays its nodes save (masks)
    fwd_work: int           # temporaries of its forward
    bwd_work: tuple[int, int]  # temporaries of its VJP: below and above _ELIDE_BYTES
    params: tuple[int, ...]  # bytes of each parameter (not per sample)
    in_place: bool = False  # its forward overwrites its input (inside nn.MLP's fused node)
    grad_in_place: bool = False  # its VJP scales the incoming gradient in place (likewise)
    # bytes per element of the buffer NumPy's buffered ufunc loop needs (see _ufunc_buffer) in
    # its forward (the bias broadcast over the batch) and in its VJP (a boolean mask cast)
    fwd_buffer: int = 0
    bwd_buffer: int = 0


@dataclass(frozen=True)
class _Plan:
    """A chain of layers with its input and loss: everything the step model needs."""

    layers: tuple[_Layer, ...]
    x: int           # bytes per sample of the input
    classes: int
    itemsize: int
    label_itemsize: int = 8
    flat_params: bool = False  # the parameters tile one array (nn.MLP's): see _flat_update
    fused: bool = False  # the chain runs as nn.MLP's one fused node (see _as_fused)


# NumPy runs a ufunc whose operands need broadcasting or casting (the bias added to x W^T, a
# boolean mask multiplied into a float array, the softmax divided by its row sums) through an
# iterator with a buffer per such operand: np.getbufsize() elements (8192) at most, and about
# 1.1 KiB of iterator beside it. A constant, which only small networks notice.
_BUFFER_OVERHEAD = 1136


def _ufunc_buffer(elements: int, item_bytes: int) -> int:
    """Bytes of the buffer of one buffered ufunc call over ``elements`` elements whose buffered
    operand has ``item_bytes`` bytes per element (0: the call needs no buffer)."""
    if not item_bytes or not elements:
        return 0
    return min(elements, np.getbufsize()) * item_bytes + _BUFFER_OVERHEAD


def _work(name: str, itemsize: int) -> tuple[int, tuple[int, int]]:
    (fb, fs), (small, large) = _WORK.get(name, _GENERIC_WORK)
    return fb + fs * itemsize, (small * itemsize, large * itemsize)


def _linear_layer(d_in: int, d_out: int, bias: bool, itemsize: int) -> _Layer:
    """linear saves its input (for dW) and the weight (a parameter: free)."""
    params = (d_out * d_in * itemsize,) + ((d_out * itemsize,) if bias else ())
    return _Layer("Linear", d_out * itemsize, True, False, 0, 0, (0, 0), params,
                  fwd_buffer=itemsize if bias else 0)


def _trace_layer(module: Any, in_shape: tuple[int, ...], dtype: np.dtype) -> tuple[_Layer, tuple]:
    """The saved state of ``module`` read off a real graph; returns it and the output shape."""
    from ..checkpoint import _generators

    gens = _generators(module)
    states = [g.get_state() for g in gens]
    was_training = getattr(module, "training", None)
    if was_training is False:
        module.train(True)
    rng = np.random.default_rng(0)
    sizes = {}
    try:
        for b in (2, 4):
            x = Tensor(rng.standard_normal((b,) + in_shape).astype(dtype))
            x.requires_grad = True
            with enable_grad():
                y = module(x)
            xr, yr = _root(x.data), _root(y.data)
            params = {id(_root(p.data)) for p in module.parameters()} \
                if hasattr(module, "parameters") else set()
            seen: dict[int, Any] = {}
            for node in _nodes(y):
                for a in _arrays(node.saved):
                    r = _root(a)
                    seen[id(r)] = r
            same = yr is xr
            sizes[b] = dict(
                out=0 if same else int(y.data.nbytes),
                saves_input=id(xr) in seen,
                saves_output=not same and id(yr) in seen,
                internal=sum(int(r.nbytes) for k, r in seen.items()
                             if k not in (id(xr), id(yr)) and k not in params),
            )
            out_shape = tuple(y.shape[1:])
    finally:
        for g, s in zip(gens, states):
            g.set_state(s)
        if was_training is False:
            module.train(False)
    name = type(module).__name__
    per = {k: (sizes[4][k] - sizes[2][k]) // 2 for k in ("out", "internal")}
    saves_output = sizes[4]["saves_output"]
    fwd, bwd = _work(name, dtype.itemsize)
    elems = per["out"] // dtype.itemsize if per["out"] else 0
    params = tuple(int(p.data.nbytes) for p in module.parameters()) \
        if hasattr(module, "parameters") else ()
    layer = _Layer(name, per["out"], sizes[4]["saves_input"], saves_output, per["internal"],
                   fwd * elems, (bwd[0] * elems, bwd[1] * elems), params,
                   bwd_buffer=1 if name == "ReLU" else 0)  # [y > 0] cast into a float array
    return layer, out_shape


def _as_fused(layer: _Layer, module: Any, itemsize: int) -> _Layer:
    """``layer`` as it runs inside nn.MLP's fused ``mlp`` node (``chainrule.ops.mlp``).

    The node keeps each activation's output, the next layer's input, for the derivative: the
    same arrays as the chain for ReLU, tanh and sigmoid, whose own VJPs keep their output; but a
    leaky ReLU (slope >= 0) on its own keeps a boolean mask, which the fused node does not (it
    makes ``y > 0`` afresh in forward and VJP: a boolean temporary each). The node also works in
    place where the chain cannot: ReLU and tanh overwrite the fresh product ``x W^T + b`` (no
    output array of their own), and ReLU's VJP multiplies the fresh ``delta W`` by the boolean
    mask ``[y > 0]`` in place (a byte per element instead of a new gradient array)."""
    from ..nn import LeakyReLU, ReLU, Tanh

    kind = type(module)
    elems = layer.out // itemsize
    if kind is ReLU:
        return replace(layer, in_place=True, grad_in_place=True, bwd_work=(elems, elems),
                       bwd_buffer=itemsize)
    if kind is Tanh:
        return replace(layer, in_place=True)
    if kind is LeakyReLU and module.negative_slope >= 0:
        small, large = layer.bwd_work
        return replace(layer, saves_output=True, internal=0, fwd_work=layer.fwd_work + elems,
                       bwd_work=(small + elems, large + elems))
    return layer


def _last_gradient_fresh(layers: list[_Layer]) -> list[_Layer]:
    """The fused node's in-place ReLU VJP needs a gradient of its own (``delta W``): an activation
    after the last Linear (nn.MLP's ``output_activation``) gets the caller's gradient instead,
    which it must not write into (a new array, as the chain makes)."""
    last = max((i for i, layer in enumerate(layers) if layer.name == "Linear"), default=-1)
    return [replace(layer, grad_in_place=False, bwd_work=(0, 0), bwd_buffer=1)
            if i > last and layer.grad_in_place else layer for i, layer in enumerate(layers)]


def _runs_fused(model: Any) -> bool:
    """Whether a training step of ``model`` runs as nn.MLP's one fused node: an MLP whose layers
    it covers, with no active dropout (which training mode leaves to the chain). A checkpointed
    step runs the modules one by one, unfused (the callers ask only without checkpointing)."""
    from ..nn import MLP

    if not isinstance(model, MLP):
        return False
    plan = model._fused_plan()
    return plan is not None and not any(d.p > 0 for d in plan[2])


def _children(model: Any) -> list[Any]:
    """The modules a chain runs in order: a Sequential's (or MLP's) children, else the model."""
    from ..nn import Sequential

    if isinstance(model, Sequential):
        return list(model)
    return [model]


def _model_dtype(model: Any) -> np.dtype:
    for p in model.parameters():
        return np.dtype(p.dtype)
    from ..dtypes import get_default_dtype

    return np.dtype(get_default_dtype())


def _plan_of(model: Any, dtype: Any = None, checkpointed: bool = False) -> _Plan:
    """The step model's view of ``model``: its children profiled in order (as they run in
    nn.MLP's fused node, unless ``checkpointed``)."""
    from ..nn import Linear

    mods = _children(model)
    first = next((m for m in mods if isinstance(m, Linear)), None)
    if first is None:
        raise InvalidValueError("memory estimate: the model must contain a Linear layer (its "
                                "first one sets the input width)")
    if not isinstance(mods[0], Linear):
        raise InvalidValueError(f"memory estimate: the model must start with a Linear layer, "
                                f"got {type(mods[0]).__name__}")
    dt = np.dtype(dtype) if dtype is not None else _model_dtype(model)
    if dt.kind != "f":
        raise InvalidValueError(f"memory estimate: dtype must be floating, got {dt}")
    s = dt.itemsize
    layers = []
    shape: tuple[int, ...] = (mods[0].in_features,)
    fused = not checkpointed and _runs_fused(model)
    for m in mods:
        if isinstance(m, Linear):
            if shape != (m.in_features,):
                raise InvalidValueError(f"memory estimate: {type(m).__name__} expects "
                                        f"{m.in_features} features, gets shape {shape}")
            layers.append(_linear_layer(m.in_features, m.out_features, m.bias is not None, s))
            shape = (m.out_features,)
        else:
            layer, shape = _trace_layer(m, shape, dt)
            layers.append(_as_fused(layer, m, s) if fused else layer)
    if len(shape) != 1:
        raise InvalidValueError(f"memory estimate: the model's output must be (N, classes) "
                                f"logits, got per-sample shape {shape}")
    from ..optim._flat import find_layout

    flat = find_layout(list(model.parameters())).base is not None
    return _Plan(tuple(_last_gradient_fresh(layers)), mods[0].in_features * s, shape[0], s,
                 flat_params=flat, fused=fused)


_PROBE = 8  # the width at which _mlp_plan profiles a hidden layer's modules


def _mlp_plan(sizes: Sequence[int], activation: Any = "relu", dtype: Any = "float32",
              dropout: float = 0.0, bias: bool = True, checkpointed: bool = False) -> _Plan:
    """The plan of ``nn.MLP(sizes, activation, dropout=dropout, bias=bias)`` without building
    its weights: nothing proportional to the network is allocated, so it answers for any sizes
    in microseconds (the arithmetic is Python's exact integers).

    The modules after a hidden Linear (the activation, a dropout) are elementwise: they are
    profiled once on a tiny MLP of width ``_PROBE`` and scaled to each layer's width. That tiny
    MLP also says whether the network runs as one fused node (see ``_runs_fused``), unless
    ``checkpointed``."""
    from ..nn import MLP, Linear
    from ..random import Generator

    dt = np.dtype(dtype)
    s = dt.itemsize
    probe = MLP([_PROBE] * 3, activation=activation, dropout=dropout, bias=bias, dtype=dt,
                generator=Generator(0))
    fused = not checkpointed and _runs_fused(probe)
    mods = list(probe)
    between = mods[1:next(i for i in range(1, len(mods)) if isinstance(mods[i], Linear))]
    profiles = [(m, _trace_layer(m, (_PROBE,), dt)[0]) for m in between]
    layers = []
    for l in range(1, len(sizes)):
        layers.append(_linear_layer(sizes[l - 1], sizes[l], bias, s))
        if l < len(sizes) - 1:
            for m, layer in profiles:
                scaled = _scaled(layer, sizes[l], _PROBE)
                layers.append(_as_fused(scaled, m, s) if fused else scaled)
    return _Plan(tuple(layers), sizes[0] * s, sizes[-1], s, flat_params=True, fused=fused)


def _scaled(layer: _Layer, width: int, probe: int) -> _Layer:
    """An elementwise module's profile at width ``probe`` scaled to ``width``: every per-sample
    size is a per-element size times the width."""
    def scale(n: int) -> int:
        return n * width // probe

    return replace(layer, out=scale(layer.out), internal=scale(layer.internal),
                   fwd_work=scale(layer.fwd_work),
                   bwd_work=(scale(layer.bwd_work[0]), scale(layer.bwd_work[1])))


# ---------------------------------------------------------------------------- optimizer state

# The optimizer each name stands for (class in chainrule.optim, options): what measure_step
# builds, and what the step model asks about its state and its update.
_OPTIMIZERS = {"sgd": ("SGD", {"lr": 0.01}), "momentum": ("SGD", {"lr": 0.01, "momentum": 0.9}),
               "adam": ("Adam", {}), "adamw": ("AdamW", {}), "rmsprop": ("RMSprop", {}),
               "adagrad": ("Adagrad", {})}


def _optimizer(optimizer: Any) -> Any:
    """``optimizer`` as an optimizer instance: a name of ``_OPTIMIZERS`` stands for that class
    with those options (on a dummy parameter); an instance is returned as it is."""
    if isinstance(optimizer, str):
        key = optimizer.lower().replace("-", "").replace("_", "")
        if key not in _OPTIMIZERS:
            raise InvalidValueError(f"unknown optimizer {optimizer!r}; expected one of "
                                    f"{sorted(_OPTIMIZERS)} or an optimizer instance")
        from .. import optim
        from ..nn import Parameter

        name, kwargs = _OPTIMIZERS[key]
        return getattr(optim, name)([Parameter(np.zeros(1))], **kwargs)
    if getattr(optimizer, "param_groups", None) is None:
        raise InvalidValueError(f"optimizer must be a name or an Optimizer, got "
                                f"{type(optimizer).__name__}")
    return optimizer


def _flat_update(optimizer: Any, param_bytes: list[int]) -> bool:
    """Whether ``optimizer`` updates parameters that tile one array (of these sizes, in bytes)
    on its flat path (``chainrule.optim._flat``): it then keeps a gradient buffer of the group's
    size between steps, and its temporaries are group-sized."""
    from ..optim._flat import flat_limit

    opt = _optimizer(optimizer)
    groups = opt.param_groups
    if len(groups) != 1 or len(param_bytes) < 3:
        return False
    calls = type(opt)._flat_calls(groups[0])
    return sum(param_bytes) <= flat_limit(calls, len(param_bytes))


def _optimizer_factor(optimizer: Any) -> int:
    """The state arrays the optimizer keeps per parameter, each of the parameter's size."""
    from .. import optim

    opt = _optimizer(optimizer)
    g = opt.param_groups[0]
    if isinstance(opt, optim.SGD):
        return 1 if g["momentum"] else 0
    if isinstance(opt, (optim.Adam, optim.AdamW)):
        return 2 + (1 if g["amsgrad"] else 0)
    if isinstance(opt, optim.RMSprop):
        return 1 + (g["momentum"] > 0) + bool(g["centered"])
    if isinstance(opt, optim.Adagrad):
        return 1
    return 2  # an unknown optimizer: assume Adam-like


def _update_scratch(optimizer: Any, nbytes: int, itemsize: int) -> int:
    """Bytes beside :func:`_update_temps` that a once-rounded update (``optim._axpy.axpy``)
    takes for an updated array of ``nbytes`` (``optim._axpy.scratch_bytes``: the exact NumPy
    rounding of the elements past the BLAS prefix): SGD's lines, and the weight decay of the
    others (``decayed_grad``, AdamW's excepted); 0 where no such update runs. Each such call's
    scratch is freed before the next one, so it counts once."""
    from .. import optim
    from ..optim._axpy import scratch_bytes

    opt = _optimizer(optimizer)
    if itemsize not in (2, 4, 8):
        return 0
    decay = opt.param_groups[0].get("weight_decay", 0.0) != 0.0 and not isinstance(
        opt, optim.AdamW)
    if not (isinstance(opt, optim.SGD) or decay):
        return 0
    return scratch_bytes(nbytes // itemsize, f"f{itemsize}")


def _update_temps(optimizer: Any, flat: bool, nbytes: int) -> int:
    """The most arrays of the updated array's size (``nbytes``: a parameter's, or the group's on
    the flat path) that the update holds at once beside the state and the gradients, following
    ``sgd_update``, ``adam_update``, ``rmsprop_update`` and ``adagrad_update``.

    Adam, RMSprop and Adagrad work in one scratch array, plus the decayed gradient (``decayed_grad``
    makes a new one with weight decay, AdamW's excepted, or maximize). SGD's lines that add a
    multiple of an array (``p -= lr * d_p``, dampening's ``b += (1 - dampening) d_p``,
    Nesterov's ``d_p += momentum b``) make nothing (``optim._axpy``: in place, and a few hundred
    KiB at most past BLAS's prefix: :func:`_update_scratch`); Nesterov's writes into a copy of
    the gradient unless the step owns it already (the decayed gradient, or the flat path's
    gathered one)."""
    from .. import optim

    opt = _optimizer(optimizer)
    g = opt.param_groups[0]
    decay = g.get("weight_decay", 0.0) != 0.0 and not isinstance(opt, optim.AdamW)
    decayed = int(decay or bool(g.get("maximize", False)))
    if isinstance(opt, optim.SGD):
        if g["momentum"] != 0.0 and g["nesterov"] and not (decayed or flat):
            return 1
        return decayed
    if isinstance(opt, (optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad)):
        return 1 + decayed
    return 2  # an unknown optimizer: assume Adam-like
