"""Reading feature files for prediction, and writing predictions (``chainrule predict``)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InvalidValueError


class InputFileError(InvalidValueError):
    """A feature file that cannot be read as the model's inputs."""


def read_features(path: str | Path, feature_names: Sequence[str] | None,
                  n_features: int | None) -> np.ndarray:
    """Features (N, n_features) from a CSV file with a header row, or an NPZ file with ``X``.

    A CSV header naming the model's features selects those columns in that order (extra columns,
    such as the target, are ignored); otherwise the file must have exactly ``n_features`` columns.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: no such file")
    if p.suffix.lower() == ".npz":
        return _read_npz(p, n_features)
    return _read_csv(p, feature_names, n_features)


def _read_npz(p: Path, n_features: int | None) -> np.ndarray:
    try:
        with np.load(p, allow_pickle=False) as f:
            if "X" not in f:
                raise InputFileError(f"{p}: no array named X (has {sorted(f.files)})")
            X = f["X"]
    except InputFileError:
        raise
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{p}: not a readable .npz file ({exc})") from None
    if X.dtype.kind not in "biuf":
        raise InputFileError(f"{p}: X holds {X.dtype}, not numbers")
    if X.ndim != 2 or (n_features is not None and X.shape[1] != n_features):
        raise InputFileError(f"{p}: X has shape {X.shape}; the model expects (N, {n_features})")
    return X.astype(np.float64)


def _read_csv(p: Path, feature_names: Sequence[str] | None, n_features: int | None) -> np.ndarray:
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise InputFileError(f"{p}: not a text (CSV) file") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise InputFileError(f"{p}: the file is empty")
    header = [c.strip() for c in rows[0]]
    body = rows[1:]
    if not body:
        raise InputFileError(f"{p}: the file has a header but no rows")
    if feature_names and set(feature_names) <= set(header):
        columns = [header.index(n) for n in feature_names]
    else:
        if n_features is not None and len(header) != n_features:
            raise InputFileError(f"{p}: {len(header)} columns, but the model expects "
                                 f"{n_features} features")
        columns = list(range(len(header)))
    X = np.empty((len(body), len(columns)))
    for i, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputFileError(f"{p}: row {i} has {len(row)} values, the header has "
                                 f"{len(header)}")
        for j, c in enumerate(columns):
            cell = row[c].strip()
            try:
                v = float(cell)
            except ValueError:
                raise InputFileError(f"{p}: row {i}, column {header[c]!r}: {cell!r} is not a "
                                     "number") from None
            if not math.isfinite(v):
                raise InputFileError(f"{p}: row {i}, column {header[c]!r}: {cell!r} is not a "
                                     "finite number")
            X[i - 2, j] = v
    return X


def format_predictions(bundle: Any, outputs: np.ndarray, proba: bool) -> str:
    """CSV text: one line per row, ``prediction`` (and ``p_<class>`` columns with ``proba``)."""
    from .reference.lecture import softmax
    from .train import predict_classes

    run = bundle.run
    task = run.get("task", "classification")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if task == "regression":
        w.writerow(["prediction"])
        for v in outputs.reshape(len(outputs), -1)[:, 0]:
            w.writerow([f"{v:.6g}"])
        return buf.getvalue()
    names = run.get("class_names") or [str(i) for i in range(int(run.get("num_classes") or 2))]
    kind = run.get("prediction", "argmax")
    classes = predict_classes(outputs, kind)
    if kind == "sign":
        classes = (classes > 0).astype(np.int64)
    if proba:
        if kind == "argmax":
            p = softmax(outputs.astype(np.float64))
        elif kind == "logit":
            p1 = 1 / (1 + np.exp(-outputs.astype(np.float64).reshape(-1)))
            p = np.column_stack([1 - p1, p1])
        else:
            raise InvalidValueError("--proba needs a model with probabilities (cross-entropy "
                                    "or bce); this one predicts sign(h(x)) under the square loss")
        w.writerow(["prediction", *(f"p_{n}" for n in names)])
        for c, row in zip(classes, p):
            w.writerow([names[c], *(f"{v:.6f}" for v in row)])
    else:
        w.writerow(["prediction"])
        for c in classes:
            w.writerow([names[c]])
    return buf.getvalue()
