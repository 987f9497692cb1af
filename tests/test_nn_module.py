"""Module, Parameter, Linear, Sequential, MLP, Dropout, Flatten: registration, traversal,
state_dict, repr, errors, specs, and the lecture's forward pass."""

import copy
import json
import math

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn as nn
import chainrule.nn.functional as F
from chainrule.errors import DTypeError, InvalidValueError, ShapeError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.Tanh()
        self.scale = nn.Parameter(cr.ones(1))
        self.fc2 = nn.Linear(4, 2, bias=False)
        self.note = "not registered"

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


# --------------------------------------------------------------------------- Parameter
def test_parameter_is_a_floating_leaf_tensor():
    p = nn.Parameter(cr.zeros(2, 3))
    assert isinstance(p, cr.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float32
    assert not nn.Parameter(cr.zeros(2), requires_grad=False).requires_grad
    src = cr.zeros(3, dtype="float64")
    assert np.shares_memory(nn.Parameter(src).data, src.data)  # like torch: wraps the data
    assert repr(nn.Parameter(cr.ones(2))).startswith("Parameter containing:\ntensor(")
    with pytest.raises(DTypeError, match="floating"):
        nn.Parameter(cr.tensor([1, 2]))
    y = nn.Parameter(cr.ones(2)) * 2  # results of ops are plain tensors
    assert type(y) is cr.Tensor


# --------------------------------------------------------------------------- registration
def test_named_parameters_children_modules_in_registration_order():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == ["scale", "fc1.weight", "fc1.bias",
                                                       "fc2.weight"]
    assert [p.shape for p in net.parameters()] == [(1,), (4, 3), (4,), (2, 4)]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert list(net.children())[1] is net.act
    assert [n for n, _ in net.named_modules()] == ["", "fc1", "act", "fc2"]
    assert len(list(net.modules())) == 4
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert net.fc2.bias is None and "bias" not in dict(net.fc2.named_parameters())
    assert net.note == "not registered"


def test_shared_parameters_listed_once_but_saved_under_each_name():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_reassignment_and_deletion():
    net = Net()
    net.fc1 = nn.Identity()  # a module replaces a module
    assert "fc1.weight" not in dict(net.named_parameters())
    net.scale = None  # a parameter slot may be emptied
    assert "scale" not in dict(net.named_parameters())
    with pytest.raises(TypeError, match="Parameter or None"):
        net.fc2.weight = cr.zeros(2, 4)  # a plain tensor is not a parameter
    del net.act
    assert "act" not in dict(net.named_children())
    with pytest.raises(AttributeError):
        net.act


def test_unknown_attributes_raise_attribute_error():
    net = Net()
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'fc3'"):
        net.fc3
    with pytest.raises(AttributeError, match="did you mean 'fc1'"):
        net.fc_1
    with pytest.raises(AttributeError):
        nn.Linear(2, 2).wieght
    assert not hasattr(net, "missing")
    assert getattr(net, "missing", None) is None


def test_assignment_before_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match="super\\(\\).__init__"):
        Broken()


def test_forward_and_call():
    net = Net()
    out = net(cr.randn(5, 3))
    assert out.shape == (5, 2)
    with pytest.raises(NotImplementedError):
        nn.Module()(cr.ones(1))


