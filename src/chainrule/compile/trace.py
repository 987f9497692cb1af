"""The tracer: one eager run of a training step, recorded as a list of operations on arrays.

While ``cr.compile`` traces (``_hooks.TRACER`` is set), every hook site hands its call here; the
call runs exactly as it would eagerly (so the traced call's results are the eager ones) and is
recorded as an :class:`Op` whose inputs and outputs are *slots*: one per distinct array of the
step. A slot is

``input``   an array of a positional argument (a tensor's ``data``, or an array passed as is);
``const``   an array that existed before the step and is read by reference at every replay: the
            parameters' ``data`` (which the optimizer updates in place), the optimizer's state,
            tensors the step closes over, cached read-only constants;
``temp``    an array an operation of the step made (a primitive's output, a gradient, a random
            draw, a validated copy of the labels);
``entry``   a parameter's ``.grad`` as it was when the step began (gradient accumulation).

The operations are: ``prim`` (a primitive's forward), ``vjp`` (its vector-Jacobian product, in
the order the backward walk ran them), ``seed``, ``conform``, ``add`` (the walk's gradient
bookkeeping), ``grad_set``/``grad_acc``/``grad_fill`` (a leaf's ``.grad``), ``zero_grad``,
``opt`` (an optimizer's step), ``clip_norm``/``clip_value``, ``rand`` (a draw from a generator),
``convert`` (a tensor made from an array of the step) and ``pyfunc`` (a function marked
:func:`~chainrule.compile._hooks.traceable`: label checks and the like).

What the tracer cannot replay makes the step *unsupported* (it then runs eagerly, with a
one-line warning): reading a value of the step into Python (``item()``, ``float()``, ``bool()``,
``numpy()`` ...: control flow that depends on data), in-place tensor operations, a closure passed
to ``optimizer.step``, backward through a graph recorded before the step, ``retain_grad``, a
parameter's values changed by something other than an optimizer's step.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import autograd
from ..backend import is_cupy_array
from ..tensor import Tensor
from . import _hooks


class Unsupported(Exception):
    """Raised inside the tracer's bookkeeping only; the reason is kept, the step runs on."""


class Ref:
    """An encoded argument: the array of slot ``slot`` (as a Tensor when ``tensor``)."""

    __slots__ = ("slot", "tensor")

    def __init__(self, slot: int, tensor: bool = False) -> None:
        self.slot = slot
        self.tensor = tensor

    def __repr__(self) -> str:
        return f"{'T' if self.tensor else ''}%{self.slot}"


class LeafRef:
    """A leaf tensor whose ``.grad`` the step sets: a captured tensor (``index`` into the
    trace's ``leaves``) or the tensor passed as positional argument ``arg``."""

    __slots__ = ("index", "arg")

    def __init__(self, index: int | None, arg: int | None) -> None:
        self.index, self.arg = index, arg

    def __repr__(self) -> str:
        return f"leaf{self.index}" if self.arg is None else f"arg{self.arg}"


class Slot:
    __slots__ = ("kind", "array", "producer", "arg", "tensor", "leaf")

    def __init__(self, kind: str, array: Any, producer: int | None = None,
                 arg: int | None = None, tensor: Any = None, leaf: LeafRef | None = None
                 ) -> None:
        self.kind = kind          # "input", "const", "temp" or "entry"
        self.array = array        # the trace's array (kept alive: ids stay unique)
        self.producer = producer  # index of the op that made it (temp)
        self.arg = arg            # the positional argument (input)
        self.tensor = tensor      # the tensor that held it (const from a tensor: a guard)
        self.leaf = leaf          # whose .grad it was (entry)


class Op:
    """One recorded operation; ``kind`` says which, the other attributes depend on it."""

    def __init__(self, kind: str, **fields: Any) -> None:
        self.kind = kind
        self.outs: list[int | None] = []
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        extra = {k: v for k, v in self.__dict__.items() if k not in ("kind", "outs")}
        return f"<{self.kind} {extra} -> {self.outs}>"


