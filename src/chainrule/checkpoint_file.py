"""Training checkpoints: the state of a ``Trainer`` as a file of the container
:mod:`chainrule.state_file` writes, read back trusting nothing.

A training checkpoint (``Trainer.save_checkpoint``) is a safetensors file with the metadata
``format = "chainrule-checkpoint"``, ``format_version = "1"`` and ``state``: the trainer's state
as JSON in which every array is replaced by ``{"__array__": <tensor name>}``, every dict by
``{"__dict__": [[key, value], ...]}`` (keys keep their types: optimizer state is keyed by int),
every tuple by ``{"__tuple__": [...]}`` and every non-finite float by ``{"__float__": "nan"}``.
:func:`read_checkpoint` checks the structure (the keys, the types and ranges of the counters and
options, the random generators' states, that every tensor is used exactly once) before anything
uses it, and :func:`check_fits` checks it against the run it is loaded into: names, shapes and
dtypes against the model and optimizer, and the saved optimizer and scheduler states tried out
on stand-in copies (one step each), since only their own code knows what they need.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import random as _random
from .errors import FileFormatError, InvalidValueError
from .state_file import _NUMERIC_KINDS, _is_int, encode, loads_json, read

CHECKPOINT_FORMAT = "chainrule-checkpoint"
CHECKPOINT_VERSION = "1"

_INT64 = 2**63


def checkpoint_bytes(state: Mapping[str, Any]) -> bytes:
    """The bytes of a checkpoint file holding ``state`` (see the module docstring)."""
    arrays: dict[str, np.ndarray] = {}
    text = json.dumps(_encode(state, arrays, "state"), allow_nan=False, separators=(",", ":"))
    return encode(arrays, {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
                           "state": text})


def _encode(obj: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    """A JSON-able copy of ``obj`` with every array moved into ``arrays`` (named by its path, made
    unique if two paths coincide); dict keys keep their types."""
    from .backend import to_numpy  # (imported here: reading a file needs no tensors)
    from .tensor import Tensor

    if isinstance(obj, Tensor):
        obj = obj.data
    if isinstance(obj, np.generic):
        obj = obj.item()
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        arr = np.ascontiguousarray(to_numpy(obj))
        if arr.dtype.kind not in _NUMERIC_KINDS:
            raise InvalidValueError(f"cannot checkpoint the {arr.dtype} array at {path}")
        name, i = path, 1
        while name in arrays:  # a key containing "/" can repeat another path
            name, i = f"{path}#{i}", i + 1
        arrays[name] = arr
        return {"__array__": name}
    if isinstance(obj, dict):
        for k in obj:
            if not (isinstance(k, (str, int)) or (isinstance(k, tuple) and all(
                    isinstance(e, (str, int)) for e in k))):
                raise InvalidValueError(f"cannot checkpoint the dict key {k!r} at {path}")
        return {"__dict__": [[list(k) if isinstance(k, tuple) else k,
                              _encode(v, arrays, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{path}/{i}") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise InvalidValueError(f"cannot checkpoint a value of type {type(obj).__name__} at {path}")


def _decode(obj: Any, arrays: dict[str, np.ndarray], used: set[str]) -> Any:
    """Invert :func:`_encode`; anything it would not have written is a FileFormatError (the
    nesting depth is bounded by :func:`loads_json`, so the recursion is too)."""
    if isinstance(obj, list):
        return [_decode(v, arrays, used) for v in obj]
    if isinstance(obj, dict):
        if len(obj) != 1:
            raise FileFormatError(f"unexpected object with the keys {sorted(obj)[:4]}")
        tag, body = next(iter(obj.items()))
        if tag == "__array__":
            if not isinstance(body, str) or body not in arrays:
                raise FileFormatError(f"the state refers to the array {body!r}, which the file "
                                      "does not hold")
            if body in used:
                raise FileFormatError(f"the state refers to the array {body!r} twice")
            used.add(body)
            return arrays[body]
        if tag == "__dict__":
            if not isinstance(body, list):
                raise FileFormatError("a __dict__ is not a list of [key, value] pairs")
            out: dict[Any, Any] = {}
            for pair in body:
                if not isinstance(pair, list) or len(pair) != 2:
                    raise FileFormatError("a __dict__ is not a list of [key, value] pairs")
                key = _key(pair[0])
                if key in out:
                    raise FileFormatError(f"a __dict__ has the key {key!r} twice")
                out[key] = _decode(pair[1], arrays, used)
            return out
        if tag == "__tuple__" and isinstance(body, list):
            return tuple(_decode(v, arrays, used) for v in body)
        if tag == "__float__" and body in ("nan", "inf", "-inf"):
            return float(body)
        raise FileFormatError(f"unexpected object {{{tag!r}: ...}}")
    if _is_int(obj) and abs(obj) > 2**128:  # (2**128 itself: see random.check_state)
        raise FileFormatError(f"the integer {obj} is out of range")
    return obj


def _key(k: Any) -> Any:
    if isinstance(k, str) or (_is_int(k) and -_INT64 <= k < _INT64):
        return k
    if isinstance(k, list) and all(isinstance(e, str) or (_is_int(e) and -_INT64 <= e < _INT64)
                                   for e in k):
        return tuple(k)
    raise FileFormatError(f"{k!r} cannot be a dict key")


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The training state in the checkpoint file ``path``, with its structure checked (see
    :func:`check_structure`); every defect is a FileFormatError naming the file."""
    arrays, meta = read(path)
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise FileFormatError(f"{path}: not a chainrule training checkpoint")
    if meta.get("format_version") != CHECKPOINT_VERSION:
        raise FileFormatError(f"{path}: checkpoint format version {meta.get('format_version')!r}"
                              f" is not supported (this chainrule reads {CHECKPOINT_VERSION})")
    if "state" not in meta:
        raise FileFormatError(f"{path}: the checkpoint holds no state")
    used: set[str] = set()
    try:
        state = _decode(loads_json(meta["state"], "the state"), arrays, used)
        check_structure(state)
        if set(arrays) - used:
            raise FileFormatError(f"the file holds arrays that the state does not use: "
                                  f"{sorted(set(arrays) - used)[:4]}")
    except FileFormatError as exc:
        raise FileFormatError(f"{path}: not a valid checkpoint: {exc}") from None
    return state


