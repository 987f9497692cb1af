"""The optimizers' flat (multi-tensor) path: a group whose parameters tile one 1-D array is
updated all at once, bit-identically to the per-parameter path, with per-parameter state views.

Every comparison runs the same steps on parameters that are views of one buffer (the flat path)
and on the same values in separate arrays (the per-parameter path), checks with ``opt._flat.steps``
that the flat path did (or did not) run, and compares with ``np.array_equal``: bit for bit.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import chainrule as cr
from chainrule import optim
from chainrule.errors import GraphError
from chainrule.optim import _flat
from chainrule.optim._flat import find_layout

SHAPES = [(5, 3), (5,), (2, 5), (2,)]  # W1 (out, in), b1, W2, b2 of a 3-5-2 MLP
N = sum(math.prod(s) for s in SHAPES)
STEPS = 6


def values(seed: int, dtype, shapes=SHAPES) -> list[np.ndarray]:
    """Arrays of ``shapes`` with varied magnitudes (and a few exact zeros)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        a = rng.standard_normal(s) * 10.0 ** rng.integers(-3, 2, size=s)
        a[rng.random(s) < 0.1] = 0.0
        out.append(a.astype(dtype))
    return out


def flat_params(arrays: list[np.ndarray], gap: int = 0) -> list[cr.nn.Parameter]:
    """Parameters holding ``arrays``' values as consecutive views of one 1-D buffer (``gap``
    extra elements at its end)."""
    flat = np.empty(sum(a.size for a in arrays) + gap, dtype=arrays[0].dtype)
    params, offset = [], 0
    for a in arrays:
        p = cr.nn.Parameter(a.copy())
        p.data = flat[offset:offset + a.size].reshape(a.shape)
        p.data[...] = a
        offset += a.size
        params.append(p)
    assert all(p.data.base is flat for p in params)
    return params


def separate_params(arrays: list[np.ndarray]) -> list[cr.nn.Parameter]:
    params = [cr.nn.Parameter(a.copy()) for a in arrays]
    assert all(p.data.base is None for p in params)
    return params


def set_grads(params, t: int, skip: int | None = None) -> None:
    """The gradients of step ``t``: fresh arrays each time (as backward makes them); parameter
    ``skip`` gets None."""
    for i, (p, g) in enumerate(zip(params, values(1000 + t, params[0].dtype,
                                                   [p.shape for p in params]))):
        p.grad = None if i == skip else g


def assert_same(opt_a, params_a, opt_b, params_b) -> None:
    """Parameters and state bit-identical, state of each parameter's shape and dtype."""
    for p, q in zip(params_a, params_b):
        assert p.dtype == q.dtype
        assert np.array_equal(p.data, q.data), np.abs(p.data - q.data).max()
        sa, sb = opt_a.state.get(p), opt_b.state.get(q)
        assert (sa is None) == (sb is None)
        if sa is None:
            continue
        assert list(sa) == list(sb)
        for k in sa:
            if hasattr(sa[k], "shape"):
                assert sa[k].shape == p.shape and sa[k].dtype == p.dtype
                assert np.array_equal(sa[k], sb[k]), k
            else:
                assert sa[k] == sb[k], k


CASES = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.1, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.01, maximize=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, weight_decay=0.1, maximize=True)),
    (optim.Adam, dict(lr=0.01, amsgrad=True, betas=(0.5, 0.9), eps=1e-3)),
    (optim.AdamW, dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True)),
    (optim.RMSprop, dict(lr=0.01)),
    (optim.RMSprop, dict(lr=0.01, momentum=0.9, weight_decay=0.01)),
    (optim.RMSprop, dict(lr=0.01, centered=True, alpha=0.9, maximize=True)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5, eps=1e-4)),
    (optim.Adagrad, dict(lr=0.1)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.1,
                         weight_decay=0.01, maximize=True)),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, kw in CASES]


def pair(cls, kwargs, dtype, seed=0):
    """(flat params, their optimizer), (separate params, theirs), same values and options."""
    start = values(seed, dtype)
    pf, ps = flat_params(start), separate_params(start)
    return (pf, cls(pf, **kwargs)), (ps, cls(ps, **kwargs))


def steps(params, opt, ts, skip=None, sched=None) -> None:
    for t in ts:
        set_grads(params, t, skip(t) if skip else None)
        opt.step()
        if sched is not None:
            sched.step()


