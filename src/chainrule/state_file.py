"""Files of named arrays and string metadata (safetensors), written the same byte for byte and read
trusting nothing. What goes into such a file is its callers' business: model files
(:mod:`chainrule.io`) and training checkpoints (:mod:`chainrule.checkpoint_file`).

:func:`encode` lays the arrays out with the safetensors library and then writes the header itself:
the metadata sorted by key (the library keeps it in a hash map, whose order changes from process
to process), compact JSON, padded with spaces to a multiple of 8 bytes. The same arrays and
metadata therefore always give the same bytes.

:func:`decode` parses the format itself, so that every defect is a
:class:`~chainrule.errors.FileFormatError` that says what is wrong (never an IndexError,
OverflowError, RecursionError or a panic of the Rust parser): the 8-byte length must fit the
file; the header must be a JSON object of at most 100 MiB without duplicate keys, NaN or overly
deep nesting; ``__metadata__`` maps strings to strings; each tensor has exactly ``dtype``
(numeric: ``BOOL``, ``U8`` ... ``I64``, ``F16``, ``F32``, ``F64``), ``shape`` and
``data_offsets`` whose byte count is the shape's; the tensors tile the data exactly (no gaps,
overlaps or trailing bytes); and every floating value is finite. :func:`loads_json` is the
strict JSON reader it uses, for the JSON that callers keep in the metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FileFormatError, InvalidValueError

MAX_HEADER_BYTES = 100 * 2**20
"""The largest header read (the safetensors library's own limit)."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of JSON arrays and objects read from a file."""

_DTYPES = {"BOOL": "|b1", "U8": "|u1", "I8": "|i1", "U16": "<u2", "I16": "<i2", "F16": "<f2",
           "U32": "<u4", "I32": "<i4", "F32": "<f4", "U64": "<u8", "I64": "<i8", "F64": "<f8"}
_MAX_NDIM = 32
_MAX_DIM = 2**48
_NUMERIC_KINDS = {"f", "i", "u", "b"}


def encode(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors bytes of ``tensors`` (numeric NumPy arrays) and ``metadata``, identical
    for identical inputs in any process.

    Raises:
        InvalidValueError: a name that is not a non-empty string or is ``__metadata__``, a
            non-numeric array, a non-finite value (:func:`decode` would refuse the file), or
            metadata that is not string to string.
    """
    try:
        import safetensors.numpy as sn
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidValueError(
            "model files need the safetensors package: pip install 'chainrule[io]'") from exc
    arrays = {}
    for name, arr in tensors.items():
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise InvalidValueError(f"a tensor name must be a non-empty string other than "
                                    f"'__metadata__', got {name!r}")
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in _NUMERIC_KINDS:
            raise InvalidValueError(f"{name!r} is not a numeric array")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InvalidValueError(f"{name!r} holds non-finite values (NaN or infinity): a "
                                    "file holding them could not be read back")
        arrays[name] = np.ascontiguousarray(arr)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise InvalidValueError("metadata keys and values must be strings")
    # The library lays out the data (its tensor order is sorted, so fixed); the metadata goes
    # into a header written here, sorted, because the library's order varies between processes.
    blob = sn.save(arrays)
    n = int.from_bytes(blob[:8], "little")
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    header.update(json.loads(blob[8:8 + n]))
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + blob[8 + n:]


def decode(blob: bytes, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays (copies, in header order) and the metadata of safetensors bytes, all checked
    as the module docstring says. ``where`` (the file's name) starts every error message."""
    def bad(what: str) -> FileFormatError:
        return FileFormatError(f"{where}: {what}")

    if len(blob) < 8:
        raise bad(f"not a safetensors file: {len(blob)} bytes, shorter than the 8-byte length of "
                  "its header (truncated?)")
    n = int.from_bytes(blob[:8], "little")
    if n > len(blob) - 8:
        raise bad(f"not a safetensors file: its header would be {n} bytes long but only "
                  f"{len(blob) - 8} follow (truncated?)")
    if n > MAX_HEADER_BYTES:
        raise bad(f"the header is {n} bytes long, more than the {MAX_HEADER_BYTES} accepted")
    raw = blob[8:8 + n]
    if not raw.startswith(b"{"):
        raise bad("not a safetensors file: the header is not a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"the header is not UTF-8 ({exc})") from None
    header = loads_json(text, f"{where}: the header")
    if not isinstance(header, dict):
        raise bad("not a safetensors file: the header is not a JSON object")
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad("the header's __metadata__ is not a map of strings to strings")
    data = memoryview(blob)[8 + n:]
    spans, tensors = [], {}
    for name, info in header.items():
        dtype, shape, begin, end = _entry(name, info, len(data), bad)
        spans.append((begin, end, name))
        count = math.prod(shape)
        if count == 0:
            arr = np.zeros(shape, dtype)
        else:
            arr = np.frombuffer(data, dtype, count, begin).reshape(shape).astype(
                dtype.newbyteorder("="))
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise bad(f"tensor {name!r} holds non-finite values (NaN or infinity)")
        if arr.dtype.kind == "b" and (arr.view(np.uint8) > 1).any():
            raise bad(f"tensor {name!r} holds booleans other than 0 and 1")
        tensors[name] = arr
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise bad(f"tensor {name!r} starts at byte {begin} of the data, not at {position}: "
                      "the tensors overlap or leave a gap")
        position = end
    if position != len(data):
        raise bad(f"{len(data) - position} bytes follow the last tensor's data")
    return tensors, meta


def _entry(name: str, info: Any, size: int, bad: Any) -> tuple[np.dtype, list[int], int, int]:
    """A header entry's dtype, shape and byte range, checked."""
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise bad(f"tensor {name!r}: a header entry has exactly the keys dtype, shape and "
                  "data_offsets")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(code, str) or code not in _DTYPES:
        raise bad(f"tensor {name!r} has the unsupported dtype {code!r} (supported: "
                  f"{', '.join(_DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(_is_int(d) and 0 <= d <= _MAX_DIM for d in shape)):
        raise bad(f"tensor {name!r}: the shape {shape!r} is not a list of at most {_MAX_NDIM} "
                  "sizes")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_is_int, offsets))
            or not 0 <= offsets[0] <= offsets[1] <= size):
        raise bad(f"tensor {name!r}: the data_offsets {offsets!r} are not a byte range within "
                  f"the {size} bytes of data")
    dtype = np.dtype(_DTYPES[code])
    if math.prod(shape) * dtype.itemsize != offsets[1] - offsets[0]:
        raise bad(f"tensor {name!r}: shape {shape} of {code} needs "
                  f"{math.prod(shape) * dtype.itemsize} bytes, its data_offsets give "
                  f"{offsets[1] - offsets[0]}")
    return dtype, shape, offsets[0], offsets[1]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """:func:`decode` of the file at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such file")
    return decode(p.read_bytes(), str(p))


def loads_json(text: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for text from a file: NaN and infinities, numbers that overflow, duplicate
    keys and nesting deeper than ``max_depth`` are a :class:`FileFormatError` beginning with
    ``what``, and so is anything else that is not JSON."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                           object_pairs_hook=_unique_keys)
    except RecursionError:
        raise FileFormatError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and the hooks' errors
        raise FileFormatError(f"{what} is not valid JSON ({exc})") from None
    stack = [(value, 1)]
    while stack:  # iterative: the depth is what is being checked
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > max_depth:
                raise FileFormatError(f"{what} is nested more than {max_depth} levels deep")
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError(f"the number {s[:20]} overflows")
    return v


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("an object has a key twice")
    return out


__all__ = ["MAX_HEADER_BYTES", "MAX_JSON_DEPTH", "decode", "encode", "loads_json", "read"]
