"""Gradient clipping, in place on ``p.grad``: by global norm and by value (as in PyTorch)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..backend import get_xp
from ..compile import _hooks
from ..errors import InvalidValueError
from ..tensor import Tensor
from .optimizer import check_real


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Any]:
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise InvalidValueError(f"clipping needs tensors; item {i} is a {type(p).__name__}")
    return [p.grad for p in params if p.grad is not None]


def _vector_norm(a: Any, norm_type: float) -> Any:
    """The ``norm_type``-norm of all the entries of ``a``, as a 0-d array of ``a``'s dtype."""
    xp = get_xp(a)
    if a.size == 0:
        return xp.zeros((), dtype=a.dtype)
    if norm_type == math.inf:
        return xp.abs(a).max()
    if norm_type == 2.0:
        return xp.sqrt(xp.sum(a * a))
    if norm_type == 1.0:
        return xp.sum(xp.abs(a))
    return xp.sum(xp.abs(a) ** norm_type) ** (1.0 / norm_type)


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float,
                    norm_type: float = 2.0, error_if_nonfinite: bool = False) -> Tensor:
    r"""Scale the gradients in place so that their joint norm is at most ``max_norm``.

    With :math:`N = \lVert (\lVert g_1 \rVert_q, \dots, \lVert g_k \rVert_q) \rVert_q` (the
    ``norm_type``-norm of all gradients concatenated; :math:`q = \infty` is the largest
    :math:`|g|`), every gradient becomes

    .. math:: g \leftarrow g \cdot \min\!\left(1, \frac{\text{max\_norm}}{N + 10^{-6}}\right)

    Parameters whose ``grad`` is None are skipped.

    Args:
        parameters: a tensor or an iterable of tensors (e.g. ``model.parameters()``).
        max_norm: the largest allowed norm (>= 0).
        norm_type: :math:`q`, a positive number or ``math.inf``. Default: 2.
        error_if_nonfinite: raise :class:`~chainrule.errors.InvalidValueError` when :math:`N` is
            NaN or infinite instead of scaling by it. Default: False.

    Returns:
        :math:`N`, the norm before clipping, as a 0-d tensor (``.item()`` for a float).
    """
    # cr.compile is tracing: the clipping is an op of the step
    if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
        return _tr.clip("clip_norm", clip_grad_norm_, parameters,
                                  (max_norm, norm_type, error_if_nonfinite))
    max_norm = check_real("max_norm", max_norm)
    norm_type = float(norm_type)
    if not norm_type > 0.0:
        raise InvalidValueError(f"norm_type must be positive or math.inf, got {norm_type}")
    grads = _grads(parameters)
    if not grads:
        return Tensor(0.0)
    xp = get_xp(grads[0])
    total = _vector_norm(xp.stack([_vector_norm(g, norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise InvalidValueError(
            f"the total norm of order {norm_type} of the gradients is {float(total)}, so they "
            "cannot be clipped; pass error_if_nonfinite=False to scale by it anyway"
        )
    # multiplying by a clamped coefficient instead of testing it avoids a device sync on a GPU
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef.astype(g.dtype)
    return Tensor(total)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    r"""Clip every gradient entry in place to :math:`[-c, c]`: :math:`g \leftarrow
    \min(\max(g, -c), c)`.

    Args:
        parameters: a tensor or an iterable of tensors; those whose ``grad`` is None are skipped.
        clip_value: :math:`c \ge 0`.
    """
    # cr.compile is tracing: the clipping is an op of the step
    if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
        return _tr.clip("clip_value", clip_grad_value_, parameters, (clip_value,))
    c = check_real("clip_value", clip_value)
    for g in _grads(parameters):
        get_xp(g).clip(g, -c, c, out=g)
