"""The lecture's worked example, checked number by number.

    x = (1.5, -1.0, 1.3),  theta = ReLU,  h(x) = theta(W3 theta(W2 theta(W1 x)))

Every signal s and activation x below is written as a literal with the arithmetic that gives it,
so a reader can redo the example with pencil and paper; the engine must reproduce each number,
h(x) = 0.489, and the gradients derived by hand with the delta recursion.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr

X0 = [1.5, -1.0, 1.3]
W1 = [[0.3, 0.4, 0.2], [0.3, 0.5, 0.2], [0.8, 1.0, -1.0]]
W2 = [[0.0, -1.2, 0.5], [0.9, 1.0, 0.0]]
W3 = [[-1.0, 1.0]]

# Layer 1: s1 = W1 x0
S1 = [
    0.31,  # 0.3*1.5 + 0.4*(-1.0) + 0.2*1.3 = 0.45 - 0.40 + 0.26
    0.21,  # 0.3*1.5 + 0.5*(-1.0) + 0.2*1.3 = 0.45 - 0.50 + 0.26
    -1.1,  # 0.8*1.5 + 1.0*(-1.0) - 1.0*1.3 = 1.20 - 1.00 - 1.30
]
X1 = [0.31, 0.21, 0.0]  # relu(s1): the third unit is off
# Layer 2: s2 = W2 x1
S2 = [
    -0.252,  # 0.0*0.31 - 1.2*0.21 + 0.5*0.0 = -0.252
    0.489,  # 0.9*0.31 + 1.0*0.21 + 0.0*0.0 = 0.279 + 0.210
]
X2 = [0.0, 0.489]  # relu(s2): the first unit is off
# Layer 3: s3 = W3 x2
S3 = [0.489]  # -1.0*0.0 + 1.0*0.489
H = 0.489  # relu(0.489)

# Backward, by the delta recursion delta_l = theta'(s_l) * (W_{l+1}^T delta_{l+1}):
DELTA3 = [1.0]  # dh/ds3 = relu'(0.489) = 1
DELTA2 = [0.0, 1.0]  # W3^T delta3 = (-1.0, 1.0), times relu'(s2) = (0, 1)
DELTA1 = [0.9, 1.0, 0.0]  # W2^T delta2 = (0.9, 1.0, 0.0), times relu'(s1) = (1, 1, 0)
# dh/dx0 = W1^T delta1 = 0.9*(0.3, 0.4, 0.2) + 1.0*(0.3, 0.5, 0.2) + 0*(0.8, 1.0, -1.0)
DX0 = [0.57, 0.86, 0.38]  # (0.27 + 0.30, 0.36 + 0.50, 0.18 + 0.20)
# dh/dW_l = delta_l x_{l-1}^T
DW3 = [[0.0, 0.489]]  # 1.0 * (0.0, 0.489)
DW2 = [[0.0, 0.0, 0.0], [0.31, 0.21, 0.0]]  # rows: 0 * x1 and 1 * x1
DW1 = [[1.35, -0.9, 1.17],  # 0.9 * (1.5, -1.0, 1.3)
       [1.5, -1.0, 1.3],  # 1.0 * (1.5, -1.0, 1.3)
       [0.0, 0.0, 0.0]]  # 0.0 * x0


def _leaves(dtype):
    return [cr.tensor(v, dtype=dtype, requires_grad=True) for v in (X0, W1, W2, W3)]


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
def test_forward_matches_hand_computation(dtype):
    x0, w1, w2, w3 = _leaves(dtype)
    s1 = w1 @ x0
    x1 = s1.relu()
    s2 = w2 @ x1
    x2 = s2.relu()
    s3 = w3 @ x2
    h = s3.relu()
    tol = {"rtol": 1e-6, "atol": 1e-6} if dtype == cr.float32 else {"rtol": 1e-12, "atol": 1e-15}
    for got, want in [(s1, S1), (x1, X1), (s2, S2), (x2, X2), (s3, S3)]:
        assert got.dtype == dtype
        np.testing.assert_allclose(got.numpy(), want, **tol)
    np.testing.assert_allclose(h.item(), H, **tol)
    assert h.shape == (1,)


@pytest.mark.parametrize("dtype", [cr.float32, cr.float64])
def test_gradients_match_hand_derived_delta_recursion(dtype):
    x0, w1, w2, w3 = _leaves(dtype)
    s1 = w1 @ x0
    s2 = w2 @ s1.relu()
    s3 = w3 @ s2.relu()
    for s in (s1, s2, s3):
        s.retain_grad()  # the deltas are the gradients of h with respect to the signals
    s3.relu().sum().backward()
    tol = {"rtol": 1e-6, "atol": 1e-7} if dtype == cr.float32 else {"rtol": 1e-12, "atol": 1e-15}
    for got, want in [(s3.grad, DELTA3), (s2.grad, DELTA2), (s1.grad, DELTA1),
                      (x0.grad, DX0), (w3.grad, DW3), (w2.grad, DW2), (w1.grad, DW1)]:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


def test_gradients_match_finite_differences():
    def h(x0, w1, w2, w3):
        return (w3 @ (w2 @ (w1 @ x0).relu()).relu()).relu()

    # No signal sits at a kink (the closest to 0 is s2[0] = -0.252), so h is differentiable here.
    assert cr.gradcheck(h, _leaves(cr.float64))


def test_row_major_batched_form_gives_the_same_numbers():
    """The same network as the library computes it: rows are examples, s = x W^T."""
    x0 = cr.tensor([X0, [-x for x in X0]], requires_grad=True)  # a batch of two; row 0 is x
    w1, w2, w3 = (cr.tensor(w, requires_grad=True) for w in (W1, W2, W3))
    h = cr.linear(cr.linear(cr.linear(x0, w1).relu(), w2).relu(), w3).relu()
    assert h.shape == (2, 1)
    np.testing.assert_allclose(h.numpy()[0], [H], rtol=1e-6)
    h[0].sum().backward()  # only the lecture's example
    np.testing.assert_allclose(x0.grad[0], DX0, rtol=1e-6)
    np.testing.assert_allclose(x0.grad[1], [0, 0, 0])
    np.testing.assert_allclose(w1.grad, DW1, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w2.grad, DW2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w3.grad, DW3, rtol=1e-6, atol=1e-7)
