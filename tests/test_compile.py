"""cr.compile: a traced, replayed training step gives the eager step's numbers bit for bit.

Each case trains two identical models side by side, one with the eager step and one with the
compiled step, over batches that change from step to step, and compares every parameter (and the
losses, and the optimizer state) exactly: float32 and float64, every optimizer and its options,
weight decay, clipping, every fused activation, dropout, every loss, schedulers.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule.compile.api import CompiledStep, CompileWarning

F = cr.nn.functional


@pytest.fixture(autouse=True, params=["fused", "numpy"])
def kernel_loops(request, monkeypatch):
    """Every test twice: with compile.fused's Numba loops (when Numba is installed) and with
    the kernels' NumPy calls alone."""
    from chainrule.compile import fused

    if request.param == "numpy":
        monkeypatch.setattr(fused, "AVAILABLE", False)
    elif not fused.AVAILABLE:
        pytest.skip("Numba is not installed")
    return request.param


STEPS = 7  # the trace, then replays; a batch of another size on the way (a second plan)


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint8 if a.dtype.itemsize == 1 else f"u{a.dtype.itemsize}")


def assert_same(a, b, what=""):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, what
    assert np.array_equal(_bits(a), _bits(b)), f"{what}: {np.max(np.abs(a - b))}"


def _batches(n_in, n_out, dtype, kind="labels", sizes=(8, 8, 5, 8, 8, 8, 8), seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in sizes:
        x = rng.standard_normal((n, n_in)).astype(dtype)
        if kind == "labels":
            y = rng.integers(0, n_out, n)
        elif kind == "targets":
            y = rng.standard_normal((n, n_out)).astype(dtype)
        elif kind == "binary":
            y = rng.integers(0, 2, (n, n_out)).astype(dtype)
        elif kind == "signs":
            y = (2 * rng.integers(0, 2, (n, n_out)) - 1).astype(dtype)
        elif kind == "probs":
            p = rng.random((n, n_out)).astype(dtype)
            y = p / p.sum(axis=1, keepdims=True)
        else:
            raise ValueError(kind)
        out.append((cr.tensor(x), cr.tensor(y)))
    return out


def run_pair(make, loss_fn, batches, *, clip=None, sched=None, extra=None, kernels=True):
    """Train eagerly and compiled; compare everything. ``make()`` -> (model, optimizer)."""
    results = []
    for compiled in (False, True):
        model, opt = make()
        scheduler = sched(opt) if sched is not None else None

        def step(x, y):
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            if clip == "norm":
                cr.optim.clip_grad_norm_(model.parameters(), 0.5)
            elif clip == "value":
                cr.optim.clip_grad_value_(model.parameters(), 0.05)
            opt.step()
            return loss

        f = cr.compile(step, strict=True, kernels=kernels) if compiled else step
        losses = []
        for k, (x, y) in enumerate(batches):
            losses.append(np.asarray(f(x, y).data).copy())
            if scheduler is not None:
                scheduler.step()
            if extra is not None:
                extra(model, k)
        results.append((model, opt, losses, f))
    (m1, o1, l1, _), (m2, o2, l2, f2) = results
    for k, (a, b) in enumerate(zip(l1, l2)):
        assert_same(a, b, f"loss {k}")
    for (name, p), q in zip(m1.named_parameters(), m2.parameters()):
        assert_same(p.data, q.data, name)
        if p.grad is not None or q.grad is not None:
            assert_same(p.grad, q.grad, f"grad {name}")
    s1, s2 = o1.state_dict(), o2.state_dict()
    assert s1["param_groups"] == s2["param_groups"]
    for i in s1["state"]:
        for key, v in s1["state"][i].items():
            w = s2["state"][i][key]
            if hasattr(v, "shape"):
                assert_same(v, w, f"state {i} {key}")
            else:
                assert v == w, (i, key)
    assert isinstance(f2, CompiledStep)
    assert f2.stats["replays"] >= len(batches) - 3, dict(f2.stats)
    return f2


def _mlp(sizes, act, dtype, opt_fn, **kw):
    def make():
        cr.manual_seed(0)
        model = cr.nn.MLP(sizes, activation=act, dtype=dtype, **kw)
        return model, opt_fn(model.parameters())
    return make


# ---------------------------------------------------------------------------- optimizers
OPTIMIZERS = {
    "sgd": lambda p: cr.optim.SGD(p, lr=0.1),
    "sgd-momentum": lambda p: cr.optim.SGD(p, lr=0.1, momentum=0.9),
    "sgd-nesterov-wd": lambda p: cr.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                              weight_decay=1e-2),
    "sgd-dampening-maximize": lambda p: cr.optim.SGD(p, lr=0.01, momentum=0.5, dampening=0.3,
                                                     maximize=True),
    "adam": lambda p: cr.optim.Adam(p, lr=1e-2),
    "adam-amsgrad-wd": lambda p: cr.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2),
    "adamw": lambda p: cr.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda p: cr.optim.RMSprop(p, lr=1e-3),
    "rmsprop-centered-momentum-wd": lambda p: cr.optim.RMSprop(
        p, lr=1e-3, centered=True, momentum=0.9, weight_decay=1e-2),
    "adagrad": lambda p: cr.optim.Adagrad(p, lr=1e-2, lr_decay=0.01, weight_decay=1e-3),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_optimizers(opt, dtype):
    batches = _batches(6, 3, dtype)
    run_pair(_mlp([6, 7, 5, 3], "tanh", dtype, OPTIMIZERS[opt]), F.cross_entropy, batches)


