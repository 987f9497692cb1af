"""Hyper-parameter checks of the scikit-learn estimators, with scikit-learn's wording
("The 'alpha' parameter of MLPClassifier must be ..."), and the names they accept."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from chainrule.backend import normalize_device

# sklearn's activation names, then chainrule's extra ones, each mapped to chainrule's name.
HIDDEN_ACTIVATIONS = {
    "identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu",
    "sigmoid": "sigmoid", "leaky_relu": "leaky_relu", "elu": "elu", "softplus": "softplus",
    "gelu": "gelu", "silu": "silu",
}
SOLVERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")


def fail(est: Any, name: str, expected: str) -> None:
    raise ValueError(f"The '{name}' parameter of {type(est).__name__} must be {expected}. "
                     f"Got {getattr(est, name)!r} instead.")


def _real(est: Any, name: str, low: float, high: float = np.inf, low_open: bool = False,
          high_open: bool = False) -> float:
    v = getattr(est, name)
    ok = isinstance(v, numbers.Real) and not isinstance(v, bool) and not np.isnan(v)
    if ok:
        ok = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        fail(est, name, f"a float in the range {'(' if low_open else '['}{low}, {high}"
                         f"{')' if high_open or high == np.inf else ']'}")
    return float(v)


def _integer(est: Any, name: str, low: int, allow_inf: bool = False) -> Any:
    v = getattr(est, name)
    if allow_inf and isinstance(v, float) and v == np.inf:
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
        fail(est, name, f"an int in the range [{low}, inf)" + (" or inf" if allow_inf else ""))
    return int(v)


def _option(est: Any, name: str, options: Any) -> Any:
    v = getattr(est, name)
    if not isinstance(v, str) or v not in options:
        fail(est, name, "a str among {" + ", ".join(map(repr, sorted(options))) + "}")
    return v


def _boolean(est: Any, name: str) -> bool:
    v = getattr(est, name)
    if not isinstance(v, (bool, np.bool_)):
        fail(est, name, "an instance of 'bool'")
    return bool(v)


def hidden_sizes(est: Any) -> list[int]:
    """``hidden_layer_sizes`` as a list of positive ints (an int is one layer)."""
    sizes = est.hidden_layer_sizes
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = [sizes]
    try:
        sizes = list(sizes) if not isinstance(sizes, str) else None
    except TypeError:
        sizes = None
    if sizes is None or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                                for s in sizes):
        fail(est, "hidden_layer_sizes", "an int or an array-like of ints")
    if any(s <= 0 for s in sizes):
        raise ValueError(f"hidden_layer_sizes must be > 0, got {[int(s) for s in sizes]}.")
    return [int(s) for s in sizes]


def check_common(est: Any) -> None:
    """Validate the hyper-parameters both estimators have (at the start of fit and
    partial_fit), with scikit-learn's wording."""
    hidden_sizes(est)
    _option(est, "activation", HIDDEN_ACTIVATIONS)
    _option(est, "solver", SOLVERS)
    _real(est, "alpha", 0.0)
    if est.batch_size != "auto":
        _integer(est, "batch_size", 1)
    _option(est, "learning_rate", ("constant", "invscaling", "adaptive"))
    _real(est, "learning_rate_init", 0.0, low_open=True)
    _real(est, "power_t", 0.0)
    _integer(est, "max_iter", 1)
    _boolean(est, "shuffle")
    _real(est, "tol", 0.0)
    _boolean(est, "warm_start")
    _real(est, "momentum", 0.0, 1.0)
    _boolean(est, "nesterovs_momentum")
    _boolean(est, "early_stopping")
    _real(est, "validation_fraction", 0.0, 1.0, high_open=True)
    _real(est, "beta_1", 0.0, 1.0, high_open=True)
    _real(est, "beta_2", 0.0, 1.0, high_open=True)
    _real(est, "epsilon", 0.0, low_open=True)
    _integer(est, "n_iter_no_change", 1, allow_inf=True)
    if not isinstance(est.verbose, (bool, numbers.Integral)):
        fail(est, "verbose", "an int or a bool")
    _option(est, "loss", type(est)._LOSSES)
    _real(est, "dropout", 0.0, 1.0, high_open=True)
    if est.checkpoint_segments is not None:
        _integer(est, "checkpoint_segments", 1)
    if est.validation_metric is not None:
        _option(est, "validation_metric", type(est)._VALIDATION_METRICS)
    compute_dtype(est, None)
    try:
        normalize_device(est.device)
    except ValueError:
        fail(est, "device", "'cpu', 'cuda' or 'cuda:N'")
    if not isinstance(getattr(est, "compile", True), bool):
        fail(est, "compile", "True or False")


def compute_dtype(est: Any, X_dtype: Any) -> np.dtype:
    """The dtype of the parameters: ``dtype`` if given, else the input's (float32 stays
    float32; anything else is float64, as scikit-learn's MLP does)."""
    if est.dtype is None:
        return np.dtype(X_dtype if X_dtype is not None else np.float64)
    try:
        dt = np.dtype(est.dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        fail(est, "dtype", "None, 'float32' or 'float64'")
    return dt


def check_output_activation(est: Any, applies: bool, what: str) -> None:
    """``output_activation`` must be None unless the loss takes one (``applies``)."""
    act = est.output_activation
    if act is None:
        return
    if not applies:
        raise ValueError(f"output_activation does not apply to loss={est.loss!r} ({what}); "
                         f"leave it None")
    if not isinstance(act, str) or act not in HIDDEN_ACTIVATIONS:
        fail(est, "output_activation",
             "None or a str among {" + ", ".join(map(repr, sorted(HIDDEN_ACTIVATIONS))) + "}")


__all__ = ["HIDDEN_ACTIVATIONS", "SOLVERS", "fail", "hidden_sizes", "check_common",
           "compute_dtype", "check_output_activation"]
