"""``gradcheck``: the engine's gradients against central finite differences in float64.

Following HIPS autograd's ``check_grads``, the output is contracted with a fixed random direction
v, so one backward pass gives the vector-Jacobian product v^T J for every input, and each element
of it is compared with (<v, f(x + eps e_i)> - <v, f(x - eps e_i)>) / (2 eps).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .autograd import no_grad
from .backend import get_xp, to_numpy
from .errors import GradcheckError, InvalidValueError
from .tensor import Tensor


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
) -> bool:
    """Check the gradients of ``fn`` at ``inputs`` against central differences in float64.

    Args:
        fn: takes the inputs (as tensors) and returns a tensor, or a tuple of tensors.
        inputs: a tensor or a sequence of tensors; floating tensors with ``requires_grad`` are
            checked (as float64 copies), everything else is passed through unchanged.
        eps: the finite-difference step.
        atol: absolute tolerance: an element passes when
            |analytic - numeric| <= atol + rtol * |numeric|.
        rtol: relative tolerance (see ``atol``).
        seed: seeds the random direction the output is contracted with.

    Returns:
        True when every element passes.

    Raises:
        GradcheckError: naming the input, the element index, both values and the error, for the
            worst element.
    """
    single = isinstance(inputs, Tensor)
    given: Sequence[Any] = (inputs,) if single else tuple(inputs)
    xs: list[Any] = []
    checked: list[int] = []
    for k, t in enumerate(given):
        if isinstance(t, Tensor) and t.requires_grad:
            if not bool(get_xp(t.data).isfinite(t.data).all()):
                raise InvalidValueError(f"gradcheck: input {k} contains NaN or infinity")
            # C order, so that reshape(-1) below is a view whose writes reach the input
            x = Tensor(t.data.astype(np.float64, order="C"), requires_grad=True)
            checked.append(k)
            xs.append(x)
        else:
            xs.append(t)
    if not checked:
        raise InvalidValueError("gradcheck: no input has requires_grad=True")

    out = _outputs(fn(*xs))
    rng = np.random.default_rng(seed)
    directions = [rng.standard_normal(o.shape) for o in out]

    def objective() -> float:
        with no_grad():
            vals = _outputs(fn(*xs))
        return float(sum(np.sum(to_numpy(o.data).astype(np.float64) * v)
                         for o, v in zip(vals, directions)))

    for o, v in zip(out, directions):
        if o.requires_grad:
            o.backward(get_xp(o.data).asarray(v, dtype=o.dtype), retain_graph=True)

    worst: tuple[float, str] | None = None
    for k in checked:
        x = xs[k]
        analytic = to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        flat = x.data.reshape(-1)
        numeric = np.zeros(flat.size)
        for i in range(flat.size):
            orig = flat[i].item()
            flat[i] = orig + eps
            f_plus = objective()
            flat[i] = orig - eps
            f_minus = objective()
            flat[i] = orig
            numeric[i] = (f_plus - f_minus) / (2 * eps)
        a = analytic.reshape(-1)
        err = np.abs(a - numeric)
        excess = err - (atol + rtol * np.abs(numeric))
        # A NaN or infinity on either side is a failure (NaN compares False with everything, so
        # it would otherwise pass silently); it ranks as the worst element.
        excess = np.where(np.isfinite(a) & np.isfinite(numeric), excess, np.inf)
        if excess.size and excess.max() > 0:
            i = int(np.argmax(excess))
            idx = np.unravel_index(i, x.shape) if x.shape else ()
            msg = (f"gradcheck failed for input {k} at index {tuple(int(j) for j in idx)}: "
                   f"analytic {a[i]:.6g}, numeric {numeric[i]:.6g}, "
                   f"error {err[i]:.3g} > atol {atol} + rtol {rtol} * |numeric|")
            score = float(excess[i]) if np.isfinite(excess[i]) else float("inf")
            if worst is None or score > worst[0]:
                worst = (score, msg)
    if worst is not None:
        raise GradcheckError(worst[1])
    return True


def _outputs(result: Any) -> list[Tensor]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    outs = [o for o in items if isinstance(o, Tensor)]
    if not outs:
        raise InvalidValueError("gradcheck: fn must return a tensor or a tuple of tensors")
    return outs
