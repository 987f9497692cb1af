"""Memory accounting, measurement and estimates (chainrule.memory).

Measured numbers come from tracemalloc (NumPy reports every array allocation to it): the estimate
is checked against the measured peak of real training steps, and the lean-saved-state rules of
the primitives are checked on real graphs.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

import chainrule as cr
from chainrule import memory
from chainrule.checkpoint import checkpoint_sequential
from chainrule.errors import InvalidValueError
from chainrule.memory import saved, saved_bytes, track
from chainrule.memory.accounting import _arrays, _root
from chainrule.memory.plan import _flat_update
from chainrule.nn.functional import cross_entropy


def _mlp(sizes, activation="relu", dropout=0.0, dtype="float32", seed=0):
    cr.manual_seed(seed)
    return cr.nn.MLP(sizes, activation=activation, dropout=dropout, dtype=dtype)


def _batch(n, d, classes, dtype="float32", seed=1):
    rng = np.random.default_rng(seed)
    x = cr.tensor(rng.standard_normal((n, d)).astype(dtype))
    y = cr.tensor(rng.integers(0, classes, n).astype(np.int64))
    return x, y


def _saved_roots(t):
    return [_root(a) for a in _arrays(t.grad_fn.saved)]


# ---------------------------------------------------------------------------- estimate vs measured

SWEEP = [
    # depth (Linear layers), width, batch, activation, optimizer, segments, zero_grad_first,
    # dropout, dtype
    (1, 64, 32, "relu", "sgd", None, False, 0.0, "float32"),
    (1, 256, 512, "relu", "adam", None, False, 0.0, "float32"),
    (2, 128, 8, "tanh", "sgd", None, False, 0.0, "float32"),
    (2, 128, 256, "tanh", "momentum", None, True, 0.0, "float64"),
    (4, 64, 1024, "sigmoid", "adam", None, False, 0.0, "float32"),
    (4, 512, 64, "relu", "adamw", 2, False, 0.0, "float32"),
    (8, 256, 128, "relu", "sgd", None, True, 0.0, "float32"),
    (8, 128, 512, "relu", "sgd", 3, False, 0.0, "float32"),
    (8, 128, 512, "relu", "adam", 3, True, 0.2, "float32"),
    (16, 128, 512, "leaky_relu", "rmsprop", None, False, 0.1, "float32"),
    (3, 128, 256, "leaky_relu", "adam", None, False, 0.0, "float32"),  # fused: no mask kept
    (6, 128, 512, "leaky_relu", "sgd", 3, False, 0.0, "float32"),  # checkpointed: the chain's
    (16, 64, 64, "tanh", "sgd", 4, False, 0.0, "float64"),
    (32, 128, 256, "relu", "sgd", None, False, 0.0, "float32"),
    (32, 128, 256, "relu", "sgd", 6, False, 0.0, "float32"),
    (32, 64, 1024, "relu", "adam", 6, True, 0.0, "float32"),
    (32, 32, 16, "tanh", "adagrad", None, False, 0.0, "float32"),
]


@pytest.mark.parametrize("depth,width,batch,act,opt,segments,zero_first,p,dtype", SWEEP)
def test_estimate_agrees_with_the_measured_peak(depth, width, batch, act, opt, segments,
                                                zero_first, p, dtype):
    model = _mlp([width] * depth + [10], act, p, dtype)
    est = memory.estimate(model, batch, optimizer=opt, checkpoint_segments=segments,
                          zero_grad_first=zero_first)
    got = memory.measure_step(model, batch, optimizer=opt, checkpoint_segments=segments,
                              zero_grad_first=zero_first)
    assert abs(est.peak / got.peak - 1) < 0.10, (est.peak, got.peak)
    if segments is None:
        # the saved state at the end of the forward is predicted to the byte
        assert est.activations == got.saved
    assert sum(est.at_peak.values()) == est.peak
    # the peak lies between what always lives and the sum of every part plus temporaries
    itemsize = np.dtype(dtype).itemsize
    assert est.parameters + est.optimizer_state + est.batch < est.peak
    # the update's temporaries: parameter-sized, or group-sized on the optimizer's flat path
    sizes = [p.data.nbytes for p in model.parameters()]
    flat = _flat_update(opt, sizes)
    update = 2 * (sum(sizes) if flat else max(width, 10) * width * itemsize)
    assert est.peak < est.parameters + est.gradients + est.optimizer_state + est.activations \
        + est.batch + update + 4 * batch * width * itemsize + 65536


# Every optimizer with state, on MLPs of several depths and widths (40-2048x3-10 among them, where
# the estimate once came out 5-14% high: the fused node's in-place activations were modelled as
# new arrays), at several batch sizes. Steps of 8 MiB or more, where Python's objects are noise,
# are predicted to 2%; the smallest ones, mostly objects and NumPy's buffers, to 10%.
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad")
OPTIMIZER_SWEEP = [
    # sizes, batch sizes, activation, optimizers
    ([40, 2048, 2048, 2048, 10], (256, 2048), "relu", ("adam",)),
    ([40, 2048, 2048, 2048, 10], (1024,), "relu", OPTIMIZERS),
    ([40, 2048, 2048, 2048, 10], (1024,), "tanh", ("adam",)),
    ([1024, 1024, 10], (1024,), "relu", OPTIMIZERS),
    ([784, 256, 128, 10], (32, 2048), "relu", OPTIMIZERS),
    ([784, 256, 128, 10], (512,), "sigmoid", ("adam", "momentum")),
    ([256] * 8 + [10], (512,), "leaky_relu", ("adam", "rmsprop")),
    ([64] * 4 + [10], (16, 1024), "relu", OPTIMIZERS),
    ([20, 30, 30, 10], (8, 512), "tanh", OPTIMIZERS),
]


@pytest.mark.parametrize("sizes,batches,act,opts", OPTIMIZER_SWEEP,
                         ids=[f"{c[0][1]}x{len(c[0]) - 2}-{c[2]}-{'-'.join(map(str, c[1]))}"
                              for c in OPTIMIZER_SWEEP])
def test_estimate_agrees_with_the_measured_peak_for_every_optimizer(sizes, batches, act, opts):
    model = _mlp(sizes, act)
    for batch in batches:
        for opt in opts:
            est = memory.estimate(model, batch, optimizer=opt)
            got = memory.measure_step(model, batch, optimizer=opt)
            bound = 0.02 if got.peak >= 8 * 1024**2 else 0.10
            assert abs(est.peak / got.peak - 1) < bound, (batch, opt, est.peak, got.peak)
            assert est.activations == got.saved


@pytest.mark.parametrize("sizes", [[100, 256, 256, 10], [20, 30, 30, 10]],
                         ids=["per-parameter", "flat"])
def test_the_optimizers_options_are_in_the_estimate(sizes):
    # weight decay, maximize, Nesterov, dampening, amsgrad, centered: more temporaries or state,
    # on the per-parameter path (a group over 256 KiB) and on the flat one
    model = _mlp(sizes, "relu")
    ps = list(model.parameters())
    opts = [cr.optim.SGD(ps, lr=0.1, weight_decay=1e-3), cr.optim.SGD(ps, lr=0.1, maximize=True),
            cr.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
            cr.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2),
            cr.optim.Adam(ps, amsgrad=True), cr.optim.Adam(ps, weight_decay=1e-2),
            cr.optim.AdamW(ps, maximize=True), cr.optim.RMSprop(ps, momentum=0.9, centered=True),
            cr.optim.RMSprop(ps, weight_decay=0.1), cr.optim.Adagrad(ps, weight_decay=0.1)]
    flat = _flat_update(opts[0], [p.data.nbytes for p in ps])
    assert flat == (sizes[1] == 30)
    for opt in opts:
        est = memory.estimate(model, 64, optimizer=opt)
        got = memory.measure_step(model, 64, optimizer=opt)
        assert abs(est.peak / got.peak - 1) < 0.05, (opt.defaults, est.peak, got.peak)
    # the instance is only read: no state, no step taken
    assert all(not o.state for o in opts)


def test_estimate_parts():
    model = _mlp([20, 30, 10], "relu", dtype="float64")
    n_params = 20 * 30 + 30 + 30 * 10 + 10
    for opt, factor in (("sgd", 0), ("momentum", 1), ("adam", 2), ("rmsprop", 1)):
        e = memory.estimate(model, 16, optimizer=opt)
        assert e.parameters == e.gradients == 8 * n_params
        # the state arrays, and the gradient buffer of the optimizer's flat path (this MLP's
        # parameters tile one array, small enough for it)
        assert e.optimizer_state == (factor + 1) * 8 * n_params
        assert e.batch == 16 * (20 * 8 + 8)
    # float32 halves the arrays; an optimizer instance decides its own state
    e32 = memory.estimate(model, 16, dtype="float32",
                          optimizer=cr.optim.Adam(model.parameters(), amsgrad=True))
    assert e32.parameters == 4 * n_params and e32.optimizer_state == (3 + 1) * 4 * n_params
    # activations: the hidden output (saved by the second layer), what ReLU adds (a bool mask,
    # or nothing when it saves its output, which is that same array), the probabilities and
    # the labels' copy
    probe = cr.relu(cr.randn(4, dtype="float64", requires_grad=True) * 1.0)
    relu_extra = 30 if _saved_roots(probe)[0].dtype == np.bool_ else 0
    assert memory.estimate(model, 16).activations == 16 * (30 * 8 + relu_extra + 10 * 8 + 8)


def test_estimate_reads_the_models_checkpoint_segments():
    model = _mlp([16] * 9 + [4])
    plain = memory.estimate(model, 256)
    model.checkpoint_segments = 3
    assert memory.estimate(model, 256) == memory.estimate(model, 256, checkpoint_segments=3)
    assert memory.estimate(model, 256, checkpoint_segments=1) == plain
    assert memory.estimate(model, 256).activations < plain.activations


def test_estimate_and_measure_leave_the_model_and_random_state_alone():
    model = _mlp([8, 8, 8, 3], "relu", 0.5)
    model.eval()
    before = cr.default_generator.get_state()
    weights = [p.data.copy() for p in model.parameters()]
    memory.estimate(model, 32)
    memory.measure_step(model, 32, optimizer="adam", checkpoint_segments=2)
    assert cr.default_generator.get_state() == before
    assert not model.training
    assert all(np.array_equal(w, p.data) for w, p in zip(weights, model.parameters()))
    assert all(p.grad is None for p in model.parameters())


def test_estimate_argument_errors():
    model = _mlp([4, 5, 2])
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InvalidValueError):
            memory.estimate(model, bad)
    with pytest.raises(InvalidValueError):
        memory.estimate(model, 4, checkpoint_segments=0)
    with pytest.raises(InvalidValueError):
        memory.estimate(model, 4, optimizer="lbfgs")
    with pytest.raises(InvalidValueError):
        memory.estimate(model, 4, dtype="int32")
    with pytest.raises(InvalidValueError):
        memory.estimate(cr.nn.Sequential(cr.nn.ReLU(), cr.nn.Linear(3, 2)), 4)


# ---------------------------------------------------------------------------- lean saved state

def test_relu_saves_at_most_one_byte_per_element():
    # In a network, what ReLU adds to the saved state beyond the activations the next layer
    # saves anyway: with an identity activation the next Linear saves the same number of
    # bytes (its input), so the difference is ReLU's own saved state.
    sizes = [32, 64, 64, 64, 10]
    x, y = _batch(128, 32, 10)
    hidden_elements = 128 * 64 * 3
    with_relu = saved_bytes(cross_entropy(_mlp(sizes, "relu")(x), y), exclude=[x])
    identity = saved_bytes(cross_entropy(_mlp(sizes, "identity")(x), y), exclude=[x])
    assert 0 <= with_relu - identity <= hidden_elements

    # On its own: either a boolean mask (1 byte per element) or its output, which the next
    # layer's input shares (so it costs nothing more there).
    for dtype in ("float32", "float64"):
        h = cr.randn(50, 40, dtype=dtype, requires_grad=True) * 1.0
        out = cr.relu(h)
        roots = _saved_roots(out)
        assert len(roots) == 1
        r = roots[0]
        assert (r.dtype == np.bool_ and r.nbytes == h.size) or r is _root(out.data)


@pytest.mark.parametrize("fn", [cr.tanh, cr.sigmoid])
def test_tanh_and_sigmoid_save_their_output_only(fn):
    h = cr.randn(30, 20, requires_grad=True) * 1.0
    out = fn(h)
    assert [r is _root(out.data) for r in _saved_roots(out)] == [True]
    assert saved_bytes(out) == out.data.nbytes


def test_matmul_saves_its_inputs_but_not_its_output():
    a = cr.randn(16, 8, requires_grad=True) * 1.0
    b = cr.randn(8, 12, requires_grad=True) * 1.0
    out = a @ b
    roots = _saved_roots(out)
    assert {id(r) for r in roots} == {id(_root(a.data)), id(_root(b.data))}
    # a constant partner's gradient is not wanted: its partner is not kept
    c = cr.randn(8, 12)
    roots = _saved_roots(a @ c)
    assert [id(r) for r in roots] == [id(_root(c.data))]
    # linear (the fused x W^T + b): the input, and the weight (a parameter), never the output
    layer = cr.nn.Linear(8, 12)
    out = layer(a)
    roots = _saved_roots(out)
    assert all(r is not _root(out.data) for r in roots)
    assert saved_bytes(out) == a.data.nbytes


def test_softmax_cross_entropy_saves_probabilities_and_labels():
    n, c = 64, 7
    logits = cr.randn(n, c, dtype="float64", requires_grad=True) * 1.0
    labels = cr.tensor(np.arange(n) % c)
    loss = cross_entropy(logits, labels)
    arrays = _arrays(loss.grad_fn.saved)
    assert sorted((a.dtype.kind, a.shape) for a in arrays) == [("f", (n, c)), ("i", (n,))]
    probs = next(a for a in arrays if a.dtype.kind == "f")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert saved_bytes(loss) == n * c * 8 + n * 8


def test_primitives_that_save_nothing_keep_no_array():
    from chainrule.autograd import apply
    from chainrule.ops.registry import REGISTRY

    rng = np.random.default_rng(0)
    checked = 0
    for name, prim in REGISTRY.items():
        assert isinstance(prim.saves, str) and prim.saves, name
        if not prim.differentiable or prim.kind not in ("unary", "binary"):
            continue
        # values in (0.2, 0.8): inside every primitive's domain
        args = [cr.tensor(rng.uniform(0.2, 0.8, (6, 5)), requires_grad=True)
                for _ in range(1 if prim.kind == "unary" else 2)]
        out = apply(prim, tuple(args))
        arrays = _arrays(out.grad_fn.saved)
        if prim.saves == "nothing":
            assert arrays == [], name
        else:
            assert arrays, f"{name} documents that it saves {prim.saves!r} but keeps no array"
        with cr.no_grad():
            assert apply(prim, tuple(args)).grad_fn is None
        checked += 1
    assert checked >= 10


def test_no_grad_saves_nothing():
    model = _mlp([64, 128, 128, 10], "tanh")
    x, _ = _batch(256, 64, 10)
    with cr.no_grad():
        with track() as t:
            out = model(x)
    assert out.grad_fn is None and not out.requires_grad
    # what is left is the output alone (and a few hundred bytes of Python objects)
    assert out.data.nbytes <= t.retained < out.data.nbytes + 2048
    # recorded, the same forward keeps every hidden activation
    with track() as t2:
        out2 = model(x)
    assert t2.retained > out.data.nbytes + 2 * 256 * 128 * 4
    assert saved_bytes(out2, exclude=[x]) == 2 * 256 * 128 * 4


def test_backward_releases_saved_state_as_it_goes():
    n, depth = 50_000, 24                 # 400 KB float64 arrays
    array = n * 8
    with track():                         # trace from before the forward, so frees are seen
        ws = [cr.randn(n, dtype="float64", requires_grad=True) for _ in range(depth)]
        h = h0 = cr.randn(n, dtype="float64")
        with track() as fwd:
            for w in ws:
                h = (h * w).tanh()
            loss = h.sum()
        # each layer keeps one array: tanh's output, which the next mul saves too (and the
        # first mul keeps the input, for the first weight's gradient)
        assert saved_bytes(loss, exclude=[h0]) == depth * array
        assert depth * array <= fwd.retained < (depth + 0.1) * array
        with track() as bwd:
            loss.backward()
    # depth gradients are made while depth saved arrays are freed one by one: the level stays
    # within a few arrays of the start (keeping the saved state to the end would add ~depth)
    assert bwd.peak < 6 * array
    assert abs(bwd.retained) < 1.1 * array    # gradients in, saved state (but h itself) out
    assert saved(loss).total == 0 and saved(loss).nodes == 2 * depth + 1


def test_saved_bytes_counts_shared_buffers_once():
    x = cr.randn(100, 10, dtype="float64", requires_grad=True) * 1.0
    y = x.tanh()
    z = y * x.reshape(10, 100).reshape(100, 10)     # tanh's output saved twice; x through views
    # tanh saves y; mul saves y (for dx) and the reshaped view of x (for dy): two buffers
    assert saved_bytes(z) == 2 * x.data.nbytes
    info = saved(z)
    assert info.total == info.activations == 2 * x.data.nbytes and info.leaves == 0
    leaf = cr.randn(100, 10, requires_grad=True)
    info = saved(leaf.tanh() * leaf)
    assert info.leaves == leaf.data.nbytes and info.activations == leaf.data.nbytes
    assert saved_bytes(cr.randn(3)) == 0           # no graph
    assert saved_bytes(z, exclude=[y]) == x.data.nbytes


# ---------------------------------------------------------------------------- track

def test_track_reports_the_peak_and_nests():
    was = tracemalloc.is_tracing()
    with track() as outer:
        keep = np.ones(100_000)                     # 800 KB kept
        with track() as inner:
            tmp = np.ones(300_000)                  # 2.4 MB, freed
            del tmp
        small = np.ones(1000)
    assert 2_400_000 <= inner.peak < 2_400_000 + 20_000
    assert inner.retained < 20_000
    assert 3_200_000 <= outer.peak < 3_200_000 + 40_000   # the inner peak counts for the outer
    assert 808_000 <= outer.retained < 808_000 + 20_000
    assert tracemalloc.is_tracing() == was
    del keep, small


# ---------------------------------------------------------------------------- budgets

def test_parse_bytes():
    assert memory.parse_bytes("2GiB") == 2 * 1024**3
    assert memory.parse_bytes("2 gib") == 2 * 1024**3
    assert memory.parse_bytes("512MiB") == 512 * 1024**2
    assert memory.parse_bytes("1.5GB") == 1_500_000_000
    assert memory.parse_bytes("64k") == 65536
    assert memory.parse_bytes("2G") == 2 * 1024**3
    assert memory.parse_bytes("10KB") == 10_000
    assert memory.parse_bytes("4096") == 4096
    assert memory.parse_bytes(4096) == 4096
    assert memory.parse_bytes("1e3B") == 1000
    for bad in ("", "GiB", "2 GiBs", "-1GiB", "two", "2 X", True, float("inf")):
        with pytest.raises(InvalidValueError):
            memory.parse_bytes(bad)
    assert memory.format_bytes(3 * 1024**3 // 2) == "1.5 GiB"
    assert memory.format_bytes(100) == "100 B"


def test_max_batch_size_is_the_largest_that_fits():
    model = _mlp([256] * 8 + [10])
    budget = 8 * 1024**2
    b = memory.max_batch_size(model, budget)
    assert b > 1
    assert memory.estimate(model, b).peak <= budget < memory.estimate(model, b + 1).peak
    ck = memory.max_batch_size(model, "8MiB", checkpoint_segments=4)
    assert ck > b
    assert memory.estimate(model, ck, checkpoint_segments=4).peak <= budget
    assert memory.estimate(model, ck + 1, checkpoint_segments=4).peak > budget
    assert memory.max_batch_size(model, "100KiB") == 0   # the parameters alone do not fit
    # the measured step at that batch stays within 10% of the budget
    assert memory.measure_step(model, b).peak < 1.1 * budget


def test_report_and_plot(tmp_path):
    rep = memory.report([64, 64], 32, 10, [16, 256, 4096], budget="4MiB", optimizer="adam")
    assert [r.batch_size for r in rep.rows] == [16, 256, 4096]
    assert rep.sizes == (32, 64, 64, 10) and rep.segments == 2
    model = _mlp([32, 64, 64, 10])
    for r in rep.rows:
        assert r.plain == memory.estimate(model, r.batch_size, optimizer="adam")
        assert r.checkpointed == memory.estimate(model, r.batch_size, optimizer="adam",
                                                 checkpoint_segments=2)
    assert rep.max_batch == memory.max_batch_size(model, "4MiB", optimizer="adam")
    assert rep.max_batch_checkpointed == memory.max_batch_size(model, "4MiB", 2,
                                                               optimizer="adam")
    text = rep.table()
    assert "4096" in text and "largest batch within 4 MiB" in text
    assert len(text.splitlines()) == 3 + 3 + 2
    d = rep.as_dict()
    assert d["rows"][2]["plain"]["peak"] == rep.rows[2].plain.peak
    path = memory.plot_report(rep, tmp_path / "memory.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    with pytest.raises(InvalidValueError):
        memory.plot_report(rep, tmp_path / "memory.jpg")
    with pytest.raises(InvalidValueError):
        memory.report([0], 3, 2)
    deep = memory.report([128] * 15, 64, 10, [1024])
    assert deep.segments == round(math.sqrt(16))
    assert deep.rows[0].checkpointed.activations < deep.rows[0].plain.activations / 2


def test_report_of_a_fused_leaky_relu_network_is_the_models_estimate():
    # plain rows: the fused node (no mask); checkpointed rows: the chain of modules (masks)
    rep = memory.report([64, 64], 32, 10, [128], activation="leaky_relu", optimizer="adam")
    model = _mlp([32, 64, 64, 10], "leaky_relu")
    row = rep.rows[0]
    assert row.plain == memory.estimate(model, 128, optimizer="adam")
    assert row.checkpointed == memory.estimate(model, 128, optimizer="adam",
                                               checkpoint_segments=2)
    assert row.plain.activations == memory.measure_step(model, 128, optimizer="adam").saved


def test_checkpointed_step_measures_less():
    model = _mlp([128] * 16 + [10])
    plain = memory.measure_step(model, 512)
    ck = memory.measure_step(model, 512, checkpoint_segments=4)
    assert ck.peak < plain.peak and abs(ck.steady - plain.steady) < 16384
    assert (plain.peak - plain.steady) / (ck.peak - ck.steady) > 2
    # and the step really is the same computation
    x, y = _batch(32, 128, 10)
    out = checkpoint_sequential(list(model), 4, x)
    np.testing.assert_array_equal(out.numpy(), model(x).numpy())


def test_the_flat_optimizer_path_is_in_the_estimate():
    # A small MLP (parameters in one array) under Adam takes the optimizer's flat path: it keeps
    # a gradient buffer of the parameters' size between steps, which the estimate counts.
    model = _mlp([20, 30, 30, 10], "tanh", 0.0, "float32")
    sizes = [p.data.nbytes for p in model.parameters()]
    assert _flat_update("adam", sizes)
    est = memory.estimate(model, 8, optimizer="adam")
    assert est.optimizer_state == 3 * sum(sizes)  # exp_avg, exp_avg_sq, the gradient buffer
    got = memory.measure_step(model, 8, optimizer="adam")
    assert abs(est.peak / got.peak - 1) < 0.10, (est.peak, got.peak)
    # a Sequential of separate arrays takes the per-parameter path
    seq = cr.nn.Sequential(*list(model))
    for p in seq.parameters():
        p.data = p.data.copy()
    assert memory.estimate(seq, 8, optimizer="adam").optimizer_state == 2 * sum(sizes)


# ---------------------------------------------------------------------------- from sizes alone

@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "leaky_relu", "gelu", "identity"])
def test_estimate_mlp_is_the_estimate_of_the_built_model(act):
    sizes = [20, 33, 17, 5]
    for dropout, segments, opt, dtype, batch in ((0.0, None, "adam", "float32", 64),
                                                 (0.3, None, "sgd", "float64", 7),
                                                 (0.0, 2, "rmsprop", "float32", 300),
                                                 (0.2, 3, "momentum", "float64", 1)):
        model = _mlp(sizes, act, dropout, dtype)
        expected = memory.estimate(model, batch, optimizer=opt, checkpoint_segments=segments)
        got = memory.estimate_mlp(sizes, batch, activation=act, dtype=dtype, optimizer=opt,
                                  dropout=dropout, checkpoint_segments=segments)
        assert got == expected, (dropout, segments, opt, dtype)
    # the defaults: relu, float32, Adam
    assert memory.estimate_mlp(sizes, 8) == memory.estimate(_mlp(sizes, "relu"), 8,
                                                            optimizer="adam")
    # no random state is drawn from (the tiny MLP it profiles has a generator of its own)
    before = cr.default_generator.get_state()
    memory.estimate_mlp(sizes, 8, activation=act, dropout=0.5)
    assert cr.default_generator.get_state() == before


def test_estimate_mlp_allocates_nothing_of_the_networks_size():
    with track() as t:
        est = memory.estimate_mlp([784, 10**9, 10], 32)
        huge = memory.estimate_mlp([784, 10**9, 10**9, 10], 10**11, optimizer="sgd",
                                   checkpoint_segments=2)
    assert t.peak < 1024**2
    n_params = 784 * 10**9 + 10**9 + 10**9 * 10 + 10
    assert est.parameters == est.gradients == 4 * n_params
    assert est.optimizer_state == 2 * 4 * n_params  # Adam's two moments (no flat path)
    assert est.activations == 32 * (4 * 10**9 + 4 * 10 + 8)  # hidden output, probabilities, labels
    assert est.peak > est.parameters + est.gradients + est.optimizer_state
    assert huge.peak > 10**20 and huge.checkpoint_segments == 2
    assert memory.format_bytes(est.peak) == "14.4 TiB"


def test_estimate_mlp_argument_errors():
    for kwargs in ({"sizes": [5]}, {"sizes": "5,3"}, {"sizes": [5, 0]}, {"sizes": [5, 2.5]},
                   {"batch_size": 0}, {"dtype": "int64"}, {"dtype": "nonsense"},
                   {"optimizer": "lbfgs"}, {"activation": "nonsense"}, {"dropout": 1.5},
                   {"dropout": -0.1}, {"checkpoint_segments": 0}):
        args = {"sizes": [5, 4, 3], "batch_size": 2, **kwargs}
        with pytest.raises(InvalidValueError):
            memory.estimate_mlp(args.pop("sizes"), args.pop("batch_size"), **args)


def test_format_bytes_never_uses_exponents():
    assert memory.format_bytes(2**50) == "1 PiB"
    assert memory.format_bytes(3 * 2**60) == "3 EiB"
    assert memory.format_bytes(4096 * 2**60) == "4,096 EiB"
    assert memory.format_bytes(1023.9 * 1024) == "1,024 KiB"
    assert "e" not in memory.format_bytes(10**40).replace("EiB", "")


# ---------------------------------------------------------------------------- guards

def _fake_machine(tmp_path, meminfo_kib=None, v2=None, v1=None, cgroup_line="0::/"):
    """Files like /proc/meminfo, /sys/fs/cgroup and /proc/self/cgroup, under tmp_path. ``v2``:
    {relative dir: (memory.max, memory.current, inactive_file)}; ``v1`` likewise for the memory
    controller's limit_in_bytes and usage_in_bytes."""
    tmp_path.mkdir(parents=True)
    meminfo = tmp_path / "meminfo"
    if meminfo_kib is not None:
        meminfo.write_text(f"MemTotal:       99999999 kB\nMemFree:          123456 kB\n"
                           f"MemAvailable:   {meminfo_kib:>8d} kB\nBuffers:            1234 kB\n")
    root = tmp_path / "cgroup"
    for tree, (limit_file, usage_file) in ((v2, ("memory.max", "memory.current")),
                                           (v1, ("memory.limit_in_bytes",
                                                 "memory.usage_in_bytes"))):
        for rel, (limit, used, inactive) in (tree or {}).items():
            d = root / ("memory" if tree is v1 else "") / rel
            d.mkdir(parents=True, exist_ok=True)
            (d / limit_file).write_text(f"{limit}\n")
            (d / usage_file).write_text(f"{used}\n")
            (d / "memory.stat").write_text(f"anon 1\ninactive_file {inactive}\nactive_file 5\n")
    self_cgroup = tmp_path / "self_cgroup"
    self_cgroup.write_text(cgroup_line + "\n")
    return meminfo, root, self_cgroup


