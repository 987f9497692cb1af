"""Data larger than memory: ``.npy`` files (and directories of ``.npy``/``.npz`` shards) read
through memory maps, a batch of rows at a time.

:class:`MappedRows` stands where an in-memory reader gives a float64 matrix ``X`` of shape
``(N, d)``: ``rows[index]`` (a slice, an integer, an integer array) gathers just those rows from
the maps and returns them as that matrix (category codes in categorical columns, NaN where a cell
is missing), ``rows.take(index)`` is a lazy view of a subset, ``len(rows)`` is N. Only the pages
of the rows touched are read, so a process (or a data-parallel rank, which gathers only its share
of every batch) keeps a bounded amount of its own memory however large the file is; the kernel's
page cache holds what was read and gives it back under pressure.

The files:

- a **plain 2-D numeric array** ``(N, W)``: its columns are named ``x0 .. x{W-1}`` (as a CSV
  without a header), the target is one of them (``--target x3`` or ``--target 3``);
- a **structured array** ``(N,)`` with named fields (what ``chainrule convert`` writes): each field
  is a column; numeric fields are numeric features, text fields (``U``/``S``) are categorical
  (their sorted distinct values are the categories; an empty string is a missing cell);
- a **directory** of such ``.npy`` files (all plain with one width and dtype, or all with one
  structured dtype), or of ``.npz`` archives each holding ``X`` ``(N_i, d)`` and ``y`` ``(N_i,)``,
  read in name order as one data set. ``.npz`` members stored uncompressed (``np.savez``) are
  memory-mapped; compressed ones (``np.savez_compressed``) cannot be and are read into memory.

Opening checks every value once, streaming (missing cells, infinities, values beyond the model
dtype, unknown categories), so a batch drawn later never fails. What stays in memory: the target
column (8 bytes a row for numbers), and, in a run, the split's row indices and one epoch's order
(8 bytes a row each).
"""

from __future__ import annotations

import struct
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import InputFileError, _npy_header

CHUNK_BYTES = 16 << 20
"""How much raw data one streaming pass reads at a time."""


@dataclass
class _Shard:
    path: Path
    array: np.ndarray          # plain (n, W) or structured (n,): a memmap, or in memory
    y: np.ndarray | None       # an .npz shard's targets
    mapped: bool


