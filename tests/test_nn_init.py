"""Initialisers: distributions (bounds, mean, std), gains, fans, reproducibility, and the
defaults of Linear and MLP."""

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
from chainrule.errors import DTypeError, InvalidValueError, ShapeError
from chainrule.nn import init

SHAPE = (200, 300)  # fan_out = 200, fan_in = 300; 60,000 samples


def _empty(shape=SHAPE, dtype="float64"):
    return cr.zeros(*shape, dtype=dtype)


def _check_uniform(a, bound):
    assert a.min() >= -bound and a.max() <= bound
    assert a.min() < -0.99 * bound and a.max() > 0.99 * bound  # fills the interval
    assert abs(a.mean()) < 0.02 * bound
    np.testing.assert_allclose(a.std(), bound / math.sqrt(3), rtol=0.02)


def _check_normal(a, std):
    assert abs(a.mean()) < 0.02 * std
    np.testing.assert_allclose(a.std(), std, rtol=0.02)


def test_calculate_gain_matches_pytorch():
    assert init.calculate_gain("linear") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(InvalidValueError, match="tanh"):
        init.calculate_gain("swish")


def test_uniform_and_normal():
    t = init.uniform_(_empty(), -2.0, 3.0)
    a = t.numpy()
    assert a.min() >= -2 and a.max() <= 3
    np.testing.assert_allclose(a.mean(), 0.5, atol=0.03)
    np.testing.assert_allclose(a.std(), 5 / math.sqrt(12), rtol=0.02)
    a = init.normal_(_empty(), mean=1.0, std=0.5).numpy()
    np.testing.assert_allclose(a.mean(), 1.0, atol=0.01)
    np.testing.assert_allclose(a.std(), 0.5, rtol=0.02)


def test_constant_zeros_ones():
    t = _empty((3, 2))
    assert init.constant_(t, 2.5) is t
    np.testing.assert_array_equal(t.numpy(), np.full((3, 2), 2.5))
    np.testing.assert_array_equal(init.zeros_(t).numpy(), np.zeros((3, 2)))
    np.testing.assert_array_equal(init.ones_(t).numpy(), np.ones((3, 2)))


def test_xavier():
    bound = math.sqrt(6 / (300 + 200))
    _check_uniform(init.xavier_uniform_(_empty()).numpy(), bound)
    _check_uniform(init.xavier_uniform_(_empty(), gain=5 / 3).numpy(), 5 / 3 * bound)
    _check_normal(init.xavier_normal_(_empty(), gain=2.0).numpy(), 2.0 * math.sqrt(2 / 500))


def test_kaiming():
    _check_uniform(init.kaiming_uniform_(_empty(), nonlinearity="relu").numpy(),
                   math.sqrt(6 / 300))
    _check_uniform(init.kaiming_uniform_(_empty(), mode="fan_out", nonlinearity="relu").numpy(),
                   math.sqrt(6 / 200))
    _check_normal(init.kaiming_normal_(_empty(), nonlinearity="relu").numpy(),
                  math.sqrt(2 / 300))
    _check_normal(init.kaiming_normal_(_empty(), a=0.2, mode="fan_out").numpy(),
                  math.sqrt(2 / 1.04) / math.sqrt(200))
    # PyTorch's Linear default: a = sqrt(5) gives the bound 1 / sqrt(fan_in).
    _check_uniform(init.kaiming_uniform_(_empty(), a=math.sqrt(5)).numpy(), 1 / math.sqrt(300))


def test_fans_of_higher_rank_tensors():
    t = _empty((16, 8, 3, 3))  # fan_in = 8 * 9, fan_out = 16 * 9
    a = init.kaiming_uniform_(t, nonlinearity="relu").numpy()
    assert a.max() <= math.sqrt(6 / 72) and a.max() > 0.95 * math.sqrt(6 / 72)
    a = init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu").numpy()
    assert a.max() <= math.sqrt(6 / 144) and a.max() > 0.95 * math.sqrt(6 / 144)


