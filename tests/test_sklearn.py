"""chainrule.sklearn: scikit-learn's own estimator checks, agreement with scikit-learn's MLP
step for step, sample and class weights, early stopping, partial_fit, warm_start, pickling and
export, dtypes, multilabel and multi-output targets, the other losses, and the errors."""

from __future__ import annotations

import importlib.util
import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.estimator_checks import parametrize_with_checks

import chainrule as cr
from chainrule.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# ----------------------------------------------------------------------------- estimator checks
# The defaults, a float64 configuration of chainrule's additions that passes every check, and a
# float32 + dropout configuration with one expected failure (see SAMPLE_WEIGHT_XFAIL).
CLASSIFIER_OPTIONS = MLPClassifier(
    hidden_layer_sizes=(16, 8), activation="leaky_relu", solver="sgd", learning_rate_init=0.05,
    max_iter=60, loss="squared_error", checkpoint_segments=2)
REGRESSOR_OPTIONS = MLPRegressor(
    hidden_layer_sizes=(16, 8), activation="tanh", solver="rmsprop", learning_rate_init=0.01,
    max_iter=60, checkpoint_segments=2, output_activation="identity")
CLASSIFIER_FLOAT32 = MLPClassifier(
    hidden_layer_sizes=(32,), activation="elu", solver="adamw", learning_rate_init=0.01,
    max_iter=60, loss="hinge", dropout=0.1, dtype="float32")
REGRESSOR_FLOAT32 = MLPRegressor(
    hidden_layer_sizes=(32,), activation="gelu", learning_rate_init=0.01, max_iter=60,
    dropout=0.1, dtype="float32")

SAMPLE_WEIGHT_XFAIL = (
    "fitting with integer sample weights and fitting on the correspondingly repeated rows agree "
    "only to the arithmetic's precision, and this check compares at rtol=1e-7, below float32's "
    "resolution (eps = 1.2e-7); dropout also draws its masks per row, so repeated rows get "
    "other masks than one weighted row. The float64 configurations pass it, and "
    "test_sample_weight_two_equals_duplicated_row checks the equivalence for float32 at float32 "
    "tolerance")


def expected_failures(estimator):
    """The checks each instance is declared to fail, with the reason (strict: they must fail)."""
    if estimator.get_params()["dtype"] == "float32" and estimator.get_params()["dropout"] > 0:
        return {"check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_XFAIL,
                "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHT_XFAIL}
    return {}


@parametrize_with_checks(
    [MLPClassifier(), MLPRegressor(), CLASSIFIER_OPTIONS, REGRESSOR_OPTIONS, CLASSIFIER_FLOAT32,
     REGRESSOR_FLOAT32],
    expected_failed_checks=expected_failures, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def small_net(**kwargs):
    """A fast configuration for behaviour tests (full-batch unless batch_size is given)."""
    params = dict(hidden_layer_sizes=(8,), random_state=0, max_iter=30, tol=0.0)
    params.update(kwargs)
    return params


def assert_same_fit(a, b, rtol=1e-10, atol=1e-12):
    for c1, c2 in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(c1, c2, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- scikit-learn parity
@pytest.mark.parametrize("target", ["binary", "multiclass", "multilabel", "regression"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_matches_sklearn_mlp_step_for_step(digits, target, momentum):
    """Same random_state: same initial weights, batches, penalty and loss, hence (with SGD,
    whose update is the same in both) the same loss curve and weights to rounding."""
    X, y = digits
    X = X[:400]
    targets = {"binary": y[:400] % 2, "multiclass": y[:400],
               "multilabel": np.c_[y[:400] % 2, y[:400] < 5, y[:400] % 3 == 0].astype(int),
               "regression": X[:, 20:23] @ [1.0, -2.0, 0.5]}
    params = dict(hidden_layer_sizes=(12, 7), solver="sgd", momentum=momentum, batch_size=64,
                  learning_rate_init=0.05, max_iter=8, alpha=1e-3, random_state=3, tol=0.0)
    ours_cls, theirs_cls = ((MLPRegressor, SkMLPRegressor) if target == "regression"
                            else (MLPClassifier, SkMLPClassifier))
    ours = ours_cls(**params).fit(X, targets[target])
    theirs = theirs_cls(**params).fit(X, targets[target])
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    assert_same_fit(ours, theirs)
    assert ours.n_iter_ == theirs.n_iter_ and ours.t_ == theirs.t_
    assert ours.out_activation_ == theirs.out_activation_
    if target == "regression":
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)


def test_stopping_rule_matches_sklearn(iris):
    """tol / n_iter_no_change on the training loss stop both at the same epoch."""
    X, y = iris
    params = dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.1, tol=1e-3,
                  n_iter_no_change=3, max_iter=500, random_state=0)
    ours = MLPClassifier(**params).fit(X, y)
    theirs = SkMLPClassifier(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 500
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-10)


def test_convergence_warning_at_max_iter(iris):
    X, y = iris
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(3\\) reached"):
        MLPClassifier(**small_net(max_iter=3)).fit(X, y)


def test_verbose_prints_losses(iris, capsys):
    X, y = iris
    MLPClassifier(**small_net(max_iter=2, verbose=True)).fit(X, y)
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Iteration 2, loss = " in out


# ----------------------------------------------------------------------------- sample weights
@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 2e-4)])
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_sample_weight_two_equals_duplicated_row(iris, dtype, rtol, solver):
    """Full-batch training: weight 2 on a row is the row twice, weight 0 is the row removed."""
    X, y = iris
    w = np.ones(len(y))
    w[[3, 70, 140]] = 2.0
    w[[5, 77]] = 0.0
    keep = np.repeat(np.arange(len(y)), w.astype(int))
    params = small_net(solver=solver, dtype=dtype, learning_rate_init=0.01)  # one batch
    weighted = MLPClassifier(**params).fit(X, y, sample_weight=w)
    repeated = MLPClassifier(**params).fit(X[keep], y[keep])
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=rtol)
    assert_same_fit(weighted, repeated, rtol=rtol, atol=rtol)
    unweighted = MLPClassifier(**params).fit(X, y)
    assert not np.allclose(weighted.coefs_[0], unweighted.coefs_[0], rtol=1e-4)


