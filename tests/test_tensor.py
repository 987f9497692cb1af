"""The Tensor: dtypes, properties, conversions, repr, Python operators (plain, reflected and
in-place) and the weak typing of Python scalars."""

from __future__ import annotations

import operator

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import DTypeError, GraphError, InvalidValueError


def test_default_dtypes():
    assert cr.tensor([1.0, 2.0]).dtype == np.float32
    assert cr.tensor(1.5).dtype == np.float32
    assert cr.tensor([1, 2]).dtype == np.int64
    assert cr.tensor([True, False]).dtype == np.bool_
    assert cr.tensor([1, 2.5]).dtype == np.float32
    assert cr.tensor([1.0], dtype=cr.float64).dtype == np.float64
    assert cr.tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64  # arrays keep theirs
    assert cr.tensor([1.0], dtype="float16").dtype == np.float16
    with cr.default_dtype(cr.float64):
        assert cr.tensor([1.0]).dtype == np.float64 and cr.zeros(2).dtype == np.float64
    assert cr.tensor([1.0]).dtype == np.float32


def test_properties():
    x = cr.tensor(np.arange(24.0).reshape(2, 3, 4).tolist(), requires_grad=True)
    assert x.shape == (2, 3, 4) and x.ndim == 3 and x.size == 24 and x.dtype == np.float32
    assert x.T.shape == (4, 3, 2)
    np.testing.assert_array_equal(x.T.numpy(), x.numpy().T)
    assert x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.device == "cpu"
    assert len(x) == 2
    assert [t.shape for t in x] == [(3, 4), (3, 4)]
    s = cr.tensor(3.0)
    assert s.shape == () and s.ndim == 0 and s.size == 1
    with pytest.raises(TypeError):
        len(s)


def test_integer_tensors_are_never_differentiable():
    with pytest.raises(DTypeError):
        cr.tensor([1, 2], requires_grad=True)
    with pytest.raises(DTypeError):
        cr.arange(3).requires_grad_()
    i = cr.arange(3)
    x = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * i  # the int operand is cast to float32 and gets no gradient
    assert y.dtype == np.float32 and y.requires_grad
    y.sum().backward()
    assert i.grad is None
    np.testing.assert_array_equal(x.grad, [0, 1, 2])


def test_requires_grad_cannot_be_switched_off_on_a_non_leaf():
    x = cr.tensor([1.0], requires_grad=True)
    y = x * 2
    with pytest.raises(GraphError):
        y.requires_grad = False
    x.requires_grad = False
    assert not (x * 2).requires_grad


def test_conversions():
    x = cr.tensor([[1.5, -2.0]])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert np.shares_memory(a, x.data)  # on the CPU, numpy() is a view
    assert x.tolist() == [[1.5, -2.0]]
    assert cr.tensor([[2.5]]).item() == 2.5 and isinstance(cr.tensor([[2.5]]).item(), float)
    assert cr.tensor(7).item() == 7 and isinstance(cr.tensor(7).item(), int)
    with pytest.raises(InvalidValueError):
        x.item()
    np.testing.assert_array_equal(np.asarray(x), [[1.5, -2.0]])
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    assert float(cr.tensor([2.0])) == 2.0 and int(cr.tensor([3])) == 3
    assert bool(cr.tensor([1.0])) and not bool(cr.tensor(0.0))
    with pytest.raises(InvalidValueError):
        bool(x)
    assert [10, 20, 30][cr.tensor(1)] == 20  # __index__


def test_astype():
    x = cr.tensor([1.7, -2.2], requires_grad=True)
    d = x.astype(cr.float64)
    assert d.dtype == np.float64 and d.requires_grad
    (d * d).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2 * np.array([1.7, -2.2]), rtol=1e-6)
    i = x.astype("int64")
    assert i.dtype == np.int64 and i.tolist() == [1, -2] and not i.requires_grad
    assert x.double().dtype == np.float64 and x.double().float().dtype == np.float32
    with pytest.raises(InvalidValueError, match="NaN"):
        cr.tensor([np.nan]).astype(cr.int32)
    with pytest.raises(DTypeError):
        x.astype("complex64")


def test_repr_is_readable():
    assert repr(cr.tensor([1.0, 2.5])) == "tensor([1. , 2.5])"
    assert repr(cr.tensor([1, 2])) == "tensor([1, 2])"
    assert "dtype=float64" in repr(cr.tensor([1.0], dtype=cr.float64))
    assert "requires_grad=True" in repr(cr.tensor([1.0], requires_grad=True))
    assert "grad_fn=<mul>" in repr(cr.tensor([1.0], requires_grad=True) * 2)
    assert "dtype=bool" in repr(cr.tensor([True]))
    assert repr(cr.zeros(1000)).count("\n") < 10  # summarised