_STATE_KEYS = ("epoch", "model", "optimizer", "scheduler", "rng", "loader", "history",
               "bad_epochs", "best_state")


def check_structure(state: Any) -> None:
    """Check a decoded training state on its own: the keys ``Trainer.load_checkpoint`` reads;
    ``epoch`` and ``bad_epochs`` non-negative ints; ``model`` and ``best_state`` (or None) maps
    of names to floating arrays; the optimizer's per-parameter state (arrays, a non-negative
    ``step``) and groups (options that are plain finite values, distinct parameter indices);
    the scheduler and loader states plain values; every generator state valid
    (:func:`chainrule.random.check_state`); the history's types. Raises FileFormatError."""
    top = _dict(state, "the state")
    missing = [k for k in _STATE_KEYS if k not in top]
    if missing:
        raise FileFormatError(f"the state lacks {', '.join(missing)}")
    _count(top["epoch"], "epoch")
    _count(top["bad_epochs"], "bad_epochs")
    _arrays(top["model"], "model")
    if top["best_state"] is not None:
        _arrays(top["best_state"], "best_state")
    _optimizer(top["optimizer"])
    if top["scheduler"] is not None:
        _plain(_dict(top["scheduler"], "scheduler"), "scheduler", finite=False)
    _generator(top["rng"], "rng")
    if top["loader"] is not None:
        loader = _dict(top["loader"], "loader")
        for k, v in loader.items():
            if k == "generator_state":
                _generator(v, "loader.generator_state")
            else:
                _plain(v, f"loader.{k}", finite=True)
        for k in ("epoch", "batch_index"):
            if k in loader:
                _count(loader[k], f"loader.{k}")
    _history(top["history"])


def _dict(v: Any, where: str) -> dict[Any, Any]:
    if not isinstance(v, dict):
        raise FileFormatError(f"{where} must be a dict, got {type(v).__name__}")
    return v


