"""DLPack and the array protocols (``cr.from_dlpack``, ``Tensor.__dlpack__``, ``__array__``),
and PyTorch models (``chainrule.interop.to_torch`` / ``from_torch``)."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.interop import from_torch, to_torch


# --------------------------------------------------------------------------- NumPy protocols
def test_np_asarray_views_the_data():
    t = cr.tensor([[1.0, 2.0], [3.0, 4.0]])
    a = np.asarray(t)
    assert np.shares_memory(a, t.data)
    a[0, 0] = 9
    assert t.numpy()[0, 0] == 9
    assert np.asarray(t, dtype=np.float32) is not None
    assert np.shares_memory(np.array(t, copy=False), t.data)
    assert not np.shares_memory(np.array(t, copy=True), t.data)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64       # copy=None: a copy is fine
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(t, dtype=np.float64, copy=False)


def test_numpy_from_dlpack_and_back():
    t = cr.arange(6).reshape(2, 3)
    assert t.__dlpack_device__() == (1, 0)
    a = np.from_dlpack(t)
    assert np.shares_memory(a, t.data) and a.dtype == np.int64
    b = np.arange(4.0)
    c = cr.from_dlpack(b)
    assert np.shares_memory(c.data, b) and c.is_leaf and not c.requires_grad
    c[1] = 7.0
    assert b[1] == 7.0
    assert cr.from_dlpack(np.ones(2), requires_grad=True).requires_grad
    assert cr.from_dlpack(np.array([True, False])).dtype == np.bool_


def test_from_dlpack_errors():
    with pytest.raises(cr.InvalidValueError, match="a list does not support DLPack"):
        cr.from_dlpack([1, 2])
    with pytest.raises(cr.DTypeError, match="complex"):
        cr.from_dlpack(np.ones(2, dtype=np.complex64))
    with pytest.raises(cr.DTypeError, match="float"):
        cr.from_dlpack(np.ones(2, dtype=np.int64), requires_grad=True)


# --------------------------------------------------------------------------- PyTorch, DLPack
def test_torch_shares_memory_both_ways():
    torch = pytest.importorskip("torch")
    t = cr.tensor([1.0, 2.0, 3.0])
    view = torch.from_dlpack(t)
    view[0] = 5.0                      # a write through the torch view ...
    assert t.numpy().tolist() == [5.0, 2.0, 3.0]   # ... is seen by the chainrule tensor
    t[1] = -1.0
    assert view.tolist() == [5.0, -1.0, 3.0]
    source = torch.zeros(2, 3, dtype=torch.float64)
    c = cr.from_dlpack(source)
    source[1, 2] = 4.0
    assert c.dtype == np.float64 and c.numpy()[1, 2] == 4.0
    c[0, 0] = 2.0
    assert source[0, 0].item() == 2.0
    strided = cr.from_dlpack(torch.arange(6).reshape(2, 3).T)    # strides carry over
    assert strided.tolist() == [[0, 3], [1, 4], [2, 5]]
    with pytest.raises(cr.InvalidValueError, match="detach"):
        cr.from_dlpack(torch.zeros(2, requires_grad=True))
    with pytest.raises(cr.DTypeError):
        cr.from_dlpack(torch.zeros(2, dtype=torch.bfloat16))


# --------------------------------------------------------------------------- PyTorch models
ACTS = ["identity", "relu", "tanh", "sigmoid", "leaky_relu", "elu", "softplus", "gelu", "silu",
        "softmax", "log_softmax"]


@pytest.mark.parametrize("act", ACTS)
def test_to_torch_and_back_compute_the_same(act):
    torch = pytest.importorskip("torch")
    cr.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6, dtype="float64"), nn.get_activation(act),
                        nn.Dropout(0.2), nn.Linear(6, 3, bias=False, dtype="float64"),
                        nn.Softplus(2.0, 1.0) if act == "softplus" else nn.LeakyReLU(-0.1))
    net.eval()
    tnet = to_torch(net)
    assert not tnet.training and set(tnet.state_dict()) == set(net.state_dict())
    x = np.random.default_rng(0).standard_normal((20, 4)) * 3
    want = net(cr.tensor(x)).numpy()
    got = tnet(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    back = from_torch(tnet)
    np.testing.assert_allclose(back(cr.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-12)


def test_from_torch_gives_an_mlp_when_it_is_one():
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)
    seq = tnn.Sequential(tnn.Linear(3, 5), tnn.Tanh(), tnn.Dropout(0.1), tnn.Linear(5, 5),
                         tnn.Tanh(), tnn.Dropout(0.1), tnn.Linear(5, 2), tnn.Softmax(dim=-1))
    state = cr.default_generator.get_state()
    m = from_torch(seq)
    assert type(m) is nn.MLP and m.sizes == [3, 5, 5, 2] and m.dropout == 0.1
    assert m.output_activation is not None
    assert cr.default_generator.get_state() == state   # converting drew nothing from it
    x = torch.randn(7, 3)
    seq.eval()
    m.eval()
    np.testing.assert_allclose(m(cr.tensor(x.numpy())).numpy(), seq(x).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    mixed = tnn.Sequential(tnn.Linear(3, 5), tnn.ReLU(), tnn.Linear(5, 5), tnn.Tanh(),
                           tnn.Linear(5, 2))
    assert type(from_torch(mixed)) is nn.Sequential
    assert type(from_torch(tnn.Linear(3, 2))) is nn.MLP


def _cr_steps(model, X, y, steps, lr=0.1):
    opt = cr.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(cr.tensor(X)), cr.tensor(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _torch_steps(torch, model, X, y, steps, lr=0.1):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(X)), torch.from_numpy(y))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)


def test_train_in_chainrule_continue_in_torch_and_back():
    torch = pytest.importorskip("torch")
    X, y = _data()
    cr.manual_seed(0)
    net = nn.MLP([4, 16, 3], activation="tanh", dtype="float64")
    ref = nn.build(net.spec())
    ref.load_state_dict(net.state_dict())
    first = _cr_steps(net, X, y, 10)
    tnet = to_torch(net)
    middle = _torch_steps(torch, tnet, X, y, 10)
    back = from_torch(tnet)
    last = _cr_steps(back, X, y, 10)
    whole = _cr_steps(ref, X, y, 30)
    np.testing.assert_allclose(first + middle + last, whole, rtol=1e-12)
    assert whole[-1] < 0.7 * whole[0]                 # it learned
    for k, v in ref.state_dict().items():
        np.testing.assert_allclose(back.state_dict()[k].numpy(), v.numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_train_in_torch_continue_in_chainrule():
    torch = pytest.importorskip("torch")
    X, y = _data()
    torch.manual_seed(0)
    tnet = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Linear(16, 3)
                               ).double()
    ref = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.GELU(), torch.nn.Linear(16, 3)
                              ).double()
    ref.load_state_dict(tnet.state_dict())
    first = _torch_steps(torch, tnet, X, y, 10)
    net = from_torch(tnet)
    assert type(net) is nn.MLP
    rest = _cr_steps(net, X, y, 10)
    whole = _torch_steps(torch, ref, X, y, 20)
    np.testing.assert_allclose(first + rest, whole, rtol=1e-10)


def test_shared_parameters_with_copy_false():
    torch = pytest.importorskip("torch")
    net = nn.MLP([2, 3, 1], activation="relu")
    tnet = to_torch(net, copy=False)
    with torch.no_grad():
        tnet[0].weight.add_(1.0)
    np.testing.assert_array_equal(net[0].weight.numpy(), tnet[0].weight.detach().numpy())
    back = from_torch(tnet, copy=False)
    assert type(back) is nn.Sequential
    with torch.no_grad():
        tnet[2].bias.fill_(5.0)
    assert back[2].bias.numpy().tolist() == [5.0] == net[2].bias.numpy().tolist()
    copied = to_torch(net)
    with torch.no_grad():
        copied[0].weight.zero_()
    assert net[0].weight.numpy().any()


def test_unsupported_modules_are_named():
    torch = pytest.importorskip("torch")
    with pytest.raises(cr.InvalidValueError, match=r"to_torch: 1 is a Sign, which has no PyTorch"):
        to_torch(nn.Sequential(nn.Linear(2, 2), nn.Sign()))
    with pytest.raises(cr.InvalidValueError, match=r"from_torch: 1 is a torch.nn.Conv1d"):
        from_torch(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Conv1d(1, 1, 1)))
    with pytest.raises(cr.InvalidValueError, match="without dim"):
        from_torch(torch.nn.Sequential(torch.nn.Softmax()))
    with pytest.raises(cr.InvalidValueError, match="float16 Linear"):
        from_torch(torch.nn.Linear(2, 2).half())


# --------------------------------------------------------------------------- on a GPU
def _cuda():
    """(cupy, torch) when both see a CUDA device, else skip (no GPU: missing hardware)."""
    cupy = pytest.importorskip("cupy")
    torch = pytest.importorskip("torch")
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no driver
        n = 0
    if n < 1 or not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return cupy, torch


def test_cuda_dlpack_shares_memory_with_torch():
    cupy, torch = _cuda()
    t = cr.tensor([1.0, 2.0, 3.0], device="cuda")
    assert t.__dlpack_device__()[0] == 2
    view = torch.from_dlpack(t)
    assert view.is_cuda
    view[0] = 5.0
    torch.cuda.synchronize()
    assert t.tolist() == [5.0, 2.0, 3.0]
    source = torch.zeros(4, device="cuda", dtype=torch.float64)
    c = cr.from_dlpack(source)
    assert c.device == "cuda:0" and cupy.get_array_module(c.data) is cupy
    source[2] = 7.0
    torch.cuda.synchronize()
    assert c.tolist() == [0.0, 0.0, 7.0, 0.0]
    assert np.asarray(c).tolist() == [0.0, 0.0, 7.0, 0.0]       # a copy to the host
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(c, copy=False)


def test_cuda_models_to_torch_and_back():
    _, torch = _cuda()
    cr.manual_seed(0)
    net = nn.MLP([4, 8, 3], activation="gelu", dtype="float64").to("cuda")
    tnet = to_torch(net)
    assert next(tnet.parameters()).is_cuda
    x = np.random.default_rng(0).standard_normal((5, 4))
    want = net(cr.tensor(x, device="cuda")).numpy()
    got = tnet(torch.from_numpy(x).cuda()).detach().cpu().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    back = from_torch(tnet)
    assert back[0].weight.device == "cuda:0"
    np.testing.assert_allclose(back(cr.tensor(x, device="cuda")).numpy(), want, rtol=1e-12)


def test_cuda_detect_anomaly():
    _cuda()
    x = cr.tensor([1.0, -1.0], device="cuda", requires_grad=True)
    with pytest.raises(cr.AnomalyError, match=r"log produced NaN/inf .*test_interop\.py:\d+"):
        with cr.detect_anomaly():
            cr.log(x)
    with pytest.raises(cr.AnomalyError, match="backward of sqrt"):
        with cr.detect_anomaly():
            cr.sqrt(x * 0.0).sum().backward()
