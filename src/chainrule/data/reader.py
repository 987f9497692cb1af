"""The one strict reader of tabular files, used by ``train``, ``evaluate`` and ``predict``.

``read_table(path, ...)`` reads CSV (through pandas: separator sniffing, byte-order marks,
quoting, an ``encoding=``), NPZ/NPY (``allow_pickle=False``, every array's size checked against
the file before anything is allocated) and Parquet (with pyarrow installed) into a
:class:`Table`: a float64 matrix whose categorical columns hold category codes and whose
missing cells are NaN, the raw target column, and the :class:`Schema` that names every column.

Its rules, the same for every command:

- A CSV has a header row unless ``header=False`` is declared; a first row that looks like data
  (every cell a number) where a header is expected is an error, never a silently lost row.
- With a ``schema`` (a trained model's), columns are matched by header name and put in the
  model's order; a missing or unknown column is an error naming it. Without a header they are
  taken by position and their number must match.
- Missing cells (empty, ``NA``, ``nan``, ``null``, ``?``, ...) are an error naming row and column
  unless ``allow_missing``; infinite values, and values beyond ``max_abs`` (the model dtype's
  largest finite number), are always an error.
- Without a schema (training), a column whose cells are not all numbers is categorical: its
  sorted distinct values are its categories. With a schema, an unknown category is an error
  naming column and value.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DTypeError, ShapeError
from .arrays import InputFileError, load_npz

READER_VERSION = 1
"""Bumped whenever the same bytes could be read into other rows (a run records it)."""
MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "?", "-nan", "nat", "<na>"})
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".npz": "npz", ".npy": "npy",
           ".parquet": "parquet", ".pq": "parquet"}
_MAX_CATEGORIES = 1000


@dataclass(frozen=True)
class Schema:
    """What a model expects of raw rows.

    Attributes:
        columns: the feature columns, in the model's order.
        kinds: ``"numeric"`` or ``"categorical"`` for each column.
        categories: the sorted category names of each categorical column.
        target: the target column's name (None when unknown).
        file_columns: every column of the training file in file order (features and target), so
            a file without a header can be matched by position.
    """

    columns: tuple[str, ...]
    kinds: tuple[str, ...]
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    target: str | None = None
    file_columns: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "kinds": list(self.kinds),
                "categories": {k: list(v) for k, v in sorted(self.categories.items())},
                "target": self.target, "file_columns": list(self.file_columns)}

    @property
    def categorical(self) -> list[int]:
        return [j for j, k in enumerate(self.kinds) if k == "categorical"]


@dataclass(eq=False)
class Table:
    """Rows read from a file.

    Attributes:
        X: float64 ``(N, len(schema.columns))``; category codes in categorical columns, NaN where
            a cell is missing (only when missing values were allowed).
        y: the target column as read (float64 numbers, or strings), or None.
        schema: the columns.
        test_rows: row indices of a fixed test part (an NPZ's ``X_test``), or None.
        source: ``{"path", "sha256", "format", "bytes"}`` of the file read.
    """

    X: np.ndarray
    y: np.ndarray | None
    schema: Schema
    test_rows: np.ndarray | None = None
    source: dict[str, Any] = field(default_factory=dict)
    lines: np.ndarray | None = None
    class_names: list[str] | None = None    # names of the sorted target values, if known

    def where(self, i: int) -> str:
        """How an error names row ``i``: the file's line number for text files, the row index
        (from 0) for arrays."""
        if self.lines is not None:
            return f"{'line' if self.source.get('format', 'csv') == 'csv' else 'row'} " \
                f"{int(self.lines[i])}"
        return f"row {i}"


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_format(path: str | os.PathLike[str]) -> str:
    """``"csv"``, ``"npz"``, ``"npy"`` or ``"parquet"`` from the file's suffix."""
    p = Path(path)
    fmt = FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise InputFileError(f"{p}: unsupported file type {p.suffix or '(none)'}; use .csv, "
                             ".npz, .npy or .parquet")
    return fmt


def read_table(path: str | os.PathLike[str], *, target: str | int | None = None,
               schema: Schema | None = None, header: bool = True,
               delimiter: str | None = None, encoding: str | None = None,
               allow_missing: bool = False, max_abs: float | None = None,
               need_target: bool = False, memory_limit: int | None = None) -> Table:
    """Read a data file strictly (see the module docstring).

    Args:
        path: a ``.csv``, ``.npz``, ``.npy`` or ``.parquet`` file, or a directory of ``.npy``
            or ``.npz`` shards. ``.npy`` files and shard directories are memory-mapped: the
            table's ``X`` is then a :class:`~chainrule.data.mapped.MappedRows` that gathers rows
            on demand (see :mod:`chainrule.data.mapped`).
        target: the target column (training: its name, or its 0-based index in a file without
            a header). With a ``schema``, its target column is read when present.
        schema: a trained model's columns; None to infer them (training).
        header: whether a CSV's first row names the columns.
        delimiter, encoding: a CSV's separator (default: sniffed) and text encoding (default:
            UTF-8, or UTF-16 where a byte-order mark says so).
        allow_missing: keep missing cells as NaN (the model imputes them) instead of failing.
        max_abs: the largest magnitude a value may have (the model dtype's largest finite).
        need_target: fail when the target column is absent.
        memory_limit: refuse arrays larger than this many bytes before reading them.

    Raises:
        InputFileError: any violation of the rules, naming file, row and column.
    """
    from .mapped import data_bytes_on_disk, read_mapped, shards_sha256

    p = Path(os.fspath(path))
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    fmt = "shards" if p.is_dir() else file_format(p)
    if fmt in ("npy", "shards"):    # memory-mapped: X is MappedRows, checked while opened
        table = read_mapped(p, target=target, schema=schema, need_target=need_target,
                            allow_missing=allow_missing, max_abs=max_abs)
    else:
        if fmt == "npz":
            table = _read_arrays(p, fmt, schema, need_target, memory_limit)
        else:
            frame = _read_frame(p, fmt, header, delimiter, encoding)
            table = _from_frame(p, frame, header, target, schema, need_target,
                                fmt == "parquet")
        _check_values(p, table, allow_missing, max_abs, fmt)
    table.source = {"path": str(p.resolve()), "sha256": shards_sha256(p), "format": fmt,
                    "bytes": data_bytes_on_disk(p)}
    return table


# --------------------------------------------------------------------------- CSV and Parquet
def _encoding_of(p: Path, encoding: str | None) -> str:
    if encoding:
        try:
            "".encode(encoding)
        except LookupError:
            raise InputFileError(f"unknown text encoding {encoding!r}") from None
        return encoding
    with p.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    return "utf-8-sig"


def _sniff(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_frame(p: Path, fmt: str, header: bool, delimiter: str | None,
                encoding: str | None) -> Any:
    """All cells as stripped strings (CSV) or typed columns (Parquet); header row included for
    CSV (row 0), blank lines dropped, with each row's line number in the index."""
    import pandas as pd

    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401 - pandas needs it for Parquet
        except ImportError:
            raise InputFileError(f"{p}: reading Parquet needs pyarrow: pip install pyarrow") \
                from None
        try:
            return pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises many types for a corrupt file
            raise InputFileError(f"{p}: not a readable Parquet file ({exc})") from None
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or
                                  delimiter in "\r\n\"'"):
        raise InputFileError(f"--delimiter must be one character (not a quote or newline), got "
                             f"{delimiter!r}")
    enc = _encoding_of(p, encoding)
    try:
        text = p.read_bytes().decode(enc)
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{p}: not {enc.replace('-sig', '')} text ({exc.reason} at byte "
                             f"{exc.start}); give the file's encoding with --encoding") from None
    if "\x00" in text:
        raise InputFileError(f"{p}: holds NUL bytes; not a text (CSV) file")
    if not text.strip():
        raise InputFileError(f"{p}: the file is empty")
    sep = delimiter or _sniff(text)
    _check_widths(p, text, sep)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=sep, header=None, dtype=str,
                            keep_default_na=False, na_filter=False, skip_blank_lines=False,
                            engine="c", skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise InputFileError(f"{p}: not a readable CSV file ({str(exc).strip()})") from None
    except (ValueError, pd.errors.EmptyDataError) as exc:
        raise InputFileError(f"{p}: not a readable CSV file ({exc})") from None
    frame.index = np.arange(1, len(frame) + 1)            # line numbers
    # _check_widths has refused ragged rows, so every cell is a string (a blank line reads as
    # a row of empty cells)
    frame = frame.apply(lambda col: col.str.strip())
    # drop blank lines; a line of empty fields ("," ...) is a row of missing values, not blank
    empty = np.array((frame == "").all(axis=1), dtype=bool)
    if empty.any():
        raw = text.splitlines()
        for i in np.flatnonzero(empty):
            line = int(frame.index[i])
            empty[i] = line > len(raw) or not raw[line - 1].strip()
        frame = frame[~empty]
    if frame.empty:
        raise InputFileError(f"{p}: the file is empty")
    return frame


def _check_widths(p: Path, text: str, sep: str) -> None:
    """Every non-blank row has as many fields as the first (pandas would pad a short row)."""
    reader = csv.reader(io.StringIO(text), delimiter=sep, skipinitialspace=True)
    width = None
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise InputFileError(f"{p}, line {reader.line_num}: {len(row)} fields, but the "
                                     f"first row has {width}")
    except csv.Error as exc:
        raise InputFileError(f"{p}: not a readable CSV file ({exc})") from None


def _looks_numeric(cells: Sequence[str]) -> bool:
    for c in cells:
        try:
            float(c)
        except (TypeError, ValueError):
            return False
    return True


def _from_frame(p: Path, frame: Any, header: bool, target: Any, schema: Schema | None,
                need_target: bool, typed: bool) -> Table:
    if typed:  # Parquet: the column names are the header
        names = [str(c) for c in frame.columns]
        body = frame
        lines = np.arange(1, len(frame) + 1)
        where = "row"
    elif header:
        first = [str(c) for c in frame.iloc[0].tolist()]
        if _looks_numeric(first):
            raise InputFileError(
                f"{p}, line {int(frame.index[0])}: the first row holds numbers ({', '.join(first[:4])}"
                f"{', ...' if len(first) > 4 else ''}) where the header is expected; if the file "
                "has no header row, say so with --no-header")
        names = first
        body = frame.iloc[1:]
        lines = np.asarray(body.index)
        where = "line"
    else:
        names = _positional_names(len(frame.columns), schema)
        body = frame
        lines = np.asarray(body.index)
        where = "line"
    if any(not n for n in names):
        raise InputFileError(f"{p}: column {names.index('') + 1} has an empty name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputFileError(f"{p}: duplicate column name(s) {dupes}")
    if len(body) == 0:
        raise InputFileError(f"{p}: the file has a header but no data rows")
    columns = {n: body.iloc[:, k] for k, n in enumerate(names)}
    if schema is None:
        return _infer(p, columns, names, target, lines, where, typed)
    return _conform(p, columns, names, schema, lines, where, typed, need_target)


def _positional_names(width: int, schema: Schema | None) -> list[str]:
    if schema is None:
        return [f"x{j}" for j in range(width)]
    if schema.file_columns and width == len(schema.file_columns):
        return list(schema.file_columns)
    if width == len(schema.columns):
        return list(schema.columns)
    want = f"{len(schema.columns)}"
    if schema.file_columns and len(schema.file_columns) != len(schema.columns):
        want += f" (or {len(schema.file_columns)} with the target)"
    raise InputFileError(f"the file has {width} columns but the model expects {want}, in the "
                         "training file's order (no header: columns are matched by position)")


def _missing_mask(col: Any, typed: bool) -> np.ndarray:
    if typed and col.dtype != object:
        return col.isna().to_numpy()
    text = col.astype(str).str.strip().str.lower()
    return (col.isna() | text.isin(MISSING_TOKENS)).to_numpy()


def _as_numbers(col: Any, typed: bool) -> tuple[np.ndarray, np.ndarray]:
    """(values float64 with NaN for missing, mask of present cells that are not numbers)."""
    import pandas as pd

    missing = _missing_mask(col, typed)
    if typed and col.dtype.kind in "biuf":
        return col.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(col), bool)
    text = col.astype(str).where(~missing, None)
    values = np.array(pd.to_numeric(text, errors="coerce"), dtype=np.float64)
    # to_numeric turns "inf" and "1e400" into inf: keep them (they are caught as non-finite)
    bad = np.isnan(values) & ~missing
    values[missing] = np.nan
    return values, bad


def _infer(p: Path, columns: dict[str, Any], names: list[str], target: Any,
           lines: np.ndarray, where: str, typed: bool) -> Table:
    t_name = _target_name(p, names, target)
    features = [n for n in names if n != t_name]
    if not features:
        raise InputFileError(f"{p}: the only column is the target {t_name!r}; no features")
    X = np.empty((len(lines), len(features)), dtype=np.float64)
    kinds: list[str] = []
    categories: dict[str, tuple[str, ...]] = {}
    for j, n in enumerate(features):
        values, bad = _as_numbers(columns[n], typed)
        if not bad.any():
            X[:, j] = values
            kinds.append("numeric")
            continue
        missing = _missing_mask(columns[n], typed)
        labels = columns[n].astype(str).to_numpy()
        numbers = int((~missing & ~bad).sum())
        if numbers >= int(bad.sum()):   # mostly numbers: the text cells are typos, not categories
            i = int(np.flatnonzero(bad)[0])
            raise InputFileError(f"{p}, {where} {int(lines[i])}, column {n!r}: {labels[i]!r} is "
                                 f"not a number (the column holds {numbers} numbers and "
                                 f"{int(bad.sum())} text cell(s))")
        vocab = sorted(set(labels[~missing].tolist()))
        if len(vocab) > _MAX_CATEGORIES or (len(vocab) > 50 and len(vocab) > 0.5 * len(lines)):
            i = int(np.flatnonzero(bad)[0])
            raise InputFileError(
                f"{p}: column {n!r} holds {len(vocab)} distinct text values (e.g. {where} "
                f"{int(lines[i])}: {labels[i]!r}); as a categorical feature that is too many: "
                "drop the column, or fix the cells that are not numbers")
        codes = {v: float(k) for k, v in enumerate(vocab)}
        X[:, j] = [np.nan if m else codes[v] for v, m in zip(labels, missing)]
        kinds.append("categorical")
        categories[n] = tuple(vocab)
    y = _target_values(p, columns[t_name], t_name, lines, where, typed)
    schema = Schema(tuple(features), tuple(kinds), categories, t_name, tuple(names))
    return Table(X, y, schema, lines=lines)


def _target_name(p: Path, names: list[str], target: Any) -> str:
    if target is None:
        raise InputFileError(f"{p}: say which column is the target with --target; the columns "
                             f"are: {', '.join(names)}")
    if isinstance(target, str) and target in names:
        return target
    try:
        k = int(str(target))
    except ValueError:
        raise InputFileError(f"{p}: target column {target!r} is not in the header; the columns "
                             f"are: {', '.join(names)}") from None
    if not -len(names) <= k < len(names):
        raise InputFileError(f"{p}: target column index {k} is out of range for "
                             f"{len(names)} columns")
    return names[k]


def _target_values(p: Path, col: Any, name: str, lines: np.ndarray, where: str,
                   typed: bool) -> np.ndarray:
    missing = _missing_mask(col, typed)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputFileError(f"{p}, {where} {int(lines[i])}, column {name!r}: the target is "
                             "missing")
    values, bad = _as_numbers(col, typed)
    if not bad.any():
        if not np.isfinite(values).all():
            i = int(np.flatnonzero(~np.isfinite(values))[0])
            raise InputFileError(f"{p}, {where} {int(lines[i])}, column {name!r}: the target "
                                 f"{float(values[i])!r} is not finite")
        return values
    return col.astype(str).to_numpy().astype(str)


def _conform(p: Path, columns: dict[str, Any], names: list[str], schema: Schema,
             lines: np.ndarray, where: str, typed: bool, need_target: bool) -> Table:
    missing_cols = [c for c in schema.columns if c not in columns]
    if missing_cols:
        raise InputFileError(f"{p}: missing column(s) {missing_cols}; the model needs "
                             f"{list(schema.columns)}")
    known = set(schema.columns) | ({schema.target} if schema.target else set())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputFileError(f"{p}: unknown column(s) {unknown}; the model's columns are "
                             f"{list(schema.columns)}" + (f" (and the target {schema.target!r})"
                                                         if schema.target else ""))
    X = np.empty((len(lines), len(schema.columns)), dtype=np.float64)
    for j, (n, kind) in enumerate(zip(schema.columns, schema.kinds)):
        col = columns[n]
        if kind == "numeric":
            values, bad = _as_numbers(col, typed)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputFileError(f"{p}, {where} {int(lines[i])}, column {n!r}: "
                                     f"{str(col.iloc[i])!r} is not a number")
            X[:, j] = values
            continue
        vocab = {v: float(k) for k, v in enumerate(schema.categories.get(n, ()))}
        missing = _missing_mask(col, typed)
        labels = col.astype(str).to_numpy()
        for i in np.flatnonzero(~missing):
            if labels[i] not in vocab:
                raise InputFileError(
                    f"{p}, {where} {int(lines[i])}, column {n!r}: unknown category "
                    f"{labels[i]!r}; the model knows {sorted(vocab)[:10]}"
                    f"{' ...' if len(vocab) > 10 else ''}")
        X[:, j] = [np.nan if m else vocab[v] for v, m in zip(labels, missing)]
    y = None
    if schema.target and schema.target in columns:
        y = _target_values(p, columns[schema.target], schema.target, lines, where, typed)
    elif need_target:
        raise InputFileError(f"{p}: no target column {schema.target!r} to score against")
    return Table(X, y, schema, lines=lines)


# --------------------------------------------------------------------------- NPZ and NPY
def _read_arrays(p: Path, fmt: str, schema: Schema | None, need_target: bool,
                 memory_limit: int | None) -> Table:
    arrays = load_npz(p, memory_limit)
    if "X" not in arrays:
        raise InputFileError(f"{p}: no array named X (holds {sorted(arrays) or 'nothing'})")
    X = arrays["X"]
    y = arrays.get("y")
    if X.dtype.kind not in "biuf":
        raise InputFileError(f"{p}: X holds {X.dtype}, not numbers")
    if X.ndim != 2 or X.shape[0] == 0:
        raise InputFileError(f"{p}: X must be 2-D (samples, features) with rows, got shape "
                             f"{X.shape}")
    if y is not None:
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise InputFileError(f"{p}: y must be 1-D with one target per row of X; got shape "
                                 f"{y.shape} for X {X.shape}")
        if y.dtype.kind not in "biufUS":
            raise InputFileError(f"{p}: y holds {y.dtype}, not numbers or strings")
    test_rows = None
    if ("X_test" in arrays) != ("y_test" in arrays):
        raise InputFileError(f"{p}: X_test and y_test must be given together")
    if "X_test" in arrays and schema is None:
        Xt, yt = arrays["X_test"], arrays["y_test"]
        if Xt.ndim != 2 or Xt.shape[1] != X.shape[1] or yt.ndim != 1 or \
                yt.shape[0] != Xt.shape[0] or Xt.dtype.kind not in "biuf" or \
                y is None or (yt.dtype.kind in "US") != (y.dtype.kind in "US"):
            raise InputFileError(f"{p}: X_test {Xt.shape} / y_test {yt.shape} do not match X "
                                 f"{X.shape} / y")
        test_rows = np.arange(X.shape[0], X.shape[0] + Xt.shape[0])
        X = np.concatenate([X.astype(np.float64), Xt.astype(np.float64)])
        y = np.concatenate([y, yt])
    names = None
    if "feature_names" in arrays:
        fn = arrays["feature_names"]
        if fn.dtype.kind not in "US" or fn.shape != (X.shape[1],):
            raise InputFileError(f"{p}: feature_names must be {X.shape[1]} strings, got "
                                 f"{fn.dtype} of shape {fn.shape}")
        names = tuple(str(s) for s in fn.tolist())
        if len(set(names)) != len(names):
            raise InputFileError(f"{p}: duplicate feature names")
    X = X.astype(np.float64)
    if y is not None and y.dtype.kind in "biuf":
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            i = int(np.flatnonzero(~np.isfinite(y))[0])
            raise InputFileError(f"{p}: y[{i}] = {y[i]!r} is not finite")
    elif y is not None:
        y = y.astype(str)
    if schema is None:
        if y is None:
            raise InputFileError(f"{p}: no array named y (the targets) to train on")
        names = names or tuple(f"x{j}" for j in range(X.shape[1]))
        schema = Schema(names, ("numeric",) * len(names), {}, "y", (*names, "y"))
        return Table(X, y, schema, test_rows)
    if schema.categorical:
        raise InputFileError(f"{p}: the model has categorical columns; give its rows as CSV "
                             "or Parquet with column names")
    if X.shape[1] != len(schema.columns):
        raise InputFileError(f"{p}: X has {X.shape[1]} columns; the model expects "
                             f"{len(schema.columns)} ({', '.join(schema.columns[:6])}"
                             f"{', ...' if len(schema.columns) > 6 else ''})")
    if names is not None and names != schema.columns:
        if sorted(names) != sorted(schema.columns):
            raise InputFileError(f"{p}: feature_names {list(names)} do not match the model's "
                                 f"columns {list(schema.columns)}")
        X = X[:, [names.index(c) for c in schema.columns]]
    if need_target and y is None:
        raise InputFileError(f"{p}: no array y (the targets) to score against")
    return Table(X, y, schema)


# --------------------------------------------------------------------------- values
def _check_values(p: Path, table: Table, allow_missing: bool, max_abs: float | None,
                  fmt: str) -> None:
    X = table.X
    table.source = {"format": fmt}
    if np.isfinite(X).all() and (max_abs is None or not (np.abs(X) > max_abs).any()):
        return

    def first(mask: np.ndarray) -> tuple[str, str, float]:
        i, j = (int(v) for v in np.argwhere(mask)[0])
        return table.where(i), table.schema.columns[j], float(X[i, j])

    nan = np.isnan(X)
    if nan.any() and not allow_missing:
        at, col, _ = first(nan)
        raise InputFileError(f"{p}, {at}, column {col!r}: missing value; missing values are "
                             "filled only by a model trained with --impute mean|median")
    inf = np.isinf(X)
    if inf.any():
        at, col, v = first(inf)
        raise InputFileError(f"{p}, {at}, column {col!r}: {v!r} is not a finite number")
    if max_abs is not None:
        big = np.abs(np.where(nan, 0.0, X)) > max_abs
        if big.any():
            at, col, v = first(big)
            raise InputFileError(f"{p}, {at}, column {col!r}: {v!r} overflows the model's dtype "
                                 f"(largest finite value {max_abs:.4g})")


def table_from_arrays(X: np.ndarray, y: np.ndarray, feature_names: Sequence[str],
                      target: str = "target", test_rows: np.ndarray | None = None) -> Table:
    """A numeric :class:`Table` from in-memory arrays (the built-in data sets)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ShapeError(f"X must be 2-D, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise DTypeError("X holds NaN or infinite values")
    names = tuple(str(n) for n in feature_names)
    schema = Schema(names, ("numeric",) * len(names), {}, target, (*names, target))
    return Table(X, np.asarray(y), schema, test_rows)


__all__ = ["Schema", "Table", "InputFileError", "read_table", "file_sha256", "file_format",
           "table_from_arrays", "MISSING_TOKENS"]
