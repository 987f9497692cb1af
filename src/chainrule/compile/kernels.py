"""Buffered kernels for the hot ops of a CPU plan: the fused network (``mlp``), the softmax
cross-entropy (``cross_entropy``, with the label check it is fed by) and the optimizers' updates
of a flat parameter group.

Each kernel emits the lines of its op (forward, VJP, update) as the eager function computes it --
the same NumPy and BLAS calls on operands of the same layouts, in the same order -- but writing
into arrays allocated once when the plan is built (``out=``), in place where the eager code
allocates a fresh array, and with every view it needs (``W.T``, a buffer's flat or transposed
view) made once. So the numbers are the eager ones bit for bit; what goes is the allocation of
each step's arrays (page faults for the large ones: see ``benchmarks/README.md``), the Python of
the primitives (argument checks, the choice of a path, ``_reach``) and the optimizer's flat-path
bookkeeping (finding the layout, gathering the gradients: the network's VJP writes each weight's
gradient straight into its place in the optimizer's gradient buffer).

Only what the kernel can prove from the trace is specialised: a shape, a dtype or an option that
the plan's signature or guards fix. Everything else keeps the generic lowering of :mod:`.plan`.

A replayed step's gradients (``p.grad``) are then views of the plan's gradient buffer, which the
next replay overwrites (as PyTorch's gradients are with ``zero_grad(set_to_none=False)``); copy
them to keep them. Outputs of the step (what ``fn`` returns) are always fresh arrays.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ops.constants import cached_constant
from ..ops.mlp import _reach
from ..ops.nn import _transpose_product
from .trace import Ref

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def claim(b: Any) -> None:
    """Claim the ops of ``b.tr`` that a kernel can emit (CPU plans only)."""
    tr = b.tr
    if tr.device != "cpu":
        return
    from . import fused

    b.dest = {}       # slot -> name of the array its producer should write into
    b.honoured = set()  # slots whose producer did
    b.fused = fused.AVAILABLE and b.options.get("fused", True)
    b.fused_sgd = {}  # weight-gradient slot -> (its weight, list) for compile.fused.outer_sgd
    uses = _uses(tr)
    b.uses = uses
    result_slots = _result_slots(b.result)
    vjp_of = {op.fwd: i for i, op in enumerate(tr.ops) if op.kind == "vjp"}
    for i, op in enumerate(tr.ops):
        if op.kind == "opt":
            k = OptKernel.make(b, i, op)
            if k is not None:
                b.claimed[i] = k
                b.info["kernels"].append(f"opt:{type(op.optimizer).__name__}")
    for i, op in enumerate(tr.ops):
        if op.kind != "prim":
            continue
        name = op.prim.name
        k = None
        if name == "mlp":
            k = MLPKernel.make(b, i, op, vjp_of.get(i), result_slots)
        elif name == "cross_entropy":
            k = CEKernel.make(b, i, op, vjp_of.get(i), result_slots)
        if k is not None:
            for j in k.ops:
                b.claimed[j] = k
            b.info["kernels"].append(name)


def _uses(tr: Any) -> dict[int, list[int]]:
    """slot -> the ops that read it."""
    uses: dict[int, list[int]] = {}

    def visit(enc: Any, i: int) -> None:
        if isinstance(enc, Ref):
            uses.setdefault(enc.slot, []).append(i)
        elif isinstance(enc, (tuple, list)):
            for e in enc:
                visit(e, i)
        elif isinstance(enc, dict):
            for e in enc.values():
                visit(e, i)

    for i, op in enumerate(tr.ops):
        for field in ("ins", "params", "args", "kwargs", "g", "a", "b", "src", "grad"):
            if hasattr(op, field):
                visit(getattr(op, field), i)
        if op.kind in ("opt", "zero_grad", "clip_norm", "clip_value"):
            for entry in getattr(op, "groups", [op.leaves] if hasattr(op, "leaves") else []):
                for _leaf, ref in entry:
                    visit(ref, i)
    return uses


def _result_slots(enc: Any) -> set[int]:
    out: set[int] = set()

    def visit(e: Any) -> None:
        if isinstance(e, Ref):
            out.add(e.slot)
        elif isinstance(e, (tuple, list)):
            for x in e:
                visit(x)
        elif isinstance(e, dict):
            for x in e.values():
                visit(x)

    visit(enc)
    return out


def _np_array(a: Any) -> bool:
    return type(a) is np.ndarray


# ---------------------------------------------------------------------------- the network
class MLPKernel:
    """``ops.mlp.MLP.forward`` and ``.vjp`` on buffers (see ``chainrule.ops.mlp``)."""

    def __init__(self) -> None:
        self.ops: list[int] = []

    @classmethod
    def make(cls, b: Any, fi: int, op: Any, vi: int | None, result_slots: set[int]
             ) -> MLPKernel | None:
        tr = b.tr
        acts, has_bias = op.params[0], op.params[1]
        if not isinstance(acts, tuple) or not isinstance(has_bias, bool):
            return None
        if not all(isinstance(r, Ref) for r in op.ins):
            return None
        arrays = [tr.slots[r.slot].array for r in op.ins]
        x = arrays[0]
        if not all(b.is_array(a) for a in arrays) or x.ndim != 2 or x.dtype not in _FLOATS:
            return None
        if any(a.dtype != x.dtype for a in arrays):
            return None
        k = cls()
        k.fi, k.vi = fi, vi
        k.ops = [fi] + ([vi] if vi is not None else [])
        k.acts, k.has_bias = acts, has_bias
        k.step = 2 if has_bias else 1
        k.L = len(acts)
        k.n, k.dtype = x.shape[0], x.dtype
        k.ins = op.ins
        k.shapes = [a.shape for a in arrays]
        k.needs = op.needs if vi is not None else None
        k.out_slot = op.outs[0]
        k.fresh_out = op.outs[0] in result_slots
        if vi is not None:
            vop = tr.ops[vi]
            g = tr.slots[vop.g.slot].array
            if not b.is_array(g) or g.ndim != 2 or g.dtype != x.dtype:
                return None
            if not vop.final:
                return None  # (retain_graph: the generic VJP keeps the saved arrays right)
        return k

    def emit(self, b: Any, i: int, op: Any) -> None:
        if i == self.fi:
            self._forward(b, op)
        else:
            self._backward(b, op)

    def _forward(self, b: Any, op: Any) -> None:
        cg = b.cg
        n, dt, L, step = self.n, self.dtype, self.L, self.step
        ins = [b.var(r.slot) for r in self.ins]
        consts = [b.tr.slots[r.slot].kind == "const" for r in self.ins]
        if self.needs is not None:
            self.wanted_below, self.reached = _reach(self.needs, L, step)
        else:
            self.wanted_below = self.reached = (False,) * L
        a = ins[0]
        a_shape = self.shapes[0]
        self.layer_in: list[str | None] = []   # x^(l-1) per layer (source name)
        self.layer_out: list[str | None] = []  # x^(l) per layer where theta' is needed
        self.layer_inT: list[str] = []
        for l, act in enumerate(self.acts):
            w_idx = l * step + 1
            w, w_shape = ins[w_idx], self.shapes[w_idx]
            d_out = w_shape[0]
            last = l == L - 1
            fresh = last and self.fresh_out
            transposed = _transpose_product(n, w_shape[0] * w_shape[1])
            wT = cg.name(b.tr.slots[self.ins[w_idx].slot].array.T, "WT") if consts[w_idx] \
                else f"{w}.T"
            if transposed:
                aT = self._T(b, a)
                if fresh:
                    cg.emit(f"_t = _dot({w}, {aT})")
                    s = "_s_out"
                    cg.emit(f"{s} = _t.T")
                else:
                    buf = b.xp.empty((d_out, n), dt)
                    tb = cg.name(buf, "B")
                    s = cg.name(buf.T, "BT")
                    cg.emit(f"_dot({w}, {aT}, {tb})")
            else:
                if fresh:
                    s = "_s_out"
                    cg.emit(f"{s} = _dot({a}, {wT})")
                else:
                    buf = b.xp.empty((n, d_out), dt)
                    s = cg.name(buf, "B")
                    cg.emit(f"_dot({a}, {wT}, {s})")
            if self.has_bias and act == "relu" and b.fused:  # (compile.fused: same numbers)
                zero = cg.name(np.zeros((), dt)[()], "ZERO1")
                cg.emit(f"_bias_relu({s}, {ins[w_idx + 1]}, {zero})")
            else:
                if self.has_bias:
                    add = "_bias_add" if b.fused else "_add"
                    cg.emit(f"{add}({s}, {ins[w_idx + 1]}" + (")" if b.fused else f", {s})"))
                s = self._activate(b, s, act, (n, d_out), fresh)
            self.layer_in.append(a)
            self.layer_out.append(s if act != "identity" else None)
            a = s
            a_shape = (n, d_out)
        del a_shape
        b.alias[self.out_slot] = a

    def _T(self, b: Any, name: str) -> str:
        """The transposed view of ``name`` (made once for a buffer or constant)."""
        obj = b.cg.ns.get(name)
        if obj is not None and b.is_array(obj):
            return b.cg.name(obj.T, "VT")
        return f"{name}.T"

    def _activate(self, b: Any, s: str, act: Any, shape: tuple[int, int], fresh: bool) -> str:
        """``ops.mlp._activate`` on ``s`` (in place where it is in place)."""
        cg, dt = b.cg, self.dtype
        if act == "relu":
            cg.emit(f"_maximum({s}, 0, out={s})")
            return s
        if act == "tanh":
            cg.emit(f"_tanh({s}, {s})")
            return s
        if type(act) is tuple:  # leaky: where(s > 0, s, s * a)
            m = cg.name(b.xp.empty(shape, np.bool_), "BM")
            out = "_s_out2" if fresh else cg.name(b.xp.empty(shape, dt), "B")
            cg.emit(f"_greater({s}, 0, {m})")
            if fresh:
                cg.emit(f"{out} = _multiply({s}, {cg.literal(act[1])})")
            else:
                cg.emit(f"_multiply({s}, {cg.literal(act[1])}, {out})")
            cg.emit(f"_copyto({out}, {s}, where={m})")
            return out
        if act == "sigmoid":
            e = cg.name(b.xp.empty(shape, dt), "B")
            m = cg.name(b.xp.empty(shape, np.bool_), "BM")
            out = "_s_out2" if fresh else cg.name(b.xp.empty(shape, dt), "B")
            cg.emit(f"_abs({s}, {e})")
            cg.emit(f"_negative({e}, {e})")
            cg.emit(f"_exp({e}, {e})")
            cg.emit(f"_greater_equal({s}, 0, {m})")
            if fresh:
                cg.emit(f"{out} = {e}.copy()")
            else:
                cg.emit(f"_copyto({out}, {e})")
            cg.emit(f"_copyto({out}, 1.0, where={m})")
            cg.emit(f"_add({e}, 1, {e})")
            cg.emit(f"_divide({out}, {e}, {out})")
            return out
        return s  # identity

    def _backward(self, b: Any, op: Any) -> None:
        cg, n, dt, step = b.cg, self.n, self.dtype, self.step
        needs = self.needs
        outs = op.outs  # per input: (x, W_1, [b_1,] ...)
        delta = b.var(op.g.slot)
        owned = False      # as in MLP.vjp: whether delta is this VJP's own array
        is_buffer = False  # whether delta is one of this kernel's buffers
        ones = cg.name(cached_constant(b.xp, "ones", 0, n, dt), "ONE")
        for l in range(self.L - 1, -1, -1):
            act = self.acts[l]
            d_l = self.shapes[l * step + 1][0]
            y = self.layer_out[l]
            if y is not None:
                delta = self._derivative(b, delta, y, act, owned, (n, d_l))
                is_buffer = is_buffer or act != "identity"
            w_idx = l * step + 1
            # the weight's gradient, delta^T x: at batch 1 an outer product, which the fused
            # loop computes (with the plain-SGD update of W when the optimizer lets it: after
            # the delta below has used W), else BLAS
            outer = needs[w_idx] and n == 1 and b.fused
            later = None
            if needs[w_idx]:
                slot = outs[w_idx]
                dest = self._dest(b, slot, self.shapes[w_idx])
                if outer:
                    fuse = b.fused_sgd.get(slot)
                    xin = self.layer_in[l]
                    zero = cg.name(np.zeros((), dt)[()], "ZERO1")
                    args = f"{dest}, {delta}[0], {xin}[0]"
                    later = (f"_outer_sgd({fuse[0]}, {args}, _lr_t, {zero})" if fuse is not None
                             else f"_outer({args}, {zero})")
                    if fuse is not None:
                        fuse[1].append(slot)  # (the optimizer kernel leaves this one out)
                else:
                    dT = self._T(b, delta)
                    cg.emit(f"_dot({dT}, {self.layer_in[l]}, {dest})")
                b.alias[slot] = dest
            if self.has_bias and needs[w_idx + 1]:
                slot = outs[w_idx + 1]
                dest = self._dest(b, slot, self.shapes[w_idx + 1])
                cg.emit(f"_dot({ones}, {delta}, {dest})")
                b.alias[slot] = dest
            if not self.wanted_below[l]:
                if later is not None:
                    cg.emit(later)
                break
            d_in = self.shapes[w_idx][1]
            nxt = cg.name(b.xp.empty((n, d_in), dt), "B")
            cg.emit(f"_dot({delta}, {b.var(self.ins[w_idx].slot)}, {nxt})")
            if later is not None:
                cg.emit(later)
            delta = nxt
            owned = is_buffer = True
        else:
            if needs[0]:
                slot = outs[0]
                if is_buffer:
                    cg.emit(f"s{slot} = {delta}.copy()")  # (a buffer: the grad escapes)
                else:
                    cg.emit(f"s{slot} = {delta}")

    def _dest(self, b: Any, slot: int | None, shape: tuple[int, ...]) -> str:
        """Where the gradient of ``slot`` goes: the optimizer's buffer view if it asked for
        this slot, else a buffer of this kernel's."""
        name = b.dest.get(slot)
        if name is not None:
            b.honoured.add(slot)
            return name
        return b.cg.name(b.xp.empty(shape, self.dtype), "G")

    def _derivative(self, b: Any, delta: str, y: str, act: Any, owned: bool,
                    shape: tuple[int, int]) -> str:
        """``ops.mlp._times_derivative`` (writes into ``delta`` only when ``owned``)."""
        cg, dt = b.cg, self.dtype
        if b.fused and act in ("relu", "tanh"):  # (compile.fused: the same operations)
            # in place on a delta of the step's own (a product's output, which nothing else
            # reads), else into a buffer of its own. In place saves the pass that fetches a
            # cold output buffer: the relu derivative after the 256 x 128 product at batch
            # 1024 took 28 instead of 90 us in the step (the 128-wide one 17 against 56)
            one = cg.name(np.ones((), dt)[()], "ONE1")
            zero = cg.name(np.zeros((), dt)[()], "ZERO1")
            if owned:
                if act == "relu":
                    cg.emit(f"_relu_grad_inplace({delta}, {y}, {one}, {zero})")
                else:
                    cg.emit(f"_tanh_grad_inplace({delta}, {y}, {one})")
                return delta
            d = cg.name(b.xp.empty(shape, dt), "B")
            if act == "relu":
                cg.emit(f"_relu_grad({d}, {y}, {delta}, {one}, {zero})")
            else:
                cg.emit(f"_tanh_grad({d}, {y}, {delta}, {one})")
            return d
        if act == "relu":
            if owned:
                m = cg.name(b.xp.empty(shape, np.bool_), "BM")
                cg.emit(f"_greater({y}, 0, {m})")
                cg.emit(f"_multiply({delta}, {m}, {delta})")
                return delta
            d = cg.name(b.xp.empty(shape, dt), "B")
            cg.emit(f"_greater({y}, 0, {d})")
            cg.emit(f"_multiply({d}, {delta}, {d})")
            return d
        if act == "tanh":
            d = cg.name(b.xp.empty(shape, dt), "B")
            cg.emit(f"_square({y}, {d})")
            cg.emit(f"_subtract(1, {d}, {d})")
            cg.emit(f"_multiply({d}, {delta}, {d})")
            return d
        if act == "sigmoid":  # delta * y * (1 - y)
            d = cg.name(b.xp.empty(shape, dt), "B")
            t = cg.name(b.xp.empty(shape, dt), "B")
            cg.emit(f"_multiply({delta}, {y}, {d})")
            cg.emit(f"_subtract(1, {y}, {t})")
            cg.emit(f"_multiply({d}, {t}, {d})")
            return d
        if type(act) is tuple:  # where(y > 0, delta, delta * a)
            m = cg.name(b.xp.empty(shape, np.bool_), "BM")
            d = cg.name(b.xp.empty(shape, dt), "B")
            cg.emit(f"_greater({y}, 0, {m})")
            cg.emit(f"_multiply({delta}, {cg.literal(act[1])}, {d})")
            cg.emit(f"_copyto({d}, {delta}, where={m})")
            return d
        return delta


