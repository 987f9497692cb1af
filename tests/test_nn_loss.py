"""Losses: values against NumPy formulas, gradients against finite differences (every reduction,
both label kinds, smoothing, weights), stability at extreme logits and probabilities, validation."""

import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F
from chainrule.errors import DTypeError, InvalidValueError, ShapeError

REDUCTIONS = ("mean", "sum", "none")
RNG = np.random.default_rng(1234)
X = RNG.standard_normal((5, 4))
Y = np.array([0, 3, 1, 3, 2])
P = RNG.dirichlet(np.ones(4), size=5)  # class probabilities
W = np.array([0.5, 2.0, 1.0, 3.0])


def _t(a, grad=False):
    return cr.tensor(a, dtype="float64", requires_grad=grad)


def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _reduce(per_sample, reduction, denom=None):
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.sum() / (per_sample.size if denom is None else denom)


def ref_cross_entropy(x, y, weight=None, ignore_index=-100, reduction="mean", eps=0.0):
    """-sum_c w_c q_c log softmax(x)_c with q = (1 - eps) onehot(y) + eps / C; the weighted mean
    divides by sum_n w_{y_n} over the kept samples."""
    n, c = x.shape
    w = np.ones(c) if weight is None else weight
    keep = y != ignore_index
    q = np.zeros((n, c))
    q[np.arange(n)[keep], y[keep]] = 1.0
    q = (1 - eps) * q + eps / c
    per = -(w * q * _log_softmax(x)).sum(axis=1) * keep
    return _reduce(per, reduction, (w[np.where(keep, y, 0)] * keep).sum())


def ref_cross_entropy_probs(x, p, weight=None, reduction="mean", eps=0.0):
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    q = (1 - eps) * p + eps / c
    return _reduce(-(w * q * _log_softmax(x)).sum(axis=1), reduction)


# --------------------------------------------------------------------------- cross_entropy
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_cross_entropy_labels_values_and_gradients(reduction, weighted, eps):
    w = W if weighted else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=eps)
    got = F.cross_entropy(_t(X), cr.tensor(Y), **kw)
    np.testing.assert_allclose(got.numpy(), ref_cross_entropy(X, Y, w, reduction=reduction,
                                                              eps=eps), rtol=1e-12)
    x = _t(X, grad=True)
    assert cr.gradcheck(lambda x: F.cross_entropy(x, cr.tensor(Y), **kw), (x,))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_ignore_index(reduction, weighted, eps):
    y = np.array([0, -1, 1, 3, -1])
    w = W if weighted else None
    kw = dict(weight=w, ignore_index=-1, reduction=reduction, label_smoothing=eps)
    got = F.cross_entropy(_t(X), cr.tensor(y), **kw)
    want = ref_cross_entropy(X, y, w, ignore_index=-1, reduction=reduction, eps=eps)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-15)
    x = _t(X, grad=True)
    assert cr.gradcheck(lambda x: F.cross_entropy(x, cr.tensor(y), **kw), (x,))
    F.cross_entropy(x, cr.tensor(y), **kw).sum().backward()
    assert not x.grad[[1, 4]].any()  # ignored rows get no gradient


def test_cross_entropy_ignore_index_inside_class_range():
    # As in PyTorch, an ignore_index that is a valid class drops the samples of that class.
    got = F.cross_entropy(_t(X), cr.tensor(Y), ignore_index=3)
    np.testing.assert_allclose(got.item(), ref_cross_entropy(X, Y, ignore_index=3))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.3])
def test_cross_entropy_probabilities(reduction, weighted, eps):
    w = W if weighted else None
    kw = dict(weight=w, reduction=reduction, label_smoothing=eps)
    got = F.cross_entropy(_t(X), _t(P), **kw)
    np.testing.assert_allclose(got.numpy(), ref_cross_entropy_probs(X, P, w, reduction, eps),
                               rtol=1e-12)
    x, p = _t(X, grad=True), _t(P, grad=True)  # the target is differentiable too
    assert cr.gradcheck(lambda x, p: F.cross_entropy(x, p, **kw), (x, p))