def _count(v: Any, where: str) -> int:
    if not _is_int(v) or not 0 <= v < _INT64:
        raise FileFormatError(f"{where} must be a non-negative integer, got {v!r}")
    return v


def _arrays(v: Any, where: str) -> None:
    for name, arr in _dict(v, where).items():
        if not isinstance(name, str) or not isinstance(arr, np.ndarray) or arr.dtype.kind != "f":
            raise FileFormatError(f"{where}: {name!r} is not a floating array")


def _generator(v: Any, where: str) -> None:
    try:
        _random.check_state(v)
    except InvalidValueError as exc:
        raise FileFormatError(f"{where}: {exc}") from None


def _plain(v: Any, where: str, finite: bool) -> None:
    """JSON-like values only (no arrays): None, bools, ints within int64, floats (finite unless
    ``finite`` is False), strings, and lists, tuples and dicts of them."""
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif _is_int(x):
            if not -_INT64 <= x < _INT64:
                raise FileFormatError(f"{where}: the integer {x} is out of range")
        elif isinstance(x, float):
            if finite and not math.isfinite(x):
                raise FileFormatError(f"{where}: {x} must be finite")
        elif not (x is None or isinstance(x, (bool, str))):
            raise FileFormatError(f"{where}: unexpected {type(x).__name__}")


def _optimizer(v: Any) -> None:
    opt = _dict(v, "optimizer")
    if set(opt) != {"state", "param_groups"}:
        raise FileFormatError("optimizer must have the keys 'state' and 'param_groups'")
    groups = opt["param_groups"]
    if not isinstance(groups, list):
        raise FileFormatError("optimizer.param_groups must be a list")
    seen: set[int] = set()
    for i, group in enumerate(groups):
        g = _dict(group, f"optimizer.param_groups[{i}]")
        if not all(isinstance(k, str) for k in g):
            raise FileFormatError(f"optimizer.param_groups[{i}] has a key that is not a string")
        _plain(g, f"optimizer.param_groups[{i}]", finite=True)
        params = g.get("params")
        if not isinstance(params, list):
            raise FileFormatError(f"optimizer.param_groups[{i}].params must be a list")
        for j, index in enumerate(params):
            _count(index, f"optimizer.param_groups[{i}].params[{j}]")
            if index in seen:
                raise FileFormatError(f"optimizer: parameter {index} is listed twice")
            seen.add(index)
    names = None
    for index, entry in _dict(opt["state"], "optimizer.state").items():
        where = f"optimizer.state[{index!r}]"
        if index not in seen:
            raise FileFormatError(f"{where}: no parameter group lists this parameter")
        entry = _dict(entry, where)
        if names is None:
            names = set(entry)
        elif set(entry) != names:
            raise FileFormatError(f"{where} has the entries {sorted(map(str, entry))}, another "
                                  f"parameter {sorted(map(str, names))}")
        for name, value in entry.items():
            if not isinstance(name, str):
                raise FileFormatError(f"{where}: the entry name {name!r} is not a string")
            if name == "step":
                _count(value, f"{where}.step")
            elif isinstance(value, np.ndarray):
                if value.dtype.kind != "f":
                    raise FileFormatError(f"{where}.{name} is not a floating array")
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise FileFormatError(f"{where}.{name} must be an array or a number")
            else:
                _plain(value, f"{where}.{name}", finite=True)


def _history(v: Any) -> None:
    h = _dict(v, "history")
    for k in ("epochs", "best_epoch", "best_value", "stopped_early"):
        if k not in h:
            raise FileFormatError(f"history lacks {k}")
    if not isinstance(h["epochs"], list):
        raise FileFormatError("history.epochs must be a list")
    for i, e in enumerate(h["epochs"]):
        e = _dict(e, f"history.epochs[{i}]")
        if not all(isinstance(k, str) for k in e):
            raise FileFormatError(f"history.epochs[{i}] has a key that is not a string")
        for k, x in e.items():
            if isinstance(x, (dict, list, tuple)):
                raise FileFormatError(f"history.epochs[{i}].{k} must be a plain value")
            _plain(x, f"history.epochs[{i}].{k}", finite=False)
    if h["best_epoch"] is not None:
        _count(h["best_epoch"], "history.best_epoch")
    for k in ("best_value", "baseline"):
        x = h.get(k)
        if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float))):
            raise FileFormatError(f"history.{k} must be a number or null, got {x!r}")
        _plain(x, f"history.{k}", finite=False)
    if not isinstance(h["stopped_early"], bool):
        raise FileFormatError("history.stopped_early must be true or false")


