"""Where a run's rows come from, and its exact split: recorded by ``train``, replayed by
``evaluate``.

A *source record* names the data completely: a built-in set by name with every generation
parameter (and the SHA-256 of the generated arrays, so a changed generator is noticed), or a file
by its absolute path, the SHA-256 of its bytes and the options it was read with. The *split* is
the row indices of the train, val and test parts. ``split.json`` in the run directory holds both;
:func:`replay` reads the same rows again, or refuses when the bytes changed.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.reader import READER_VERSION, Table, read_table, table_from_arrays
from ..errors import FileFormatError, InvalidValueError

SPLIT_NAME = "split.json"
_BUILTIN_SPLIT_SEED = 0   # the documented split of the built-in sets (random_state 0)
_MNIST1D_SEED = 42        # the mnist1d package's standard generation seed


@dataclass(eq=False)
class Split:
    """Row indices (into the source table) of each part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    stratified: bool

    def part(self, name: str) -> np.ndarray:
        if name not in ("train", "val", "test"):
            raise InvalidValueError(f"--part must be train, val or test, got {name!r}")
        rows = getattr(self, name)
        if rows.size == 0:
            raise InvalidValueError(f"this run has no {name!r} part (it was trained with "
                                    f"{name}_size 0)")
        return rows

    def check_rows(self, n: int, where: Any) -> None:
        """Every recorded index is a row of the ``n`` rows read again."""
        if max(int(a.max(initial=-1)) for a in (self.train, self.val, self.test)) >= n:
            raise InvalidValueError(f"{where}: the recorded split does not fit the data ({n} "
                                    "rows)")

    def as_dict(self) -> dict[str, Any]:
        return {"stratified": self.stratified, "train": _encode_rows(self.train),
                "val": _encode_rows(self.val), "test": _encode_rows(self.test)}


LIST_LIMIT = 100_000
"""Parts with more rows are stored as base64 of little-endian int64 (a JSON list of millions of
numbers costs hundreds of MB to read back in Python); smaller ones stay readable lists."""


def _encode_rows(rows: np.ndarray) -> Any:
    if len(rows) <= LIST_LIMIT:
        return rows.tolist()
    import base64

    return {"int64le_base64": base64.b64encode(rows.astype("<i8").tobytes()).decode("ascii")}


def _decode_rows(p: Path, name: str, rows: Any) -> np.ndarray:
    if isinstance(rows, dict) and isinstance(rows.get("int64le_base64"), str) and len(rows) == 1:
        import base64
        import binascii

        try:
            raw = base64.b64decode(rows["int64le_base64"], validate=True)
        except (binascii.Error, ValueError):
            raw = b"?"
        if len(raw) % 8 == 0:
            out = np.frombuffer(raw, dtype="<i8").astype(np.int64)
            if (out >= 0).all():
                return out
    elif isinstance(rows, list) and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in rows):
        return np.asarray(rows, dtype=np.int64)
    raise FileFormatError(f"{p}: {name!r} must be a list of row indices")


