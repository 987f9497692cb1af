"""Activation checkpointing: gradients bit-identical to the plain computation (float32 and float64,
with dropout), only the inputs kept, random state restored, and the segment arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.checkpoint import checkpoint, checkpoint_sequential, split
from chainrule.errors import InvalidValueError
from chainrule.memory import saved, saved_bytes
from chainrule.nn.functional import cross_entropy


def _mlp(sizes, activation="relu", dropout=0.0, dtype="float32", seed=0, generator=None):
    cr.manual_seed(seed)
    return cr.nn.MLP(sizes, activation=activation, dropout=dropout, dtype=dtype,
                     generator=generator)


def _batch(n, d, classes, dtype, seed=1):
    rng = np.random.default_rng(seed)
    x = cr.tensor(rng.standard_normal((n, d)).astype(dtype))
    y = cr.tensor(rng.integers(0, classes, n).astype(np.int64))
    return x, y


def _grads(model, x, y, segments, x_grad=False, seed=7):
    """Gradients of the loss (and of x) after one backward, the forward run with
    ``segments`` (None: plain ``model(x)``)."""
    model.zero_grad()
    cr.manual_seed(seed)  # dropout draws from the default generator unless the model has one
    xx = cr.tensor(x.data.copy(), requires_grad=x_grad)
    out = model(xx) if segments is None else checkpoint_sequential(list(model), segments, xx)
    loss = cross_entropy(out, y)
    loss.backward()
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    if x_grad:
        grads["x"] = xx.grad.copy()
    return float(loss.item()), grads


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation,dropout", [("relu", 0.0), ("tanh", 0.0), ("relu", 0.3),
                                                ("sigmoid", 0.5)])
def test_checkpointed_gradients_are_bit_identical(dtype, activation, dropout):
    model = _mlp([12, 16, 16, 16, 16, 5], activation, dropout, dtype)
    x, y = _batch(9, 12, 5, dtype)
    loss0, plain = _grads(model, x, y, None, x_grad=True)
    n = len(list(model))
    for segments in (1, 2, 3, 4, n):
        loss, ck = _grads(model, x, y, segments, x_grad=True)
        assert loss == loss0
        assert ck.keys() == plain.keys()
        for name in plain:
            assert ck[name].dtype == plain[name].dtype == np.dtype(dtype)
            np.testing.assert_array_equal(ck[name], plain[name], err_msg=f"{name}, {segments}")


def test_dropout_with_its_own_generator_recomputes_the_same_mask():
    gen = cr.Generator(3)
    model = _mlp([6, 10, 10, 10, 4], "relu", 0.5, "float64", generator=gen)
    x, y = _batch(7, 6, 4, "float64")
    state = gen.get_state()
    _, plain = _grads(model, x, y, None)
    after_plain = gen.get_state()
    gen.set_state(state)
    _, ck = _grads(model, x, y, 3)
    # the masks were the same (bit-identical gradients) and the generator ends where it did
    assert gen.get_state() == after_plain
    for name in plain:
        np.testing.assert_array_equal(ck[name], plain[name])
    # and the masks really are random: another draw gives other gradients
    _, other = _grads(model, x, y, 3)
    assert any(not np.array_equal(other[k], plain[k]) for k in plain)


def test_default_generator_state_is_the_same_after_a_checkpointed_step():
    model = _mlp([5, 8, 8, 3], "relu", 0.4, "float32")
    x, y = _batch(4, 5, 3, "float32")
    _grads(model, x, y, None, seed=11)
    plain_next = cr.rand(3).numpy()
    _grads(model, x, y, 2, seed=11)
    np.testing.assert_array_equal(cr.rand(3).numpy(), plain_next)


def test_checkpoint_keeps_only_its_inputs_and_recomputes_once():
    calls = []
    w = cr.randn(32, 32, dtype="float64", requires_grad=True)

    def block(h):
        calls.append(cr.is_grad_enabled())
        for _ in range(4):
            h = (h @ w).tanh()
        return h

    x = cr.randn(64, 32, dtype="float64", requires_grad=True)
    plain = block(x).sum()
    plain.backward()
    gw, gx = w.grad.copy(), x.grad.copy()
    w.grad = x.grad = None
    calls.clear()

    out = checkpoint(block, x, params=[w])
    assert calls == [False]                      # forward without recording
    node = out.grad_fn
    kept = saved(out)
    assert kept.total == x.data.nbytes           # only the input: not w, no activation
    assert kept.leaves == x.data.nbytes and kept.activations == 0  # x is a leaf here
    h = x * 1.0                                  # an activation as the input instead
    assert saved_bytes(checkpoint(block, h, params=[w])) == h.data.nbytes
    assert saved_bytes(block(h)) >= 4 * h.data.nbytes
    calls.clear()
    out.sum().backward()
    assert calls == [True]                       # recomputed once, with recording
    np.testing.assert_array_equal(w.grad, gw)
    np.testing.assert_array_equal(x.grad, gx)
    assert node.saved is not None and saved(out).total == 0  # released by backward


def test_checkpoint_of_a_module_finds_its_parameters():
    layer = cr.nn.Linear(6, 3, dtype="float64")
    x = cr.randn(5, 6, dtype="float64")          # data: no input requires grad
    checkpoint(layer, x).sum().backward()
    ck = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.zero_grad()
    layer(x).sum().backward()
    np.testing.assert_array_equal(ck[0], layer.weight.grad)
    np.testing.assert_array_equal(ck[1], layer.bias.grad)


def test_checkpoint_under_no_grad_and_retain_graph():
    model = _mlp([4, 6, 6, 2], "tanh", 0.0, "float64")
    x = cr.randn(3, 4, dtype="float64")
    with cr.no_grad():
        out = checkpoint_sequential(list(model), 2, x)
    assert not out.requires_grad and out.grad_fn is None
    np.testing.assert_array_equal(out.numpy(), model(x).numpy())

    loss = checkpoint_sequential(list(model), 2, x).sum()
    loss.backward(retain_graph=True)
    once = {n: p.grad.copy() for n, p in model.named_parameters()}
    loss.backward()                              # recomputes again from the kept inputs
    for n, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-15, atol=0)


def test_checkpoint_refuses_a_stale_graph_after_an_update():
    model = _mlp([4, 5, 5, 2], "relu", 0.0, "float32")
    x, y = _batch(3, 4, 2, "float32")
    loss = cross_entropy(checkpoint_sequential(list(model), 2, x), y)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    for p in model.parameters():
        p.grad = np.zeros_like(p.data)
    opt.step()                                   # parameters changed in place
    with pytest.raises(cr.GraphError):
        loss.backward()


def test_checkpoint_argument_errors():
    x = cr.randn(2, 3)
    with pytest.raises(InvalidValueError):
        checkpoint(42, x)
    with pytest.raises(InvalidValueError):
        checkpoint(lambda t: (t, t), x)
    mods = list(cr.nn.MLP([3, 4, 2]))
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(InvalidValueError):
            checkpoint_sequential(mods, bad, x)
    with pytest.raises(InvalidValueError):
        checkpoint_sequential([], 2, x)


def test_split_is_balanced_and_covers_everything():
    for n in range(1, 40):
        for k in range(1, 45):
            bounds = split(n, k)
            assert len(bounds) == min(n, k)
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a < b for a, b in bounds)
            assert all(bounds[i][1] == bounds[i + 1][0] for i in range(len(bounds) - 1))
            lengths = [b - a for a, b in bounds]
            assert max(lengths) - min(lengths) <= 1
            assert lengths == sorted(lengths, reverse=True)
    assert split(7, 3) == [(0, 3), (3, 5), (5, 7)]


def test_checkpointing_cuts_the_saved_state_of_a_deep_mlp():
    L = 16
    model = _mlp([32] * L + [4], "relu", 0.0, "float32")
    x, y = _batch(256, 32, 4, "float32")
    plain = saved_bytes(cross_entropy(model(x), y), exclude=[x])
    ck = saved_bytes(cross_entropy(checkpoint_sequential(list(model), 4, x), y), exclude=[x])
    # 4 segments of 31 modules: 3 segment inputs + the last segment's ~4 layers, of 15 layers
    assert ck < plain / 2
