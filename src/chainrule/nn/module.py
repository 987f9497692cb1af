"""``Module`` (the base class of layers and models), ``Parameter``, and the layer registry that
rebuilds models from data.

A module registers what is assigned to it: ``self.weight = Parameter(...)`` records a parameter,
``self.layer = Linear(...)`` a submodule, both in insertion order, so ``named_parameters()`` and
``state_dict()`` have deterministic keys such as ``"0.weight"``.

Model specs
-----------
Every built-in layer can be rebuilt without the code that built it. ``module.spec()`` returns a
JSON-serialisable dict::

    {"type": "Linear", "config": {"in_features": 2, "out_features": 3, "bias": true,
                                  "dtype": "float32"}}
    {"type": "Sequential", "config": {}, "children": [<spec>, <spec>, ...]}
    {"type": "MLP", "config": {"sizes": [2, 3, 1], "activation": "tanh", ...}}

``type`` is a key of :data:`LAYERS`; ``config`` holds the keyword arguments of the constructor
(``module.config()``); ``children`` appears only for containers whose structure is not implied by
their config (``Sequential``) and lists the specs of the positional constructor arguments, in
order. :func:`build` inverts ``spec``: ``build(m.spec())`` is a freshly initialised module of the
same architecture, and ``build(m.spec()).load_state_dict(m.state_dict())`` restores the weights.
Register your own layer with :func:`register_layer` (and give it a ``config()``) to make it
rebuildable too.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

import chainrule as cr
from chainrule.compile import _hooks
from chainrule.errors import DTypeError, InvalidValueError, ShapeError

LAYERS: dict[str, type] = {}
"""Layer classes that :func:`build` can construct, by the name used in specs."""


def register_layer(cls: type | None = None, *, name: str | None = None) -> Any:
    """Class decorator adding a :class:`Module` subclass to :data:`LAYERS` (under ``name``,
    default the class name) so that models containing it can be rebuilt by :func:`build`."""

    def add(c: type) -> type:
        if not (isinstance(c, type) and issubclass(c, Module)):
            raise DTypeError(f"register_layer: {c!r} is not a Module subclass")
        key = name or c.__name__
        if key in LAYERS and LAYERS[key] is not c:
            raise InvalidValueError(f"register_layer: the name {key!r} is already registered "
                                    f"for {LAYERS[key].__module__}.{LAYERS[key].__qualname__}")
        LAYERS[key] = c
        return c

    return add(cls) if cls is not None else add


def build(spec: Mapping[str, Any]) -> Module:
    """Construct a module from a spec (see the module docstring for the format).

    Raises:
        InvalidValueError: the spec is malformed, names an unregistered type, or its config does
            not fit the constructor.
    """
    if not isinstance(spec, Mapping):
        raise InvalidValueError(f"build: a spec must be a dict, got {type(spec).__name__}")
    extra = set(spec) - {"type", "config", "children"}
    if extra or "type" not in spec:
        raise InvalidValueError(f"build: a spec has the keys 'type', 'config' and (for containers) "
                                f"'children'; got {sorted(spec)}")
    name = spec["type"]
    if not isinstance(name, str) or name not in LAYERS:
        raise InvalidValueError(f"build: unknown layer type {name!r}; registered types: "
                                f"{', '.join(sorted(LAYERS))}")
    config = spec.get("config", {})
    if not isinstance(config, Mapping) or not all(isinstance(k, str) for k in config):
        raise InvalidValueError(f"build: the config of a {name} must be a dict with string keys")
    children = spec.get("children", [])
    if not isinstance(children, (list, tuple)):
        raise InvalidValueError(f"build: the children of a {name} must be a list of specs")
    args = [build(c) for c in children]
    try:
        return LAYERS[name](*args, **config)
    except TypeError as exc:
        raise InvalidValueError(f"build: cannot construct {name} from config {dict(config)}: "
                                f"{exc}") from None


class Parameter(cr.Tensor):
    """A tensor that a :class:`Module` registers as learnable when assigned as an attribute.

    Args:
        data: the initial values (a tensor, whose array is shared, an array or a nested list).
            Must be floating.
        requires_grad: default ``True``.
    """

    __slots__ = ()

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0, dtype=cr.get_default_dtype())
        src = data.data if isinstance(data, cr.Tensor) else data
        super().__init__(src)
        if self.data.dtype.kind != "f":
            raise DTypeError(f"a Parameter must be floating, got {self.data.dtype}; "
                             "cast it first (e.g. .astype('float32'))")
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


def flatten_parameters(params: Sequence[Parameter]) -> Any:
    """Make ``params`` views of one new contiguous 1-D array, back to back in the given order,
    their values unchanged (as PyTorch's ``flatten_parameters`` does for RNNs). Returns that
    array, or None, changing nothing, when the parameters differ in backend or dtype.

    An optimizer finds a group laid out so and updates it with a handful of array operations
    instead of a handful per parameter (``chainrule.optim._flat``). Anything that later rebinds
    a parameter's ``data`` only sends the optimizers back to their per-parameter loop."""
    first = params[0].data
    xp = cr.get_xp(first)
    if any(cr.get_xp(p.data) is not xp or p.data.dtype != first.dtype for p in params):
        return None
    flat = xp.empty(sum(int(p.data.size) for p in params), dtype=first.dtype)
    start = 0
    for p in params:
        view = flat[start:start + p.data.size].reshape(p.data.shape)
        view[...] = p.data
        p.data = view
        start += view.size
    return flat


class LoadResult(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (empty lists under ``strict=True``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, assign parameters and submodules as attributes,
    and implement ``forward``; calling the module calls ``forward``. ``training`` is True until
    :meth:`eval` (it changes what :class:`Dropout` does).
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})

    # ------------------------------------------------------------------ registration
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called: call "
                                 "super().__init__() first in the constructor")
        params, buffers, modules = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            self._forget(name)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to parameter {name!r} "
                                "(a Parameter or None is expected)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to submodule {name!r} "
                                "(a Module or None is expected)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, cr.Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} to buffer {name!r} "
                                "(a Tensor or None is expected)")
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        # Registered values are also plain instance attributes, so that reading ``self.weight``
        # in a forward is an ordinary lookup rather than a call of __getattr__ (0.5 us each, two
        # per Linear call). The registries stay the record; every change goes through here,
        # register_*, _forget or __delattr__, which keep the two in step.
        d[name] = value

    def _forget(self, name: str) -> None:
        d = self.__dict__
        d.pop(name, None)
        for key in ("_parameters", "_buffers", "_modules"):
            d[key].pop(name, None)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails (registered values are instance attributes too,
        # see __setattr__; this covers modules whose attributes were set some other way).
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key)
            if store is not None and name in store:
                return store[name]
        known = list(d.get("_parameters", ())) + list(d.get("_buffers", ())) + list(
            d.get("_modules", ())) + [k for k in d if not k.startswith("_")]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}{hint}")

    def __delattr__(self, name: str) -> None:
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if name in d[key]:
                del d[key][name]
                d.pop(name, None)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        d = self.__dict__
        return sorted(set(super().__dir__()) | set(d["_parameters"]) | set(d["_buffers"])
                      | set(d["_modules"]))

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` under ``name`` (``None`` records an absent parameter, e.g. a bias)."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter: {name!r} must be a Parameter or None, "
                            f"got {type(param).__name__}")
        self._forget(name)
        self.__dict__["_parameters"][name] = param
        self.__dict__[name] = param

    def register_buffer(self, name: str, tensor: cr.Tensor | None) -> None:
        """Register a tensor that is part of the state (``state_dict``) but not learnable."""
        if tensor is not None and not isinstance(tensor, cr.Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor or None, "
                            f"got {type(tensor).__name__}")
        self._forget(name)
        self.__dict__["_buffers"][name] = tensor
        self.__dict__[name] = tensor

    # ------------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation of this module; subclasses define it and callers use ``module(x)``.

        Raises:
            NotImplementedError: on the base class.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # cr.compile is tracing: ``training`` is a guard
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.module_called(self)
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------------ traversal
    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """(name, parameter) pairs, this module's first, then each submodule's in order; a
        parameter shared by several modules is listed once (under its first name)."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, mod in mods:
            for name, p in mod._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The learnable parameters, in the order of :meth:`named_parameters`."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, cr.Tensor]]:
        """(name, buffer) pairs, like :meth:`named_parameters`."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mod_name, mod in mods:
            for name, b in mod._buffers.items():
                if b is None or id(b) in seen:
                    continue
                seen.add(id(b))
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self, recurse: bool = True) -> Iterator[cr.Tensor]:
        """The buffers (state that is saved but not learned, e.g. ``Standardize.mean``), in the
        order of :meth:`named_buffers`.
        """
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for the direct submodules, in registration order."""
        seen: set[int] = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator[Module]:
        """The direct submodules, in registration order."""
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(qualified name, module) for this module (name ``prefix``) and all submodules,
        depth first, each module once."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:  # iterative, so deep nestings do not hit the recursion limit
            name, mod = stack.pop()
            if id(mod) in seen:
                continue
            seen.add(id(mod))
            yield name, mod
            subs = [(f"{name}.{n}" if name else n, m) for n, m in mod._modules.items()
                    if m is not None]
            stack.extend(reversed(subs))

    def modules(self) -> Iterator[Module]:
        """This module and every submodule, depth first, each once (see :meth:`named_modules`)."""
        for _, m in self.named_modules():
            yield m

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and on this module; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and gradients
    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every submodule; returns self."""
        if not isinstance(mode, bool):
            raise InvalidValueError(f"train(mode): mode must be a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (``train(False)``): dropout becomes the identity. Returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None, or to zeros in place)."""
        # cr.compile is tracing: record the reset
        if _hooks.TRACER is not None and (_tr := _hooks.active()) is not None:
            _tr.zero_grad(list(self.parameters()), set_to_none, "module")
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad[...] = 0

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradient recording on or off for every parameter (freezing); returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, device: str | None = None, dtype: Any = None) -> Module:
        """Move and/or cast every parameter and buffer in place (parameters keep their identity,
        so an optimizer built earlier still holds them); gradients follow. Returns self."""
        if dtype is not None and cr.zeros(0, dtype=dtype).dtype.kind != "f":
            raise DTypeError(f"Module.to: parameters must be floating, got dtype {dtype}")
        with cr.no_grad():
            for t in list(self.parameters()) + list(self.buffers()):
                t.data = t.detach().to(device=device, dtype=dtype if t.dtype.kind == "f" else None).data
                if t.grad is not None:
                    t.grad = cr.Tensor(t.grad).to(device=device, dtype=t.dtype).data
        return self

    def float(self) -> Module:
        """Cast to float32."""
        return self.to(dtype=cr.float32)

    def double(self) -> Module:
        """Cast to float64."""
        return self.to(dtype=cr.float64)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, cr.Tensor]:
        """Every parameter and buffer by qualified name (``"0.weight"``), as detached tensors
        sharing memory with the module's, parameters before buffers within each module."""
        out: dict[str, cr.Tensor] = {}
        stack: list[tuple[str, Module]] = [("", self)]
        while stack:  # no de-duplication: a shared (tied) parameter appears under every name
            mod_name, mod = stack.pop()
            for store in (mod._parameters, mod._buffers):
                for name, t in store.items():
                    if t is not None:
                        out[f"{mod_name}.{name}" if mod_name else name] = t.detach()
            stack.extend(reversed([(f"{mod_name}.{n}" if mod_name else n, m)
                                   for n, m in mod._modules.items() if m is not None]))
        return out

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy values into the parameters and buffers in place.

        Args:
            state_dict: name -> tensor or array (as returned by :meth:`state_dict`). Values are
                cast to each parameter's dtype.
            strict: require the keys to match exactly (missing or unexpected keys are an error).

        Returns:
            ``LoadResult(missing_keys, unexpected_keys)``.

        Raises:
            InvalidValueError: with ``strict``, naming every missing and unexpected key.
            ShapeError: naming every key whose shape differs (checked with or without
                ``strict``). Nothing is modified when an error is raised.
        """
        if not isinstance(state_dict, Mapping):
            raise InvalidValueError(
                f"load_state_dict: expected a dict of name -> tensor, got {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append(f"missing key(s): {', '.join(map(repr, missing))}")
        if strict and unexpected:
            problems.append(f"unexpected key(s): {', '.join(map(repr, unexpected))}")
        where = f"load_state_dict for {type(self).__name__}"
        mismatched, sources = [], {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            try:
                src = cr.tensor(value, dtype=target.dtype, device=target.device)
            except (TypeError, ValueError) as exc:
                raise DTypeError(f"{where}: the value for {key!r} cannot be converted to a "
                                 f"{target.dtype} tensor: {exc}") from None
            if src.shape != target.shape:
                mismatched.append(f"{key!r}: checkpoint has shape {tuple(src.shape)}, the model "
                                  f"{tuple(target.shape)}")
            sources[key] = src
        if mismatched:
            raise ShapeError(f"{where}: size mismatch for " + "; ".join(mismatched)
                             + ("; also " + "; ".join(problems) if problems else ""))
        if problems:
            raise InvalidValueError(f"{where}: " + "; ".join(problems))
        with cr.no_grad():
            for key, src in sources.items():
                own[key].copy_(src)  # own[key] shares its array with the parameter
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------------ rebuilding
    def config(self) -> dict[str, Any]:
        """The JSON-serialisable keyword arguments that rebuild this layer (built-in layers
        override this; see the module docstring)."""
        raise NotImplementedError(
            f"{type(self).__name__} has no config(): give it one and register it with "
            "chainrule.nn.register_layer to make it rebuildable")

    def spec(self) -> dict[str, Any]:
        """``{"type": ..., "config": ...}`` (plus ``"children"`` for containers); see
        :func:`build`."""
        name = type(self).__name__
        if LAYERS.get(name) is not type(self):
            raise InvalidValueError(
                f"{name} is not a registered layer, so a spec could not be rebuilt; decorate it "
                "with chainrule.nn.register_layer and give it a config()")
        return {"type": name, "config": self.config()}

    # ------------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        """The text inside the parentheses of this module's repr (its constructor arguments)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = []
        for name, mod in self._modules.items():
            body = repr(mod).replace("\n", "\n  ")
            child_lines.append(f"({name}): {body}")
        lines = extra_lines + child_lines
        text = type(self).__name__ + "("
        if len(extra_lines) == 1 and not child_lines:
            text += extra_lines[0]
        elif lines:
            text += "\n  " + "\n  ".join(lines) + "\n"
        return text + ")"
