"""Preprocessing as layers: what turns raw rows into the network's inputs travels inside the model.

A model trained by ``chainrule train`` is ``Sequential(Impute?, OneHot?, Standardize?, MLP)``: the
fitted numbers (fill values, category counts, means and scales) are buffers and config of these
layers, so ``chainrule.load`` gives one object from raw rows to predictions and nothing outside
the model file has to remember how the features were scaled. The numbers are fitted with
scikit-learn (``SimpleImputer``, ``OneHotEncoder``, ``StandardScaler``) by the training run;
these layers only apply them.

Every layer computes in float64 (the raw rows' precision) and casts its output to ``dtype``;
the last preprocessing layer of a model casts to the network's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

import chainrule as cr
from chainrule.errors import InvalidValueError, ShapeError

from .linear import _float_dtype
from .module import Module, register_layer

_MAX_CATEGORIES = 100_000


def _count(name: str, v: Any, low: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not low <= v <= 2**31:
        raise InvalidValueError(f"{name} must be an integer in [{low}, 2**31], got {v!r}")
    return int(v)


def _input(layer: str, x: Any, n: int) -> cr.Tensor:
    t = x if isinstance(x, cr.Tensor) else cr.tensor(np.asarray(x, dtype=np.float64))
    if t.ndim != 2 or t.shape[1] != n:
        raise ShapeError(f"{layer} expects rows of {n} raw features, shape (N, {n}); got "
                         f"{tuple(t.shape)}")
    if t.dtype.kind != "f":
        t = t.astype("float64")
    return t


@register_layer
class Standardize(Module):
    r"""Scale each feature to mean 0 and variance 1 with statistics of the training part:
    x' = (x - mean) / scale, computed in float64, then cast to ``dtype``.

    ``mean`` and ``scale`` (the population standard deviation; 1 for a constant feature, as in
    scikit-learn's ``StandardScaler``) are buffers, saved with the model.

    Args:
        num_features: d, the number of features.
        dtype: the output dtype (the network's). Default: float32.

    Shape: (N, d) -> (N, d).
    """

    def __init__(self, num_features: int, dtype: Any = "float32") -> None:
        super().__init__()
        self.num_features = _count("Standardize: num_features", num_features)
        self.dtype = np.dtype(_float_dtype("Standardize", dtype))
        self.register_buffer("mean", cr.zeros(self.num_features, dtype="float64"))
        self.register_buffer("scale", cr.ones(self.num_features, dtype="float64"))

    def set_statistics(self, mean: Any, scale: Any) -> Standardize:
        """Store fitted statistics (finite means, positive finite scales); returns self."""
        m = np.asarray(mean, dtype=np.float64).reshape(-1)
        s = np.asarray(scale, dtype=np.float64).reshape(-1)
        if m.shape != (self.num_features,) or s.shape != (self.num_features,):
            raise ShapeError(f"Standardize: {self.num_features} means and scales needed, got "
                             f"{m.shape} and {s.shape}")
        if not (np.isfinite(m).all() and np.isfinite(s).all() and (s > 0).all()):
            raise InvalidValueError("Standardize: means must be finite and scales positive")
        self.mean = cr.tensor(m)
        self.scale = cr.tensor(s)
        return self

    def forward(self, x: Any) -> cr.Tensor:
        """(x - mean) / scale per column, computed in float64 and cast to ``dtype``;
        (N, d) -> (N, d).
        """
        t = _input("Standardize", x, self.num_features)
        out = (t.astype("float64") - self.mean.astype("float64")) / self.scale.astype("float64")
        return out.astype(self.dtype)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``num_features``, ``dtype``),
        JSON-serialisable.
        """
        return {"num_features": self.num_features, "dtype": str(self.dtype)}

    def extra_repr(self) -> str:
        """``num_features=..., dtype=...``: the constructor arguments shown inside this layer's
        ``repr``.
        """
        return f"num_features={self.num_features}, dtype={self.dtype}"


@register_layer
class Impute(Module):
    r"""Replace missing values (NaN) of each column by a fill value fitted on the training part
    (scikit-learn's ``SimpleImputer``: the column's mean or median, the most frequent category
    code for a categorical column): x'_j = fill_j where x_j is NaN, else x_j.

    Gradients flow to the values that were present (d x'_j / d x_j = 1 there, 0 where filled).

    Args:
        num_features: d, the number of raw columns.
        dtype: the output dtype. Default: float64.

    Shape: (N, d) -> (N, d).
    """

    def __init__(self, num_features: int, dtype: Any = "float64") -> None:
        super().__init__()
        self.num_features = _count("Impute: num_features", num_features)
        self.dtype = np.dtype(_float_dtype("Impute", dtype))
        self.register_buffer("fill", cr.zeros(self.num_features, dtype="float64"))

    def set_fill(self, fill: Any) -> Impute:
        """Store the fitted fill values (finite, one per column); returns self."""
        f = np.asarray(fill, dtype=np.float64).reshape(-1)
        if f.shape != (self.num_features,) or not np.isfinite(f).all():
            raise InvalidValueError(f"Impute: {self.num_features} finite fill values needed")
        self.fill = cr.tensor(f)
        return self

    def forward(self, x: Any) -> cr.Tensor:
        """``x`` with each NaN replaced by its column's fill value, cast to ``dtype``;
        (N, d) -> (N, d).
        """
        t = _input("Impute", x, self.num_features).astype("float64")
        missing = cr.get_xp(t.data).isnan(t.data)
        if not missing.any():
            return t.astype(self.dtype)
        fill = self.fill.astype("float64").reshape(1, -1)
        return cr.where(missing, fill, t).astype(self.dtype)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``num_features``, ``dtype``),
        JSON-serialisable.
        """
        return {"num_features": self.num_features, "dtype": str(self.dtype)}

    def extra_repr(self) -> str:
        """``num_features=...``: the constructor arguments shown inside this layer's ``repr``."""
        return f"num_features={self.num_features}"


@register_layer
class OneHot(Module):
    r"""Expand categorical columns, which hold category codes 0..k-1, into k indicator columns
    each (scikit-learn's ``OneHotEncoder`` with fixed categories); numeric columns pass through.
    The categories' names live in the model file's metadata; the reader maps names to codes.

    Args:
        num_features: d, the number of raw columns.
        columns: the indices of the categorical columns (ascending).
        categories: k for each of ``columns`` (at least 1).
        dtype: the output dtype. Default: float64.

    Shape: (N, d) -> (N, d - len(columns) + sum(categories)), columns in input order, each
    categorical column replaced by its k indicators in place.
    """

    def __init__(self, num_features: int, columns: Sequence[int], categories: Sequence[int],
                 dtype: Any = "float64") -> None:
        super().__init__()
        self.num_features = _count("OneHot: num_features", num_features)
        if not isinstance(columns, (list, tuple)) or not isinstance(categories, (list, tuple)):
            raise InvalidValueError("OneHot: columns and categories must be lists of integers")
        if len(columns) != len(categories) or not columns:
            raise InvalidValueError("OneHot: one category count per categorical column needed")
        cols = [_count("OneHot: a column index", c, 0) for c in columns]
        if any(c >= self.num_features for c in cols) or cols != sorted(set(cols)):
            raise InvalidValueError(f"OneHot: columns must be distinct, ascending indices below "
                                    f"{self.num_features}, got {list(columns)}")
        self.columns = cols
        self.categories = [_count("OneHot: a category count", k, 1) for k in categories]
        if sum(self.categories) > _MAX_CATEGORIES:
            raise InvalidValueError(f"OneHot: more than {_MAX_CATEGORIES} categories in all")
        self.dtype = np.dtype(_float_dtype("OneHot", dtype))

    @property
    def out_features(self) -> int:
        """The output width: d - len(columns) + sum(categories)."""
        return self.num_features - len(self.columns) + sum(self.categories)

    def forward(self, x: Any) -> cr.Tensor:
        """Each categorical column replaced in place by its k indicator columns.

        Raises:
            InvalidValueError: a value of a categorical column is not a code in 0..k-1.
        """
        t = _input("OneHot", x, self.num_features).astype("float64")
        xp = cr.get_xp(t.data)
        pieces: list[cr.Tensor] = []
        start = 0
        for j, k in zip(self.columns, self.categories):
            if j > start:
                pieces.append(t[:, start:j])
            codes = t.data[:, j]
            bad = ~((codes >= 0) & (codes < k) & (codes == xp.floor(codes)))
            if bad.any():
                row = int(xp.flatnonzero(bad)[0])
                raise InvalidValueError(f"OneHot: column {j}, row {row}: {float(codes[row])!r} "
                                        f"is not a category code in 0..{k - 1}")
            pieces.append(cr.tensor((codes[:, None] == xp.arange(k)[None, :]).astype(
                np.float64)))
            start = j + 1
        if start < self.num_features:
            pieces.append(t[:, start:])
        return cr.concat(pieces, axis=1).astype(self.dtype)

    def config(self) -> dict[str, Any]:
        """The keyword arguments that rebuild this layer (``num_features``, ``columns``,
        ``categories``, ``dtype``), JSON-serialisable.
        """
        return {"num_features": self.num_features, "columns": list(self.columns),
                "categories": list(self.categories), "dtype": str(self.dtype)}

    def extra_repr(self) -> str:
        """``num_features=..., columns=...``: the constructor arguments shown inside this layer's
        ``repr``.
        """
        return f"num_features={self.num_features}, columns={self.columns}"


PREPROCESSING = (Impute, OneHot, Standardize)
"""The preprocessing layer types, in the order a trained model applies them."""


def input_dtype(model: Module) -> np.dtype:
    """The dtype raw rows should have for ``model``: float64 where the model starts with a
    preprocessing layer (it computes in float64), else the dtype of its first parameter."""
    first = model
    while isinstance(first, cr.nn.Sequential) and len(first) and not isinstance(
            first, cr.nn.MLP):
        first = first[0]
    if isinstance(first, PREPROCESSING):
        return np.dtype(np.float64)
    for p in model.parameters():
        return np.dtype(p.dtype)
    return np.dtype(np.float64)


__all__ = ["Standardize", "Impute", "OneHot", "PREPROCESSING", "input_dtype"]