@dataclass
class MappedRows:
    """Rows of memory-mapped shards as a float64 feature matrix, gathered on demand.

    Attributes:
        shards: the files, in order; row ``i`` of the data set is a row of one of them.
        features: the feature columns: column indices of a plain array, or field names.
        vocab: sorted categories of each categorical field (structured arrays).
        subset: global row indices this view is restricted to (None: every row).
    """

    shards: list[_Shard]
    features: list[Any]
    vocab: dict[str, np.ndarray] = field(default_factory=dict)
    subset: np.ndarray | None = None

    def __post_init__(self) -> None:
        sizes = [len(s.array) for s in self.shards]
        self._offsets = np.cumsum([0, *sizes])

    # ------------------------------------------------------------------ array-like surface
    @property
    def ndim(self) -> int:
        return 2

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self), len(self.features))

    def __len__(self) -> int:
        return int(self._offsets[-1]) if self.subset is None else len(self.subset)

    @property
    def nbytes_on_disk(self) -> int:
        return sum(s.path.stat().st_size for s in self.shards)

    def __getitem__(self, index: Any) -> np.ndarray:
        """The rows ``index`` (slice, integer, integer array or boolean mask) as float64
        ``(n, d)`` (``(d,)`` for an integer); ``rows[index, cols]`` picks columns too."""
        if isinstance(index, tuple):
            if len(index) == 1:
                return self[index[0]]
            rows, cols = index
            out = self[rows]
            return out[:, cols] if out.ndim == 2 else out[cols]
        idx, scalar = _positions(index, len(self))
        out = self._gather(self._global(idx))
        return out[0] if scalar else out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def take(self, index: Any) -> MappedRows:
        """A lazy view of the rows ``index`` (positions in this view, as for ``rows[index]``)."""
        idx = _positions(index, len(self))[0]
        return MappedRows(self.shards, self.features, self.vocab, self._global(idx))

    def chunks(self, rows: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, block)`` over this view (or over its positions ``rows``), in blocks of
        about :data:`CHUNK_BYTES` of float64 features."""
        step = max(1, CHUNK_BYTES // (8 * max(len(self.features), 1)))
        n = len(self) if rows is None else len(rows)
        for lo in range(0, n, step):
            hi = min(lo + step, n)
            yield lo, self[lo:hi] if rows is None else self[rows[lo:hi]]

    def where(self, i: int) -> str:
        """How an error names row ``i`` of this view: the shard file and its row."""
        g = int(self._global(np.array([i]))[0])
        s = int(np.searchsorted(self._offsets, g, side="right") - 1)
        local = g - int(self._offsets[s])
        if len(self.shards) == 1:
            return f"row {local}"
        return f"{self.shards[s].path.name}, row {local}"

    # ------------------------------------------------------------------ gathering
    def _global(self, idx: np.ndarray) -> np.ndarray:
        return idx if self.subset is None else self.subset[idx]

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), len(self.features)), dtype=np.float64)
        if not len(rows):
            return out
        if len(self.shards) == 1:
            out[...] = self._convert(self.shards[0].array[rows])
            return out
        shard = np.searchsorted(self._offsets, rows, side="right") - 1
        for s in np.unique(shard):
            at = np.flatnonzero(shard == s)
            local = rows[at] - self._offsets[s]
            out[at] = self._convert(self.shards[s].array[local])
        return out

    def _convert(self, block: np.ndarray) -> np.ndarray:
        if block.dtype.names is None:          # plain 2-D
            return block[:, self.features].astype(np.float64)
        out = np.empty((len(block), len(self.features)), dtype=np.float64)
        for j, name in enumerate(self.features):
            values = block[name]
            vocab = self.vocab.get(name)
            if vocab is None:
                out[:, j] = values
                continue
            if values.dtype.kind == "S":    # bytes: as text, full width (never truncated)
                values = _as_text(name, values)
            missing = np.char.str_len(values) == 0
            codes = np.searchsorted(vocab, values)
            known = (codes < len(vocab)) & (vocab[np.minimum(codes, len(vocab) - 1)] == values)
            bad = ~known & ~missing
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise UnknownCategory(name, str(values[i]), i)
            out[:, j] = np.where(missing, np.nan, codes)
        return out


def _positions(index: Any, n: int) -> tuple[np.ndarray, bool]:
    """``(non-negative int64 positions, whether index was a scalar)`` of a slice, an integer, an
    integer array or a boolean mask over ``n`` rows, checked as NumPy checks them."""
    if isinstance(index, slice):
        return np.arange(*index.indices(n), dtype=np.int64), False
    idx = np.asarray(index)
    if idx.dtype == bool:
        if idx.shape != (n,):
            raise IndexError(f"a boolean mask of shape {idx.shape} does not fit {n} rows")
        return np.flatnonzero(idx).astype(np.int64), False
    if idx.size == 0:
        idx = idx.astype(np.int64)
    if idx.dtype.kind not in "iu":
        raise IndexError(f"row indices must be integers, slices or boolean masks, got "
                         f"{idx.dtype}")
    scalar = idx.ndim == 0
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError(f"row index out of range for {n} rows")
    idx = idx.reshape(-1).astype(np.int64, copy=False)
    return np.where(idx < 0, idx + n, idx), scalar


class UnknownCategory(ValueError):
    """A text cell outside a categorical column's categories (raised while converting a block;
    the opener turns it into an error naming the file and row)."""

    def __init__(self, column: str, value: str, row: int) -> None:
        super().__init__(column, value, row)
        self.column, self.value, self.row = column, value, row


def _as_text(name: str, values: np.ndarray) -> np.ndarray:
    """Bytes cells as text (ASCII, as NumPy decodes them); a cell that is not ASCII is an
    unknown category."""
    try:
        return values.astype(str)
    except UnicodeDecodeError:
        for i, v in enumerate(values.tolist()):
            if not v.isascii():
                raise UnknownCategory(name, repr(v), i) from None
        raise


def rows_of(X: Any, rows: np.ndarray) -> Any:
    """``X[rows]``: a lazy view for :class:`MappedRows`, the gathered rows for an array."""
    return X.take(rows) if isinstance(X, MappedRows) else X[rows]


# --------------------------------------------------------------------------- opening files
def shard_files(path: Path) -> list[Path]:
    """The ``.npy`` or ``.npz`` files of a directory, in name order (not both kinds)."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".npy", ".npz")
                   and not p.name.startswith("."))
    if not files:
        raise InputFileError(f"{path}: a directory of data shards needs .npy or .npz files; "
                             "it has none")
    kinds = {p.suffix.lower() for p in files}
    if len(kinds) > 1:
        raise InputFileError(f"{path}: holds both .npy and .npz shards; a data set is one kind")
    return files


