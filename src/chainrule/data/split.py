"""Train/validation/test splits (optionally stratified) and task inference.

``split(X, y, test_size=0.25, val_size=0.1, seed=0)`` shuffles with a seeded
:class:`chainrule.Generator` and, for classification targets, keeps each class's proportion in
every part (stratification by largest remainders, so the part sizes are exact).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from .. import random as _random
from ..errors import InvalidValueError, ShapeError
from ..tensor import Tensor

#: Integer-valued targets with at most this many distinct values are taken as class labels.
MAX_INFERRED_CLASSES = 20


def infer_task(y: Any, max_classes: int = MAX_INFERRED_CLASSES) -> str:
    """``"classification"`` or ``"regression"`` for a target vector.

    The rule: string or bool targets, and integer-valued numeric targets with at most
    ``max_classes`` (20) distinct values, are class labels; anything else is a regression target.
    Every loader takes ``task=`` to override it.
    """
    a = np.asarray(y.data if isinstance(y, Tensor) else y)
    if a.dtype.kind in "USOb":
        return "classification"
    if a.dtype.kind in "iu":
        integer_valued = True
    elif a.dtype.kind == "f":
        finite = np.isfinite(a)
        integer_valued = bool(finite.all() and np.all(a == np.round(a)))
    else:
        return "regression"
    if integer_valued and np.unique(a).size <= max_classes:
        return "classification"
    return "regression"


def check_task(task: str | None) -> str | None:
    if task is not None and task not in ("classification", "regression"):
        raise InvalidValueError(f"task must be 'classification' or 'regression', got {task!r}")
    return task


class SplitResult(NamedTuple):
    """The parts of :func:`split`; ``X_val``/``y_val`` are None without a validation part."""

    X_train: Any
    y_train: Any
    X_val: Any
    y_val: Any
    X_test: Any
    y_test: Any


def _count(size: Any, n: int, name: str) -> int:
    if size is None:
        return 0
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise InvalidValueError(f"{name} must be a fraction in [0, 1) or a count, got {size!r}")
    if isinstance(size, numbers.Integral):
        if not 0 <= size < n:
            raise InvalidValueError(f"{name}={size} must be a count between 0 and {n - 1}")
        return int(size)
    if not (0.0 <= size < 1.0):
        raise InvalidValueError(f"{name} must be a fraction in [0, 1) or a count, got {size!r}")
    return math.ceil(size * n - 1e-9)


def _sizes(n: int, fractions: Any, test_size: Any, val_size: Any) -> tuple[int, int]:
    if fractions is not None:
        if test_size is not None or val_size is not None:
            raise InvalidValueError("give either fractions= or test_size=/val_size=, not both")
        fr = tuple(float(f) for f in fractions)
        if len(fr) not in (2, 3) or any(not (0.0 <= f <= 1.0) for f in fr) or \
                abs(sum(fr) - 1.0) > 1e-6 or fr[0] == 0.0:
            raise InvalidValueError(
                f"fractions must be (train, test) or (train, val, test), non-negative, train > 0,"
                f" summing to 1; got {tuple(fractions)!r}"
            )
        val_size, test_size = (fr[1], fr[2]) if len(fr) == 3 else (0.0, fr[1])
    elif test_size is None:
        test_size = 0.25
    n_test = _count(test_size, n, "test_size")
    n_val = _count(val_size, n, "val_size")
    if n - n_test - n_val < 1:
        raise InvalidValueError(
            f"splitting {n} samples into {n_test} test and {n_val} validation samples leaves "
            "none for training"
        )
    return n_test, n_val


def _allocate(counts: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Integers summing to ``k``, proportional to ``counts`` and at most ``counts`` each.

    Largest-remainder apportionment; ties are broken at random so that no class is favoured.
    """
    total = counts.sum()
    if k == 0 or total == 0:
        return np.zeros_like(counts)
    quotas = counts * (k / total)
    alloc = np.minimum(np.floor(quotas).astype(np.int64), counts)
    rest = k - int(alloc.sum())
    if rest > 0:
        frac = quotas - alloc
        tie = rng.permutation(len(counts))
        order = np.lexsort((tie, -frac))
        for c in order:
            if rest == 0:
                break
            if alloc[c] < counts[c]:
                alloc[c] += 1
                rest -= 1
    return alloc