@pytest.mark.parametrize("opt", ["sgd", "adam", "rmsprop-centered-momentum-wd"])
def test_optimizers_generic_lowering(opt):
    """Every op through its eager function (no buffered kernel): the same numbers too."""
    batches = _batches(6, 3, "float32")
    run_pair(_mlp([6, 7, 3], "relu", "float32", OPTIMIZERS[opt]), F.cross_entropy, batches,
             kernels=False)


@pytest.mark.parametrize("clip", ["norm", "value"])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_clipping(clip, opt):
    batches = _batches(6, 3, "float32")
    run_pair(_mlp([6, 8, 3], "relu", "float32", OPTIMIZERS[opt]), F.cross_entropy, batches,
             clip=clip)


# ---------------------------------------------------------------------------- activations
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("act", ["identity", "relu", "tanh", "sigmoid", "leaky_relu",
                                 cr.nn.LeakyReLU(0.2), "elu", "gelu"])
def test_activations(act, dtype):
    batches = _batches(5, 4, dtype)
    run_pair(_mlp([5, 6, 6, 4], act, dtype, OPTIMIZERS["sgd-momentum"]), F.cross_entropy,
             batches)


def test_output_activation_and_no_bias():
    batches = _batches(5, 4, "float32", kind="binary")
    make = _mlp([5, 6, 4], "relu", "float32", OPTIMIZERS["adam"], output_activation="sigmoid",
                bias=False)
    run_pair(make, F.binary_cross_entropy, batches)


def test_large_network_transposed_products():
    """784-256-10 at batch 16: the layers whose product is computed as (W x^T)^T."""
    batches = _batches(784, 10, "float32", sizes=(16, 16, 16))
    run_pair(_mlp([784, 256, 10], "relu", "float32", OPTIMIZERS["sgd"]), F.cross_entropy,
             batches)


def test_batch_of_one():
    batches = _batches(30, 4, "float32", sizes=(1, 1, 1, 1))
    run_pair(_mlp([30, 20, 4], "relu", "float32", OPTIMIZERS["sgd"]), F.cross_entropy, batches)


# ---------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dropout(dtype):
    """The masks are drawn from the generator at each replay: the same masks as eagerly."""
    batches = _batches(6, 3, dtype)

    def make():
        cr.manual_seed(0)
        model = cr.nn.MLP([6, 8, 8, 3], activation="relu", dtype=dtype, dropout=0.3,
                          generator=cr.Generator(5))
        return model, cr.optim.Adam(model.parameters(), lr=1e-2)

    run_pair(make, F.cross_entropy, batches)


def test_dropout_default_generator():
    batches = _batches(6, 3, "float32")

    def make():
        cr.manual_seed(0)
        model = cr.nn.Sequential(cr.nn.Linear(6, 8), cr.nn.ReLU(), cr.nn.Dropout(0.5),
                                 cr.nn.Linear(8, 3))
        cr.manual_seed(3)
        return model, cr.optim.SGD(model.parameters(), lr=0.1)

    run_pair(make, F.cross_entropy, batches)