def test_train_eval_and_zero_grad():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.Sequential(nn.Dropout(0.1)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(InvalidValueError):
        net.train("no")
    net(cr.randn(3, 2)).sum().backward()
    assert net[0].weight.grad is not None
    net.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(net[0].weight.grad, np.zeros((2, 2)))
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_requires_grad_and_to_dtype():
    net = Net()
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    w = net.fc1.weight
    net.double()
    assert net.fc1.weight is w and w.dtype == np.float64  # identity kept: optimizers still work
    assert net(cr.randn(2, 3, dtype="float64")).dtype == np.float64
    assert net.fc1.config()["dtype"] == "float64"
    with pytest.raises(DTypeError):
        net.to(dtype="int32")


def test_deepcopy_gives_independent_parameters():
    net = Net()
    twin = copy.deepcopy(net)
    assert isinstance(twin.fc1.weight, nn.Parameter)
    assert not np.shares_memory(twin.fc1.weight.data, net.fc1.weight.data)
    with cr.no_grad():
        twin.fc1.weight.add_(1.0)
    assert not np.allclose(twin.fc1.weight.numpy(), net.fc1.weight.numpy())


# --------------------------------------------------------------------------- state_dict
def test_state_dict_round_trip():
    cr.manual_seed(0)
    a, b = Net(), Net()
    sd = a.state_dict()
    assert list(sd) == ["scale", "fc1.weight", "fc1.bias", "fc2.weight"]
    assert all(not t.requires_grad for t in sd.values())
    w_before = b.fc1.weight
    result = b.load_state_dict(sd)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert b.fc1.weight is w_before  # copied in place
    x = cr.randn(4, 3)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    # The loaded values are copies, not aliases of the source.
    with cr.no_grad():
        a.fc1.weight.add_(1.0)
    assert not np.allclose(a.fc1.weight.numpy(), b.fc1.weight.numpy())


def test_load_state_dict_casts_dtype_and_accepts_arrays():
    net = Net()
    sd = {k: v.numpy().astype(np.float64) + 1 for k, v in net.state_dict().items()}
    net.load_state_dict(sd)
    assert net.fc1.weight.dtype == np.float32
    np.testing.assert_allclose(net.fc1.weight.numpy(), sd["fc1.weight"], rtol=1e-6)
    net.load_state_dict({k: v.tolist() for k, v in sd.items()})


def test_load_state_dict_strict_errors_name_the_keys():
    net = Net()
    sd = net.state_dict()
    missing = {k: v for k, v in sd.items() if k != "fc1.bias"}
    with pytest.raises(InvalidValueError, match="missing key.*'fc1.bias'"):
        net.load_state_dict(missing)
    extra = dict(sd, **{"fc3.weight": cr.zeros(2)})
    with pytest.raises(InvalidValueError, match="unexpected key.*'fc3.weight'"):
        net.load_state_dict(extra)
    both = dict(missing, **{"fc3.weight": cr.zeros(2)})
    with pytest.raises(InvalidValueError) as info:
        net.load_state_dict(both)
    assert "'fc1.bias'" in str(info.value) and "'fc3.weight'" in str(info.value)
    result = net.load_state_dict(both, strict=False)
    assert result.missing_keys == ["fc1.bias"] and result.unexpected_keys == ["fc3.weight"]
    with pytest.raises(InvalidValueError):
        net.load_state_dict([("scale", cr.ones(1))])


def test_load_state_dict_shape_mismatch_is_an_error_and_changes_nothing():
    net = Net()
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    sd = {k: v.numpy() + 1 for k, v in net.state_dict().items()}
    sd["fc2.weight"] = np.zeros((4, 2), dtype=np.float32)
    for strict in (True, False):
        with pytest.raises(ShapeError, match=r"'fc2.weight'.*\(4, 2\).*\(2, 4\)"):
            net.load_state_dict(sd, strict=strict)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])
    with pytest.raises(DTypeError, match="scale"):
        net.load_state_dict(dict(sd, scale=["a"]), strict=False)


# --------------------------------------------------------------------------- repr
def test_nested_repr_like_pytorch():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Sequential(nn.Dropout(0.25),
                                                                  nn.Linear(3, 1, bias=False)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Dropout(p=0.25)\n"
        "    (1): Linear(in_features=3, out_features=1, bias=False)\n"
        "  )\n"
        ")"
    )
    assert repr(Net()).splitlines()[1] == "  (fc1): Linear(in_features=3, out_features=4, bias=True)"
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    assert repr(nn.Identity()) == "Identity()"


