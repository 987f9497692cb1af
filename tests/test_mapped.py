"""Memory-mapped data (``chainrule.data.mapped``): ``.npy`` files and directories of ``.npy`` /
``.npz`` shards read by :func:`chainrule.data.reader.read_table` as the same rows, columns and
targets as the arrays they hold; :class:`MappedRows` indexes like the NumPy matrix it stands for;
every value is checked at open (errors name the shard file and row).

A run on mapped rows (preprocessing fitted chunk by chunk, rows preprocessed per batch) trains the
model a run on the same rows read into memory trains; ``evaluate`` and ``predict`` agree with it;
``split.json`` stores large parts as base64 and reads them back exactly.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from numpy.lib.recfunctions import repack_fields

import chainrule as cr
import chainrule.data.mapped as mapped
import chainrule.runs.preprocess as preprocess
import chainrule.runs.source as source
from chainrule.cli import app
from chainrule.data import DataLoader, RowsDataset, TensorDataset
from chainrule.data.arrays import InputFileError
from chainrule.data.convert import convert_csv
from chainrule.data.mapped import MappedRows
from chainrule.data.reader import Schema, read_table
from chainrule.errors import FileFormatError
from chainrule.io import read as read_safetensors
from chainrule.runs import TrainConfig, build, loaders, prepare_data, train_run
from chainrule.runs.source import read_split

runner = CliRunner()


def _ok(*args: object) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


# --------------------------------------------------------------------------- plain .npy
@pytest.fixture
def plain(tmp_path):
    A = _rng().standard_normal((40, 4))
    A[:, 2] = np.arange(40) % 3
    p = tmp_path / "plain.npy"
    np.save(p, A)
    return p, A


@pytest.mark.parametrize("target", ["x2", "2", "-2"])
def test_a_plain_npy_names_its_columns_x0_to_xW(plain, target):
    p, A = plain
    t = read_table(p, target=target)
    assert isinstance(t.X, MappedRows) and t.X.shards[0].mapped
    assert isinstance(t.X.shards[0].array, np.memmap)
    assert t.schema == Schema(("x0", "x1", "x3"), ("numeric",) * 3, {}, "x2",
                              ("x0", "x1", "x2", "x3"))
    assert t.X.shape == (40, 3) and len(t.X) == 40 and t.X.ndim == 2
    assert t.X.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(t.X), A[:, [0, 1, 3]])
    assert t.y.dtype == np.float64 and t.y.tolist() == A[:, 2].tolist()
    assert t.source["format"] == "npy" and t.source["bytes"] == p.stat().st_size
    assert len(t.source["sha256"]) == 64


def test_a_plain_npy_of_integers_and_fortran_order(tmp_path):
    A = np.arange(60, dtype=np.int32).reshape(20, 3)
    A[:, 2] %= 2
    np.save(tmp_path / "i.npy", A)
    np.save(tmp_path / "f.npy", np.asfortranarray(A.astype(np.float32)))
    for name in ("i.npy", "f.npy"):
        t = read_table(tmp_path / name, target="x2")
        np.testing.assert_array_equal(np.asarray(t.X), A[:, :2].astype(np.float64))
        assert t.y.tolist() == A[:, 2].astype(float).tolist()


def test_a_plain_npy_read_with_a_trained_schema(plain):
    p, A = plain
    schema = read_table(p, target="x3").schema
    with_target = read_table(p, schema=schema, need_target=True)
    np.testing.assert_array_equal(np.asarray(with_target.X), A[:, :3])
    np.save(p.with_name("rows.npy"), A[:, :3])               # the features alone
    alone = read_table(p.with_name("rows.npy"), schema=schema)
    assert alone.y is None
    np.testing.assert_array_equal(np.asarray(alone.X), A[:, :3])
    with pytest.raises(InputFileError, match="no target 'x3' to score against"):
        read_table(p.with_name("rows.npy"), schema=schema, need_target=True)
    np.save(p.with_name("narrow.npy"), A[:, :2])
    with pytest.raises(InputFileError, match="the file has 2 columns but the model expects 3"):
        read_table(p.with_name("narrow.npy"), schema=schema)


# --------------------------------------------------------------------------- structured .npy
def _structured(n: int = 30) -> np.ndarray:
    rng = _rng()
    a = np.zeros(n, dtype=[("num", "<f8"), ("color", "<U6"), ("count", "<i4"),
                           ("code", "S4"), ("label", "<U3")])
    a["num"] = rng.standard_normal(n)
    a["color"] = rng.choice(["red", "green", "blue"], n)
    a["count"] = np.arange(n) % 5
    a["code"] = rng.choice([b"b", b"a", b"cc"], n)
    a["label"] = np.where(a["num"] > 0, "yes", "no")
    return a


def _expected_X(a: np.ndarray) -> np.ndarray:
    cats = {"color": ["blue", "green", "red"], "code": ["a", "b", "cc"]}
    out = np.empty((len(a), 4))
    out[:, 0] = a["num"]
    out[:, 1] = [cats["color"].index(v) if v else np.nan for v in a["color"]]
    out[:, 2] = a["count"]
    out[:, 3] = [cats["code"].index(v.decode()) if v else np.nan for v in a["code"]]
    return out


def test_a_structured_npy_has_named_numeric_and_categorical_fields(tmp_path):
    a = _structured()
    a["color"][[3, 17]] = ""                    # missing cells
    a["code"][5] = b""
    p = tmp_path / "s.npy"
    np.save(p, a)
    t = read_table(p, target="label", allow_missing=True)
    assert t.schema.columns == ("num", "color", "count", "code")
    assert t.schema.kinds == ("numeric", "categorical", "numeric", "categorical")
    assert t.schema.categories == {"color": ("blue", "green", "red"), "code": ("a", "b", "cc")}
    assert t.schema.target == "label" and t.schema.file_columns == a.dtype.names
    np.testing.assert_array_equal(np.asarray(t.X), _expected_X(a))
    assert t.y.dtype.kind == "U" and t.y.tolist() == a["label"].tolist()
    with pytest.raises(InputFileError, match=r"s\.npy, row 3, column 'color': missing value"):
        read_table(p, target="label")
    # the target by index; a numeric field as the target
    assert read_table(p, target="4", allow_missing=True).schema == t.schema
    t2 = read_table(p, target="count", allow_missing=True)
    assert t2.schema.columns == ("num", "color", "code", "label")
    assert t2.y.tolist() == a["count"].astype(float).tolist()


def test_a_structured_npy_read_with_a_trained_schema(tmp_path):
    a = _structured()
    p = tmp_path / "s.npy"
    np.save(p, a)
    schema = read_table(p, target="label").schema
    q = tmp_path / "rows.npy"                    # other field order, no target
    np.save(q, repack_fields(a[[4, 1, 2]][["code", "count", "color", "num"]]))
    t = read_table(q, schema=schema)
    assert t.y is None and t.schema == schema
    np.testing.assert_array_equal(np.asarray(t.X), _expected_X(a[[4, 1, 2]]))
    # unknown categories, by the row they are on (also a bytes cell longer than every category
    # of the model, which must not be cut to a known one)
    for field, value, shown in (("color", "purple", "'purple'"), ("code", b"ccc", "'ccc'"),
                                ("code", b"a\xc3", "xc3")):
        c = a.copy()
        c[field][13] = value
        np.save(q, c)
        with pytest.raises(InputFileError, match=rf"rows\.npy, row 13, column '{field}': "
                                                 "unknown category ") as err:
            read_table(q, schema=schema)
        assert shown in str(err.value)
    # text that is not ASCII in a bytes field is refused when training, too
    np.save(q, c)
    with pytest.raises(InputFileError, match="field 'code' holds bytes that are not ASCII"):
        read_table(q, target="label")
    # fields that do not fit the model
    np.save(q, repack_fields(a[["num", "color", "count"]]))
    with pytest.raises(InputFileError, match=r"missing field\(s\) \['code'\]"):
        read_table(q, schema=schema)
    extra = np.zeros(3, dtype=a.dtype.descr + [("other", "<f8")])
    np.save(q, extra)
    with pytest.raises(InputFileError, match=r"unknown field\(s\) \['other'\]"):
        read_table(q, schema=schema)
    wrong = np.zeros(3, dtype=[("num", "<U3"), ("color", "<U3"), ("count", "<i4"),
                               ("code", "S4")])
    np.save(q, wrong)
    with pytest.raises(InputFileError, match="field 'num' holds text; the model reads it as "
                                             "numeric"):
        read_table(q, schema=schema)


def test_too_many_categories_in_a_text_field(tmp_path):
    p = tmp_path / "many.npy"
    n = 2002
    a = np.zeros(n, dtype=[("c", "<U6"), ("y", "<f8")])
    a["y"] = np.arange(n) % 2
    a["c"] = [f"k{i % 1000}" for i in range(n)]     # exactly the limit: categorical
    np.save(p, a)
    assert len(read_table(p, target="y").schema.categories["c"]) == 1000
    a["c"][7] = "k1000"                                # 1001 distinct values
    np.save(p, a)
    with pytest.raises(InputFileError, match="field 'c' holds over 1000 distinct text values"):
        read_table(p, target="y")
    a = a[:100]
    a["c"] = [f"k{i % 60}" for i in range(100)]        # the reader's rule: > 50 and > n / 2
    np.save(p, a)
    with pytest.raises(InputFileError, match="field 'c' holds 60 distinct text values"):
        read_table(p, target="y")


# --------------------------------------------------------------------------- shard directories
BOUNDS = [(0, 7), (7, 7), (7, 8), (8, 21), (21, 30)]      # one shard is empty


def _shard(directory: Path, a: np.ndarray, bounds=BOUNDS) -> Path:
    directory.mkdir(exist_ok=True)
    for k, (lo, hi) in enumerate(bounds):
        np.save(directory / f"part{k:02d}.npy", a[lo:hi])
    return directory


@pytest.mark.parametrize("kind", ["plain", "structured"])
def test_a_directory_of_npy_shards_reads_as_the_single_file(tmp_path, kind):
    a = _structured() if kind == "structured" else _rng().standard_normal((30, 3))
    if kind == "plain":
        a[:, 1] = np.arange(30) % 2
    target = "label" if kind == "structured" else "x1"
    np.save(tmp_path / "all.npy", a)
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "README.txt").write_text("other files are ignored")
    (tmp_path / "dir" / ".hidden.npy").write_bytes(b"ignored")
    d = _shard(tmp_path / "dir", a)
    one, many = read_table(tmp_path / "all.npy", target=target), read_table(d, target=target)
    assert many.schema == one.schema
    np.testing.assert_array_equal(np.asarray(many.X), np.asarray(one.X))
    assert many.y.tolist() == one.y.tolist()
    assert [s.path.name for s in many.X.shards] == [f"part{k:02d}.npy" for k in range(5)]
    assert many.source["format"] == "shards"
    assert many.source["bytes"] == sum(f.stat().st_size for f in d.glob("part*.npy"))
    assert many.source["sha256"] != one.source["sha256"]
    # where names the shard file and the row in it
    assert [many.X.where(i) for i in (0, 6, 7, 8, 20, 21, 29)] == [
        "part00.npy, row 0", "part00.npy, row 6", "part02.npy, row 0", "part03.npy, row 0",
        "part03.npy, row 12", "part04.npy, row 0", "part04.npy, row 8"]
    assert one.X.where(29) == "row 29"
    assert many.X.take(np.array([25, 3])).where(0) == "part04.npy, row 4"


def test_a_value_error_in_a_shard_names_the_file_and_row(tmp_path):
    A = _rng().standard_normal((30, 3))
    A[:, 2] = np.arange(30) % 2
    for k, (value, says) in enumerate(((np.nan, r"part03\.npy, row 4, column 'x1': missing value"),
                        (np.inf, r"part03\.npy, row 4, column 'x1': inf is not a finite"),
                        (-np.inf, r"part03\.npy, row 4, column 'x1': -inf is not a finite"),
                        (1e39, r"part03\.npy, row 4, column 'x1': 1e\+39 overflows the model's "
                               r"dtype"))):
        B = A.copy()
        B[12, 1] = value
        d = _shard(tmp_path / f"d{k}", B)
        with pytest.raises(InputFileError, match=says):
            read_table(d, target="x2", max_abs=float(np.finfo(np.float32).max))
    B = A.copy()                   # a missing value passes where allowed (as NaN)
    B[12, 1] = np.nan
    t = read_table(_shard(tmp_path / "nan", B), target="x2", allow_missing=True)
    assert np.isnan(t.X[12, 1]) and np.isnan(np.asarray(t.X)).sum() == 1
    B[22, 2] = np.nan                                       # the target
    with pytest.raises(InputFileError, match=r"part04\.npy, row 1, column 'x2': the target is "
                                             "missing"):
        read_table(_shard(tmp_path / "nant", B), target="x2", allow_missing=True)
    B[22, 2] = np.inf
    with pytest.raises(InputFileError, match=r"part04\.npy, row 1, column 'x2': the target inf"):
        read_table(_shard(tmp_path / "inft", B), target="x2", allow_missing=True)
    s = _structured()
    s["label"][9] = ""
    with pytest.raises(InputFileError, match=r"part03\.npy, row 1, column 'label': the target "
                                             "is missing"):
        read_table(_shard(tmp_path / "s", s), target="label")


def test_an_unknown_category_in_a_shard_names_the_file_and_row(tmp_path, monkeypatch):
    a = _structured(300)
    schema = read_table(_shard(tmp_path / "train", a, [(0, 300)]), target="label").schema
    a["color"][219] = "purple"
    d = _shard(tmp_path / "d", a, [(0, 100), (100, 200), (200, 300)])
    for chunk in (mapped.CHUNK_BYTES, 8 * 4 * 7):          # one block, or a block of 7 rows
        monkeypatch.setattr(mapped, "CHUNK_BYTES", chunk)
        with pytest.raises(InputFileError, match=r"part02\.npy, row 19, column 'color': "
                                                 r"unknown category 'purple'; the model knows "
                                                 r"\['blue', 'green', 'red'\]"):
            read_table(d, schema=schema)


def _npz_shards(d: Path, X: np.ndarray, y: np.ndarray, compressed: bool,
                names: list[str] | None = None) -> Path:
    d.mkdir()
    save = np.savez_compressed if compressed else np.savez
    for k, (lo, hi) in enumerate([(0, 10), (10, 25), (25, 40)]):
        extra = {} if names is None else {"feature_names": np.array(names)}
        Xk = X[lo:hi] if k != 1 else np.asfortranarray(X[lo:hi])
        save(d / f"s{k}.npz", X=Xk, y=y[lo:hi], **extra)
    return d


@pytest.mark.parametrize("compressed", [False, True])
def test_a_directory_of_npz_shards(tmp_path, compressed):
    rng = _rng()
    X = rng.standard_normal((40, 3))
    y = np.array(["a", "bb", "c"])[np.arange(40) % 3]
    d = _npz_shards(tmp_path / "d", X, y, compressed)
    t = read_table(d)
    assert t.schema == Schema(("x0", "x1", "x2"), ("numeric",) * 3, {}, "y",
                              ("x0", "x1", "x2", "y"))
    assert [s.mapped for s in t.X.shards] == [not compressed] * 3
    assert all(isinstance(s.array, np.memmap) != compressed for s in t.X.shards)
    np.testing.assert_array_equal(np.asarray(t.X), X)
    assert t.y.tolist() == y.tolist()
    assert t.X.where(12) == "s1.npz, row 2"
    # feature names, and a trained schema that orders the columns otherwise
    n = _npz_shards(tmp_path / "n", X, y, compressed, ["u", "v", "w"])
    t = read_table(n)
    assert t.schema.columns == ("u", "v", "w")
    schema = Schema(("w", "u", "v"), ("numeric",) * 3, {}, "y", ("w", "u", "v", "y"))
    np.testing.assert_array_equal(np.asarray(read_table(n, schema=schema).X), X[:, [2, 0, 1]])
    # a value error names the archive and the row
    X[27, 2] = np.nan
    bad = _npz_shards(tmp_path / "bad", X, y, compressed)
    with pytest.raises(InputFileError, match=r"s2\.npz, row 2, column 'x2': missing value"):
        read_table(bad)


def test_shard_directories_that_do_not_make_one_data_set(tmp_path):
    def folder(name: str, files: dict[str, object]) -> Path:
        d = tmp_path / name
        d.mkdir()
        for f, a in files.items():
            if f.endswith(".npz"):
                np.savez(d / f, **a)
            else:
                np.save(d / f, a)
        return d

    A = np.ones((5, 3))
    y = np.zeros(5)
    cases = {
        "empty": ({}, "needs .npy or .npz files; it has none"),
        "mixed": ({"a.npy": A, "b.npz": {"X": A, "y": y}}, "holds both .npy and .npz shards"),
        "widths": ({"a.npy": A, "b.npy": np.ones((5, 4))}, r"b\.npy: holds float64 \(5, 4\); "
                                                         r"a\.npy holds float64 \(5, 3\)"),
        "dtypes": ({"a.npy": A, "b.npy": A.astype(np.float32)}, r"b\.npy: holds float32"),
        "plain_and_structured": ({"a.npy": A, "b.npy": _structured(5)}, r"b\.npy: holds"),
        "structured_dtypes": ({"a.npy": _structured(5),
                               "b.npy": repack_fields(_structured(5)[["num", "label"]])},
                              r"b\.npy: holds"),
        "npz_widths": ({"a.npz": {"X": A, "y": y}, "b.npz": {"X": np.ones((5, 2)), "y": y}},
                       r"b\.npz: X has shape \(5, 2\); a\.npz has \(5, 3\)"),
        "npz_without_y": ({"a.npz": {"X": A, "y": y}, "b.npz": {"X": A}}, r"b\.npz: X has"),
        "npz_names": ({"a.npz": {"X": A, "y": y, "feature_names": np.array(["p", "q", "r"])},
                       "b.npz": {"X": A, "y": y, "feature_names": np.array(["p", "q", "s"])}},
                      r"b\.npz: feature_names differ from a\.npz's"),
        "npz_duplicate_names": ({"a.npz": {"X": A, "y": y,
                                           "feature_names": np.array(["p", "q", "p"])}},
                                "duplicate feature names"),
        "no_rows": ({"a.npy": np.ones((0, 3)), "b.npy": np.ones((0, 3))}, "holds no rows"),
        "one_dimensional": ({"a.npy": np.ones(5)}, "a plain array must be 2-D"),
        "objects": ({"a.npy": np.array([["x"]]).astype("U1")}, "not numbers"),
    }
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "notes.csv").write_text("a,y\n1,0\n")
    with pytest.raises(InputFileError, match="needs .npy or .npz files; it has none"):
        read_table(tmp_path / "only_text", target="y")
    for name, (files, says) in cases.items():
        with pytest.raises(InputFileError, match=says):
            read_table(folder(name, files), target="x0" if name != "npz_names" else None)


# --------------------------------------------------------------------------- MappedRows indexing
@pytest.fixture
def rows(tmp_path):
    a = _structured(30)
    a["color"][[2, 11]] = ""
    t = read_table(_shard(tmp_path / "d", a), target="label", allow_missing=True)
    full = np.asarray(t.X)
    np.testing.assert_array_equal(full, _expected_X(a))
    return t.X, full


INDICES = [slice(None), slice(3, 25, 4), slice(None, None, -1), slice(-5, None),
           slice(28, 3, -3), slice(40, 50), 0, 7, 29, -1, -30,
           np.int64(8), np.array([29, 0, 7, 7, -1, -23]), [8, 6, 21], np.array([], np.int64),
           [], np.arange(30) % 4 == 1, np.zeros(30, bool), np.array([3], np.uint32)]


@pytest.mark.parametrize("index", INDICES, ids=lambda i: repr(i)[:40])
def test_mappedrows_index_like_the_numpy_matrix(rows, index):
    X, full = rows
    got, want = X[index], full[index]
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(X[index, 1:3], full[index, 1:3])
    scalar = np.ndim(index) == 0 and not isinstance(index, slice)
    view = X.take([index] if scalar else index)
    expected = full[[index]] if scalar else want
    assert isinstance(view, MappedRows) and view.shape == expected.shape
    np.testing.assert_array_equal(np.asarray(view), expected)
    np.testing.assert_array_equal(view[::-1], expected[::-1])


def test_take_views_compose_and_chunk(rows, monkeypatch):
    X, full = rows
    first = np.array([29, 3, 3, 17, 8, 0, -1, 22, 9])
    second = np.array([-1, 0, 4, 2, 2])
    view = X.take(first).take(second)
    np.testing.assert_array_equal(np.asarray(view), full[first][second])
    np.testing.assert_array_equal(view[1:4], full[first][second][1:4])
    assert view.shape == (5, 4) and view.where(0) == "part03.npy, row 1"
    assert X.take(slice(8, 12)).where(0) == "part03.npy, row 0"
    monkeypatch.setattr(mapped, "CHUNK_BYTES", 8 * 4 * 3)         # 3 rows a chunk
    parts = list(X.chunks())
    assert [lo for lo, _ in parts] == list(range(0, 30, 3))
    np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), full)
    pick = np.array([5, 1, 29, 13, 13])
    parts = list(X.chunks(pick))
    assert [lo for lo, _ in parts] == [0, 3]
    np.testing.assert_array_equal(np.concatenate([b for _, b in parts]), full[pick])


@pytest.mark.parametrize("index", [30, -31, [0, 30], np.array([-31]), np.ones(29, bool),
                                   np.ones(31, bool), 1.0, np.array([0.0, 1.0])],
                         ids=repr)
def test_mappedrows_refuse_what_numpy_refuses(rows, index):
    X, full = rows
    with pytest.raises(IndexError):
        full[index]
    with pytest.raises(IndexError):
        X[index]
    with pytest.raises(IndexError):
        X.take(index)


# --------------------------------------------------------------------------- runs
def _people_csv(path: Path, n: int = 240) -> Path:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n) * 3 + 10, rng.standard_normal(n)
    color = rng.choice(["red", "green", "blue", "grey"], n, p=[0.4, 0.3, 0.2, 0.1])
    y = np.where(a - 10 + (color == "red") * 2 + b > 0.5, "yes", "no")
    lines = [f"{'' if i % 37 == 5 else f'{a[i]:.6f}'},{'NA' if i % 29 == 3 else f'{b[i]:.6f}'},"
             f"{'' if i % 31 == 7 else color[i]},{y[i]}" for i in range(n)]
    path.write_text("a,b,color,label\n" + "\n".join(lines) + "\n")
    return path


CONFIG = dict(target="label", impute="median", epochs=3, hidden=[8], batch_size=16, seed=3)


def _config(dataset: Path, **kw) -> TrainConfig:
    return TrainConfig(dataset=str(dataset), **{**CONFIG, **kw})


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("people")
    csv = _people_csv(tmp / "people.csv")
    (tmp / "npy").mkdir()
    npy = tmp / "npy" / "people.npy"
    convert_csv(csv, npy, target="label", allow_missing=True, chunk_rows=50)
    (tmp / "shards").mkdir()                # the directory's stem names the run's data set
    shards = _shard(tmp / "shards" / "people", np.load(npy),
                    [(0, 61), (61, 61), (61, 62), (62, 170), (170, 240)])
    runs = {}
    for name, data in (("csv", csv), ("npy", npy), ("shards", shards)):
        runs[name] = tmp / f"run_{name}"
        train_run(_config(data), runs[name], progress="none", plots=False)
    return {"tmp": tmp, "csv": csv, "npy": npy, "shards": shards, "runs": runs}


def _tensors(run: Path) -> dict[str, np.ndarray]:
    return read_safetensors(run / "model.safetensors")[0]


def _summary(run: Path) -> dict:
    s = json.loads((run / "summary.json").read_text())
    for part in (s, s["final"]):
        part.pop("seconds"), part.pop("samples_per_second")
    return s


def test_a_run_on_the_converted_npy_trains_the_csv_runs_model(people):
    runs = people["runs"]
    csv, npy = _tensors(runs["csv"]), _tensors(runs["npy"])
    assert sorted(csv) == sorted(npy)
    layers = {k.split(".")[1] for k in csv if k.startswith("0.") or k.startswith("2.")}
    assert {"fill", "mean", "scale"} <= layers          # Impute, OneHot, Standardize, MLP
    for k in csv:
        assert csv[k].dtype == npy[k].dtype and csv[k].shape == npy[k].shape, k
        if k.endswith((".mean", ".scale")):    # sklearn's fit vs partial_fit over chunks
            np.testing.assert_allclose(npy[k], csv[k], rtol=1e-12, atol=1e-12, err_msg=k)
        else:                                  # the fill (medians, modes) and the weights
            np.testing.assert_array_equal(npy[k], csv[k], err_msg=k)
    s_csv, s_npy = _summary(runs["csv"]), _summary(runs["npy"])
    assert s_npy == s_csv
    assert s_csv["categorical_columns"] == ["color"] and s_csv["dataset"] == "people"
    assert read_split(runs["npy"])[1].test.tolist() == read_split(runs["csv"])[1].test.tolist()
    assert read_split(runs["npy"])[0]["format"] == "npy"


def test_a_run_on_shards_trains_the_single_files_model(people):
    runs = people["runs"]
    one, many = _tensors(runs["npy"]), _tensors(runs["shards"])
    assert sorted(one) == sorted(many)
    for k in one:
        np.testing.assert_array_equal(many[k], one[k], err_msg=k)
    assert _summary(runs["shards"]) == _summary(runs["npy"])
    assert read_split(runs["shards"])[0]["format"] == "shards"


@pytest.mark.parametrize("part", ["test", "train", "val"])
def test_evaluate_a_mapped_run_prints_its_summary_metrics(people, part):
    run = people["runs"]["npy"]
    summary = json.loads((run / "summary.json").read_text())
    printed = json.loads(_ok("evaluate", run, "--part", part, "--format", "json"))
    assert printed["metrics"] == summary["metrics"][part]
    assert printed["metrics"]["samples"] == len(getattr(read_split(run)[1], part))


def test_evaluate_a_run_on_a_shard_directory(people):
    run = people["runs"]["shards"]
    summary = json.loads((run / "summary.json").read_text())
    printed = json.loads(_ok("evaluate", run, "--format", "json"))
    assert printed["metrics"] == summary["metrics"]["test"]


def test_predict_and_evaluate_read_the_npy_as_the_csv(people):
    for run in (people["runs"]["csv"], people["runs"]["npy"]):
        on_csv = _ok("predict", run, "--input", people["csv"]).splitlines()
        on_npy = _ok("predict", run, "--input", people["npy"]).splitlines()
        on_shards = _ok("predict", run, "--input", people["shards"]).splitlines()
        assert on_csv[0] == "prediction" and len(on_csv) == 241
        assert set(on_csv[1:]) <= {"yes", "no"} and len(set(on_csv[1:])) == 2
        assert on_npy == on_csv and on_shards == on_csv
        m = [json.loads(_ok("evaluate", run, "--data", d, "--format", "json"))["metrics"]
             for d in (people["csv"], people["npy"], people["shards"])]
        assert m[0] == m[1] == m[2] and m[0]["samples"] == 240


# --------------------------------------------------------------------------- preprocessing
def _layers(layers: list) -> dict[str, np.ndarray]:
    out = {}
    for layer in layers:
        if isinstance(layer, cr.nn.Impute):
            out["fill"] = layer.fill.numpy()
        if isinstance(layer, cr.nn.Standardize):
            out["mean"], out["scale"] = layer.mean.numpy(), layer.scale.numpy()
    return out


@pytest.mark.parametrize("impute", ["mean", "median"])
def test_streaming_statistics_equal_the_in_memory_fit(people, monkeypatch, impute):
    in_memory = prepare_data(_config(people["csv"], impute=impute).validate())
    config = _config(people["npy"], impute=impute).validate()
    data = prepare_data(config)
    assert isinstance(data.table.X, MappedRows) and isinstance(in_memory.table.X, np.ndarray)
    assert data.split.train.tolist() == in_memory.split.train.tolist()
    tiny = 8 * 3 * 5                                        # 5 rows a chunk
    monkeypatch.setattr(mapped, "CHUNK_BYTES", tiny)
    monkeypatch.setattr(preprocess, "CHUNK_BYTES", tiny)
    assert len(list(data.table.X.chunks(np.sort(data.split.train)))) > 20
    streamed = _layers(preprocess.fit_preprocessing(config, data))
    assert streamed.keys() == {"fill", "mean", "scale"}
    fitted = _layers(preprocess._fit_in_memory(config, in_memory))
    num, cat = [0, 1], [2]
    if impute == "mean":
        np.testing.assert_allclose(streamed["fill"][num], fitted["fill"][num], rtol=1e-12)
    else:
        np.testing.assert_array_equal(streamed["fill"][num], fitted["fill"][num])
    np.testing.assert_array_equal(streamed["fill"][cat], fitted["fill"][cat])
    train = in_memory.table.X[in_memory.split.train]
    codes = train[:, 2][~np.isnan(train[:, 2])].astype(int)
    assert fitted["fill"][2] == np.argmax(np.bincount(codes))     # the most frequent colour
    assert streamed["mean"].shape == (6,)                          # a, b and 4 indicators
    np.testing.assert_allclose(streamed["mean"], fitted["mean"], rtol=1e-10)
    np.testing.assert_allclose(streamed["scale"], fitted["scale"], rtol=1e-10)
    assert streamed["mean"][2:].tolist() == [0.0] * 4          # indicators: not standardised
    assert streamed["scale"][2:].tolist() == [1.0] * 4


def test_the_most_frequent_category_tie_takes_the_first(tmp_path, monkeypatch):
    a = np.zeros(40, dtype=[("c", "<U1"), ("v", "<f8"), ("y", "<f8")])
    a["c"] = ["b", "a", "c", "b", "a", ""] * 6 + ["c", "c", "", ""]    # a: 12, b: 12, c: 8
    a["v"] = np.arange(40.0)
    a["y"] = np.arange(40) % 2
    np.save(tmp_path / "tie.npy", a)
    config = _config(tmp_path / "tie.npy", target="y").validate()
    data = prepare_data(config)
    data.split.train = np.arange(40)             # every row
    monkeypatch.setattr(mapped, "CHUNK_BYTES", 8 * 2 * 3)
    streamed = _layers(preprocess._fit_streaming(config, data))
    fitted = _layers(preprocess._fit_in_memory(config, data))
    assert streamed["fill"].tolist() == fitted["fill"].tolist() == [0.0, 19.5]


# --------------------------------------------------------------------------- batches
@pytest.mark.parametrize("shard", [None, (0, 3), (2, 3)])
def test_a_loader_over_mapped_rows_yields_the_in_memory_batches(people, shard):
    config = _config(people["npy"]).validate()
    setup = build(config, prepare_data(config))
    assert setup.features == {}                      # mapped: preprocessed per batch
    train, val = loaders(setup, shard)
    assert isinstance(train.dataset, RowsDataset) and isinstance(val.dataset, RowsDataset)
    rows = setup.data.split.train
    X = np.asarray(setup.data.table.X[rows])
    tensors = TensorDataset(setup.transform(X), setup.data.y[rows])
    memory = DataLoader(tensors, batch_size=config.batch_size, shuffle=True, seed=config.seed,
                        shard=shard)
    count = 0
    for _ in range(2):                                # two epochs: two orders
        for got, want in zip(train, memory, strict=True):
            assert got[0].numpy().dtype == np.float32 and got[1].numpy().dtype == np.int64
            np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())
            np.testing.assert_array_equal(got[1].numpy(), want[1].numpy())
            count += len(got[1].numpy())
    assert count == 2 * len(rows) if shard is None else 0 < count < 2 * len(rows)
    # the CSV read into memory preprocesses the same rows into the same inputs
    csv_setup = build(_config(people["csv"]).validate())
    np.testing.assert_allclose(csv_setup.features["train"], setup.transform(X), rtol=1e-6,
                               atol=1e-6)
    # one row at a time (__getitem__) equals the batch it is in
    x0, t0 = train.dataset[5]
    np.testing.assert_array_equal(x0.numpy(), setup.transform(X[5:6])[0])
    assert int(t0.numpy()) == setup.data.y[rows[5]]


# --------------------------------------------------------------------------- split.json
def test_large_parts_are_stored_as_base64_and_read_back_exactly(people, monkeypatch, tmp_path):
    monkeypatch.setattr(source, "LIST_LIMIT", 20)
    run = tmp_path / "run"
    summary = train_run(_config(people["npy"]), run, progress="none", plots=False)
    body = json.loads((run / "split.json").read_text())
    _, split = read_split(run)
    _, plain = read_split(people["runs"]["npy"])       # the same split, stored as lists
    for part in ("train", "val", "test"):
        stored = body[part]
        assert isinstance(stored, dict) and list(stored) == ["int64le_base64"]
        raw = np.frombuffer(base64.b64decode(stored["int64le_base64"]), dtype="<i8")
        assert raw.tolist() == getattr(split, part).tolist() == getattr(plain, part).tolist()
        assert getattr(split, part).dtype == np.int64
    printed = json.loads(_ok("evaluate", run, "--format", "json"))
    assert printed["metrics"] == summary["metrics"]["test"]
    # the limit itself stays a list
    assert source._encode_rows(np.arange(20)) == list(range(20))
    assert isinstance(source._encode_rows(np.arange(21)), dict)

    def corrupt(value: object) -> None:
        bad = dict(body, test=value)
        (run / "split.json").write_text(json.dumps(bad))
        with pytest.raises(FileFormatError, match="'test' must be a list of row indices"):
            read_split(run)

    good = body["test"]["int64le_base64"]
    corrupt({"int64le_base64": good[:-4] + "!!!!"})                           # not base64
    corrupt({"int64le_base64": good[:-5]})                                    # bad padding
    corrupt({"int64le_base64": base64.b64encode(b"\0" * 12).decode()})        # not 8-byte items
    corrupt({"int64le_base64": base64.b64encode(np.array([3, -1], "<i8").tobytes()).decode()})
    corrupt({"int64le_base64": good, "more": 1})
    corrupt({"int64le_base64": 17})
    corrupt([1, -2])
    corrupt([1, True])
    result = runner.invoke(app, ["evaluate", str(run)])
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert os.path.exists(run / "model.safetensors")
