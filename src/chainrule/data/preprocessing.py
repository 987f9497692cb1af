"""Preprocessing: feature standardisation, one-hot encoding and label encoding."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..dtypes import as_dtype, get_default_dtype
from ..errors import DTypeError, InvalidValueError, ShapeError
from ..tensor import Tensor


def _unwrap(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x.numpy() if isinstance(x, Tensor) else x)
    if a.dtype.kind not in "biuf":
        raise DTypeError(f"{name} must be numeric, got dtype {a.dtype}")
    return a


def _wrap(a: np.ndarray, like: Any) -> Any:
    return Tensor._from_op(a, None) if isinstance(like, Tensor) else a


class Standardizer:
    """Shift and scale each feature to mean 0 and standard deviation 1.

    ``transform(X) = (X - mean) / scale`` with ``mean`` and ``scale`` (the population standard
    deviation) computed in float64 by :meth:`fit` on the training part only. A constant feature
    (``max == min``) gets ``scale = 1``, so it becomes 0 instead of dividing by zero.

    The output keeps a floating input's dtype (integer input becomes the default dtype). NumPy
    arrays give NumPy arrays, tensors give tensors (constants, outside any graph).

    Shape:
        ``X``: ``(N, *features)``; ``mean`` and ``scale``: ``features``.
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def fit(self, X: Any) -> Standardizer:
        """Learn the per-feature mean and scale from ``X`` (the training data)."""
        a = _unwrap(X, "X")
        if a.ndim == 0 or a.shape[0] == 0:
            raise ShapeError(f"Standardizer.fit needs at least one sample, got shape {a.shape}")
        a64 = a.astype(np.float64, copy=False)
        if not np.isfinite(a64).all():
            raise InvalidValueError("Standardizer.fit: X contains NaN or infinite values")
        mean = a64.mean(axis=0)
        std = a64.std(axis=0)
        constant = a64.max(axis=0) == a64.min(axis=0)
        self.mean = mean
        self.scale = np.where(constant | (std == 0), 1.0, std)
        return self

    def _check(self, a: np.ndarray, what: str) -> None:
        if self.mean is None or self.scale is None:
            raise InvalidValueError(f"Standardizer.{what} called before fit (or load_state_dict)")
        if a.ndim == 0 or a.shape[1:] != self.mean.shape:
            raise ShapeError(
                f"Standardizer was fitted on features of shape {self.mean.shape}, got X of "
                f"shape {a.shape}"
            )

    @staticmethod
    def _out_dtype(a: np.ndarray) -> np.dtype:
        return a.dtype if a.dtype.kind == "f" else get_default_dtype()

    def transform(self, X: Any) -> Any:
        """``(X - mean) / scale``."""
        a = _unwrap(X, "X")
        self._check(a, "transform")
        out = (a - self.mean) / self.scale
        return _wrap(out.astype(self._out_dtype(a), copy=False), X)

    def inverse_transform(self, X: Any) -> Any:
        """``X * scale + mean``, undoing :meth:`transform`."""
        a = _unwrap(X, "X")
        self._check(a, "inverse_transform")
        out = a * self.scale + self.mean
        return _wrap(out.astype(self._out_dtype(a), copy=False), X)

    def fit_transform(self, X: Any) -> Any:
        """:meth:`fit` then :meth:`transform` on the same data."""
        return self.fit(X).transform(X)

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{"mean": ..., "scale": ...}`` as float64 arrays (ready for ``np.savez``)."""
        if self.mean is None or self.scale is None:
            raise InvalidValueError("Standardizer.state_dict called before fit")
        return {"mean": self.mean.copy(), "scale": self.scale.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> Standardizer:
        """Restore from :meth:`state_dict`; returns self."""
        try:
            mean = np.asarray(state["mean"], dtype=np.float64)
            scale = np.asarray(state["scale"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise InvalidValueError(
                "Standardizer state needs numeric arrays 'mean' and 'scale'"
            ) from None
        if mean.shape != scale.shape:
            raise ShapeError(f"mean {mean.shape} and scale {scale.shape} differ in shape")
        if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise InvalidValueError("Standardizer state: mean must be finite and scale positive")
        self.mean, self.scale = mean, scale
        return self

    def __repr__(self) -> str:
        fitted = "unfitted" if self.mean is None else f"features={self.mean.shape}"
        return f"Standardizer({fitted})"


def one_hot(y: Any, num_classes: int | None = None, dtype: Any = None) -> Any:
    """One-hot rows for integer class labels.

    Args:
        y: labels in ``0 .. num_classes-1``, shape ``(N,)``.
        num_classes: the number of columns; default ``max(y) + 1``.
        dtype: the output dtype; default the default dtype (float32).

    Returns:
        ``(N, num_classes)`` with ``out[i, y[i]] = 1`` (a tensor for a tensor input).
    """
    a = _unwrap(y, "y")
    if a.dtype.kind == "f" and not (np.isfinite(a).all() and np.all(a == np.round(a))):
        raise InvalidValueError("one_hot: labels must be integers")
    if a.ndim != 1:
        raise ShapeError(f"one_hot needs labels of shape (N,), got {a.shape}")
    labels = a.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InvalidValueError(f"one_hot: negative label {labels.min()}")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif labels.size and labels.max() >= num_classes:
        raise InvalidValueError(
            f"one_hot: label {labels.max()} is out of range for num_classes={num_classes}"
        )
    dt = get_default_dtype() if dtype is None else as_dtype(dtype)
    out = np.zeros((labels.size, int(num_classes)), dtype=dt)
    out[np.arange(labels.size), labels] = 1
    return _wrap(out, y)


def encode_labels(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Map class labels (strings or numbers) to indices ``0 .. C-1`` in sorted label order.

    Returns:
        ``(indices, classes)``: int64 indices of shape ``(N,)`` and the sorted distinct labels,
        so that ``classes[indices]`` gives back ``y``.
    """
    a = np.asarray(y.numpy() if isinstance(y, Tensor) else y)
    classes, indices = np.unique(a, return_inverse=True)
    return indices.reshape(-1).astype(np.int64), classes