def test_reproducible_with_manual_seed_and_generator():
    cr.manual_seed(7)
    a = init.kaiming_normal_(_empty((5, 4))).numpy().copy()
    cr.manual_seed(7)
    b = init.kaiming_normal_(_empty((5, 4))).numpy()
    np.testing.assert_array_equal(a, b)
    g1, g2 = cr.Generator(3), cr.Generator(3)
    c = init.xavier_uniform_(_empty((5, 4)), generator=g1).numpy().copy()
    cr.manual_seed(99)  # the global generator does not affect an explicit one
    d = init.xavier_uniform_(_empty((5, 4)), generator=g2).numpy()
    np.testing.assert_array_equal(c, d)
    # The samples do not depend on the dtype being filled.
    e = init.uniform_(_empty((5, 4), "float32"), generator=cr.Generator(1)).numpy()
    f = init.uniform_(_empty((5, 4), "float64"), generator=cr.Generator(1)).numpy()
    np.testing.assert_allclose(e, f, rtol=1e-7)


def test_init_fills_parameters_in_place_without_recording():
    layer = nn.Linear(4, 3)
    w = layer.weight
    data = w.data
    init.normal_(w, std=0.1)
    assert layer.weight is w and w.data is data and w.is_leaf and w.requires_grad
    assert w.dtype == np.float32


def test_init_validation():
    with pytest.raises(ShapeError, match="2 dimensions"):
        init.xavier_uniform_(cr.zeros(5))
    with pytest.raises(DTypeError):
        init.uniform_(cr.zeros(3, dtype="int64"))
    with pytest.raises(DTypeError):
        init.zeros_(np.zeros(3))
    with pytest.raises(InvalidValueError):
        init.kaiming_uniform_(_empty((2, 2)), mode="fan")
    with pytest.raises(InvalidValueError):
        init.normal_(_empty((2, 2)), std=-1.0)
    assert init.xavier_uniform_(cr.zeros(0, 5)).shape == (0, 5)  # empty: a no-op


def test_linear_default_init():
    cr.manual_seed(0)
    layer = nn.Linear(400, 300, dtype="float64")
    bound = 1 / math.sqrt(400)
    _check_uniform(layer.weight.numpy(), bound)
    b = layer.bias.numpy()
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    g = cr.Generator(5)
    l1 = nn.Linear(3, 2, generator=g)
    l2 = nn.Linear(3, 2, generator=cr.Generator(5))
    np.testing.assert_array_equal(l1.weight.numpy(), l2.weight.numpy())
    np.testing.assert_array_equal(l1.bias.numpy(), l2.bias.numpy())
    before = l1.weight.numpy().copy()
    l1.reset_parameters()
    assert not np.array_equal(before, l1.weight.numpy())


@pytest.mark.parametrize("activation,bound", [
    ("relu", math.sqrt(6 / 300)),
    ("gelu", math.sqrt(6 / 300)),
    ("leaky_relu", math.sqrt(2 / (1 + 0.01**2)) * math.sqrt(3 / 300)),
    ("tanh", 5 / 3 * math.sqrt(6 / 500)),
    ("sigmoid", math.sqrt(6 / 500)),
])
def test_mlp_default_init_follows_the_activation(activation, bound):
    cr.manual_seed(1)
    model = nn.MLP([300, 200, 10], activation=activation, dtype="float64")
    _check_uniform(model[0].weight.numpy(), bound)
    np.testing.assert_array_equal(model[0].bias.numpy(), np.zeros(200))
    # The linear output layer: Xavier/Glorot with gain 1.
    w = model[2].weight.numpy()
    assert np.abs(w).max() <= math.sqrt(6 / 210)
    assert np.abs(w).max() > 0.95 * math.sqrt(6 / 210)


def test_mlp_pytorch_init_and_reproducibility():
    model = nn.MLP([300, 50], init="pytorch", dtype="float64", generator=cr.Generator(0))
    _check_uniform(model[0].weight.numpy(), 1 / math.sqrt(300))
    assert np.abs(model[0].bias.numpy()).max() > 0
    cr.manual_seed(3)
    a = nn.MLP([4, 5, 2])
    cr.manual_seed(3)
    b = nn.MLP([4, 5, 2])
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb
        np.testing.assert_array_equal(pa.numpy(), pb.numpy())
    with pytest.raises(InvalidValueError, match="init"):
        nn.MLP([2, 2], init="he")
