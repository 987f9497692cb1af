"""What PyTorch's OpInfo samples found (tests/conformance), each pinned here without PyTorch:
the defects, fixed, and the operators and arguments PyTorch users reach for, added. Expected
values are PyTorch 2.13's, computed once and written down, or NumPy's."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule.errors import DTypeError, IndexingError, InvalidValueError, ShapeError


def f64(a, requires_grad=False):
    return cr.tensor(a, dtype=cr.float64, requires_grad=requires_grad)


# --------------------------------------------------------------------------- var/std correction
def test_var_std_take_a_fractional_correction():
    x = f64([1.0, 2.0, 4.0], requires_grad=True)
    v = x.var(correction=1.3)  # PyTorch: 2.7451 (it was 2.3333: the 1.3 was truncated to 1)
    centred = np.array([1.0, 2.0, 4.0]) - 7 / 3
    np.testing.assert_allclose(v.item(), (centred**2).sum() / (3 - 1.3), rtol=1e-15)
    np.testing.assert_allclose(v.item(), 2.7450980392156863, rtol=1e-15)
    v.backward()
    np.testing.assert_allclose(x.grad, 2 * centred / (3 - 1.3), rtol=1e-14)
    np.testing.assert_allclose(cr.std(x, ddof=0.5).item(), np.sqrt((centred**2).sum() / 2.5))
    assert cr.gradcheck(lambda t: t.std(dim=0, correction=-1.5), f64(np.arange(6.0).reshape(3, 2),
                                                                    requires_grad=True))


def test_var_unbiased_alias_and_refused_spellings():
    a = np.array([[1.0, 2.0, 4.0], [0.0, 3.0, 3.0]])
    x = f64(a)
    np.testing.assert_allclose(x.var(dim=1, unbiased=True).numpy(), a.var(axis=1, ddof=1))
    np.testing.assert_allclose(x.std(unbiased=False).item(), a.std())
    with pytest.raises(InvalidValueError, match="correction=None"):
        x.var(correction=None)  # PyTorch's "default" is 1, chainrule's 0: ambiguous
    with pytest.raises(InvalidValueError, match="one of"):
        x.var(ddof=1, correction=1)
    with pytest.raises(InvalidValueError, match="bool"):
        x.var(True)  # PyTorch's var(x, unbiased): never axis 1


# --------------------------------------------------------------------------- 0-d losses
def test_mse_loss_of_0d_tensors_backpropagates():
    x = f64(3.0, requires_grad=True)
    loss = F.mse_loss(x, f64(1.0))  # the fused node's VJP wrote into a NumPy scalar
    assert loss.shape == () and loss.item() == 4.0
    loss.backward()
    assert x.grad.shape == () and float(x.grad) == 4.0


@pytest.mark.parametrize("name", ["squared_error", "hinge", "poisson_nll", "bce_with_logits"])
def test_fused_losses_take_0d_tensors(name):
    from chainrule.ops import loss as L

    x = f64(0.3, requires_grad=True)
    t = np.asarray(1.0)
    out = getattr(L, name)(x, t, None, 1.0)
    out.backward()
    assert x.grad.shape == ()
    assert cr.gradcheck(lambda s: getattr(L, name)(s, t, None, 1.0), f64(0.3, requires_grad=True))


# --------------------------------------------------------------------------- empty inputs
def test_softmax_log_softmax_logsumexp_of_empty_tensors():
    x = f64(np.zeros((2, 0)), requires_grad=True)
    for fn in (cr.softmax, cr.log_softmax):
        out = fn(x, dim=-1)
        assert out.shape == (2, 0) and out.dtype == np.float64
        out.sum().backward()
        assert x.grad.shape == (2, 0)
    np.testing.assert_array_equal(cr.logsumexp(x, 1).numpy(), [-np.inf, -np.inf])  # log 0
    assert cr.logsumexp(x, 0).shape == (0,)
    assert cr.softmax(f64(np.zeros((5, 0, 0))), -1).shape == (5, 0, 0)


def test_argmax_over_a_non_empty_axis_of_an_empty_tensor():
    x = f64(np.zeros((0, 3)))
    assert cr.argmax(x, dim=1).shape == (0,)
    with pytest.raises(ShapeError, match="empty axis"):
        cr.argmax(x, dim=0)
    with pytest.raises(ShapeError, match="empty axis"):
        cr.argmin(x)


# --------------------------------------------------------------------------- 0-d tensors and dim
@pytest.mark.parametrize("dim", [0, -1])
def test_0d_tensors_take_dim_0_and_minus_1(dim):
    s = f64(3.5, requires_grad=True)
    assert cr.argmax(s, dim).item() == 0 and cr.argmin(s, dim=dim, keepdim=True).shape == ()
    assert cr.softmax(s, dim).item() == 1.0 and cr.log_softmax(s, dim).item() == 0.0
    assert cr.transpose(s, 0, dim).item() == 3.5 and s.transpose(dim, dim).shape == ()
    v, i = s.max(dim=dim)
    assert v.item() == 3.5 and i.item() == 0 and i.dtype == np.int64
    assert cr.index_select(s, dim, [0]).item() == 3.5
    (cr.softmax(s, dim) + cr.transpose(s, 0, 0) + s.min(dim=dim).values).backward()
    assert float(s.grad) == 2.0
    with pytest.raises(ShapeError):
        cr.argmax(s, 1)


# --------------------------------------------------------------------------- dim=()
def test_dim_empty_tuple_reduces_everything_axis_empty_tuple_nothing():
    a = np.arange(6.0).reshape(2, 3)
    x = f64(a)
    for fn in ("sum", "mean", "amax", "amin", "logsumexp"):
        assert getattr(x, fn)(dim=()).shape == (), fn  # PyTorch's sum(x, dim=())
        np.testing.assert_allclose(getattr(x, fn)(dim=()).item(), getattr(x, fn)().item())
    assert x.var(dim=(), correction=1).item() == pytest.approx(a.var(ddof=1))
    np.testing.assert_array_equal(x.sum(axis=()).numpy(), a)  # NumPy's np.sum(a, axis=())
    assert x.sum(dim=(), keepdim=True).shape == (1, 1)


# --------------------------------------------------------------------------- new primitives
def test_sin_cos_log1p_expm1_rsqrt_square_values():
    a = np.array([1e-12, 0.5, 2.0])
    x = f64(a)
    np.testing.assert_allclose(cr.sin(x).numpy(), np.sin(a), rtol=1e-15)
    np.testing.assert_allclose(x.cos().numpy(), np.cos(a), rtol=1e-15)
    np.testing.assert_allclose(cr.log1p(x).numpy(), np.log1p(a), rtol=1e-15)  # exact at 1e-12
    np.testing.assert_allclose(x.expm1().numpy(), np.expm1(a), rtol=1e-15)
    np.testing.assert_allclose(cr.rsqrt(x).numpy(), 1 / np.sqrt(a), rtol=1e-15)
    np.testing.assert_array_equal(x.square().numpy(), a * a)
    assert cr.square(cr.tensor([3, -2])).tolist() == [9, 4]  # integers stay integers
    assert cr.sin(cr.tensor([0, 1])).dtype == np.float32  # as exp: the default float
    i = cr.tensor([1, 2])
    assert cr.rsqrt(i).dtype == np.float32 and i.log1p().dtype == np.float32


def test_index_select():
    a = np.arange(12.0).reshape(3, 4)
    x = f64(a, requires_grad=True)
    y = cr.index_select(x, 0, cr.tensor([2, 0, 2]))
    np.testing.assert_array_equal(y.numpy(), a[[2, 0, 2]])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [[1] * 4, [0] * 4, [2] * 4])  # repeats accumulate
    np.testing.assert_array_equal(x.index_select(-1, np.array([3])).numpy(), a[:, [3]])
    with pytest.raises(IndexingError, match="out of range"):
        cr.index_select(x, 0, [3])
    with pytest.raises(IndexingError, match="out of range"):
        cr.index_select(x, 0, [-1])  # as PyTorch: no wrap-around
    with pytest.raises(IndexingError, match="integers"):
        cr.index_select(x, 0, [0.5])
    with pytest.raises(IndexingError, match="1-D"):
        cr.index_select(x, 0, [[0]])


def test_clamp_with_tensor_bounds():
    x = f64([-2.0, 0.0, 0.5, 3.0, 1.0], requires_grad=True)
    lo = f64([-1.0, 0.0, 1.0, 0.0, 2.0], requires_grad=True)
    hi = f64([1.0, 1.0, 2.0, 2.0, 0.0], requires_grad=True)  # last: min > max gives max
    y = cr.clamp(x, lo, hi)
    np.testing.assert_array_equal(y.numpy(), [-1, 0, 1, 2, 0])
    y.sum().backward()
    # PyTorch's rule: x keeps its gradient inside [lo, hi] (bounds included)
    np.testing.assert_array_equal(x.grad, [0, 1, 0, 0, 0])
    np.testing.assert_array_equal(lo.grad, [1, 0, 1, 0, 0])
    np.testing.assert_array_equal(hi.grad, [0, 0, 0, 1, 1])
    z = x.clamp(min=np.array([0.25]))  # an array bound broadcasts
    np.testing.assert_array_equal(z.numpy(), [0.25, 0.25, 0.5, 3.0, 1.0])
    assert cr.clamp(cr.tensor([1, 5]), max=cr.tensor([2, 2])).tolist() == [1, 2]  # int stays int
    assert cr.clamp(x, min=cr.tensor([0, 0, 0, 0, 0], dtype="int32")).dtype == np.float64


def test_add_sub_alpha():
    a, b = f64([1.0, 2.0], requires_grad=True), f64([10.0, 20.0], requires_grad=True)
    y = cr.add(a, b, alpha=2) + a.sub(b, alpha=-0.5)
    np.testing.assert_array_equal(y.numpy(), [1 + 20 + 1 + 5, 2 + 40 + 2 + 10])
    y.sum().backward()
    np.testing.assert_array_equal(b.grad, [2.5, 2.5])
    assert cr.add(cr.tensor([1]), cr.tensor([2]), alpha=3).tolist() == [7]
    assert cr.sub(a, 1.0, alpha=2).tolist() == [-1.0, 0.0]
    with pytest.raises(InvalidValueError, match="integer"):
        cr.add(cr.tensor([1]), cr.tensor([2]), alpha=0.5)
    with pytest.raises(InvalidValueError, match="number"):
        cr.add(a, b, alpha="2")


def test_div_rounding_mode():
    a = np.array([7.0, -7.0, 7.5, -0.5])
    b = np.array([2.0, 2.0, -2.0, 3.0])
    x = f64(a, requires_grad=True)
    np.testing.assert_array_equal(cr.div(x, f64(b), rounding_mode="trunc").numpy(),
                                  [3, -3, -3, -0.0])
    np.testing.assert_array_equal(x.div(f64(b), rounding_mode="floor").numpy(), [3, -4, -4, -1])
    assert not cr.div(x, 2.0, rounding_mode="floor").requires_grad  # a step function
    i, j = cr.tensor([7, -7, 7, -7]), cr.tensor([2, 2, -2, -2])
    t = cr.div(i, j, rounding_mode="trunc")
    assert t.dtype == np.int64 and t.tolist() == [3, -3, -3, 3]
    assert cr.div(i, j, rounding_mode="floor").tolist() == [3, -4, -4, 3]
    assert cr.div(i, j).dtype == np.float32  # true division, as before
    with pytest.raises(InvalidValueError, match="division by zero"):
        cr.div(i, 0, rounding_mode="floor")
    with pytest.raises(InvalidValueError, match="rounding_mode"):
        cr.div(x, 2.0, rounding_mode="round")


def test_softmax_dtype():
    x = cr.tensor([[1.0, 2.0, 3.0]])  # float32
    p = cr.softmax(x, dim=1, dtype="float64")
    assert p.dtype == np.float64
    e = np.exp(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(p.numpy()[0], e / e.sum(), rtol=1e-15)
    assert F.log_softmax(x, dim=1, dtype=cr.float64).dtype == np.float64
    assert x.softmax(dim=-1, dtype="float32").dtype == np.float32
    with pytest.raises(DTypeError):
        cr.softmax(x, dtype="int64")


def test_size_numel_clone():
    x = cr.ones(2, 3, requires_grad=True)
    assert x.size == 6 and x.size() == (2, 3) and x.size(-1) == 3 and x.size(0) == 2
    assert x.numel() == 6 and isinstance(x.numel(), int)
    assert str(x.size) == "6" and x.size * 2 == 12 and pickle.loads(pickle.dumps(x.size)) == 6
    with pytest.raises(ShapeError):
        x.size(2)
    c = x.clone()
    assert c.requires_grad and not np.shares_memory(c.numpy(), x.numpy())
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 3.0))
    i = cr.arange(3).clone()
    assert i.dtype == np.int64 and not i.requires_grad


def test_max_min_with_dim_return_values_and_indices():
    a = np.array([[1.0, 5.0, 5.0], [7.0, 0.0, 1.0]])
    x = f64(a, requires_grad=True)
    v, i = x.max(dim=1)  # before: silently unpacked the two rows of a (2,) tensor of maxima
    assert isinstance(x.max(dim=1), cr.ValuesIndices)
    np.testing.assert_array_equal(v.numpy(), [5, 7])
    np.testing.assert_array_equal(i.numpy(), [1, 0])  # the first of tied maxima
    r = cr.min(x, dim=0, keepdim=True)
    assert r.values.shape == (1, 3) and r.indices.tolist() == [[0, 1, 1]]
    (v * 2).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0, 2, 0], [2, 0, 0]])  # to the indexed element only
    # the NumPy spellings still give the maxima, ties sharing the gradient (PyTorch's amax)
    np.testing.assert_array_equal(x.max(1).numpy(), [5, 7])
    np.testing.assert_array_equal(x.max(axis=(0, 1)).numpy(), 7)
    assert x.max(dim=None).shape == ()
    with pytest.raises(InvalidValueError, match="one axis"):
        x.max(dim=(0, 1))
    assert cr.gradcheck(lambda t: t.max(dim=0).values * t.min(dim=-1, keepdim=True).values.sum(),
                        f64(np.array([[0.1, 1.7], [2.4, -0.9]]), requires_grad=True))