def open_npy(p: Path) -> _Shard:
    """A memory map of an ``.npy`` file, its header checked against the file first."""
    size = p.stat().st_size
    with p.open("rb") as fh:
        shape, dtype = _npy_header(fh, str(p), size)
        start = fh.tell()
    _check_dtype(p, dtype)
    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > size - start:
        raise InputFileError(f"{p}: truncated: the header declares {shape} of {dtype}")
    try:
        array = np.load(p, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputFileError(f"{p}: not a readable .npy file ({exc})") from None
    return _Shard(p, array, None, True)


def _check_dtype(p: Path, dtype: np.dtype) -> None:
    if dtype.names is None:
        if dtype.kind not in "biuf":
            raise InputFileError(f"{p}: holds {dtype}, not numbers (a plain array must be "
                                 "numeric; name columns with a structured array)")
        return
    for name in dtype.names:
        sub = dtype.fields[name][0]
        if sub.shape or sub.kind not in "biufUS":
            raise InputFileError(f"{p}: field {name!r} holds {sub}; fields must be numbers or "
                                 "text")


def _member(zf: zipfile.ZipFile, p: Path, key: str) -> np.ndarray | None:
    """Array ``key`` of an .npz: memory-mapped when stored uncompressed, else read."""
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        return None
    what = f"{p}, array {key!r}"
    with zf.open(info) as fh:
        shape, dtype = _npy_header(fh, what, info.file_size)
        header_len = fh.tell() if info.compress_type == zipfile.ZIP_STORED else None
        fh.seek(0)
        fmt = np.lib.format
        read = fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else \
            fmt.read_array_header_2_0
        fortran = bool(read(fh, max_header_size=10000)[1])
    if dtype.names is not None:
        raise InputFileError(f"{what}: a structured array; .npz shards hold plain X and y")
    if header_len is None:
        with zf.open(info) as fh:
            return np.lib.format.read_array(fh, allow_pickle=False)
    with p.open("rb") as raw:
        raw.seek(info.header_offset)
        local = raw.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise InputFileError(f"{what}: a corrupt zip entry")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
    offset = info.header_offset + 30 + name_len + extra_len + header_len
    if int(np.prod(shape, dtype=np.float64)) == 0:
        return np.zeros(shape, dtype)
    return np.memmap(p, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran else "C")


def open_npz(p: Path) -> tuple[_Shard, tuple[str, ...] | None]:
    """An ``.npz`` shard: ``X`` (memory-mapped where stored uncompressed) and ``y``."""
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"{p}: not a readable .npz archive ({exc})") from None
    with zf:
        try:
            X, y = _member(zf, p, "X"), _member(zf, p, "y")
            names = _member(zf, p, "feature_names")
        except InputFileError:
            raise
        except Exception as exc:  # zlib and zipfile errors of a corrupt member
            raise InputFileError(f"{p}: cannot be read ({type(exc).__name__}: {exc})") from None
    if X is None:
        raise InputFileError(f"{p}: no array named X")
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise InputFileError(f"{p}: X must be a 2-D numeric array, got {X.dtype} {X.shape}")
    if y is not None and (y.ndim != 1 or len(y) != len(X) or y.dtype.kind not in "biufUS"):
        raise InputFileError(f"{p}: y must be 1-D with one target per row of X; got "
                             f"{y.dtype} {y.shape} for X {X.shape}")
    fn = None
    if names is not None:
        if names.dtype.kind not in "US" or names.shape != (X.shape[1],):
            raise InputFileError(f"{p}: feature_names must be {X.shape[1]} strings")
        fn = tuple(str(s) for s in names.tolist())
        if len(set(fn)) != len(fn):
            raise InputFileError(f"{p}: duplicate feature names")
    return _Shard(p, X, None if y is None else np.asarray(y), isinstance(X, np.memmap)), fn