def test_cross_entropy_onehot_probabilities_equal_labels():
    onehot = np.eye(4)[Y]
    for w in (None, W):
        a = F.cross_entropy(_t(X), cr.tensor(Y), weight=w, reduction="none").numpy()
        b = F.cross_entropy(_t(X), _t(onehot), weight=w, reduction="none").numpy()
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_cross_entropy_equals_nll_of_log_softmax():
    x = _t(X)
    np.testing.assert_allclose(F.cross_entropy(x, cr.tensor(Y)).item(),
                               F.nll_loss(F.log_softmax(x), cr.tensor(Y)).item(), rtol=1e-12)


def test_cross_entropy_fused_gradient_formula():
    # One node; gradient (softmax(x) - onehot(y)) / N.
    x = _t(X, grad=True)
    loss = F.cross_entropy(x, cr.tensor(Y))
    assert loss.grad_fn.name == "cross_entropy"
    loss.backward()
    p = np.exp(_log_softmax(X))
    np.testing.assert_allclose(x.grad, (p - np.eye(4)[Y]) / 5, rtol=1e-12, atol=1e-15)


def test_cross_entropy_single_sample_and_k_dimensional():
    x1 = _t(X[0], grad=True)
    out = F.cross_entropy(x1, cr.tensor(Y[0]))
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), ref_cross_entropy(X[:1], Y[:1]))
    assert F.cross_entropy(x1, cr.tensor(Y[0]), reduction="none").shape == ()
    assert cr.gradcheck(lambda x: F.cross_entropy(x, cr.tensor(Y[0])), (x1,))
    # (N, C, d) logits with (N, d) labels: class axis 1, as in PyTorch.
    xk = RNG.standard_normal((2, 4, 3))
    yk = np.array([[0, 1, 3], [2, 2, 0]])
    flat_x = xk.transpose(0, 2, 1).reshape(-1, 4)
    per = F.cross_entropy(_t(xk), cr.tensor(yk), reduction="none")
    assert per.shape == (2, 3)
    np.testing.assert_allclose(per.numpy().reshape(-1),
                               ref_cross_entropy(flat_x, yk.reshape(-1), reduction="none"))
    pk = RNG.dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)
    assert F.cross_entropy(_t(xk), _t(pk), reduction="none").shape == (2, 3)
    assert cr.gradcheck(lambda x: F.cross_entropy(x, cr.tensor(yk), label_smoothing=0.1),
                        (_t(xk, grad=True),))


def test_cross_entropy_accepts_whole_number_float_labels_and_lists():
    a = F.cross_entropy(_t(X), Y.astype(np.float64)).item()
    b = F.cross_entropy(_t(X), Y.tolist()).item()
    np.testing.assert_allclose([a, b], ref_cross_entropy(X, Y))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_stable_at_extreme_logits(dtype):
    x = cr.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], dtype=dtype, requires_grad=True)
    y = cr.tensor([1, 0])
    loss = F.cross_entropy(x, y, reduction="sum")
    # Row 0: logsumexp = 1e4, minus x_y = -1e4; row 1: logsumexp = 1e4 + log 2, minus -1e4.
    np.testing.assert_allclose(loss.item(), 2e4 + 2e4 + math.log(2), rtol=1e-6)
    loss.backward()
    np.testing.assert_allclose(x.grad, [[1, -1, 0], [-1, 0.5, 0.5]], atol=1e-6)
    for kw in ({"label_smoothing": 0.1}, {"weight": [1.0, 2.0, 3.0]}):
        x.grad = None
        loss = F.cross_entropy(x, y, **kw)
        loss.backward()
        assert np.isfinite(loss.item()) and np.isfinite(x.grad).all()
    x.grad = None
    probs = cr.tensor([[0.0, 1.0, 0.0], [0.5, 0.5, 0.0]], dtype=dtype)
    loss = F.cross_entropy(x, probs)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad).all()


