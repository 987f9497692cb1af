"""User data from files, for Python users of ``load_dataset``: CSV, NPZ (and Parquet) through the
one strict reader of the command line (:mod:`chainrule.data.reader`), so a file means the same
thing to ``chainrule train`` and to ``load_csv``.

CSV: a header row names the columns; ``target=`` names the label column. Numeric columns are
features as they are; a column of text is categorical and becomes one indicator column per
category (``"color=red"``, ...). Missing, infinite or non-numeric cells are errors naming the
line and the column. NPZ: arrays ``X`` (``(N, n_features)``) and ``y`` (``(N,)``), optionally
``X_test``/``y_test`` (a fixed test part) and ``feature_names``; read with ``allow_pickle=False``
and every array's size checked against the file before it is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidValueError
from .bundle import DatasetBundle, build_bundle
from .reader import Table, read_table


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


def _one_hot(table: Table) -> tuple[np.ndarray, tuple[str, ...]]:
    """Categorical code columns expanded into indicator columns, in place."""
    schema = table.schema
    if not schema.categories:
        return table.X, schema.columns
    cols, names = [], []
    for j, name in enumerate(schema.columns):
        if name in schema.categories:
            for k, cat in enumerate(schema.categories[name]):
                cols.append((table.X[:, j] == k).astype(np.float64))
                names.append(f"{name}={cat}")
        else:
            cols.append(table.X[:, j])
            names.append(name)
    return np.column_stack(cols), tuple(names)


def _raw(table: Table) -> RawData:
    X, names = _one_hot(table)
    if table.test_rows is None:
        return RawData(X=X, y=table.y, feature_names=names)
    n = int(table.test_rows[0])
    return RawData(X=X[:n], y=table.y[:n], feature_names=names, X_test=X[n:], y_test=table.y[n:])


def read_csv(path: Any, target: str, *, delimiter: str | None = None, header: bool = True,
             encoding: str | None = None) -> RawData:
    """Read a CSV file into features and a target column (no split), by the reader's rules.

    Raises:
        InputFileError: empty file, no header, ragged rows, missing or non-finite cells, a
            target column that is not in the header (the message lists the columns).
    """
    _open_path(path)
    if not isinstance(target, str) or not target:
        raise InvalidValueError("target= must name the label column of the CSV header")
    return _raw(read_table(path, target=target, delimiter=delimiter, header=header,
                           encoding=encoding))


def read_npz(path: Any) -> RawData:
    """Read ``X``, ``y`` (and optional ``X_test``, ``y_test``, ``feature_names``) from ``.npz``.

    Raises:
        InputFileError: not an ``.npz`` archive, object (pickled) arrays, missing keys, shapes
            that do not fit, non-numeric features, NaN or infinite values.
    """
    p = _open_path(path)
    if p.suffix.lower() != ".npz":
        raise InvalidValueError(f"{p}: not an .npz file")
    return _raw(read_table(p))


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
             delimiter: str | None = None) -> DatasetBundle:
    """A CSV file as a :class:`DatasetBundle`, split like the built-in sets.

    Args:
        path: the ``.csv`` file; its first line must name the columns.
        target: the name of the label (target) column; required.
        task: ``"classification"`` or ``"regression"``; default inferred by
            :func:`~chainrule.data.infer_task` (string labels, or integer values with at most
            20 distinct values, mean classification).
        test_size: fraction (or count) of all rows in the test part; default 0.25.
        val_size: fraction (or count) of all rows in the validation part; default none.
        seed: the split seed.
        stratify: default, stratify classification targets.
        dtype: the features' dtype (default float32).
    """
    if target is None:
        p = _open_path(path)
        frame = read_table(p, target=0)  # any column, only to list the names
        raise InvalidValueError(f"{p}: say which column is the target with target=...; the "
                                f"columns are: {', '.join(frame.schema.file_columns)}")
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
