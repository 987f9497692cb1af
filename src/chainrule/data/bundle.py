"""DatasetBundle: a data set split into parts, with what a trainer needs to know about it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidValueError, ShapeError
from .dataset import TensorDataset, feature_dtype
from .preprocessing import Standardizer, encode_labels
from .split import check_task, infer_task, split_indices


@dataclass(eq=False)
class DatasetBundle:
    """A data set ready for training: features and targets for each part, and metadata.

    Attributes:
        name: the registry name, or the file's stem.
        task: ``"classification"`` or ``"regression"``.
        X_train, y_train, X_test, y_test: NumPy arrays. Features are ``(N, n_features)`` in a
            floating dtype (float32 by default); class labels are int64 in
            ``0 .. num_classes-1``; regression targets are ``(N,)`` in the features' dtype.
        X_val, y_val: the validation part, or None.
        num_classes: the number of classes (None for regression).
        feature_names: one name per feature column.
        class_names: the original label of each class index (None for regression).
        description: one paragraph on what the data is.
        source: where it comes from (a citation, a package, or a file path).
        standardizer: the :class:`Standardizer` already applied to the features (fitted on the
            training part), or None.
    """

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    X_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    num_classes: int | None = None
    feature_names: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None
    description: str = ""
    source: str = ""
    standardizer: Standardizer | None = None

    def __post_init__(self) -> None:
        check_task(self.task)
        parts = [("train", self.X_train, self.y_train), ("test", self.X_test, self.y_test)]
        if (self.X_val is None) != (self.y_val is None):
            raise InvalidValueError("X_val and y_val must both be given or both be None")
        if self.X_val is not None:
            parts.append(("val", self.X_val, self.y_val))
        width = self.X_train.shape[1:]
        for part, X, y in parts:
            if X.shape[0] != y.shape[0]:
                raise ShapeError(f"{part}: X has {X.shape[0]} rows but y has {y.shape[0]}")
            if X.shape[1:] != width:
                raise ShapeError(f"{part}: X has feature shape {X.shape[1:]}, train has {width}")
        if self.feature_names and len(self.feature_names) != self.n_features:
            raise ShapeError(f"{len(self.feature_names)} feature names for "
                             f"{self.n_features} features")

    @property
    def n_features(self) -> int:
        """The number of features, d (the product of the axes after the first)."""
        return int(np.prod(self.X_train.shape[1:]))

    def dataset(self, part: str = "train") -> TensorDataset:
        """The ``"train"``, ``"val"`` or ``"test"`` part as a :class:`TensorDataset` (no copy)."""
        X, y = {"train": (self.X_train, self.y_train), "test": (self.X_test, self.y_test),
                "val": (self.X_val, self.y_val)}.get(part, (False, False))
        if X is False:
            raise InvalidValueError(f"part must be 'train', 'val' or 'test', got {part!r}")
        if X is None:
            raise InvalidValueError(f"data set {self.name!r} has no validation part "
                                    "(load it with val_size=...)")
        return TensorDataset(X, y, dtype=X.dtype)

    def __repr__(self) -> str:
        val = "" if self.X_val is None else f", val={self.X_val.shape}"
        classes = "" if self.num_classes is None else f", num_classes={self.num_classes}"
        return (f"DatasetBundle({self.name!r}, {self.task}, train={self.X_train.shape}{val}, "
                f"test={self.X_test.shape}{classes})")


@dataclass(frozen=True)
class DatasetInfo:
    """One row of :func:`list_datasets`: shapes are those of the default options."""

    name: str
    task: str
    n_features: int
    num_classes: int | None
    n_train: int
    n_test: int
    source: str
    description: str
    options: tuple[str, ...] = field(default=())

    @property
    def shapes(self) -> str:
        """``"train (n_train, d), test (n_test, d)"``, as ``chainrule datasets`` prints it."""
        return f"train ({self.n_train}, {self.n_features}), test ({self.n_test}, {self.n_features})"


def prepare_targets(y: np.ndarray, task: str | None, what: str
                    ) -> tuple[str, np.ndarray, np.ndarray | None]:
    """Decide the task and encode class labels: ``(task, y, classes)``.

    ``classes`` holds the sorted original labels (None for regression); class labels become
    int64 indices into it.
    """
    task = check_task(task) or infer_task(y)
    if task == "classification":
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise InvalidValueError(f"{what}: the targets contain NaN or infinite values")
        indices, classes = encode_labels(y)
        if classes.size < 2:
            only = classes.tolist()[0] if classes.size else "none"
            raise InvalidValueError(
                f"{what}: the target has a single class ({only!r}); classification needs at "
                "least two classes"
            )
        return task, indices, classes
    if y.dtype.kind not in "iuf":
        raise InvalidValueError(f"{what}: task='regression' needs numeric targets, got {y.dtype}")
    return task, y, None


def build_bundle(name: str, X: np.ndarray, y: np.ndarray, *, task: str | None = None,
                 test_size: Any = 0.25, val_size: Any = None, seed: int = 0,
                 stratify: bool | None = None, dtype: Any = None,
                 X_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
                 feature_names: tuple[str, ...] = (), class_names: Any = None,
                 description: str = "", source: str = "", what: str | None = None
                 ) -> DatasetBundle:
    """Encode targets, convert dtypes and split into a :class:`DatasetBundle`.

    With ``X_test``/``y_test`` given, the test part is fixed and ``val_size`` is a fraction of
    the training data; otherwise ``test_size`` and ``val_size`` are fractions of all of ``X``.
    Classification parts are stratified unless ``stratify=False``. ``what`` names the data in
    error messages (default: ``name``).
    """
    dt = feature_dtype(dtype)
    n_train_given = X.shape[0]
    if X_test is not None:
        y_all = np.concatenate([y, y_test])
    else:
        y_all = y
    task, y_enc, classes = prepare_targets(y_all, task, what or name)
    num_classes = names = None
    if classes is not None:
        num_classes = int(classes.size)
        if class_names is not None:      # names indexed by the original integer labels
            names = tuple(str(class_names[int(c)]) for c in classes.tolist())
        else:
            names = tuple(str(c) for c in classes.tolist())
    y_enc = y_enc if task == "classification" else y_enc.astype(dt)
    strat = (task == "classification") if stratify is None else stratify
    if X_test is not None:
        tr, va, _ = split_indices(n_train_given, y_enc[:n_train_given], test_size=0,
                                  val_size=val_size, stratify=strat, seed=seed)
        X_tr_all, y_tr_all = X, y_enc[:n_train_given]
        Xte, yte = X_test, y_enc[n_train_given:]
        if not val_size:
            tr = np.arange(n_train_given)
    else:
        tr, va, te = split_indices(X.shape[0], y_enc, test_size=test_size, val_size=val_size,
                                   stratify=strat, seed=seed)
        X_tr_all, y_tr_all = X, y_enc
        Xte, yte = X[te], y_enc[te]
    has_val = va.size > 0
    return DatasetBundle(
        name=name, task=task,
        X_train=X_tr_all[tr].astype(dt, copy=False), y_train=y_tr_all[tr],
        X_test=np.asarray(Xte).astype(dt, copy=False), y_test=yte,
        X_val=X_tr_all[va].astype(dt, copy=False) if has_val else None,
        y_val=y_tr_all[va] if has_val else None,
        num_classes=num_classes, feature_names=tuple(feature_names), class_names=names,
        description=description, source=source,
    )