def test_available_bytes_reads_meminfo_and_the_cgroup_limit(tmp_path):
    from chainrule.memory.guard import _available

    gib = 1024**3
    # MemAvailable alone (no cgroup limit: "max")
    files = _fake_machine(tmp_path / "a", 8 * 1024**2, v2={"": ("max", 5 * gib, 0)})
    assert _available(*files) == 8 * gib
    # a cgroup v2 limit leaves less: 4 GiB - (3 GiB used - 1 GiB reclaimable cache)
    files = _fake_machine(tmp_path / "b", 8 * 1024**2,
                          v2={"": ("max", 0, 0), "job": (4 * gib, 3 * gib, gib),
                              "job/step": ("max", gib, 0)}, cgroup_line="0::/job/step")
    assert _available(*files) == 2 * gib
    # a limit above MemAvailable changes nothing
    files = _fake_machine(tmp_path / "c", 8 * 1024**2, v2={"": (64 * gib, gib, 0)})
    assert _available(*files) == 8 * gib
    # cgroup v1: the memory controller's line; "unlimited" is a huge number
    files = _fake_machine(tmp_path / "d", 8 * 1024**2,
                          v1={"": (9223372036854771712, gib, 0), "box": (3 * gib, gib, 0)},
                          cgroup_line="4:memory:/box\n3:cpu:/")
    assert _available(*files) == 2 * gib
    # over the limit: nothing left
    files = _fake_machine(tmp_path / "e", 8 * 1024**2, v2={"": (gib, 2 * gib, 0)})
    assert _available(*files) == 0
    # nothing known: no meminfo (not Linux), no limit
    files = _fake_machine(tmp_path / "f")
    assert _available(*files) is None
    files = _fake_machine(tmp_path / "g", None, v2={"": (3 * gib, gib, 0)})
    assert _available(*files) == 2 * gib
    # this machine: a positive number, or None off Linux
    here = memory.available_bytes()
    assert here is None or (isinstance(here, int) and here > 0)