# ----------------------------------------------------------------------------- bit identity
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=IDS)
def test_flat_path_is_bit_identical_to_the_per_parameter_path(cls, kwargs, dtype):
    (pf, of), (ps, os_) = pair(cls, kwargs, dtype)
    sf = optim.lr_scheduler.ExponentialLR(of, gamma=0.7)  # lr changes at every step
    ss = optim.lr_scheduler.ExponentialLR(os_, gamma=0.7)
    steps(pf, of, range(STEPS), sched=sf)
    steps(ps, os_, range(STEPS), sched=ss)
    assert of._flat.steps == STEPS and os_._flat.steps == 0
    assert_same(of, pf, os_, ps)
    assert all(p.dtype == dtype for p in pf)
    # the state is views of flat arrays, one per state name, laid out like the parameters
    first = of.state.get(pf[0], {})
    assert bool(first) == (cls is not optim.SGD or kwargs.get("momentum", 0.0) != 0.0)
    for name, value in first.items():
        if hasattr(value, "shape"):
            base = value.base
            assert base is not None and base.shape == (N,)
            assert all(of.state[p][name].base is base for p in pf)


@pytest.mark.parametrize("cls, kwargs", CASES[::3], ids=IDS[::3])
def test_flat_path_matches_the_same_views_stepped_one_by_one(cls, kwargs):
    """Switching the flat path off on the same layout gives the same bits too: the views
    themselves are not what makes the results equal."""
    start = values(3, np.float32)
    pa, pb = flat_params(start), flat_params(start)
    oa, ob = cls(pa, **kwargs), cls(pb, **kwargs)
    ob._flat.enabled = False
    steps(pa, oa, range(STEPS))
    steps(pb, ob, range(STEPS))
    assert oa._flat.steps == STEPS and ob._flat.steps == 0
    assert_same(oa, pa, ob, pb)


def test_the_gradients_are_only_read_and_each_version_is_bumped():
    (pf, of), _ = pair(optim.Adam, dict(lr=0.1, weight_decay=0.1, maximize=True), np.float32)
    set_grads(pf, 0)
    grads = [p.grad for p in pf]
    saved = [g.copy() for g in grads]
    versions = [p._version[0] for p in pf]
    y = cr.linear(cr.ones(1, 3), pf[0], pf[1]) * 2.0  # a graph that used pf[0] and pf[1]
    of.step()
    assert of._flat.steps == 1
    assert all(p.grad is g and np.array_equal(g, s) for p, g, s in zip(pf, grads, saved))
    assert [p._version[0] for p in pf] == [v + 1 for v in versions]
    with pytest.raises(GraphError):
        y.sum().backward()


# ----------------------------------------------------------------------------- state_dict
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cls, kwargs", CASES, ids=IDS)
def test_state_dict_round_trip_mid_run_resumes_bit_identically(cls, kwargs, dtype):
    (pf, of), _ = pair(cls, kwargs, dtype)
    steps(pf, of, range(3))
    saved = of.state_dict()
    snapshot = [p.data.copy() for p in pf]
    steps(pf, of, range(3, 3 + STEPS))
    assert of._flat.steps == 3 + STEPS

    # per-parameter layout, and a snapshot the later steps did not change
    for i, p in enumerate(pf):
        for k, v in saved["state"].get(i, {}).items():
            if hasattr(v, "shape"):
                assert v.shape == p.shape and v.base is None

    # into a new optimizer over new flat parameters
    p2 = flat_params(snapshot)
    o2 = cls(p2, **kwargs)
    o2.load_state_dict(saved)
    steps(p2, o2, range(3, 3 + STEPS))
    assert o2._flat.steps == STEPS  # the loaded state was gathered into flat arrays
    assert_same(of, pf, o2, p2)

    # and back into the first one, rewound
    of.load_state_dict(saved)
    for p, s in zip(pf, snapshot):
        p.data[...] = s
    steps(pf, of, range(3, 3 + STEPS))
    assert of._flat.steps == 3 + 2 * STEPS
    assert_same(of, pf, o2, p2)


def test_state_loaded_into_separate_parameters_continues_the_flat_run():
    (pf, of), (ps, os_) = pair(optim.RMSprop, dict(lr=0.01, momentum=0.9, centered=True),
                               np.float32)
    steps(pf, of, range(3))
    os_.load_state_dict(of.state_dict())
    for p, q in zip(pf, ps):
        q.data[...] = p.data
    steps(pf, of, range(3, 8))
    steps(ps, os_, range(3, 8))
    assert of._flat.steps == 8 and os_._flat.steps == 0
    assert_same(of, pf, os_, ps)