# ---------------------------------------------------------------------------- the loss
class CEKernel:
    """``ops.loss.CrossEntropy.forward`` and ``.vjp`` on buffers, for labels without weights,
    reduction "mean" or "sum", NumPy logits (N, C); with the label check of
    ``nn.loss._plain_labels`` inlined when the labels come from it."""

    @classmethod
    def make(cls, b: Any, fi: int, op: Any, vi: int | None, result_slots: set[int]
             ) -> CEKernel | None:
        tr = b.tr
        if len(op.ins) != 1 or not isinstance(op.ins[0], Ref) or len(op.params) != 3:
            return None
        labels, coef, reduction = op.params
        if coef is not None or reduction not in ("mean", "sum") or not isinstance(labels, Ref):
            return None
        x = tr.slots[op.ins[0].slot].array
        lab = tr.slots[labels.slot].array
        if not _np_array(x) or x.ndim != 2 or x.dtype not in _FLATS or x.shape[0] == 0:
            return None
        if not _np_array(lab) or lab.dtype != np.int64 or lab.shape != (x.shape[0],):
            return None
        k = cls()
        k.fi, k.vi = fi, vi
        k.ops = [fi] + ([vi] if vi is not None else [])
        k.x_ref, k.labels = op.ins[0], labels
        k.reduction = reduction
        k.n, k.c = x.shape
        k.dtype = x.dtype
        k.contiguous = x.flags.c_contiguous
        k.out_slot = op.outs[0]
        # the labels from nn.loss._plain_labels, fed by the labels argument: inline its check
        k.check = None
        prod = tr.slots[labels.slot].producer
        if prod is not None:
            pop = tr.ops[prod]
            from ..nn.loss import _plain_labels

            fn = getattr(pop.fn, "__wrapped_traceable__", pop.fn) if pop.kind == "pyfunc" \
                else None
            if (fn is getattr(_plain_labels, "__wrapped_traceable__", None)
                    and b.uses.get(labels.slot, []) == [fi] and len(pop.args) == 3
                    and isinstance(pop.args[1], Ref)
                    and tr.slots[pop.args[1].slot].kind == "input"
                    and isinstance(pop.args[0], Ref) and pop.args[0].slot == op.ins[0].slot
                    and pop.args[2] == -100 and not pop.kwargs):
                src = tr.slots[pop.args[1].slot].array
                if _np_array(src) and src.dtype == np.int64 and src.shape == (k.n,):
                    k.check = (prod, pop.args[1].slot)
                    k.ops.append(prod)
        if vi is not None:
            vop = tr.ops[vi]
            g = vop.g
            gs = tr.slots[g.slot]
            k.unit_seed = (gs.kind == "temp" and tr.ops[gs.producer].kind == "seed"
                           and tr.ops[gs.producer].grad is None)
            if k.unit_seed and b.uses.get(g.slot, []) == [vi] and g.slot not in result_slots:
                k.ops.append(gs.producer)  # the seed 1 is folded into the scale: no array
                k.seed_op = gs.producer
            k.dx_slot = vop.outs[0]
            k.dx_escapes = k.dx_slot in result_slots
        return k

    seed_op = None

    def emit(self, b: Any, i: int, op: Any) -> None:
        if i == self.seed_op:
            return
        if self.check is not None and i == self.check[0]:
            self._check(b, op)
        elif i == self.fi:
            self._forward(b, op)
        else:
            self._backward(b, op)

    def _check(self, b: Any, op: Any) -> None:
        # nn.loss._plain_labels: int64 labels (N,) of the logits' rows (fixed by the plan's
        # signature) whose maximum, read as unsigned, is below C; otherwise the eager path
        # decides (and raises the general path's error)
        src = b.var(self.check[1])
        if not b.fused:  # (the fused forward checks the labels itself)
            b.cg.emit(f"if not _maxred({src}.view(_u64)) < {self.c}: raise _Abort")
        b.alias[op.outs[0]] = src

    def _forward(self, b: Any, op: Any) -> None:
        cg, n, c, dt = b.cg, self.n, self.c, self.dtype
        x = b.var(self.x_ref.slot)
        lab = b.var(self.labels.slot)
        self.lab = lab
        if b.fused:
            self._forward_fused(b, x, lab)
            return
        if not self.contiguous:
            xc = cg.name(np.empty((n, c), dt), "B")
            cg.emit(f"_copyto({xc}, {x})")
            x = xc
        flat = np.empty(n, np.int64)
        fl = cg.name(flat, "FL")
        cg.emit(f"_add({lab}, {cg.name(cached_constant(np, 'offsets', n, c, np.int64), 'OFF')}, "
                f"{fl})")
        m = cg.name(np.empty((n, 1), dt), "B")
        if n >= 8 and c <= 32:  # ops.loss._row_max: on a column-major copy
            xf = cg.name(np.empty((n, c), dt, order="F"), "B")
            cg.emit(f"_copyto({xf}, {x})")
            cg.emit(f"_maxred({xf}, 1, None, {m}, True)")
        else:
            cg.emit(f"_maxred({x}, 1, None, {m}, True)")
        zbuf = np.empty((n, c), dt)
        z = cg.name(zbuf, "Z")
        zf = cg.name(zbuf.reshape(-1), "ZF")
        pick = cg.name(np.empty(n, dt), "B")
        cg.emit(f"_subtract({x}, {m}, {z})")
        cg.emit(f"_take({zf}, {fl}, None, {pick})")
        cg.emit(f"_exp({z}, {z})")
        sbuf = np.empty(n, dt)
        s = cg.name(sbuf, "B")
        s2 = cg.name(sbuf.reshape(-1, 1), "B")
        cg.emit(f"_dot({z}, {cg.name(cached_constant(np, 'ones', 0, c, dt), 'ONE')}, {s})")
        loss = cg.name(np.empty(n, dt), "B")
        cg.emit(f"_log({s}, {loss})")
        cg.emit(f"_subtract({loss}, {pick}, {loss})")
        cg.emit(f"_total = _addred({loss})")
        # a NaN or infinite loss: the eager forward's second pass (non-finite row maxima), and
        # whatever the caller does with it, is the eager step's business
        cg.emit("if not _isfinite(_total): raise _Abort")  # (math.isfinite, as eagerly)
        dtn = cg.name(dt, "dt")
        if self.reduction == "mean":
            cg.emit(f"s{self.out_slot} = _asarray(_total / {float(n)!r}, dtype={dtn})")
        else:
            cg.emit(f"s{self.out_slot} = _asarray(_total, dtype={dtn})")
        if self.vi is not None:
            cg.emit(f"_divide({z}, {s2}, {z})")  # e /= s: the softmax, kept for the VJP
        self.z, self.zbuf, self.fl = z, zbuf, fl

    def _forward_fused(self, b: Any, x: str, lab: str) -> None:
        """The forward with compile.fused.ce_forward for the label check, the flat indices,
        the row maxima, x - m and the picked entries (the rest is NumPy's, as eagerly); the
        softmax's division is left to the fused backward."""
        cg, n, c, dt = b.cg, self.n, self.c, self.dtype
        fl = cg.name(np.empty(n, np.int64), "FL")
        m = cg.name(np.empty((n, 1), dt), "B")
        zbuf = np.empty((n, c), dt)
        z = cg.name(zbuf, "Z")
        pick = cg.name(np.empty(n, dt), "B")
        cg.emit(f"if not _ce_forward({x}, {lab}, {fl}, {m}, {z}, {pick}): raise _Abort")
        cg.emit(f"_exp({z}, {z})")
        sbuf = np.empty(n, dt)
        s = cg.name(sbuf, "B")
        cg.emit(f"_dot({z}, {cg.name(cached_constant(np, 'ones', 0, c, dt), 'ONE')}, {s})")
        loss = cg.name(np.empty(n, dt), "B")
        cg.emit(f"_log({s}, {loss})")
        cg.emit(f"_subtract({loss}, {pick}, {loss})")
        cg.emit(f"_total = _addred({loss})")
        cg.emit("if not _isfinite(_total): raise _Abort")
        dtn = cg.name(dt, "dt")
        if self.reduction == "mean":
            cg.emit(f"s{self.out_slot} = _asarray(_total / {float(n)!r}, dtype={dtn})")
        else:
            cg.emit(f"s{self.out_slot} = _asarray(_total, dtype={dtn})")
        self.z, self.zbuf, self.fl, self.s = z, zbuf, fl, s
        if self.vi is not None and self.dx_escapes:  # (the VJP's NumPy path wants p)
            cg.emit(f"_divide({z}, {cg.name(sbuf.reshape(-1, 1), 'B')}, {z})")

    def _backward(self, b: Any, op: Any) -> None:
        cg, n, c, dt = b.cg, self.n, self.c, self.dtype
        denom = float(n)
        if self.unit_seed:
            one = np.ones((), dt)
            scale = one[()] / denom if self.reduction == "mean" else one[()]
            sc = cg.name(scale, "SC")
        else:
            g = b.var(op.g.slot)
            cg.emit(f"_sc = {g}[()] / {denom!r}" if self.reduction == "mean" else
                    f"_sc = {g}[()]")
            sc = "_sc"
        if self.dx_escapes:
            cg.emit(f"_dx = _multiply({self.z}, {sc})")
            cg.emit(f"_dx.reshape(-1)[{self.fl}] -= {sc}")
            cg.emit(f"s{self.dx_slot} = _dx")
            return
        dxbuf = np.empty((n, c), dt)
        dx = cg.name(dxbuf, "DX")
        if b.fused:  # p = e / s, dx = p scale, dx[label] -= scale: one pass
            cg.emit(f"_ce_backward({self.z}, {self.s}, {self.lab}, {sc}, {dx})")
            b.alias[self.dx_slot] = dx
            return
        dxf = cg.name(dxbuf.reshape(-1), "DXF")
        cg.emit(f"_multiply({self.z}, {sc}, {dx})")
        cg.emit(f"{dxf}[{self.fl}] -= {sc}")
        b.alias[self.dx_slot] = dx


