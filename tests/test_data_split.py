"""Splits, task inference, standardisation, one-hot and label encoding."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule.data import (
    Standardizer,
    encode_labels,
    infer_task,
    one_hot,
    split,
    split_indices,
)
from chainrule.errors import DTypeError, InvalidValueError, ShapeError


def _imbalanced(n_per=(600, 300, 100), d=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(m, c) for c, m in enumerate(n_per)])
    X = rng.standard_normal((len(y), d)) + y[:, None]
    order = rng.permutation(len(y))
    return X[order], y[order]


def test_split_sizes_and_disjoint_cover():
    X, y = _imbalanced()
    tr, va, te = split_indices(len(y), y, test_size=0.2, val_size=0.1, seed=0)
    assert (len(tr), len(va), len(te)) == (700, 100, 200)
    assert sorted(np.concatenate([tr, va, te]).tolist()) == list(range(1000))
    parts = split(X, y, fractions=(0.7, 0.1, 0.2), seed=0)
    assert parts.X_train.shape == (700, 3) and parts.X_val.shape == (100, 3)
    assert parts.X_test.shape == (200, 3)
    # rows stay paired with their labels
    rows = {tuple(r): lab for r, lab in zip(X, y)}
    assert all(rows[tuple(r)] == lab for r, lab in zip(parts.X_test, parts.y_test))
    no_val = split(X, y, test_size=0.25)
    assert no_val.X_val is None and no_val.y_val is None and len(no_val.y_test) == 250
    assert len(split(X, y, test_size=37).y_test) == 37      # an int is a count
    assert len(split(X[:10], y[:10], test_size=0.25, stratify=False).y_test) == 3  # rounds up


def test_stratified_split_keeps_class_proportions():
    X, y = _imbalanced()
    p = split(X, y, test_size=0.2, val_size=0.1, stratify=True, seed=4)
    for part, n in ((p.y_train, 700), (p.y_val, 100), (p.y_test, 200)):
        counts = np.bincount(part, minlength=3)
        np.testing.assert_array_equal(counts, np.array([0.6, 0.3, 0.1]) * n)
    # small, uneven case: every class within one sample of its exact share
    X, y = _imbalanced((13, 7, 5))
    p = split(X, y, test_size=0.3, seed=1)
    share = np.bincount(y) * len(p.y_test) / len(y)
    assert np.all(np.abs(np.bincount(p.y_test, minlength=3) - share) < 1)
    # without stratification, the proportions of a small test set drift
    drift = [np.bincount(split(X, y, test_size=0.3, stratify=False, seed=s).y_test,
                         minlength=3) for s in range(20)]
    assert any(np.any(np.abs(c - share) >= 1) for c in drift)


def test_split_is_seeded():
    X, y = _imbalanced()
    a, b = split(X, y, seed=3), split(X, y, seed=3)
    c = split(X, y, seed=4)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.X_train, c.X_train)
    t = split(cr.tensor(X.astype(np.float32)), cr.tensor(y), seed=3)
    assert isinstance(t.X_train, cr.Tensor)
    np.testing.assert_array_equal(t.y_train.numpy(), a.y_train)


def test_split_errors():
    X, y = _imbalanced()
    with pytest.raises(ShapeError, match="same number of rows"):
        split(X, y[:-1])
    with pytest.raises(InvalidValueError, match="none for training"):
        split(X, y, test_size=0.6, val_size=0.5)
    with pytest.raises(InvalidValueError, match="fractions"):
        split(X, y, fractions=(0.5, 0.2))
    with pytest.raises(InvalidValueError, match="not both"):
        split(X, y, fractions=(0.8, 0.2), test_size=0.1)
    with pytest.raises(InvalidValueError, match="test_size"):
        split(X, y, test_size=1.5)
    with pytest.raises(InvalidValueError, match="regression target"):
        split(X, X[:, 0], stratify=True)
    with pytest.raises(InvalidValueError, match="only 1 sample"):
        split(X[:5], np.array([0, 0, 1, 1, 2]))


def test_infer_task():
    assert infer_task(np.array([0, 1, 1, 2])) == "classification"
    assert infer_task(np.array([1.0, 0.0, 2.0])) == "classification"
    assert infer_task(np.array(["cat", "dog"])) == "classification"
    assert infer_task(np.array([0.5, 1.2, 3.3])) == "regression"
    assert infer_task(np.arange(100)) == "regression"       # too many distinct values
    assert infer_task(np.arange(100), max_classes=100) == "classification"


def test_standardizer_fits_on_train_only():
    rng = np.random.default_rng(0)
    X_train = (rng.standard_normal((500, 3)) * [1, 5, 0.1] + [2, -3, 10]).astype(np.float32)
    X_test = (X_train[:50] + 100).astype(np.float32)      # a shifted test set
    st = Standardizer().fit(X_train)
    Z = st.transform(X_train)
    assert Z.dtype == np.float32
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(st.mean, X_train.astype(np.float64).mean(0))
    # the test set is transformed with the training statistics, so its mean is not 0
    Zt = st.transform(X_test)
    np.testing.assert_allclose(Zt, (X_test - st.mean) / st.scale, rtol=1e-5)
    assert np.all(Zt.mean(0) > 5)
    np.testing.assert_allclose(st.inverse_transform(Z), X_train, rtol=1e-5, atol=1e-5)


def test_standardizer_constant_feature_and_state():
    X = np.array([[1.0, 7.0], [2.0, 7.0], [3.0, 7.0]])
    st = Standardizer().fit(X)
    Z = st.transform(X)
    assert np.all(np.isfinite(Z)) and np.all(Z[:, 1] == 0)
    assert st.scale[1] == 1.0
    state = st.state_dict()
    assert set(state) == {"mean", "scale"} and all(isinstance(v, np.ndarray) for v in state.values())
    st2 = Standardizer().load_state_dict(state)
    np.testing.assert_array_equal(st2.transform(X), Z)
    t = st2.transform(cr.tensor(X))                        # tensors in, tensors out
    assert isinstance(t, cr.Tensor) and t.dtype == np.float64
    assert Standardizer().fit_transform(np.arange(6).reshape(3, 2)).dtype == np.float32


def test_standardizer_errors():
    with pytest.raises(InvalidValueError, match="before fit"):
        Standardizer().transform(np.zeros((2, 2)))
    st = Standardizer().fit(np.random.default_rng(0).standard_normal((4, 3)))
    with pytest.raises(ShapeError, match=r"fitted on features of shape \(3,\)"):
        st.transform(np.zeros((2, 4)))
    with pytest.raises(InvalidValueError, match="NaN"):
        Standardizer().fit(np.array([[1.0], [np.nan]]))
    with pytest.raises(InvalidValueError, match="scale positive"):
        Standardizer().load_state_dict({"mean": np.zeros(2), "scale": np.zeros(2)})
    with pytest.raises(InvalidValueError, match="'mean' and 'scale'"):
        Standardizer().load_state_dict({"mean": np.zeros(2)})
    with pytest.raises(DTypeError):
        Standardizer().fit(np.array([["a"]]))


def test_one_hot():
    out = one_hot(np.array([2, 0, 1, 2]), 4)
    assert out.dtype == np.float32 and out.shape == (4, 4)
    np.testing.assert_array_equal(out.argmax(1), [2, 0, 1, 2])
    np.testing.assert_array_equal(out.sum(1), 1)
    assert one_hot(np.array([0, 3])).shape == (2, 4)
    t = one_hot(cr.tensor([1, 0]), 2, dtype="float64")
    assert isinstance(t, cr.Tensor) and t.dtype == np.float64
    with pytest.raises(InvalidValueError, match="out of range"):
        one_hot(np.array([0, 5]), 3)
    with pytest.raises(InvalidValueError, match="negative"):
        one_hot(np.array([-1, 0]), 3)
    with pytest.raises(InvalidValueError, match="integers"):
        one_hot(np.array([0.5]), 3)


def test_encode_labels_round_trip():
    y = np.array(["dog", "cat", "dog", "bird"])
    idx, classes = encode_labels(y)
    assert classes.tolist() == ["bird", "cat", "dog"]
    assert idx.dtype == np.int64 and idx.tolist() == [2, 1, 2, 0]
    np.testing.assert_array_equal(classes[idx], y)
