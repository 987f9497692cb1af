"""Model files: ``save`` and ``load`` in the safetensors format, never pickle.

A chainrule model file is an ordinary safetensors file: the tensors under PyTorch-style names
(``0.weight``, ``0.bias``, ...; buffers such as a ``Standardize`` layer's ``mean`` too) and, in
the header's ``__metadata__`` (string to string):

``format``             ``"chainrule"``
``format_version``     ``"1"``
``chainrule_version``  the library version that wrote it
``architecture``       JSON of ``module.spec()`` (absent for a bare state dict or a custom module)
``user.<key>``         any extra metadata passed to ``save``

Writing is deterministic (the same model gives the same bytes in any process, see
:mod:`chainrule.state_file`) and atomic: the bytes go to a temporary file in the same folder, are
flushed and fsynced, and the file is renamed over the target, so a crash mid-save leaves the
previous file intact. The file gets the permissions that ``open()`` would give it.

Reading trusts nothing in the file. :func:`read` checks the container (:func:`state_file.decode
<chainrule.state_file.decode>`: the header's structure, every tensor's dtype, shape and byte range,
every value finite). :func:`load` then checks the architecture against an explicit schema
(:func:`chainrule.architecture.check_architecture`) before anything is built. Only then is the
model built, each tensor's name, shape and dtype compared with the model's, the values loaded
and checked (a ``Standardize`` scale must be positive). Every defect is a
:class:`~chainrule.errors.FileFormatError` that names the file and the problem.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import state_file
from .architecture import (  # noqa: F401 - the limits stay importable from here
    MAX_SPEC_DEPTH, MAX_SPEC_LAYERS, MAX_WIDTH, check_architecture,
)
from .backend import to_numpy
from .errors import FileFormatError, InvalidValueError
from .tensor import Tensor

FORMAT = "chainrule"
FORMAT_VERSION = "1"


def save(model_or_state: Any, path: str | os.PathLike[str],
         metadata: Mapping[str, str] | None = None) -> Path:
    """Write a module (its parameters, buffers and architecture) or a state dict to ``path``
    atomically; the same model and metadata always give the same bytes.

    Args:
        model_or_state: a ``chainrule.nn.Module``, or a mapping of names to tensors/arrays.
        path: the file to write (conventionally ``*.safetensors``).
        metadata: extra string-to-string metadata stored in the header as ``user.<key>``.

    Returns:
        The path written.

    Raises:
        InvalidValueError: not a module or a mapping, a name or value that cannot be stored,
            a non-finite value (the file could not be loaded again), or a missing folder.
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
        if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiub":
            raise InvalidValueError(f"save(): {name!r} is not a numeric array")
        tensors[name] = arr  # (state_file.encode refuses non-finite values)
    return atomic_write(path, state_file.encode(tensors, header))


def atomic_write(path: str | os.PathLike[str], blob: bytes) -> Path:
    """Write ``blob`` to ``path`` through a fsynced temporary file and an atomic rename.

    The file ends up with the permissions ``open(path, "wb")`` would leave: those of the file it
    replaces, or ``0o666`` less the umask for a new one (the temporary file is created with
    that mode, so the operating system applies the umask, as it does for ``open``)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidValueError(f"cannot save to {target}: folder {folder} does not exist")
    try:
        keep = stat.S_IMODE(os.stat(target).st_mode) if target.is_file() else None
    except OSError:
        keep = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(
        os, "O_CLOEXEC", 0)
    while True:
        tmp = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - a 48-bit name collision
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            if keep is not None:
                os.chmod(fh.fileno() if os.chmod in os.supports_fd else tmp, keep)
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
    """The tensors and the metadata of a safetensors file, validated (see
    :func:`chainrule.state_file.decode`); never unpickles."""
    return state_file.read(Path(path))


def load_state(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The state dict stored in a model file (for ``module.load_state_dict``)."""
    return read(path)[0]


def load(path: str | os.PathLike[str]) -> Any:
    """Rebuild a model saved by :func:`save` from its registered layers (``MLP``,
    ``Sequential``, ``Linear``, the activations, ``Dropout``, the preprocessing layers, and any
    layer registered with ``chainrule.nn.register_layer``).

    Raises:
        FileFormatError: the file is missing, truncated, corrupt, forged, not a chainrule model
            file, has no architecture (load it with ``load_state`` + ``load_state_dict``), its
            architecture breaks the schema (see :mod:`chainrule.architecture`), or its tensors
            do not fit the architecture.
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
        spec = state_file.loads_json(meta["architecture"], "the architecture",
                                     max_depth=2 * MAX_SPEC_DEPTH + 8)
        check_architecture(spec, sum(a.size for a in tensors.values()))
    except FileFormatError as exc:
        raise FileFormatError(f"{p}: {exc}") from None
    try:
        model = nn.build(spec)
    except Exception as exc:  # noqa: BLE001 - a user layer's constructor may raise anything
        raise FileFormatError(f"{p}: the architecture cannot be built: {exc}") from None
    _check_tensors(model, tensors, p)
    try:
        model.load_state_dict(tensors, strict=True)
        _check_values(model)
    except Exception as exc:  # noqa: BLE001 - anything here is a defect of the file
        raise FileFormatError(f"{p}: the tensors do not fit the architecture: {exc}") from None
    return model


def _check_tensors(model: Any, tensors: Mapping[str, np.ndarray], p: Path) -> None:
    """Each tensor of the file is one of the model's, of its shape and dtype, and none is
    missing."""
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    wrong = [f"{k!r} is {tensors[k].dtype}{list(tensors[k].shape)}, the architecture needs "
             f"{own[k].dtype}{list(own[k].shape)}" for k in own if k in tensors and (
                 tuple(tensors[k].shape) != tuple(own[k].shape) or tensors[k].dtype != own[k].dtype)]
    problems = ([f"missing tensor(s) {missing[:5]}"] if missing else []) + (
        [f"unexpected tensor(s) {unexpected[:5]}"] if unexpected else []) + wrong[:5]
    if problems:
        raise FileFormatError(f"{p}: the tensors do not fit the architecture: "
                              + "; ".join(problems))


def _check_values(model: Any) -> None:
    """What a layer's setter would refuse but ``load_state_dict`` copies: a ``Standardize``
    scale must be positive."""
    from .nn import Standardize

    for name, m in model.named_modules():
        if isinstance(m, Standardize) and not (to_numpy(m.scale.data) > 0).all():
            raise FileFormatError(f"{name + '.' if name else ''}scale must be positive")


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


__all__ = ["atomic_write", "check_architecture", "load", "load_state", "read", "save"]