_FLATS = _FLOATS


# ---------------------------------------------------------------------------- optimizers
class OptKernel:
    """An optimizer's step over parameter groups laid out flat (``optim._flat``): the update
    function of the optimizer (``sgd_update``, ``adam_update``, ``rmsprop_update``,
    ``adagrad_update``) applied once to the group's flat arrays, as the eager flat path applies
    it; the gradients are written straight into the flat gradient buffer by the network's VJP
    (or copied there). Every option is read from the group at each replay (schedulers change
    ``lr``); the step counts of Adam, RMSprop and Adagrad advance in the state as eagerly.
    Groups that are not flat keep the optimizer's own ``step`` (the generic lowering)."""

    @classmethod
    def make(cls, b: Any, i: int, op: Any) -> OptKernel | None:
        from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop
        from ..optim._flat import _gather_state

        opt = op.optimizer
        kind = type(opt)
        if kind not in (SGD, Adam, AdamW, RMSprop, Adagrad) or "step" in vars(opt):
            return None  # (a subclass, or a ``step`` set on the instance: its own code runs)
        tr = b.tr
        groups = []
        for gi, (group, entries) in enumerate(zip(opt.param_groups, op.groups)):
            params = group["params"]
            if len(entries) != len(params):
                return None
            refs = [ref for _leaf, ref in entries]
            if any(r is None for r in refs) or any(lf.arg is not None for lf, _ in entries):
                return None  # a parameter without gradient: the per-parameter path decides
            grads = [tr.slots[r.slot].array for r in refs]
            if not all(_np_array(gr) for gr in grads):
                return None
            layout = opt._flat.layout(params, opt.param_groups)
            base = layout.base
            if base is None or base.dtype not in _FLOATS:
                return None
            if any(gr.shape != p.data.shape or gr.dtype != base.dtype
                   for gr, p in zip(grads, params)):
                return None
            names = _state_names(opt, group)
            if names is None:
                return None
            states = [opt.state.get(p) for p in params]
            if names or kind is not SGD:
                if any(st is None for st in states):
                    return None
                counts = {st.get("step") for st in states} if kind is not SGD else set()
                if kind is not SGD and (len(counts) != 1 or type(next(iter(counts))) is not int):
                    return None
                for name in names:
                    views = layout.state_views.get(name)
                    if views is None or any(st.get(name) is not v
                                            for st, v in zip(states, views)):
                        if not _gather_state(layout, states, name):
                            return None
            gbuf = np.empty_like(base)
            views = layout.views_of(gbuf)
            plain = kind is SGD and (group["momentum"] == 0.0 and not group["weight_decay"]
                                     and not group["maximize"])
            groups.append(dict(index=gi, group=group, params=params, layout=layout,
                               gbuf=gbuf, views=views, refs=refs, names=names, states=states,
                               plain=plain, fused=[]))
        k = cls()
        k.opt, k.kind, k.groups = opt, kind, groups
        for g in groups:
            if not g["plain"]:
                continue
            # plain SGD (as traced: a change of options retraces): its learning rate, read once
            # at the start of a replay, and, at batch 1 with the fused loops, the weights'
            # updates done by the network's VJP (compile.fused.outer_sgd)
            grp = b.cg.name(g["group"], "GR")
            b.cg.head.append(f"if {grp}['momentum'] != 0.0 or {grp}['weight_decay'] or "
                             f"{grp}['maximize']: raise _Retrace")
            if b.fused:
                if any(h.startswith("_lr_t =") for h in b.cg.head):
                    continue  # (one fused group: the first)
                b.cg.head.append(f"_lr_t = {b.cg.name(g['layout'].base.dtype.type, 'DT')}"
                                 f"(float({grp}['lr']))")
                for p, ref in zip(g["params"], g["refs"]):
                    if p.data.ndim == 2:
                        b.fused_sgd[ref.slot] = (b.cg.name(p.data, "PW"), g["fused"])
        # ask the producers of the gradients to write into the buffer's views
        for g in groups:
            for ref, view in zip(g["refs"], g["views"]):
                slot = ref.slot
                if slot not in b.dest and b.uses.get(slot, []) and _only_set(tr, slot, i):
                    b.dest[slot] = b.cg.name(view, "GV")
        return k

    def emit(self, b: Any, i: int, op: Any) -> None:
        from ..optim.adagrad import adagrad_update
        from ..optim.adam import adam_update
        from ..optim.rmsprop import rmsprop_update
        from ..optim._axpy import bind as bind_axpy
        from ..optim.sgd import sgd_update
        from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop

        cg = b.cg
        opt = cg.name(self.opt, "O")
        # (guards go to the head of the plan: a retrace must find nothing changed)
        cg.head.append(f"if {opt}.state is not {cg.name(self.opt.state, 'OSt')} or "
                       f"{opt}.param_groups is not {cg.name(self.opt.param_groups, 'OPG')}: "
                       "raise _Retrace")
        for g in self.groups:
            grp = cg.name(g["group"], "GR")
            base = cg.name(g["layout"].base, "PB")
            gbuf = cg.name(g["gbuf"], "GB")
            # the gradients the producers did not write into place: gathered (as eagerly)
            for p, ref, view in zip(g["params"], g["refs"], g["views"]):
                if ref.slot not in b.honoured:
                    cg.emit(f"{cg.name(view, 'GV')}[...] = {cg.name(p, 'L')}.grad")
            if self.kind is SGD and g["plain"]:
                # p <- p - lr g rounded once (optim._axpy, as sgd_update), over each run of
                # parameters that the network's VJP did not already update (fused.outer_sgd)
                done = set(g["fused"])
                lr = "_lr_t" if any(h.startswith("_lr_t =") for h in cg.head) else \
                    f"float({grp}['lr'])"
                run = None
                runs = []
                for (a, z), ref in zip(g["layout"].bounds, g["refs"]):
                    if ref.slot in done:
                        run = None
                    elif run is None:
                        run = [a, z]
                        runs.append(run)
                    else:
                        run[1] = z
                pb, gb = g["layout"].base, g["gbuf"]
                tail = None
                if b.fused:
                    from . import fused
                    tail = fused.get("axpy")
                for a, z in runs:
                    update = bind_axpy(gb[a:z], pb[a:z], tail)
                    cg.emit(f"{cg.name(update, 'AXPY')}(-{lr})")
            elif self.kind is SGD:
                tmp = cg.name(np.empty_like(g["layout"].base), "TMP")
                if not g["names"]:
                    # the momentum switched on since the trace: its buffer is the step's
                    cg.head.append(f"if {grp}['momentum'] != 0.0: raise _Retrace")
                cg.head.append(f"if {grp}['momentum'] == 0.0 and not {grp}['weight_decay'] and "
                               f"not {grp}['maximize']: raise _Retrace")  # (plain now)
                buf = "None"
                if g["names"]:
                    buf = cg.name(g["layout"].state_buffers["momentum_buffer"], "SB")
                cg.emit(f"_SGD_UPDATE(_np, {base}, {gbuf}, {buf}, float({grp}['lr']), "
                        f"{grp}['momentum'], {grp}['dampening'], {grp}['nesterov'], "
                        f"{grp}['weight_decay'], {grp}['maximize'], grad_is_ours=False)")
                cg.ns["_SGD_UPDATE"] = sgd_update
            elif self.kind in (Adam, AdamW):
                st0 = cg.name(g["states"][0], "ST")
                sb = g["layout"].state_buffers
                m, v = cg.name(sb["exp_avg"], "SB"), cg.name(sb["exp_avg_sq"], "SB")
                vmax = cg.name(sb["max_exp_avg_sq"], "SB") if "max_exp_avg_sq" in g["names"] \
                    else "None"
                cg.head.append(f"if {grp}['amsgrad'] is not {'max_exp_avg_sq' in g['names']}: "
                               "raise _Retrace")
                cg.emit(f"_t = {st0}['step'] + 1")
                cg.emit(f"_b1, _b2 = {grp}['betas']")
                cg.emit(f"_ADAM_UPDATE(_np, {base}, {gbuf}, {m}, {v}, {vmax}, _t, "
                        f"float({grp}['lr']), _b1, _b2, {grp}['eps'], {grp}['weight_decay'], "
                        f"{self.kind is AdamW}, {grp}['maximize'])")
                cg.ns["_ADAM_UPDATE"] = adam_update
                self._count_steps(b, g)
            elif self.kind is RMSprop:
                st0 = cg.name(g["states"][0], "ST")
                sb = g["layout"].state_buffers
                has_mom = "momentum_buffer" in g["names"]
                centered = "grad_avg" in g["names"]
                cg.head.append(f"if ({grp}['momentum'] > 0.0) is not {has_mom} or "
                               f"{grp}['centered'] is not {centered}: raise _Retrace")
                mb = cg.name(sb["momentum_buffer"], "SB") if has_mom else "None"
                ga = cg.name(sb["grad_avg"], "SB") if centered else "None"
                cg.emit(f"_RMS_UPDATE(_np, {base}, {gbuf}, {cg.name(sb['square_avg'], 'SB')}, "
                        f"{mb}, {ga}, float({grp}['lr']), {grp}['alpha'], {grp}['eps'], "
                        f"{grp}['weight_decay'], {grp}['momentum'], {grp}['maximize'])")
                cg.ns["_RMS_UPDATE"] = rmsprop_update
                self._count_steps(b, g)
            elif self.kind is Adagrad:
                st0 = cg.name(g["states"][0], "ST")
                sb = g["layout"].state_buffers
                cg.emit(f"_clr = float({grp}['lr']) / (1.0 + {st0}['step'] * "
                        f"{grp}['lr_decay'])")
                cg.emit(f"_ADAGRAD_UPDATE(_np, {base}, {gbuf}, {cg.name(sb['sum'], 'SB')}, "
                        f"_clr, {grp}['eps'], {grp}['weight_decay'], {grp}['maximize'])")
                cg.ns["_ADAGRAD_UPDATE"] = adagrad_update
                self._count_steps(b, g)
            vers = cg.name([p._version for p in g["params"]], "VER")
            cg.emit(f"for _v in {vers}: _v[0] += 1")

    def _count_steps(self, b: Any, g: dict[str, Any]) -> None:
        cg = b.cg
        sts = cg.name(g["states"], "STS")
        st0 = cg.name(g["states"][0], "ST")
        cg.emit(f"_t = {st0}['step'] + 1")
        cg.emit(f"for _st in {sts}: _st['step'] = _t")
        # the state dicts are the plan's: a load_state_dict replaces them (guarded above)
        for p, st in zip(g["params"], g["states"]):
            cg.head.append(f"if {cg.name(self.opt, 'O')}.state.get({cg.name(p, 'L')}) is not "
                           f"{cg.name(st, 'ST')}: raise _Retrace")


