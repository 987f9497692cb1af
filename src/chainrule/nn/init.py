"""Parameter initialisation, after ``torch.nn.init``.

Every function fills a tensor in place (without recording a graph) and returns it. Random ones
take ``generator=`` (a :class:`chainrule.Generator`); without it they draw from the default
generator, so ``cr.manual_seed(s)`` makes them reproducible.

For a weight of shape (out, in) (``nn.Linear``), fan_in = in and fan_out = out; for more axes,
both are multiplied by the product of the trailing axes (the receptive field), as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import chainrule as cr
from chainrule.errors import DTypeError, InvalidValueError, ShapeError

_LINEAR_GAIN = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                "conv_transpose2d", "conv_transpose3d", "sigmoid")
_GAINS = _LINEAR_GAIN + ("tanh", "relu", "leaky_relu", "selu")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended scale of the weights in front of ``nonlinearity`` (PyTorch's values).

    ==================  ==============================
    linear / identity   1
    sigmoid             1
    tanh                5/3
    relu                sqrt(2)
    leaky_relu          sqrt(2 / (1 + slope^2)), slope = ``param`` (default 0.01)
    selu                3/4
    ==================  ==============================
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise InvalidValueError(f"calculate_gain: negative slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise InvalidValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; "
                            f"valid: {', '.join(_GAINS)}")


def _calculate_fan_in_and_fan_out(tensor: cr.Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ShapeError(f"fan in and fan out need a tensor with at least 2 dimensions, got shape "
                         f"{tuple(tensor.shape)}")
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fan(tensor: cr.Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise InvalidValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _check(tensor: Any, op: str) -> None:
    if not isinstance(tensor, cr.Tensor):
        raise DTypeError(f"{op}: expected a chainrule Tensor, got {type(tensor).__name__}")
    if tensor.dtype.kind != "f":
        raise DTypeError(f"{op}: can only fill a floating tensor, got {tensor.dtype}")


def _fill(tensor: cr.Tensor, values: cr.Tensor) -> cr.Tensor:
    with cr.no_grad():
        tensor.copy_(values.to(device=tensor.device))
    return tensor


def uniform_(tensor: cr.Tensor, a: float = 0.0, b: float = 1.0,
             generator: cr.Generator | None = None) -> cr.Tensor:
    """Fill with samples of U(a, b)."""
    _check(tensor, "uniform_")
    if not a <= b:
        raise InvalidValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    u = cr.rand(*tensor.shape, dtype="float64", generator=generator)
    return _fill(tensor, u * (b - a) + a)


def normal_(tensor: cr.Tensor, mean: float = 0.0, std: float = 1.0,
            generator: cr.Generator | None = None) -> cr.Tensor:
    """Fill with samples of N(mean, std^2)."""
    _check(tensor, "normal_")
    if not std >= 0:
        raise InvalidValueError(f"normal_: std must be non-negative, got {std}")
    z = cr.randn(*tensor.shape, dtype="float64", generator=generator)
    return _fill(tensor, z * std + mean)


def constant_(tensor: cr.Tensor, val: float) -> cr.Tensor:
    """Fill with ``val``."""
    _check(tensor, "constant_")
    with cr.no_grad():
        tensor.copy_(val)
    return tensor


def zeros_(tensor: cr.Tensor) -> cr.Tensor:
    """Fill with 0."""
    return constant_(tensor, 0.0)


def ones_(tensor: cr.Tensor) -> cr.Tensor:
    """Fill with 1."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: cr.Tensor, gain: float = 1.0,
                    generator: cr.Generator | None = None) -> cr.Tensor:
    """Glorot & Bengio (2010): U(-a, a) with a = gain sqrt(6 / (fan_in + fan_out)), so that
    std = gain sqrt(2 / (fan_in + fan_out))."""
    _check(tensor, "xavier_uniform_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if tensor.size == 0:
        return tensor
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a, generator=generator)


def xavier_normal_(tensor: cr.Tensor, gain: float = 1.0,
                   generator: cr.Generator | None = None) -> cr.Tensor:
    """Glorot & Bengio (2010): N(0, std^2) with std = gain sqrt(2 / (fan_in + fan_out))."""
    _check(tensor, "xavier_normal_")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    if tensor.size == 0:
        return tensor
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)


def kaiming_uniform_(tensor: cr.Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: cr.Generator | None = None) -> cr.Tensor:
    """He et al. (2015): U(-bound, bound) with bound = gain sqrt(3 / fan), gain =
    ``calculate_gain(nonlinearity, a)`` and fan = fan_in or fan_out (``mode``). With the defaults
    and ``a = sqrt(5)`` this is PyTorch's ``nn.Linear`` init, bound = 1 / sqrt(fan_in)."""
    _check(tensor, "kaiming_uniform_")
    fan = _fan(tensor, mode)
    if tensor.size == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound, generator=generator)


def kaiming_normal_(tensor: cr.Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: cr.Generator | None = None) -> cr.Tensor:
    """He et al. (2015): N(0, std^2) with std = gain / sqrt(fan)."""
    _check(tensor, "kaiming_normal_")
    fan = _fan(tensor, mode)
    if tensor.size == 0:
        return tensor
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(tensor, 0.0, std, generator=generator)


__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]