def test_cross_entropy_validation():
    x = _t(X)
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        F.cross_entropy(x, cr.tensor([0, 1, 2]))
    with pytest.raises(ShapeError):
        F.cross_entropy(x, cr.tensor(np.zeros((5, 4), dtype=np.int64)))  # ints of logits' shape
    with pytest.raises(InvalidValueError, match="4 classes"):
        F.cross_entropy(x, cr.tensor([0, 1, 4, 0, 0]))
    with pytest.raises(InvalidValueError, match="-2"):
        F.cross_entropy(x, cr.tensor([0, 1, -2, 0, 0]))
    with pytest.raises(InvalidValueError, match="whole numbers.*1.5"):
        F.cross_entropy(x, cr.tensor([0.0, 1.5, 2.0, 0.0, 0.0], dtype="float64"))
    with pytest.raises(InvalidValueError, match="NaN"):
        F.cross_entropy(x, cr.tensor([0.0, np.nan, 2.0, 0.0, 0.0], dtype="float64"))
    with pytest.raises(InvalidValueError, match="infinity"):
        F.cross_entropy(x, cr.tensor([0.0, np.inf, 2.0, 0.0, 0.0], dtype="float64"))
    with pytest.raises(DTypeError):
        F.cross_entropy(x, cr.tensor([True, False, True, False, True]))
    with pytest.raises(DTypeError):
        F.cross_entropy(cr.tensor([[1, 2], [3, 4]]), cr.tensor([0, 1]))  # integer logits
    with pytest.raises(ShapeError):
        F.cross_entropy(cr.tensor(1.0), cr.tensor(0))
    with pytest.raises(ShapeError, match="weight"):
        F.cross_entropy(x, cr.tensor(Y), weight=[1.0, 2.0])
    with pytest.raises(InvalidValueError, match="reduction"):
        F.cross_entropy(x, cr.tensor(Y), reduction="avg")
    with pytest.raises(InvalidValueError, match="label_smoothing"):
        F.cross_entropy(x, cr.tensor(Y), label_smoothing=1.5)
    with pytest.raises(InvalidValueError, match="ignore_index"):
        F.cross_entropy(x, _t(P), ignore_index=0)
    with pytest.raises(InvalidValueError, match="NaN"):
        F.cross_entropy(x, _t(np.full((5, 4), np.nan)))