# --------------------------------------------------------------------------- reading a source
def _array_hash(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _builtin(name: str, noise: float | None) -> tuple[Table, dict[str, Any]]:
    from ..data import builtin, mnist1d_data, synthetic

    if name in builtin._SKLEARN:
        from sklearn import datasets

        raw = getattr(datasets, builtin._SKLEARN[name][0])()
        names = [str(f) for f in raw.feature_names]
        table = table_from_arrays(raw.data, raw.target, names)
        table.class_names = [str(c) for c in raw.target_names]
        options: dict[str, Any] = {}
    elif name in synthetic.GENERATORS:
        make = synthetic.GENERATORS[name][0]
        opts: dict[str, Any] = {"n_samples": 1000, "seed": _BUILTIN_SPLIT_SEED}
        if noise is not None:
            opts["noise"] = float(noise)
        X, y = make(dtype="float64", **opts)
        table = table_from_arrays(X, y, [f"x{i}" for i in range(X.shape[1])])
        options = opts
    elif name == "mnist1d":
        d = mnist1d_data.load_arrays(seed=_MNIST1D_SEED)
        n = len(d["y"])
        table = table_from_arrays(np.concatenate([d["x"], d["x_test"]]),
                                  np.concatenate([d["y"], d["y_test"]]),
                                  [f"t{i}" for i in range(d["x"].shape[1])],
                                  test_rows=np.arange(n, n + len(d["y_test"])))
        options = {"seed": _MNIST1D_SEED}
    else:
        raise InvalidValueError(f"unknown built-in data set {name!r}")
    if noise is not None and name not in synthetic.GENERATORS:
        raise InvalidValueError(f"--noise is an option of the generated data sets, not of "
                                f"{name!r}")
    record = {"kind": "builtin", "name": name, "options": options,
              "sha256": _array_hash(table.X, np.asarray(table.y))}
    return table, record


def split_seed(record: dict[str, Any]) -> int:
    """The seed of a source's documented split (mnist1d's own, 0 for the others)."""
    return _MNIST1D_SEED if record.get("name") == "mnist1d" else _BUILTIN_SPLIT_SEED


def load_source(config: Any, memory_limit: int | None = None
                ) -> tuple[Table, dict[str, Any]]:
    """The rows a config names, and its source record."""
    from ..data.builtin import _REGISTRY, _normalise

    name = str(config.dataset)
    key = _normalise(name)
    if key in _REGISTRY and not Path(name).suffix:
        if config.target is not None:
            raise InvalidValueError(f"--target names a column of a data file; {key!r} is a "
                                    "built-in data set")
        return _builtin(key, config.noise)
    if config.noise is not None:
        raise InvalidValueError("--noise is an option of the generated data sets, not of a file")
    path = Path(name)
    if not path.suffix and not path.exists():
        raise InvalidValueError(f"unknown data set {name!r}; the built-in data sets are: "
                                f"{', '.join(_REGISTRY)} (or give a .csv, .npz or .parquet file)")
    table = read_table(path, target=config.target, header=config.header,
                       delimiter=config.delimiter, encoding=config.encoding,
                       allow_missing=config.impute is not None,
                       max_abs=float(np.finfo(config.dtype).max), memory_limit=memory_limit)
    record = {"kind": "file", "path": table.source["path"], "sha256": table.source["sha256"],
              "format": table.source["format"], "target": table.schema.target,
              "header": config.header, "delimiter": config.delimiter,
              "encoding": config.encoding, "impute": config.impute is not None,
              "dtype": config.dtype, "reader_version": READER_VERSION}
    return table, record


def replay(record: dict[str, Any]) -> Table:
    """Read a recorded source again; its bytes (or generated arrays) must be unchanged."""
    if record["kind"] == "builtin":
        table, again = _builtin(record["name"], record["options"].get("noise"))
        if again["sha256"] != record["sha256"]:
            raise InvalidValueError(f"the built-in data set {record['name']!r} generates "
                                    "different rows than when the run was trained (another "
                                    "version of its package?); evaluate with --data FILE")
        return table
    path = Path(record["path"])
    if not path.exists():
        raise InvalidValueError(f"the run's data file {path} is gone; `chainrule evaluate RUN "
                                "--data FILE` scores other labelled rows")
    from ..data.mapped import shards_sha256

    if record.get("reader_version") != READER_VERSION:
        raise InvalidValueError(f"the run's data file {path} was read by another version of "
                                "chainrule's reader, which may give other rows; "
                                "`chainrule evaluate RUN --data FILE` scores labelled rows")
    if shards_sha256(path) != record["sha256"]:
        raise InvalidValueError(f"the run's data file {path} changed since training (its "
                                "SHA-256 differs); `chainrule evaluate RUN --data FILE` scores other labelled rows")
    return read_table(path, target=record["target"], header=record["header"],
                      delimiter=record["delimiter"], encoding=record["encoding"],
                      allow_missing=record["impute"],
                      max_abs=float(np.finfo(record["dtype"]).max))


# --------------------------------------------------------------------------- splitting
def make_split(n: int, labels: np.ndarray | None, config: Any, fixed_test: np.ndarray | None,
               seed: int) -> tuple[Split, str | None]:
    """The parts, stratified by class where asked and possible; returns a note when the split
    fell back to an unstratified one."""
    from ..data.split import split_indices

    note = None
    stratify = bool(config.stratify and labels is not None)
    if stratify:
        _, counts = np.unique(labels, return_counts=True)
        if counts.min() < 3:
            note = (f"a class has only {counts.min()} row(s), too few to stratify the split; "
                    "the split is not stratified")
            stratify = False
    if fixed_test is not None:
        rest = np.setdiff1d(np.arange(n), fixed_test)
        lab = labels[rest] if labels is not None else None
        if config.val_size:
            tr, va, _ = split_indices(len(rest), lab, test_size=0, val_size=config.val_size,
                                      stratify=stratify, seed=seed)
            train, val = rest[tr], rest[va]
        else:
            train, val = rest, np.zeros(0, np.int64)
        return Split(train.astype(np.int64), val.astype(np.int64),
                     np.asarray(fixed_test, np.int64), stratify), note
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, val, test = split_indices(n, labels, test_size=config.test_size,
                                         val_size=config.val_size or None, stratify=stratify,
                                         seed=seed)
    return Split(train, val, test, stratify), note


def write_split(run_dir: Path, record: dict[str, Any], split: Split) -> None:
    from ..io import atomic_write

    body = {"format": "chainrule-split", "version": 1, "source": record, **split.as_dict()}
    atomic_write(run_dir / SPLIT_NAME, (json.dumps(body, sort_keys=True) + "\n").encode())


def read_split(run_dir: Path, n_rows: int | None = None) -> tuple[dict[str, Any], Split]:
    """The source record and split of a run, validated."""
    p = Path(run_dir) / SPLIT_NAME
    if not p.is_file():
        raise InvalidValueError(f"{run_dir}: no {SPLIT_NAME} (the run's exact split); give the "
                                "data to evaluate on with --data FILE")
    try:
        body = json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise FileFormatError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("format") != "chainrule-split":
        raise FileFormatError(f"{p}: not a chainrule split file")
    record = _check_record(p, body.get("source"))
    parts = {}
    for name in ("train", "val", "test"):
        parts[name] = _decode_rows(p, name, body.get(name))
    return record, Split(parts["train"], parts["val"], parts["test"],
                         bool(body.get("stratified")))


def _check_record(p: Path, rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict) or rec.get("kind") not in ("builtin", "file") or \
            not isinstance(rec.get("sha256"), str):
        raise FileFormatError(f"{p}: the source record is malformed")
    if rec["kind"] == "builtin":
        if not isinstance(rec.get("name"), str) or not isinstance(rec.get("options"), dict):
            raise FileFormatError(f"{p}: the built-in source record is malformed")
    else:
        ok = (isinstance(rec.get("path"), str) and isinstance(rec.get("header"), bool)
              and isinstance(rec.get("impute"), bool) and rec.get("dtype") in ("float32",
                                                                               "float64")
              and all(rec.get(k) is None or isinstance(rec.get(k), (str, int))
                      for k in ("target", "delimiter", "encoding")))
        if not ok:
            raise FileFormatError(f"{p}: the file source record is malformed")
    return rec