def test_sample_weight_regressor(digits):
    X, _ = digits
    X = X[:150]
    y = X[:, 10] - X[:, 30]
    w = np.r_[np.full(50, 2.0), np.ones(100)]
    keep = np.repeat(np.arange(150), w.astype(int))
    params = small_net(solver="sgd")  # one batch
    weighted = MLPRegressor(**params).fit(X, y, sample_weight=w)
    repeated = MLPRegressor(**params).fit(X[keep], y[keep])
    assert_same_fit(weighted, repeated)


def test_sample_weight_errors(iris):
    X, y = iris
    clf = MLPClassifier(**small_net(max_iter=2))
    with pytest.raises(ValueError, match="sample_weight"):
        clf.fit(X, y, sample_weight=np.ones(len(y) - 1))
    with pytest.raises(ValueError, match="Negative values"):
        clf.fit(X, y, sample_weight=-np.ones(len(y)))
    with pytest.raises(ValueError, match="at least one non-zero"):
        clf.fit(X, y, sample_weight=np.zeros(len(y)))


# ----------------------------------------------------------------------------- class weights
def test_class_weight_is_a_sample_weight_per_class(iris):
    X, y = iris
    params = small_net(batch_size=32)
    by_class = MLPClassifier(class_weight={0: 3.0, 1: 0.5, 2: 1.0}, **params).fit(X, y)
    by_sample = MLPClassifier(**params).fit(X, y, sample_weight=np.array([3.0, 0.5, 1.0])[y])
    assert_same_fit(by_class, by_sample)
    balanced = MLPClassifier(class_weight="balanced", **params).fit(X[:120], y[:120])
    manual = MLPClassifier(**params).fit(
        X[:120], y[:120], sample_weight=compute_sample_weight("balanced", y[:120]))
    assert_same_fit(balanced, manual)
    # multiplied into sample_weight
    sw = np.linspace(0.5, 2.0, len(y))
    both = MLPClassifier(class_weight={0: 3.0, 1: 0.5, 2: 1.0}, **params).fit(X, y,
                                                                              sample_weight=sw)
    product = MLPClassifier(**params).fit(X, y, sample_weight=sw * np.array([3.0, 0.5, 1.0])[y])
    assert_same_fit(both, product)


def test_balanced_class_weight_helps_the_minority_class():
    X, y = make_classification(n_samples=600, n_features=6, weights=[0.92, 0.08],
                               class_sep=0.6, random_state=1)
    params = dict(hidden_layer_sizes=(16,), max_iter=150, random_state=0)
    plain = MLPClassifier(**params).fit(X, y)
    balanced = MLPClassifier(class_weight="balanced", **params).fit(X, y)
    recall = lambda m: (m.predict(X)[y == 1] == 1).mean()  # noqa: E731
    assert recall(balanced) > recall(plain) + 0.1
    assert (balanced.predict(X) == 1).mean() > (plain.predict(X) == 1).mean()


