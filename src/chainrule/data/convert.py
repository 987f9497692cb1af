"""``chainrule convert``: a CSV file too large to read at once, prepared once as a memory-mappable
``.npy`` (or a Parquet file), streaming, under the reader's rules.

Two passes over the text, a chunk of rows at a time, each chunk parsed by the ``csv`` module and
judged by the same functions :func:`~chainrule.data.reader.read_table` uses:

1. the scan: the header, every row's width, which columns hold text (categorical: at most 1,000
   distinct values, and a column of mostly numbers with a few text cells is an error naming the
   first), whether the target is text, the longest text, the number of rows;
2. the write: each chunk converted with the schema the scan decided (missing cells and infinite
   values are errors naming line and column unless ``allow_missing``), written into the output.

The ``.npy`` holds a structured array, one named field per column: numbers as float64, text as
fixed-width Unicode (an empty string is a missing cell), so ``chainrule train --dataset out.npy
--target COL`` reads the same rows, columns, categories and targets as the CSV itself, memory-
mapped. The output is written beside its final name and renamed into place when complete:
nothing is left half-written, and an existing file is replaced only with ``overwrite``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .arrays import InputFileError

CHUNK_ROWS = 100_000


@dataclass
class _Column:
    name: str
    numbers: int = 0
    text: int = 0
    first_text: tuple[int, str] | None = None
    distinct: set[str] | None = field(default_factory=set)   # None: more than the limit
    longest: int = 1


@dataclass
class ConvertResult:
    path: Path
    rows: int
    columns: list[str]
    kinds: dict[str, str]       # "numeric" or "categorical" (the target: "target")
    bytes: int


def _records(p: Path, encoding: str, sep: str) -> Iterator[tuple[int, list[str]]]:
    """``(record number, stripped cells)`` of each non-blank record, streaming."""
    try:
        with p.open("r", encoding=encoding, newline="") as fh:
            reader = csv.reader(fh, delimiter=sep, skipinitialspace=True)
            number = 0
            for row in reader:
                number += 1
                if any("\x00" in c for c in row):
                    raise InputFileError(f"{p}: holds NUL bytes; not a text (CSV) file")
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue            # a blank line (",," is a row of missing cells)
                yield number, [c.strip() for c in row]
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{p}: not {encoding.replace('-sig', '')} text ({exc.reason}); "
                             "give the file's encoding with --encoding") from None
    except csv.Error as exc:
        raise InputFileError(f"{p}: not a readable CSV file ({exc})") from None


def _chunks(p: Path, encoding: str, sep: str, header: bool, chunk_rows: int
            ) -> Iterator[tuple[list[str] | None, np.ndarray, Any]]:
    """``(header cells or None, record numbers, DataFrame of strings)`` a chunk at a time; every
    record must have the first one's width."""
    import pandas as pd

    width = None
    head: list[str] | None = None
    lines: list[int] = []
    rows: list[list[str]] = []
    for number, row in _records(p, encoding, sep):
        if width is None:
            width = len(row)
            if header:
                head = row
                continue
        elif len(row) != width:
            raise InputFileError(f"{p}, line {number}: {len(row)} fields, but the first row has "
                                 f"{width}")
        lines.append(number)
        rows.append(row)
        if len(rows) >= chunk_rows:
            yield head, np.asarray(lines), pd.DataFrame(rows, dtype=str)
            lines, rows = [], []
    if width is None:
        raise InputFileError(f"{p}: the file is empty")
    if rows or head is not None:
        yield head, np.asarray(lines), pd.DataFrame(rows, dtype=str, columns=range(width))


def _names(p: Path, head: list[str] | None, width: int) -> list[str]:
    from .reader import _looks_numeric, _positional_names

    if head is None:
        return _positional_names(width, None)
    if _looks_numeric(head):
        raise InputFileError(f"{p}, line 1: the first row holds numbers ({', '.join(head[:4])}"
                             f"{', ...' if len(head) > 4 else ''}) where the header is expected; "
                             "if the file has no header row, say so with --no-header")
    if any(not n for n in head):
        raise InputFileError(f"{p}: column {head.index('') + 1} has an empty name")
    dupes = sorted({n for n in head if head.count(n) > 1})
    if dupes:
        raise InputFileError(f"{p}: duplicate column name(s) {dupes}")
    return head


