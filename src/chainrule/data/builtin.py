"""Named data sets: ``load_dataset(name, **options)`` and ``list_datasets()``.

============= ============== ============ ======= ============= =========================
name          task           features     classes train / test  source
============= ============== ============ ======= ============= =========================
digits        classification 64 (8x8 px)  10      1347 / 450    scikit-learn (bundled)
iris          classification 4            3       112 / 38      scikit-learn (bundled)
wine          classification 13           3       133 / 45      scikit-learn (bundled)
breast_cancer classification 30           2       426 / 143     scikit-learn (bundled)
xor           classification 2            2       750 / 250     generated (seeded)
moons         classification 2            2       750 / 250     generated (seeded)
circles       classification 2            2       750 / 250     generated (seeded)
spirals       classification 2            2       750 / 250     generated (seeded)
blobs         classification 2            3       750 / 250     generated (seeded)
gaussians     classification 2            2       750 / 250     generated (seeded)
mnist1d       classification 40           10      4000 / 1000   mnist1d package, generated
============= ============== ============ ======= ============= =========================

Default splits: the scikit-learn and synthetic sets are split 75/25 into training and test
parts, stratified by class, with ``seed=0`` (options ``test_size``, ``val_size``, ``seed``);
``val_size`` (default none) is a fraction of the whole set. MNIST-1D comes with its own split
(the first 4,000 of 5,000 generated signals train, the rest test); there ``val_size`` is a
fraction of the training part, and ``seed`` (default 42, the package's) is the generation seed.
The synthetic sets take ``n_samples`` (default 1000) and ``noise`` (the standard deviation of
Gaussian noise on the coordinates; defaults xor 0.1, moons 0.1, circles 0.05, spirals 0.05, and
for blobs and gaussians the cluster standard deviation, 1.0 and 0.3); their ``seed`` drives both generation and split. Every set takes ``dtype`` (default
float32) and ``standardize=True`` (fit a :class:`~chainrule.data.Standardizer` on the training
part and apply it to every part; kept as ``bundle.standardizer``).

A path to a ``.csv`` or ``.npz`` file works wherever a name does (see
:func:`~chainrule.data.load_csv` and :func:`~chainrule.data.load_npz`).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidValueError
from . import mnist1d_data, synthetic
from .bundle import DatasetBundle, DatasetInfo, build_bundle
from .files import load_csv, load_npz
from .preprocessing import Standardizer

_SKLEARN = {
    "digits": ("load_digits", 64, 10, 1347, 450,
               ("scikit-learn's bundled copy of the UCI ML hand-written digits test set "
                "(Alpaydin & Kaynak, 1998): sklearn.datasets.load_digits"),
               ("8x8 images of hand-written digits, 1,797 samples; features are pixel "
                "intensities 0..16 (row-major), labels the digits 0..9.")),
    "iris": ("load_iris", 4, 3, 112, 38,
             ("R. A. Fisher (1936), UCI Iris; scikit-learn's bundled copy: "
              "sklearn.datasets.load_iris"),
             "150 iris flowers: sepal and petal length and width (cm); 3 species."),
    "wine": ("load_wine", 13, 3, 133, 45,
             ("UCI Wine recognition (Forina et al.); scikit-learn's bundled copy: "
              "sklearn.datasets.load_wine"),
             "178 wines from three cultivars, 13 chemical measurements each."),
    "breast_cancer": ("load_breast_cancer", 30, 2, 426, 143,
                      ("UCI Breast Cancer Wisconsin (Diagnostic) (Street, Wolberg & "
                       "Mangasarian, 1993); scikit-learn's bundled copy: "
                       "sklearn.datasets.load_breast_cancer"),
                      ("569 tumours, 30 features of cell nuclei from digitised images; "
                       "malignant (0) or benign (1).")),
}


def _load_sklearn(name: str, *, test_size: Any = 0.25, val_size: Any = None, seed: int = 0,
                  stratify: bool | None = None, dtype: Any = None) -> DatasetBundle:
    func_name, _, _, _, _, source, description = _SKLEARN[name]
    try:
        from sklearn import datasets  # optional dependency, imported on use
    except ImportError as exc:
        raise InvalidValueError(
            f"the {name!r} data set is read from scikit-learn's bundled files: "
            "pip install 'chainrule[data]' (or scikit-learn)"
        ) from exc
    raw = getattr(datasets, func_name)()       # local files shipped with scikit-learn
    X, y = np.asarray(raw.data), np.asarray(raw.target)
    names = getattr(raw, "feature_names", None)
    feature_names = (tuple(str(f) for f in names) if names is not None
                     else tuple(f"x{i}" for i in range(X.shape[1])))
    target_names = getattr(raw, "target_names", None)
    return build_bundle(name, X, y, task="classification", test_size=test_size,
                        val_size=val_size, seed=seed, stratify=stratify, dtype=dtype,
                        feature_names=feature_names,
                        class_names=None if target_names is None else list(target_names),
                        description=description, source=source)


def _synthetic_loader(name: str) -> Callable[..., DatasetBundle]:
    make, description = synthetic.GENERATORS[name]
    extra = {p.name: p for p in inspect.signature(make).parameters.values()
             if p.name not in ("n_samples", "noise", "seed", "dtype")}

    def load(*, n_samples: int = 1000, noise: float | None = None, seed: int = 0,
             test_size: Any = 0.25, val_size: Any = None, dtype: Any = None,
             **kwargs: Any) -> DatasetBundle:
        unknown = sorted(set(kwargs) - set(extra))
        if unknown:
            raise InvalidValueError(f"unknown option(s) {unknown} for {name!r}")
        if noise is None:
            noise = inspect.signature(make).parameters["noise"].default
        X, y = make(n_samples=n_samples, noise=noise, seed=seed, dtype=dtype, **kwargs)
        d = X.shape[1]
        return build_bundle(name, X, y, task="classification", test_size=test_size,
                            val_size=val_size, seed=seed, dtype=dtype,
                            feature_names=tuple(f"x{i}" for i in range(d)),
                            description=f"{description} n_samples={n_samples}, noise={noise}.",
                            source=f"generated by chainrule.data.synthetic.make_{name}")

    load.options = ("n_samples", "noise", "seed", "test_size", "val_size", "dtype",  # type: ignore[attr-defined]
                    *extra)
    return load


_MNIST1D_SOURCE = ("Greydanus & Kobak, 'Scaling down deep learning with MNIST-1D' (ICML 2024); "
                   "generated offline by mnist1d.data.make_dataset with its default arguments "
                   "(https://github.com/greydanus/mnist1d)")


def _load_mnist1d(*, seed: int = 42, val_size: Any = None, dtype: Any = None,
                  cache_dir: Any = None, regenerate: bool = False) -> DatasetBundle:
    d = mnist1d_data.load_arrays(seed=seed, cache_dir=cache_dir, regenerate=regenerate)
    return build_bundle(
        "mnist1d", d["x"], d["y"], task="classification", X_test=d["x_test"], y_test=d["y_test"],
        val_size=val_size, seed=seed, dtype=dtype,
        feature_names=tuple(f"t{i}" for i in range(mnist1d_data.LENGTH)),
        description="1-D signals of length 40 made from templates of the digits 0..9 by "
                    "padding, shearing, translation, scaling and correlated noise; a small, "
                    "hard benchmark where MLPs and CNNs differ.",
        source=_MNIST1D_SOURCE,
    )


def _registry() -> dict[str, tuple[Callable[..., DatasetBundle], DatasetInfo]]:
    reg: dict[str, tuple[Callable[..., DatasetBundle], DatasetInfo]] = {}
    for name, (_, d, c, ntr, nte, source, description) in _SKLEARN.items():
        def load(_name: str = name, **kw: Any) -> DatasetBundle:
            return _load_sklearn(_name, **kw)
        info = DatasetInfo(name, "classification", d, c, ntr, nte, source, description,
                           ("test_size", "val_size", "seed", "stratify", "dtype"))
        reg[name] = (load, info)
    for name, (make, description) in synthetic.GENERATORS.items():
        loader = _synthetic_loader(name)
        classes = 3 if name == "blobs" else 2
        info = DatasetInfo(name, "classification", 2, classes, 750, 250,
                           f"generated by chainrule.data.synthetic.make_{name} (seeded)",
                           description, loader.options)  # type: ignore[attr-defined]
        reg[name] = (loader, info)
    reg["mnist1d"] = (_load_mnist1d, DatasetInfo(
        "mnist1d", "classification", 40, 10, 4000, 1000, _MNIST1D_SOURCE,
        "1-D signals of the digits 0..9 (length 40).",
        ("seed", "val_size", "dtype", "cache_dir", "regenerate")))
    return reg


_REGISTRY = _registry()
_FILE_LOADERS = {".csv": load_csv, ".npz": load_npz}


def list_datasets() -> list[DatasetInfo]:
    """The built-in data sets: name, task, shapes (for the default options), source."""
    return [info for _, info in _REGISTRY.values()]


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def load_dataset(name: str | os.PathLike, **options: Any) -> DatasetBundle:
    """A built-in data set by name, or a ``.csv``/``.npz`` file by path.

    Args:
        name: a name from :func:`list_datasets` (case-insensitive; ``-`` and ``_`` alike) or a
            path ending in ``.csv`` (``target=`` required) or ``.npz``.
        **options: the set's options (see the module docstring), plus ``standardize=True`` to
            standardise features with statistics of the training part.

    Raises:
        InvalidValueError: an unknown name (the message lists the valid ones) or option.
    """
    standardize = bool(options.pop("standardize", False))
    if isinstance(name, os.PathLike) or (isinstance(name, str)
                                         and _normalise(name) not in _REGISTRY):
        path = Path(os.fspath(name))
        loader = _FILE_LOADERS.get(path.suffix.lower())
        if loader is None:
            valid = ", ".join(_REGISTRY)
            if path.suffix or os.sep in str(name) or "/" in str(name):
                raise InvalidValueError(
                    f"cannot load {str(name)!r}: unsupported file type {path.suffix or '(none)'}"
                    f"; use a .csv or .npz file, or one of the built-in data sets: {valid}"
                )
            raise InvalidValueError(
                f"unknown data set {name!r}; the built-in data sets are: {valid} "
                "(or give a path to a .csv or .npz file)"
            )
        allowed = [p for p in inspect.signature(loader).parameters if p != "path"]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise InvalidValueError(
                f"unknown option(s) {unknown} for a {path.suffix.lower()} file; the options are: "
                + ", ".join(allowed) + ", standardize"
            )
        bundle = loader(path, **options)
    elif not isinstance(name, str):
        raise InvalidValueError(f"load_dataset needs a name or a path, got {type(name).__name__}")
    else:
        key = _normalise(name)
        loader, info = _REGISTRY[key]
        unknown = sorted(set(options) - set(info.options))
        if unknown:
            raise InvalidValueError(
                f"unknown option(s) {unknown} for data set {key!r}; its options are: "
                + ", ".join(info.options) + ", standardize"
            )
        bundle = loader(**options)
    return _standardize(bundle) if standardize else bundle


def _standardize(bundle: DatasetBundle) -> DatasetBundle:
    st = Standardizer().fit(bundle.X_train)
    return replace(
        bundle, X_train=st.transform(bundle.X_train), X_test=st.transform(bundle.X_test),
        X_val=None if bundle.X_val is None else st.transform(bundle.X_val), standardizer=st,
    )
