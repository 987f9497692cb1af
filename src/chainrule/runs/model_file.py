"""A trained model file: the network with its preprocessing, and the metadata that says how to
read raw rows for it and what its outputs mean; validated against an explicit schema on load.

The metadata (``user.run`` in the safetensors header, JSON)::

    {"version": 2, "task": "classification" | "regression", "loss": ..., "prediction":
     "argmax" | "sign" | "logit" | "none", "num_classes": K | null, "class_names": [...] | null,
     "columns": {"columns": [...], "kinds": [...], "categories": {...}, "target": ...,
                 "file_columns": [...]},
     "impute": "mean" | "median" | null, "dtype": "float32" | "float64", "dataset": "..."}

Files of the first stage (no ``version``; a bare MLP whose standardiser sat in the metadata) are
upgraded on load to the same form, so what was saved before keeps working.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.reader import Schema, Table, read_table
from ..errors import ChainruleError, FileFormatError, InvalidValueError

META_KEY = "run"
MODEL_NAME = "model.safetensors"
VERSION = 2
_PREDICTIONS = ("argmax", "sign", "logit", "none")
_LOSSES = ("cross-entropy", "square", "bce")
_MAX_NAME = 1000
_MAX_COLUMNS = 1_000_000


def predict_outputs(model: Any, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The model's outputs for raw rows ``X`` (N, d), in eval mode, without recording."""
    import chainrule as cr
    from chainrule.nn.preprocessing import input_dtype

    model.eval()
    dtype = input_dtype(model)
    outs = []
    with cr.no_grad():
        for i in range(0, len(X), batch):
            outs.append(model(cr.tensor(np.asarray(X[i:i + batch], dtype=dtype))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 1))


def class_name(label: Any) -> str:
    """How a class label is written: integral numbers without a decimal point."""
    if isinstance(label, (float, np.floating)) and float(label).is_integer():
        return str(int(label))
    if isinstance(label, (np.integer,)):
        return str(int(label))
    return str(label)


@dataclass
class RunModel:
    """A model loaded with its run metadata (validated)."""

    model: Any
    run: dict[str, Any]
    path: Path

    @property
    def schema(self) -> Schema:
        c = self.run["columns"]
        return Schema(tuple(c["columns"]), tuple(c["kinds"]),
                      {k: tuple(v) for k, v in c["categories"].items()}, c["target"],
                      tuple(c["file_columns"]))

    @property
    def task(self) -> str:
        return self.run["task"]

    @property
    def class_names(self) -> list[str] | None:
        return self.run["class_names"]

    def read(self, path: str | Path, *, header: bool = True, delimiter: str | None = None,
             encoding: str | None = None, need_target: bool = False) -> Table:
        """Rows of a file for this model, under the strict reader's rules."""
        return read_table(path, schema=self.schema, header=header, delimiter=delimiter,
                          encoding=encoding, allow_missing=self.run["impute"] is not None,
                          max_abs=float(np.finfo(self.run["dtype"]).max),
                          need_target=need_target)

    def outputs(self, X: np.ndarray) -> np.ndarray:
        """Outputs for raw rows; a non-finite output is an error naming the row."""
        from ..data.mapped import MappedRows

        if not isinstance(X, MappedRows):     # mapped rows are gathered a batch at a time
            X = np.asarray(X, dtype=np.float64)
        n = len(self.run["columns"]["columns"])
        if X.ndim != 2 or X.shape[1] != n:
            raise InvalidValueError(f"the model expects rows of {n} raw features, got shape "
                                    f"{X.shape}")
        out = predict_outputs(self.model, X)
        bad = ~np.isfinite(out).all(axis=1) if out.ndim == 2 else ~np.isfinite(out)
        if bad.any():
            raise InvalidValueError(f"the model's output for row {int(np.flatnonzero(bad)[0])} "
                                    "is not finite (inputs far outside the training range?)")
        return out

    def targets(self, y: np.ndarray, what: str = "the data") -> np.ndarray:
        """Targets as the model's classes (indices into ``class_names``) or numbers."""
        if self.task == "regression":
            if y.dtype.kind not in "biuf":
                raise InvalidValueError(f"{what}: the targets must be numbers for a "
                                        "regression model")
            return y.astype(np.float64)
        index = {n: i for i, n in enumerate(self.class_names or [])}
        out = np.empty(len(y), dtype=np.int64)
        for i, v in enumerate(y.tolist()):
            name = class_name(v)
            if name not in index:
                raise InvalidValueError(f"{what}: row {i}: label {name!r} is not one of the "
                                        f"model's classes {list(index)[:10]}")
            out[i] = index[name]
        return out