def open_shards(path: Path) -> tuple[list[_Shard], tuple[str, ...] | None, str]:
    """The shards of a file or directory, checked to agree; returns ``(shards, feature_names,
    kind)`` with kind ``"npy"`` or ``"npz"``."""
    files = shard_files(path) if path.is_dir() else [path]
    kind = files[0].suffix.lower()[1:]
    names = None
    shards: list[_Shard] = []
    for f in files:
        if kind == "npy":
            shards.append(open_npy(f))
        else:
            shard, fn = open_npz(f)
            if shards and fn != names:
                raise InputFileError(f"{f}: feature_names differ from {files[0].name}'s")
            names = fn
            shards.append(shard)
        first, this = shards[0].array, shards[-1].array
        if kind == "npz" and (this.shape[1] != first.shape[1] or
                              (shards[-1].y is None) != (shards[0].y is None)):
            raise InputFileError(f"{f}: X has shape {this.shape}; {files[0].name} has "
                                 f"{first.shape} (every shard needs the same columns)")
        if kind == "npy":
            if this.dtype != first.dtype or this.ndim != first.ndim or \
                    (this.ndim == 2 and this.shape[1] != first.shape[1]):
                raise InputFileError(f"{f}: holds {this.dtype} {this.shape}; {files[0].name} "
                                     f"holds {first.dtype} {first.shape} (every shard needs "
                                     "the same columns)")
            if this.ndim != (1 if this.dtype.names else 2):
                raise InputFileError(f"{f}: a plain array must be 2-D (rows, columns) and a "
                                     f"structured one 1-D, got shape {this.shape}")
    if sum(len(s.array) for s in shards) == 0:
        raise InputFileError(f"{path}: holds no rows")
    return shards, names, kind


