"""chainrule.sklearn._direct: the graph-free training step gives the same fit, bit for bit, as
the step through the autodiff graph, and is taken exactly where it applies (with
``compile=False``: by default the estimators replay their step with cr.compile, which
tests/test_compile.py compares with the graph in the same way)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from chainrule.sklearn import MLPClassifier, MLPRegressor, _base, _direct

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


def _fit(monkeypatch, graph: bool, make, X, y, **fit_kw):
    with monkeypatch.context() as m:
        if graph:
            m.setattr(_base, "direct_step", lambda *a, **k: None)
        return make().set_params(compile=False).fit(X, y, **fit_kw)


def _calls(monkeypatch):
    """Count the graph-free steps taken."""
    calls = []
    original = _direct.DirectStep.__call__

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(_direct.DirectStep, "__call__", counting)
    return calls


CONFIGS = {
    "adam-float64": {},
    "adam-float32": {"dtype": "float32"},
    "sgd-nesterov-tanh": {"solver": "sgd", "momentum": 0.9, "activation": "tanh",
                          "learning_rate_init": 0.05},
    "two-layers-logistic-no-penalty": {"hidden_layer_sizes": (20, 10), "activation": "logistic",
                                       "alpha": 0.0},
    "early-stopping": {"early_stopping": True, "validation_fraction": 0.2,
                       "n_iter_no_change": 3},
    "rmsprop-batch-37": {"solver": "rmsprop", "batch_size": 37, "learning_rate_init": 0.01},
    "adamw": {"solver": "adamw", "alpha": 1e-2},
    "class-weight": {"class_weight": "balanced"},
    "leaky-relu-float32": {"activation": "leaky_relu", "dtype": "float32"},
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_direct_step_fits_exactly_as_the_graph(monkeypatch, digits, config):
    X, y = digits
    params = {"hidden_layer_sizes": (24,), "max_iter": 6, "random_state": 0, "tol": 0.0,
              **CONFIGS[config]}
    make = lambda: MLPClassifier(**params)
    calls = _calls(monkeypatch)
    direct = _fit(monkeypatch, False, make, X, y)
    assert calls, "the multiclass log_loss fit should take the graph-free step"
    n_direct = len(calls)
    graph = _fit(monkeypatch, True, make, X, y)
    assert len(calls) == n_direct, "the graph fit must not call the graph-free step"
    assert direct.loss_curve_ == graph.loss_curve_  # exact, not approximate
    for a, b in zip(direct.coefs_ + direct.intercepts_, graph.coefs_ + graph.intercepts_):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(a).all()
    if direct.validation_scores_ is not None:
        assert direct.validation_scores_ == graph.validation_scores_


def test_direct_step_with_sample_weight(monkeypatch, digits):
    X, y = digits
    w = np.random.default_rng(0).uniform(0.0, 3.0, len(y))
    w[:7] = 0.0
    make = lambda: MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, random_state=1,
                                 batch_size=50, dtype="float32")
    calls = _calls(monkeypatch)
    direct = _fit(monkeypatch, False, make, X, y, sample_weight=w)
    assert calls
    graph = _fit(monkeypatch, True, make, X, y, sample_weight=w)
    assert direct.loss_curve_ == graph.loss_curve_
    for a, b in zip(direct.coefs_ + direct.intercepts_, graph.coefs_ + graph.intercepts_):
        np.testing.assert_array_equal(a, b)


def test_partial_fit_takes_the_direct_step_too(monkeypatch, digits):
    X, y = digits
    make = lambda: MLPClassifier(hidden_layer_sizes=(16,), random_state=2, compile=False)
    calls = _calls(monkeypatch)
    a = make()
    for _ in range(3):
        a.partial_fit(X, y, classes=np.unique(y))
    assert calls
    with monkeypatch.context() as m:
        m.setattr(_base, "direct_step", lambda *args, **kw: None)
        b = make()
        for _ in range(3):
            b.partial_fit(X, y, classes=np.unique(y))
    assert a.loss_curve_ == b.loss_curve_
    for u, v in zip(a.coefs_, b.coefs_):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("make", [
    lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, dropout=0.2),
    lambda: MLPClassifier(hidden_layer_sizes=(8, 8), max_iter=2, checkpoint_segments=2),
    lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, activation="elu"),
    lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, dropout=0.1),
    lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=2, activation="gelu",
                         loss="poisson"),
], ids=["dropout", "checkpointing", "elu", "regressor-dropout", "poisson-gelu"])
def test_other_fits_take_the_graph(monkeypatch, digits, make):
    """Where the step would need more than the two fused nodes, the graph runs it."""
    X, y = digits
    calls = _calls(monkeypatch)
    est = make()
    est.fit(X, y if isinstance(est, MLPClassifier) else y.astype(float))
    assert not calls
    assert np.isfinite(est.loss_curve_).all()


SCALED_CONFIGS = {  # the heads whose loss is one ScaledLoss node: square losses, sigmoid CE
    "classifier-binary-log-loss": (MLPClassifier, {}),
    "classifier-multilabel-log-loss-float32": (MLPClassifier, {"dtype": "float32"}),
    "regressor-adam": (MLPRegressor, {}),
    "regressor-float32-two-outputs": (MLPRegressor, {"dtype": "float32"}),
    "regressor-sgd-relu-output": (MLPRegressor, {"solver": "sgd", "learning_rate_init": 0.01,
                                                 "output_activation": "relu"}),
    "classifier-signed-square": (MLPClassifier, {"loss": "squared_error"}),
    "classifier-hinge": (MLPClassifier, {"loss": "hinge"}),
    "regressor-poisson": (MLPRegressor, {"loss": "poisson"}),
    "classifier-signed-square-binary": (MLPClassifier, {"loss": "squared_error"}),
}


@pytest.mark.parametrize("config", sorted(SCALED_CONFIGS))
@pytest.mark.parametrize("weighted", [False, True])
def test_scaled_loss_direct_step_fits_exactly_as_the_graph(monkeypatch, digits, config,
                                                           weighted):
    X, y = digits
    cls, extra = SCALED_CONFIGS[config]
    if "poisson" in config:
        target = (y % 4).astype(float)  # counts
    elif cls is MLPRegressor:
        target = np.stack([y / 9.0, (y % 3) / 2.0], axis=1) if "two" in config else y / 9.0
    elif "multilabel" in config:
        target = np.stack([y % 2, (y > 4), (y % 3 == 0)], axis=1).astype(int)
    else:
        target = y % 2 if "binary" in config else y
    kw = {}
    if weighted:
        w = np.random.default_rng(3).uniform(0.0, 2.0, len(y))
        w[:5] = 0.0
        kw["sample_weight"] = w
    make = lambda: cls(hidden_layer_sizes=(16,), max_iter=5, random_state=0, tol=0.0,
                       batch_size=64, **extra)
    calls = _calls(monkeypatch)
    direct = _fit(monkeypatch, False, make, X, target, **kw)
    assert calls, "this fit should take the graph-free step"
    graph = _fit(monkeypatch, True, make, X, target, **kw)
    assert direct.loss_curve_ == graph.loss_curve_  # exact, not approximate
    for a, b in zip(direct.coefs_ + direct.intercepts_, graph.coefs_ + graph.intercepts_):
        np.testing.assert_array_equal(a, b)
        assert np.isfinite(a).all()


def test_a_frozen_layer_takes_the_graph_and_stays_frozen(monkeypatch, digits):
    """A layer the user froze between warm fits gets no gradient on the graph; the graph-free
    step, which would train it, is not taken."""
    X, y = digits
    est = MLPClassifier(hidden_layer_sizes=(12,), max_iter=3, warm_start=True, alpha=0.0,
                        random_state=0).fit(X, y)
    first = est.network_.linears[0]
    first.requires_grad_(False)
    before = first.weight.data.copy(), first.bias.data.copy()
    second = est.network_.linears[1].weight.data.copy()
    calls = _calls(monkeypatch)
    est.fit(X, y)
    assert not calls
    np.testing.assert_array_equal(first.weight.data, before[0])
    np.testing.assert_array_equal(first.bias.data, before[1])
    assert not np.array_equal(est.network_.linears[1].weight.data, second)


@pytest.mark.parametrize("graph", [False, True], ids=["direct", "graph"])
def test_partial_fit_after_network_is_replaced_or_moved(monkeypatch, digits, graph):
    """partial_fit keeps its optimizer between calls, over the flat buffer the layers view; when
    the user replaced network_ or rebound its arrays (to()), it starts a new one instead of
    updating arrays the network no longer holds."""
    import chainrule as cr

    X, y = digits
    if graph:
        monkeypatch.setattr(_base, "direct_step", lambda *a, **k: None)
    est = MLPClassifier(hidden_layer_sizes=(12,), random_state=0)
    est.partial_fit(X, y, classes=np.unique(y))
    est.network_.to(dtype=est.network_.linears[0].weight.dtype)  # same dtype: new arrays
    w = est.network_.linears[0].weight
    before = w.data.copy()
    est.partial_fit(X, y)
    assert est.network_.linears[0].weight is w
    assert not np.array_equal(w.data, before), "the moved network was not trained"
    fresh = cr.nn.MLP([X.shape[1], 12, 10], dtype=str(before.dtype))
    est.network_ = fresh
    before = fresh.linears[1].weight.data.copy()
    est.partial_fit(X, y)
    assert not np.array_equal(fresh.linears[1].weight.data, before)
    assert np.isfinite(est.loss_curve_).all()
