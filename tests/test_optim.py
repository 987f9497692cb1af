"""Optimizers: each update rule re-derived in plain NumPy here, PyTorch's trajectories as literals,
parameter groups, state_dict round trips, dtype keeping, and the errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.errors import GraphError, InvalidValueError, ShapeError

P0 = np.array([0.5, -1.2, 2.0, 0.0, -0.3])
STEPS = 7


def fixed_grad(t: int) -> np.ndarray:
    """The gradient fed at step t (0-based): shrinking, so AMSGrad's maximum matters."""
    return np.array([math.cos(1.7 * i + 0.9 * t) * 2.0 / (1 + t) ** 1.5 for i in range(5)])


def run(cls, kwargs, steps=STEPS, dtype=np.float64):
    """The parameter after each of ``steps`` steps of ``cls(**kwargs)`` on the fixed gradients."""
    p = cr.tensor(P0.astype(dtype), requires_grad=True)
    opt = cls([p], **kwargs)
    out = []
    for t in range(steps):
        p.grad = fixed_grad(t).astype(dtype)
        opt.step()
        out.append(p.data.copy())
    return np.array(out)


# ----------------------------------------------------------------------------- the update rules,
# written from the formulas in the PyTorch documentation, independently of chainrule.optim
def ref_sgd(lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    w, b, out = P0.copy(), None, []
    for t in range(STEPS):
        g = fixed_grad(t)
        if maximize:
            g = -g
        g = g + weight_decay * w
        if momentum != 0:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        w = w - lr * g
        out.append(w)
    return np.array(out)


def ref_adam(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
             maximize=False, decoupled=False):
    b1, b2 = betas
    w, m, v, vmax, out = P0.copy(), np.zeros(5), np.zeros(5), np.zeros(5), []
    for t in range(1, STEPS + 1):
        g = -fixed_grad(t - 1) if maximize else fixed_grad(t - 1)
        if decoupled:
            w = w - lr * weight_decay * w
        else:
            g = g + weight_decay * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        if amsgrad:
            vmax = np.maximum(vmax, v)
            v_hat = vmax / (1 - b2 ** t)
        else:
            v_hat = v / (1 - b2 ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return np.array(out)


def ref_rmsprop(lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                maximize=False):
    w, s, gbar, b, out = P0.copy(), np.zeros(5), np.zeros(5), np.zeros(5), []
    for t in range(STEPS):
        g = -fixed_grad(t) if maximize else fixed_grad(t)
        g = g + weight_decay * w
        s = alpha * s + (1 - alpha) * g ** 2
        if centered:
            gbar = alpha * gbar + (1 - alpha) * g
            denom = np.sqrt(s - gbar ** 2) + eps
        else:
            denom = np.sqrt(s) + eps
        if momentum > 0:
            b = momentum * b + g / denom
            w = w - lr * b
        else:
            w = w - lr * g / denom
        out.append(w)
    return np.array(out)


def ref_adagrad(lr, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10,
                maximize=False):
    w, acc, out = P0.copy(), np.full(5, float(initial_accumulator_value)), []
    for t in range(1, STEPS + 1):
        g = -fixed_grad(t - 1) if maximize else fixed_grad(t - 1)
        g = g + weight_decay * w
        lr_t = lr / (1 + (t - 1) * lr_decay)
        acc = acc + g * g
        w = w - lr_t * g / (np.sqrt(acc) + eps)
        out.append(w)
    return np.array(out)


CASES = [
    (optim.SGD, dict(lr=0.1), ref_sgd),
    (optim.SGD, dict(lr=0.1, momentum=0.9), ref_sgd),
    (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01), ref_sgd),
    (optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1), ref_sgd),
    (optim.SGD, dict(lr=0.1, momentum=0.5, maximize=True), ref_sgd),
    (optim.Adam, dict(lr=0.01), ref_adam),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1), ref_adam),
    (optim.Adam, dict(lr=0.01, amsgrad=True, betas=(0.8, 0.95)), ref_adam),
    (optim.Adam, dict(lr=0.01, maximize=True, weight_decay=0.05, eps=1e-3), ref_adam),
    (optim.AdamW, dict(lr=0.01), lambda **k: ref_adam(decoupled=True, weight_decay=1e-2, **k)),
    (optim.AdamW, dict(lr=0.02, weight_decay=0.3, amsgrad=True),
     lambda **k: ref_adam(decoupled=True, **k)),
    (optim.RMSprop, dict(lr=0.01), ref_rmsprop),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.9), ref_rmsprop),
    (optim.RMSprop, dict(lr=0.005, alpha=0.9, weight_decay=0.1, momentum=0.5, eps=1e-4,
                         maximize=True), ref_rmsprop),
    (optim.RMSprop, dict(lr=0.01, alpha=0.8, centered=True), ref_rmsprop),
    (optim.Adagrad, dict(lr=0.1), ref_adagrad),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.2),
     ref_adagrad),
    (optim.Adagrad, dict(lr=0.1, eps=1e-3, maximize=True), ref_adagrad),
]


