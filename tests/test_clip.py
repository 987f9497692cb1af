"""Gradient clipping by global norm and by value."""

from __future__ import annotations

import math

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import InvalidValueError
from chainrule.optim import clip_grad_norm_, clip_grad_value_

GA = np.array([[3.0, -4.0], [1.0, 2.0]])
GB = np.array([0.5, -7.0, 2.5])


def params(dtype=np.float64):
    a = cr.tensor(np.zeros((2, 2), dtype=dtype), requires_grad=True)
    b = cr.tensor(np.zeros(3, dtype=dtype), requires_grad=True)
    a.grad, b.grad = GA.astype(dtype), GB.astype(dtype)
    return a, b


def norm(g, q):
    """The q-norm of a vector, straight from the definition."""
    return np.abs(g).max() if q == math.inf else (np.abs(g) ** q).sum() ** (1 / q)


def flat(a, b):
    return np.concatenate([a.grad.ravel(), b.grad])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_scales_to_max_norm(norm_type):
    a, b = params()
    g = np.concatenate([GA.ravel(), GB])
    expected_norm = norm(g, norm_type)
    total = clip_grad_norm_([a, b], max_norm=2.0, norm_type=norm_type)
    assert isinstance(total, cr.Tensor) and total.shape == ()
    assert total.item() == pytest.approx(expected_norm, rel=1e-14)
    np.testing.assert_allclose(flat(a, b), g * 2.0 / (expected_norm + 1e-6), rtol=1e-14)
    new = flat(a, b)
    assert norm(new, norm_type) == pytest.approx(2.0, rel=1e-6)


# From torch 2.13.0: a, b float64 leaves with grads GA, GB, then
#   n = torch.nn.utils.clip_grad_norm_([a, b], max_norm=2.0, norm_type=nt)
#   print((nt, n.item(), a.grad.flatten().tolist() + b.grad.tolist()))
TORCH_GOLDEN = [
    (2.0, 9.246621004453464,
     [0.6488856143476193, -0.865180819130159, 0.21629520478253975, 0.4325904095650795,
      0.10814760239126987, -1.5140664334777783, 0.5407380119563494]),
    (1.0, 20.0,
     [0.29999998500000075, -0.399999980000001, 0.09999999500000024, 0.1999999900000005,
      0.04999999750000012, -0.6999999650000017, 0.2499999875000006]),
    (3.0, 7.712444037465613,
     [0.7779634047118811, -1.0372845396158414, 0.25932113490396036, 0.5186422698079207,
      0.12966056745198018, -1.8152479443277225, 0.6483028372599009]),
    (math.inf, 7.0,
     [0.8571427346938949, -1.14285697959186, 0.285714244897965, 0.57142848979593,
      0.1428571224489825, -1.9999997142857548, 0.7142856122449125]),
]


@pytest.mark.parametrize("norm_type, norm, grads", TORCH_GOLDEN)
def test_clip_grad_norm_matches_pytorch(norm_type, norm, grads):
    a, b = params()
    total = clip_grad_norm_([a, b], 2.0, norm_type)
    assert total.item() == pytest.approx(norm, rel=1e-14)
    np.testing.assert_allclose(flat(a, b), grads, rtol=1e-14)


def test_small_gradients_are_left_alone_and_none_grads_skipped():
    a, b = params()
    c = cr.tensor([1.0], requires_grad=True)           # no grad
    total = clip_grad_norm_(iter([a, b, c]), max_norm=100.0)
    assert total.item() == pytest.approx(math.sqrt((GA ** 2).sum() + (GB ** 2).sum()))
    np.testing.assert_array_equal(flat(a, b), np.concatenate([GA.ravel(), GB]))
    assert c.grad is None


def test_single_tensor_and_no_grads():
    a, _ = params()
    assert clip_grad_norm_(a, 1.0).item() == pytest.approx(math.sqrt(30.0))
    assert np.linalg.norm(a.grad) == pytest.approx(1.0, rel=1e-6)
    assert clip_grad_norm_([cr.tensor([1.0], requires_grad=True)], 1.0).item() == 0.0


def test_float32_gradients_stay_float32():
    a, b = params(np.float32)
    total = clip_grad_norm_([a, b], 1.0)
    assert a.grad.dtype == b.grad.dtype == np.float32 and total.dtype == np.float32
    assert np.sqrt((flat(a, b).astype(np.float64) ** 2).sum()) == pytest.approx(1.0, rel=1e-5)


def test_nonfinite_norm():
    a, b = params()
    b.grad[1] = np.inf
    with pytest.raises(InvalidValueError, match="non-finite|inf"):
        clip_grad_norm_([a, b], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(a.grad, GA)          # nothing scaled before the error
    with np.errstate(invalid="ignore"):                 # as in PyTorch: inf * 0 makes NaN grads
        assert math.isinf(clip_grad_norm_([a, b], 1.0).item())
    assert np.isnan(b.grad[1])


def test_clip_grad_norm_rejects_bad_arguments():
    a, b = params()
    with pytest.raises(InvalidValueError, match="max_norm"):
        clip_grad_norm_([a, b], -1.0)
    with pytest.raises(InvalidValueError, match="norm_type"):
        clip_grad_norm_([a, b], 1.0, norm_type=0)
    with pytest.raises(InvalidValueError, match="tensors"):
        clip_grad_norm_([GA], 1.0)


def test_clip_grad_value_clamps_each_entry():
    a, b = params()
    c = cr.tensor([1.0], requires_grad=True)
    grad_a = a.grad
    assert clip_grad_value_([a, b, c], 2.5) is None
    assert a.grad is grad_a                              # in place
    np.testing.assert_array_equal(a.grad, np.clip(GA, -2.5, 2.5))
    np.testing.assert_array_equal(b.grad, [0.5, -2.5, 2.5])
    assert c.grad is None
    with pytest.raises(InvalidValueError, match="clip_value"):
        clip_grad_value_([a], -1.0)


def test_a_zero_dimensional_parameter_is_clipped_too():
    # Arithmetic on 0-d arrays returns NumPy scalars; the gradient must still be an array that
    # clipping scales in place.
    x = cr.tensor(2.0, requires_grad=True)
    (x * x).backward()
    assert isinstance(x.grad, np.ndarray) and x.grad.shape == ()
    cr.optim.clip_grad_norm_([x], 0.1)
    assert abs(float(x.grad) - 0.1) < 1e-6
    x.grad = None
    (x * x * x).backward()  # 12
    cr.optim.clip_grad_value_([x], 0.5)
    assert float(x.grad) == 0.5