def test_class_weight_errors(iris):
    X, y = iris
    with pytest.raises(ValueError, match="not supported for partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="multilabel"):
        MLPClassifier(class_weight="balanced", max_iter=2).fit(X, np.c_[y == 0, y == 1])
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="uniform").fit(X, y)


# ----------------------------------------------------------------------------- early stopping
def _validation_split(est, X, y):
    """The held-out rows, drawn as the estimator draws them: after the initial weights, from
    the same RandomState (scikit-learn's order)."""
    rng = np.random.RandomState(est.random_state)
    sizes = [X.shape[1], *est.hidden_layer_sizes, est.n_outputs_]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        rng.uniform(size=(fan_in, fan_out))
        rng.uniform(size=fan_out)
    _, val = train_test_split(np.arange(len(y)), random_state=rng,
                              test_size=est.validation_fraction, stratify=y)
    return val


def test_early_stopping_restores_the_best_weights(digits):
    X, y = digits
    X, y = X[:600], y[:600]
    clf = MLPClassifier(hidden_layer_sizes=(20,), early_stopping=True, validation_fraction=0.2,
                        learning_rate_init=0.02, n_iter_no_change=6, tol=0.0, max_iter=200,
                        random_state=0).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == len(clf.loss_curve_) == len(clf.validation_loss_curve_) == clf.n_iter_
    assert clf.n_iter_ < 200  # stopped early
    best = int(np.argmax(scores))
    assert best < clf.n_iter_ - 1 and clf.best_validation_score_ == scores[best]
    assert clf.best_loss_ is None
    val = _validation_split(clf, X, y)
    # the model left behind is the best epoch's, not the last one's
    assert clf.score(X[val], y[val]) == pytest.approx(clf.best_validation_score_)
    assert np.all(np.diff(clf.validation_loss_curve_[:3]) < 0)


def test_early_stopping_on_validation_loss(digits):
    X, y = digits
    X, y = X[:600], y[:600]
    clf = MLPClassifier(hidden_layer_sizes=(20,), early_stopping=True, validation_metric="loss",
                        validation_fraction=0.2, learning_rate_init=0.05, n_iter_no_change=4,
                        tol=0.0, max_iter=200, random_state=1).fit(X, y)
    assert clf.validation_scores_ == clf.validation_loss_curve_
    assert clf.best_validation_score_ == min(clf.validation_loss_curve_)
    val = _validation_split(clf, X, y)
    proba = clf.predict_proba(X[val])
    val_loss = -np.mean(np.log(proba[np.arange(len(val)), y[val]]))
    assert val_loss == pytest.approx(clf.best_validation_score_, rel=1e-6)


def test_early_stopping_regressor_mse(digits):
    X, _ = digits
    y = X[:, 20] * 3 + X[:, 35]
    reg = MLPRegressor(hidden_layer_sizes=(16,), early_stopping=True, validation_metric="mse",
                       max_iter=300, random_state=0, n_iter_no_change=5).fit(X, y)
    assert reg.best_validation_score_ == min(reg.validation_scores_)
    # with the squared error loss, the validation loss is half the validation MSE
    np.testing.assert_allclose(reg.validation_loss_curve_, np.array(reg.validation_scores_) / 2,
                               rtol=1e-10)
    assert reg.validation_scores_[-1] < reg.validation_scores_[0] / 5


@pytest.mark.parametrize("kind", ["multiclass", "binary", "strings", "multilabel"])
@pytest.mark.parametrize("weighted", [False, True])
def test_validation_accuracy_and_labels_are_sklearns(digits, kind, weighted):
    """The per-epoch validation accuracy and the predicted labels skip scikit-learn's input
    checks on their common paths: they must equal accuracy_score and
    LabelBinarizer.inverse_transform exactly."""
    from sklearn.metrics import accuracy_score

    X, y = digits
    X, y = X[:300], y[:300]
    y = {"multiclass": y, "binary": y % 2, "strings": np.array([f"c{v}" for v in y]),
         "multilabel": np.c_[y % 2, y < 5].astype(int)}[kind]
    clf = MLPClassifier(**small_net(max_iter=5)).fit(X, y)
    rng = np.random.default_rng(0)
    d = clf._decision_values(X) + rng.normal(scale=0.5, size=(len(X), clf.n_outputs_))
    d[:3] = 0.0  # ties: the first class, as argmax and LabelBinarizer pick it
    sw = rng.uniform(0.1, 2.0, len(X)) if weighted else None
    want_labels = clf._label_binarizer.inverse_transform(d, threshold=0.0)
    np.testing.assert_array_equal(clf._labels(d), want_labels)
    assert clf._labels(d).dtype == want_labels.dtype
    assert clf._score_val(d, y, sw) == accuracy_score(y, want_labels, sample_weight=sw)
    assert np.isnan(clf._score_val(np.full_like(d, np.nan), y, sw))


