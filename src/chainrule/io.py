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
every value finite). :func:`load` then checks the architecture against an explicit schema before
anything is built: nesting depth and size bounded, each ``type`` a registered layer, each
built-in layer's config of the right types and ranges (widths, probabilities, activation names
or activation specs, dtypes), the layers of a ``Sequential`` chained width to width, and the
number of values the layers need (parameters and buffers) equal to the number the file holds
(for a layer registered by the user, whose needs are unknown, the integers of its config are
bounded instead). Only then is the model built, each tensor's name, shape and dtype compared
with the model's, the values loaded and checked (a ``Standardize`` scale must be positive).
Every defect is a
:class:`~chainrule.errors.FileFormatError` that names the file and the problem.
"""

from __future__ import annotations

import itertools
import json
import os
import reprlib
import secrets
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import state_file
from .backend import to_numpy
from .errors import FileFormatError, InvalidValueError
from .tensor import Tensor

FORMAT = "chainrule"
FORMAT_VERSION = "1"
MAX_SPEC_DEPTH = 32
"""The deepest nesting of containers in an architecture."""
MAX_SPEC_LAYERS = 100_000
"""The most layers one architecture may describe."""
MAX_WIDTH = 2**31
"""The largest layer width (or feature count) in an architecture."""


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
            architecture breaks the schema (see the module docstring), or its tensors do not
            fit the architecture.
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


# ====================================================================== the architecture schema
def check_architecture(spec: Any, available: int) -> None:
    """Check an architecture (a ``spec()`` read from a file) before it is built.

    Each layer of a known type is checked against its rule below (config keys, types, ranges,
    defaults as in its constructor) and says how many values its parameters and buffers hold and
    how many features it takes and gives; a ``Sequential``'s children must chain (a ``OneHot``
    that gives 11 features cannot feed a ``Standardize`` of 5), since a layer without tensors
    (``OneHot``) is not pinned down by the tensors' shapes.

    Args:
        spec: the parsed JSON.
        available: how many values the file's tensors hold; an architecture of built-in layers
            must need exactly that many, one with user layers at most that many (and the
            integers in a user layer's config may not exceed it, nor 2**16 if that is larger).

    Raises:
        FileFormatError: the first violation, with its place in the spec
            (``architecture(Sequential).children[1](OneHot).config.columns``).
    """
    walk = _Walk(available)
    walk.layer(spec, "architecture", 1)
    if walk.needed > available or (walk.exact and walk.needed != available):
        raise FileFormatError(f"the architecture needs {walk.needed} values but the file holds "
                              f"{available}")


_REQUIRED = object()
_SAME = "same"  # a layer's output width when it is its input's (activations, dropout)


class _Config:
    """Typed access to one layer's config, each read key ticked off; :meth:`done` refuses the
    rest (so the schema, not the constructor, is the first to see a key)."""

    def __init__(self, cfg: Mapping[str, Any], where: str) -> None:
        self.cfg, self.where, self.read = cfg, where, set()

    def fail(self, key: str, what: str) -> FileFormatError:
        return FileFormatError(f"{self.where}.config.{key} {what}, got "
                               f"{reprlib.repr(self.cfg.get(key))}")

    def get(self, key: str, default: Any = _REQUIRED) -> Any:
        self.read.add(key)
        if key not in self.cfg:
            if default is _REQUIRED:
                raise FileFormatError(f"{self.where}.config lacks {key!r}")
            return default
        return self.cfg[key]

    def int(self, key: str, low: int, high: int = MAX_WIDTH, default: Any = _REQUIRED) -> int:
        v = self.get(key, default)
        if not _is_int(v) or not low <= v <= high:
            raise self.fail(key, f"must be an integer in [{low}, {high}]")
        return v

    def number(self, key: str, default: float, nonzero: bool = False) -> float:
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) < 1e300 or (
                nonzero and v == 0):
            raise self.fail(key, "must be a finite number" + (" other than 0" if nonzero else ""))
        return v

    def flag(self, key: str, default: bool) -> bool:
        v = self.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(key, "must be true or false")
        return v

    def choice(self, key: str, options: tuple[Any, ...], default: Any) -> Any:
        v = self.get(key, default)
        if not any(v is o or (type(v) is type(o) and v == o) for o in options):
            raise self.fail(key, f"must be one of {list(options)}")
        return v

    def dtype(self, default: Any = None) -> None:
        self.choice("dtype", (None, "float16", "float32", "float64"), default)

    def probability(self, key: str, default: float) -> float:
        v = self.number(key, default)
        if not 0 <= v <= 1:
            raise self.fail(key, "must be a probability in [0, 1]")
        return v

    def ints(self, key: str, low: int, high: int, min_len: int, max_len: int) -> list[int]:
        v = self.get(key)
        if not isinstance(v, list) or not min_len <= len(v) <= max_len or not all(
                _is_int(n) and low <= n <= high for n in v):
            raise self.fail(key, f"must be a list of {min_len} to {max_len} integers in "
                                 f"[{low}, {high}]")
        return v

    def done(self) -> None:
        extra = sorted(set(self.cfg) - self.read)
        if extra:
            raise FileFormatError(f"{self.where}.config has unknown key(s) {extra[:5]}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_Widths = tuple[Any, Any]  # (features in or None for any, features out, None or _SAME)


class _Walk:
    """One pass over a spec: validates each layer, counts the values the layers need."""

    def __init__(self, available: int) -> None:
        self.available = available
        self.needed = 0
        self.layers = 0
        self.exact = True  # False once a user layer's needs are unknown

    def layer(self, spec: Any, where: str, depth: int) -> _Widths:
        """Check one layer and its children; its (input, output) widths."""
        from . import nn

        if not isinstance(spec, dict):
            raise FileFormatError(f"{where} must be a JSON object, got {type(spec).__name__}")
        if "type" not in spec or not set(spec) <= {"type", "config", "children"}:
            raise FileFormatError(f"{where} must have the keys type, config and (containers) "
                                  f"children; got {sorted(spec)[:5]}")
        name = spec["type"]
        if not isinstance(name, str) or name not in nn.LAYERS:
            raise FileFormatError(f"{where}.type {str(name)[:80]!r} is not a registered layer")
        self.layers += 1
        if self.layers > MAX_SPEC_LAYERS:
            raise FileFormatError(f"the architecture has more than {MAX_SPEC_LAYERS} layers")
        if depth > MAX_SPEC_DEPTH:
            raise FileFormatError(f"{where} is nested more than {MAX_SPEC_DEPTH} deep")
        where = f"{where}({name})"
        config = spec.get("config", {})
        if not isinstance(config, dict):
            raise FileFormatError(f"{where}.config must be a JSON object")
        children = spec.get("children", [])
        if not isinstance(children, list):
            raise FileFormatError(f"{where}.children must be a list")
        cls = nn.LAYERS[name]
        rule = _RULES.get(cls)
        if rule is None:  # a layer registered by the user: bounded, then its constructor decides
            self.exact = False
            _bounded(config, f"{where}.config", max(self.available, 2**16))
            for i, child in enumerate(children):
                self.layer(child, f"{where}.children[{i}]", depth + 1)
            return None, None
        if children and (cls is nn.MLP or not issubclass(cls, nn.Sequential)):
            raise FileFormatError(f"{where} takes no children")
        c = _Config(config, where)
        values, n_in, n_out = rule(c, self)
        c.done()
        self.needed += values
        if self.needed > self.available:
            raise FileFormatError(f"the architecture needs more than the {self.available} "
                                  f"values the file holds (at {where})")
        if cls is nn.Sequential:
            n_in, n_out = self.chain(children, where, depth)
        return n_in, n_out

    def chain(self, children: list[Any], where: str, depth: int) -> _Widths:
        """Check a Sequential's children and that each takes the width the previous gives."""
        n_in, width = None, _SAME
        for i, child in enumerate(children):
            takes, gives = self.layer(child, f"{where}.children[{i}]", depth + 1)
            if takes is not None:
                if width is _SAME:
                    n_in = width = takes
                elif width is not None and width != takes:
                    raise FileFormatError(f"{where}.children[{i}] takes {takes} features but "
                                          f"the layers before it give {width}")
            if gives is not _SAME:
                width = gives
        return n_in, width

    def activation(self, c: _Config, key: str, default: Any) -> None:
        """An MLP's activation: a known name, or the spec of an activation layer (a spec of any
        other layer would let a file build it)."""
        from . import nn

        v = c.get(key, default)
        if v is None and key == "output_activation":
            return
        if isinstance(v, str):
            try:
                nn.activation_name(v)
            except InvalidValueError:
                raise c.fail(key, f"must be one of {list(nn.ACTIVATIONS)}") from None
            return
        kinds = set(nn.ACTIVATIONS.values())
        if not isinstance(v, dict) or not isinstance(v.get("type"), str) or nn.LAYERS.get(
                v["type"]) not in kinds or not set(v) <= {"type", "config"}:
            raise c.fail(key, "must be an activation name or an activation layer's spec")
        self.layer(v, f"{c.where}.config.{key}", MAX_SPEC_DEPTH)


def _bounded(value: Any, where: str, bound: int) -> None:
    """Plain JSON whose integers are at most ``bound`` in size (a user layer's config)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif _is_int(v) and abs(v) > bound:
            raise FileFormatError(f"{where}: the integer {v} is larger than the file's "
                                  f"{bound} values allow")


# --------------------------------------------------------------------- per-layer rules
# Each rule reads its layer's config through a _Config (types, ranges and defaults as in the
# constructor) and returns (values in its parameters and buffers, features in, features out).
_Rule = Callable[[_Config, _Walk], tuple[int, Any, Any]]


def _linear(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
    n_in, n_out = c.int("in_features", 0), c.int("out_features", 0)
    bias = c.flag("bias", True)
    c.dtype()
    return n_in * n_out + (n_out if bias else 0), n_in, n_out


def _mlp(c: _Config, walk: _Walk) -> tuple[int, Any, Any]:
    sizes = c.ints("sizes", 1, MAX_WIDTH, 2, walk.available + 1)
    walk.activation(c, "activation", "tanh")
    walk.activation(c, "output_activation", None)
    bias = c.flag("bias", True)
    c.probability("dropout", 0.0)
    c.dtype()
    c.choice("init", ("auto", "pytorch"), "auto")
    if c.get("checkpoint_segments", None) is not None:
        c.int("checkpoint_segments", 1)
    values = sum(a * b + (b if bias else 0) for a, b in itertools.pairwise(sizes))
    return values, sizes[0], sizes[-1]


def _sequential(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
    return 0, None, None  # (the widths come from the children: _Walk.chain)


def _standardize(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
    n = c.int("num_features", 1)
    c.dtype("float32")
    return 2 * n, n, n  # mean and scale


def _impute(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
    n = c.int("num_features", 1)
    c.dtype("float64")
    return n, n, n  # fill


_MAX_CATEGORIES = 100_000  # as nn.OneHot


def _one_hot(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
    n = c.int("num_features", 1)
    columns = c.ints("columns", 0, n - 1, 1, n)
    categories = c.ints("categories", 1, _MAX_CATEGORIES, len(columns), len(columns))
    if columns != sorted(set(columns)):
        raise c.fail("columns", "must be distinct and ascending")
    if sum(categories) > _MAX_CATEGORIES:
        raise c.fail("categories", f"must add up to at most {_MAX_CATEGORIES}")
    c.dtype("float64")
    return 0, n, n - len(columns) + sum(categories)


def _elementwise(**fields: Callable[[_Config], Any]) -> _Rule:
    """The rule of a layer without tensors that keeps its input's shape."""
    def rule(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
        for check in fields.values():
            check(c)
        return 0, None, _SAME
    return rule


def _flatten(c: _Config, _: _Walk) -> tuple[int, Any, Any]:
    c.int("start_dim", -64, 63, 1)
    c.int("end_dim", -64, 63, -1)
    return 0, None, None  # (the width it gives depends on the input's shape)


def _rules() -> dict[type, _Rule]:
    from . import nn

    plain = _elementwise()
    dim = _elementwise(dim=lambda c: c.int("dim", -64, 63, -1))
    return {
        nn.Linear: _linear, nn.MLP: _mlp, nn.Sequential: _sequential, nn.Flatten: _flatten,
        nn.Standardize: _standardize, nn.Impute: _impute, nn.OneHot: _one_hot,
        nn.Dropout: _elementwise(p=lambda c: c.probability("p", 0.5)),
        nn.Identity: plain, nn.Sign: plain, nn.Sigmoid: plain, nn.Tanh: plain, nn.ReLU: plain,
        nn.SiLU: plain, nn.Softmax: dim, nn.LogSoftmax: dim,
        nn.LeakyReLU: _elementwise(slope=lambda c: c.number("negative_slope", 0.01)),
        nn.ELU: _elementwise(alpha=lambda c: c.number("alpha", 1.0)),
        nn.Softplus: _elementwise(beta=lambda c: c.number("beta", 1.0, nonzero=True),
                                  threshold=lambda c: c.number("threshold", 20.0)),
        nn.GELU: _elementwise(approximate=lambda c: c.choice("approximate", ("none", "tanh"),
                                                             "none")),
    }


class _LazyRules(dict):  # type: ignore[type-arg]
    """The rules by layer class (exact class: a subclass may take other arguments), made on
    first use, as ``nn`` imports this package."""

    def get(self, key: Any, default: Any = None) -> Any:
        if not self:
            self.update(_rules())
        return super().get(key, default)


_RULES = _LazyRules()


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