@pytest.mark.parametrize("cls, kwargs, ref", CASES,
                         ids=[f"{c.__name__}-{'-'.join(k)}" for c, k, _ in CASES])
def test_trajectory_matches_the_update_rule_in_float64(cls, kwargs, ref):
    got = run(cls, kwargs)
    expected = ref(**kwargs)
    assert got.shape == (STEPS, 5)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)  # in fact to rounding


def test_the_options_change_the_trajectory():
    # guards the reference comparison against options that are silently ignored
    plain = run(optim.SGD, dict(lr=0.1, momentum=0.9))
    for extra in (dict(dampening=0.3), dict(weight_decay=0.1), dict(nesterov=True),
                  dict(maximize=True)):
        assert np.abs(run(optim.SGD, dict(lr=0.1, momentum=0.9, **extra)) - plain).max() > 1e-3
    assert np.abs(run(optim.Adam, dict(lr=0.01, amsgrad=True, betas=(0.8, 0.95)))
                  - run(optim.Adam, dict(lr=0.01, betas=(0.8, 0.95)))).max() > 1e-4
    assert np.abs(run(optim.RMSprop, dict(lr=0.01, centered=True))
                  - run(optim.RMSprop, dict(lr=0.01))).max() > 1e-4
    assert np.abs(run(optim.Adagrad, dict(lr=0.1, lr_decay=0.5))
                  - run(optim.Adagrad, dict(lr=0.1))).max() > 1e-3


def test_adam_and_adamw_weight_decay_differ_as_documented():
    coupled = run(optim.Adam, dict(lr=0.01, weight_decay=0.3))
    decoupled = run(optim.AdamW, dict(lr=0.01, weight_decay=0.3))
    assert np.abs(coupled - decoupled).max() > 1e-4
    np.testing.assert_allclose(run(optim.AdamW, dict(lr=0.01, weight_decay=0.0)),
                               run(optim.Adam, dict(lr=0.01)), rtol=0, atol=0)


def test_first_sgd_step_is_the_lecture_update():
    w = cr.tensor([[1.5, -1.0], [0.25, 3.0]], dtype=cr.float64, requires_grad=True)
    e = (w * w * w).sum()                    # de/dw = 3 w^2
    e.backward()
    optim.SGD([w], lr=0.01).step()
    w0 = np.array([[1.5, -1.0], [0.25, 3.0]])
    np.testing.assert_allclose(w.data, w0 - 0.01 * 3 * w0 ** 2, rtol=1e-15)