def test_check_fits(monkeypatch):
    from chainrule.memory import guard

    gib = 1024**3
    memory.check_fits(gib, "2GiB")
    memory.check_fits(2 * gib, 2 * gib)
    with pytest.raises(InvalidValueError) as err:
        memory.check_fits(3 * gib, "2GiB", what="a batch of 512")
    msg = str(err.value)
    assert "\n" not in msg and "a batch of 512" in msg and "3 GiB" in msg and "2 GiB" in msg
    # without a budget: the available memory
    monkeypatch.setattr(guard, "available_bytes", lambda: 4 * gib)
    memory.check_fits(4 * gib)
    est = memory.estimate_mlp([784, 10**6, 10], 64)
    with pytest.raises(InvalidValueError, match=r"needs about .*TiB|needs about .*GiB") as err:
        memory.check_fits(est)  # a MemoryEstimate: its peak
    assert "4 GiB of memory available" in str(err.value)
    assert memory.format_bytes(est.peak) in str(err.value)
    # unknown available memory: nothing to check against
    monkeypatch.setattr(guard, "available_bytes", lambda: None)
    memory.check_fits(10**30)
    for bad in (-1, "lots", None, True):
        with pytest.raises(InvalidValueError):
            memory.check_fits(bad, "1GiB")
    with pytest.raises(InvalidValueError):
        memory.check_fits(1, "lots")


