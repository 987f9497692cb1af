"""Datasets: the indexable collections a :class:`~chainrule.data.DataLoader` draws batches from.

A :class:`Dataset` is anything with ``__len__`` and ``__getitem__(i)`` returning one sample (a
tuple of arrays or numbers). :class:`TensorDataset` holds whole arrays that share their first
dimension; the loader slices them directly instead of calling ``__getitem__`` once per sample.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..dtypes import as_dtype, get_default_dtype, is_floating
from ..errors import DTypeError, IndexingError, InvalidValueError, ShapeError
from ..tensor import Tensor


class Dataset:
    """Abstract base: a sized, indexable collection of samples.

    Subclasses implement ``__len__`` and ``__getitem__(i)``; the item is a tuple of fields (for
    example ``(features, label)``), each a NumPy array, a number or a :class:`~chainrule.Tensor`.
    The default :class:`~chainrule.data.DataLoader` stacks the fields of ``batch_size`` items.
    """

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")


def convert_field(array: Any, dtype: np.dtype, what: str) -> Any:
    """``array`` as a backend array with chainrule's data-type rule.

    Floating arrays take ``dtype`` (the features' dtype, float32 unless asked otherwise; never a
    silent float64), integer arrays become int64 (class labels), bool stays bool. The array is
    copied only when its dtype changes.
    """
    a = array.data if isinstance(array, Tensor) else array
    if not hasattr(a, "dtype"):
        a = np.asarray(a)
    kind = a.dtype.kind
    if kind == "f":
        return a.astype(dtype, copy=False)
    if kind in "iu":
        return a.astype(np.int64, copy=False)
    if kind == "b":
        return a
    raise DTypeError(f"{what} has dtype {a.dtype}; datasets hold numbers (float, int or bool)")


def feature_dtype(dtype: Any) -> np.dtype:
    """``dtype`` checked to be floating, or the default dtype when None."""
    dt = get_default_dtype() if dtype is None else as_dtype(dtype)
    if not is_floating(dt):
        raise DTypeError(f"the features' dtype must be floating, got {dt}")
    return dt


class TensorDataset(Dataset):
    """Arrays (or tensors) that share their first dimension, indexed together.

    ``TensorDataset(X, y)[i]`` is ``(X[i], y[i])`` as tensors that share memory with ``X``/``y``.

    Args:
        *arrays: one or more arrays, nested lists or :class:`~chainrule.Tensor` objects with the
            same length along axis 0.
        dtype: the dtype floating arrays are stored in (default: the default dtype, float32).
            Integer arrays are stored as int64. Conversion happens once, here.

    Shape:
        every array is ``(N, ...)``; ``len(dataset) == N``.
    """

    def __init__(self, *arrays: Any, dtype: Any = None) -> None:
        if not arrays:
            raise InvalidValueError("TensorDataset needs at least one array")
        self.dtype = feature_dtype(dtype)
        fields = []
        for k, a in enumerate(arrays):
            f = convert_field(a, self.dtype, f"array {k}")
            if f.ndim == 0:
                raise ShapeError(f"array {k} is a scalar; TensorDataset needs arrays of shape (N, ...)")
            fields.append(f)
        n = fields[0].shape[0]
        for k, f in enumerate(fields[1:], start=1):
            if f.shape[0] != n:
                raise ShapeError(
                    f"TensorDataset arrays must share their first dimension: array 0 has "
                    f"{n} rows, array {k} has {f.shape[0]} (shapes {tuple(fields[0].shape)} "
                    f"and {tuple(f.shape)})"
                )
        self.arrays: tuple[Any, ...] = tuple(fields)

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        """One sample (an integer index) or a batch (a slice or an integer index array)."""
        if isinstance(index, Tensor):
            index = index.data
        if not isinstance(index, slice) and not hasattr(index, "__len__"):
            try:
                i = operator.index(index)
            except TypeError:
                raise IndexingError(
                    f"TensorDataset indices are integers, slices or integer arrays, got "
                    f"{type(index).__name__}"
                ) from None
            n = len(self)
            if not -n <= i < n:
                raise IndexingError(f"index {i} is out of range for a dataset of {n} samples")
            index = i
        return tuple(Tensor._from_op(a[index], None) for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{tuple(a.shape)} {a.dtype}" for a in self.arrays)
        return f"TensorDataset({shapes})"


class RowsDataset(Dataset):
    """Rows of a feature matrix, in memory or memory-mapped, prepared a batch at a time.

    ``RowsDataset(X, rows, targets, transform)[i]`` is ``(transform(X[rows[i]]), targets[i])``;
    the loader asks for whole batches through ``__getitems__`` (PyTorch's name for the batched
    fetch), so a batch is one gather from ``X`` (a
    :class:`~chainrule.data.mapped.MappedRows` reads only those rows from its files) and one call
    of ``transform``, and the part is never held whole.

    Args:
        X: ``(N, d)`` raw rows (an array or :class:`~chainrule.data.mapped.MappedRows`).
        rows: ``(n,)`` the indices into ``X`` of this part.
        targets: ``(n, ...)`` the targets of those rows, already in their final dtype.
        transform: raw float64 rows ``(b, d)`` -> inputs ``(b, d')`` (the preprocessing).
    """

    def __init__(self, X: Any, rows: Any, targets: Any, transform: Any) -> None:
        self.X, self.rows, self.targets, self.transform = X, np.asarray(rows), targets, transform
        if len(self.rows) != len(targets):
            raise ShapeError(f"{len(self.rows)} rows but {len(targets)} targets")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitems__(self, index: Any) -> tuple[Any, Any]:
        """The batch at positions ``index`` (a slice or an integer array): ``(inputs, targets)``
        as arrays."""
        return self.transform(np.asarray(self.X[self.rows[index]])), self.targets[index]

    def __getitem__(self, index: Any) -> tuple[Tensor, Tensor]:
        i = operator.index(index)
        if not -len(self) <= i < len(self):
            raise IndexingError(f"index {i} is out of range for a dataset of {len(self)} samples")
        x, t = self.__getitems__(np.array([i]))
        return Tensor._from_op(x[0], None), Tensor._from_op(np.asarray(t[0]), None)