def test_early_stopping_errors(iris):
    X, y = iris
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        MLPClassifier(early_stopping=True).partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="validation set is too small"):
        MLPRegressor(early_stopping=True, validation_fraction=0.01).fit(X[:60], y[:60])


# ----------------------------------------------------------------------------- partial_fit
def test_partial_fit_continues_the_same_training(iris):
    X, y = iris
    params = small_net(solver="adam", shuffle=False, batch_size=40, learning_rate_init=0.01)
    full = MLPClassifier(**{**params, "max_iter": 4}).fit(X, y)
    inc = MLPClassifier(**params)
    for _ in range(4):
        inc.partial_fit(X, y, classes=np.unique(y))
        assert inc.n_iter_ == 1
    assert len(inc.loss_curve_) == 4
    np.testing.assert_allclose(inc.loss_curve_, full.loss_curve_, rtol=1e-12)
    assert_same_fit(inc, full)


def test_partial_fit_classes(iris):
    X, y = iris
    clf = MLPClassifier(**small_net())
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        clf.partial_fit(X, y)
    first = y < 2
    clf.partial_fit(X[first], y[first], classes=[0, 1, 2])  # class 2 not seen yet
    assert clf.predict_proba(X).shape == (len(y), 3)
    clf.partial_fit(X, y)
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    with pytest.raises(ValueError, match="not the same as on last call"):
        clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X, np.where(y == 2, 5, y))


def test_partial_fit_regressor_and_features(digits):
    X, _ = digits
    y = X[:, 5]
    reg = MLPRegressor(**small_net())
    for start in range(0, 600, 200):
        reg.partial_fit(X[start:start + 200], y[start:start + 200])
    assert len(reg.loss_curve_) == 3 and reg.t_ == 600
    with pytest.raises(ValueError, match="features"):
        reg.partial_fit(X[:10, :5], y[:10])


# ----------------------------------------------------------------------------- warm_start
def test_warm_start_continues_from_the_previous_fit(iris):
    X, y = iris
    params = small_net(solver="sgd", momentum=0.0, shuffle=False, batch_size=50)
    ten = MLPClassifier(**{**params, "max_iter": 10}).fit(X, y)
    warm = MLPClassifier(**{**params, "max_iter": 5, "warm_start": True}).fit(X, y)
    warm.fit(X, y)
    assert len(warm.loss_curve_) == 10 and warm.n_iter_ == 5
    np.testing.assert_allclose(warm.loss_curve_, ten.loss_curve_, rtol=1e-12)
    assert_same_fit(warm, ten)
    cold = MLPClassifier(**{**params, "max_iter": 5}).fit(X, y)
    cold.fit(X, y)  # warm_start=False: starts over
    assert len(cold.loss_curve_) == 5
    with pytest.raises(ValueError, match="warm_start can only be used"):
        warm.fit(X[y < 2], y[y < 2])


@pytest.mark.parametrize("how", ["warm_start", "partial_fit"])
def test_warm_fit_after_early_stopping_tracks_the_training_loss(iris, how):
    # The first fit set the tracking up for early stopping (best_loss_ None); the warm fit
    # without it must track the best training loss from the curve so far (scikit-learn's MLP
    # fails here with a TypeError).
    X, y = iris
    clf = MLPClassifier(**small_net(early_stopping=True, max_iter=5)).fit(X, y)
    assert clf.best_loss_ is None
    before = min(clf.loss_curve_)
    clf.set_params(early_stopping=False)
    if how == "warm_start":
        clf.set_params(warm_start=True).fit(X, y)
    else:
        clf.partial_fit(X, y)
    assert clf.best_loss_ == min([before, *clf.loss_curve_[5:]])


def test_warm_fit_with_early_stopping_after_a_fit_without(iris):
    X, y = iris
    clf = MLPClassifier(**small_net(max_iter=5)).fit(X, y)
    assert clf.validation_scores_ is None
    clf.set_params(early_stopping=True, warm_start=True, max_iter=4, n_iter_no_change=100)
    clf.fit(X, y)
    assert len(clf.validation_scores_) == 4 and len(clf.validation_loss_curve_) == 4
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert len(clf.loss_curve_) == 9