# ----------------------------------------------------------------------------- PyTorch parity
# Final parameters after 7 steps, produced by torch 2.13.0 (CPU, float64, foreach=False) with
# this script; chainrule matches each to within 5e-16:
#
#   import math, torch
#   torch.set_default_dtype(torch.float64)
#   P0 = [0.5, -1.2, 2.0, 0.0, -0.3]
#   STEPS = 7
#   def grad(t):
#       return torch.tensor([math.cos(1.7 * i + 0.9 * t) * 2.0 / (1 + t) ** 1.5 for i in range(5)])
#   for name, kw in CONFIGS:            # the (name, kwargs) pairs of TORCH_GOLDEN below
#       p = torch.tensor(P0, requires_grad=True)
#       opt = getattr(torch.optim, name)([p], foreach=False, **kw)
#       for t in range(STEPS):
#           p.grad = grad(t)
#           opt.step()
#       print(f"    ({name!r}, {kw!r},\n     {[float(x) for x in p.detach()]!r}),")
TORCH_GOLDEN = [
    ('SGD', {'lr': 0.1},
     [0.29944858477834685, -1.1007829388677193, 2.1749842710875, -0.14430858096816032,
      -0.4377975388128046]),
    ('SGD', {'lr': 0.1, 'momentum': 0.9},
     [-0.5937502330073581, -0.667663378155949, 2.9565729473343887, -0.7788349371562084,
      -1.0558757600992321]),
    ('SGD', {'lr': 0.05, 'momentum': 0.9, 'dampening': 0.3, 'weight_decay': 0.01},
     [-0.04211403777441104, -0.9834023562985895, 2.466945942846928, -0.33087652779671417,
      -0.6967004869088892]),
    ('SGD', {'lr': 0.05, 'momentum': 0.8, 'nesterov': True, 'weight_decay': 0.1},
     [0.04583488123711212, -0.8666341952784695, 2.1312362554314817, -0.29311330714915357,
      -0.5396306076281633]),
    ('SGD', {'lr': 0.1, 'momentum': 0.5, 'maximize': True},
     [0.8985667127232971, -1.409577085476657, 1.6554389944650427, 0.2983666625008751,
      -0.032324797954179946]),
    ('Adam', {'lr': 0.01},
     [0.4632751137725888, -1.148716201191125, 2.0339451861506044, -0.05028113526558622,
      -0.3305073698335154]),
    ('Adam', {'lr': 0.01, 'weight_decay': 0.1},
     [0.4611244504201901, -1.1416427185139042, 2.0224956222432042, -0.050082295219511186,
      -0.3285682803143201]),
    ('Adam', {'lr': 0.01, 'amsgrad': True, 'betas': (0.8, 0.95)},
     [0.46845036590038486, -1.1530105498271324, 2.028771696960081, -0.04508334604417063,
      -0.3255764529195879]),
    ('Adam', {'lr': 0.01, 'maximize': True, 'weight_decay': 0.05, 'eps': 0.001},
     [0.5354648317198537, -1.24530464474025, 1.9613450330660063, 0.0500956641129456,
      -0.26868110997377015]),
    ('AdamW', {'lr': 0.01},
     [0.46293986989097313, -1.147895170089795, 2.0325317594516727, -0.05026260035118291,
      -0.3302845859383091]),
    ('AdamW', {'lr': 0.02, 'weight_decay': 0.3, 'amsgrad': True},
     [0.40766655045715416, -1.0501531972310694, 1.98374256774126, -0.0983552589190382,
      -0.34711498144422365]),
    ('RMSprop', {'lr': 0.01},
     [0.39978276773612403, -0.9902279194888077, 2.090615024469143, -0.16776664252703755,
      -0.37948315100338825]),
    ('RMSprop', {'lr': 0.01, 'centered': True, 'momentum': 0.9},
     [-0.04908969999728898, -0.08470675456362087, 2.4976289133303506, -0.9053104264661442,
      -0.7379201875877898]),
    ('RMSprop', {'lr': 0.005, 'alpha': 0.9, 'weight_decay': 0.1, 'momentum': 0.5, 'eps': 0.0001,
                 'maximize': True},
     [0.5259535157604203, -1.2439310012521214, 1.9554140077976045, 0.05341900136191308,
      -0.27347632512293213]),
    ('Adagrad', {'lr': 0.1},
     [0.3995939204919404, -0.989868610119987, 2.090812170072448, -0.16796563266995362,
      -0.37968863713628104]),
    ('Adagrad', {'lr': 0.1, 'lr_decay': 0.1, 'weight_decay': 0.05,
                 'initial_accumulator_value': 0.2},
     [0.39520012769468094, -1.0364143094132041, 2.0669771410423765, -0.1440437182493093,
      -0.3759585337378718]),
    ('Adagrad', {'lr': 0.1, 'eps': 0.001, 'maximize': True},
     [0.6003558400734456, -1.4095799201651709, 1.9092349299543954, 0.16776640249631117,
      -0.22035741438524667]),
]