# --------------------------------------------------------------------------- Linear
def test_linear_is_the_lectures_affine_map():
    layer = nn.Linear(3, 2, dtype="float64")
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    x = np.random.default_rng(0).standard_normal((4, 3))
    W, b = layer.weight.numpy(), layer.bias.numpy()
    # s_j = sum_i w_ij x_i + b_j with w_ij = W[j, i], for each sample.
    s = np.array([[sum(W[j, i] * xn[i] for i in range(3)) + b[j] for j in range(2)]
                  for xn in x])
    out = layer(cr.tensor(x))
    assert out.grad_fn.name == "linear"
    np.testing.assert_allclose(out.numpy(), s, rtol=1e-12)
    assert layer(cr.tensor(x[0])).shape == (2,)
    assert layer(cr.tensor(np.zeros((5, 7, 3)))).shape == (5, 7, 2)
    xt = cr.tensor(x, requires_grad=True)
    assert cr.gradcheck(lambda x, w, b: F.linear(x, w, b), (xt, layer.weight, layer.bias))
    with pytest.raises(ShapeError):
        layer(cr.zeros(4, 5, dtype="float64"))


def test_linear_argument_validation():
    for bad in (-1, 2.5, "3", True):
        with pytest.raises(InvalidValueError):
            nn.Linear(bad, 2)
    with pytest.raises(DTypeError):
        nn.Linear(2, 2, dtype="int64")
    with pytest.raises(InvalidValueError):
        nn.Linear(2, 2, bias="yes")


# --------------------------------------------------------------------------- Sequential, MLP
def test_sequential_container():
    a, b, c = nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    with pytest.raises(IndexError):
        seq[3]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    x = cr.randn(4, 2)
    np.testing.assert_allclose(seq(x).numpy(), c(b(a(x))).numpy())
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and isinstance(seq[3], nn.Sigmoid)
    with pytest.raises(InvalidValueError):
        nn.Sequential(nn.ReLU(), "relu")


