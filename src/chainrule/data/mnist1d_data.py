"""MNIST-1D, generated offline with the ``mnist1d`` package and cached as ``.npz``.

Source: Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024),
https://github.com/greydanus/mnist1d. chainrule calls ``mnist1d.data.make_dataset`` with the
package's default arguments (``get_dataset_args()``: 5,000 signals, ``train_split=0.8``,
``final_seq_length=40``, ``seed=42``): 4,000 training and 1,000 test signals of length 40 in
10 classes. It never calls ``get_dataset``, whose default is to download a pickle from GitHub.

The result is cached in ``$CHAINRULE_CACHE`` (default ``~/.cache/chainrule``) as
``mnist1d-v1-seed<seed>.npz`` (written atomically, read with ``allow_pickle=False``); a cache file that
cannot be read or has the wrong contents is regenerated.
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidValueError

#: bump when the cached layout changes
CACHE_VERSION = 1
N_TRAIN, N_TEST, LENGTH, N_CLASSES = 4000, 1000, 40, 10


def resolve_cache_dir(override: Any = None) -> Path:
    """The cache directory: ``override``, else ``$CHAINRULE_CACHE``, else ``~/.cache/chainrule``."""
    if override is not None:
        return Path(os.fspath(override))
    env = os.environ.get("CHAINRULE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "chainrule"


def _args(seed: int) -> Any:
    from mnist1d.data import get_dataset_args  # optional dependency

    args = get_dataset_args(as_dict=False)      # the ObjectView make_dataset reads attributes of
    args.seed = int(seed)
    return args


def cache_path(seed: int = 42, directory: Any = None) -> Path:
    """The cache file for one generation seed."""
    return resolve_cache_dir(directory) / f"mnist1d-v{CACHE_VERSION}-seed{int(seed)}.npz"


def generate(seed: int = 42) -> dict[str, np.ndarray]:
    """Run ``mnist1d.data.make_dataset`` (no network) and return x, y, x_test, y_test.

    ``make_dataset`` reseeds Python's and NumPy's global generators; their states are restored
    afterwards so that loading MNIST-1D has no effect on other random numbers.
    """
    try:
        from mnist1d.data import make_dataset  # optional dependency
    except ImportError as exc:
        raise InvalidValueError(
            "the mnist1d data set needs the mnist1d package: pip install 'chainrule[data]' "
            "(or pip install mnist1d)"
        ) from exc
    args = _args(seed)
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    return {"x": np.asarray(d["x"], dtype=np.float64), "y": np.asarray(d["y"], dtype=np.int64),
            "x_test": np.asarray(d["x_test"], dtype=np.float64),
            "y_test": np.asarray(d["y_test"], dtype=np.int64)}


def _valid(d: dict[str, np.ndarray]) -> bool:
    return (d["x"].shape == (N_TRAIN, LENGTH) and d["x_test"].shape == (N_TEST, LENGTH)
            and d["y"].shape == (N_TRAIN,) and d["y_test"].shape == (N_TEST,)
            and d["x"].dtype.kind == "f" and d["y"].dtype.kind in "iu"
            and bool(np.isfinite(d["x"]).all() and np.isfinite(d["x_test"]).all())
            and int(d["y"].min()) >= 0 and int(d["y"].max()) < N_CLASSES)


def _read(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            d = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, AttributeError):
        return None
    return d if _valid(d) else None


def _write(path: Path, d: dict[str, np.ndarray]) -> None:
    """Write to a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **d)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)           # mkstemp makes it private; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_arrays(seed: int = 42, cache_dir: Any = None,
                regenerate: bool = False) -> dict[str, np.ndarray]:
    """The MNIST-1D arrays, from the cache when possible (generated and cached otherwise)."""
    path = cache_path(seed, cache_dir)
    if not regenerate and path.exists():
        d = _read(path)
        if d is not None:
            return d
        warnings.warn(f"the MNIST-1D cache file {path} is unreadable or corrupt; regenerating it",
                      RuntimeWarning, stacklevel=3)
    d = generate(seed)
    if not _valid(d):
        raise InvalidValueError("mnist1d.make_dataset returned unexpected shapes: "
                                + ", ".join(f"{k} {v.shape}" for k, v in d.items()))
    try:
        _write(path, d)
    except OSError as exc:
        warnings.warn(f"could not cache MNIST-1D in {path.parent}: {exc}", RuntimeWarning,
                      stacklevel=3)
    return d