_ARRAY_TYPES = (np.ndarray,)


def _is_array(x: Any) -> bool:
    return type(x) is np.ndarray or (not isinstance(x, (int, float, str, bool, type(None)))
                                     and is_cupy_array(x))


class Tracer:
    """Records one call of the step. See the module docstring."""

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.slots: list[Slot] = []
        self.ids: dict[int, int] = {}        # id(array) -> slot
        self.ops: list[Op] = []
        self.reason: str | None = None        # why the step cannot be compiled (first reason)
        self.node_op: dict[Any, int] = {}     # graph node -> index of the prim op that made it
        self.leaves: list[Tensor] = []        # leaf tensors whose .grad the step touches
        self.leaf_ids: dict[int, LeafRef] = {}
        self.grad_state: dict[int, Any] = {}  # leaf id -> Ref / None (its .grad in the trace)
        self.entry_grads: dict[int, tuple[Tensor, bool]] = {}  # leaf id -> (leaf, grad None?)
        self.modules: dict[int, Any] = {}     # id -> module called (its ``training`` is a guard)
        self.optimizers: dict[int, Any] = {}
        self.generators: dict[int, Any] = {}
        self.arg_tensors: dict[int, int] = {}  # id(tensor argument) -> position
        self.keep: list[Any] = []             # objects kept alive while tracing
        self.device: str | None = None
        self.thread = threading.get_ident()   # (other threads' calls are not the step's)
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                self._new_slot("input", a.data, arg=i)
                self.arg_tensors[id(a)] = i
                self.keep.append(a)
            elif _is_array(a):
                self._new_slot("input", a, arg=i)

    # ------------------------------------------------------------------ bookkeeping
    def fail(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Run the wrapped code untraced (the real eager call behind a hook)."""
        previous = _hooks.set_paused(True)
        try:
            yield
        finally:
            _hooks.set_paused(previous)

    def _new_slot(self, kind: str, array: Any, **fields: Any) -> int:
        idx = len(self.slots)
        self.slots.append(Slot(kind, array, **fields))
        self.ids[id(array)] = idx
        if is_cupy_array(array):
            self.device = "cuda"
        elif self.device is None and type(array) is np.ndarray:
            self.device = "cpu"
        return idx

    def slot_of(self, array: Any, tensor: Tensor | None = None) -> int:
        """The slot of ``array``; an array seen for the first time is a constant of the plan."""
        idx = self.ids.get(id(array))
        if idx is not None and self.slots[idx].array is array:
            return idx
        return self._new_slot("const", array, tensor=tensor)

    def produce(self, array: Any, op_index: int) -> int:
        """A new temp slot for ``array``, made by op ``op_index`` (an array object that was
        already a slot is re-bound: later uses see this op's result)."""
        return self._new_slot("temp", array, producer=op_index)

    def encode(self, value: Any) -> Any:
        """``value`` with every array replaced by a :class:`Ref` (tensors by a tensor Ref)."""
        if isinstance(value, Tensor):
            return Ref(self.tensor_slot(value), tensor=True)
        if _is_array(value):
            return Ref(self.slot_of(value))
        if type(value) is tuple:
            return tuple(self.encode(v) for v in value)
        if type(value) is list:
            return [self.encode(v) for v in value]
        if type(value) is dict:
            return {k: self.encode(v) for k, v in value.items()}
        return value

    def tensor_slot(self, t: Tensor) -> int:
        idx = self.ids.get(id(t.data))
        if idx is not None and self.slots[idx].array is t.data:
            return idx
        if t._node is not None:
            self.fail("the step uses a tensor computed with gradient tracking before it "
                      "began; compute it inside the step, or pass it detached")
        self.keep.append(t)
        return self.slot_of(t.data, tensor=t)

    def add_op(self, op: Op) -> int:
        self.ops.append(op)
        return len(self.ops) - 1

    def is_traced(self, array: Any) -> bool:
        """Whether ``array`` depends on the step's inputs or work (an input or temp slot)."""
        idx = self.ids.get(id(array))
        return (idx is not None and self.slots[idx].array is array
                and self.slots[idx].kind != "const")

    def leaf_ref(self, t: Tensor) -> LeafRef:
        ref = self.leaf_ids.get(id(t))
        if ref is None:
            arg = self.arg_tensors.get(id(t))
            if arg is not None:
                ref = LeafRef(None, arg)
            else:
                ref = LeafRef(len(self.leaves), None)
                self.leaves.append(t)
            self.leaf_ids[id(t)] = ref
        return ref

    def grad_ref(self, t: Tensor) -> Any:
        """The traced value of ``t.grad`` now: a Ref, or None; a gradient that was already there
        when the step began becomes an ``entry`` slot."""
        key = id(t)
        if key in self.grad_state:
            return self.grad_state[key]
        g = t.grad
        if g is not None:  # an array of the step (a traced function set it): follow it
            idx = self.ids.get(id(g))
            if idx is not None and self.slots[idx].array is g and self.slots[idx].kind == "temp":
                ref = Ref(idx)
                self.grad_state[key] = ref
                return ref
        if key not in self.entry_grads:
            self.entry_grads[key] = (t, g is None)
        if g is None:
            self.grad_state[key] = None
            return None
        idx = self._new_slot("entry", g, leaf=self.leaf_ref(t))
        ref = Ref(idx)
        self.grad_state[key] = ref
        return ref

    # ------------------------------------------------------------------ hooks
    def apply(self, prim: Any, inputs: tuple[Any, ...], params: tuple[Any, ...]) -> Tensor:
        enc_inputs = tuple(Ref(self.tensor_slot(t)) if isinstance(t, Tensor) else self.encode(t)
                           for t in inputs)
        enc_params = self.encode(params)
        needs = tuple(isinstance(t, Tensor) and t._requires_grad for t in inputs)
        has_ctx = bool(prim.differentiable and autograd.is_grad_enabled() and any(needs))
        with self.paused():
            out = autograd.apply(prim, inputs, *params)
        idx = self.add_op(Op("prim", prim=prim, ins=enc_inputs, params=enc_params,
                             has_ctx=has_ctx, needs=needs, shape=out.data.shape,
                             dtype=out.data.dtype))
        self.ops[idx].outs = [self.produce(out.data, idx)]
        if out._node is not None:
            self.node_op[out._node] = idx
            self.keep.append(out._node)
        self.keep.append(out)
        return out

    def backward(self, root: Tensor, grad: Any, retain_graph: bool) -> None:
        from .walk import traced_backward

        with self.paused():
            traced_backward(self, root, grad, retain_graph)

    def optimizer_step(self, opt: Any, closure: Any, impl: Any) -> Any:
        """``impl`` (the ``step`` that holds the hook) of ``opt`` runs untraced and is recorded;
        a replay calls ``opt.step()``, so a subclass's own ``step`` runs there as eagerly."""
        if closure is not None:
            self.fail("optimizer.step(closure) re-evaluates the model inside the step")
            with self.paused():
                return impl(opt, closure)
        groups = []
        for group in opt.param_groups:
            entries = []
            for p in group["params"]:
                entries.append((self.leaf_ref(p), self.grad_ref(p)))
            groups.append(entries)
        self.optimizers[id(opt)] = opt
        self.add_op(Op("opt", optimizer=opt, groups=groups))
        with self.paused():
            return impl(opt, closure)

    def zero_grad(self, params: list[Tensor], set_to_none: bool, how: str) -> None:
        leaves = []
        for p in params:
            if set_to_none:  # whatever .grad was, it is None after this: no guard on it
                leaves.append((self.leaf_ref(p), None))
                self.grad_state[id(p)] = None
                continue
            ref = self.grad_ref(p)
            if ref is not None:
                leaves.append((self.leaf_ref(p), ref))
        if leaves:
            self.add_op(Op("zero_grad", leaves=leaves, set_to_none=set_to_none, how=how))

    def clip(self, kind: str, fn: Any, parameters: Any, args: tuple[Any, ...]) -> Any:
        params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
        refs = [(self.leaf_ref(p), self.grad_ref(p)) if isinstance(p, Tensor) else None
                for p in params]
        if any(r is None for r in refs):
            with self.paused():
                return fn(parameters, *args)  # the function raises its own error
        idx = self.add_op(Op(kind, leaves=refs, args=args))
        with self.paused():
            result = fn(params, *args)
        if isinstance(result, Tensor):
            self.ops[idx].outs = [self.produce(result.data, idx)]
        return result

    def rand(self, generator: Any, method: str, args: tuple[Any, ...]) -> Any:
        self.generators[id(generator)] = generator
        idx = self.add_op(Op("rand", generator=generator, method=method, args=args))
        with self.paused():
            out = getattr(type(generator), method)(generator, *args)
        self.ops[idx].outs = [self.produce(out, idx)]
        return out

    def pyfunc(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        enc_args = self.encode(args)
        enc_kwargs = self.encode(kwargs)
        with self.paused():
            result = fn(*args, **kwargs)
        idx = self.add_op(Op("pyfunc", fn=fn, args=enc_args, kwargs=enc_kwargs))
        op = self.ops[idx]
        single = not isinstance(result, tuple)
        values = (result,) if single else result
        pattern = []
        for v in values:
            if isinstance(v, Tensor):
                pattern.append(("tensor", None))
                op.outs.append(self.produce(v.data, idx))
            elif _is_array(v):
                pattern.append(("array", None))
                op.outs.append(self.produce(v, idx))
            else:
                pattern.append(("value", v))
                op.outs.append(None)
        op.single = single
        op.pattern = pattern
        return result

    def tensor_made(self, t: Tensor, source: Any, how: str, options: tuple[Any, ...]) -> None:
        """``t`` was made from ``source`` (``Tensor(...)`` or ``cr.tensor(...)``)."""
        src = source.data if isinstance(source, Tensor) else source
        if not _is_array(src) or not self.is_traced(src):
            return  # a constant (a literal, or an array from outside the step)
        if t.data is src:
            return  # the same array: nothing to record
        idx = self.add_op(Op("convert", how=how, src=Ref(self.slot_of(src)), options=options))
        self.ops[idx].outs = [self.produce(t.data, idx)]

    def escape(self, t: Tensor, what: str) -> None:
        """The value of ``t`` leaves the traced world (``item()``, ``float()``, ``bool()``...)."""
        if self.is_traced(t.data):
            self.fail(f"the step reads a tensor's value ({what}): data-dependent Python cannot "
                      "be replayed; return the tensor and read it after the step")

    def inplace(self, t: Tensor, what: str) -> None:
        self.fail(f"in-place tensor operation ({what}) inside the step")

    def module_called(self, module: Any) -> None:
        if id(module) not in self.modules:
            self.modules[id(module)] = module

    # ------------------------------------------------------------------ the result
    def encode_result(self, result: Any) -> Any:
        if isinstance(result, Tensor):
            return Ref(self.tensor_slot(result), tensor=True)
        if _is_array(result):
            return Ref(self.slot_of(result))
        if isinstance(result, (tuple, list)):
            return type(result)(self.encode_result(r) for r in result)
        if isinstance(result, dict):
            return {k: self.encode_result(v) for k, v in result.items()}
        if result is None or isinstance(result, (int, float, str, bool)):
            return result
        self.fail(f"the step returns a {type(result).__name__}; return tensors, arrays, "
                  "numbers or tuples/dicts of them")
        return None


__all__ = ["Tracer", "Op", "Ref", "LeafRef", "Slot", "Unsupported"]