# ----------------------------------------------------------------------------- pickling, export
def test_pickle_round_trip_keeps_predictions_and_training_state(iris, tmp_path):
    X, y = iris
    clf = MLPClassifier(**small_net(dropout=0.2, batch_size=50)).fit(X, y)
    clone_ = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(clone_.predict_proba(X), clf.predict_proba(X))
    assert clone_.get_params() == clf.get_params()
    # the optimizer state and the dropout stream travel too: training continues identically
    clf.partial_fit(X, y)
    clone_.partial_fit(X, y)
    assert_same_fit(clf, clone_, rtol=0, atol=0)
    assert clone_.loss_curve_ == clf.loss_curve_


def test_network_exports_with_chainrule_save(iris, tmp_path):
    X, y = iris
    clf = MLPClassifier(**small_net(hidden_layer_sizes=(7, 5), activation="tanh")).fit(X, y)
    path = cr.save(clf.network_, tmp_path / "iris.safetensors")
    net = cr.load(path)
    with cr.no_grad():
        logits = net(cr.tensor(X)).numpy()
    np.testing.assert_allclose(logits, clf.decision_function(X), rtol=1e-12)


def test_coefs_are_in_sklearn_layout(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(9, 6), activation="tanh", max_iter=5,
                        random_state=0).fit(X[:300], y[:300])
    assert [c.shape for c in clf.coefs_] == [(64, 9), (9, 6), (6, 10)]
    assert [b.shape for b in clf.intercepts_] == [(9,), (6,), (10,)]
    h = X[:50]
    for i, (W, b) in enumerate(zip(clf.coefs_, clf.intercepts_)):
        h = h @ W + b
        if i < 2:
            h = np.tanh(h)
    np.testing.assert_allclose(h, clf.decision_function(X[:50]), rtol=1e-12)
    assert clf.n_layers_ == 4 and clf.n_outputs_ == 10 and clf.out_activation_ == "softmax"


def test_not_fitted_errors():
    clf = MLPClassifier()
    for method in ("predict", "predict_proba", "decision_function"):
        with pytest.raises(NotFittedError):
            getattr(clf, method)(np.zeros((2, 3)))
    assert not hasattr(clf, "coefs_")


# ----------------------------------------------------------------------------- dtypes
def test_float32_input_stays_float32(iris):
    X, y = iris
    X32 = X.astype(np.float32)
    clf = MLPClassifier(**small_net()).fit(X32, y)
    assert all(c.dtype == np.float32 for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X32).dtype == np.float32
    assert clf.decision_function(X).dtype == np.float64  # outputs follow the input's dtype
    forced = MLPClassifier(**small_net(dtype="float32")).fit(X, y)
    assert forced.coefs_[0].dtype == np.float32 and forced.network_.linears[0].weight.dtype == \
        np.float32
    # float64 input: computed in float64 from the float32 weights (NumPy's promotion)
    np.testing.assert_allclose(forced.predict_proba(X), forced.predict_proba(X32), rtol=1e-5)
    assert forced.predict_proba(X).dtype == np.float64
    double = MLPClassifier(**small_net(dtype="float64")).fit(X32, y)
    assert double.coefs_[0].dtype == np.float64
    assert MLPClassifier(**small_net()).fit(X, y).coefs_[0].dtype == np.float64
    reg = MLPRegressor(**small_net()).fit(X32, X32[:, 0])
    assert reg.predict(X32).dtype == np.float32


def test_device(iris):
    """The GPU path where CuPy is installed; a clear error where it is not."""
    X, y = iris
    params = small_net(batch_size=50)
    if importlib.util.find_spec("cupy") is None:
        with pytest.raises(ValueError, match="CuPy"):
            MLPClassifier(device="cuda", **params).fit(X, y)
    else:
        gpu = MLPClassifier(device="cuda", **params).fit(X, y)
        cpu = MLPClassifier(device="cpu", **params).fit(X, y)
        assert_same_fit(gpu, cpu, rtol=1e-6, atol=1e-8)
        assert isinstance(pickle.loads(pickle.dumps(gpu)).coefs_[0], np.ndarray)


def test_sparse_input_fits_like_dense(iris):
    X, y = iris
    params = small_net(batch_size=40)
    dense = MLPClassifier(**params).fit(X, y)
    sparse = MLPClassifier(**params).fit(sp.csr_matrix(X), y)
    assert_same_fit(dense, sparse)
    np.testing.assert_allclose(sparse.predict_proba(sp.csc_matrix(X)), dense.predict_proba(X),
                               rtol=1e-12)