def test_rebound_state_entries_are_gathered_again():
    (pf, of), (ps, os_) = pair(optim.Adam, dict(lr=0.01, amsgrad=True), np.float64)
    steps(pf, of, range(2))
    steps(ps, os_, range(2))
    # the user replaces one state array (with other values, on both sides)
    for o, p in ((of, pf[2]), (os_, ps[2])):
        o.state[p]["exp_avg"] = np.full(p.shape, 0.25)
    steps(pf, of, range(2, 5))
    steps(ps, os_, range(2, 5))
    assert of._flat.steps == 5
    assert_same(of, pf, os_, ps)
    assert of.state[pf[2]]["exp_avg"].base is of.state[pf[0]]["exp_avg"].base


# ----------------------------------------------------------------------------- fallbacks
@pytest.mark.parametrize("cls, kwargs", CASES, ids=IDS)
def test_a_parameter_without_grad_takes_the_per_parameter_path(cls, kwargs):
    (pf, of), (ps, os_) = pair(cls, kwargs, np.float32)

    def skip(t):  # parameter 1 has no gradient at the first step and at step 3
        return 1 if t in (0, 3) else None

    for t in range(STEPS):
        before = of._flat.steps
        steps(pf, of, [t], skip)
        steps(ps, os_, [t], skip)
        assert_same(of, pf, os_, ps)
        if skip(t) is not None:
            assert of._flat.steps == before
    assert os_._flat.steps == 0
    if "step" in of.state.get(pf[0], {}):
        # the skipped parameter counts fewer steps: its group stays on the per-parameter path
        assert of.state[pf[1]]["step"] == STEPS - 2 and of.state[pf[0]]["step"] == STEPS
        assert of._flat.steps == 0
    elif of.state:
        # SGD's momentum counts no steps: once every parameter has its buffer, it goes flat again
        assert of._flat.steps == 3  # steps 2, 4, 5 (step 1: parameter 1 has no buffer yet)
    else:
        assert of._flat.steps == STEPS - 2


def test_rebinding_data_falls_back_and_a_new_flat_buffer_is_found():
    (pf, of), (ps, os_) = pair(optim.Adam, dict(lr=0.01, weight_decay=0.01), np.float32)
    steps(pf, of, range(2))
    steps(ps, os_, range(2))
    assert of._flat.steps == 2

    pf[2].data = pf[2].data.copy()  # no longer a view of the buffer
    steps(pf, of, range(2, 4))
    steps(ps, os_, range(2, 4))
    assert of._flat.steps == 2
    assert_same(of, pf, os_, ps)

    # all moved into a new buffer (as .to() or a re-flattening would): flat again, the state
    # (still views of the old arrays) gathered into new flat arrays
    new = flat_params([p.data for p in pf])
    for p, q in zip(pf, new):
        p.data = q.data
    steps(pf, of, range(4, 7))
    steps(ps, os_, range(4, 7))
    assert of._flat.steps == 5
    assert_same(of, pf, os_, ps)


@pytest.mark.parametrize("cls, kwargs", [(optim.SGD, dict(lr=0.1, momentum=0.9)),
                                         (optim.Adam, dict(lr=0.01))])
def test_gradients_of_another_dtype_take_the_per_parameter_path(cls, kwargs):
    (pf, of), (ps, os_) = pair(cls, kwargs, np.float32)
    for t in range(3):
        for params in (pf, ps):
            set_grads(params, t)
            params[3].grad = params[3].grad.astype(np.float64)
        of.step()
        os_.step()
    assert of._flat.steps == 0
    assert_same(of, pf, os_, ps)


def test_a_gradient_of_another_shape_is_not_gathered():
    (pf, of), (ps, os_) = pair(optim.SGD, dict(lr=0.1), np.float64)
    errors = []
    for params, opt in ((pf, of), (ps, os_)):
        set_grads(params, 0)
        params[1].grad = params[1].grad.reshape(1, 5)  # same size, wrong shape
        with pytest.raises(ValueError) as info:
            opt.step()
        errors.append(type(info.value))
    assert of._flat.steps == 0 and errors[0] is errors[1]


