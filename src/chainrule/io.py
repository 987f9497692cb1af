"""Model files: ``save`` and ``load`` in the safetensors format, never pickle.

A chainrule model file is an ordinary safetensors file: the tensors under PyTorch-style names
(``0.weight``, ``0.bias``, ...) and, in the header's ``__metadata__`` (string to string):

``format``             ``"chainrule"``
``format_version``     ``"1"``
``chainrule_version``  the library version that wrote it
``architecture``       JSON of ``module.spec()`` (absent for a bare state dict or a custom module)
``user.<key>``         any extra metadata passed to ``save``

Writing is atomic: the bytes go to a temporary file in the same folder, are flushed and fsynced,
and the file is renamed over the target, so a crash mid-save leaves the previous file intact.
Reading validates everything (structure through the safetensors library, then the metadata, the
architecture, and every tensor's name, dtype and shape) and turns any defect into a
:class:`~chainrule.errors.FileFormatError`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .backend import to_numpy
from .errors import FileFormatError, InvalidValueError
from .tensor import Tensor

FORMAT = "chainrule"
FORMAT_VERSION = "1"
_FLOAT_KINDS = {"f", "i", "u", "b"}


def _safetensors() -> Any:
    try:
        import safetensors.numpy as sn  # noqa: PLC0415 - optional dependency
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidValueError(
            "model files need the safetensors package: pip install 'chainrule[io]'"
        ) from exc
    return sn


def save(model_or_state: Any, path: str | os.PathLike[str],
         metadata: Mapping[str, str] | None = None) -> Path:
    """Write a module (its parameters and architecture) or a state dict to ``path`` atomically.

    Args:
        model_or_state: a ``chainrule.nn.Module``, or a mapping of names to tensors/arrays.
        path: the file to write (conventionally ``*.safetensors``).
        metadata: extra string-to-string metadata stored in the header as ``user.<key>``.

    Returns:
        The path written.
    """
    from .nn import Module

    header: dict[str, str] = {"format": FORMAT, "format_version": FORMAT_VERSION,
                              "chainrule_version": _version()}
    if isinstance(model_or_state, Module):
        state = model_or_state.state_dict()
        spec = _spec_or_none(model_or_state)
        if spec is not None:
            header["architecture"] = json.dumps(spec, sort_keys=True)
    elif isinstance(model_or_state, Mapping):
        state = model_or_state
    else:
        raise InvalidValueError(
            f"save() takes a chainrule Module or a dict of tensors, got "
            f"{type(model_or_state).__name__}"
        )
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidValueError("save(): metadata keys and values must be strings")
        header["user." + key] = value

    tensors: dict[str, np.ndarray] = {}
    for name, value in state.items():
        if not isinstance(name, str):
            raise InvalidValueError(f"save(): tensor names must be strings, got {name!r}")
        arr = to_numpy(value.data if isinstance(value, Tensor) else value)
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in _FLOAT_KINDS:
            raise InvalidValueError(f"save(): {name!r} is not a numeric array")
        tensors[name] = np.ascontiguousarray(arr)
    blob = _safetensors().save(tensors, metadata=header)
    return atomic_write(path, blob)


def atomic_write(path: str | os.PathLike[str], blob: bytes) -> Path:
    """Write ``blob`` to ``path`` through a fsynced temporary file and an atomic rename."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidValueError(f"cannot save to {target}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return target
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def read(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and the metadata of a safetensors file, validated; never unpickles."""
    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such file")
    blob = p.read_bytes()
    sn = _safetensors()
    try:
        tensors = sn.load(blob)
        header_len = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8:8 + header_len])
    except Exception as exc:  # any parse failure means the file is not a valid safetensors file
        raise FileFormatError(f"{p}: not a valid safetensors file ({exc})") from None
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise FileFormatError(f"{p}: the header's __metadata__ is not a string map")
    for name, arr in tensors.items():
        if arr.dtype.kind not in _FLOAT_KINDS:
            raise FileFormatError(f"{p}: tensor {name!r} has unsupported dtype {arr.dtype}")
    return tensors, meta


def load_state(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The state dict stored in a model file (for ``module.load_state_dict``)."""
    return read(path)[0]


def load(path: str | os.PathLike[str]) -> Any:
    """Rebuild a model saved by :func:`save` from ``MLP``/``Sequential`` of built-in layers.

    Raises:
        FileFormatError: the file is missing, truncated, corrupt, forged, not a chainrule model
            file, has no architecture (load it with ``load_state`` + ``load_state_dict``), or its
            tensors do not fit the architecture.
    """
    from . import nn

    p = Path(path)
    tensors, meta = read(p)
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{p}: not a chainrule model file (no format=chainrule metadata)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise FileFormatError(
            f"{p}: format version {meta.get('format_version')!r} is not supported "
            f"(this chainrule reads version {FORMAT_VERSION})"
        )
    if "architecture" not in meta:
        raise FileFormatError(
            f"{p}: holds a state dict without an architecture; build the model in code and use "
            "model.load_state_dict(chainrule.load_state(path))"
        )
    try:
        spec = json.loads(meta["architecture"])
    except ValueError as exc:
        raise FileFormatError(f"{p}: the architecture is not valid JSON ({exc})") from None
    budget = sum(a.size for a in tensors.values())
    try:
        _check_spec_size(spec, budget)
        model = nn.build(spec)
    except FileFormatError:
        raise
    except Exception as exc:  # a forged spec: unknown layer, bad arguments, wrong types
        raise FileFormatError(f"{p}: the architecture cannot be built: {exc}") from None
    try:
        model.load_state_dict(tensors, strict=True)
    except Exception as exc:
        raise FileFormatError(f"{p}: the tensors do not fit the architecture: {exc}") from None
    return model


def _check_spec_size(spec: Any, budget: int) -> None:
    """Refuse a spec that would allocate more parameters than the file holds (a forged header
    must not make ``load`` allocate gigabytes before the shape check)."""
    needed = _implied_parameters(spec)
    if needed > budget:
        raise FileFormatError(
            f"the architecture needs {needed} parameter values but the file holds {budget}"
        )


def _implied_parameters(spec: Any) -> int:
    if not isinstance(spec, dict):
        raise FileFormatError("the architecture must be a JSON object")
    cfg = spec.get("config") or {}
    if not isinstance(cfg, dict):
        raise FileFormatError("an architecture entry's config must be a JSON object")
    kind = spec.get("type")
    total = 0
    if kind == "Linear":
        n_in, n_out = _size(cfg.get("in_features")), _size(cfg.get("out_features"))
        total = n_in * n_out + (n_out if cfg.get("bias", True) else 0)
    elif kind == "MLP":
        sizes = cfg.get("sizes")
        if not isinstance(sizes, list) or len(sizes) < 2:
            raise FileFormatError("MLP sizes must be a list of at least two layer sizes")
        sizes = [_size(s) for s in sizes]
        bias = bool(cfg.get("bias", True))
        total = sum(a * b + (b if bias else 0) for a, b in zip(sizes, sizes[1:]))
    for child in spec.get("children") or []:
        total += _implied_parameters(child)
    return total


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v > 2**31:
        raise FileFormatError(f"layer size {v!r} is not a positive integer")
    return v


def _spec_or_none(model: Any) -> Any:
    spec_fn = getattr(type(model), "spec", None)
    if spec_fn is None:
        return None
    try:
        return model.spec()
    except NotImplementedError:
        return None


def _version() -> str:
    from . import __version__

    return __version__


__all__ = ["save", "load", "load_state", "read", "atomic_write"]