# ----------------------------------------------------------------------- against the run
def check_fits(state: dict[str, Any], where: str, *, model: Any, optimizer: Any,
               scheduler: Any = None, loader: Any = None) -> None:
    """Check a state from :func:`read_checkpoint` against the objects it is to be loaded into,
    so that loading it cannot fail half way: the model's (and ``best_state``'s) tensor names,
    shapes and dtypes; the optimizer's groups (how many, how many parameters each, no option it
    does not know) and each parameter's state arrays (its shape and dtype); the scheduler's and
    the loader's state keys and value types (their own ``state_dict()`` as the template).

    Raises:
        FileFormatError: beginning with ``where``, naming the first thing that does not fit.
    """
    try:
        own = {k: v for k, v in model.state_dict().items()}
        _fits_arrays(state["model"], own, "model")
        if state["best_state"] is not None:
            _fits_arrays(state["best_state"], own, "best_state")
        _fits_optimizer(state["optimizer"], optimizer)
        _try_optimizer(state["optimizer"], optimizer)
        if scheduler is not None and state["scheduler"] is not None:
            _fits_template(state["scheduler"], scheduler.state_dict(), "scheduler")
            _try_scheduler(state["scheduler"], scheduler, optimizer, state["optimizer"])
        if loader is not None and state["loader"] is not None:
            template, saved = dict(loader.state_dict()), dict(state["loader"])
            if ("generator_state" in saved) != ("generator_state" in template):
                raise FileFormatError("loader: the generator state does not fit this loader")
            template.pop("generator_state", None)  # (checked by check_structure)
            saved.pop("generator_state", None)
            _fits_template(saved, template, "loader")
    except FileFormatError as exc:
        raise FileFormatError(f"{where}: checkpoint does not fit this run: {exc}") from None


def _fits_arrays(saved: dict[str, np.ndarray], own: dict[str, Any], where: str) -> None:
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    if missing or unexpected:
        raise FileFormatError(f"{where}: missing {missing[:4]}, unexpected {unexpected[:4]}")
    for k, t in own.items():
        _fits_array(saved[k], t, f"{where}.{k}")


def _fits_array(arr: np.ndarray, like: Any, where: str) -> None:
    if tuple(arr.shape) != tuple(like.shape) or arr.dtype != like.dtype:
        raise FileFormatError(f"{where} is {arr.dtype}{list(arr.shape)}, this run's "
                              f"{like.dtype}{list(like.shape)}")


def _fits_optimizer(saved: dict[str, Any], optimizer: Any) -> None:
    groups = optimizer.param_groups
    saved_groups = saved["param_groups"]
    if len(saved_groups) != len(groups):
        raise FileFormatError(f"optimizer: {len(saved_groups)} parameter groups, this run's "
                              f"{len(groups)}")
    by_index = {}
    for i, (s, g) in enumerate(zip(saved_groups, groups)):
        if len(s["params"]) != len(g["params"]):
            raise FileFormatError(f"optimizer: group {i} has {len(s['params'])} parameters, "
                                  f"this run's {len(g['params'])}")
        unknown = set(s) - set(g) - {"initial_lr", "param_names"}
        if unknown:
            raise FileFormatError(f"optimizer: group {i} has unknown options {sorted(unknown)}")
        by_index.update(zip(s["params"], g["params"]))
    for index, entry in saved["state"].items():
        for name, value in entry.items():
            if isinstance(value, np.ndarray):
                _fits_array(value, by_index[index].data, f"optimizer.state[{index}].{name}")


