"""The preprocessing of a run: Impute, OneHot and Standardize layers fitted on the training rows.

In memory, scikit-learn's ``SimpleImputer``, ``OneHotEncoder`` and ``StandardScaler`` fit the
training rows at once. Memory-mapped data (:mod:`chainrule.data.mapped`) is read a chunk at a
time instead, so the fit keeps a bounded amount of memory: means and most frequent categories are
counted chunk by chunk, a median is taken exactly over a block of columns at a time (one pass over
the rows per block), and ``StandardScaler.partial_fit`` accumulates the mean and variance. The
layers then apply row by row, so a batch preprocessed on its own equals the same rows of the
whole part preprocessed at once, bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.mapped import CHUNK_BYTES, MappedRows
from ..errors import InvalidValueError


def fit_preprocessing(config: Any, data: Any) -> list[Any]:
    """Impute / OneHot / Standardize layers fitted on the training rows of ``data``."""
    if isinstance(data.table.X, MappedRows):
        return _fit_streaming(config, data)
    return _fit_in_memory(config, data)


def _fit_in_memory(config: Any, data: Any) -> list[Any]:
    import chainrule as cr
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    schema = data.table.schema
    X = data.table.X[data.split.train]
    d = X.shape[1]
    layers: list[Any] = []
    cat = schema.categorical
    num = [j for j in range(d) if j not in cat]
    if config.impute is not None:
        fill = np.zeros(d)
        for cols, strategy in ((num, config.impute), (cat, "most_frequent")):
            if not cols:
                continue
            empty = [schema.columns[j] for j in cols if np.isnan(X[:, j]).all()]
            if empty:
                raise InvalidValueError(f"column(s) {empty} have no values in the training part "
                                        "to impute from")
            fill[cols] = SimpleImputer(strategy=strategy).fit(X[:, cols]).statistics_
        layers.append(cr.nn.Impute(d).set_fill(fill))
        X = np.where(np.isnan(X), fill, X)
    if cat:
        counts = [len(schema.categories[schema.columns[j]]) for j in cat]
        enc = OneHotEncoder(categories=[np.arange(k, dtype=np.float64) for k in counts],
                            handle_unknown="error").fit(X[:, cat])
        layers.append(cr.nn.OneHot(d, cat, [len(c) for c in enc.categories_]))
    if config.standardize:
        Z = X
        if cat:
            with cr.no_grad():
                Z = layers[-1](cr.tensor(X)).numpy()
        scaler = StandardScaler().fit(Z)
        mean, scale = scaler.mean_.copy(), scaler.scale_.copy()
        if cat:
            is_indicator = _indicators(layers[-1], d)
            mean[is_indicator], scale[is_indicator] = 0.0, 1.0
        layers.append(cr.nn.Standardize(Z.shape[1], dtype=config.dtype).set_statistics(
            mean, scale))
    if layers:
        layers[-1].dtype = np.dtype(config.dtype)
    return layers


def _fit_streaming(config: Any, data: Any) -> list[Any]:
    import chainrule as cr
    from sklearn.preprocessing import StandardScaler

    schema = data.table.schema
    X: MappedRows = data.table.X
    rows = np.sort(data.split.train)          # in file order: each page is read once
    d = len(schema.columns)
    cat = schema.categorical
    num = [j for j in range(d) if j not in cat]
    layers: list[Any] = []
    fill = None
    if config.impute is not None:
        fill = np.zeros(d)
        if num:
            fill[num] = (_column_means if config.impute == "mean" else _column_medians)(
                X, rows, num, schema)
        if cat:
            sizes = [len(schema.categories[schema.columns[j]]) for j in cat]
            counts = [np.zeros(k, np.int64) for k in sizes]
            for _, block in X.chunks(rows):
                for c, j in zip(counts, cat):
                    v = block[:, j]
                    c += np.bincount(v[~np.isnan(v)].astype(np.int64), minlength=len(c))
            _no_empty(schema, [j for c, j in zip(counts, cat) if c.sum() == 0])
            fill[cat] = [int(np.argmax(c)) for c in counts]    # ties: the first category
        layers.append(cr.nn.Impute(d).set_fill(fill))
    onehot = None
    if cat:
        onehot = cr.nn.OneHot(d, cat, [len(schema.categories[schema.columns[j]]) for j in cat])
        layers.append(onehot)
    if config.standardize:
        scaler = StandardScaler()
        for _, block in X.chunks(rows):
            if fill is not None:
                block = np.where(np.isnan(block), fill, block)
            if onehot is not None:
                with cr.no_grad():
                    block = onehot(cr.tensor(block)).numpy()
            scaler.partial_fit(block)
        mean, scale = scaler.mean_.copy(), scaler.scale_.copy()
        if onehot is not None:
            is_indicator = _indicators(onehot, d)
            mean[is_indicator], scale[is_indicator] = 0.0, 1.0
        layers.append(cr.nn.Standardize(len(mean), dtype=config.dtype).set_statistics(
            mean, scale))
    if layers:
        layers[-1].dtype = np.dtype(config.dtype)
    return layers


def _indicators(onehot: Any, d: int) -> np.ndarray:
    """Which outputs of ``onehot`` are category indicators (not standardised)."""
    is_indicator = np.zeros(onehot.out_features, bool)
    pos = 0
    for j in range(d):
        k = onehot.categories[onehot.columns.index(j)] if j in onehot.columns else 1
        is_indicator[pos:pos + k] = j in onehot.columns
        pos += k
    return is_indicator


def _no_empty(schema: Any, cols: list[int]) -> None:
    if cols:
        raise InvalidValueError(f"column(s) {[schema.columns[j] for j in cols]} have no values "
                                "in the training part to impute from")


def _column_means(X: MappedRows, rows: np.ndarray, cols: list[int], schema: Any) -> np.ndarray:
    sums = np.zeros(len(cols))
    counts = np.zeros(len(cols))
    for _, block in X.chunks(rows):
        v = block[:, cols]
        present = ~np.isnan(v)
        sums += np.where(present, v, 0.0).sum(axis=0)
        counts += present.sum(axis=0)
    _no_empty(schema, [j for j, c in zip(cols, counts) if c == 0])
    return sums / counts


def _column_medians(X: MappedRows, rows: np.ndarray, cols: list[int],
                    schema: Any) -> np.ndarray:
    """Exact medians, a block of columns at a time (at most 4 chunks' worth of memory)."""
    width = max(1, (4 * CHUNK_BYTES) // (8 * max(len(rows), 1)))
    out = np.zeros(len(cols))
    for b in range(0, len(cols), width):
        block_cols = cols[b:b + width]
        values = np.empty((len(rows), len(block_cols)))
        for lo, block in X.chunks(rows):
            values[lo:lo + len(block)] = block[:, block_cols]
        _no_empty(schema, [j for j, empty in zip(block_cols, np.isnan(values).all(axis=0))
                           if empty])
        out[b:b + width] = np.nanmedian(values, axis=0)
    return out
