"""The PyTorch side of ``chainrule.interop`` (torch is imported here, on first use)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidValueError


def _torch() -> Any:
    try:
        import torch  # noqa: PLC0415 - optional
    except ImportError:
        raise InvalidValueError("converting to or from PyTorch needs torch (pip install torch)"
                                ) from None
    return torch


_NAMES = ["Linear", "LeakyReLU", "ELU", "Softplus", "GELU", "Softmax", "LogSoftmax", "Dropout",
          "Flatten"]


def _supported(names: list[str]) -> str:
    return ", ".join(sorted(names))


# --------------------------------------------------------------------------- chainrule -> torch
def to_torch(model: Any, *, copy: bool = True) -> Any:
    from .. import nn
    from ..onnx import _is_container

    torch = _torch()
    tnn = torch.nn
    simple = {nn.Identity: tnn.Identity, nn.ReLU: tnn.ReLU, nn.Tanh: tnn.Tanh,
              nn.Sigmoid: tnn.Sigmoid, nn.SiLU: tnn.SiLU}

    def tensor(p: Any) -> Any:
        t = torch.from_dlpack(p.detach())
        return t.clone() if copy else t

    def convert(m: Any, where: str) -> Any:
        if _is_container(m):
            return tnn.Sequential(*(convert(c, f"{where}.{n}" if where else n)
                                    for n, c in m.named_children()))
        kind = type(m)
        if kind is nn.Linear:
            layer = tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                               device="meta")   # no initialisation: the values come next
            layer.weight = tnn.Parameter(tensor(m.weight), requires_grad=m.weight.requires_grad)
            if m.bias is not None:
                layer.bias = tnn.Parameter(tensor(m.bias), requires_grad=m.bias.requires_grad)
            return layer
        if kind in simple:
            return simple[kind]()
        if kind is nn.LeakyReLU:
            return tnn.LeakyReLU(m.negative_slope)
        if kind is nn.ELU:
            return tnn.ELU(m.alpha)
        if kind is nn.Softplus:
            return tnn.Softplus(m.beta, m.threshold)
        if kind is nn.GELU:
            return tnn.GELU(approximate=m.approximate)
        if kind is nn.Softmax:
            return tnn.Softmax(dim=m.dim)
        if kind is nn.LogSoftmax:
            return tnn.LogSoftmax(dim=m.dim)
        if kind is nn.Dropout:
            return tnn.Dropout(m.p)
        if kind is nn.Flatten:
            return tnn.Flatten(m.start_dim, m.end_dim)
        names = [c.__name__ for c in simple] + _NAMES
        raise InvalidValueError(f"to_torch: {where or 'the model'} is a {kind.__name__}, which "
                                f"has no PyTorch counterpart here; supported: Sequential, MLP, "
                                f"{_supported(names)}")

    if not isinstance(model, nn.Module):
        raise InvalidValueError(f"to_torch: expected a chainrule.nn.Module, got "
                                f"{type(model).__name__}")
    out = convert(model, "")
    if not isinstance(out, tnn.Sequential):
        out = tnn.Sequential(out)   # one layer: "0.weight", as in chainrule's Sequential
    return out.train(model.training)


# --------------------------------------------------------------------------- torch -> chainrule
def from_torch(module: Any, *, copy: bool = True) -> Any:
    import chainrule as cr

    from .. import nn
    from . import from_dlpack

    torch = _torch()
    tnn = torch.nn
    simple = {tnn.Identity: nn.Identity, tnn.ReLU: nn.ReLU, tnn.Tanh: nn.Tanh,
              tnn.Sigmoid: nn.Sigmoid, tnn.SiLU: nn.SiLU}
    quiet = cr.Generator(0)   # building layers must not draw from the user's generator

    def param(p: Any) -> Any:
        t = from_dlpack(p.detach())
        return nn.Parameter(t.data.copy() if copy else t, requires_grad=p.requires_grad)

    def convert(m: Any, where: str) -> Any:
        kind = type(m)
        if kind is tnn.Sequential:
            return nn.Sequential(*(convert(c, f"{where}.{n}" if where else n)
                                   for n, c in m.named_children()))
        if kind is tnn.Linear:
            dtype = str(m.weight.dtype).replace("torch.", "")
            if dtype not in ("float32", "float64"):
                raise InvalidValueError(f"from_torch: {where or 'the model'} is a {dtype} "
                                        "Linear; chainrule layers are float32 or float64")
            layer = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None,
                              dtype=dtype, generator=quiet)
            layer.generator = None
            layer.weight = param(m.weight)
            if m.bias is not None:
                layer.bias = param(m.bias)
            return layer
        if kind in simple:
            return simple[kind]()
        if kind is tnn.LeakyReLU:
            return nn.LeakyReLU(m.negative_slope)
        if kind is tnn.ELU:
            return nn.ELU(m.alpha)
        if kind is tnn.Softplus:
            return nn.Softplus(m.beta, m.threshold)
        if kind is tnn.GELU:
            return nn.GELU(m.approximate)
        if kind in (tnn.Softmax, tnn.LogSoftmax):
            if m.dim is None:
                raise InvalidValueError(f"from_torch: {where or 'the model'} is a "
                                        f"{kind.__name__} without dim (PyTorch guesses the axis "
                                        "from the input's rank): give it dim=")
            return (nn.Softmax if kind is tnn.Softmax else nn.LogSoftmax)(m.dim)
        if kind is tnn.Dropout:
            return nn.Dropout(m.p)
        if kind is tnn.Flatten:
            return nn.Flatten(m.start_dim, m.end_dim)
        names = [c.__name__ for c in simple] + _NAMES
        raise InvalidValueError(f"from_torch: {where or 'the model'} is a torch.nn."
                                f"{kind.__name__}, which has no chainrule counterpart here; "
                                f"supported: Sequential, {_supported(names)}")

    if not isinstance(module, tnn.Module):
        raise InvalidValueError(f"from_torch: expected a torch.nn.Module, got "
                                f"{type(module).__name__}")
    out = convert(module, "")
    if not isinstance(out, nn.Sequential):
        out = nn.Sequential(out)
    if copy:
        out = _as_mlp(out, quiet) or out
    return out.train(module.training)


def _as_mlp(seq: Any, generator: Any) -> Any:
    """The same network as an ``nn.MLP`` when ``seq`` is exactly an MLP's chain (Linear, then
    for each hidden layer one activation and optionally one Dropout of a common p, the same
    activation everywhere, an optional output activation), else None."""
    from .. import nn
    from ..nn.activation import ACTIVATIONS

    mods = list(seq)
    linears = [m for m in mods if type(m) is nn.Linear]
    if not linears or type(mods[0]) is not nn.Linear:
        return None
    if len({m.bias is not None for m in linears}) != 1 or len(
            {str(m.weight.dtype) for m in linears}) != 1:
        return None
    act_types = tuple(ACTIVATIONS.values())
    hidden, output, dropouts = [], None, []
    i = 0
    for li, lin in enumerate(linears):
        if mods[i] is not lin:
            return None
        i += 1
        last = li == len(linears) - 1
        if not last:
            if i >= len(mods) or not isinstance(mods[i], act_types):
                return None
            hidden.append(mods[i])
            i += 1
            if i < len(mods) and type(mods[i]) is nn.Dropout:
                dropouts.append(mods[i].p)
                i += 1
        elif i < len(mods):
            if not isinstance(mods[i], act_types):
                return None
            output = mods[i]
            i += 1
    if i != len(mods):
        return None
    specs = {repr(m.spec()) for m in hidden}
    if len(specs) > 1:
        return None
    if dropouts and (len(dropouts) != len(hidden) or len(set(dropouts)) != 1 or
                     dropouts[0] == 0):
        return None
    sizes = [linears[0].in_features] + [m.out_features for m in linears]
    mlp = nn.MLP(sizes, activation=hidden[0].spec() if hidden else "tanh",
                 output_activation=None if output is None else output.spec(),
                 bias=linears[0].bias is not None, dropout=dropouts[0] if dropouts else 0.0,
                 dtype=str(linears[0].weight.dtype), generator=generator)
    mlp.generator = None
    for m in mlp.modules():
        if hasattr(m, "generator"):
            m.generator = None
    if [type(m) for m in mlp] != [type(m) for m in mods]:
        return None
    if linears[0].weight.device != "cpu":
        mlp.to(linears[0].weight.device)
    mlp.load_state_dict(seq.state_dict())
    return mlp