def _try_optimizer(saved: dict[str, Any], optimizer: Any) -> None:
    """Take one step with the saved optimizer state on a copy of the optimizer whose parameters
    are one-element stand-ins (and whose state arrays are too): the state's entries must be the
    ones the saved options call for (``amsgrad`` switched on in a file needs
    ``max_exp_avg_sq``), which only the optimizer's own step knows."""
    from .nn import Parameter

    tiny: dict[int, Any] = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            t = Parameter(np.zeros(1, dtype=np.dtype(str(p.dtype))))
            t.grad = np.zeros(1, dtype=t.data.dtype)
            tiny[id(p)] = t
    try:
        probe = copy.deepcopy(optimizer, {id(optimizer.state): {}, **{
            id(p): tiny[id(p)] for g in optimizer.param_groups for p in g["params"]}})
    except Exception:  # noqa: BLE001 - an optimizer that cannot be copied is not probed
        return
    small = {"param_groups": copy.deepcopy(saved["param_groups"]), "state": {
        i: {k: (np.zeros(1, v.dtype) if isinstance(v, np.ndarray) else v) for k, v in e.items()}
        for i, e in saved["state"].items()}}
    try:
        probe.load_state_dict(small)
        probe.step()
    except Exception as exc:  # noqa: BLE001 - whatever the optimizer's code makes of it
        raise FileFormatError(f"optimizer: the saved state does not work ({type(exc).__name__}: "
                              f"{exc})") from None


def _try_scheduler(saved: dict[str, Any], scheduler: Any, optimizer: Any,
                   saved_optimizer: dict[str, Any]) -> None:
    """Run the saved scheduler state for a few epochs on a copy of the scheduler that drives a
    stand-in for the optimizer (its groups' options as the checkpoint will set them): a
    scheduler's ``load_state_dict`` takes any numbers, and a zero ``step_size`` or a missing
    ``gamma`` would only fail at the end of the next epoch. The rates must stay finite and
    non-negative."""
    from .optim.lr_scheduler import ReduceLROnPlateau

    groups = []
    for live, s in zip(optimizer.param_groups, saved_optimizer["param_groups"]):
        g = {k: v for k, v in live.items() if k != "params"}
        g.update((k, v) for k, v in s.items() if k != "params")
        groups.append(g)
    standin = type("Optimizer", (), {"param_groups": groups})()
    try:
        probe = copy.deepcopy(scheduler, {id(optimizer): standin})
    except Exception:  # noqa: BLE001 - a scheduler that cannot be copied is not probed
        return
    try:
        probe.load_state_dict(copy.deepcopy(saved))
        for _ in range(3):
            probe.step(1.0) if isinstance(probe, ReduceLROnPlateau) else probe.step()
        rates = [g["lr"] for g in groups]
    except Exception as exc:  # noqa: BLE001 - whatever the scheduler's code makes of it
        raise FileFormatError(f"scheduler: the saved state does not work ({type(exc).__name__}: "
                              f"{exc})") from None
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r)
               and r >= 0 for r in rates):
        raise FileFormatError(f"scheduler: the saved state gives the learning rates {rates}")


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (list, tuple)):
        return "list"
    return type(v).__name__


def _fits_template(saved: Any, template: Any, where: str) -> None:
    """``saved`` has the keys, list lengths and value kinds of ``template`` (where the template
    holds None, any plain value)."""
    if template is None:  # (an option that is unset here may be set in the file)
        return
    if _kind(saved) != _kind(template):
        raise FileFormatError(f"{where} is a {_kind(saved)}, this run's a {_kind(template)}")
    if isinstance(template, dict):
        if set(saved) != set(template):
            raise FileFormatError(f"{where} has the keys {sorted(map(str, saved))}, this run's "
                                  f"{sorted(map(str, template))}")
        for k in template:
            _fits_template(saved[k], template[k], f"{where}.{k}")
    elif isinstance(template, (list, tuple)):
        if len(saved) != len(template):
            raise FileFormatError(f"{where} has {len(saved)} entries, this run's "
                                  f"{len(template)}")
        for i, (s, t) in enumerate(zip(saved, template)):
            _fits_template(s, t, f"{where}[{i}]")


__all__ = ["CHECKPOINT_FORMAT", "check_fits", "check_structure", "checkpoint_bytes",
           "read_checkpoint"]