def test_max_batch_size_limit():
    model = _mlp([64, 64, 10])
    free = memory.max_batch_size(model, "4MiB")
    assert 100 < free < 10_000
    assert memory.max_batch_size(model, "4MiB", limit=100) == 100
    assert memory.max_batch_size(model, "4MiB", limit=free) == free
    assert memory.max_batch_size(model, "4MiB", limit=free + 1) == free
    assert memory.max_batch_size(model, "4MiB", limit=10**9) == free
    assert memory.max_batch_size(model, "4MiB", limit=1) == 1
    assert memory.max_batch_size(model, "10KiB", limit=100) == 0
    for bad in (0, -5, 2.5, True):
        with pytest.raises(InvalidValueError):
            memory.max_batch_size(model, "4MiB", limit=bad)


def test_report_of_huge_sizes_is_arithmetic_or_a_clear_refusal(monkeypatch):
    from chainrule.memory import reporting

    monkeypatch.setattr(reporting, "available_bytes", lambda: 8 * 1024**3)
    # parameters (2.89 TiB) that fit neither the machine nor the budget: refused, in one line
    for budget in (None, "1TiB"):
        with pytest.raises(InvalidValueError) as err:
            memory.report([10**9], 784, 10, budget=budget)
        msg = str(err.value)
        assert "\n" not in msg and "2.89 TiB" in msg and "8 GiB of memory available" in msg
    # a budget that holds them (another machine): the table, computed without allocating it
    with track() as t:
        rep = memory.report([10**9], 784, 10, [32, 10**11], budget="100TiB")
    assert t.peak < 2 * 1024**2
    assert rep.rows[0].plain == memory.estimate_mlp([784, 10**9, 10], 32, optimizer="sgd")
    assert rep.max_batch > 0 and "e+" not in rep.table()
    # absurd batch sizes of a small network: just rows
    rep = memory.report([64], 32, 10, [10**11])
    assert rep.rows[0].plain.peak > 10**11 * 64 * 4
    # a small budget only gives a largest batch of 0, as before
    assert memory.report([64], 32, 10, [8], budget="1KiB").max_batch == 0
    # unknown available memory and no budget: nothing to refuse
    monkeypatch.setattr(reporting, "available_bytes", lambda: None)
    assert memory.report([10**9], 784, 10, [1]).rows[0].plain.parameters > 2 * 1024**4