# ----------------------------------------------------------------------------- targets and losses
def test_multilabel_classification(digits):
    X, y = digits
    Y = np.c_[y % 2, y >= 5, np.isin(y, [0, 6, 8, 9])].astype(int)
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=60, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == Y.shape and clf.out_activation_ == "logistic"
    proba = clf.predict_proba(X)
    assert proba.shape == Y.shape and proba.min() >= 0 and proba.max() <= 1
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    assert (clf.predict(X) == Y).mean() > 0.95
    sq = MLPClassifier(hidden_layer_sizes=(32,), loss="squared_error", max_iter=60,
                       random_state=0).fit(X, Y)
    np.testing.assert_array_equal(sq.predict(X), (sq.decision_function(X) > 0).astype(int))
    assert (sq.predict(X) == Y).mean() > 0.95


def test_multioutput_regression():
    X, Y = make_regression(n_samples=300, n_features=8, n_targets=3, noise=1.0,
                           random_state=0)
    X = StandardScaler().fit_transform(X)
    Y = Y / Y.std(axis=0)
    reg = MLPRegressor(hidden_layer_sizes=(32,), max_iter=200, learning_rate_init=0.01,
                       random_state=0).fit(X, Y)
    assert reg.predict(X).shape == (300, 3) and reg.n_outputs_ == 3
    assert reg.score(X, Y) > 0.95
    # the loss is half the squared error averaged over samples and outputs (scikit-learn's)
    half_mse = 0.5 * np.mean((reg.predict(X) - Y) ** 2)
    penalty = 0.5 * reg.alpha * sum((c ** 2).sum() for c in reg.coefs_) / 200
    assert reg.loss_ == pytest.approx(half_mse + penalty, rel=0.2)


def test_binary_square_loss_predicts_sign_of_h(iris):
    """The lecture's setting: targets -1/+1, h(x) = tanh(s), e = (h - y)^2, g(x) = sign(h(x))."""
    X, y = iris
    y2 = np.where(y == 0, "setosa", "other")
    clf = MLPClassifier(hidden_layer_sizes=(5,), loss="squared_error", max_iter=100,
                        learning_rate_init=0.01, random_state=0).fit(X, y2)
    h = clf.decision_function(X)
    assert h.shape == (len(y),) and np.abs(h).max() <= 1 and clf.out_activation_ == "tanh"
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(h > 0).astype(int)])
    assert clf.score(X, y2) == 1.0
    assert not hasattr(clf, "predict_proba") and not hasattr(clf, "predict_log_proba")
    # the reported loss is the lecture's mean of (h - y)^2 (plus the tiny penalty)
    t = np.where(y2 == clf.classes_[1], 1.0, -1.0)
    assert clf.loss_ == pytest.approx(np.mean((h - t) ** 2), abs=0.02)
    linear = MLPClassifier(hidden_layer_sizes=(5,), loss="squared_error",
                           output_activation="identity", max_iter=50, random_state=0).fit(X, y2)
    assert linear.out_activation_ == "identity" and np.abs(linear.decision_function(X)).max() > 1
    with pytest.raises(ValueError, match="for the square loss"):  # outputs must straddle 0
        MLPClassifier(loss="squared_error", output_activation="relu").fit(X, y2)


@pytest.mark.parametrize("solver", ["adamw", "rmsprop", "adagrad", "sgd"])
@pytest.mark.parametrize("loss", ["log_loss", "hinge"])
def test_other_solvers_and_losses_learn(iris, solver, loss):
    X, y = iris
    lr = 0.05 if solver in ("sgd", "adagrad") else 0.01
    clf = MLPClassifier(hidden_layer_sizes=(16,), solver=solver, loss=loss, max_iter=80,
                        learning_rate_init=lr, activation="leaky_relu", random_state=0)
    assert clf.fit(X, y).score(X, y) > 0.93


def test_adamw_decays_weights_not_biases():
    X = np.zeros((20, 3))
    y = np.arange(20) % 2
    params = dict(hidden_layer_sizes=(), solver="adamw", max_iter=5, learning_rate_init=0.1,
                  random_state=0, shuffle=False)
    clf = MLPClassifier(alpha=0.5, **params).fit(X, y)
    free = MLPClassifier(alpha=0.0, **params).fit(X, y)
    # zero input to a linear model: the weights get no gradient, only the decoupled decay, and
    # the bias, which alone decides the loss, moves as without decay
    np.testing.assert_allclose(clf.coefs_[0], free.coefs_[0] * (1 - 0.1 * 0.5) ** 5, rtol=1e-6)
    np.testing.assert_allclose(clf.intercepts_[0], free.intercepts_[0], rtol=1e-12)
    assert clf.loss_curve_[0] == free.loss_curve_[0]  # no penalty term in the loss


