"""From a trace to a plan: guards, then one generated function that replays the ops.

Every op has a *generic* lowering, which calls the very function the eager step called (the
primitive's ``forward`` and ``vjp`` on a small context object instead of a graph node, the
optimizer's ``step``, the clipping function, the generator's draw, the traced check) on the
arrays of this call: the same arithmetic in the same order, so the same bits, with none of the
engine's bookkeeping (no Tensor, Node, version counter or backward walk). The kernels of
:mod:`.kernels` replace the hot ones (the fused ``mlp`` network, ``cross_entropy``, the
optimizers' updates) by code on buffers allocated once, with ``out=``; see there.

A plan's guards (the parameters still hold the arrays it was traced with, the modules are in the
same training mode, the gradients it assumes absent are absent) are its first lines: a failed
guard raises :class:`Retrace` before anything is touched. A traced check (a label range, a NaN
test) that fails, or gives another answer than in the trace, raises :class:`Abort`: the step then
runs eagerly, which raises the check's own error or takes the other path.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import _array, _conform
from ..tensor import Tensor, _to_array
from .codegen import CodeGen
from .trace import LeafRef, Op, Ref, Tracer

MUTATING = ("opt", "clip_norm", "clip_value", "grad_set", "grad_acc")  # (zero_grad: idempotent)


class Retrace(Exception):
    """A guard of the plan failed: trace again (nothing was changed)."""


class Abort(Exception):
    """A traced check gave another answer: run this call eagerly."""


class Ctx:
    """What a primitive's forward and VJP read and write on the graph's node: ``needs`` (which
    inputs want a gradient), ``saved`` and ``final`` (the VJP's last use of ``saved``)."""

    __slots__ = ("needs", "saved", "final")

    def __init__(self, needs: tuple[bool, ...]) -> None:
        self.needs = needs
        self.saved: Any = None
        self.final = True


def _wrap(a: Any) -> Tensor:
    return Tensor._from_op(a, None)


def _seed_like(g: Any, dtype: Any) -> Any:
    """``autograd._seed`` for a given gradient (its checks passed in the trace)."""
    seed = g.data if isinstance(g, Tensor) else (g if hasattr(g, "dtype") and hasattr(g, "shape")
                                                 else np.asarray(g))
    return seed if seed.dtype == dtype else seed.astype(dtype)


def _ones(shape: tuple[int, ...], dtype: Any, xp: Any) -> Any:
    seed = xp.empty(shape, dtype=dtype)
    seed.fill(1)
    return seed


def _zero_optimizer(p: Tensor) -> None:
    """``Optimizer.zero_grad(set_to_none=False)`` for one parameter."""
    if p.grad is None:
        return
    if getattr(p.grad.flags, "writeable", True):
        p.grad.fill(0)
    else:
        from ..backend import get_xp

        p.grad = get_xp(p.grad).zeros_like(p.grad)


def _zero_module(p: Tensor) -> None:
    """``Module.zero_grad(set_to_none=False)`` for one parameter."""
    if p.grad is None:
        p.grad = None
    else:
        p.grad[...] = 0


def _late(fn: Any, result: Any) -> RuntimeError:
    """The error for a traced function that answered differently after the step had already
    changed gradients or parameters (it cannot run eagerly instead)."""
    name = getattr(fn, "__qualname__", repr(fn))
    return RuntimeError(f"cr.compile: {name} returned {type(result).__name__} {result!r:.80} "
                        "at a replay, unlike in the traced call, after the step had updated "
                        "state; call the compiled step's clear() if this is expected")


def _same(a: Any, b: Any) -> bool:
    """Whether a traced check's result ``a`` at replay is the trace's ``b``."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - anything incomparable is "different"
        return False


class Plan:
    """A traced step, ready to replay: ``plan(*args)`` runs it (raising Retrace or Abort)."""

    def __init__(self, fn: Any, source: str, tracer: Tracer, info: dict[str, Any]) -> None:
        self.fn = fn
        self.source = source
        self.info = info
        self.generators = list(tracer.generators.values()) if info.get("snapshot_rng") else []
        self.replays = 0

    def __call__(self, *args: Any) -> Any:
        if not self.generators:
            return self.fn(*args)
        states = [g._rng.bit_generator.state for g in self.generators]
        try:
            return self.fn(*args)
        except Abort:
            for g, st in zip(self.generators, states):
                g._rng.bit_generator.state = st
            raise


class Builder:
    """Lowers a trace to a :class:`Plan`."""

    def __init__(self, tr: Tracer, result: Any, n_args: int, arg_is_tensor: list[bool],
                 options: dict[str, Any]) -> None:
        self.tr = tr
        self.result = result
        self.cg = CodeGen(n_args)
        self.arg_is_tensor = arg_is_tensor
        self.options = options
        self.ctx_needed = {op.fwd for op in tr.ops if op.kind == "vjp"}
        self.claimed: dict[int, Any] = {}  # op index -> kernel that emits it
        self.alias: dict[int, str] = {}    # slot -> the (buffer's) name a kernel gave it
        self.info: dict[str, Any] = {"kernels": []}
        self.xp = self._xp()
        self.dest: dict[int, str] = {}   # slot -> name of the array its producer writes into
        self.honoured: set[int] = set()  # slots whose producer did
        self.uses: dict[int, list[int]] = {}
        self.fused = False                  # kernels: compile.fused's loops (set by claim)
        self.fused_sgd: dict[int, Any] = {}

    def is_array(self, a: Any) -> bool:
        """Whether ``a`` is an array of this plan's backend."""
        return type(a) is np.ndarray if self.xp is np else type(a) is self.xp.ndarray

    # ------------------------------------------------------------------ names
    def var(self, slot: int) -> str:
        alias = self.alias.get(slot)
        if alias is not None:
            return alias
        s = self.tr.slots[slot]
        if s.kind == "const":
            nm = f"c{slot}"
            self.cg.ns[nm] = s.array
            return nm
        return f"s{slot}"

    def expr(self, enc: Any) -> str:
        """Source for an encoded argument."""
        if isinstance(enc, Ref):
            v = self.var(enc.slot)
            return f"_T({v})" if enc.tensor else v
        if type(enc) is tuple:
            return "(" + "".join(self.expr(e) + ", " for e in enc) + ")"
        if type(enc) is list:
            return "[" + ", ".join(self.expr(e) for e in enc) + "]"
        if type(enc) is dict:
            return "{" + ", ".join(f"{k!r}: {self.expr(v)}" for k, v in enc.items()) + "}"
        return self.cg.literal(enc)

    def leaf(self, ref: LeafRef) -> str:
        if ref.arg is not None:
            return f"a{ref.arg}"
        return self.cg.name(self.tr.leaves[ref.index], "L")

    # ------------------------------------------------------------------ build
    def build(self) -> Plan | str:
        """The plan, or a string saying why the trace cannot be replayed."""
        tr, cg = self.tr, self.cg
        cg.ns.update(_T=_wrap, _arr=_array, _Ctx=Ctx, _Abort=Abort, _Retrace=Retrace,
                     _same=_same, _conform=_conform, _seed_like=_seed_like, _ones=_ones,
                     _zero_optimizer=_zero_optimizer, _zero_module=_zero_module,
                     _to_array=_to_array, _np=np, _Tensor=Tensor, _late=_late)
        # a traced function after the step changed gradients or parameters cannot send the
        # call back to eager (that would apply the change twice): its mismatch is an error
        self.late: set[int] = set()
        mutated = False
        for i, op in enumerate(tr.ops):
            if op.kind in MUTATING:
                mutated = True
            elif op.kind == "pyfunc" and mutated:
                self.late.add(i)
        self.info["snapshot_rng"] = any(op.kind == "rand" for op in tr.ops) and any(
            op.kind == "pyfunc" for op in tr.ops)
        self._guards()
        if tr.device == "cuda" and self.options.get("cuda_graph", "auto"):
            from . import cuda

            plan = cuda.build(self)
            if plan is not None:
                return plan
            # not capturable: the plain replay (every op through its eager function)
            options = dict(self.options, cuda_graph=False)
            return Builder(tr, self.result, self.cg.n_args, self.arg_is_tensor, options).build()
        if self.options.get("kernels", True) and tr.device == "cpu":
            from . import kernels

            cg.ns.update(kernels.namespace())
            kernels.claim(self)
        for i, op in enumerate(tr.ops):
            k = self.claimed.get(i)
            if k is not None:
                k.emit(self, i, op)
            else:
                getattr(self, "_op_" + op.kind)(i, op)
        result = self.expr(self.result)
        if self.fused:
            from . import kernels

            kernels.bind_fused(cg)
        fn, src = cg.compile(result, self.options.get("label", "step"))
        return Plan(fn, src, tr, self.info)

    def _guards(self) -> None:
        tr, cg = self.tr, self.cg
        head = cg.head
        for idx, s in enumerate(tr.slots):
            if s.kind == "input":
                head.append(f"s{idx} = a{s.arg}.data" if self.arg_is_tensor[s.arg]
                            else f"s{idx} = a{s.arg}")
        for idx, s in enumerate(tr.slots):
            if s.kind == "const" and s.tensor is not None:
                t = cg.name(s.tensor, "L")
                head.append(f"if {t}.data is not {self.var(idx)}: raise _Retrace")
        for m in tr.modules.values():
            head.append(f"if {cg.name(m, 'M')}.training is not {bool(m.training)}: "
                        "raise _Retrace")
        for key, (leaf, was_none) in tr.entry_grads.items():
            ref = tr.leaf_ids.get(key)
            name = self.leaf(ref) if ref is not None else cg.name(leaf, "L")
            head.append(f"if ({name}.grad is None) is not {was_none}: raise _Retrace")
        for idx, s in enumerate(tr.slots):
            if s.kind == "entry":
                head.append(f"s{idx} = {self.leaf(s.leaf)}.grad")

    # ------------------------------------------------------------------ generic lowerings
    def _op_prim(self, i: int, op: Op) -> None:
        cg = self.cg
        f = cg.name(op.prim.forward, "F")
        ctx = "None"
        if i in self.ctx_needed:
            ctx = f"x{i}"
            cg.emit(f"x{i} = _Ctx({op.needs!r})")
        args = "".join(", " + self.expr(e) for e in op.ins)
        args += "".join(", " + self.expr(e) for e in op.params)
        call = f"{f}({ctx}{args})"
        if len(op.shape) == 0:
            call = f"_arr({call})"
        cg.emit(f"s{op.outs[0]} = {call}")

    def _op_vjp(self, i: int, op: Op) -> None:
        cg = self.cg
        prim = self.tr.ops[op.fwd].prim
        v = cg.name(prim.vjp, "V")
        ctx = f"x{op.fwd}"
        if not op.final:
            cg.emit(f"{ctx}.final = False")
        targets = []
        done = set()
        for k, s in enumerate(op.outs):
            if s is None or s in done:
                targets.append("_")
            else:
                done.add(s)
                targets.append(f"s{s}")
        cg.emit(f"{', '.join(targets)}{',' if len(targets) == 1 else ''} = "
                f"{v}({ctx}, {self.var(op.g.slot)})")

    def _op_seed(self, i: int, op: Op) -> None:
        cg = self.cg
        if op.grad is None:
            xp = cg.name(self._xp(), "xp")
            cg.emit(f"s{op.outs[0]} = _ones({op.shape!r}, {cg.name(op.dtype, 'dt')}, {xp})")
        else:
            cg.emit(f"s{op.outs[0]} = _seed_like({self.expr(op.grad)}, "
                    f"{cg.name(op.dtype, 'dt')})")

    def _xp(self) -> Any:
        if self.tr.device == "cuda":
            from ..backend import _load_cupy

            return _load_cupy()
        return np

    def _op_conform(self, i: int, op: Op) -> None:
        self.cg.emit(f"s{op.outs[0]} = _conform({self.var(op.a.slot)}, {op.shape!r}, "
                     f"{self.cg.name(op.dtype, 'dt')})")

    def _op_add(self, i: int, op: Op) -> None:
        self.cg.emit(f"s{op.outs[0]} = {self.var(op.a.slot)} + {self.var(op.b.slot)}")

    def _op_grad_set(self, i: int, op: Op) -> None:
        src = self.var(op.a.slot)
        if self.tr.slots[op.a.slot].array.ndim == 0:
            src = f"_arr({src})"
        out = op.outs[0]
        if op.copy:
            self.cg.emit(f"s{out} = {src}.copy()")
            target = f"s{out}"
        elif out != op.a.slot:
            self.cg.emit(f"s{out} = {src}")
            target = f"s{out}"
        else:
            target = src
        self.cg.emit(f"{self.leaf(op.leaf)}.grad = {target}")

    def _op_grad_acc(self, i: int, op: Op) -> None:
        a = self.var(op.a.slot) if op.a is not None else "None"
        self.cg.emit(f"s{op.outs[0]} = _arr({a} + {self.var(op.b.slot)})")
        self.cg.emit(f"{self.leaf(op.leaf)}.grad = s{op.outs[0]}")

    def _overwritten(self, i: int, leaf: Any) -> bool:
        """Whether ``leaf.grad = None`` at op ``i`` is a dead store: the next op of the plan
        that could read or set that gradient is a ``grad_set`` of it (only primitives, VJPs
        and the walk's bookkeeping in between)."""
        key = (leaf.index, leaf.arg)
        for j in range(i + 1, len(self.tr.ops)):
            op = self.tr.ops[j]
            if op.kind in ("prim", "vjp", "seed", "conform", "add", "rand", "convert"):
                continue
            if op.kind == "pyfunc" and j in self.claimed:
                continue  # (a label check a kernel took over: it reads no gradient)
            if op.kind == "grad_set":
                if (op.leaf.index, op.leaf.arg) == key:
                    return True
                continue
            return False
        return False

    def _op_zero_grad(self, i: int, op: Op) -> None:
        for leaf, _ref in op.leaves:
            name = self.leaf(leaf)
            if op.set_to_none:
                if not self._overwritten(i, leaf):
                    self.cg.emit(f"{name}.grad = None")
            elif op.how == "optimizer":
                self.cg.emit(f"_zero_optimizer({name})")
            else:
                self.cg.emit(f"_zero_module({name})")

    def _op_opt(self, i: int, op: Op) -> None:
        # ``opt.step()`` as the step called it: a subclass's or an instance's own ``step`` runs
        self.cg.emit(f"{self.cg.name(op.optimizer, 'O')}.step()")

    def _params_list(self, leaves: list[Any]) -> str:
        return "[" + ", ".join(self.leaf(lf) for lf, _ in leaves) + "]"

    def _op_clip_norm(self, i: int, op: Op) -> None:
        from ..optim.clip import clip_grad_norm_

        f = self.cg.name(clip_grad_norm_, "CN")
        args = "".join(", " + self.cg.literal(a) for a in op.args)
        call = f"{f}({self._params_list(op.leaves)}{args})"
        if op.outs:
            self.cg.emit(f"s{op.outs[0]} = {call}.data")
        else:
            self.cg.emit(call)

    def _op_clip_value(self, i: int, op: Op) -> None:
        from ..optim.clip import clip_grad_value_

        f = self.cg.name(clip_grad_value_, "CV")
        args = "".join(", " + self.cg.literal(a) for a in op.args)
        self.cg.emit(f"{f}({self._params_list(op.leaves)}{args})")

    def _op_rand(self, i: int, op: Op) -> None:
        g = self.cg.name(op.generator, "G")
        m = self.cg.name(getattr(type(op.generator), op.method), "GM")
        args = "".join(", " + self.expr(self.tr.encode(a)) for a in op.args)
        self.cg.emit(f"s{op.outs[0]} = {m}({g}{args})")

    def _op_convert(self, i: int, op: Op) -> None:
        cg = self.cg
        dtype, device = op.options
        src = self.var(op.src.slot)
        if op.how == "Tensor":
            cg.emit(f"s{op.outs[0]} = _to_array({src}, {cg.literal(dtype)}, "
                    f"{cg.literal(device)})")
        else:
            from ..creation import tensor

            f = cg.name(tensor, "TN")
            cg.emit(f"s{op.outs[0]} = {f}({src}, {cg.literal(dtype)}, False, "
                    f"{cg.literal(device)}).data")

    def _op_pyfunc(self, i: int, op: Op) -> None:
        cg = self.cg
        f = cg.name(op.fn, "PF")
        args = ", ".join(self.expr(a) for a in op.args)
        kwargs = ", ".join(f"{k}={self.expr(v)}" for k, v in op.kwargs.items())
        call = f"{f}({args}{', ' if args and kwargs else ''}{kwargs})"
        r = f"r{i}"
        cg.emit(f"{r} = {call}")
        fail = f"_late({f}, {r})" if i in self.late else "_Abort"
        if op.single:
            items = [r]
        else:
            cg.emit(f"if type({r}) is not tuple or len({r}) != {len(op.pattern)}: raise {fail}")
            items = [f"{r}[{k}]" for k in range(len(op.pattern))]
        for item, (what, value), out in zip(items, op.pattern, op.outs):
            if what == "tensor":
                cg.emit(f"if not isinstance({item}, _Tensor): raise {fail}")
                cg.emit(f"s{out} = {item}.data")
            elif what == "array":
                cg.emit(f"if {item} is None or not hasattr({item}, 'shape'): raise {fail}")
                cg.emit(f"s{out} = {item}")
            elif value is None:
                cg.emit(f"if {item} is not None: raise {fail}")
            else:
                cg.emit(f"if not _same({item}, {cg.literal(value)}): raise {fail}")


def build_plan(tr: Tracer, result: Any, n_args: int, arg_is_tensor: list[bool],
               options: dict[str, Any]) -> Plan | str:
    return Builder(tr, result, n_args, arg_is_tensor, options).build()


__all__ = ["Plan", "Builder", "Retrace", "Abort", "Ctx", "build_plan"]