def test_mlp_structure_and_parameter_names():
    model = nn.MLP([784, 256, 128, 10], activation="relu")
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [n for n, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert model[0].weight.shape == (256, 784)
    with_dropout = nn.MLP([4, 8, 8, 2], activation="gelu", output_activation="softmax",
                          dropout=0.2, bias=False)
    assert [type(m).__name__ for m in with_dropout] == [
        "Linear", "GELU", "Dropout", "Linear", "GELU", "Dropout", "Linear", "Softmax"]
    assert [n for n, _ in with_dropout.named_parameters()] == ["0.weight", "3.weight",
                                                               "6.weight"]
    assert len(with_dropout.linears) == 3
    for bad in ([3], [3, 0], [2.0, 3], "23", [True, 2]):
        with pytest.raises(InvalidValueError):
            nn.MLP(bad)
    with pytest.raises(InvalidValueError, match="valid names"):
        nn.MLP([2, 2, 1], activation="rectifier")


def test_mlp_forward_is_the_lectures_recursion():
    """x^(l) = theta(W^(l) x^(l-1) + b^(l)) with theta = tanh for the hidden layers and a
    linear output, written out with the lecture's indices w_ij^(l) = W[l][j, i]."""
    model = nn.MLP([3, 4, 2], activation="tanh", dtype="float64")
    Ws = [m.weight.numpy() for m in model.linears]
    bs = [m.bias.numpy() for m in model.linears]
    x0 = np.array([1.5, -1.0, 1.3])
    x = x0
    for l in (1, 2):
        W, b = Ws[l - 1], bs[l - 1]
        s = np.array([b[j] + sum(W[j, i] * x[i] for i in range(len(x)))
                      for j in range(W.shape[0])])
        x = np.tanh(s) if l < 2 else s
    np.testing.assert_allclose(model(cr.tensor(x0)).numpy(), x, rtol=1e-12)
    # Gradients: the module's backward equals that of the same recursion written with
    # F.linear on leaf copies of the parameters, which gradcheck verifies.
    xb = np.stack([x0, -x0])

    def forward(x, W1, b1, W2, b2):
        return F.linear(F.tanh(F.linear(x, W1, b1)), W2, b2)

    leaves = [cr.tensor(p.numpy(), requires_grad=True) for p in model.parameters()]
    xt = cr.tensor(xb, requires_grad=True)
    assert cr.gradcheck(forward, (xt, *leaves))
    forward(cr.tensor(xb), *leaves).sum().backward()
    model(cr.tensor(xb)).sum().backward()
    for p, leaf in zip(model.parameters(), leaves):
        np.testing.assert_allclose(p.grad, leaf.grad, rtol=1e-12)


def test_mlp_activation_given_as_module_or_class():
    m1 = nn.MLP([2, 3, 3, 1], activation=nn.LeakyReLU(0.2))
    assert isinstance(m1[1], nn.LeakyReLU) and m1[1] is not m1[3]  # fresh module per layer
    assert m1[3].negative_slope == 0.2
    assert m1.config()["activation"] == {"type": "LeakyReLU", "config": {"negative_slope": 0.2}}
    m2 = nn.MLP([2, 3, 1], activation=nn.ELU)
    assert isinstance(m2[1], nn.ELU)
    assert nn.MLP([2, 3, 1], activation="LeakyReLU").config()["activation"] == "leaky_relu"


# --------------------------------------------------------------------------- specs
def _round_trip(model, x):
    spec = model.spec()
    text = json.dumps(spec)  # JSON-serialisable
    rebuilt = nn.build(json.loads(text))
    assert type(rebuilt) is type(model)
    assert repr(rebuilt) == repr(model)
    rebuilt.load_state_dict(model.state_dict())
    model.eval()
    rebuilt.eval()
    np.testing.assert_array_equal(rebuilt(x).numpy(), model(x).numpy())
    return spec, rebuilt


def test_mlp_spec_round_trip():
    model = nn.MLP([3, 5, 5, 2], activation="relu", output_activation="log_softmax",
                   dropout=0.1, dtype="float64")
    spec, rebuilt = _round_trip(model, cr.randn(4, 3, dtype="float64"))
    assert spec == {"type": "MLP", "config": {
        "sizes": [3, 5, 5, 2], "activation": "relu", "output_activation": "log_softmax",
        "bias": True, "dropout": 0.1, "dtype": "float64", "init": "auto"}}
    assert rebuilt[0].weight.dtype == np.float64


def test_sequential_spec_round_trip_with_every_layer():
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(6, 5, bias=False), nn.LeakyReLU(0.1), nn.Dropout(0.3),
        nn.Sequential(nn.Linear(5, 4), nn.ELU(0.5), nn.Softplus(2.0, 10.0), nn.GELU("tanh")),
        nn.Linear(4, 4), nn.SiLU(), nn.Sigmoid(), nn.Tanh(), nn.Sign(), nn.Identity(),
        nn.ReLU(), nn.Linear(4, 3), nn.Softmax(dim=-1), nn.LogSoftmax(dim=1),
        nn.MLP([3, 2], activation="tanh"))
    spec, _ = _round_trip(model, cr.randn(2, 2, 3))
    assert spec["type"] == "Sequential" and spec["config"] == {}
    assert spec["children"][1] == {"type": "Linear", "config": {
        "in_features": 6, "out_features": 5, "bias": False, "dtype": "float32"}}
    assert spec["children"][4]["children"][1] == {"type": "ELU", "config": {"alpha": 0.5}}
    assert "children" not in spec["children"][-1]  # an MLP is rebuilt from its config


