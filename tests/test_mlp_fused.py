"""The fused ``mlp`` node (chainrule.ops.mlp) and nn.MLP's use of it.

The fused node must be indistinguishable from the chain of ``linear`` and activation nodes it
replaces: the same outputs and gradients bit for bit, the same errors, the same refusal of stale
graphs. Its own gradients are checked against finite differences in tests/test_ops.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.errors import GraphError, ShapeError
from chainrule.nn.container import Sequential


def _node_names(out: cr.Tensor) -> set[str]:
    names, stack, seen = set(), [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or isinstance(node, cr.Tensor) or id(node) in seen:
            continue
        seen.add(id(node))
        names.add(node.prim.name)
        stack.extend(node.parents)
    return names


def _grads(model, x, fused: bool, loss=lambda y: (y * y).sum()):
    for p in model.parameters():
        p.grad = None
    x.grad = None
    y = model(x) if fused else Sequential.forward(model, x)
    assert ("mlp" in _node_names(y)) == fused
    loss(y).backward()
    return [y.data] + [p.grad for p in model.parameters()] + [x.grad]


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "identity", "leaky_relu"])
@pytest.mark.parametrize("out_act", [None, "relu", "tanh", "sigmoid", "leaky_relu"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(6, 4), (4,), (2, 3, 4), (40, 4)])
def test_fused_equals_unfused_bit_for_bit(act, out_act, dtype, shape):
    cr.manual_seed(0)
    model = cr.nn.MLP([4, 7, 5, 3], act, output_activation=out_act, dtype=dtype)
    x = cr.tensor(np.random.default_rng(1).standard_normal(shape).astype(dtype),
                  requires_grad=True)
    fused, unfused = _grads(model, x, True), _grads(model, x, False)
    for a, b in zip(fused, unfused):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.isfinite(a).all()  # (assert_array_equal takes NaN as equal to NaN)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("batch", [1, 16, 64, 200])  # 16 and 64 take linear's swapped product
def test_fused_equals_unfused_on_wide_layers(batch):
    cr.manual_seed(0)
    model = cr.nn.MLP([300, 256, 128, 10], "relu", dtype="float32")
    x = cr.tensor(np.random.default_rng(1).random((batch, 300), dtype=np.float32))
    ce = lambda y: cr.nn.functional.cross_entropy(y, np.arange(batch) % 10)  # noqa: E731
    for a, b in zip(_grads(model, x, True, ce), _grads(model, x, False, ce)):
        if a is None:
            assert b is None
            continue
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("frozen", [0, 1, 2, 3])
def test_frozen_parameters_and_bias_free_layers(frozen):
    for bias in (True, False):
        cr.manual_seed(0)
        model = cr.nn.MLP([3, 5, 4, 2], "tanh", bias=bias, dtype="float64")
        params = list(model.parameters())
        params[frozen % len(params)].requires_grad = False
        x = cr.tensor(np.random.default_rng(2).standard_normal((5, 3)), requires_grad=True)
        fused, unfused = _grads(model, x, True), _grads(model, x, False)
        for a, b in zip(fused, unfused):
            if a is None or b is None:
                assert a is None and b is None
            else:
                np.testing.assert_array_equal(a, b)
        assert params[frozen % len(params)].grad is None


def test_no_gradient_wanted_below_the_first_trainable_layer():
    model = cr.nn.MLP([3, 4, 2], "tanh", dtype="float64")
    for p in list(model.parameters())[:2]:
        p.requires_grad = False
    x = cr.tensor(np.ones((2, 3)))  # needs no gradient either
    model(x).sum().backward()
    w1, b1, w2, b2 = model.parameters()
    assert w1.grad is None and b1.grad is None and w2.grad is not None and b2.grad is not None


def test_retain_graph_gives_the_same_gradient_twice():
    cr.manual_seed(0)
    model = cr.nn.MLP([3, 6, 2], "relu", dtype="float64")
    x = cr.tensor(np.random.default_rng(3).standard_normal((4, 3)))
    y = (model(x) ** 2).sum()
    y.backward(retain_graph=True)
    first = [p.grad.copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    y.backward()
    for a, p in zip(first, model.parameters()):
        np.testing.assert_array_equal(a, p.grad)
    with pytest.raises(GraphError, match="second time"):
        y.backward()


def test_in_place_change_of_a_weight_after_the_forward_is_refused():
    model = cr.nn.MLP([3, 4, 2], "tanh", dtype="float64")
    y = model(cr.ones((2, 3))).sum()
    with cr.no_grad():
        model.linears[1].weight.mul_(2.0)
    with pytest.raises(GraphError, match="in-place"):
        y.backward()


def test_no_grad_records_nothing():
    model = cr.nn.MLP([3, 4, 2], "tanh")
    with cr.no_grad():
        y = model(cr.ones((2, 3)))
    assert y.grad_fn is None and not y.requires_grad


def test_arrays_and_lists_are_accepted_as_input():
    model = cr.nn.MLP([3, 4, 2], "tanh", dtype="float64")
    x = np.random.default_rng(5).standard_normal((2, 3))
    np.testing.assert_array_equal(model(x).numpy(), model(cr.tensor(x)).numpy())
    np.testing.assert_array_equal(model(x.tolist()).numpy(),
                                  model(cr.tensor(x.tolist())).numpy())


def test_wrong_input_width_names_the_problem():
    model = cr.nn.MLP([3, 4, 2], "tanh")
    with pytest.raises(ShapeError, match="at least one dimension"):
        model(cr.ones(()))
    with pytest.raises(ShapeError, match="input has 5 features but layer 1's weight of shape "
                                         r"\(4, 3\) expects 3 features"):
        model(cr.ones((2, 5)))


def test_a_rebound_parameter_of_the_wrong_shape_is_caught():
    model = cr.nn.MLP([3, 4, 2], "tanh")
    model(cr.ones((2, 3)))
    model.linears[1].bias.data = np.zeros(3, dtype=np.float32)  # (3,) where (2,) is due
    with pytest.raises(ShapeError, match="layer 2's bias must have shape"):
        model(cr.ones((2, 3)))


def test_parameters_live_in_one_buffer_and_stay_there_after_to():
    cr.manual_seed(0)
    model = cr.nn.MLP([3, 4, 2], "tanh")
    before = [p.numpy().copy() for p in model.parameters()]
    for dtype in (None, "float64"):
        if dtype:
            model.to(dtype=dtype)
        params = list(model.parameters())
        base = params[0].data.base
        assert base is not None and base.ndim == 1 and base.size == sum(p.data.size for p in params)
        assert all(p.data.base is base for p in params)
        for p, b in zip(params, before):
            np.testing.assert_array_equal(p.numpy(), b.astype(p.dtype))


@pytest.mark.parametrize("slope", [0.0, 0.2, 3.0])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_leaky_relu_fused_equals_unfused_with_its_slope(slope, dtype):
    # the slope is taken from the module; 0 and > 1 included (the mask [y > 0] is [s > 0] for
    # every slope >= 0), and a row of zeros (pre-activations equal to the bias)
    cr.manual_seed(0)
    model = cr.nn.MLP([4, 6, 3], "leaky_relu", dtype=dtype)
    model[1].negative_slope = slope
    x = np.random.default_rng(2).standard_normal((7, 4)).astype(dtype)
    x[0] = 0.0
    x = cr.tensor(x, requires_grad=True)
    fused = _grads(model, x, True, loss=lambda y: (y * y).mean())
    unfused = _grads(model, x, False, loss=lambda y: (y * y).mean())
    for a, b in zip(fused, unfused):
        assert np.isfinite(a).all()
        np.testing.assert_array_equal(a, b)
    h = model[1](model[0](x)).numpy()
    assert (h < 0).any() == (slope > 0)  # the negative branch was taken


def test_a_changed_leaky_slope_reaches_the_fused_node():
    x = cr.tensor(np.linspace(-1, 1, 6).reshape(2, 3))
    model = cr.nn.MLP([3, 4, 2], "leaky_relu", dtype="float64")
    before = model(x).numpy()
    model[1].negative_slope = 0.5
    np.testing.assert_array_equal(model(x).numpy(), Sequential.forward(model, x).numpy())
    assert not np.array_equal(model(x).numpy(), before)


def test_fused_mlp_activation_specs():
    from chainrule.ops.mlp import fused_activation, mlp

    assert fused_activation("leaky_relu") == ("leaky_relu", 0.01)
    assert fused_activation(("leaky_relu", 0.3)) == ("leaky_relu", 0.3)
    for bad in ["elu", ("leaky_relu", -0.1), ("leaky_relu", float("nan")), ("relu", 0.1)]:
        with pytest.raises(cr.errors.InvalidValueError, match="unknown activation"):
            fused_activation(bad)
    x, w = np.ones((2, 3)), np.ones((4, 3))
    np.testing.assert_array_equal(mlp(x - 2, [w], None, ["leaky_relu"]).numpy(),
                                  np.full((2, 4), -0.03))


def test_unfusable_networks_fall_back_to_the_chain():
    x = cr.ones((2, 3))
    leaky = cr.nn.MLP([3, 4, 2], "leaky_relu")
    leaky[1].negative_slope = -0.5  # the mask [y > 0] would be wrong: the chain runs
    assert "mlp" not in _node_names(leaky(x)) and "leaky_relu" in _node_names(leaky(x))
    grown = cr.nn.MLP([3, 4, 2], "tanh")
    assert "mlp" in _node_names(grown(x))
    grown.append(cr.nn.Softmax(dim=-1))  # the cached plan notices the new module
    assert "mlp" not in _node_names(grown(x)) and "softmax" in _node_names(grown(x))


def test_dropout_is_fused_only_where_it_is_the_identity():
    x = cr.ones((8, 3))
    model = cr.nn.MLP([3, 16, 2], "relu", dropout=0.5)
    assert "mlp" not in _node_names(model(x))  # training: dropout draws masks
    model.eval()
    assert "mlp" in _node_names(model(x))
    model.train()
    for m in model:
        if isinstance(m, cr.nn.Dropout):
            m.p = 0.0
    assert "mlp" in _node_names(model(x))  # p = 0 is the identity in training too
    model[2].p = 0.3  # and the plan notices p changing back
    assert "mlp" not in _node_names(model(x))


def test_fused_node_saves_what_the_chain_saves():
    cr.manual_seed(0)
    model = cr.nn.MLP([20, 32, 32, 10], "relu", dtype="float32")
    x = cr.tensor(np.random.default_rng(4).random((64, 20), dtype=np.float32))
    fused = cr.memory.saved_bytes(model(x), exclude=[x])
    unfused = cr.memory.saved_bytes(Sequential.forward(model, x), exclude=[x])
    assert fused == unfused == 2 * 64 * 32 * 4  # the two hidden activations


@pytest.mark.parametrize("trainable", [[4, 5], [2, 3, 4, 5], [0, 1], [5]])
def test_frozen_layers_save_no_more_than_the_chain(trainable):
    # fine-tuning: only some layers' parameters need gradients
    cr.manual_seed(0)
    model = cr.nn.MLP([20, 32, 32, 10], "tanh", dtype="float32")
    for i, p in enumerate(model.parameters()):
        p.requires_grad = i in trainable
    x = cr.tensor(np.random.default_rng(4).random((64, 20), dtype=np.float32))
    fused = cr.memory.saved_bytes(model(x), exclude=[x])
    unfused = cr.memory.saved_bytes(Sequential.forward(model, x), exclude=[x])
    assert fused == unfused
    grads = _grads(model, x, True), _grads(model, x, False)
    for a, b in zip(*grads):
        if a is None or b is None:
            assert a is None and b is None
        else:
            np.testing.assert_array_equal(a, b)


def test_an_older_two_part_plan_cache_is_made_again():
    # a network pickled before the plan cache also held the leaky slopes carries (mods, plan)
    model = cr.nn.MLP([3, 4, 2], "leaky_relu", dtype="float64")
    x = cr.tensor(np.linspace(-1, 1, 6).reshape(2, 3))
    want = model(x).numpy()
    mods = tuple(model._modules.values())
    model.__dict__["_plan"] = (mods, model._fused_plan())  # the old layout
    model[1].negative_slope = 0.5
    np.testing.assert_array_equal(model(x).numpy(), Sequential.forward(model, x).numpy())
    assert not np.array_equal(model(x).numpy(), want)
