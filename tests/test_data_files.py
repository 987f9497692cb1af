"""User data: CSV and NPZ happy paths and every documented error, with its message."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.data import load_csv, load_dataset, load_npz, read_csv
from chainrule.data.reader import InputFileError
from chainrule.errors import InvalidValueError


def _csv(tmp_path, text, name="data.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _classification_csv(n=40):
    rows = ["a,b,label"]
    for i in range(n):
        rows.append(f"{i * 0.5},{-i},{'cat' if i % 2 else 'dog'}")
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------- CSV happy paths
def test_csv_with_string_labels(tmp_path):
    p = _csv(tmp_path, _classification_csv())
    b = load_csv(p, target="label")
    assert b.task == "classification" and b.num_classes == 2
    assert b.class_names == ("cat", "dog")                 # index -> original label
    assert b.feature_names == ("a", "b")
    assert b.X_train.shape == (30, 2) and b.X_test.shape == (10, 2)
    assert b.X_train.dtype == np.float32 and b.y_train.dtype == np.int64
    # the mapping is right: odd i were 'cat' (index 0), and b == -i
    for x, yv in zip(b.X_train, b.y_train):
        assert b.class_names[yv] == ("cat" if int(-x[1]) % 2 else "dog")
    assert np.bincount(b.y_test).tolist() == [5, 5]         # stratified
    assert b.name == "data" and b.source == str(p)


def test_csv_regression_target_and_task_override(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["x1,x2,price"] + [f"{a:.4f},{c:.4f},{a * 3 + c:.4f}"
                               for a, c in rng.standard_normal((50, 2))]
    p = _csv(tmp_path, "\n".join(lines))
    b = load_dataset(p, target="price", test_size=0.2, val_size=0.2)
    assert b.task == "regression" and b.num_classes is None and b.class_names is None
    assert b.y_train.dtype == np.float32 and b.y_train.shape == (30,)
    assert b.X_val.shape == (10, 2) and b.X_test.shape == (10, 2)
    np.testing.assert_allclose(b.y_train, b.X_train[:, 0] * 3 + b.X_train[:, 1], atol=1e-3)
    # integer targets with few values are classes unless told otherwise
    p2 = _csv(tmp_path, "x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)), "ints.csv")
    assert load_csv(p2, target="y").task == "classification"
    r = load_csv(p2, target="y", task="regression")
    assert r.task == "regression" and r.y_train.dtype == np.float32


def test_csv_numeric_labels_are_reindexed_and_whitespace_quotes_ok(tmp_path):
    text = 'f1, "f 2" ,grade\n' + "".join(f' {i}, "{i * 2}" ,{1 + i % 3}\n' for i in range(12))
    p = _csv(tmp_path, text + "\n\n")                   # trailing blank lines are ignored
    b = load_csv(p, target="grade", test_size=3)
    assert b.feature_names == ("f1", "f 2")
    assert b.class_names == ("1.0", "2.0", "3.0") and set(b.y_train.tolist()) == {0, 1, 2}
    assert b.X_train.shape == (9, 2)


def test_read_csv_keeps_raw_values(tmp_path):
    p = _csv(tmp_path, _classification_csv(4))
    raw = read_csv(p, "label")
    assert raw.X.dtype == np.float64 and raw.X.shape == (4, 2)
    assert raw.y.tolist() == ["dog", "cat", "dog", "cat"]


# ---------------------------------------------------------------- CSV errors
def test_csv_missing_target_column(tmp_path):
    p = _csv(tmp_path, _classification_csv())
    with pytest.raises(InvalidValueError,
                       match=r"data\.csv: target column 'class' is not in the header; "
                             r"the columns are: a, b, label"):
        load_csv(p, target="class")
    with pytest.raises(InvalidValueError, match=r"target=.*columns are: a, b, label"):
        load_csv(p)


def test_csv_non_numeric_feature(tmp_path):
    p = _csv(tmp_path, "a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(InputFileError,
                       match=r"data\.csv, line 3, column 'b': 'oops' is not a number"):
        load_csv(p, target="label")


def test_csv_text_column_is_one_hot_encoded(tmp_path):
    p = _csv(tmp_path, "a,color,label\n" + "".join(
        f"{i},{'red' if i % 3 else 'blue'},{i % 2}\n" for i in range(20)))
    raw = read_csv(p, "label")
    assert raw.feature_names == ("a", "color=blue", "color=red")
    np.testing.assert_array_equal(raw.X[:4], [[0, 1, 0], [1, 0, 1], [2, 0, 1], [3, 1, 0]])


@pytest.mark.parametrize("cell, problem", [
    ("", "missing value"),
    ("NaN", "missing value"),
    ("NA", "missing value"),
    ("inf", "inf is not a finite number"),
])
def test_csv_missing_and_nonfinite_cells(tmp_path, cell, problem):
    p = _csv(tmp_path, f"a,b,label\n1,2,0\n3,4,1\n5,{cell},0\n")
    with pytest.raises(InputFileError, match=rf"data\.csv, line 4, column 'b': {problem}"):
        load_csv(p, target="label")


def test_csv_empty_target_cell(tmp_path):
    p = _csv(tmp_path, "a,label\n1,0\n2,\n3,1\n")
    with pytest.raises(InputFileError,
                       match=r"data\.csv, line 3, column 'label': the target is missing"):
        load_csv(p, target="label")


def test_csv_single_class(tmp_path):
    p = _csv(tmp_path, "a,label\n1,spam\n2,spam\n3,spam\n")
    with pytest.raises(InvalidValueError,
                       match=r"data\.csv, column 'label': the target has a single class "
                             r"\('spam'\); classification needs at least two"):
        load_csv(p, target="label")


def test_csv_empty_file_and_header_only(tmp_path):
    with pytest.raises(InputFileError, match=r"empty\.csv: the file is empty"):
        load_csv(_csv(tmp_path, "", "empty.csv"), target="y")
    with pytest.raises(InputFileError, match=r"empty\.csv: the file is empty"):
        load_csv(_csv(tmp_path, "\n  \n", "empty.csv"), target="y")
    with pytest.raises(InputFileError, match=r"head\.csv: the file has a header but no data rows"):
        load_csv(_csv(tmp_path, "a,y\n", "head.csv"), target="y")


def test_csv_ragged_rows(tmp_path):
    p = _csv(tmp_path, "a,b,label\n1,2,0\n3,4\n5,6,1\n")
    with pytest.raises(InputFileError,
                       match=r"data\.csv, line 3: 2 fields, but the first row has 3"):
        load_csv(p, target="label")
    p = _csv(tmp_path, "a,b,label\n1,2,0\n3,4,1,9\n")
    with pytest.raises(InputFileError, match=r"line 3: 4 fields"):
        load_csv(p, target="label")


def test_csv_header_required_and_other_format_errors(tmp_path):
    with pytest.raises(InputFileError, match=r"line 1: the first row holds numbers.*--no-header"):
        load_csv(_csv(tmp_path, "1,2,0\n3,4,1\n"), target="0")
    with pytest.raises(InputFileError, match=r"duplicate column name\(s\) \['a'\]"):
        load_csv(_csv(tmp_path, "a,a,y\n1,2,0\n"), target="y")
    with pytest.raises(InputFileError, match="only column is the target"):
        load_csv(_csv(tmp_path, "y\n0\n1\n"), target="y")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_csv(tmp_path / "missing.csv", target="y")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes("a,y\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="not utf-8 text.*--encoding"):
        load_csv(bad, target="y")


def test_csv_regression_with_string_target_is_refused(tmp_path):
    p = _csv(tmp_path, _classification_csv())
    with pytest.raises(InvalidValueError, match="task='regression' needs numeric targets"):
        load_csv(p, target="label", task="regression")
    with pytest.raises(InvalidValueError, match="task must be"):
        load_csv(p, target="label", task="clustering")


# ---------------------------------------------------------------- NPZ
def _npz(tmp_path, name="data.npz", **arrays):
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_npz_happy_path(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 5))
    y = np.repeat([0, 1, 2], 20)
    b = load_npz(_npz(tmp_path, X=X, y=y), val_size=0.1)
    assert b.task == "classification" and b.num_classes == 3
    assert b.X_train.shape == (39, 5) and b.X_val.shape == (6, 5) and b.X_test.shape == (15, 5)
    assert b.X_train.dtype == np.float32 and b.feature_names == ("x0", "x1", "x2", "x3", "x4")
    # rows and labels stay together
    lookup = {tuple(np.float32(r)): lab for r, lab in zip(X, y)}
    assert all(lookup[tuple(r)] == lab for r, lab in zip(b.X_test, b.y_test))


def test_npz_with_fixed_test_part_and_names(tmp_path):
    rng = np.random.default_rng(1)
    p = _npz(tmp_path, X=rng.standard_normal((30, 2)), y=rng.standard_normal(30),
             X_test=rng.standard_normal((7, 2)), y_test=rng.standard_normal(7),
             feature_names=np.array(["height", "weight"]))
    b = load_dataset(str(p))
    assert b.task == "regression" and b.X_train.shape == (30, 2) and b.X_test.shape == (7, 2)
    assert b.feature_names == ("height", "weight")
    s = load_dataset(p, val_size=0.2)
    assert s.X_train.shape == (24, 2) and s.X_val.shape == (6, 2) and s.X_test.shape == (7, 2)


def test_npz_missing_keys(tmp_path):
    with pytest.raises(InputFileError, match=r"data\.npz: no array named y"):
        load_npz(_npz(tmp_path, X=np.zeros((3, 2)), labels=np.zeros(3)))
    with pytest.raises(InputFileError, match="X_test and y_test must be given together"):
        load_npz(_npz(tmp_path, X=np.zeros((3, 2)), y=np.arange(3), X_test=np.zeros((2, 2))))


def test_npz_wrong_shapes(tmp_path):
    with pytest.raises(InputFileError, match=r"X must be 2-D \(samples, features\).*\(6,\)"):
        load_npz(_npz(tmp_path, X=np.zeros(6), y=np.arange(6)))
    with pytest.raises(InputFileError, match=r"y must be 1-D.*\(6, 1\)"):
        load_npz(_npz(tmp_path, X=np.zeros((6, 2)), y=np.zeros((6, 1))))
    with pytest.raises(InputFileError, match=r"one target per row of X; got shape \(5,\)"):
        load_npz(_npz(tmp_path, X=np.zeros((6, 2)), y=np.arange(5)))
    with pytest.raises(InputFileError, match=r"X_test \(2, 3\) / y_test \(2,\) do not match"):
        load_npz(_npz(tmp_path, X=np.zeros((6, 2)), y=np.arange(6) % 2,
                      X_test=np.zeros((2, 3)), y_test=np.arange(2)))


def test_npz_object_arrays_are_refused(tmp_path):
    X = np.empty((4, 2), dtype=object)
    X[:] = 1.0
    p = _npz(tmp_path, X=X, y=np.arange(4))          # np.savez pickles object arrays
    with pytest.raises(InputFileError,
                       match=r"data\.npz, array 'X': an object \(pickled\) array.*allow_pickle=False"):
        load_npz(p)


def test_npz_bad_values_and_bad_files(tmp_path):
    with pytest.raises(InputFileError, match="X holds <U1, not numbers"):
        load_npz(_npz(tmp_path, X=np.array([["a"], ["b"]]), y=np.arange(2)))
    X = np.zeros((4, 2))
    X[2, 1] = np.nan
    with pytest.raises(InputFileError, match=r"row 2, column 'x1': missing value"):
        load_npz(_npz(tmp_path, X=X, y=np.arange(4) % 2))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip file")
    with pytest.raises(InputFileError, match=r"junk\.npz: not a readable \.npz archive"):
        load_npz(junk)
    single = tmp_path / "single.npz"
    with single.open("wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(InputFileError, match="not a readable .npz archive"):
        load_npz(single)
    with pytest.raises(InvalidValueError, match="single class"):
        load_npz(_npz(tmp_path, X=np.zeros((4, 2)), y=np.zeros(4, dtype=int)))


def test_string_labels_in_npz(tmp_path):
    p = _npz(tmp_path, X=np.arange(20.0).reshape(10, 2), y=np.array(["no", "yes"] * 5))
    b = load_npz(p, test_size=0.2)
    assert b.class_names == ("no", "yes") and b.task == "classification"


def test_load_dataset_dispatches_on_suffix(tmp_path):
    p = _csv(tmp_path, _classification_csv(), "upper.CSV")
    assert load_dataset(str(p), target="label").num_classes == 2
    with pytest.raises(InvalidValueError, match=r"unknown option\(s\) \['targt'\].*target"):
        load_dataset(p, targt="label")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "nope.npz")
