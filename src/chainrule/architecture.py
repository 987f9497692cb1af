"""The architecture schema: what a model file's ``architecture`` (a ``module.spec()`` read back as
JSON) must look like before :func:`chainrule.io.load` builds anything from it.

:func:`check_architecture` bounds the nesting depth and the number of layers, requires each
``type`` to be a registered layer, and checks each built-in layer's config against its rule (the
right keys, types and ranges: widths, probabilities, activation names or activation specs,
dtypes), the layers of a ``Sequential`` chained width to width, and the number of values the
layers need (parameters and buffers) equal to the number the file holds (for a layer registered
by the user, whose needs are unknown, the integers of its config are bounded instead). Every
violation is a :class:`~chainrule.errors.FileFormatError` that names its place in the spec.
"""

from __future__ import annotations

import itertools
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from .errors import FileFormatError, InvalidValueError

MAX_SPEC_DEPTH = 32
"""The deepest nesting of containers in an architecture."""
MAX_SPEC_LAYERS = 100_000
"""The most layers one architecture may describe."""
MAX_WIDTH = 2**31
"""The largest layer width (or feature count) in an architecture."""


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


__all__ = ["MAX_SPEC_DEPTH", "MAX_SPEC_LAYERS", "MAX_WIDTH", "check_architecture"]