def column_values(shards: Sequence[_Shard], key: Any) -> np.ndarray:
    """One whole column (a field name or a column index), read in chunks: the target."""
    parts = []
    for s in shards:
        a = s.array
        step = max(1, CHUNK_BYTES // max(a.itemsize * (a.shape[1] if a.ndim == 2 else 1), 1))
        for lo in range(0, len(a), step):
            block = a[lo:lo + step]
            parts.append(np.array(block[key] if isinstance(key, str) else block[:, key]))
    return np.concatenate(parts)


def categories_of(shards: Sequence[_Shard], name: str, limit: int) -> np.ndarray | None:
    """Sorted distinct non-empty values of a text field, streaming; None past ``limit``."""
    seen: np.ndarray | None = None
    for s in shards:
        a = s.array
        step = max(1, CHUNK_BYTES // max(a.itemsize, 1))
        for lo in range(0, len(a), step):
            u = np.unique(np.asarray(a[lo:lo + step][name]))
            seen = u if seen is None else np.union1d(seen, u)
            if len(seen) > limit + 1:
                return None
    assert seen is not None
    seen = seen[np.char.str_len(seen) > 0]
    if len(seen) > limit:
        return None
    if seen.dtype.kind == "S":
        try:
            return seen.astype(str)
        except UnicodeDecodeError:
            raise InputFileError(f"{shards[0].path}: field {name!r} holds bytes that are not "
                                 "ASCII text; store text as a Unicode (U) field") from None
    return seen


def shards_sha256(path: Path) -> str:
    """One SHA-256 for a file, or for a directory's shards (their names and SHA-256s)."""
    import hashlib

    from .reader import file_sha256

    if not path.is_dir():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in shard_files(path):
        h.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def data_bytes_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in (shard_files(path) if path.is_dir() else [path]))


__all__ = ["MappedRows", "open_shards", "shard_files", "shards_sha256", "CHUNK_BYTES",
           "UnknownCategory", "column_values", "categories_of", "data_bytes_on_disk",
           "read_mapped", "rows_of"]


# --------------------------------------------------------------------------- the reader's rules
def read_mapped(p: Path, *, target: Any, schema: Any, need_target: bool, allow_missing: bool,
                max_abs: float | None) -> Any:
    """A :class:`~chainrule.data.reader.Table` whose ``X`` is :class:`MappedRows`, under the
    reader's rules (see :mod:`chainrule.data.reader`): columns by name (fields, or ``x0 ..``
    for a plain array), a target, every value checked once by a streaming pass."""
    from .reader import _MAX_CATEGORIES, Schema, Table, _positional_names, _target_name

    shards, fnames, kind = open_shards(p)
    first = shards[0].array
    vocab: dict[str, np.ndarray] = {}
    y: np.ndarray | None = None
    if kind == "npz":
        width = first.shape[1]
        names = list(fnames or [f"x{j}" for j in range(width)])
        if schema is None:
            if shards[0].y is None:
                raise InputFileError(f"{p}: no array named y (the targets) to train on")
            schema = Schema(tuple(names), ("numeric",) * width, {}, "y", (*names, "y"))
            features: list[Any] = list(range(width))
        else:
            _no_text_columns(p, schema)
            if width != len(schema.columns):
                raise InputFileError(f"{p}: X has {width} columns; the model expects "
                                     f"{len(schema.columns)}")
            if fnames is not None and sorted(fnames) != sorted(schema.columns):
                raise InputFileError(f"{p}: feature_names {list(fnames)} do not match the "
                                     f"model's columns {list(schema.columns)}")
            features = [names.index(c) for c in schema.columns] if fnames else \
                list(range(width))
        if shards[0].y is not None:
            y = np.concatenate([np.asarray(s.y) for s in shards])
    elif first.dtype.names is None:
        width = first.shape[1]
        if schema is None:
            names = [f"x{j}" for j in range(width)]
            t = _target_name(p, names, target)
            features = [j for j in range(width) if names[j] != t]
            if not features:
                raise InputFileError(f"{p}: the only column is the target {t!r}; no features")
            schema = Schema(tuple(names[j] for j in features), ("numeric",) * len(features),
                            {}, t, tuple(names))
        else:
            _no_text_columns(p, schema)
            names = _positional_names(width, schema)
            features = [names.index(c) for c in schema.columns]
        if schema.target in names:
            y = column_values(shards, names.index(schema.target))
    else:
        names = list(first.dtype.names)
        text = {n for n in names if first.dtype.fields[n][0].kind in "US"}
        if schema is None:
            t = _target_name(p, names, target)
            features = [n for n in names if n != t]
            if not features:
                raise InputFileError(f"{p}: the only field is the target {t!r}; no features")
            categories = {}
            for n in features:
                if n in text:
                    cats = categories_of(shards, n, _MAX_CATEGORIES)
                    n_rows = sum(len(s.array) for s in shards)
                    if cats is None or (len(cats) > 50 and len(cats) > 0.5 * n_rows):
                        raise InputFileError(
                            f"{p}: field {n!r} holds "
                            f"{len(cats) if cats is not None else f'over {_MAX_CATEGORIES}'} "
                            "distinct text values; as a categorical feature that is too many")
                    categories[n] = tuple(cats.tolist())
            schema = Schema(tuple(features), tuple("categorical" if n in text else "numeric"
                                                   for n in features), categories, t,
                            tuple(names))
        else:
            missing = [c for c in schema.columns if c not in names]
            if missing:
                raise InputFileError(f"{p}: missing field(s) {missing}; the model needs "
                                     f"{list(schema.columns)}")
            unknown = [n for n in names if n not in schema.columns and n != schema.target]
            if unknown:
                raise InputFileError(f"{p}: unknown field(s) {unknown}; the model's columns "
                                     f"are {list(schema.columns)}")
            for n, k in zip(schema.columns, schema.kinds):
                if (k == "categorical") != (n in text):
                    raise InputFileError(f"{p}: field {n!r} holds "
                                         f"{'text' if n in text else 'numbers'}; the model "
                                         f"reads it as {k}")
            features = list(schema.columns)
        for n, cats in schema.categories.items():
            vocab[n] = np.array(sorted(cats), dtype=str)
        if schema.target in names:
            y = column_values(shards, schema.target)
    if need_target and y is None:
        raise InputFileError(f"{p}: no target {schema.target!r} to score against")
    rows = MappedRows(shards, features, vocab)
    if y is not None:
        y = _target(p, rows, y, schema.target)
    _check_rows(p, rows, schema, allow_missing, max_abs)
    return Table(rows, y, schema)


def _no_text_columns(p: Path, schema: Any) -> None:
    if schema.categorical:
        raise InputFileError(f"{p}: the model has categorical columns; give its rows as CSV, "
                             "Parquet or a structured .npy with named fields")


def _target(p: Path, rows: MappedRows, y: np.ndarray, name: str) -> np.ndarray:
    if y.dtype.kind in "US":
        try:
            y = y.astype(str)
        except UnicodeDecodeError:
            raise InputFileError(f"{p}: the target {name!r} holds bytes that are not ASCII "
                                 "text; store text as a Unicode (U) field") from None
        empty = np.char.str_len(y) == 0
        if empty.any():
            raise InputFileError(f"{p}, {rows.where(int(np.flatnonzero(empty)[0]))}, column "
                                 f"{name!r}: the target is missing")
        return y
    y = y.astype(np.float64)
    bad = ~np.isfinite(y)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputFileError(f"{p}, {rows.where(i)}, column {name!r}: the target "
                             f"{float(y[i])!r} is not finite" if not np.isnan(y[i]) else
                             f"{p}, {rows.where(i)}, column {name!r}: the target is missing")
    return y


def _check_rows(p: Path, rows: MappedRows, schema: Any, allow_missing: bool,
                max_abs: float | None) -> None:
    """One streaming pass: unknown categories, missing cells, infinities, overflow."""
    for lo, block in _blocks(p, rows):
        if np.isfinite(block).all() and (max_abs is None or not (np.abs(block) > max_abs).any()):
            continue
        nan = np.isnan(block)
        for mask, what in ((nan if not allow_missing else None, "missing"),
                           (np.isinf(block), "inf"),
                           (None if max_abs is None else
                            np.abs(np.where(nan, 0.0, block)) > max_abs, "big")):
            if mask is None or not mask.any():
                continue
            i, j = (int(v) for v in np.argwhere(mask)[0])
            at, col, v = rows.where(lo + i), schema.columns[j], float(block[i, j])
            if what == "missing":
                raise InputFileError(f"{p}, {at}, column {col!r}: missing value; missing values "
                                     "are filled only by a model trained with --impute "
                                     "mean|median")
            if what == "inf":
                raise InputFileError(f"{p}, {at}, column {col!r}: {v!r} is not a finite number")
            raise InputFileError(f"{p}, {at}, column {col!r}: {v!r} overflows the model's dtype "
                                 f"(largest finite value {max_abs:.4g})")


def _blocks(p: Path, rows: MappedRows) -> Iterator[tuple[int, np.ndarray]]:
    step = max(1, CHUNK_BYTES // (8 * max(len(rows.features), 1)))
    for lo in range(0, len(rows), step):
        hi = min(lo + step, len(rows))
        try:
            block = rows[lo:hi]
        except UnknownCategory as exc:
            while hi - lo > 1:      # bisect to the first row that does not convert
                mid = (lo + hi) // 2
                try:
                    rows[lo:mid]
                except UnknownCategory:
                    hi = mid
                    continue
                lo = mid
            raise InputFileError(f"{p}, {rows.where(lo)}, column {exc.column!r}: unknown "
                                 f"category {exc.value!r}; the model knows "
                                 f"{rows.vocab[exc.column][:10].tolist()}") from None
        yield lo, block