def _state_names(opt: Any, group: dict[str, Any]) -> tuple[str, ...] | None:
    from ..optim import SGD, Adagrad, Adam, AdamW, RMSprop

    kind = type(opt)
    if kind is SGD:
        return ("momentum_buffer",) if group["momentum"] != 0.0 else ()
    if kind in (Adam, AdamW):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())
    if kind is RMSprop:
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0.0 else ()) + \
            (("grad_avg",) if group["centered"] else ())
    if kind is Adagrad:
        return ("sum",)
    return None


def _only_set(tr: Any, slot: int, opt_index: int) -> bool:
    """Whether ``slot`` is a VJP's output that reaches the optimizer only through a
    ``grad_set`` (no copy) of one leaf: the producer may then write it in place."""
    s = tr.slots[slot]
    if s.kind != "temp" or tr.ops[s.producer].kind != "vjp":
        return False
    for j in range(s.producer + 1, len(tr.ops)):
        op = tr.ops[j]
        if op.kind == "grad_set" and op.a.slot == slot and not op.copy:
            continue
        if op.kind in ("opt", "clip_norm", "clip_value", "zero_grad"):
            continue  # (they read p.grad: the same array)
        for field in ("ins", "params", "args", "g", "a", "b", "src"):
            v = getattr(op, field, None)
            if _mentions(v, slot):
                return False
    return True


