"""Tensor factories and reproducible random numbers."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import DTypeError, InvalidValueError


@pytest.mark.parametrize("factory,fill", [(cr.zeros, 0.0), (cr.ones, 1.0)])
def test_zeros_ones(factory, fill):
    for t in (factory(2, 3), factory((2, 3)), factory([2, 3])):
        assert t.shape == (2, 3) and t.dtype == np.float32
        assert (t.numpy() == fill).all()
    assert factory(()).shape == () and factory(0).shape == (0,)
    assert factory(2, dtype=cr.int64).dtype == np.int64
    t = factory(3, requires_grad=True)
    assert t.requires_grad and t.is_leaf
    with pytest.raises(InvalidValueError):
        factory(-1)
    with pytest.raises(InvalidValueError):
        factory(2.5)
    with pytest.raises(DTypeError):
        factory(2, dtype=cr.int64, requires_grad=True)


def test_full_infers_dtype_from_the_fill_value():
    assert cr.full((2,), 1.5).dtype == np.float32
    assert cr.full((2,), 3).dtype == np.int64 and cr.full((2,), 3).tolist() == [3, 3]
    assert cr.full((2,), True).dtype == np.bool_
    assert cr.full(3, 2.0, dtype=cr.float64).dtype == np.float64
    with pytest.raises(InvalidValueError):
        cr.full(2, float("nan"), dtype=cr.int32)
    with pytest.raises(InvalidValueError):
        cr.full(2, "one")


def test_arange_and_eye():
    assert cr.arange(5).tolist() == [0, 1, 2, 3, 4] and cr.arange(5).dtype == np.int64
    assert cr.arange(1, 7, 2).tolist() == [1, 3, 5]
    f = cr.arange(0.0, 1.0, 0.25)
    assert f.dtype == np.float32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    with pytest.raises(InvalidValueError):
        cr.arange(0, 3, 0)
    with pytest.raises(InvalidValueError):
        cr.arange(float("nan"))
    np.testing.assert_array_equal(cr.eye(3).numpy(), np.eye(3))
    assert cr.eye(2, 3).shape == (2, 3) and cr.eye(2).dtype == np.float32


def test_like_factories_keep_shape_and_dtype():
    x = cr.tensor([[1, 2, 3]])
    z, o = cr.zeros_like(x), cr.ones_like(x)
    assert z.shape == o.shape == (1, 3) and z.dtype == o.dtype == np.int64
    assert z.tolist() == [[0, 0, 0]] and o.tolist() == [[1, 1, 1]]
    assert cr.zeros_like(x, dtype=cr.float64).dtype == np.float64
    assert cr.ones_like(cr.ones(2), requires_grad=True).requires_grad


def test_tensor_copies_its_input():
    a = np.array([1.0, 2.0], dtype=np.float32)
    t = cr.tensor(a)
    a[0] = 100
    assert t.tolist() == [1.0, 2.0]
    u = cr.tensor(t)
    t.data[1] = 50
    assert u.tolist() == [1.0, 2.0] and not u.requires_grad


def test_tensor_rejects_bad_data():
    with pytest.raises(InvalidValueError):
        cr.tensor([[1, 2], [3]])  # ragged
    with pytest.raises(DTypeError):
        cr.tensor(["a", "b"])
    with pytest.raises(DTypeError):
        cr.tensor([1.0], dtype="complex64")
    with pytest.raises(DTypeError):
        cr.tensor([1.0], dtype="not-a-dtype")
    with pytest.raises(InvalidValueError, match="NaN"):
        cr.tensor([1.0, float("nan")], dtype=cr.int64)


def test_rand_and_randn():
    cr.manual_seed(0)
    u = cr.rand(1000)
    assert u.dtype == np.float32 and u.shape == (1000,)
    assert 0.0 <= u.numpy().min() and u.numpy().max() < 1.0
    n = cr.randn(4000, dtype=cr.float64)
    assert n.dtype == np.float64
    assert abs(n.numpy().mean()) < 0.1 and abs(n.numpy().std() - 1) < 0.1
    assert cr.randn(2, 3, requires_grad=True).requires_grad
    assert cr.randn(3, dtype=cr.float16).dtype == np.float16
    with pytest.raises(DTypeError):
        cr.rand(2, dtype=cr.int64)
    g = cr.Generator(0)
    assert np.array_equal(cr.rand(5, dtype=cr.float64, generator=g).numpy(),
                          np.random.default_rng(0).random(5))  # NumPy's stream, as documented
    r = cr.randint(0, 3, (50,))
    assert r.dtype == np.int64 and set(r.tolist()) <= {0, 1, 2}


def test_manual_seed_reproduces_the_default_stream():
    cr.manual_seed(42)
    a = cr.randn(5).numpy().copy()
    b = cr.rand(3).numpy().copy()
    cr.manual_seed(42)
    np.testing.assert_array_equal(cr.randn(5).numpy(), a)
    np.testing.assert_array_equal(cr.rand(3).numpy(), b)
    cr.manual_seed(43)
    assert not np.array_equal(cr.randn(5).numpy(), a)


def test_explicit_generator_is_independent_of_the_default():
    g1, g2 = cr.Generator(7), cr.Generator(7)
    cr.manual_seed(0)
    a = cr.randn(4, generator=g1).numpy().copy()
    cr.randn(100)  # draws from the default generator do not disturb g2
    np.testing.assert_array_equal(cr.randn(4, generator=g2).numpy(), a)
    state = g1.get_state()
    x = cr.rand(3, generator=g1).numpy().copy()
    g1.set_state(state)
    np.testing.assert_array_equal(cr.rand(3, generator=g1).numpy(), x)
    with pytest.raises(InvalidValueError):
        cr.randn(2, generator=np.random.default_rng(0))
    for bad in (-1, 1.5, float("nan"), "seed"):
        with pytest.raises(InvalidValueError):
            cr.manual_seed(bad)