# ---------------------------------------------------------------------------- losses
LOSSES = {
    "cross_entropy": (F.cross_entropy, "labels"),
    "cross_entropy-sum": (lambda h, y: F.cross_entropy(h, y, reduction="sum"), "labels"),
    "cross_entropy-weight": (lambda h, y: F.cross_entropy(h, y, weight=[1.0, 2.0, 0.5]),
                             "labels"),
    "cross_entropy-ignore": (lambda h, y: F.cross_entropy(h, y, ignore_index=1), "labels"),
    "cross_entropy-smoothing": (lambda h, y: F.cross_entropy(h, y, label_smoothing=0.1),
                                "labels"),
    "cross_entropy-probs": (F.cross_entropy, "probs"),
    "nll": (lambda h, y: F.nll_loss(F.log_softmax(h), y), "labels"),
    "mse": (F.mse_loss, "targets"),
    "mse-none-mean": (lambda h, y: F.mse_loss(h, y, reduction="none").mean(), "targets"),
    "bce_with_logits": (F.binary_cross_entropy_with_logits, "binary"),
    "bce_with_logits-weighted": (
        lambda h, y: F.binary_cross_entropy_with_logits(h, y, pos_weight=[2.0, 1.0, 0.5]),
        "binary"),
    "bce": (lambda h, y: F.binary_cross_entropy(F.sigmoid(h), y), "binary"),
    "hinge": (F.hinge_loss, "signs"),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", list(LOSSES))
def test_losses(loss, dtype):
    fn, kind = LOSSES[loss]
    batches = _batches(5, 3, dtype, kind=kind)
    run_pair(_mlp([5, 6, 3], "tanh", dtype, OPTIMIZERS["adam"]), fn, batches)


def test_functional_model_with_parameters():
    """A step written with F.linear on bare parameters (no nn.MLP): generic primitives."""
    batches = _batches(4, 3, "float32")

    def make():
        cr.manual_seed(1)
        W1 = cr.nn.Parameter(cr.randn(5, 4) * 0.5)
        b1 = cr.nn.Parameter(cr.zeros(5))
        W2 = cr.nn.Parameter(cr.randn(3, 5) * 0.5)
        params = [W1, b1, W2]

        class Net:
            def __call__(self, x):
                h = F.linear(x, W1, b1).tanh()
                return h @ W2.T + (h * h).sum(axis=1, keepdims=True)

            def named_parameters(self):
                return [("W1", W1), ("b1", b1), ("W2", W2)]

            def parameters(self):
                return params

        return Net(), cr.optim.SGD(params, lr=0.05, momentum=0.9)

    run_pair(make, F.cross_entropy, batches)


# ---------------------------------------------------------------------------- schedules
def test_scheduler_changes_lr_between_replays():
    batches = _batches(6, 3, "float32", sizes=(8,) * 6)
    f = run_pair(_mlp([6, 7, 3], "relu", "float32", OPTIMIZERS["sgd-momentum"]),
                 F.cross_entropy, batches,
                 sched=lambda o: cr.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5))
    assert f.stats["traces"] == 1


def test_adam_steps_count_in_the_state():
    batches = _batches(6, 3, "float32", sizes=(8,) * 5)
    run_pair(_mlp([6, 7, 3], "relu", "float32", OPTIMIZERS["adam"]), F.cross_entropy, batches,
             sched=lambda o: cr.optim.lr_scheduler.ExponentialLR(o, gamma=0.9))


# ---------------------------------------------------------------------------- semantics
def _simple():
    cr.manual_seed(0)
    model = cr.nn.MLP([4, 5, 3], activation="relu")
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, opt, step


def test_replays_and_retraces():
    model, opt, step = _simple()
    f = cr.compile(step, strict=True)
    (x, y), = _batches(4, 3, "float32", sizes=(6,))
    for _ in range(3):
        f(x, y)
    assert dict(f.stats) == {"traces": 1, "replays": 2}
    (x2, y2), = _batches(4, 3, "float32", sizes=(2,))
    f(x2, y2)
    assert f.stats["traces"] == 2  # a new shape: a second plan
    f(x, y)
    assert f.stats["traces"] == 2 and f.stats["replays"] == 3
    model.to(dtype="float64")  # new parameter arrays: the guard sends the call to tracing
    f(cr.tensor(x.data.astype("float64")), y)
    assert f.stats["traces"] == 3
    model.to(dtype="float32")
    before = f.stats["traces"]
    f(x, y)  # the float32 plan's parameters are gone: its guard fails, a new trace
    assert f.stats["retraces"] == 1 and f.stats["traces"] == before + 1


def test_eval_mode_is_a_guard():
    cr.manual_seed(0)
    model = cr.nn.MLP([4, 6, 3], activation="relu", dropout=0.5)
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = cr.compile(step, strict=True)
    (x, y), = _batches(4, 3, "float32", sizes=(6,))
    f(x, y)
    f(x, y)
    model.eval()
    f(x, y)
    assert f.stats["retraces"] == 1 and f.stats["traces"] == 2