def test_mixed_dtypes_groups_and_layouts():
    a32 = values(5, np.float32)
    # one group flat, one float64 group of separate arrays, one group added later (flat)
    g1, g2, g3 = flat_params(a32), separate_params(values(6, np.float64)), flat_params(a32)
    h1, h2, h3 = separate_params(a32), separate_params(values(6, np.float64)), \
        separate_params(a32)
    of = optim.Adam([{"params": g1}, {"params": g2, "lr": 0.02}], lr=0.01)
    os_ = optim.Adam([{"params": h1}, {"params": h2, "lr": 0.02}], lr=0.01)
    for t in range(4):
        if t == 2:
            of.add_param_group({"params": g3, "amsgrad": True})
            os_.add_param_group({"params": h3, "amsgrad": True})
        for params in ((g1, g2, g3) if t >= 2 else (g1, g2)):
            set_grads(params, t)
        for params in ((h1, h2, h3) if t >= 2 else (h1, h2)):
            set_grads(params, t)
        of.step()
        os_.step()
    assert of._flat.steps == 4 + 2  # group 1 at every step, group 3 at its two
    for a, b in ((g1, h1), (g2, h2), (g3, h3)):
        assert_same(of, a, os_, b)


def test_a_buffer_with_mixed_dtypes_views_is_not_flat():
    flat = np.zeros(8, dtype=np.float64)
    a, b, c = (cr.nn.Parameter(np.zeros(4)), cr.nn.Parameter(np.zeros(2, np.float32)),
               cr.nn.Parameter(np.zeros(2)))
    a.data, b.data, c.data = flat[:4], flat[4:].view(np.float32), flat[4:6]
    assert find_layout([a, b]).base is None
    assert find_layout([a, c]).base is None  # does not cover the buffer


def test_layout_detection():
    start = values(0, np.float32)
    params = flat_params(start)
    layout = find_layout(params)
    assert layout.base is params[0].data.base
    assert layout.bounds == [(0, 15), (15, 20), (20, 30), (30, 32)]
    for p, v in zip(params, layout.views_of(layout.base)):
        assert np.array_equal(p.data, v) and v.base is layout.base

    assert find_layout(params[:1]).base is None            # one parameter
    assert find_layout(params[::-1]).base is None          # not in group order
    assert find_layout(params[:3]).base is None            # does not reach the end
    assert find_layout(params[1:]).base is None            # does not start at the start
    assert find_layout(flat_params(start, gap=1)).base is None  # a gap at the end
    assert find_layout(separate_params(start)).base is None

    t = flat_params(start)
    t[0].data = t[0].data.base[:15].reshape(3, 5).T        # a view, but not C-contiguous
    assert find_layout(t).base is None
    r = flat_params(start)
    r[1].data.flags.writeable = False                       # a read-only view
    assert find_layout(r).base is None
    o = flat_params(start)
    o[0].data.base.flags.writeable = False                  # a read-only buffer
    assert find_layout(o).base is None