def convert_csv(source: str | os.PathLike[str], out: str | os.PathLike[str], *, target: Any,
                header: bool = True, delimiter: str | None = None, encoding: str | None = None,
                allow_missing: bool = False, overwrite: bool = False,
                chunk_rows: int = CHUNK_ROWS) -> ConvertResult:
    """Convert a CSV file to a structured ``.npy`` (or ``.parquet``), streaming (see the module
    docstring).

    Args:
        source: the CSV file. out: ``.npy`` or ``.parquet``.
        target: the target column (its name, or a 0-based index without a header).
        header, delimiter, encoding: as for ``chainrule train``.
        allow_missing: keep missing cells (NaN, or an empty string in a text column) for a run
            with ``--impute``; otherwise a missing cell is an error naming line and column.
        overwrite: replace an existing ``out``.
        chunk_rows: rows parsed at a time (memory is bounded by this, not by the file).

    Raises:
        InputFileError: the file breaks a reading rule (the message names line and column).
        InvalidValueError: bad options (an output that exists, an unknown suffix).
    """
    from ..errors import InvalidValueError
    from .reader import _MAX_CATEGORIES, _encoding_of, _sniff, _target_name

    src, dst = Path(os.fspath(source)), Path(os.fspath(out))
    if not src.is_file():
        raise InputFileError(f"{src}: no such file")
    kind = dst.suffix.lower()
    if kind not in (".npy", ".parquet"):
        raise InvalidValueError(f"{dst}: convert writes .npy or .parquet, not "
                                f"{dst.suffix or '(no suffix)'}")
    if dst.resolve() == src.resolve():
        raise InvalidValueError("the output would overwrite the input file")
    if dst.exists() and not overwrite:
        raise InvalidValueError(f"{dst} exists; give --overwrite to replace it")
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise InvalidValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or
                                  delimiter in "\r\n\"'"):
        raise InputFileError(f"--delimiter must be one character (not a quote or newline), got "
                             f"{delimiter!r}")
    enc = _encoding_of(src, encoding)
    if delimiter is None:
        with src.open("r", encoding=enc, errors="replace", newline="") as fh:
            delimiter = _sniff(fh.read(65536))

    # -- pass 1: the scan
    names: list[str] = []
    cols: list[_Column] = []
    n_rows = 0
    for head, lines, frame in _chunks(src, enc, delimiter, header, chunk_rows):
        if not cols:
            names = _names(src, head, frame.shape[1])
            cols = [_Column(n) for n in names]
        n_rows += len(frame)
        _scan(frame, lines, cols)
    if n_rows == 0:
        raise InputFileError(f"{src}: the file has a header but no data rows")
    t_name = _target_name(src, names, target)
    t_index = names.index(t_name)
    if len(names) == 1:
        raise InputFileError(f"{src}: the only column is the target {t_name!r}; no features")
    kinds: dict[str, str] = {}
    for j, c in enumerate(cols):
        if j == t_index:
            continue
        if c.text == 0:
            kinds[c.name] = "numeric"
            continue
        if c.numbers >= c.text:
            line, value = c.first_text or (0, "")
            raise InputFileError(f"{src}, line {line}, column {c.name!r}: {value!r} is not a "
                                 f"number (the column holds {c.numbers} numbers and {c.text} "
                                 "text cell(s))")
        count = len(c.distinct) if c.distinct is not None else _MAX_CATEGORIES + 1
        if count > _MAX_CATEGORIES or (count > 50 and count > 0.5 * n_rows):
            line, value = c.first_text or (0, "")
            raise InputFileError(
                f"{src}: column {c.name!r} holds {count if c.distinct is not None else 'over ' + str(_MAX_CATEGORIES)} "
                f"distinct text values (e.g. line {line}: {value!r}); as a categorical feature "
                "that is too many: drop the column, or fix the cells that are not numbers")
        kinds[c.name] = "categorical"
    t_text = cols[t_index].text > 0

    # -- pass 2: the write
    fields = [(c.name, f"<U{c.longest}" if (kinds.get(c.name) == "categorical" or
                                            (j == t_index and t_text)) else "<f8")
              for j, c in enumerate(cols)]
    dtype = np.dtype(fields)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        sink = _NpySink(tmp, dtype, n_rows) if kind == ".npy" else _ParquetSink(tmp, dtype)
        at = 0
        for _, lines, frame in _chunks(src, enc, delimiter, header, chunk_rows):
            block = _convert(src, frame, lines, names, kinds, t_index, t_text, dtype,
                             allow_missing)
            sink.write(block, at)
            at += len(block)
        sink.close()
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    out_kinds = {n: kinds.get(n, "target") for n in names}
    return ConvertResult(dst, n_rows, names, out_kinds, dst.stat().st_size)