def test_item_inside_the_step_falls_back_with_a_warning():
    model, opt, _ = _simple()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        if loss.item() > 100:  # data-dependent Python
            return loss
        loss.backward()
        opt.step()
        return loss

    f = cr.compile(step)
    (x, y), = _batches(4, 3, "float32", sizes=(6,))
    with pytest.warns(CompileWarning, match=r"reads a tensor's value \(item\(\)\)"):
        f(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per signature
        f(x, y)
    assert f.stats["eager"] == 1 and f.stats["traces"] == 1


def test_inplace_op_falls_back():
    model, opt, _ = _simple()

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with cr.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
        return loss

    f = cr.compile(step)
    (x, y), = _batches(4, 3, "float32", sizes=(6,))
    with pytest.warns(CompileWarning, match="in-place"):
        f(x, y)


def test_bad_labels_run_eagerly_and_raise():
    model, opt, step = _simple()
    f = cr.compile(step, strict=True)
    (x, y), = _batches(4, 3, "float32", sizes=(6,))
    f(x, y)
    f(x, y)
    bad = cr.tensor(np.array([0, 1, 2, 3, 0, 1]))
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(cr.InvalidValueError, match="class labels must lie in"):
        f(x, bad)
    for p, b in zip(model.parameters(), before):
        assert_same(p.data, b)
    assert f.stats["aborts"] == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (inf inputs, on purpose)
def test_non_finite_loss_is_the_eager_one():
    model, opt, step = _simple()
    f = cr.compile(step, strict=True)
    (x, y), = _batches(4, 3, "float32", sizes=(6,))
    f(x, y)
    xi = cr.tensor(np.full((6, 4), np.inf, np.float32))
    loss = f(xi, y)
    assert not math.isfinite(loss.item())


def test_gradient_accumulation_without_zero_grad():
    """No zero_grad in the step: each call adds to .grad, as eagerly."""
    res = []
    for compiled in (False, True):
        cr.manual_seed(0)
        model = cr.nn.MLP([4, 5, 3], activation="tanh")

        def step(x, y):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        f = cr.compile(step, strict=True) if compiled else step
        for x, y in _batches(4, 3, "float32", sizes=(6,) * 4):
            f(x, y)
        res.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*res):
        assert_same(a, b)


def test_returns_outputs_as_fresh_arrays():
    cr.manual_seed(0)
    model = cr.nn.MLP([4, 5, 3], activation="relu")
    opt = cr.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        return loss, out

    f = cr.compile(step, strict=True)
    batches = _batches(4, 3, "float32", sizes=(6, 6, 6))
    outs = [f(x, y)[1] for x, y in batches]
    kept = [o.data.copy() for o in outs]
    f(*batches[0])
    for o, k in zip(outs, kept):
        assert_same(o.data, k)  # a later replay did not overwrite an earlier output


def test_decorator_forms_and_source():
    @cr.compile
    def double(x):
        return x * 2.0

    @cr.compile(cache_size=1, strict=True)
    def triple(x):
        return x * 3.0

    x = cr.tensor([1.0, 2.0])
    assert double(x).tolist() == [2.0, 4.0]
    assert double(x).tolist() == [2.0, 4.0]
    assert triple(x).tolist() == [3.0, 6.0]
    triple(cr.tensor([1.0]))
    assert len(triple.plans) == 1  # cache_size 1
    assert "def _replay" in double.plan.source


# ---------------------------------------------------------------------------- Trainer, sklearn
def test_trainer_compiles_by_default_and_matches_eager():
    from chainrule.train import Trainer

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    y = rng.integers(0, 3, 50)
    fits = []
    for compile_ in (False, True):
        cr.manual_seed(0)
        model = cr.nn.MLP([4, 8, 3], activation="tanh")
        opt = cr.optim.Adam(model.parameters(), lr=1e-2)
        loader = cr.data.DataLoader(cr.data.TensorDataset(X, y), batch_size=16, shuffle=True,
                                    generator=cr.Generator(1))
        trainer = Trainer(model, F.cross_entropy, opt, clip_grad_norm=1.0, progress="none",
                          compile=compile_)
        history = trainer.fit(loader, epochs=3)
        fits.append((model, history, trainer))
    (m1, h1, _), (m2, h2, t2) = fits
    assert [e["train_loss"] for e in h1.epochs] == [e["train_loss"] for e in h2.epochs]
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert_same(p.data, q.data)
    step = t2._step[1]
    assert step.stats["replays"] > 0 and step.stats["traces"] == 2  # 16 rows, and the last 2


