"""Activations: values against NumPy/math formulas, gradients against finite differences,
stability at extreme inputs, modules, names."""

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F
from chainrule.errors import InvalidValueError
from chainrule.ops.special import erf

_erf = np.vectorize(math.erf)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.logaddexp(0, beta * x) / beta)


# name -> (functional form, module, NumPy reference)
CASES = {
    "identity": (F.identity, nn.Identity(), lambda x: x),
    "sigmoid": (F.sigmoid, nn.Sigmoid(), _sigmoid),
    "tanh": (F.tanh, nn.Tanh(), np.tanh),
    "relu": (F.relu, nn.ReLU(), lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), nn.LeakyReLU(0.2),
                   lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (lambda x: F.elu(x, 1.5), nn.ELU(1.5), lambda x: np.where(x > 0, x, 1.5 * np.expm1(x))),
    "softplus": (F.softplus, nn.Softplus(), _softplus),
    "softplus_beta": (lambda x: F.softplus(x, beta=2.0, threshold=3.0),
                      nn.Softplus(beta=2.0, threshold=3.0),
                      lambda x: _softplus(x, 2.0, 3.0)),
    "gelu": (F.gelu, nn.GELU(), lambda x: 0.5 * x * (1 + _erf(x / math.sqrt(2)))),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), nn.GELU("tanh"),
                  lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi)
                                                   * (x + 0.044715 * x**3)))),
    "silu": (F.silu, nn.SiLU(), lambda x: x * _sigmoid(x)),
    "softmax": (F.softmax, nn.Softmax(), lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True)),
    "log_softmax": (F.log_softmax, nn.LogSoftmax(),
                    lambda x: x - np.log(np.exp(x).sum(-1, keepdims=True))),
    "softmax_dim0": (lambda x: F.softmax(x, dim=0), nn.Softmax(dim=0),
                     lambda x: np.exp(x) / np.exp(x).sum(0, keepdims=True)),
}


def _points(seed=0):
    # Away from the kinks at 0 (relu family) and from softplus' threshold, so that finite
    # differences are valid.
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 2.5, size=(3, 4)) * rng.choice([-1, 1], size=(3, 4))
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_numpy(name):
    fn, module, ref = CASES[name]
    x = _points()
    want = ref(x)
    np.testing.assert_allclose(fn(cr.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(module(cr.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-14)
    out32 = fn(cr.tensor(x, dtype="float32"))
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32.numpy(), want, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_float64(name):
    fn = CASES[name][0]
    x = cr.tensor(_points(1), dtype="float64", requires_grad=True)
    assert cr.gradcheck(fn, (x,))


def test_sign_is_forward_only_with_zero_gradient():
    x = cr.tensor([-2.0, -0.0, 0.0, 3.0, 1e-30], requires_grad=True)
    out = F.sign(x)
    np.testing.assert_array_equal(out.numpy(), [-1, 0, 0, 1, 1])
    assert out.requires_grad  # stays in the graph ...
    (out * cr.tensor([1.0, 2.0, 3.0, 4.0, 5.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, np.zeros(5))  # ... but passes no gradient
    np.testing.assert_array_equal(nn.Sign()(cr.tensor([-3.0, 5.0])).numpy(), [-1, 1])
    with cr.no_grad():
        assert not F.sign(x).requires_grad
    assert cr.gradcheck(F.sign, (cr.tensor(_points(2), dtype="float64", requires_grad=True),))


def test_erf_accuracy_against_math_erf():
    xs = np.concatenate([np.linspace(-7, 7, 4001), np.logspace(-300, 0.9, 300),
                         -np.logspace(-300, 0.9, 300), [0.0, 2.5, -2.5, 30.0, -30.0]])
    got = erf(cr.tensor(xs)).numpy()
    want = _erf(xs)
    rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
    assert rel.max() < 1e-13
    got32 = erf(cr.tensor(xs, dtype="float32"))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32.numpy(), want.astype(np.float32), rtol=1e-6, atol=1e-7)
    x = cr.tensor(np.linspace(-3, 3, 13), dtype="float64", requires_grad=True)
    assert cr.gradcheck(erf, (x,))


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus",
                                  "gelu", "gelu_tanh", "silu", "softmax", "log_softmax"])
def test_finite_at_extreme_inputs(name):
    fn, _, ref = CASES[name]
    for dtype in ("float32", "float64"):
        x = cr.tensor([[-1e4, -50.0, 50.0, 1e4]], dtype=dtype, requires_grad=True)
        out = fn(x)
        assert np.isfinite(out.numpy()).all(), name
        out.sum().backward()
        assert np.isfinite(x.grad).all(), name
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref(np.array([[-1e4, -50.0, 50.0, 1e4]]))
    if np.isfinite(want).all():
        np.testing.assert_allclose(out.numpy(), want, rtol=1e-12, atol=1e-15)


def test_softplus_stable_values_and_gradients():
    x = cr.tensor([-1e4, -40.0, 0.0, 40.0, 1e4], dtype="float64", requires_grad=True)
    out = F.softplus(x)
    # log(1 + e^-40) = e^-40 to double precision; linear above the threshold.
    np.testing.assert_allclose(out.numpy(), [0.0, math.exp(-40), math.log(2), 40.0, 1e4],
                               rtol=1e-14)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, math.exp(-40), 0.5, 1.0, 1.0], rtol=1e-14)
    # beta rescales; above beta * x > threshold the output is x itself (PyTorch's rule).
    y = F.softplus(cr.tensor([1.0, 12.0], dtype="float64"), beta=2.0, threshold=20.0)
    np.testing.assert_allclose(y.numpy(), [math.log1p(math.exp(2.0)) / 2, 12.0])