# The common case (2-D NumPy logits, integer labels of shape (N,), no weight, no smoothing,
# ignore_index outside the classes) takes a shortcut to the fused node; everything else, and any
# label it cannot vouch for, goes through the general path. Both must agree to the bit.
def _general(x, y, **kw):
    """The general path for the same arguments (a list of labels never takes the shortcut)."""
    return F.cross_entropy(x, np.asarray(y).tolist(), **kw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("labels", [
    lambda y: y, lambda y: y.astype(np.int32), lambda y: y.astype(np.uint8),
    lambda y: y.astype(np.uint64), lambda y: cr.tensor(y), lambda y: np.repeat(y, 2)[::2],
], ids=["int64", "int32", "uint8", "uint64", "tensor", "strided"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_shortcut_matches_general_path(reduction, labels, dtype):
    x = cr.tensor(X, dtype=dtype, requires_grad=True)
    fast = F.cross_entropy(x, labels(Y), reduction=reduction)
    assert fast.grad_fn.name == "cross_entropy" and fast.shape == ((5,) if reduction == "none"
                                                                    else ())
    (fast.sum() if reduction == "none" else fast).backward()
    g_fast = x.grad.copy()
    x.grad = None
    slow = _general(x, Y, reduction=reduction)
    (slow.sum() if reduction == "none" else slow).backward()
    assert fast.dtype == slow.dtype == x.dtype
    np.testing.assert_array_equal(fast.numpy(), slow.numpy())
    np.testing.assert_array_equal(g_fast, x.grad)
    np.testing.assert_allclose(fast.numpy(), ref_cross_entropy(X, Y, reduction=reduction),
                               rtol=1e-5 if dtype == "float32" else 1e-12)


def test_cross_entropy_shortcut_options_equal_to_the_defaults():
    x = _t(X, grad=True)
    want = F.cross_entropy(x, Y).item()
    for kw in ({"label_smoothing": 0}, {"label_smoothing": np.float64(0.0)},
               {"ignore_index": 4}, {"ignore_index": np.int64(-100)}, {"ignore_index": -1}):
        assert F.cross_entropy(x, Y, **kw).item() == want, kw
    # ignore_index inside the classes: those labels are dropped even on plain input
    np.testing.assert_allclose(F.cross_entropy(x, Y, ignore_index=3).item(),
                               ref_cross_entropy(X, Y, ignore_index=3))
    m = nn.CrossEntropyLoss(reduction="sum")
    assert m(x, Y).item() == F.cross_entropy(x, Y, reduction="sum").item()


@pytest.mark.parametrize("as_tensor", [False, True])
def test_cross_entropy_labels_changed_after_forward_leave_the_gradient(as_tensor):
    # The labels are not copied on the way in: the node must not keep the caller's array.
    y = Y.copy()
    target = cr.tensor(y) if as_tensor else y
    buf = target.data if as_tensor else y
    x = _t(X, grad=True)
    loss = F.cross_entropy(x, target)
    buf[:] = (buf + 1) % 4  # in place, between forward and backward
    loss.backward()
    p = np.exp(_log_softmax(X))
    np.testing.assert_allclose(x.grad, (p - np.eye(4)[Y]) / 5, rtol=1e-12, atol=1e-15)
    # The general path (weights, smoothing, ignore_index within the classes) and nll_loss
    # do not copy int64 labels either.
    for fn in (lambda x, t: F.cross_entropy(x, t, weight=W, label_smoothing=0.1, ignore_index=2),
               lambda x, t: F.nll_loss(F.log_softmax(x), t, weight=W)):
        x = _t(X, grad=True)
        fn(x, Y).backward()
        want = x.grad
        y = Y.copy()
        target = cr.tensor(y) if as_tensor else y
        x = _t(X, grad=True)
        loss = fn(x, target)
        (target.data if as_tensor else y)[:] = 0
        loss.backward()
        np.testing.assert_array_equal(x.grad, want)


def test_cross_entropy_non_contiguous_logits():
    # Transposed (column-major) and strided logits: the node's flat indices address rows of a
    # C-ordered copy, and the gradient reaches the original tensor.
    base = _t(X.T.copy(), grad=True)
    loss = F.cross_entropy(base.T, Y)
    loss.backward()
    p = np.exp(_log_softmax(X))
    np.testing.assert_allclose(base.grad, ((p - np.eye(4)[Y]) / 5).T, rtol=1e-12, atol=1e-15)
    wide = _t(np.repeat(X, 2, axis=1), grad=True)
    loss = F.cross_entropy(wide[:, ::2], Y, reduction="sum")
    np.testing.assert_allclose(loss.item(), ref_cross_entropy(X, Y, reduction="sum"))
    loss.backward()
    np.testing.assert_allclose(wide.grad[:, ::2], p - np.eye(4)[Y], rtol=1e-12, atol=1e-15)
    assert not wide.grad[:, 1::2].any()


def test_cross_entropy_shortcut_keeps_every_diagnosis():
    # Labels that the shortcut's checks refuse fall through to the general path's messages.
    x = _t(X)
    with pytest.raises(InvalidValueError, match=r"\[0, 4\) for 4 classes.*got 4"):
        F.cross_entropy(x, np.array([0, 1, 4, 0, 0]))
    with pytest.raises(InvalidValueError, match="got -2"):
        F.cross_entropy(x, np.array([0, 1, -2, 0, 0], dtype=np.int32))
    with pytest.raises(InvalidValueError, match="4 classes"):
        F.cross_entropy(x, np.array([0, 1, 2**63 + 5, 0, 0], dtype=np.uint64))
    with pytest.raises(InvalidValueError, match="4 classes"):
        F.cross_entropy(x, cr.tensor(np.array([0, 1, 2, 0, 9], dtype=np.uint8)))
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        F.cross_entropy(x, Y.reshape(5, 1))
    with pytest.raises(ShapeError, match=r"\(5,\)"):
        F.cross_entropy(x, Y[:4])
    with pytest.raises(DTypeError, match="bool"):
        F.cross_entropy(x, Y > 1)
    with pytest.raises(InvalidValueError, match="NaN"):
        F.cross_entropy(x, np.array([0.0, np.nan, 2.0, 0.0, 0.0]))
    with pytest.raises(ShapeError, match="no classes"):
        F.cross_entropy(cr.zeros(5, 0), np.zeros(5, dtype=np.int64))
    with pytest.raises(DTypeError):
        F.cross_entropy(cr.tensor(np.ones((5, 4), dtype=np.int64)), Y)
    with pytest.raises(InvalidValueError, match="reduction"):
        F.cross_entropy(x, Y, reduction="avg")
    with pytest.raises(InvalidValueError, match="label_smoothing"):
        F.cross_entropy(x, Y, label_smoothing=True)
    with pytest.raises(InvalidValueError, match="ignore_index"):
        F.cross_entropy(x, Y, ignore_index=True)
    # An empty batch is the general path's: the mean of nothing is NaN, the sum 0.
    empty = _t(np.zeros((0, 4)), grad=True)
    assert math.isnan(F.cross_entropy(empty, np.zeros(0, dtype=np.int64)).item())
    assert F.cross_entropy(empty, np.zeros(0, dtype=np.int64), reduction="sum").item() == 0.0


def test_cross_entropy_all_ignored_mean_is_nan_like_pytorch():
    x = _t(X[:2], grad=True)
    loss = F.cross_entropy(x, cr.tensor([-100, -100]))
    assert math.isnan(loss.item())
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.zeros((2, 4)))
    assert F.cross_entropy(x, cr.tensor([-100, -100]), reduction="sum").item() == 0.0


# --------------------------------------------------------------------------- nll_loss
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_loss(reduction, weighted):
    w = W if weighted else None
    y = np.array([0, 3, -100, 3, 2])
    logp = _log_softmax(X)
    keep = y != -100
    ys = np.where(keep, y, 0)
    wv = np.ones(4) if w is None else w
    per = -wv[ys] * logp[np.arange(5), ys] * keep
    want = _reduce(per, reduction, (wv[ys] * keep).sum())
    got = F.nll_loss(_t(logp), cr.tensor(y), weight=w, reduction=reduction)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    x = _t(logp, grad=True)
    assert cr.gradcheck(lambda x: F.nll_loss(x, cr.tensor(y), weight=w, reduction=reduction),
                        (x,))
    with pytest.raises(InvalidValueError):
        F.nll_loss(_t(logp), cr.tensor([0, 1, 2, 3, 4]))


# --------------------------------------------------------------------------- binary losses
def _bce_logits_ref(x, y, weight=None, pos_weight=None):
    pw = 1.0 if pos_weight is None else pos_weight
    w = 1.0 if weight is None else weight
    log_sig = -np.logaddexp(0, -x)
    log_one_minus = -np.logaddexp(0, x)
    return -w * (pw * y * log_sig + (1 - y) * log_one_minus)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_bce_with_logits(reduction, weights):
    x = RNG.standard_normal((4, 3)) * 3
    y = RNG.uniform(0, 1, size=(4, 3))
    w = RNG.uniform(0.5, 2, size=(4, 1)) if weights in ("weight", "both") else None
    pw = np.array([0.5, 1.0, 3.0]) if weights in ("pos_weight", "both") else None
    kw = dict(weight=w, pos_weight=pw, reduction=reduction)
    got = F.binary_cross_entropy_with_logits(_t(x), _t(y), **kw)
    want = _reduce(_bce_logits_ref(x, y, w, pw), reduction)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    assert cr.gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, **kw),
                        (_t(x, grad=True), _t(y, grad=True)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_stable_at_extreme_logits(dtype):
    x = cr.tensor([1e4, 1e4, -1e4, -1e4, 40.0, -40.0], dtype=dtype, requires_grad=True)
    y = cr.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 0.0], dtype=dtype)
    loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
    want = [1e4, 0.0, 1e4, 0.0, 40.0, math.exp(-40)]
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-6, atol=0)
    loss.sum().backward()
    # d/dx = sigmoid(x) - y
    np.testing.assert_allclose(x.grad, [1.0, 0.0, -1.0, 0.0, 1.0, math.exp(-40)], rtol=1e-6,
                               atol=1e-30)
    pw = F.binary_cross_entropy_with_logits(x, y, pos_weight=cr.tensor(2.0, dtype=dtype),
                                            reduction="sum")
    assert np.isfinite(pw.item())