def test_build_errors_and_custom_layers():
    with pytest.raises(InvalidValueError, match="unknown layer type 'Conv2d'.*Linear"):
        nn.build({"type": "Conv2d", "config": {}})
    with pytest.raises(InvalidValueError, match="cannot construct Linear"):
        nn.build({"type": "Linear", "config": {"in": 2}})
    with pytest.raises(InvalidValueError):
        nn.build({"type": "Linear", "config": {}, "weights": []})
    with pytest.raises(InvalidValueError):
        nn.build(["Linear"])
    with pytest.raises(InvalidValueError, match="register_layer"):
        Net().spec()

    @nn.register_layer(name="test_nn_module.Scale")
    class Scale(nn.Module):
        def __init__(self, factor=2.0):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

        def config(self):
            return {"factor": self.factor}

    try:
        assert nn.LAYERS["test_nn_module.Scale"] is Scale
        built = nn.build({"type": "test_nn_module.Scale", "config": {"factor": 3.0}})
        assert built(cr.tensor([1.0])).item() == 3.0
        with pytest.raises(InvalidValueError, match="already registered"):
            nn.register_layer(nn.ReLU, name="Linear")
    finally:
        del nn.LAYERS["test_nn_module.Scale"]


def test_layers_registry_contents():
    for name in ("Linear", "Sequential", "MLP", "Dropout", "Identity", "Flatten", "ReLU", "Tanh",
                 "Sigmoid", "LeakyReLU", "ELU", "Softplus", "GELU", "SiLU", "Softmax",
                 "LogSoftmax", "Sign"):
        assert nn.LAYERS[name].__name__ == name


# --------------------------------------------------------------------------- Dropout, Flatten
def test_dropout_statistics_and_scaling():
    x = cr.ones(200, 500)
    out = nn.Dropout(0.3, generator=cr.Generator(0))(x).numpy()
    kept = out != 0
    np.testing.assert_allclose(kept.mean(), 0.7, atol=0.005)  # 100,000 Bernoulli draws
    np.testing.assert_allclose(out[kept], 1 / 0.7, rtol=1e-6)  # inverted: survivors scaled
    np.testing.assert_allclose(out.mean(), 1.0, atol=0.01)  # expectation preserved


def test_dropout_gradient_uses_the_same_mask():
    x = cr.randn(50, 40, requires_grad=True)
    out = F.dropout(x, 0.5, generator=cr.Generator(1))
    out.sum().backward()
    mask = out.numpy() != 0
    np.testing.assert_allclose(x.grad, mask * 2.0)


def test_dropout_eval_identity_and_edge_probabilities():
    x = cr.randn(4, 5)
    d = nn.Dropout(0.9)
    d.eval()
    assert d(x) is x
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), np.zeros((4, 5)))
    for bad in (-0.1, 1.5, float("nan"), "0.5"):
        with pytest.raises(InvalidValueError):
            nn.Dropout(bad)


def test_dropout_reproducible():
    a = F.dropout(cr.ones(10, 10), 0.5, generator=cr.Generator(4)).numpy()
    b = F.dropout(cr.ones(10, 10), 0.5, generator=cr.Generator(4)).numpy()
    np.testing.assert_array_equal(a, b)
    cr.manual_seed(11)
    c = F.dropout(cr.ones(10, 10), 0.5).numpy()
    cr.manual_seed(11)
    np.testing.assert_array_equal(c, F.dropout(cr.ones(10, 10), 0.5).numpy())
    m1 = nn.MLP([5, 8, 2], dropout=0.5, generator=cr.Generator(2))
    m2 = nn.MLP([5, 8, 2], dropout=0.5, generator=cr.Generator(2))
    x = cr.ones(3, 5)
    np.testing.assert_array_equal(m1(x).numpy(), m2(x).numpy())


def test_flatten_and_identity():
    x = cr.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 20)
    assert nn.Identity(54, unused="ok")(x) is x
    with pytest.raises(InvalidValueError):
        nn.Flatten(1.0)


def test_namespaces():
    import chainrule.nn.functional as functional

    assert cr.nn is nn and nn.functional is functional and nn.init is not None
    assert math.isfinite(F.cross_entropy(cr.zeros(2, 3), [0, 2]).item())