def run_metadata(*, task: str, loss: str, prediction: str, num_classes: int | None,
                 class_names: list[str] | None, schema: Schema, impute: str | None,
                 dtype: str, dataset: str) -> dict[str, Any]:
    return {"version": VERSION, "task": task, "loss": loss, "prediction": prediction,
            "num_classes": num_classes, "class_names": class_names,
            "columns": schema.as_dict(), "impute": impute, "dtype": dtype, "dataset": dataset}


def save_run_model(model: Any, path: Path, run: dict[str, Any]) -> Path:
    import chainrule as cr

    _check_run(path, run, model)
    return cr.save(model, path, metadata={META_KEY: json.dumps(run, sort_keys=True)})


def load_run_model(path: str | Path) -> RunModel:
    """A model file (or a run directory holding ``model.safetensors``) with its metadata."""
    from ..io import load, read

    p = Path(path)
    if p.is_dir():
        p = p / MODEL_NAME
    if not p.is_file():
        raise InvalidValueError(f"{path}: no model file (give a .safetensors file or a run "
                                "directory)")
    model = load(p)
    _, meta = read(p)
    text = meta.get("user." + META_KEY)
    if text is None:
        raise FileFormatError(f"{p}: a chainrule model without run metadata (not written by "
                              "`chainrule train`); load it with chainrule.load in Python")
    try:
        run = json.loads(text)
    except (ValueError, RecursionError):
        raise FileFormatError(f"{p}: the run metadata is not valid JSON") from None
    if isinstance(run, dict) and "version" not in run and "n_features" in run:
        model, run = _upgrade_v1(p, model, run)
    _check_run(p, run, model)
    return RunModel(model, run, p)