def test_size_limit_and_small_groups(monkeypatch):
    """A group of k parameters goes flat while its bytes are at most
    min(FLAT_MAX_BYTES, FLAT_BYTES_PER_CALL * calls * (k - 2))."""
    (pf, of), (ps, os_) = pair(optim.Adam, dict(lr=0.01), np.float32)
    nbytes = N * 4
    calls = 13  # Adam without options: 13 ufunc calls per parameter
    monkeypatch.setattr(_flat, "FLAT_BYTES_PER_CALL", nbytes // (calls * 2) - 1)
    steps(pf, of, range(2))
    assert of._flat.steps == 0
    monkeypatch.setattr(_flat, "FLAT_BYTES_PER_CALL", -(-nbytes // (calls * 2)))
    steps(pf, of, range(2, 4))
    assert of._flat.steps == 2
    monkeypatch.setattr(_flat, "FLAT_MAX_BYTES", nbytes - 1)
    steps(pf, of, range(4, 5))
    assert of._flat.steps == 2
    monkeypatch.setattr(_flat, "FLAT_MAX_BYTES", nbytes)
    steps(pf, of, range(5, 7))
    assert of._flat.steps == 4
    steps(ps, os_, range(7))
    assert_same(of, pf, os_, ps)
    # two parameters (one layer) never take it
    monkeypatch.setattr(_flat, "FLAT_BYTES_PER_CALL", 1 << 30)
    monkeypatch.setattr(_flat, "FLAT_MAX_BYTES", 1 << 30)
    two = flat_params(values(0, np.float32, [(5, 3), (5,)]))
    o2 = optim.SGD(two, lr=0.1)
    steps(two, o2, range(2))
    assert o2._flat.steps == 0 and find_layout(two).base is not None


def test_the_default_limits_take_a_small_mlp_and_leave_a_large_one():
    for sizes, flat in (([64, 64, 10], True), ([784, 256, 10], False)):
        shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((b, a), (b,))]
        params = flat_params([np.zeros(s, np.float32) for s in shapes])
        for cls in (optim.SGD, optim.Adam):
            opt = cls(params, lr=0.01)
            steps(params, opt, range(1))
            assert opt._flat.steps == flat, (sizes, cls)


def test_a_deep_copy_steps_on_its_own_arrays():
    (pf, of), (ps, os_) = pair(optim.SGD, dict(lr=0.1, momentum=0.9), np.float64)
    steps(pf, of, range(2))
    steps(ps, os_, range(2))
    pc, oc = copy.deepcopy((pf, of))
    steps(pc, oc, range(2, 6))       # the copy moves on...
    assert_same(of, pf, os_, ps)     # ...the original does not
    steps(pf, of, range(2, 6))
    steps(ps, os_, range(2, 6))
    assert_same(oc, pc, os_, ps)
    assert_same(of, pf, os_, ps)
    assert of._flat.steps == 6


def test_zero_grad_keeps_the_flat_path():
    (pf, of), (ps, os_) = pair(optim.SGD, dict(lr=0.1, momentum=0.5), np.float32)
    for t in range(4):
        for params, opt in ((pf, of), (ps, os_)):
            opt.zero_grad(set_to_none=(t % 2 == 0))
            if t % 2:
                for p, g in zip(params, values(t, np.float32)):
                    p.grad += g  # accumulate into the zeroed arrays
            else:
                set_grads(params, t)
            opt.step()
    assert of._flat.steps == 4
    assert_same(of, pf, os_, ps)


def test_training_a_flat_model_through_backward():
    """A small MLP on flat parameters trains exactly as on separate ones."""
    rng = np.random.default_rng(0)
    x = cr.tensor(rng.standard_normal((16, 3)).astype(np.float32))
    y = cr.tensor(rng.integers(0, 2, 16))
    start = values(9, np.float32)
    results = []
    for make in (flat_params, separate_params):
        w1, b1, w2, b2 = params = make(start)
        opt = optim.AdamW(params, lr=0.05)
        losses = []
        for _ in range(5):
            opt.zero_grad()
            h = cr.relu(cr.linear(x, w1, b1))
            loss = cr.nn.functional.cross_entropy(cr.linear(h, w2, b2), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        results.append((params, opt, losses))
    (pf, of, lf), (ps, os_, ls) = results
    assert of._flat.steps == 5 and os_._flat.steps == 0
    assert lf == ls
    assert_same(of, pf, os_, ps)


def _cupy_or_skip():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError
    except Exception:
        pytest.skip("no CUDA device")
    return cupy


@pytest.mark.parametrize("cls, kwargs", CASES[3::4], ids=IDS[3::4])
def test_cupy_views_of_one_buffer_take_the_per_parameter_path(cls, kwargs):
    """On a GPU the flat path stands aside (CuPy arrays are not NumPy's); the per-parameter
    path, running the same update functions on CuPy, agrees with the CPU's flat path."""
    cupy = _cupy_or_skip()
    start = values(0, np.float64)
    pf = flat_params(start)
    buf = cupy.asarray(pf[0].data.base)
    pg = [cr.nn.Parameter(cr.tensor(a, device="cuda")) for a in start]
    offset = 0
    for p, a in zip(pg, start):
        p.data = buf[offset:offset + a.size].reshape(a.shape)
        offset += a.size
    of, og = cls(pf, **kwargs), cls(pg, **kwargs)
    for t in range(STEPS):
        set_grads(pf, t)
        for p, q in zip(pg, pf):
            p.grad = cupy.asarray(q.grad)
        of.step()
        og.step()
    assert of._flat.steps == STEPS and og._flat.steps == 0
    for p, q in zip(pf, pg):
        assert type(q.data) is cupy.ndarray
        np.testing.assert_allclose(cupy.asnumpy(q.data), p.data, rtol=1e-12, atol=1e-15)
        for k, v in of.state.get(p, {}).items():
            if hasattr(v, "shape"):
                np.testing.assert_allclose(cupy.asnumpy(og.state[q][k]), v, rtol=1e-12,
                                           atol=1e-15)