@pytest.mark.parametrize("name, kwargs, expected", TORCH_GOLDEN,
                         ids=[f"{n}-{'-'.join(k)}" for n, k, _ in TORCH_GOLDEN])
def test_matches_pytorch_trajectory(name, kwargs, expected):
    got = run(getattr(optim, name), kwargs)[-1]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------------------- dtype, versions
@pytest.mark.parametrize("cls, kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.1, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    (optim.AdamW, dict(lr=0.01, amsgrad=True)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.1)),
])
def test_float32_stays_float32_and_tracks_float64(cls, kwargs):
    p = cr.tensor(P0.astype(np.float32), requires_grad=True)
    opt = cls([p], **kwargs)
    buffer = p.data
    for t in range(STEPS):
        p.grad = fixed_grad(t).astype(np.float32)
        opt.step()
        np.testing.assert_array_equal(p.grad, fixed_grad(t).astype(np.float32))  # untouched
    assert p.data is buffer                       # updated in place
    assert p.dtype == np.float32
    for value in opt.state[p].values():
        assert isinstance(value, int) or value.dtype == np.float32
    np.testing.assert_allclose(p.data, run(cls, kwargs)[-1], rtol=1e-4, atol=1e-5)


def test_a_step_bumps_the_version_so_stale_graphs_fail():
    p = cr.tensor([1.0, 2.0], requires_grad=True)
    y = (p * p).sum()
    p.grad = np.ones(2, dtype=np.float32)
    optim.SGD([p], lr=0.1).step()
    with pytest.raises(GraphError):
        y.backward()


# ----------------------------------------------------------------------------- groups and skipping
def test_parameters_without_grad_are_skipped_and_get_no_state():
    a = cr.tensor(P0.copy(), requires_grad=True)
    b = cr.tensor(P0.copy(), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.01)
    for t in range(STEPS):
        a.grad = fixed_grad(t)
        opt.step()
    np.testing.assert_array_equal(b.data, P0)
    assert b not in opt.state and opt.state[a]["step"] == STEPS
    np.testing.assert_allclose(a.data, ref_adam(lr=0.01)[-1], rtol=1e-12)


def test_param_groups_take_their_own_options_and_the_defaults():
    a = cr.tensor(P0.copy(), requires_grad=True)
    b = cr.tensor(P0.copy(), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.05, "nesterov": True}],
                    lr=0.1, momentum=0.9)
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[0]["lr"] == 0.1
    for t in range(STEPS):
        a.grad, b.grad = fixed_grad(t), fixed_grad(t)
        opt.step()
    np.testing.assert_allclose(a.data, ref_sgd(0.1, momentum=0.9)[-1], rtol=1e-12)
    np.testing.assert_allclose(b.data, ref_sgd(0.05, momentum=0.9, nesterov=True)[-1], rtol=1e-12)


def test_add_param_group_later():
    a = cr.tensor(P0.copy(), requires_grad=True)
    b = cr.tensor(P0.copy(), requires_grad=True)
    opt = optim.RMSprop([a], lr=0.01)
    opt.add_param_group({"params": [b], "centered": True})
    assert opt.param_groups[1]["lr"] == 0.01 and opt.param_groups[1]["centered"] is True
    for t in range(STEPS):
        a.grad, b.grad = fixed_grad(t), fixed_grad(t)
        opt.step()
    np.testing.assert_allclose(b.data, ref_rmsprop(0.01, centered=True)[-1], rtol=1e-12)
    with pytest.raises(InvalidValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_zero_grad_to_none_or_to_zeros_in_place():
    p = cr.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.array([3.0, 4.0], dtype=np.float32)
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and not grad.any()
    opt.zero_grad()
    assert p.grad is None


def test_closure_is_evaluated_with_grad_enabled_and_its_loss_returned():
    w = cr.tensor([3.0, -2.0], dtype=cr.float64, requires_grad=True)
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    with cr.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 13.0
    np.testing.assert_allclose(w.data, [3.0 - 0.25 * 6.0, -2.0 + 0.25 * 4.0])


@pytest.mark.parametrize("cls, kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=0.1)),
    (optim.AdamW, dict(lr=0.1, weight_decay=0.0)), (optim.RMSprop, dict(lr=0.03)),
    (optim.Adagrad, dict(lr=0.5)),
])
def test_minimises_a_quadratic_through_backward(cls, kwargs):
    target = np.array([3.0, -1.0, 0.5], dtype=np.float32)
    w = cr.zeros(3, requires_grad=True)
    opt = cls([w], **kwargs)
    for _ in range(300):
        opt.zero_grad()
        ((w - cr.tensor(target)) ** 2).sum().backward()
        opt.step()
    np.testing.assert_allclose(w.data, target, atol=0.05)