SKLEARN = {
    "adam-float64": ("clf", {}),
    "adam-float32-relu": ("clf", {"dtype": "float32"}),
    "sgd-nesterov-tanh": ("clf", {"solver": "sgd", "momentum": 0.9, "activation": "tanh",
                                  "learning_rate_init": 0.05}),
    "rmsprop-batch-37": ("clf", {"solver": "rmsprop", "batch_size": 37}),
    "adamw": ("clf", {"solver": "adamw", "alpha": 1e-2}),
    "adagrad-logistic-no-penalty": ("clf", {"solver": "adagrad", "activation": "logistic",
                                            "alpha": 0.0}),
    "early-stopping": ("clf", {"early_stopping": True, "validation_fraction": 0.2,
                               "n_iter_no_change": 3}),
    "binary-log-loss": ("bin", {}),
    "hinge": ("clf", {"loss": "hinge"}),
    "signed-square": ("clf", {"loss": "squared_error"}),
    "regressor": ("reg", {}),
    "regressor-poisson-float32": ("poisson", {"dtype": "float32"}),
    "dropout": ("clf", {"dropout": 0.2}),
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("config", sorted(SKLEARN))
def test_sklearn_compiled_fit_is_the_graph_fit(monkeypatch, config):
    """The estimators' default compiled step fits exactly as the eager graph step."""
    from sklearn.datasets import load_digits

    from chainrule.sklearn import MLPClassifier, MLPRegressor, _base

    X, y = load_digits(return_X_y=True)
    X, y = X[:240] / 16.0, y[:240]
    kind, extra = SKLEARN[config]
    cls = MLPRegressor if kind in ("reg", "poisson") else MLPClassifier
    target = {"clf": y, "bin": y % 2, "reg": y / 9.0, "poisson": (y % 4).astype(float)}[kind]
    params = {"hidden_layer_sizes": (16,), "max_iter": 4, "random_state": 0, "tol": 0.0,
              "batch_size": 50, **extra}
    fits = []
    calls = []
    for compile_ in (True, False):
        with monkeypatch.context() as m:
            m.setattr(_base, "direct_step", lambda *a, **k: None)  # the graph, not _direct
            original = CompiledStep.__call__

            def counting(self, *args, **kw):
                calls.append(1)
                return original(self, *args, **kw)

            m.setattr(CompiledStep, "__call__", counting)
            with warnings.catch_warnings():
                warnings.simplefilter("error", CompileWarning)
                fits.append(cls(compile=compile_, **params).fit(X, target))
    a, b = fits
    assert calls  # (the compiled fit took the compiled step)
    assert a.loss_curve_ == b.loss_curve_
    for u, v in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_same(u, v)
    if a.validation_scores_ is not None:
        assert a.validation_scores_ == b.validation_scores_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_partial_fit_replays_one_plan():
    from sklearn.datasets import load_digits

    from chainrule.sklearn import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X = X[:200] / 16.0
    fits = []
    for compile_ in (True, False):
        est = MLPClassifier(hidden_layer_sizes=(16,), random_state=2, batch_size=40,
                            compile=compile_)
        for _ in range(4):
            est.partial_fit(X, y[:200], classes=np.unique(y))
        fits.append(est)
    a, b = fits
    assert a.loss_curve_ == b.loss_curve_
    for u, v in zip(a.coefs_, b.coefs_):
        assert_same(u, v)
    step = a.__dict__["_compiled"][1]
    assert step.stats["traces"] == 1 and step.stats["replays"] == 4 * 5 - 1


@pytest.mark.parametrize("opt", ["adam", "sgd-momentum"])
def test_optimizer_state_dict_reload_retraces(opt):
    """load_state_dict replaces the optimizer's state: the plan's guard sends the next call to
    tracing (before anything is touched), and the numbers stay the eager ones."""
    batches = _batches(6, 3, "float32", sizes=(8,) * 6)

    def reload(model, k):
        if k == 2:
            o = reload.opts[id(model)]
            o.load_state_dict(o.state_dict())

    reload.opts = {}

    def make():
        model, o = _mlp([6, 7, 3], "relu", "float32", OPTIMIZERS[opt])()
        reload.opts[id(model)] = o
        return model, o

    f = run_pair(make, F.cross_entropy, batches, extra=reload)
    assert f.stats["retraces"] == 1 and f.stats["traces"] == 2


def test_checkpointed_network():
    """nn.MLP(checkpoint_segments=2): the checkpoint primitive replays through its own
    forward and VJP (which recompute a segment): the same numbers."""
    batches = _batches(6, 3, "float32")
    run_pair(_mlp([6, 8, 8, 8, 3], "tanh", "float32", OPTIMIZERS["adam"],
                  checkpoint_segments=2), F.cross_entropy, batches)