def _scan(frame: Any, lines: np.ndarray, cols: list[_Column]) -> None:
    from .reader import _MAX_CATEGORIES, _as_numbers, _missing_mask

    for j, c in enumerate(cols):
        col = frame.iloc[:, j]
        missing = _missing_mask(col, False)
        _, bad = _as_numbers(col, False)
        c.text += int(bad.sum())
        c.numbers += int((~missing & ~bad).sum())
        if bad.any() and c.first_text is None:
            i = int(np.flatnonzero(bad)[0])
            c.first_text = (int(lines[i]), str(col.iloc[i]))
        present = col[~missing]
        if len(present):
            c.longest = max(c.longest, int(present.str.len().max()))
        if c.distinct is not None:
            c.distinct.update(present.unique().tolist())
            if len(c.distinct) > _MAX_CATEGORIES:
                c.distinct = None


def _convert(p: Path, frame: Any, lines: np.ndarray, names: list[str], kinds: dict[str, str],
             t_index: int, t_text: bool, dtype: np.dtype, allow_missing: bool) -> np.ndarray:
    from .reader import _as_numbers, _missing_mask

    block = np.zeros(len(frame), dtype=dtype)
    for j, name in enumerate(names):
        col = frame.iloc[:, j]
        missing = _missing_mask(col, False)
        if j == t_index and missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise InputFileError(f"{p}, line {int(lines[i])}, column {name!r}: the target is "
                                 "missing")
        if missing.any() and not allow_missing:
            i = int(np.flatnonzero(missing)[0])
            raise InputFileError(f"{p}, line {int(lines[i])}, column {name!r}: missing value; "
                                 "keep missing cells with --allow-missing (a run then needs "
                                 "--impute mean|median)")
        if kinds.get(name) == "categorical" or (j == t_index and t_text):
            block[name] = np.where(missing, "", col.to_numpy(dtype=str))
            continue
        values, _ = _as_numbers(col, False)
        inf = np.isinf(values)
        if inf.any():
            i = int(np.flatnonzero(inf)[0])
            raise InputFileError(f"{p}, line {int(lines[i])}, column {name!r}: "
                                 f"{float(values[i])!r} is not a finite number")
        block[name] = values
    return block


class _NpySink:
    def __init__(self, path: Path, dtype: np.dtype, rows: int) -> None:
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(rows,))

    def write(self, block: np.ndarray, at: int) -> None:
        self.array[at:at + len(block)] = block

    def close(self) -> None:
        self.array.flush()
        del self.array


class _ParquetSink:
    def __init__(self, path: Path, dtype: np.dtype) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            from ..errors import InvalidValueError

            raise InvalidValueError("writing Parquet needs pyarrow: pip install pyarrow") \
                from None
        self.pa = pa
        self.schema = pa.schema([(n, pa.string() if dtype.fields[n][0].kind == "U"
                                  else pa.float64()) for n in dtype.names])
        self.writer = pq.ParquetWriter(path, self.schema)

    def write(self, block: np.ndarray, at: int) -> None:
        pa = self.pa
        arrays = []
        for n in block.dtype.names:
            v = block[n]
            if v.dtype.kind == "U":
                arrays.append(pa.array(v.tolist(), mask=np.char.str_len(v) == 0,
                                       type=pa.string()))
            else:
                arrays.append(pa.array(v, mask=np.isnan(v), type=pa.float64()))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self.writer.close()


__all__ = ["convert_csv", "ConvertResult", "CHUNK_ROWS"]