# ----------------------------------------------------------------------------- state_dict
RESUME_CASES = [
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.01, amsgrad=True)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.9)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.1)),
]


def _two_groups(cls, kwargs, data):
    a = cr.tensor(data[0].copy(), requires_grad=True)
    b = cr.tensor(data[1].copy(), requires_grad=True)
    return (a, b), cls([{"params": [a]}, {"params": [b], "lr": kwargs["lr"] / 2}], **kwargs)


def _steps(params, opt, ts):
    for t in ts:
        params[0].grad = fixed_grad(t).astype(params[0].dtype)
        params[1].grad = fixed_grad(t + 3)[:3].astype(params[1].dtype)
        opt.step()


@pytest.mark.parametrize("cls, kwargs", RESUME_CASES, ids=[c.__name__ for c, _ in RESUME_CASES])
def test_state_dict_round_trip_resumes_bit_identically(cls, kwargs):
    start = [P0.astype(np.float32), np.array([1.0, -2.0, 0.5], dtype=np.float32)]
    params, opt = _two_groups(cls, kwargs, start)
    _steps(params, opt, range(3))
    saved = opt.state_dict()
    snapshot = [p.data.copy() for p in params]
    _steps(params, opt, range(3, 8))

    params2, opt2 = _two_groups(cls, kwargs, snapshot)
    opt2.load_state_dict(saved)
    _steps(params2, opt2, range(3, 8))
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.data, q.data)
        assert q.dtype == np.float32
    assert opt2.param_groups[1]["lr"] == kwargs["lr"] / 2


def test_state_dict_layout_is_pytorchs_and_a_snapshot():
    a = cr.tensor(P0.copy(), requires_grad=True)
    b = cr.tensor([1.0, 2.0], dtype=cr.float64, requires_grad=True)
    opt = optim.Adam([("first", a)], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": [("second", b)], "lr": 0.5})
    a.grad = fixed_grad(0)
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0]                       # b has no grad yet, so no state
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"][0]["step"] == 1
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert [g["param_names"] for g in sd["param_groups"]] == [["first"], ["second"]]
    assert sd["param_groups"][0]["betas"] == (0.8, 0.9) and sd["param_groups"][1]["lr"] == 0.5
    exp_avg = sd["state"][0]["exp_avg"].copy()
    a.grad = fixed_grad(1)
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], exp_avg)
    assert sd["state"][0]["step"] == 1


def test_load_state_dict_after_a_json_and_array_round_trip():
    # what a checkpoint writer does: groups through JSON (tuples become lists, int keys become
    # strings), arrays through a file format that may widen them
    start = [P0.astype(np.float32), np.array([1.0, -2.0, 0.5], dtype=np.float32)]
    params, opt = _two_groups(optim.Adam, dict(lr=0.01, amsgrad=True), start)
    _steps(params, opt, range(3))
    sd = opt.state_dict()
    groups = json.loads(json.dumps(sd["param_groups"]))
    state = {str(i): {k: (v if isinstance(v, int) else v.astype(np.float64)) for k, v in s.items()}
             for i, s in sd["state"].items()}
    snapshot = [p.data.copy() for p in params]
    _steps(params, opt, range(3, 6))

    params2, opt2 = _two_groups(optim.Adam, dict(lr=0.01, amsgrad=True), snapshot)
    opt2.load_state_dict({"state": state, "param_groups": groups})
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt2.state[params2[0]]["exp_avg"].dtype == np.float32
    _steps(params2, opt2, range(3, 6))
    for p, q in zip(params, params2):
        np.testing.assert_array_equal(p.data, q.data)


