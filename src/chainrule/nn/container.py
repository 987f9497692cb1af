"""Containers: ``Sequential`` (a chain of modules) and ``MLP`` (the lecture's feed-forward network
built from its layer sizes)."""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

import chainrule as cr
from chainrule.anomaly import is_anomaly_enabled
from chainrule.errors import InvalidValueError
from chainrule.ops import mlp as fused_mlp
from chainrule.tensor import as_tensor

from . import init
from .activation import (
    ELU, GELU, Identity, LeakyReLU, ReLU, Sigmoid, SiLU, Softplus, Tanh, activation_name,
    get_activation,
)
from .dropout import Dropout, _probability
from .linear import Linear, _float_dtype
from .module import Module, flatten_parameters, register_layer


@register_layer
class Sequential(Module):
    """Modules applied one after another: ``Sequential(a, b, c)(x) == c(b(a(x)))``.

    The modules are registered under the names ``"0"``, ``"1"``, ... so parameters are named
    ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ... (as in PyTorch). Indexing with an int gives
    a module, with a slice a new ``Sequential`` of the same module objects.

    Args:
        *modules: the modules, in order.

    Shape: the input shape of the first module -> the output shape of the last.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named ``str(len(self))``); returns self."""
        if not isinstance(module, Module):
            raise InvalidValueError(f"{type(self).__name__} holds Modules, got "
                                    f"{type(module).__name__}")
        setattr(self, str(len(self._modules)), module)
        return self

    def forward(self, x: Any) -> Any:
        """Apply the modules in order: ``c(b(a(x)))`` for ``Sequential(a, b, c)``."""
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(index, slice):
            return Sequential(*mods[index])
        try:
            i = operator.index(index)
        except TypeError:
            raise InvalidValueError(f"{type(self).__name__} indices must be integers or slices, "
                                    f"got {type(index).__name__}") from None
        if not -len(mods) <= i < len(mods):
            raise IndexError(f"index {i} is out of range for a {type(self).__name__} of length "
                             f"{len(mods)}")
        return mods[i]

    def config(self) -> dict[str, Any]:
        """An empty dict: a Sequential is rebuilt from its children (see :meth:`spec`)."""
        return {}

    def spec(self) -> dict[str, Any]:
        """``{"type": "Sequential", "config": {}, "children": [...]}``, each child's spec in
        order; :func:`chainrule.nn.build` turns it back into a module.
        """
        out = super().spec()
        out["children"] = [m.spec() for m in self._modules.values()]
        return out


_is = operator.is_
_FUSABLE = {Identity: "identity", ReLU: "relu", Tanh: "tanh", Sigmoid: "sigmoid"}


_Plan = tuple[tuple[Linear, ...], tuple[Any, ...], tuple[Dropout, ...]]


def _plan_of(mods: tuple[Module, ...], bias: bool) -> _Plan | None:
    """See ``MLP._fused_plan``. Exact types only: a subclass may have its own forward."""
    linears: list[Linear] = []
    acts: list[str] = []
    dropouts: list[Dropout] = []
    for m in mods:
        kind = type(m)
        if kind is Linear:
            if (m.bias is not None) != bias:
                return None
            linears.append(m)
            acts.append("identity")
        elif kind in _FUSABLE and linears and acts[-1] == "identity":
            acts[-1] = _FUSABLE[kind]
        elif (kind is LeakyReLU and linears and acts[-1] == "identity"
              and m.negative_slope >= 0):  # (a negative slope is not fused: see ops.mlp)
            acts[-1] = ("leaky_relu", m.negative_slope)
        elif kind is Dropout and linears:
            dropouts.append(m)
        else:
            return None
    if not linears:
        return None
    return tuple(linears), tuple(acts), tuple(dropouts)


# The default weight init of an MLP layer, by the activation that follows it.
_RELU_FAMILY = (ReLU, ELU, GELU, SiLU, Softplus)