def split_indices(n: int, y: Any = None, *, fractions: Any = None, test_size: Any = None,
                  val_size: Any = None, stratify: bool | None = None,
                  seed: int | _random.Generator = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays ``(train, val, test)`` for :func:`split`; each in a random order.

    See :func:`split` for the arguments; ``y`` is needed only for stratification.
    """
    n = int(n)
    if n < 2:
        raise InvalidValueError(f"cannot split {n} sample(s)")
    n_test, n_val = _sizes(n, fractions, test_size, val_size)
    gen = seed if isinstance(seed, _random.Generator) else _random.Generator(seed)
    rng = gen.numpy
    if stratify is None:
        stratify = y is not None and infer_task(y) == "classification"
    if stratify:
        if y is None:
            raise InvalidValueError("stratify=True needs the labels y")
        labels = np.asarray(y.data if isinstance(y, Tensor) else y)
        if labels.dtype.kind == "f" and not (np.isfinite(labels).all()
                                             and np.all(labels == np.round(labels))):
            raise InvalidValueError(
                "stratify=True needs class labels, but y holds non-integer numbers (a "
                "regression target); pass stratify=False"
            )
        classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if n_test + n_val > 0 and counts.min() < 2:
            raise InvalidValueError(
                f"class {classes[counts.argmin()]!r} has only {counts.min()} sample; stratified "
                "splitting needs at least 2 per class (pass stratify=False)"
            )
        test_alloc = _allocate(counts, n_test, rng)
        val_alloc = _allocate(counts - test_alloc, n_val, rng)
        parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        for c in range(len(classes)):
            members = rng.permutation(np.flatnonzero(inverse.reshape(-1) == c))
            t, v = test_alloc[c], val_alloc[c]
            parts[2].append(members[:t])
            parts[1].append(members[t:t + v])
            parts[0].append(members[t + v:])
        train, val, test = (rng.permutation(np.concatenate(p)) for p in parts)
    else:
        order = rng.permutation(n)
        test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return train.astype(np.int64), val.astype(np.int64), test.astype(np.int64)


def split(X: Any, y: Any, *, fractions: Any = None, test_size: Any = None,
          val_size: Any = None, stratify: bool | None = None,
          seed: int | _random.Generator = 0) -> SplitResult:
    """Shuffle and split ``(X, y)`` into training, validation and test parts.

    Args:
        X: features, an array or tensor of shape ``(N, ...)``.
        y: targets of shape ``(N,)`` (or ``(N, ...)``).
        fractions: ``(train, test)`` or ``(train, val, test)`` fractions summing to 1; an
            alternative to ``test_size``/``val_size``.
        test_size: fraction of all samples (a float in [0, 1)) or a count (an int) for the test
            part; default 0.25. A fraction is rounded up, as in scikit-learn.
        val_size: fraction or count for the validation part; default none.
        stratify: keep the class proportions in each part. Default (None): stratify when
            :func:`infer_task` calls ``y`` a classification target.
        seed: an int or a :class:`chainrule.Generator`.

    Returns:
        a :class:`SplitResult` ``(X_train, y_train, X_val, y_val, X_test, y_test)``; the
        validation entries are None when there is no validation part. Parts are gathered copies
        of the inputs (NumPy arrays, or Tensors for tensor inputs).
    """
    Xa = X.data if isinstance(X, Tensor) else np.asarray(X)
    ya = y.data if isinstance(y, Tensor) else np.asarray(y)
    if Xa.ndim == 0 or ya.ndim == 0 or Xa.shape[0] != ya.shape[0]:
        raise ShapeError(
            f"X and y must have the same number of rows, got shapes {tuple(Xa.shape)} and "
            f"{tuple(ya.shape)}"
        )
    train, val, test = split_indices(Xa.shape[0], ya, fractions=fractions, test_size=test_size,
                                     val_size=val_size, stratify=stratify, seed=seed)

    def take(a: Any, idx: np.ndarray, like: Any) -> Any:
        part = a[idx]
        return Tensor._from_op(part, None) if isinstance(like, Tensor) else part

    has_val = val.size > 0
    return SplitResult(
        take(Xa, train, X), take(ya, train, y),
        take(Xa, val, X) if has_val else None, take(ya, val, y) if has_val else None,
        take(Xa, test, X), take(ya, test, y),
    )