def _mentions(enc: Any, slot: int) -> bool:
    if isinstance(enc, Ref):
        return enc.slot == slot
    if isinstance(enc, (tuple, list)):
        return any(_mentions(e, slot) for e in enc)
    if isinstance(enc, dict):
        return any(_mentions(e, slot) for e in enc.values())
    return False


def bind_fused(cg: Any) -> None:
    """Bind the fused loops that the plan's lines call (each compiled at its first use)."""
    from . import fused

    if not fused.AVAILABLE:
        return
    text = "\n".join(cg.head + cg.lines)
    for name in fused._SOURCES:
        if f"_{name}(" in text:
            cg.ns[f"_{name}"] = fused.get(name)


def namespace() -> dict[str, Any]:
    """The NumPy callables the kernels' lines use, bound once."""
    return dict(_dot=np.dot, _add=np.add, _subtract=np.subtract, _multiply=np.multiply,
                _divide=np.divide, _maximum=np.maximum, _tanh=np.tanh, _exp=np.exp,
                _log=np.log, _abs=np.abs, _negative=np.negative, _square=np.square,
                _greater=np.greater, _greater_equal=np.greater_equal, _copyto=np.copyto,
                _take=np.take, _maxred=np.maximum.reduce, _addred=np.add.reduce,
                _asarray=np.asarray, _u64=np.uint64, _isfinite=math.isfinite)
