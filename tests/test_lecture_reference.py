"""The lecture's delta recursion (reference.lecture) and the autodiff engine witness each other."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F
from chainrule.reference import lecture

DIFFERENTIABLE = ("identity", "sigmoid", "tanh", "relu", "leaky_relu")


def _random_network(rng, depth, d_in):
    widths = [d_in] + [int(rng.integers(1, 17)) for _ in range(depth)]
    return widths


def _engine_model(widths, activation, loss, W, b):
    """An nn.MLP in float64 carrying the reference network's weights."""
    out_act = None if loss == "cross-entropy" else activation
    model = nn.MLP(widths, activation=activation, output_activation=out_act, dtype="float64")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == len(widths) - 1
    with cr.no_grad():
        for l, m in enumerate(linears, start=1):
            m.weight.copy_(W[l])
            m.bias.copy_(b[l])
    return model, linears


@pytest.mark.parametrize("activation", DIFFERENTIABLE)
@pytest.mark.parametrize("loss", lecture.LOSSES)
def test_reference_gradients_equal_engine_gradients(activation, loss):
    rng = np.random.default_rng(zlib.crc32(f"{activation}-{loss}".encode()))
    for trial in range(6):
        depth = 1 + trial % 5                       # depths 1..5
        widths = _random_network(rng, depth, int(rng.integers(1, 17)))
        if loss == "cross-entropy" and widths[-1] < 2:
            widths[-1] = 2
        N = int(rng.integers(1, 9))
        # weights scaled like a real initialisation (std 1/sqrt(fan_in)) keep values O(1), so an
        # absolute tolerance of 1e-10 is meaningful at every depth
        W = [None] + [rng.standard_normal((widths[l], widths[l - 1])) / np.sqrt(widths[l - 1])
                      for l in range(1, depth + 1)]
        b = [None] + [rng.standard_normal(widths[l]) for l in range(1, depth + 1)]
        x0 = rng.standard_normal((N, widths[0]))
        if loss == "square":
            y = rng.standard_normal((N, widths[-1]))
        else:
            labels = rng.integers(0, widths[-1], N)
            y = np.eye(widths[-1])[labels]

        t = lecture.forward(W, b, x0, activation, loss)
        lecture.backward(t, y, activation, loss)

        model, linears = _engine_model(widths, activation, loss, W, b)
        out = model(cr.tensor(x0))
        np.testing.assert_allclose(out.numpy(), t.h, rtol=0, atol=1e-12)
        if loss == "square":
            # the lecture's e = (h(x) - y)^2 summed over outputs, averaged over the batch
            e = F.mse_loss(out, cr.tensor(y), reduction="sum") / N
        else:
            e = F.cross_entropy(out, cr.tensor(labels))
        assert abs(e.item() - t.loss) < 1e-10
        e.backward()
        for l, m in enumerate(linears, start=1):
            np.testing.assert_allclose(m.weight.grad, t.grad_W[l], rtol=0, atol=1e-10)
            np.testing.assert_allclose(m.bias.grad, t.grad_b[l], rtol=0, atol=1e-10)

        # one SGD step by each gives the same weights
        eta = 0.05
        cr.optim.SGD(model.parameters(), lr=eta).step()
        W_new, b_new = lecture.sgd_step(t, eta)
        for l, m in enumerate(linears, start=1):
            np.testing.assert_allclose(m.weight.numpy(), W_new[l], rtol=0, atol=1e-12)
            np.testing.assert_allclose(m.bias.numpy(), b_new[l], rtol=0, atol=1e-12)


def test_sign_is_forward_only_and_matches_engine():
    rng = np.random.default_rng(0)
    W = [None, rng.standard_normal((3, 2)), rng.standard_normal((1, 3))]
    b = [None, rng.standard_normal(3), rng.standard_normal(1)]
    x0 = rng.standard_normal((5, 2))
    t = lecture.forward(W, b, x0, "sign")
    model, _ = _engine_model([2, 3, 1], "sign", "square", W, b)
    np.testing.assert_array_equal(model(cr.tensor(x0)).numpy(), t.h)
    with pytest.raises(ValueError, match="forward only"):
        lecture.backward(t, np.ones((5, 1)), "sign")


def test_worked_example_delta_recursion_by_hand():
    W = [None, np.array([[0.3, 0.4, 0.2], [0.3, 0.5, 0.2], [0.8, 1.0, -1.0]]),
         np.array([[0, -1.2, 0.5], [0.9, 1.0, 0]]), np.array([[-1.0, 1.0]])]
    b = [None, np.zeros(3), np.zeros(2), np.zeros(1)]
    t = lecture.forward(W, b, np.array([[1.5, -1.0, 1.3]]), "relu")
    assert t.h[0, 0] == pytest.approx(0.489, abs=1e-12)
    lecture.backward(t, np.array([[1.0]]), "relu")
    # delta^(3) = 2 (0.489 - 1) * relu'(0.489) = -1.022
    np.testing.assert_allclose(t.delta[3], [[-1.022]], atol=1e-12)
    # delta^(2) = relu'(s^(2)) * (W3^T delta^(3)) = (0 (s=-0.252 < 0), 1 * 1.0 * -1.022)
    np.testing.assert_allclose(t.delta[2], [[0.0, -1.022]], atol=1e-12)
    # delta^(1) = relu'(s^(1)) * (W2^T delta^(2)) = (0.9, 1.0, 0) * -1.022 masked by s^(1) > 0
    np.testing.assert_allclose(t.delta[1], [[-0.9198, -1.022, 0.0]], atol=1e-12)
    # de/dw_ij^(1) = x_i^(0) delta_j^(1): row j = (1.5, -1, 1.3) * delta_j
    np.testing.assert_allclose(t.grad_W[1][0], np.array([1.5, -1.0, 1.3]) * -0.9198, atol=1e-12)
    assert t.loss == pytest.approx((0.489 - 1) ** 2, abs=1e-12)