def test_elu_no_overflow_in_unused_branch():
    x = cr.tensor([800.0, -800.0], dtype="float64", requires_grad=True)
    with np.errstate(over="raise", invalid="raise"):
        out = F.elu(x)
        out.sum().backward()
    np.testing.assert_allclose(out.numpy(), [800.0, -1.0])
    np.testing.assert_allclose(x.grad, [1.0, 0.0])


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(InvalidValueError, match="approximate"):
        F.gelu(cr.tensor([1.0]), approximate="fast")
    with pytest.raises(InvalidValueError, match="approximate"):
        nn.GELU("fast")


def test_activation_parameter_validation():
    with pytest.raises(InvalidValueError):
        nn.LeakyReLU(float("nan"))
    with pytest.raises(InvalidValueError):
        nn.Softplus(beta=0)
    with pytest.raises(InvalidValueError):
        F.elu(cr.tensor([1.0]), alpha="big")


@pytest.mark.parametrize("name,cls", sorted(nn.ACTIVATIONS.items()))
def test_get_activation_by_name(name, cls):
    m = nn.get_activation(name)
    assert type(m) is cls
    assert type(nn.get_activation(name.upper())) is cls
    assert type(nn.get_activation(cls.__name__)) is cls  # "LeakyReLU", "LogSoftmax", ...
    assert nn.get_activation(name) is not m  # a fresh module each time
    assert nn.activation_name(cls.__name__) == name


def test_get_activation_other_forms():
    relu = nn.ReLU()
    assert nn.get_activation(relu) is relu
    assert type(nn.get_activation(nn.Tanh)) is nn.Tanh
    assert type(nn.get_activation(None)) is nn.Identity
    built = nn.get_activation({"type": "LeakyReLU", "config": {"negative_slope": 0.3}})
    assert isinstance(built, nn.LeakyReLU) and built.negative_slope == 0.3


def test_get_activation_unknown_name_lists_valid_ones():
    with pytest.raises(InvalidValueError) as info:
        nn.get_activation("relu6")
    msg = str(info.value)
    assert "relu6" in msg
    for name in ("relu", "tanh", "sigmoid", "gelu", "leaky_relu", "softmax"):
        assert name in msg
    with pytest.raises(InvalidValueError):
        nn.get_activation(42)


def test_activation_reprs_and_configs():
    assert repr(nn.ReLU()) == "ReLU()"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.Softmax(dim=0)) == "Softmax(dim=0)"
    for m in (nn.LeakyReLU(0.3), nn.ELU(2.0), nn.Softplus(2.0, 5.0), nn.GELU("tanh"),
              nn.Softmax(0), nn.LogSoftmax(1), nn.Sign(), nn.Identity()):
        rebuilt = nn.build(m.spec())
        assert type(rebuilt) is type(m) and rebuilt.config() == m.config()


def test_activations_accept_other_shapes():
    x = cr.tensor(np.linspace(-2, 2, 24).reshape(2, 3, 4))
    assert F.gelu(x).shape == (2, 3, 4)
    assert nn.Softmax(dim=1)(x).shape == (2, 3, 4)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).numpy().sum(axis=1), np.ones((2, 4)),
                               rtol=1e-6)
    assert F.relu(cr.tensor(-1.5)).item() == 0.0
    np.testing.assert_array_equal(F.softmax(x, axis=1).numpy(), F.softmax(x, dim=1).numpy())
    np.testing.assert_array_equal(F.log_softmax(x, axis=0).numpy(),
                                  nn.LogSoftmax(dim=0)(x).numpy())
    with pytest.raises(InvalidValueError):
        F.softmax(x, dim=0, axis=1)
