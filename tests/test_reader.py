"""The strict reader: header rules, column matching, missing and non-finite values, categories,
arrays checked before allocation, Parquet."""

from __future__ import annotations

import numpy as np
import pytest

from chainrule.data.reader import InputFileError, Schema, read_table


def _write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_numeric_and_categorical_columns_are_inferred(tmp_path):
    p = _write(tmp_path, "t.csv", "a,b,color,label\n1,2,red,x\n3,4,blue,y\n5,6,red,x\n")
    t = read_table(p, target="label")
    assert t.schema.columns == ("a", "b", "color") and t.schema.kinds[2] == "categorical"
    assert t.schema.categories == {"color": ("blue", "red")}
    np.testing.assert_array_equal(t.X, [[1, 2, 1], [3, 4, 0], [5, 6, 1]])
    assert t.y.tolist() == ["x", "y", "x"] and len(t.source["sha256"]) == 64


def test_header_rules(tmp_path):
    p = _write(tmp_path, "nh.csv", "1,2,3\n4,5,6\n")
    with pytest.raises(InputFileError, match="--no-header"):
        read_table(p, target="x2")
    t = read_table(p, target=2, header=False)          # no row is lost
    np.testing.assert_array_equal(t.X, [[1, 2], [4, 5]])
    assert t.y.tolist() == [3, 6]


def test_columns_are_matched_by_name(tmp_path):
    schema = Schema(("a", "b"), ("numeric", "numeric"), {}, "y", ("a", "b", "y"))
    p = _write(tmp_path, "r.csv", "b,y,a\n2,0,1\n")
    np.testing.assert_array_equal(read_table(p, schema=schema).X, [[1, 2]])
    with pytest.raises(InputFileError, match=r"missing column\(s\) \['b'\]"):
        read_table(_write(tmp_path, "m.csv", "a,c\n1,2\n"), schema=schema)
    with pytest.raises(InputFileError, match=r"unknown column\(s\) \['c'\]"):
        read_table(_write(tmp_path, "u.csv", "a,b,c\n1,2,3\n"), schema=schema)


@pytest.mark.parametrize("cell, allow, message", [
    ("", False, "missing value"), ("NA", False, "missing value"),
    ("inf", True, "not a finite number"), ("1e300", True, "overflows"),
    ("seven", True, "'seven' is not a number"),
])
def test_bad_cells_name_line_and_column(tmp_path, cell, allow, message):
    schema = Schema(("a", "b"), ("numeric", "numeric"), {}, None, ("a", "b"))
    p = _write(tmp_path, "c.csv", f"a,b\n1,2\n3,{cell}\n")
    with pytest.raises(InputFileError, match=message) as info:
        read_table(p, schema=schema, allow_missing=allow,
                   max_abs=float(np.finfo(np.float32).max))
    assert "line 3" in str(info.value) and "'b'" in str(info.value)


def test_missing_values_pass_as_nan_when_allowed(tmp_path):
    p = _write(tmp_path, "n.csv", "a,y\n1,0\n,1\n")
    t = read_table(p, target="y", allow_missing=True)
    assert np.isnan(t.X[1, 0]) and t.X[0, 0] == 1


def test_unknown_category_is_named(tmp_path):
    schema = Schema(("c",), ("categorical",), {"c": ("blue", "red")}, None, ("c",))
    with pytest.raises(InputFileError, match="unknown category 'green'"):
        read_table(_write(tmp_path, "g.csv", "c\nred\ngreen\n"), schema=schema)


def test_sniffing_bom_and_encodings(tmp_path):
    p = _write(tmp_path, "s.csv", "\ufeffa;b;y\n1;2;0\n3;4;1\n")
    assert read_table(p, target="y").X.tolist() == [[1, 2], [3, 4]]
    p = _write(tmp_path, "u16.csv", "\ufeffa,y\n1,0\n2,1\n", encoding="utf-16-le")
    assert read_table(p, target="y").X.tolist() == [[1], [2]]
    p = _write(tmp_path, "latin.csv", "a,name,y\n1,caf\u00e9,0\n2,bar,1\n", encoding="latin-1")
    with pytest.raises(InputFileError, match="--encoding"):
        read_table(p, target="y")
    assert read_table(p, target="y", encoding="latin-1").schema.categories["name"][1] == "café"
    p = _write(tmp_path, "q.csv", 'a,"b, quoted",y\n1,2,0\n3,4,1\n')
    assert read_table(p, target="y").schema.columns == ("a", "b, quoted")


def test_arrays_are_checked_before_allocation(tmp_path):
    p = tmp_path / "huge.npy"
    header = {"descr": "<f8", "fortran_order": False, "shape": (1 << 40,)}
    with open(p, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 64)
    with pytest.raises(InputFileError, match="truncated or corrupt"):
        read_table(p, schema=Schema(("a",), ("numeric",)))
    good = tmp_path / "g.npz"
    np.savez(good, X=np.ones((50, 2)), y=np.arange(50) % 2)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputFileError):
        read_table(cut, target="y")
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([[1, "a"]], dtype=object), y=np.array([0]))
    with pytest.raises(InputFileError, match="pickle"):
        read_table(obj)
    bad = tmp_path / "nan.npz"
    np.savez(bad, X=np.array([[1.0, np.nan]]), y=np.array([0]))
    with pytest.raises(InputFileError, match="row 0, column 'x1': missing value"):
        read_table(bad)


def test_parquet_round_trip(tmp_path):
    import pandas as pd        # the reader's own dependency: no skip

    pytest.importorskip("pyarrow", reason="the parquet extra is not installed")
    p = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1.5, 2.5, 3.5], "kind": ["u", "v", "u"], "y": [0, 1, 0]}).to_parquet(p)
    t = read_table(p, target="y")
    assert t.schema.kinds == ("numeric", "categorical")
    np.testing.assert_array_equal(t.X, [[1.5, 0], [2.5, 1], [3.5, 0]])


def test_a_line_of_empty_fields_is_a_row_not_a_blank_line(tmp_path):
    p = _write(tmp_path, "e.csv", "a,b\n1,2\n\n,\n3,4\n\n")
    schema = Schema(("a", "b"), ("numeric", "numeric"))
    t = read_table(p, schema=schema, allow_missing=True)
    assert t.X.shape == (3, 2) and np.isnan(t.X[1]).all()
    with pytest.raises(InputFileError, match="line 4, column 'a': missing value"):
        read_table(p, schema=schema)
