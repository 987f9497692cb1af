"""Seeded two-dimensional toy data sets for classification: xor, moons, circles, spirals, blobs,
gaussians.

Each ``make_*`` function returns ``(X, y)``: ``X`` of shape ``(n_samples, 2)`` (``n_features``
for blobs) in ``dtype`` (default float32) and int64 labels ``y`` of shape ``(n_samples,)``, in a
shuffled order. Classes are balanced (sizes differ by at most one). The same ``seed`` gives the
same data; ``noise`` is the standard deviation of Gaussian noise added to the coordinates
(for blobs: of each cluster). Everything is computed with NumPy from a
:class:`chainrule.Generator`; no other package is needed.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

import numpy as np

from .. import random as _random
from ..errors import InvalidValueError
from .dataset import feature_dtype


def _check(n_samples: Any, noise: Any, min_samples: int) -> tuple[int, float]:
    try:
        n = operator.index(n_samples)
    except TypeError:
        raise InvalidValueError(f"n_samples must be an integer, got {n_samples!r}") from None
    if n < min_samples:
        raise InvalidValueError(f"n_samples must be at least {min_samples}, got {n}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or \
            not math.isfinite(noise) or noise < 0:
        raise InvalidValueError(f"noise must be a finite number >= 0, got {noise!r}")
    return n, float(noise)


def _sizes(n: int, k: int) -> list[int]:
    return [n // k + (1 if c < n % k else 0) for c in range(k)]


def _finish(X: np.ndarray, y: np.ndarray, noise: float, rng: np.random.Generator,
            dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    if noise > 0:
        X = X + rng.normal(0.0, noise, size=X.shape)
    order = rng.permutation(len(y))
    return X[order].astype(feature_dtype(dtype)), y[order].astype(np.int64)


def make_xor(n_samples: int = 1000, noise: float = 0.1, seed: int = 0,
             dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """XOR: points uniform in the square [-1, 1]^2, label 1 where the coordinates' signs differ.

    Half the points of each class fall in each of its two quadrants; ``noise`` is added after
    labelling, so points near the axes may cross into the other class's quadrant.
    """
    n, noise = _check(n_samples, noise, 4)
    rng = _random.Generator(seed).numpy
    sizes = _sizes(n, 4)   # quadrants (+,+), (-,-) are class 0; (+,-), (-,+) class 1
    signs = [(1, 1), (-1, -1), (1, -1), (-1, 1)]
    X = np.concatenate([rng.uniform(0, 1, size=(m, 2)) * s for m, s in zip(sizes, signs)])
    y = np.concatenate([np.full(m, q // 2) for q, m in enumerate(sizes)])
    return _finish(X, y, noise, rng, dtype)


def make_moons(n_samples: int = 1000, noise: float = 0.1, seed: int = 0,
               dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (scikit-learn's ``make_moons`` geometry).

    Class 0: ``(cos t, sin t)``; class 1: ``(1 - cos t, 0.5 - sin t)``; ``t`` uniform on [0, pi].
    """
    n, noise = _check(n_samples, noise, 2)
    rng = _random.Generator(seed).numpy
    n0, n1 = _sizes(n, 2)
    t0, t1 = rng.uniform(0, math.pi, n0), rng.uniform(0, math.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return _finish(X, y, noise, rng, dtype)


def make_circles(n_samples: int = 1000, noise: float = 0.05, seed: int = 0, factor: float = 0.5,
                 dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """A small circle (class 1, radius ``factor``) inside a large one (class 0, radius 1)."""
    n, noise = _check(n_samples, noise, 2)
    if not 0 < factor < 1:
        raise InvalidValueError(f"factor must be between 0 and 1, got {factor!r}")
    rng = _random.Generator(seed).numpy
    n0, n1 = _sizes(n, 2)
    t0, t1 = rng.uniform(0, 2 * math.pi, n0), rng.uniform(0, 2 * math.pi, n1)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        factor * np.stack([np.cos(t1), np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return _finish(X, y, noise, rng, dtype)


def make_spirals(n_samples: int = 1000, noise: float = 0.05, seed: int = 0, turns: float = 1.5,
                 dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: class ``k`` is ``r (cos(a + k pi), sin(a + k pi))``.

    ``r`` is uniform on [0.05, 1] and ``a = 2 pi turns r``, so the arms wind ``turns`` times
    around the origin, half a turn apart.
    """
    n, noise = _check(n_samples, noise, 2)
    if not turns > 0:
        raise InvalidValueError(f"turns must be positive, got {turns!r}")
    rng = _random.Generator(seed).numpy
    parts, labels = [], []
    for k, m in enumerate(_sizes(n, 2)):
        r = rng.uniform(0.05, 1.0, m)
        a = 2 * math.pi * turns * r + k * math.pi
        parts.append(np.stack([r * np.cos(a), r * np.sin(a)], 1))
        labels.append(np.full(m, k))
    return _finish(np.concatenate(parts), np.concatenate(labels), noise, rng, dtype)


def make_blobs(n_samples: int = 1000, noise: float = 1.0, seed: int = 0, centers: int = 3,
               n_features: int = 2, center_box: tuple[float, float] = (-10.0, 10.0),
               dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic Gaussian clusters: ``centers`` centres drawn uniformly in ``center_box``,
    one class per centre, each with standard deviation ``noise``."""
    try:
        k = operator.index(centers)
        d = operator.index(n_features)
    except TypeError:
        raise InvalidValueError("centers and n_features must be integers") from None
    if k < 2 or d < 1:
        raise InvalidValueError(f"need centers >= 2 and n_features >= 1, got {k} and {d}")
    n, noise = _check(n_samples, noise, k)
    rng = _random.Generator(seed).numpy
    lo, hi = center_box
    mu = rng.uniform(lo, hi, size=(k, d))
    sizes = _sizes(n, k)
    X = np.concatenate([np.repeat(mu[c:c + 1], m, axis=0) for c, m in enumerate(sizes)])
    y = np.concatenate([np.full(m, c) for c, m in enumerate(sizes)])
    return _finish(X, y, noise, rng, dtype)


def make_gaussians(n_samples: int = 1000, noise: float = 0.3, seed: int = 0,
                   distance: float = 1.0, dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Two isotropic Gaussian clouds, class 0 around ``-c`` and class 1 around ``+c`` with
    ``c = (distance / 2) (1, 1) / sqrt(2)``, each with standard deviation ``noise``: linearly
    separable up to the overlap that ``noise`` makes."""
    n, noise = _check(n_samples, noise, 2)
    if isinstance(distance, bool) or not isinstance(distance, numbers.Real) or \
            not math.isfinite(distance) or distance < 0:
        raise InvalidValueError(f"distance must be a finite number >= 0, got {distance!r}")
    rng = _random.Generator(seed).numpy
    n0, n1 = _sizes(n, 2)
    c = float(distance) / 2 / math.sqrt(2)
    X = np.concatenate([np.full((n0, 2), -c), np.full((n1, 2), c)])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return _finish(X, y, noise, rng, dtype)


#: name -> (generator function, one-line description)
GENERATORS = {
    "xor": (make_xor, ("XOR of the coordinates' signs in [-1, 1]^2: 2 classes, not linearly "
                       "separable.")),
    "moons": (make_moons, "Two interleaving half circles: 2 classes."),
    "circles": (make_circles, "A circle of radius 0.5 inside one of radius 1: 2 classes."),
    "spirals": (make_spirals, ("Two interleaved spirals (1.5 turns): 2 classes, the classic "
                               "hard case for a small MLP.")),
    "blobs": (make_blobs, ("Three isotropic Gaussian clusters in 2-D (centres uniform in "
                           "[-10, 10]^2, std 1): 3 classes.")),
    "gaussians": (make_gaussians, ("Two Gaussian clouds (std 0.3) whose centres are 1 apart: 2 "
                                   "classes, linearly separable but for the overlap.")),
}
