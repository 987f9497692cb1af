"""``cr.gradcheck``: it must pass correct gradients and catch wrong ones, naming the worst
element."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.autograd import apply
from chainrule.errors import GradcheckError, InvalidValueError
from chainrule.ops.registry import Primitive


def _prim(vjp):
    """An unregistered primitive y = 2 x with the given (possibly wrong) VJP."""
    return Primitive(name="double", forward=lambda ctx, x: 2 * x, vjp=vjp, kind="other",
                     domain="real", differentiable=True, saves="nothing", doc="test only")


def _x(shape=(2, 3), dtype=cr.float64, seed=0):
    return cr.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=dtype,
                     requires_grad=True)


def test_passes_correct_gradients_and_returns_true():
    x, w = _x((2, 3)), _x((3, 4), seed=1)
    assert cr.gradcheck(lambda a, b: (a @ b).tanh(), (x, w)) is True
    assert cr.gradcheck(lambda a: a.exp().sum(), x) is True  # a single tensor is fine too
    assert cr.gradcheck(lambda a: 2 * a, (x,)) is True


def test_names_the_worst_element():
    def vjp(ctx, g):
        dx = 2 * g
        dx[1, 2] += 0.5  # one wrong element
        dx[0, 0] += 0.01  # and a smaller error elsewhere
        return (dx,)

    with pytest.raises(GradcheckError, match=r"input 0 at index \(1, 2\)") as info:
        cr.gradcheck(lambda a: apply(_prim(vjp), (a,)), _x())
    assert "analytic" in str(info.value) and "numeric" in str(info.value)


def test_names_the_worst_input():
    good = _x((3,))
    bad = _x((2,), seed=1)
    wrong = _prim(lambda ctx, g: (3 * g,))
    with pytest.raises(GradcheckError, match="input 1"):
        cr.gradcheck(lambda a, b: (a * 2).sum() + apply(wrong, (b,)).sum(), (good, bad))


def test_tolerances_are_respected():
    slightly = _prim(lambda ctx, g: (2 * g * (1 + 1e-4),))  # 0.01 % off

    def f(a):
        return apply(slightly, (a,))

    assert cr.gradcheck(f, _x())  # within the default rtol of 1e-3
    with pytest.raises(GradcheckError):
        cr.gradcheck(f, _x(), atol=0.0, rtol=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_gradients_and_nan_values_fail():
    nan_vjp = _prim(lambda ctx, g: (g * np.nan,))
    with pytest.raises(GradcheckError):
        cr.gradcheck(lambda a: apply(nan_vjp, (a,)), _x())
    x = cr.tensor([0.5, 1.0], dtype=cr.float64, requires_grad=True)
    # sqrt(x - 0.75) is NaN at x = 0.5 (numeric NaN), which must not pass silently.
    with pytest.raises(GradcheckError):
        cr.gradcheck(lambda a: (a - 0.75).sqrt(), x)


def test_checks_in_float64_even_for_float32_inputs():
    x = _x((4,), dtype=cr.float32)
    # In float32, central differences with eps = 1e-6 would be pure rounding noise.
    assert cr.gradcheck(lambda a: (a * 3).exp(), x)
    assert x.grad is None and x.dtype == np.float32  # the caller's tensor is untouched


def test_multiple_outputs_and_constant_inputs():
    x = _x((3,))
    c = cr.tensor([1.0, 2.0, 3.0], dtype=cr.float64)  # does not require grad: passed through
    assert cr.gradcheck(lambda a, k, s: (a * k, (a * s).sum()), (x, c, 0.5))


def test_rejects_unusable_inputs():
    with pytest.raises(InvalidValueError, match="requires_grad"):
        cr.gradcheck(lambda a: a * 2, cr.tensor([1.0]))
    with pytest.raises(InvalidValueError, match="NaN"):
        cr.gradcheck(lambda a: a * 2, cr.tensor([np.nan], requires_grad=True))
    with pytest.raises(InvalidValueError, match="tensor"):
        cr.gradcheck(lambda a: 3.0, _x())


def test_gradcheck_perturbs_a_column_major_input():
    # astype keeps Fortran order; the perturbations must still reach the input (they did not,
    # and gradcheck reported a false mismatch).
    a = cr.tensor(np.asfortranarray(np.random.default_rng(0).standard_normal((3, 4))),
                  requires_grad=True)
    assert cr.gradcheck(lambda t: (t * t).sum(axis=0), [a])
