"""NPY and NPZ files read without pickle, every array's size checked against the file (and a
memory limit) from its header before a byte of it is allocated: a header that claims 8 TiB in a
file of a few bytes is an error, not an allocation."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidValueError


class InputFileError(InvalidValueError):
    """A data file that cannot be read under the reader's rules; the message names the file and,
    where there is one, the row and the column."""


def _npy_header(fh: Any, what: str, available: int) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header, checked against the bytes that follow it."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh, max_header_size=10000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh, max_header_size=10000)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise InputFileError(f"{what}: not a valid .npy array ({exc})") from None
    if dtype.hasobject:
        raise InputFileError(f"{what}: an object (pickled) array; chainrule reads arrays with "
                             "allow_pickle=False, so store plain numbers or strings")
    n = 1
    for s in shape:
        n *= int(s)
    need = n * dtype.itemsize
    if need > available:
        raise InputFileError(f"{what}: the header declares shape {shape} of {dtype} "
                             f"({need:,} bytes) but only {available:,} bytes follow it: the "
                             "file is truncated or corrupt")
    return tuple(int(s) for s in shape), dtype


def _check_limit(what: str, shape: tuple[int, ...], dtype: np.dtype,
                 memory_limit: int | None) -> None:
    need = int(np.prod(shape, dtype=np.float64)) * max(dtype.itemsize, 8)
    if memory_limit is not None and need > memory_limit:
        raise InputFileError(f"{what}: shape {shape} needs {need:,} bytes as float64, more than "
                             f"the {memory_limit:,} bytes available")


def load_npz(p: Path, memory_limit: int | None) -> dict[str, np.ndarray]:
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputFileError(f"{p}: not a readable .npz archive ({exc})") from None
    out: dict[str, np.ndarray] = {}
    with zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[:-4]
            what = f"{p}, array {key!r}"
            try:
                with zf.open(info) as fh:
                    shape, dtype = _npy_header(fh, what, info.file_size)
                _check_limit(what, shape, dtype, memory_limit)
                with zf.open(info) as fh:
                    out[key] = np.lib.format.read_array(fh, allow_pickle=False)
            except InputFileError:
                raise
            except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
                    RuntimeError) as exc:
                raise InputFileError(f"{what}: cannot be read ({exc})") from None
            except Exception as exc:  # zlib.error and kin: a corrupt member
                raise InputFileError(f"{what}: cannot be read ({type(exc).__name__}: {exc})") \
                    from None
    return out
