"""``chainrule convert``: a CSV streamed in chunks into a structured ``.npy`` (or Parquet) reads
back, through :func:`chainrule.data.reader.read_table`, exactly as the CSV itself reads: the same schema
(columns, kinds, categories, target), the same feature matrix (NaN where a cell is missing) and the
same targets. Every file breaking a reading rule is one ``error:`` line with exit code 2 naming
line and column, and leaves nothing behind in the output's directory.

The conversions use ``chunk_rows=7`` so every file spans several chunks (and the columns whose
kind only a later chunk reveals are exercised).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from chainrule.cli import app
from chainrule.data.arrays import InputFileError
from chainrule.data.convert import convert_csv
from chainrule.data.mapped import MappedRows
from chainrule.data.reader import read_table
from chainrule.errors import InvalidValueError

runner = CliRunner()
CHUNK = 7


def convert_cli(args: list[Any], cache: Path):
    return runner.invoke(app, ["convert", *(str(a) for a in args)],
                         env={"CHAINRULE_CACHE": str(cache)})


# --------------------------------------------------------------------------- the CSV files
@dataclass
class Case:
    text: str | bytes
    target: str
    header: bool = True
    allow_missing: bool = False
    encoding: str = "utf-8"
    expect: Callable[[Any], None] = field(default=lambda t: None)


def _numbers(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [repr(float(v)) for v in rng.standard_normal(n) * 10.0 ** rng.integers(-6, 6, n)]


def _plain_expect(t: Any) -> None:
    assert t.schema.kinds == ("numeric", "numeric") and t.y.dtype == np.float64
    assert len(t.y) == 30 and set(t.y.tolist()) == {0.0, 1.0, 2.0}


def _late_expect(t: Any) -> None:
    # the first chunk holds only "0".."3": a later chunk's text makes the column categorical
    assert t.schema.kinds == ("categorical", "numeric")
    assert t.schema.categories["c"] == ("0", "1", "2", "3", "blue", "green", "red")
    assert t.y.dtype.kind == "U" and set(t.y.tolist()) == {"no", "yes"}


def _late_numeric_target_expect(t: Any) -> None:
    assert t.schema.kinds == ("categorical", "numeric") and t.y.dtype == np.float64


def _missing_expect(t: Any) -> None:
    assert t.schema.kinds == ("numeric", "categorical")
    assert np.isnan(t.X[:, 0]).sum() == 8 and np.isnan(t.X[:, 1]).sum() == 8
    assert t.schema.categories["c"] == ("x", "y", "z")


def _quoted_expect(t: Any) -> None:
    assert t.schema.columns == ("a", "b, c")
    assert t.schema.categories["b, c"] == ("p, q", "r", "s, t")


def _blank_expect(t: Any) -> None:
    assert len(t.y) == 19
    assert np.isnan(t.X[2]).all() and not np.isnan(np.delete(t.X, 2, axis=0)).any()


def _utf_expect(t: Any) -> None:
    assert t.schema.columns == ("a", "name")
    assert t.schema.categories["name"] == ("café0", "café1", "café2")


def _ws_expect(t: Any) -> None:
    assert t.schema.columns == ("a", "b") and t.schema.categories["b"] == ("u", "v w")


def _nohdr_expect(t: Any) -> None:
    assert t.schema.file_columns == ("x0", "x1", "x2", "x3") and t.schema.target == "x2"
    assert t.schema.kinds == ("numeric", "numeric", "categorical") and t.y.dtype == np.float64


def _text_target_expect(t: Any) -> None:
    assert t.y.dtype.kind == "U" and set(t.y.tolist()) == {"1", "2", "x"}


def _cases() -> dict[str, Case]:
    num = _numbers(60)
    rows30 = "\n".join(f"{num[i]},{num[30 + i]},{i % 3}" for i in range(30))
    late = [str(i % 4) for i in range(10)] + ["red", "green", "blue"] * 5 + ["blue"] * 3
    return {
        "header": Case("a,b,y\n" + rows30 + "\n", "y", expect=_plain_expect),
        "no_header_int_target": Case(
            "\n".join(f"{num[i]},{i},{i % 3},{'pq'[i % 2]}" for i in range(22)) + "\n", "2",
            header=False, expect=_nohdr_expect),
        "late_text_column": Case(
            "c,v,t\n" + "\n".join(f"{c},{i * 0.5},{'yes' if i % 2 else 'no'}"
                                  for i, c in enumerate(late)) + "\n", "t",
            expect=_late_expect),
        "late_text_numeric_target": Case(
            "c,v,t\n" + "\n".join(f"{c},{i * 0.5},{i * 1.25}" for i, c in enumerate(late))
            + "\n", "t", expect=_late_numeric_target_expect),
        "missing_cells": Case(
            "a,c,y\n" + "\n".join(
                f"{['', 'NA', '?'][i % 3] if i % 4 == 0 else i},"
                f"{['', 'null'][i % 2] if i % 4 == 1 else 'xyz'[i % 3]},{i % 2}"
                for i in range(30)) + "\n", "y", allow_missing=True, expect=_missing_expect),
        "quoted_delimiter": Case(
            'a,"b, c",y\n' + "\n".join(f'{i},"{["p, q", "r", "s, t"][i % 3]}",{i % 2}'
                                       for i in range(20)) + "\n", "y",
            expect=_quoted_expect),
        "semicolon": Case("a;b;y\n" + "\n".join(f"{num[i]};{i * 2.5};{i % 2}"
                                                for i in range(20)) + "\n", "y"),
        "blank_lines_and_empty_row": Case(
            "a,b,c,y\n\n1,2,3,0\n4,5,6,1\n,,,1\n\n7,8,9,0\n"
            + "\n".join(f"{i},{i},{num[i]},{i % 2}" for i in range(15)) + "\n\n\n", "y",
            allow_missing=True, expect=_blank_expect),
        "bom": Case("\ufeffa,b,y\n" + rows30 + "\n", "y", expect=_plain_expect),
        "utf16": Case("a,name,y\n" + "\n".join(f"{i},café{i % 3},{i % 2}" for i in range(20))
                      + "\n", "y", encoding="utf-16", expect=_utf_expect),
        "crlf_and_spaces": Case(
            "a , b ,y\r\n" + "\r\n".join(f" {i} ,  {['u', 'v w'][i % 2]}  ,{i % 2}"
                                         for i in range(20)) + "\r\n", "y",
            expect=_ws_expect),
        "text_target": Case("a,y\n" + "\n".join(f"{i},{['1', '2', 'x'][i % 3]}"
                                                for i in range(21)) + "\n", "y",
                            expect=_text_target_expect),
        "rows_a_multiple_of_the_chunk": Case(
            "a,c,y\n" + "\n".join(f"{num[i]},{'uv'[i % 2]},{i % 2}" for i in range(21)) + "\n",
            "y"),
    }


CASES = _cases()


def _same_table(a: Any, b: Any) -> None:
    assert b.schema == a.schema
    assert isinstance(a.X, np.ndarray)
    Xb = np.asarray(b.X)
    assert Xb.dtype == np.float64 and Xb.shape == a.X.shape
    np.testing.assert_array_equal(Xb, a.X)          # NaN where NaN, bit-equal elsewhere
    assert b.y.dtype.kind == a.y.dtype.kind
    assert b.y.tolist() == a.y.tolist()


@pytest.mark.parametrize("name", list(CASES))
def test_converted_npy_and_parquet_read_as_the_csv(tmp_path, name):
    pytest.importorskip("pyarrow")
    case = CASES[name]
    src = tmp_path / f"{name}.csv"
    src.write_bytes(case.text.encode(case.encoding) if isinstance(case.text, str)
                    else case.text)
    csv = read_table(src, target=case.target, header=case.header,
                     allow_missing=case.allow_missing)
    case.expect(csv)
    for suffix in (".npy", ".parquet"):
        out = tmp_path / f"{name}{suffix}"
        result = convert_csv(src, out, target=case.target, header=case.header,
                             allow_missing=case.allow_missing, chunk_rows=CHUNK)
        assert result.rows == len(csv.y) and result.path == out
        assert result.columns == list(csv.schema.file_columns)
        assert result.bytes == out.stat().st_size
        again = read_table(out, target=csv.schema.target, allow_missing=case.allow_missing)
        _same_table(csv, again)
        assert isinstance(again.X, MappedRows) == (suffix == ".npy")
        # a trained model's schema reads the converted file as it reads the CSV
        conformed = read_table(out, schema=csv.schema, allow_missing=case.allow_missing,
                               need_target=True)
        _same_table(csv, conformed)
    assert sorted(os.listdir(tmp_path)) == sorted([src.name, f"{name}.npy",
                                                   f"{name}.parquet"])


def test_the_npy_is_a_structured_array_of_numbers_and_text(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("num,cat,label\n1.5,red,yes\n,blue,no\n2,,yes\n")
    convert_csv(src, tmp_path / "d.npy", target="label", allow_missing=True)
    a = np.load(tmp_path / "d.npy")
    assert a.dtype.names == ("num", "cat", "label")
    assert a.dtype["num"] == np.float64 and a.dtype["cat"] == np.dtype("<U4")
    assert a.dtype["label"] == np.dtype("<U3")
    assert np.isnan(a["num"][1]) and a["num"][[0, 2]].tolist() == [1.5, 2.0]
    assert a["cat"].tolist() == ["red", "blue", ""] and a["label"].tolist() == ["yes", "no",
                                                                                 "yes"]


def test_the_cli_writes_the_same_bytes_as_the_function(tmp_path):
    case = CASES["late_text_column"]
    src = tmp_path / "late.csv"
    src.write_text(case.text)
    res = convert_cli([src, tmp_path / "cli.npy", "--target", "t", "--chunk-rows", "3"],
                      tmp_path / ".cache")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("wrote 28 rows x 3 columns to ")
    assert "categorical: c" in res.stdout and res.stderr == ""
    convert_csv(src, tmp_path / "api.npy", target="t", chunk_rows=100)
    assert (tmp_path / "cli.npy").read_bytes() == (tmp_path / "api.npy").read_bytes()
    # --no-header, --delimiter and --encoding reach the converter
    src2 = tmp_path / "semi.csv"
    src2.write_bytes("1;é;0\n2;b;1\n3;é;0\n".encode("latin-1"))
    res = convert_cli([src2, tmp_path / "semi.npy", "--target", "2", "--no-header",
                       "--delimiter", ";", "--encoding", "latin-1"], tmp_path / ".cache")
    assert res.exit_code == 0, res.output
    a = np.load(tmp_path / "semi.npy")
    assert a.dtype.names == ("x0", "x1", "x2") and a["x1"].tolist() == ["é", "b", "é"]


def test_overwrite_replaces_an_existing_output(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("a,y\n1,0\n2,1\n")
    out = tmp_path / "d.npy"
    out.write_bytes(b"old bytes")
    res = convert_cli([src, out, "--target", "y", "--overwrite"], tmp_path / ".cache")
    assert res.exit_code == 0, res.output
    assert np.load(out)["a"].tolist() == [1.0, 2.0]


# --------------------------------------------------------------------------- errors
def _many_numbers(n: int) -> str:
    return "\n".join(f"{i},{i * 0.5},{i % 2}" for i in range(n))


ERRORS: dict[str, tuple[str, list[str], list[str]]] = {
    # name: (CSV text, extra arguments, what the error line says)
    "ragged_row": ("a,b,y\n1,2,0\n3,4,1\n5,6\n7,8,1\n", [],
                   ["line 4: 2 fields, but the first row has 3"]),
    "ragged_row_after_blank_lines_in_a_later_chunk": (
        "a,b,y\n" + _many_numbers(10) + "\n\n\n1,2,3,4\n", [],
        ["line 14: 4 fields, but the first row has 3"]),
    "text_in_a_numeric_column": ("a,b,y\n" + _many_numbers(20) + "\n1,oops,0\n", [],
                                 ["line 22, column 'b': 'oops' is not a number",
                                  "20 numbers and 1 text cell"]),
    "missing_cell": ("a,b,y\n" + _many_numbers(9) + "\n3,,1\n", [],
                     ["line 11, column 'b': missing value", "--allow-missing"]),
    "missing_token_cell": ("a,b,y\n" + _many_numbers(9) + "\nNA,1,1\n", [],
                           ["line 11, column 'a': missing value"]),
    "missing_target": ("a,b,y\n" + _many_numbers(12) + "\n3,4,\n", ["--allow-missing"],
                       ["line 14, column 'y': the target is missing"]),
    "inf": ("a,b,y\n" + _many_numbers(12) + "\n3,inf,1\n", ["--allow-missing"],
            ["line 14, column 'b': inf is not a finite number"]),
    "minus_inf_target": ("a,b,y\n1,2,0\n3,4,-inf\n", [],
                         ["line 3, column 'y': -inf is not a finite number"]),
    "overflow": ("a,b,y\n1,2,0\n1e400,4,1\n", [],
                 ["line 3, column 'a': inf is not a finite number"]),
    "header_only": ("a,b,y\n", [], ["the file has a header but no data rows"]),
    "empty_file": ("", [], ["the file is empty"]),
    "blank_lines_only": ("\n\n  \n", [], ["the file is empty"]),
    "numbers_where_the_header_is": ("1,2,3\n4,5,6\n", [],
                                    ["line 1: the first row holds numbers", "--no-header"]),
    "too_many_categories_for_the_rows": (
        "c,y\n" + "\n".join(f"k{i},{i % 2}" for i in range(120)) + "\n", [],
        ["column 'c' holds 120 distinct text values", "line 2: 'k0'"]),
    "over_1000_categories": (
        "c,y\n" + ("\n".join(f"k{i},{i % 2}" for i in range(1001)) + "\n") * 2,
        ["--chunk-rows", "500"],
        ["column 'c' holds over 1000 distinct text values"]),
    "unknown_target": ("a,b,y\n1,2,0\n", ["--target", "zz"],
                       ["target column 'zz' is not in the header"]),
    "only_the_target": ("y\n1\n2\n", [], ["the only column is the target 'y'"]),
    "duplicate_names": ("a,a,y\n1,2,0\n", [], ["duplicate column name(s) ['a']"]),
    "bad_delimiter": ("a,b,y\n1,2,0\n", ["--delimiter", "ab"],
                      ["--delimiter must be one character"]),
    "not_utf8": (None, [], ["not utf-8 text", "--encoding"]),   # written as latin-1 below
}


def _one_error_line(res: Any) -> str:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    return lines[0]


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
@pytest.mark.parametrize("name", list(ERRORS))
def test_a_broken_csv_is_one_error_line_and_leaves_nothing(tmp_path, name, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    text, extra, says = ERRORS[name]
    src_dir, out_dir = tmp_path / "src", tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    src = src_dir / "data.csv"
    if text is None:
        src.write_bytes("a,name,y\n1,café,0\n2,bar,1\n".encode("latin-1"))
    else:
        src.write_text(text)
    keep = out_dir / "keep.txt"
    keep.write_text("unrelated")
    args = [src, out_dir / f"data{suffix}", "--chunk-rows", "3"]
    if "--target" not in extra:
        args += ["--target", "y"]
    line = _one_error_line(convert_cli(args + extra, tmp_path / ".cache"))
    for s in says:
        assert s in line
    assert sorted(os.listdir(out_dir)) == ["keep.txt"]        # no output, no temporary file
    assert sorted(os.listdir(src_dir)) == ["data.csv"]


def test_a_failed_overwrite_keeps_the_old_output(tmp_path):
    src = tmp_path / "data.csv"
    src.write_text("a,b,y\n" + _many_numbers(20) + "\n1,,0\n")
    out = tmp_path / "data.npy"
    out.write_bytes(b"the old file")
    line = _one_error_line(convert_cli([src, out, "--target", "y", "--overwrite",
                                        "--chunk-rows", "4"], tmp_path / ".cache"))
    assert "line 22, column 'b': missing value" in line
    assert out.read_bytes() == b"the old file"
    assert sorted(p for p in os.listdir(tmp_path) if p != ".cache") == ["data.csv",
                                                                        "data.npy"]


def test_an_existing_output_is_kept_without_overwrite(tmp_path):
    src = tmp_path / "data.csv"
    src.write_text("a,y\n1,0\n2,1\n")
    out = tmp_path / "data.npy"
    out.write_bytes(b"the old file")
    line = _one_error_line(convert_cli([src, out, "--target", "y"], tmp_path / ".cache"))
    assert f"{out} exists; give --overwrite to replace it" in line
    assert out.read_bytes() == b"the old file"
    assert sorted(p for p in os.listdir(tmp_path) if p != ".cache") == ["data.csv",
                                                                        "data.npy"]


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_the_output_may_not_be_the_input(tmp_path, overwrite):
    src = tmp_path / "data.npy"           # a CSV under an .npy name
    text = "a,y\n1,0\n2,1\n"
    src.write_text(text)
    line = _one_error_line(convert_cli([src, src, "--target", "y", *overwrite],
                                       tmp_path / ".cache"))
    assert "the output would overwrite the input file" in line
    link = tmp_path / "link.npy"
    link.symlink_to(src)
    line = _one_error_line(convert_cli([src, link, "--target", "y", *overwrite],
                                       tmp_path / ".cache"))
    assert "the output would overwrite the input file" in line
    assert src.read_text() == text
    assert sorted(p for p in os.listdir(tmp_path) if p != ".cache") == ["data.npy",
                                                                        "link.npy"]


@pytest.mark.parametrize("out", ["data.txt", "data", "data.npz", "data.csv"])
def test_an_unknown_output_suffix(tmp_path, out):
    src = tmp_path / "in.csv"
    src.write_text("a,y\n1,0\n2,1\n")
    line = _one_error_line(convert_cli([src, tmp_path / out, "--target", "y"],
                                       tmp_path / ".cache"))
    assert "convert writes .npy or .parquet" in line
    assert sorted(p for p in os.listdir(tmp_path) if p != ".cache") == ["in.csv"]


def test_a_missing_source_and_bad_chunk_rows(tmp_path):
    line = _one_error_line(convert_cli([tmp_path / "nope.csv", tmp_path / "o.npy",
                                        "--target", "y"], tmp_path / ".cache"))
    assert "no such file" in line
    src = tmp_path / "in.csv"
    src.write_text("a,y\n1,0\n2,1\n")
    line = _one_error_line(convert_cli([src, tmp_path / "o.npy", "--target", "y",
                                        "--chunk-rows", "0"], tmp_path / ".cache"))
    assert "chunk_rows must be a positive integer" in line
    with pytest.raises(InvalidValueError, match="chunk_rows"):
        convert_csv(src, tmp_path / "o.npy", target="y", chunk_rows=True)
    assert not (tmp_path / "o.npy").exists()


def test_convert_and_the_reader_name_the_same_line(tmp_path):
    """The converter counts lines as the reader does (blank lines included)."""
    src = tmp_path / "d.csv"
    src.write_text("a,b,y\n\n1,2,0\n\n\n" + _many_numbers(8) + "\n\n3,,1\n")
    with pytest.raises(InputFileError) as from_reader:
        read_table(src, target="y")
    with pytest.raises(InputFileError) as from_convert:
        convert_csv(src, tmp_path / "d.npy", target="y", chunk_rows=2)
    where = "line 15, column 'b': missing value"
    assert where in str(from_reader.value) and where in str(from_convert.value)