def test_load_state_dict_rejects_mismatches():
    a = cr.tensor([1.0, 2.0], requires_grad=True)
    b = cr.tensor([1.0, 2.0, 3.0], requires_grad=True)
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.ones(2, np.float32), np.ones(3, np.float32)
    opt.step()
    sd = opt.state_dict()

    with pytest.raises(InvalidValueError, match="has 1 parameter groups, this optimizer has 2"):
        two = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1)
        two.load_state_dict(sd)
    with pytest.raises(InvalidValueError, match="has 2 parameters"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ShapeError, match=r"shape \(2,\)"):
        optim.SGD([b, a], lr=0.1, momentum=0.9).load_state_dict(sd)
    bad = {"state": {7: sd["state"][0]}, "param_groups": sd["param_groups"]}
    with pytest.raises(InvalidValueError, match="no group lists"):
        optim.SGD([a, b], lr=0.1).load_state_dict(bad)
    bad = {"state": {}, "param_groups": [dict(sd["param_groups"][0], lr=-1.0)]}
    with pytest.raises(InvalidValueError, match="lr"):
        optim.SGD([a, b], lr=0.1).load_state_dict(bad)
    with pytest.raises(InvalidValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"state": {}})


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-0.1), "lr"),
    (lambda p: optim.SGD(p, lr=float("nan")), "finite"),
    (lambda p: optim.SGD(p, lr="0.1"), "real number"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov="yes"), "nesterov"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.999)), r"betas\[0\]"),
    (lambda p: optim.Adam(p, betas=(0.9, -0.1)), r"betas\[1\]"),
    (lambda p: optim.Adam(p, betas=0.9), "pair"),
    (lambda p: optim.Adam(p, eps=-1e-8), "eps"),
    (lambda p: optim.AdamW(p, weight_decay=-0.01), "weight_decay"),
    (lambda p: optim.RMSprop(p, alpha=1.5), "alpha"),
    (lambda p: optim.RMSprop(p, momentum=-0.1), "momentum"),
    (lambda p: optim.Adagrad(p, lr_decay=-0.1), "lr_decay"),
    (lambda p: optim.Adagrad(p, initial_accumulator_value=-1.0), "initial_accumulator_value"),
    (lambda p: optim.SGD([{"params": p, "lr": -1.0}], lr=0.1), "lr"),
])
def test_invalid_hyper_parameters_raise(make, message):
    p = [cr.tensor([1.0], requires_grad=True)]
    with pytest.raises(InvalidValueError, match=message):
        make(p)


def test_invalid_parameters_raise():
    frozen = cr.tensor([1.0, 2.0])
    with pytest.raises(InvalidValueError, match="does not require grad"):
        optim.SGD([frozen], lr=0.1)
    leaf = cr.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(InvalidValueError, match="not a leaf"):
        optim.Adam([leaf * 2.0])
    with pytest.raises(InvalidValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(InvalidValueError, match="iterable"):
        optim.Adam(leaf)
    with pytest.raises(InvalidValueError, match="not a set"):
        optim.Adam([{"params": {leaf}}])
    with pytest.raises(InvalidValueError, match="more than once"):
        optim.Adam([leaf, leaf])
    with pytest.raises(InvalidValueError, match="optimizes tensors"):
        optim.Adam([np.ones(2)])
    with pytest.raises(InvalidValueError, match="'params'"):
        optim.Adam([{"lr": 0.1}])
    with pytest.raises(ValueError):                 # an InvalidValueError is also a ValueError
        optim.SGD([leaf], lr=-1.0)


def test_generators_and_named_parameters_are_accepted():
    ws = [cr.tensor([1.0], requires_grad=True) for _ in range(3)]
    assert len(optim.SGD(iter(ws), lr=0.1).param_groups[0]["params"]) == 3
    opt = optim.SGD([(f"w{i}", w) for i, w in enumerate(ws)], lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["w0", "w1", "w2"]
    assert opt.param_groups[0]["params"][2] is ws[2]