def _init_layer(layer: Linear, act: Module | None, gen: cr.Generator | None) -> None:
    if isinstance(act, LeakyReLU):
        init.kaiming_uniform_(layer.weight, a=act.negative_slope, nonlinearity="leaky_relu",
                              generator=gen)
    elif isinstance(act, _RELU_FAMILY):
        init.kaiming_uniform_(layer.weight, nonlinearity="relu", generator=gen)
    elif isinstance(act, Tanh):
        init.xavier_uniform_(layer.weight, gain=init.calculate_gain("tanh"), generator=gen)
    else:  # sigmoid, identity (a linear output), softmax, sign, anything else
        init.xavier_uniform_(layer.weight, gain=1.0, generator=gen)
    if layer.bias is not None:
        init.zeros_(layer.bias)


@register_layer
class MLP(Sequential):
    r"""A fully connected feed-forward network from its layer sizes: the lecture's network with
    d^(0) = ``sizes[0]`` inputs and L = ``len(sizes) - 1`` layers,

        x^(0) = input,   s^(l) = W^(l) x^(l-1) + b^(l),   x^(l) = theta(s^(l)),   h = x^(L),

    where theta is ``activation`` for the hidden layers l < L and ``output_activation`` (default:
    none, a linear output) for the last one. ``MLP([784, 256, 10], "relu")`` is
    ``Sequential(Linear(784, 256), ReLU(), Linear(256, 10))``, so its parameters are named
    ``"0.weight"``, ``"0.bias"``, ``"2.weight"``, ``"2.bias"``. With ``dropout > 0`` a
    :class:`Dropout` follows each hidden activation. With ``checkpoint_segments=k`` the training
    forward runs as ``chainrule.checkpoint.checkpoint_sequential(list(self), k, x)``: the saved
    activations of k - 1 segments are recomputed during backward instead of being kept (about
    sqrt(L) segments for L layers; see ``chainrule.memory.estimate``); the gradients are the same
    bit for bit.

    Args:
        sizes: layer widths [d^(0), d^(1), ..., d^(L)], at least two positive integers.
        activation: the hidden activation: a name (``"tanh"``, ``"relu"``, ... see
            ``nn.ACTIVATIONS``), a module or a module class. Default: ``"tanh"``.
        output_activation: the activation after the last layer, or None. Default: None.
        bias: whether the layers have biases. Default: True.
        dropout: dropout probability after each hidden activation. Default: 0.0 (none).
        dtype: floating dtype of the parameters. Default: the default dtype.
        generator: a :class:`chainrule.Generator` for the initial weights and the dropout masks.
        init: ``"auto"`` (default) or ``"pytorch"``; see below.
        checkpoint_segments: activation checkpointing with this many segments when training
            with grad enabled (None or 1: none). Default: None.

    Initialisation (``init="auto"``): each weight matrix is drawn according to the activation
    that follows it, and every bias starts at zero:

    - relu, elu, gelu, silu, softplus: Kaiming/He uniform for ReLU,
      U(-a, a) with a = sqrt(6 / d_in);
    - leaky_relu: Kaiming uniform with its negative slope;
    - tanh: Xavier/Glorot uniform with PyTorch's tanh gain 5/3,
      a = (5/3) sqrt(6 / (d_in + d_out));
    - sigmoid, a linear output (no activation), softmax, sign and others: Xavier/Glorot
      uniform, a = sqrt(6 / (d_in + d_out)).

    ``init="pytorch"`` keeps :class:`Linear`'s own default (U(-1/sqrt(d_in), 1/sqrt(d_in)) for
    weights and biases), matching a ``torch.nn.Sequential`` of ``Linear`` layers.

    Shape:
        - Input: (*, sizes[0]).
        - Output: (*, sizes[-1]).

    An MLP is rebuilt from its config alone (its spec has no ``children``); do not append to one
    that is to be saved.

    Speed: while its layers are the chain it was built as (Linear layers with identity, ReLU,
    tanh, sigmoid or leaky ReLU (slope >= 0) activations; dropout only in evaluation mode or
    with p = 0), the forward records one fused ``mlp`` node (``chainrule.ops.mlp``) instead of
    2L nodes, with the same numbers bit for bit; anything else (ELU, GELU, a negative leaky
    slope, active dropout, appended modules) runs the modules one by one. The parameters are
    views of one contiguous array, which lets the optimizers update a small network in a few
    array operations (``chainrule.optim._flat``).
    """

    def __init__(self, sizes: Sequence[int], activation: Any = "tanh",
                 output_activation: Any = None, bias: bool = True, dropout: float = 0.0,
                 dtype: Any = None, generator: cr.Generator | None = None,
                 init: str = "auto", checkpoint_segments: int | None = None) -> None:
        super().__init__()
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise InvalidValueError(f"MLP: sizes must be a list of at least two layer widths, got "
                                    f"{sizes!r}")
        widths = []
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InvalidValueError(f"MLP: layer widths must be positive integers, got "
                                        f"{list(sizes)}")
            widths.append(int(n))
        if init not in ("auto", "pytorch"):
            raise InvalidValueError(f"MLP: init must be 'auto' or 'pytorch', got {init!r}")
        if checkpoint_segments is not None and (
                isinstance(checkpoint_segments, bool) or not isinstance(checkpoint_segments, int)
                or checkpoint_segments < 1):
            raise InvalidValueError(f"MLP: checkpoint_segments must be a positive integer or "
                                    f"None, got {checkpoint_segments!r}")
        self.checkpoint_segments = checkpoint_segments
        self.sizes = widths
        self.activation = _activation_config(activation)
        self.output_activation = (None if output_activation is None
                                  else _activation_config(output_activation))
        self.bias = bool(bias)
        self.dropout = _probability(dropout)
        dt = str(_float_dtype("MLP", dtype))
        self.generator = generator
        self.init = init
        layers = len(widths) - 1
        for l in range(1, layers + 1):  # lecture layer l -> the l-th Linear in the chain
            self.append(Linear(widths[l - 1], widths[l], bias=self.bias, dtype=dt,
                               generator=generator))
            if l < layers:
                self.append(get_activation(self.activation))
                if self.dropout > 0:
                    self.append(Dropout(self.dropout, generator=generator))
            elif self.output_activation is not None:
                self.append(get_activation(self.output_activation))
        self.reset_parameters()
        self._flatten_parameters()

    def forward(self, x: Any) -> Any:
        """h = x^(L) for a batch ``x`` of shape (*, sizes[0]); returns (*, sizes[-1]).

        One fused graph node when the layers allow it, checkpointed segments when
        ``checkpoint_segments > 1`` in training, else the layers one by one (the numbers are the
        same; see the class docstring).
        """
        k = self.checkpoint_segments
        if k is not None and k > 1 and self.training and cr.is_grad_enabled():
            from chainrule.checkpoint import checkpoint_sequential

            return checkpoint_sequential(list(self), k, x)
        plan = self._fused_plan()
        if plan is not None and not (plan[2] and self.training and any(m.p > 0 for m in plan[2])
                                     ) and not is_anomaly_enabled():  # (errors name the layer)
            return self._fused_forward(x, plan)
        return super().forward(x)

    def _fused_forward(self, x: Any, plan: _Plan) -> Any:
        """The forward as one ``mlp`` node. The layer shapes are checked once per set of
        parameter arrays (by identity), so a step only checks the input's width."""
        x = as_tensor(x)
        params = []
        datas = []
        bias = self.bias
        for m in plan[0]:
            w = m.weight
            params.append(w)
            datas.append(w.data)
            if bias:
                b = m.bias
                params.append(b)
                datas.append(b.data)
        checked = self.__dict__.get("_checked")
        if checked is None or len(checked) != len(datas) or not all(map(_is, checked, datas)):
            linears = plan[0]
            fused_mlp.network_inputs(x, [m.weight for m in linears],
                                     [m.bias for m in linears] if self.bias else None, plan[1])
            self.__dict__["_checked"] = datas
        return fused_mlp.run(x, tuple(params), plan[1], self.bias)

    def _fused_plan(self) -> _Plan | None:
        """How to run this network as one fused ``mlp`` node (``chainrule.ops.mlp``): its Linear
        layers, each one's activation (a name, or ("leaky_relu", slope)), and the Dropout layers
        between them (while one of them has p > 0, only evaluation mode may fuse); None when the
        layers are not a chain of Linear layers each followed by at most one of
        Identity/ReLU/Tanh/Sigmoid/LeakyReLU with slope >= 0 (and Dropout), e.g. after the user
        appended or replaced a module. Cached on the identity of the modules and the slopes."""
        mods = tuple(self._modules.values())
        cached = self.__dict__.get("_plan")
        if (cached is not None and len(cached) == 3 and cached[0] == mods  # (a 2-tuple: an
                and all(m.negative_slope == a for m, a in cached[2])):  # older pickle's)
            return cached[1]
        plan = _plan_of(mods, self.bias)
        # the leaky ReLUs' slopes are in the plan: a changed slope makes it again
        slopes = tuple((m, m.negative_slope) for m in mods if type(m) is LeakyReLU)
        self.__dict__["_plan"] = (mods, plan, slopes)
        return plan

    def _flatten_parameters(self) -> None:
        """Every parameter a view of one array, in ``parameters()`` order (W^(1), b^(1), W^(2),
        ...): see :func:`flatten_parameters`. At construction and after ``to()``. (Measured on
        nn.MLP with the optimizers' flat path on and off: Adam 1.7x faster on 64-64-10, plain
        SGD about the same.)"""
        flatten_parameters(list(self.parameters()))

    def to(self, device: str | None = None, dtype: Any = None) -> MLP:
        """Move and/or cast the parameters (as :meth:`Module.to`), then lay them out again as
        views of one array. Returns self.
        """
        super().to(device=device, dtype=dtype)
        self._flatten_parameters()
        return self

    def reset_parameters(self, generator: cr.Generator | None = None) -> None:
        """Redraw every layer's parameters as described in the class docstring."""
        gen = generator if generator is not None else self.generator
        mods = list(self._modules.values())
        for i, m in enumerate(mods):
            if isinstance(m, Linear):
                if self.init == "pytorch":
                    m.reset_parameters(gen)
                else:
                    _init_layer(m, mods[i + 1] if i + 1 < len(mods) else None, gen)

    def config(self) -> dict[str, Any]:
        """The constructor's arguments (``sizes``, ``activation``, ``output_activation``,
        ``bias``, ``dropout``, ``dtype``, ``init`` and, when set, ``checkpoint_segments``): an
        MLP is rebuilt from these alone.
        """
        cfg = {"sizes": list(self.sizes), "activation": self.activation,
               "output_activation": self.output_activation, "bias": self.bias,
               "dropout": self.dropout, "dtype": str(self.linears[0].weight.dtype),
               "init": self.init}
        if self.checkpoint_segments is not None:  # absent by default: older specs stay equal
            cfg["checkpoint_segments"] = self.checkpoint_segments
        return cfg

    def spec(self) -> dict[str, Any]:
        """``{"type": "MLP", "config": ...}`` without children: :func:`chainrule.nn.build`
        rebuilds the whole network from the config.
        """
        return Module.spec(self)

    @property
    def linears(self) -> list[Linear]:
        """The L affine layers, in order (``model.linears[l - 1]`` is the lecture's layer l)."""
        return [m for m in self._modules.values() if isinstance(m, Linear)]


def _activation_config(activation: Any) -> Any:
    """A JSON-able description of an activation: its canonical name, or a spec dict."""
    if isinstance(activation, str):
        return activation_name(activation)
    return get_activation(activation).spec()


__all__ = ["Sequential", "MLP"]