def test_poisson_regression():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(400, 3))
    y = rng.poisson(np.exp(0.8 * X[:, 0] - 0.5 * X[:, 1]))
    reg = MLPRegressor(loss="poisson", hidden_layer_sizes=(8,), max_iter=300,
                       learning_rate_init=0.01, random_state=0).fit(X, y)
    assert reg.out_activation_ == "exp" and (reg.predict(X) > 0).all()
    mean = np.exp(0.8 * X[:, 0] - 0.5 * X[:, 1])
    assert np.corrcoef(reg.predict(X), mean)[0, 1] > 0.9
    with pytest.raises(ValueError, match="negative"):
        reg.fit(X, y - 1.0)
    with pytest.raises(ValueError, match="output_activation does not apply"):
        MLPRegressor(loss="poisson", output_activation="relu").fit(X, y)


def test_regressor_output_activation(digits):
    X, _ = digits
    y = np.abs(X[:, 20] - X[:, 43])
    reg = MLPRegressor(hidden_layer_sizes=(16,), output_activation="relu", max_iter=30,
                       random_state=0).fit(X, y)
    assert reg.out_activation_ == "relu" and (reg.predict(X) >= 0).all()


# ----------------------------------------------------------------------------- training options
def test_checkpointing_gives_the_same_fit(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(16, 12, 8), max_iter=4, random_state=0, batch_size=64,
                  dropout=0.1)
    plain = MLPClassifier(**params).fit(X[:500], y[:500])
    ckpt = MLPClassifier(checkpoint_segments=2, **params).fit(X[:500], y[:500])
    assert_same_fit(plain, ckpt, rtol=0, atol=0)


def test_dropout_is_reproducible_and_off_at_prediction(iris):
    X, y = iris
    a = MLPClassifier(**small_net(dropout=0.3)).fit(X, y)
    b = MLPClassifier(**small_net(dropout=0.3)).fit(X, y)
    c = MLPClassifier(**small_net()).fit(X, y)
    assert_same_fit(a, b, rtol=0, atol=0)
    assert not np.allclose(a.coefs_[0], c.coefs_[0])
    np.testing.assert_array_equal(a.predict_proba(X), a.predict_proba(X))
    assert not a.network_.training


@pytest.mark.parametrize("activation", ["logistic", "relu", "leaky_relu", "elu", "softplus",
                                        "gelu", "silu", "identity"])
def test_hidden_activations(iris, activation):
    X, y = iris
    clf = MLPClassifier(hidden_layer_sizes=(16,), activation=activation, max_iter=100,
                        learning_rate_init=0.01, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.9


def test_learning_rate_schedules(iris):
    X, y = iris
    inv = MLPClassifier(**small_net(solver="sgd", learning_rate="invscaling", power_t=0.5,
                                    max_iter=3))
    inv.fit(X, y)
    assert inv._optimizer.param_groups[0]["lr"] == pytest.approx(0.001 / (3 * 150 + 1) ** 0.5)
    adaptive = MLPClassifier(**small_net(solver="sgd", learning_rate="adaptive", tol=10.0,
                                         n_iter_no_change=1, max_iter=8))
    adaptive.fit(X, y)  # never improves by 10: the rate is divided by 5 every other epoch
    assert adaptive._optimizer.param_groups[0]["lr"] < 0.001 / 5 ** 2


# ----------------------------------------------------------------------------- scikit-learn tools
def test_pipeline_grid_search_and_cross_validation(iris):
    X, y = load_iris(return_X_y=True)
    pipe = Pipeline([("scale", StandardScaler()),
                      ("mlp", MLPClassifier(max_iter=60, learning_rate_init=0.01,
                                            random_state=0))])
    assert pipe.fit(X, y).score(X, y) > 0.93
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(4,), (16,)],
                               "mlp__activation": ["relu", "leaky_relu"]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.85 and len(grid.cv_results_["params"]) == 4
    assert isinstance(grid.best_estimator_[-1], MLPClassifier)
    scores = cross_val_score(make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=(16,), max_iter=150, learning_rate_init=0.01, random_state=0)),
        X[:, :3], X[:, 3], cv=KFold(3, shuffle=True, random_state=0))
    assert scores.shape == (3,) and scores.min() > 0.7