def test_bce_with_logits_validation():
    with pytest.raises(ShapeError, match="target"):
        F.binary_cross_entropy_with_logits(_t([[1.0, 2.0]]), _t([1.0, 0.0]))
    with pytest.raises(ShapeError, match="pos_weight"):
        F.binary_cross_entropy_with_logits(_t([[1.0, 2.0]]), _t([[1.0, 0.0]]),
                                           pos_weight=[1.0, 2.0, 3.0])
    with pytest.raises(InvalidValueError, match="NaN"):
        F.binary_cross_entropy_with_logits(_t([1.0]), _t([np.nan]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    p = RNG.uniform(0.05, 0.95, size=(3, 4))
    y = RNG.uniform(0, 1, size=(3, 4))
    w = RNG.uniform(0.5, 2, size=(4,)) if weighted else None
    got = F.binary_cross_entropy(_t(p), _t(y), weight=w, reduction=reduction)
    per = -(y * np.log(p) + (1 - y) * np.log(1 - p)) * (1.0 if w is None else w)
    np.testing.assert_allclose(got.numpy(), _reduce(per, reduction), rtol=1e-12)
    assert cr.gradcheck(lambda a, b: F.binary_cross_entropy(a, b, weight=w, reduction=reduction),
                        (_t(p, grad=True), _t(y, grad=True)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_binary_cross_entropy_at_probabilities_zero_and_one(dtype):
    p = cr.tensor([0.0, 0.0, 1.0, 1.0], dtype=dtype, requires_grad=True)
    y = cr.tensor([0.0, 1.0, 0.0, 1.0], dtype=dtype, requires_grad=True)
    loss = F.binary_cross_entropy(p, y, reduction="none")
    # PyTorch clamps each log at -100: a confident wrong answer costs exactly 100.
    np.testing.assert_array_equal(loss.numpy(), [0.0, 100.0, 100.0, 0.0])
    loss.sum().backward()
    # dp = (p - y) / max(p (1 - p), 1e-12); dy = -(clamped log p - clamped log(1 - p)).
    np.testing.assert_allclose(p.grad, [0.0, -1e12, 1e12, 0.0], rtol=1e-6)
    np.testing.assert_allclose(y.grad, [100.0, 100.0, -100.0, -100.0], rtol=1e-6)
    assert np.isfinite(F.binary_cross_entropy(p, y).item())


def test_binary_cross_entropy_validation():
    with pytest.raises(InvalidValueError, match=r"\[0, 1\].*1.5"):
        F.binary_cross_entropy(_t([0.5, 1.5]), _t([0.0, 1.0]))
    with pytest.raises(InvalidValueError):
        F.binary_cross_entropy(_t([0.5, np.nan]), _t([0.0, 1.0]))
    with pytest.raises(ShapeError):
        F.binary_cross_entropy(_t([0.5, 0.5]), _t([[0.0, 1.0]]))


# --------------------------------------------------------------------------- mse and hinge
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_is_the_lectures_square_loss(reduction):
    h = RNG.standard_normal((4, 2))
    y = RNG.standard_normal((4, 2))
    got = F.mse_loss(_t(h), _t(y), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), _reduce((h - y) ** 2, reduction), rtol=1e-12)
    assert F.square_loss is F.mse_loss and nn.SquareLoss is nn.MSELoss
    assert cr.gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction),
                        (_t(h, grad=True), _t(y, grad=True)))


def test_mse_loss_validation():
    with pytest.raises(ShapeError, match=r"\(4, 1\).*\(4,\)"):
        F.mse_loss(_t(np.zeros(4)), _t(np.zeros((4, 1))))
    with pytest.raises(InvalidValueError, match="NaN"):
        F.mse_loss(_t([1.0]), _t([np.nan]))
    # Integer targets are cast to the input's dtype.
    assert F.mse_loss(cr.tensor([1.0, 2.0]), [1, 4]).item() == 2.0


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_hinge_loss(reduction):
    h = np.array([2.0, 0.3, -0.4, -2.0, 0.7])
    y = np.array([1.0, 1.0, 1.0, -1.0, -1.0])
    got = F.hinge_loss(_t(h), _t(y), reduction=reduction)
    np.testing.assert_allclose(got.numpy(), _reduce(np.maximum(0, 1 - y * h), reduction))
    assert cr.gradcheck(lambda a: F.hinge_loss(a, _t(y), reduction=reduction),
                        (_t(h, grad=True),))
    with pytest.raises(InvalidValueError, match="-1 or \\+1"):
        F.hinge_loss(_t(h), _t([1.0, 0.0, 1.0, 0.0, 1.0]))


# --------------------------------------------------------------------------- modules
def test_loss_modules_match_functions():
    x, y = _t(X), cr.tensor(Y)
    ce = nn.CrossEntropyLoss(weight=W.tolist(), label_smoothing=0.1, reduction="sum")
    assert ce(x, y).item() == pytest.approx(
        F.cross_entropy(x, y, weight=W, label_smoothing=0.1, reduction="sum").item())
    assert "weight" in ce.state_dict()
    logp = F.log_softmax(x)
    assert nn.NLLLoss(ignore_index=3)(logp, y).item() == pytest.approx(
        F.nll_loss(logp, y, ignore_index=3).item())
    p, t = _t([[0.2, 0.9]]), _t([[0.0, 1.0]])
    assert nn.BCELoss()(p, t).item() == pytest.approx(F.binary_cross_entropy(p, t).item())
    assert nn.BCEWithLogitsLoss(pos_weight=[1.0, 2.0])(p, t).item() == pytest.approx(
        F.binary_cross_entropy_with_logits(p, t, pos_weight=[1.0, 2.0]).item())
    assert nn.MSELoss(reduction="none")(p, t).shape == (1, 2)
    assert nn.HingeLoss()(_t([0.5]), _t([-1.0])).item() == 1.5
    assert repr(nn.MSELoss()) == "MSELoss()"
    with pytest.raises(InvalidValueError):
        nn.MSELoss(reduction="mean ")


def test_training_a_classifier_reduces_the_loss():
    cr.manual_seed(0)
    x = cr.randn(64, 2)
    y = cr.tensor((x.numpy()[:, 0] * x.numpy()[:, 1] > 0).astype(np.int64))
    model = nn.MLP([2, 16, 2], activation="tanh")
    first = None
    for _ in range(200):
        loss = F.cross_entropy(model(x), y)
        first = loss.item() if first is None else first
        model.zero_grad()
        loss.backward()
        with cr.no_grad():
            for p in model.parameters():
                p -= 0.5 * cr.tensor(p.grad)
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int32, np.uint64])
def test_fused_cross_entropy_node_takes_any_integer_labels(dtype):
    # 300 rows x 10 classes: flat indices up to 2999, beyond a narrow label dtype's range.
    from chainrule.ops.loss import softmax_cross_entropy

    rng = np.random.default_rng(5)
    xs = rng.standard_normal((300, 10))
    y = rng.integers(0, 10, 300)
    want = ref_cross_entropy(xs, y, reduction="sum")
    x = _t(xs, grad=True)
    loss = softmax_cross_entropy(x, y.astype(dtype), None, "sum")
    np.testing.assert_allclose(loss.item(), want, rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(x.grad, np.exp(_log_softmax(xs)) - np.eye(10)[y], atol=1e-12)


# ----------------------------------------------------------------- fused scaled losses (ops.loss)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_squared_error_is_the_chain_bit_for_bit(dtype):
    # without row weights the fused node gives the chain sub, mul, sum, mul exactly (value and
    # gradient), as its docstring argues
    from chainrule.ops.loss import squared_error

    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((13, 3)).astype(dtype)
    t = rng.standard_normal((13, 3)).astype(dtype)
    scale = 0.5 / 3 / 13
    x = cr.tensor(x0, requires_grad=True)
    fused = squared_error(x, t, None, scale)
    fused.backward()
    y = cr.tensor(x0, requires_grad=True)
    e = y - cr.tensor(t)
    chain = (e * e).sum() * scale
    chain.backward()
    assert fused.dtype == chain.dtype == np.dtype(dtype)
    assert fused.item() == chain.item()
    np.testing.assert_array_equal(x.grad, y.grad)


def test_fused_squared_error_with_weights_and_target_gradient():
    from chainrule.ops.loss import squared_error

    rng = np.random.default_rng(1)
    x0, t0 = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    c = np.array([0.0, 1.0, 2.5, 0.5, 1.0])
    x, t = cr.tensor(x0, requires_grad=True), cr.tensor(t0, requires_grad=True)
    out = squared_error(x, t, c, 0.3)
    out.backward()
    assert out.item() == pytest.approx(0.3 * np.sum(c[:, None] * (x0 - t0) ** 2), rel=1e-14)
    np.testing.assert_allclose(x.grad, 0.6 * c[:, None] * (x0 - t0), rtol=1e-14)
    np.testing.assert_allclose(t.grad, -x.grad, rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_bce_with_logits_matches_the_functional_loss(dtype):
    from chainrule.ops.loss import bce_with_logits

    rng = np.random.default_rng(2)
    x0 = (rng.standard_normal((6, 3)) * 4).astype(dtype)
    x0[0] = [1e4, -1e4, 0.0]  # saturated and zero logits: finite, exact
    t = rng.integers(0, 2, (6, 3)).astype(dtype)
    t[1] = 0.25  # soft targets too
    c = np.array([1.0, 0.5, 0.0, 2.0, 1.0, 1.0], dtype=dtype)
    x = cr.tensor(x0, requires_grad=True)
    out = bce_with_logits(x, t, c, 0.2)
    out.backward()
    y = cr.tensor(x0, requires_grad=True)
    per = F.binary_cross_entropy_with_logits(y, t, reduction="none")
    ref = (per.sum(axis=1) * cr.tensor(c)).sum() * 0.2
    ref.backward()
    tol = 1e-6 if dtype == "float32" else 1e-14
    assert np.isfinite(out.item()) and out.item() == pytest.approx(ref.item(), rel=tol)
    np.testing.assert_allclose(x.grad, y.grad, rtol=tol, atol=tol)
    # the gradient is c_i (sigmoid(x) - t) scale, exactly 0 and +-scale c_i where saturated
    assert x.grad[0, 0] == pytest.approx(0.2 * (1 - t[0, 0])) and x.grad[0, 1] == \
        pytest.approx(-0.2 * t[0, 1])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_mse_loss_fused_path_gives_the_chains_numbers(reduction, dtype):
    # F.mse_loss's mean/sum run as one squared_error node (+ a division for the mean): the
    # same bits as sub, mul and mean/sum, value and gradient, also for a target that needs one
    rng = np.random.default_rng(4)
    h0 = rng.standard_normal((9, 3)).astype(dtype)
    y0 = rng.standard_normal((9, 3)).astype(dtype)
    h, y = cr.tensor(h0, requires_grad=True), cr.tensor(y0, requires_grad=True)
    got = F.mse_loss(h, y, reduction=reduction)
    assert "squared_error" in _node_names(got)
    got.backward()
    h2, y2 = cr.tensor(h0, requires_grad=True), cr.tensor(y0, requires_grad=True)
    d = h2 - y2
    want = (d * d).mean() if reduction == "mean" else (d * d).sum()
    want.backward()
    assert got.item() == want.item()
    np.testing.assert_array_equal(h.grad, h2.grad)
    np.testing.assert_array_equal(y.grad, y2.grad)


def test_bce_with_logits_fused_path_matches_the_chain():
    rng = np.random.default_rng(5)
    x0 = rng.standard_normal((6, 4)) * 5
    y0 = rng.uniform(0, 1, (6, 4))
    for reduction in ("mean", "sum"):
        x = cr.tensor(x0, requires_grad=True)
        got = F.binary_cross_entropy_with_logits(x, y0, reduction=reduction)
        assert "bce_with_logits" in _node_names(got)
        got.backward()
        x2 = cr.tensor(x0, requires_grad=True)
        per = F.binary_cross_entropy_with_logits(x2, y0, reduction="none")
        want = per.mean() if reduction == "mean" else per.sum()
        want.backward()
        assert got.item() == pytest.approx(want.item(), rel=1e-14)
        np.testing.assert_allclose(x.grad, x2.grad, rtol=1e-13, atol=1e-16)


def _node_names(out):
    from chainrule.memory.accounting import _nodes  # the graph walk of the memory accounting

    return {node.prim.name for node in _nodes(out)}
