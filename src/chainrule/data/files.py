"""User data from files: CSV with a header row, and NumPy ``.npz`` archives with ``X`` and ``y``.

CSV: the first line names the columns; ``target=`` names the label column and every other column
is a numeric feature. Every cell must hold a finite number (the target column may hold strings,
which become class indices; the mapping is kept in ``class_names``). Errors name the file, the
line and the column.

NPZ: arrays ``X`` (``(N, n_features)``) and ``y`` (``(N,)``), optionally ``X_test``/``y_test``
(a fixed test part) and ``feature_names`` (strings); loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import csv
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DTypeError, FileFormatError, InvalidValueError, ShapeError
from .bundle import DatasetBundle, build_bundle

_MISSING = {"", "na", "nan", "n/a", "null", "none", "?", "-nan"}


@dataclass(eq=False)
class RawData:
    """Features and targets read from a file, before any split.

    ``y`` holds the target column as read: numbers (float64) or strings.
    """

    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def _open_path(path: Any) -> Path:
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.is_dir():
        raise InvalidValueError(f"{p} is a directory, not a data file")
    return p


def _number(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v


def _read_rows(p: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """Non-blank rows with their 1-based line numbers."""
    try:
        with p.open("r", newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=delimiter, skipinitialspace=True)
            return [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise FileFormatError(f"{p}: not a readable CSV file ({exc})") from None


def read_csv(path: Any, target: str, *, delimiter: str = ",") -> RawData:
    """Read a CSV file with a header row into features and a target column (no split).

    Raises:
        FileFormatError: empty file, no header, ragged rows, non-numeric or missing cells.
        InvalidValueError: the target column is not in the header.
    """
    p = _open_path(path)
    if not isinstance(target, str) or not target:
        raise InvalidValueError("target= must name the label column of the CSV header")
    rows = _read_rows(p, delimiter)
    if not rows:
        raise FileFormatError(f"{p}: the file is empty (a header row and data rows are needed)")
    header_line, header = rows[0]
    names = [h.strip() for h in header]
    if all(_number(h) is not None for h in names if h):
        raise FileFormatError(
            f"{p}, line {header_line}: the first row holds numbers, not column names; the CSV "
            "needs a header row naming the columns"
        )
    if any(not h for h in names):
        col = names.index("") + 1
        raise FileFormatError(f"{p}, line {header_line}: column {col} has an empty name")
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise FileFormatError(f"{p}, line {header_line}: duplicate column name(s) {dupes}")
    if target not in names:
        raise InvalidValueError(
            f"{p}: target column {target!r} is not in the header; the columns are: "
            + ", ".join(names)
        )
    data = rows[1:]
    if not data:
        raise FileFormatError(f"{p}: the file has a header but no data rows")
    width = len(names)
    for line, r in data:
        if len(r) != width:
            raise FileFormatError(
                f"{p}, line {line}: {len(r)} fields, but the header has {width} columns"
            )
    t = names.index(target)
    feature_names = tuple(n for k, n in enumerate(names) if k != t)
    if not feature_names:
        raise FileFormatError(f"{p}: the only column is the target {target!r}; no features")
    cells = [[c.strip() for c in r] for _, r in data]
    feature_cols = [k for k in range(width) if k != t]
    try:
        X = np.array([[row[k] for k in feature_cols] for row in cells], dtype=np.float64)
        ok = bool(np.isfinite(X).all())
    except ValueError:
        ok = False
    if not ok:
        _locate_bad_cell(p, data, cells, names, feature_cols)
    target_cells = [row[t] for row in cells]
    for i, cell in enumerate(target_cells):
        if cell.lower() in _MISSING:
            raise FileFormatError(
                f"{p}, line {data[i][0]}, column {target!r}: the target cell "
                + ("is empty" if cell == "" else f"holds a missing value ({cell!r})")
            )
    numbers = [_number(c) for c in target_cells]
    if all(v is not None for v in numbers):
        y = np.array(numbers, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            i = int(bad[0])
            raise FileFormatError(f"{p}, line {data[i][0]}, column {target!r}: the target "
                                  f"{target_cells[i]!r} is not finite")
    else:
        y = np.array(target_cells, dtype=str)
    return RawData(X=X, y=y, feature_names=feature_names)


def _locate_bad_cell(p: Path, data: list[tuple[int, list[str]]], cells: list[list[str]],
                     names: list[str], feature_cols: list[int]) -> None:
    """Raise for the first feature cell (in file order) that is not a finite number."""
    for i, row in enumerate(cells):
        for k in feature_cols:
            cell = row[k]
            v = None if cell.lower() in _MISSING else _number(cell)
            if v is None or not np.isfinite(v):
                problem = ("is empty" if cell == "" else
                           f"holds a missing value ({cell!r})" if cell.lower() in _MISSING else
                           f"holds {cell!r}, which is not finite" if v is not None else
                           f"holds {cell!r}, which is not a number")
                raise FileFormatError(
                    f"{p}, line {data[i][0]}, column {names[k]!r}: the cell {problem}; "
                    "feature columns must hold finite numbers"
                )
    raise FileFormatError(f"{p}: the feature columns could not be read as numbers")


def _check_numeric(p: Path, key: str, a: np.ndarray) -> None:
    if a.dtype.kind not in "biuf":
        raise DTypeError(f"{p}: array {key!r} has dtype {a.dtype}; it must be numeric")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise InvalidValueError(f"{p}: array {key!r} has a NaN or infinite value at "
                                f"index {tuple(int(i) for i in bad)}")


def read_npz(path: Any) -> RawData:
    """Read ``X``, ``y`` (and optional ``X_test``, ``y_test``, ``feature_names``) from ``.npz``.

    Raises:
        FileFormatError: not an ``.npz`` archive, object (pickled) arrays, missing keys.
        ShapeError: ``X`` not 2-D, ``y`` not 1-D, or row counts that differ.
        DTypeError / InvalidValueError: non-numeric features, NaN or infinite values.
    """
    p = _open_path(path)
    try:
        archive = np.load(p, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise FileFormatError(f"{p}: not a readable .npz archive ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise FileFormatError(f"{p}: a single .npy array, not an .npz archive with X and y")
    with archive:
        keys = set(archive.files)
        missing = [k for k in ("X", "y") if k not in keys]
        if missing:
            raise FileFormatError(
                f"{p}: missing array(s) {', '.join(missing)}; the archive holds "
                f"{', '.join(sorted(keys)) or 'nothing'} (expected X and y, optionally X_test, "
                "y_test, feature_names)"
            )
        if ("X_test" in keys) != ("y_test" in keys):
            raise FileFormatError(f"{p}: X_test and y_test must be given together")
        arrays: dict[str, np.ndarray] = {}
        for key in ("X", "y", "X_test", "y_test", "feature_names"):
            if key not in keys:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError as exc:
                if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                    raise FileFormatError(
                        f"{p}: array {key!r} is an object array; chainrule reads .npz files "
                        "with allow_pickle=False, so store plain numeric (or string) arrays"
                    ) from None
                raise FileFormatError(f"{p}: array {key!r} cannot be read ({exc})") from None
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise FileFormatError(f"{p}: array {key!r} cannot be read ({exc})") from None
    X, y = arrays["X"], arrays["y"]
    X_test, y_test = arrays.get("X_test"), arrays.get("y_test")
    for xk, yk, Xa, ya in (("X", "y", X, y), ("X_test", "y_test", X_test, y_test)):
        if Xa is None:
            continue
        if Xa.ndim != 2:
            raise ShapeError(f"{p}: {xk} must be 2-D (samples, features), got shape {Xa.shape}")
        if ya.ndim != 1:
            raise ShapeError(f"{p}: {yk} must be 1-D (one target per sample), got shape "
                             f"{ya.shape}")
        if Xa.shape[0] != ya.shape[0]:
            raise ShapeError(f"{p}: {xk} has {Xa.shape[0]} rows but {yk} has {ya.shape[0]}")
        if Xa.shape[0] == 0:
            raise ShapeError(f"{p}: {xk} has no rows")
        _check_numeric(p, xk, Xa)
        if ya.dtype.kind not in "US":
            _check_numeric(p, yk, ya)
    if X_test is not None and X_test.shape[1] != X.shape[1]:
        raise ShapeError(f"{p}: X has {X.shape[1]} features but X_test has {X_test.shape[1]}")
    if X_test is not None and (y.dtype.kind in "US") != (y_test.dtype.kind in "US"):
        raise DTypeError(f"{p}: y and y_test must both be numbers or both be strings")
    if "feature_names" in arrays:
        fn = arrays["feature_names"]
        if fn.dtype.kind not in "US" or fn.shape != (X.shape[1],):
            raise ShapeError(f"{p}: feature_names must be {X.shape[1]} strings, got "
                             f"{fn.dtype} of shape {fn.shape}")
        names = tuple(str(s) for s in fn.tolist())
    else:
        names = tuple(f"x{i}" for i in range(X.shape[1]))
    return RawData(X=X, y=y, feature_names=names, X_test=X_test, y_test=y_test)


def _bundle(p: Path, raw: RawData, kind: str, what: str, task: str | None, test_size: Any,
            val_size: Any, seed: int, stratify: bool | None, dtype: Any) -> DatasetBundle:
    return build_bundle(
        p.stem, raw.X, raw.y, task=task, test_size=test_size, val_size=val_size, seed=seed,
        stratify=stratify, dtype=dtype, X_test=raw.X_test, y_test=raw.y_test,
        feature_names=raw.feature_names,
        description=f"user data from the {kind} file {p.name}", source=str(p), what=what,
    )


def load_csv(path: Any, target: str | None = None, *, task: str | None = None,
             test_size: Any = 0.25, val_size: Any = None, seed: int = 0,
             stratify: bool | None = None, dtype: Any = None,
             delimiter: str = ",") -> DatasetBundle:
    """A CSV file as a :class:`DatasetBundle`, split like the built-in sets.

    Args:
        path: the ``.csv`` file; its first line must name the columns.
        target: the name of the label (target) column; required.
        task: ``"classification"`` or ``"regression"``; default inferred by
            :func:`~chainrule.data.infer_task` (string labels, or integer values with at most
            20 distinct values, mean classification).
        test_size, val_size: fractions (or counts) of all rows; defaults 0.25 and none.
        seed: the split seed. stratify: default, stratify classification targets.
        dtype: the features' dtype (default float32).
    """
    if target is None:
        p = _open_path(path)
        rows = _read_rows(p, delimiter)
        first = rows[0][1] if rows else []
        raise InvalidValueError(
            f"{p}: say which column is the target with target=...; the columns are: "
            + (", ".join(h.strip() for h in first) or "(none: the file is empty)")
        )
    p = _open_path(path)
    return _bundle(p, read_csv(p, target, delimiter=delimiter), "CSV",
                   f"{p}, column {target!r}", task, test_size, val_size, seed, stratify, dtype)


def load_npz(path: Any, *, task: str | None = None, test_size: Any = 0.25, val_size: Any = None,
             seed: int = 0, stratify: bool | None = None, dtype: Any = None) -> DatasetBundle:
    """An ``.npz`` archive as a :class:`DatasetBundle`.

    With ``X_test``/``y_test`` in the archive they are the test part and ``val_size`` is a
    fraction of ``X``; otherwise ``X``/``y`` are split as in :func:`load_csv`.
    """
    p = _open_path(path)
    return _bundle(p, read_npz(p), "NPZ", f"{p}, array 'y'", task, test_size, val_size, seed,
                   stratify, dtype)