def test_clone_and_params():
    clf = MLPClassifier(hidden_layer_sizes=(3, 2), dropout=0.2, class_weight={0: 2.0},
                        dtype="float32", device="cpu")
    params = clone(clf).get_params()
    assert params["hidden_layer_sizes"] == (3, 2) and params["class_weight"] == {0: 2.0}
    assert set(SkMLPClassifier().get_params()) - set(params) == {"max_fun"}


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("param,value,match", [
    ("alpha", -1.0, "The 'alpha' parameter of MLPClassifier must be a float"),
    ("solver", "lbfgs", "The 'solver' parameter"),
    ("activation", "softmax", "The 'activation' parameter"),
    ("hidden_layer_sizes", (4, 0), "hidden_layer_sizes must be > 0"),
    ("hidden_layer_sizes", "wide", "hidden_layer_sizes"),
    ("max_iter", 0, "The 'max_iter' parameter"),
    ("dropout", 1.0, "The 'dropout' parameter"),
    ("dtype", "float16", "The 'dtype' parameter"),
    ("device", "tpu", "The 'device' parameter"),
    ("loss", "mse", "The 'loss' parameter"),
    ("validation_metric", "r2", "The 'validation_metric' parameter"),
    ("output_activation", "tanh", "output_activation does not apply"),
    ("batch_size", 0, "The 'batch_size' parameter"),
])
def test_parameter_errors(iris, param, value, match):
    X, y = iris
    with pytest.raises(ValueError, match=match):
        MLPClassifier(**{param: value}).fit(X, y)


def test_input_errors_are_sklearns(iris):
    X, y = iris
    clf = MLPClassifier(**small_net(max_iter=2)).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MLPClassifier().fit(np.where(X > 2, np.nan, X), y)
    with pytest.warns(UserWarning, match="clipped"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier(**small_net(batch_size=1000, max_iter=1)).fit(X, y)


# ----------------------------------------------------------------------------- subnormal numbers
def test_flush_subnormals_zeroes_only_subnormal_parameters_and_state():
    from chainrule.sklearn._optim import FlatParams

    net = cr.nn.MLP([3, 2, 2], dtype="float32")
    flat = FlatParams(net)
    tiny = np.finfo(np.float32).tiny
    base = flat.all.data
    planted = np.array([1e-40, -3e-39, tiny, -tiny, 1e-30, 0.0, 0.5, -0.0], dtype=np.float32)
    base[:8] = planted
    state = {"step": 3, "exp_avg": np.full(base.shape, 2e-42, np.float32),
             "exp_avg_sq": np.full(base.shape, 1e-20, np.float32)}

    class Opt:  # only what flush_subnormals reads
        pass

    opt = Opt()
    opt.state = {flat.all: state}
    flat.flush_subnormals(opt)
    expected = np.array([0.0, 0.0, tiny, -tiny, 1e-30, 0.0, 0.5, -0.0], dtype=np.float32)
    np.testing.assert_array_equal(base[:8], expected)
    assert (state["exp_avg"] == 0).all()
    assert (state["exp_avg_sq"] == np.float32(1e-20)).all()  # normal: untouched
    assert state["step"] == 3
    # the layers see it: their parameters are views of the flat buffer
    assert net.linears[0].weight.data.reshape(-1)[0] == 0


def test_subnormal_weights_do_not_survive_an_epoch(digits):
    """Weights of an input that is always zero (digits' pixel 0) with no Adam moments left: their
    gradient alpha W / n underflows to 0, so without the flush they would stay subnormal for
    good, and every product with them would take the CPU's slow path."""
    X, y = digits
    X, y = X[:400].astype(np.float32), y[:400]
    assert (X[:, 0] == 0).all()
    est = MLPClassifier(hidden_layer_sizes=(8,), dtype="float32", random_state=0)
    est.partial_fit(X, y, classes=np.arange(10))
    W = est.network_.linears[0].weight.data  # (8, 64), a view of the flat buffer
    W[:, 0] = 1e-40
    state = est._optimizer.state[est._flat.all]
    for name in ("exp_avg", "exp_avg_sq"):
        state[name][:W.size].reshape(W.shape)[:, 0] = 0
    est.partial_fit(X, y)
    np.testing.assert_array_equal(W[:, 0], 0)
    tiny = np.finfo(np.float32).tiny
    for a in [p.data for p in est.network_.parameters()] + [
            v for v in state.values() if hasattr(v, "shape")]:
        assert not ((np.abs(a) < tiny) & (a != 0)).any()


def test_unpickling_optimizer_state_of_another_layout_keeps_the_network(iris):
    """A pickle whose optimizer had other parameter groups (an older chainrule kept weights and
    biases in two) still loads: the network is restored, the optimizer state is dropped with a
    warning, and training can go on."""
    import copy as _copy

    X, y = iris
    est = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(X, y)
    state = _copy.deepcopy(est.__getstate__())
    groups = state["_optimizer"]["param_groups"]
    groups.append(dict(groups[0], params=[len(groups[0]["params"])]))
    restored = MLPClassifier.__new__(MLPClassifier)
    with pytest.warns(UserWarning, match="optimizer state .* dropped"):
        restored.__setstate__(state)
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    restored.partial_fit(X, y)
    assert np.isfinite(restored.loss_curve_).all()