BINARY_OPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow,
              operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("op", BINARY_OPS, ids=lambda f: f.__name__)
def test_operators_match_numpy_plain_and_reflected(op, rng):
    a = np.abs(rng.standard_normal((3, 4))) + 0.5
    b = np.abs(rng.standard_normal(4)) + 0.5
    ta, tb = cr.tensor(a, dtype=cr.float64), cr.tensor(b, dtype=cr.float64)
    np.testing.assert_allclose(op(ta, tb).numpy(), op(a, b))
    np.testing.assert_allclose(op(ta, 1.5).numpy(), op(a, 1.5))
    np.testing.assert_allclose(op(1.5, ta).numpy(), op(1.5, a))  # Python number on the left
    np.testing.assert_allclose(op(a, tb).numpy(), op(a, b))  # ndarray on the left defers to us
    assert isinstance(op(a, tb), cr.Tensor)


def test_unary_operators_and_matmul():
    a = np.array([[1.0, -2.0], [3.0, 4.0]])
    t = cr.tensor(a)
    np.testing.assert_array_equal((-t).numpy(), -a)
    np.testing.assert_array_equal((+t).numpy(), a)
    np.testing.assert_array_equal(abs(t).numpy(), np.abs(a))
    np.testing.assert_array_equal((t @ t).numpy(), a @ a)
    np.testing.assert_array_equal((a @ t).numpy(), a @ a)


def test_inplace_operators_write_into_data_outside_a_graph():
    t = cr.tensor([1.0, 2.0])
    data = t.data
    t += 1
    t -= 0.5
    t *= 4
    t /= 2
    assert t.data is data  # really in place
    np.testing.assert_array_equal(t.numpy(), [3, 5])
    t.add_(1).mul_(2).sub_(1).div_(3)
    np.testing.assert_allclose(t.numpy(), [7 / 3, 11 / 3])
    t.zero_()
    np.testing.assert_array_equal(t.numpy(), [0, 0])
    t.copy_(cr.tensor([4.0, 5.0]))
    np.testing.assert_array_equal(t.numpy(), [4, 5])
    t[0] = 9.0
    assert t.tolist() == [9.0, 5.0]


def test_python_scalars_are_weak():
    x = cr.tensor([1.0, 2.0])
    for y in (x * 2.0, 2.0 * x, x + 1, x / 3, x**2, x - np.float64(1.0), x * np.int64(2),
              cr.maximum(x, 0.5), cr.where(x > 1, x, 0.0), x.clip(0.0, 1.0)):
        assert y.dtype == np.float32, y
    h = cr.tensor([1.0], dtype=cr.float16)
    assert (h * 3.0).dtype == np.float16
    b = cr.tensor([True, False])
    assert (b + 1).dtype == np.int64 and (b * 1.5).dtype == np.float32
    with pytest.raises(InvalidValueError):
        cr.tensor([1], dtype=cr.int32) + 2**40  # does not fit: an error, not a wrap-around


def test_getitem_values_and_setitem_under_no_grad():
    x = cr.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    np.testing.assert_array_equal(x[1].numpy(), [4, 5, 6, 7])
    np.testing.assert_array_equal(x[:, 1].numpy(), [1, 5, 9])
    np.testing.assert_array_equal(x[x > 9].numpy(), [10, 11])
    np.testing.assert_array_equal(x[[0, 0]].numpy(), [[0, 1, 2, 3]] * 2)
    np.testing.assert_array_equal(x[cr.tensor([2])].numpy(), [[8, 9, 10, 11]])
    assert x[[]].shape == (0, 4)
    with cr.no_grad():
        x[0, 0] = 100.0
    assert x[0, 0].item() == 100.0


def test_to_and_requires_grad_():
    x = cr.tensor([1.0])
    assert x.to("cpu") is x
    assert x.to(dtype=cr.float64).dtype == np.float64
    assert x.requires_grad_() is x and x.requires_grad
    with pytest.raises(InvalidValueError):
        x.to("tpu")


def test_full_reductions_hold_0d_arrays_that_in_place_ops_accept():
    s = cr.randn(3).sum()
    assert isinstance(s.data, np.ndarray) and s.shape == ()
    s.copy_(1.0)
    s += 2.0
    assert s.item() == 3.0
    assert isinstance(cr.randn(2, 2).mean().data, np.ndarray)