def _upgrade_v1(p: Path, model: Any, old: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A model file of chainrule 0.1's first stage: a bare MLP whose standardiser lived in the
    metadata. It becomes ``Sequential(Standardize, MLP)`` with version-2 metadata, so what was
    saved before keeps working (and now carries its preprocessing)."""
    import chainrule as cr

    params = list(model.parameters())
    if not params:
        _fail(p, "a version-1 model without parameters")
    dtype = str(params[0].dtype)
    names = old.get("feature_names")
    n = old.get("n_features")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= _MAX_COLUMNS:
        _fail(p, "version-1 n_features")
    names = _names(p, names, "feature_names", n)
    st = old.get("standardizer")
    if st is not None:
        if not isinstance(st, dict) or not all(
                isinstance(st.get(k), list) and len(st[k]) == n and
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in st[k])
                for k in ("mean", "scale")):
            _fail(p, "version-1 standardizer must hold mean and scale lists of n_features "
                     "numbers")
        try:
            layer = cr.nn.Standardize(n, dtype=dtype).set_statistics(st["mean"], st["scale"])
        except ChainruleError as exc:
            _fail(p, f"version-1 standardizer: {exc}")
        model = cr.nn.Sequential(layer, model)
    classes = old.get("class_names")
    if isinstance(classes, list):
        classes = [_integral_name(c) for c in classes]
    schema = Schema(tuple(names), ("numeric",) * n, {}, old.get("target") if isinstance(
        old.get("target"), str) else None, tuple(names))
    run = run_metadata(task=old.get("task"), loss=old.get("loss"),
                       prediction=old.get("prediction"), num_classes=old.get("num_classes"),
                       class_names=classes, schema=schema, impute=None, dtype=dtype,
                       dataset=str(old.get("dataset", ""))[:4096])
    return model, run


def _integral_name(name: Any) -> Any:
    """``"1.0"`` -> ``"1"``: version 1 wrote numeric labels as floats."""
    try:
        v = float(name)
    except (TypeError, ValueError):
        return name
    return str(int(v)) if v.is_integer() and str(name).strip() != "" else name


# --------------------------------------------------------------------------- the schema
def _fail(p: Path, what: str) -> None:
    raise FileFormatError(f"{p}: invalid run metadata: {what}")


def _names(p: Path, v: Any, what: str, n: int | None = None, unique: bool = True) -> list[str]:
    if not isinstance(v, list) or len(v) > _MAX_COLUMNS or not all(
            isinstance(s, str) and 0 < len(s) <= _MAX_NAME for s in v):
        _fail(p, f"{what} must be a list of non-empty strings")
    if n is not None and len(v) != n:
        _fail(p, f"{what} has {len(v)} entries, expected {n}")
    if unique and len(set(v)) != len(v):
        _fail(p, f"{what} has duplicates")
    return v


def _check_run(p: Path, run: Any, model: Any) -> None:
    """Every field's type and range, and agreement with the network's shapes."""
    from ..nn import MLP, Impute, OneHot, Sequential, Standardize

    if not isinstance(run, dict):
        _fail(p, "not a JSON object")
    if run.get("version") != VERSION:
        raise FileFormatError(f"{p}: run metadata version {run.get('version')!r} is not "
                              f"supported (this chainrule reads version {VERSION}; retrain the "
                              "model)")
    task, prediction, loss = run.get("task"), run.get("prediction"), run.get("loss")
    if task not in ("classification", "regression"):
        _fail(p, f"task {task!r}")
    if prediction not in _PREDICTIONS or loss not in _LOSSES:
        _fail(p, f"prediction {prediction!r} / loss {loss!r}")
    if (task == "regression") != (prediction == "none"):
        _fail(p, "prediction does not fit the task")
    if run.get("dtype") not in ("float32", "float64"):
        _fail(p, f"dtype {run.get('dtype')!r}")
    if run.get("impute") not in (None, "mean", "median"):
        _fail(p, f"impute {run.get('impute')!r}")
    if not isinstance(run.get("dataset"), str) or len(run["dataset"]) > 4096:
        _fail(p, "dataset must be a string")
    k = run.get("num_classes")
    names = run.get("class_names")
    if task == "classification":
        if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 100_000:
            _fail(p, f"num_classes {k!r}")
        _names(p, names, "class_names", k)
        if prediction in ("sign", "logit") and k != 2:
            _fail(p, f"{prediction} predictions need two classes")
    elif k is not None or names is not None:
        _fail(p, "a regression model has no classes")
    c = run.get("columns")
    if not isinstance(c, dict) or set(c) != {"columns", "kinds", "categories", "target",
                                            "file_columns"}:
        _fail(p, "columns must hold columns, kinds, categories, target, file_columns")
    cols = _names(p, c["columns"], "columns")
    kinds = c["kinds"]
    if not isinstance(kinds, list) or len(kinds) != len(cols) or not all(
            k_ in ("numeric", "categorical") for k_ in kinds):
        _fail(p, "kinds must give numeric or categorical for every column")
    cats = c["categories"]
    categorical = [n for n, k_ in zip(cols, kinds) if k_ == "categorical"]
    if not isinstance(cats, dict) or sorted(cats) != sorted(categorical):
        _fail(p, "categories must list the categories of exactly the categorical columns")
    for n in categorical:
        _names(p, cats[n], f"the categories of {n!r}")
        if not cats[n]:
            _fail(p, f"column {n!r} has no categories")
    if c["target"] is not None and (not isinstance(c["target"], str) or
                                    len(c["target"]) > _MAX_NAME):
        _fail(p, "target must be a column name")
    _names(p, c["file_columns"], "file_columns")
    # agreement with the network
    mods = list(model) if isinstance(model, Sequential) and not isinstance(model, MLP) \
        else [model]
    pre = [m for m in mods if isinstance(m, (Impute, OneHot, Standardize))]
    if mods[len(pre):] and not all(not isinstance(m, (Impute, OneHot, Standardize))
                                   for m in mods[len(pre):]):
        _fail(p, "preprocessing layers must come first")
    width = len(cols)
    impute = [m for m in pre if isinstance(m, Impute)]
    if (run["impute"] is not None) != bool(impute):
        _fail(p, "impute does not match the model's Impute layer")
    for m in pre:
        if m.num_features != width:
            _fail(p, f"{type(m).__name__} takes {m.num_features} features, the data has "
                     f"{width}")
        if isinstance(m, OneHot):
            idx = [j for j, k_ in enumerate(kinds) if k_ == "categorical"]
            if m.columns != idx or m.categories != [len(cats[cols[j]]) for j in idx]:
                _fail(p, "the OneHot layer does not match the categorical columns")
            width = m.out_features
    if categorical and not any(isinstance(m, OneHot) for m in pre):
        _fail(p, "categorical columns without a OneHot layer")
    net = mods[len(pre):]
    params = [q for m in net for q in m.parameters()]
    if not params:
        _fail(p, "no network after the preprocessing")
    first = next(m for m in (net[0].modules() if hasattr(net[0], "modules") else [net[0]])
                 if hasattr(m, "in_features"))
    if first.in_features != width:
        _fail(p, f"the network takes {first.in_features} inputs, the preprocessing gives {width}")
    last = [m for mm in net for m in mm.modules() if hasattr(m, "out_features")
            and hasattr(m, "weight")][-1]
    n_out = 1 if prediction in ("sign", "logit", "none") else k
    if last.out_features != n_out:
        _fail(p, f"the network has {last.out_features} outputs, the task needs {n_out}")
    if np.dtype(params[0].dtype) != np.dtype(run["dtype"]):
        _fail(p, "dtype does not match the network's")
