"""On a GPU: the plan of an MLP training step captured once as a CUDA graph, replayed with one
launch.

Which steps: the fused network (``nn.MLP``'s ``mlp`` node) under softmax cross-entropy with
integer labels, its backward, and an :class:`~chainrule.optim.SGD` (any options), ``Adam`` or
``AdamW`` step over its parameters, with the optimizer's and the modules' ``zero_grad`` and the
Trainer's finite-loss check: the step of ``Trainer``, ``chainrule train`` and the benchmark.
Anything else (other losses, clipping, dropout, other optimizers) replays without a graph,
every op through its eager function (correct, with the eager step's host synchronisations).

How (CuPy's stream capture, ``cupy.cuda.Stream.begin_capture``/``end_capture``):

- the device work of the step is one generated function, ``_body``, on arrays that never move:
  a static copy of each input (each replay first copies the batch into it), the parameters and
  the optimizer's state (the plan's guards check they are still the arrays it captured), and
  buffers for everything in between (written with ``out=``);
- values that change from step to step without changing the graph are read from device memory,
  not baked into kernel arguments: the learning rate, Adam's ``lr / (1 - beta1^t)`` and
  ``sqrt(1 - beta2^t)``, AdamW's ``1 - lr wd``. The host computes them (as the eager update does,
  in Python floats) and uploads them before each launch; a 0-d array of the parameters' dtype
  rounds them exactly as the eager code's Python floats are rounded, so the numbers are the
  eager step's. Options that shape the update (momentum, Nesterov, weight decay, maximize,
  amsgrad, betas, eps) are constants of the graph, guarded at each replay (a change retraces);
- nothing in ``_body`` reads a value back to the host: the cross-entropy's second pass for
  non-finite row maxima is always taken (``where(isfinite(m), m, 0)`` is ``m`` itself whenever
  the first pass would have been kept, so the numbers are the same), and the label range check
  and the finite-loss check become device flags -- the index of the first replay that failed --
  read every ``CHECK_EVERY`` replays and by ``CompiledStep.check()`` (the Trainer calls it after
  every epoch); a failure raises there, naming that replay;
- ``_body`` runs once before the capture (so that every CuPy kernel is compiled and loaded),
  with the parameters and the optimizer state copied before and restored after; during the
  warm-up and the capture every allocation is kept alive for the graph's lifetime (CuPy's pool
  would otherwise hand a temporary's memory, which the graph keeps writing, to someone else).

If CuPy refuses the capture (a driver without stream capture, an operation that cannot be
captured), the step replays without a graph, with a :class:`CompileWarning`.

The host side of a replay (guards, the input copies, the scalars, ``Graph.launch`` on the
current stream, then ``p.grad`` set to the gradient buffers, the optimizer's step counts and the
parameters' versions) is plain Python of a few microseconds: there is no synchronisation.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..ops.constants import cached_constant
from .codegen import CodeGen
from .trace import Ref

CHECK_EVERY = 256  # replays between two reads of the device flags


def _fn(f: Any) -> Any:
    return getattr(f, "__wrapped_traceable__", f)


def build(b: Any) -> Any:
    """A :class:`GraphPlan` for the trace of ``b`` (a ``plan.Builder``), or None."""
    try:
        return _Graph(b).build()
    except _NotCapturable:
        return None


class _NotCapturable(Exception):
    pass


class _Graph:
    def __init__(self, b: Any) -> None:
        self.b = b
        self.tr = b.tr
        self.cp = b.xp

    def no(self) -> None:
        raise _NotCapturable

    # ------------------------------------------------------------------ matching
    def _match(self) -> None:
        from ..nn.loss import _labels, _plain_labels
        from ..optim import SGD, Adam, AdamW
        from ..train import _loss_is_finite

        tr = self.tr
        self.mlp = self.ce = self.mlp_vjp = self.ce_vjp = self.seed = self.opt = None
        self.labels_src: int | None = None   # slot of the labels argument
        self.labels_out: list[int] = []      # slots the label pyfuncs produced
        self.finite: list[int] = []          # ops of the finite-loss check
        self.grad_sets: list[int] = []
        self.zero: list[int] = []
        for i, op in enumerate(tr.ops):
            k = op.kind
            if k == "zero_grad":
                if not op.set_to_none:
                    self.no()
                self.zero.append(i)
            elif k == "prim" and op.prim.name == "mlp" and self.mlp is None:
                self.mlp = i
            elif k == "prim" and op.prim.name == "cross_entropy" and self.ce is None:
                self.ce = i
            elif k == "pyfunc":
                fn = _fn(op.fn)
                if fn is _fn(_plain_labels) and op.pattern == [("value", None)]:
                    continue  # (None on a GPU: the general path follows)
                if fn is _fn(_labels) and op.pattern == [("array", None), ("value", None)]:
                    src = op.args[1] if len(op.args) > 1 else None
                    if not isinstance(src, Ref) or tr.slots[src.slot].kind != "input":
                        self.no()
                    self.labels_src = src.slot
                    self.labels_out.append(op.outs[0])
                    continue
                if fn is _fn(_loss_is_finite) and op.pattern == [("value", True)]:
                    self.finite.append(i)
                    continue
                self.no()
            elif k == "seed" and op.grad is None and self.seed is None:
                self.seed = i
            elif k == "vjp" and op.fwd == self.mlp and self.mlp_vjp is None:
                self.mlp_vjp = i
            elif k == "vjp" and op.fwd == self.ce and self.ce_vjp is None:
                self.ce_vjp = i
            elif k == "grad_set" and not op.copy:
                self.grad_sets.append(i)
            elif k == "opt" and self.opt is None:
                opt = op.optimizer
                if type(opt) not in (SGD, Adam, AdamW) or "step" in vars(opt):
                    self.no()
                self.opt = i
            else:
                self.no()
        if None in (self.mlp, self.ce, self.mlp_vjp, self.ce_vjp, self.seed, self.opt):
            self.no()
        if self.labels_src is None:
            self.no()
        mop, cop = tr.ops[self.mlp], tr.ops[self.ce]
        x = mop.ins[0]
        if not isinstance(x, Ref) or tr.slots[x.slot].kind != "input":
            self.no()
        if not all(isinstance(r, Ref) and tr.slots[r.slot].kind == "const"
                   and tr.slots[r.slot].tensor is not None for r in mop.ins[1:]):
            self.no()
        if (len(cop.ins) != 1 or cop.ins[0].slot != mop.outs[0] or cop.params[1] is not None
                or cop.params[2] not in ("mean", "sum")
                or not isinstance(cop.params[0], Ref)
                or cop.params[0].slot not in self.labels_out):
            self.no()
        if tr.ops[self.ce_vjp].g.slot != tr.ops[self.seed].outs[0]:
            self.no()
        if tr.ops[self.mlp_vjp].g.slot != tr.ops[self.ce_vjp].outs[0]:
            self.no()
        if not tr.ops[self.mlp_vjp].final:
            self.no()
        # the optimizer's parameters are the network's, each with its gradient from the VJP
        params = [tr.slots[r.slot].tensor for r in mop.ins[1:]]
        vouts = tr.ops[self.mlp_vjp].outs
        grad_of = {}
        for i in self.grad_sets:
            op = tr.ops[i]
            leaf = tr.leaves[op.leaf.index] if op.leaf.arg is None else None
            if leaf is None or op.a.slot not in vouts:
                self.no()
            grad_of[id(leaf)] = op.a.slot
        oop = tr.ops[self.opt]
        self.groups = []
        for group, entries in zip(oop.optimizer.param_groups, oop.groups):
            gparams = group["params"]
            for p, (_leaf, ref) in zip(gparams, entries):
                if ref is None or id(p) not in grad_of or ref.slot != grad_of[id(p)]:
                    self.no()
                if not any(p is q for q in params):
                    self.no()
            self.groups.append((group, gparams))
        if self.opt < self.mlp_vjp:
            self.no()

    # ------------------------------------------------------------------ build
    def build(self) -> Any:
        from .kernels import MLPKernel, _result_slots

        self._match()
        b, tr, cp = self.b, self.tr, self.cp
        host = self.host = b.cg                  # guards already in host.head
        body = CodeGen(0)
        body.ns.update(_cupy_namespace(cp))
        b.cg = body
        try:
            b.uses = {}
            result_slots = _result_slots(b.result)
            # static inputs
            xs = tr.ops[self.mlp].ins[0].slot
            x_arr = tr.slots[xs].array
            y_arr = tr.slots[self.labels_src].array
            if y_arr.dtype != np.int64 or y_arr.ndim != 1 or x_arr.ndim != 2:
                self.no()
            X = x_arr.copy()  # (the traced batch: the warm-up and capture read real values)
            Y = y_arr.copy()
            b.alias[xs] = body.name(X, "XS")
            self.ys = body.name(Y, "YS")
            for s in self.labels_out:
                b.alias[s] = self.ys
            # the network's forward
            mk = MLPKernel.make(b, self.mlp, tr.ops[self.mlp], self.mlp_vjp, set())
            if mk is None:
                self.no()
            # the gradients go to buffers of their own (static: p.grad is set to them)
            mk.emit(b, self.mlp, tr.ops[self.mlp])
            out_slot = tr.ops[self.mlp].outs[0]
            logits = b.var(out_slot)
            self._flags(body)
            loss_name, dx = self._cross_entropy(b, body, logits)
            for _ in self.finite:
                body.emit(f"_isfinite({loss_name}, {self.ok})")
                self._flag(body, self.ok, self.first_nonfinite)
            b.alias[tr.ops[self.ce_vjp].outs[0]] = dx
            mk.emit(b, self.mlp_vjp, tr.ops[self.mlp_vjp])
            grads = {}
            for i in self.grad_sets:
                op = tr.ops[i]
                grads[id(tr.leaves[op.leaf.index])] = (tr.leaves[op.leaf.index], b.var(op.a.slot))
            scalars = self._optimizer(b, body, grads)
            body.emit(f"_add({self.step}, 1, {self.step})")
            body_fn, body_src = body.compile("None", "cuda graph body")
        finally:
            b.cg = host
        # outputs: fresh copies of the static results
        res_names: dict[int, str] = {}
        for s in result_slots:
            if s == tr.ops[self.ce].outs[0]:
                res_names[s] = host.name(body.ns[loss_name], "OUT")
            elif s == out_slot and logits in body.ns:
                res_names[s] = host.name(body.ns[logits], "OUT")
            else:
                self.no()  # (a step returning anything else replays without a graph)
        for s, nm in res_names.items():
            b.alias[s] = f"{nm}.copy()"
        return self._host(b, host, body_fn, body_src, X, Y, grads, scalars)

    # ------------------------------------------------------------------ device flags
    def _flags(self, body: CodeGen) -> None:
        cp = self.cp
        self.step = body.name(cp.zeros((), cp.int64), "STEP")
        self.first_label = body.name(cp.zeros((), cp.int64), "BADLABEL")
        self.first_nonfinite = body.name(cp.zeros((), cp.int64), "NONFINITE")
        self.ok = body.name(cp.zeros((), cp.bool_), "OK")
        self.tmpb = body.name(cp.zeros((), cp.bool_), "TB")
        self.zero_i = body.name(cp.zeros((), cp.bool_), "TB2")

    def _flag(self, body: CodeGen, ok: str, first: str) -> None:
        """``first`` = the current replay's index (STEP + 1) when ``ok`` is False and
        ``first`` is still 0."""
        body.emit(f"_equal({first}, 0, {self.tmpb})")
        body.emit(f"_logical_not({ok}, {self.zero_i})")
        body.emit(f"_logical_and({self.tmpb}, {self.zero_i}, {self.tmpb})")
        body.emit(f"_copyto({first}, {self.step} + 1, where={self.tmpb})")

    # ------------------------------------------------------------------ the loss
    def _cross_entropy(self, b: Any, body: CodeGen, logits: str) -> tuple[str, str]:
        """``CrossEntropy.forward``/``vjp`` without reading anything back (module docstring)."""
        cp, tr = self.cp, self.tr
        cop = tr.ops[self.ce]
        x = tr.slots[cop.ins[0].slot].array
        n, c = x.shape
        dt = x.dtype
        reduction = cop.params[2]
        Y = self.ys
        # labels in range (as nn.loss._labels checks them): a device flag
        lmax = body.name(cp.zeros((), cp.uint64), "LMAX")
        body.emit(f"_amax({Y}.view(_u64), None, {lmax})")
        body.emit(f"_less({lmax}, {c}, {self.ok})")
        self._flag(body, self.ok, self.first_label)
        fl = body.name(cp.empty(n, cp.int64), "FL")
        body.emit(f"_add({Y}, {body.name(cached_constant(cp, 'offsets', n, c, cp.int64), 'OFF')}, "
                  f"{fl})")
        if not x.flags.c_contiguous:
            xc = body.name(cp.empty((n, c), dt), "B")
            body.emit(f"_copyto({xc}, {logits})")
            logits = xc
        m = body.name(cp.empty((n, 1), dt), "B")
        mok = body.name(cp.empty((n, 1), cp.bool_), "B")
        body.emit(f"_amax({logits}, 1, {m}, True)")
        body.emit(f"_isfinite({m}, {mok})")
        body.emit(f"_logical_not({mok}, {mok})")
        body.emit(f"_copyto({m}, 0, where={mok})")
        zbuf = cp.empty((n, c), dt)
        z, zf = body.name(zbuf, "Z"), body.name(zbuf.reshape(-1), "ZF")
        pick = body.name(cp.empty(n, dt), "B")
        body.emit(f"_subtract({logits}, {m}, {z})")
        body.emit(f"_take({zf}, {fl}, None, {pick})")
        body.emit(f"_exp({z}, {z})")
        sbuf = cp.empty(n, dt)
        s, s2 = body.name(sbuf, "B"), body.name(sbuf.reshape(-1, 1), "B")
        body.emit(f"_dot({z}, {body.name(cached_constant(cp, 'ones', 0, c, dt), 'ONE')}, {s})")
        lossv = body.name(cp.empty(n, dt), "B")
        body.emit(f"_log({s}, {lossv})")
        body.emit(f"_subtract({lossv}, {pick}, {lossv})")
        total = body.name(cp.empty((), dt), "B")
        body.emit(f"_sum({lossv}, None, None, {total})")
        out = body.name(cp.empty((), dt), "LOSS")
        if reduction == "mean":
            body.emit(f"_divide({total}, {float(n)!r}, {out})")
        else:
            body.emit(f"_copyto({out}, {total})")
        body.emit(f"_divide({z}, {s2}, {z})")  # the softmax, for the VJP
        # VJP: scale = 1 / n (the seed 1 and the mean), dx = p scale, dx[y] -= scale
        one = np.ones((), dt)
        scale = one[()] / float(n) if reduction == "mean" else one[()]
        sc = body.name(scale, "SC")
        dxbuf = cp.empty((n, c), dt)
        dx, dxf = body.name(dxbuf, "DX"), body.name(dxbuf.reshape(-1), "DXF")
        body.emit(f"_multiply({z}, {sc}, {dx})")
        body.emit(f"{dxf}[{fl}] -= {sc}")
        return out, dx

    # ------------------------------------------------------------------ the update
    def _optimizer(self, b: Any, body: CodeGen, grads: dict[int, tuple[Any, str]]
                   ) -> list[tuple[str, str, Any]]:
        """Per parameter, the update of ``sgd_update``/``adam_update`` with the step's
        scalars read from device memory. Returns [(host expression, dtype, device name)]."""
        from ..optim import SGD, AdamW

        cp, tr = self.cp, self.tr
        opt = tr.ops[self.opt].optimizer
        kind = type(opt)
        scalars: list[tuple[str, Any, str]] = []
        self.opt_checks: list[str] = []
        self.state_names: list[tuple[Any, dict[str, Any]]] = []

        seen: dict[tuple[str, Any], str] = {}

        def scalar(expr: str, dtype: Any) -> str:
            key = (expr, np.dtype(dtype))
            if key not in seen:
                arr = cp.zeros((), dtype)
                seen[key] = body.name(arr, "DS")
                scalars.append((expr, dtype, seen[key]))
            return seen[key]

        for gi, (group, params) in enumerate(self.groups):
            grp = self.host.name(group, "GR")  # (the host's namespace)
            for p in params:
                P = body.name(p.data, "P")
                G = grads[id(p)][1]
                dt = p.data.dtype
                tmp = body.name(cp.empty_like(p.data), "TMP")
                st = opt.state.get(p)
                if kind is SGD:
                    mom, damp, nest = group["momentum"], group["dampening"], group["nesterov"]
                    wd, maxi = group["weight_decay"], group["maximize"]
                    self._check_once(
                        f"{grp}['momentum'] != {mom!r} or {grp}['dampening'] != {damp!r} or "
                        f"{grp}['nesterov'] is not {nest} or {grp}['weight_decay'] != {wd!r} or "
                        f"{grp}['maximize'] is not {maxi}")
                    lr = scalar(f"float({grp}['lr'])", dt)
                    d = G
                    if wd or maxi:  # decayed_grad: wd * p -/+ g, a new array (ours)
                        dd = body.name(cp.empty_like(p.data), "B")
                        if wd:
                            body.emit(f"_multiply({P}, {wd!r}, {dd})")
                            body.emit(f"{'_subtract' if maxi else '_add'}({dd}, {G}, {dd})")
                        else:
                            body.emit(f"_negative({G}, {dd})")
                        d = dd
                    if mom != 0.0:
                        if st is None or "momentum_buffer" not in st:
                            self.no()
                        buf = body.name(st["momentum_buffer"], "SB")
                        self.state_names.append((p, {"momentum_buffer": st["momentum_buffer"]}))
                        body.emit(f"_multiply({buf}, {mom!r}, {buf})")
                        if damp == 0.0:
                            body.emit(f"_add({buf}, {d}, {buf})")
                        else:
                            body.emit(f"_multiply({d}, {1.0 - damp!r}, {tmp})")
                            body.emit(f"_add({buf}, {tmp}, {buf})")
                        if nest:
                            nd = body.name(cp.empty_like(p.data), "B")
                            body.emit(f"_multiply({buf}, {mom!r}, {nd})")
                            body.emit(f"_add({d}, {nd}, {nd})")
                            d = nd
                        else:
                            d = buf
                    body.emit(f"_multiply({d}, {lr}, {tmp})")
                    body.emit(f"_subtract({P}, {tmp}, {P})")
                else:  # Adam, AdamW: optim.adam.adam_update
                    decoupled = kind is AdamW
                    b1, b2 = group["betas"]
                    eps, wd, maxi, ams = (group["eps"], group["weight_decay"], group["maximize"],
                                          group["amsgrad"])
                    self._check_once(
                        f"{grp}['betas'] != {(b1, b2)!r} or {grp}['eps'] != {eps!r} or "
                        f"{grp}['weight_decay'] != {wd!r} or {grp}['maximize'] is not {maxi} or "
                        f"{grp}['amsgrad'] is not {ams}")
                    if st is None or "exp_avg" not in st or type(st.get("step")) is not int:
                        self.no()
                    self.state_names.append((p, st))
                    m = body.name(st["exp_avg"], "SB")
                    v = body.name(st["exp_avg_sq"], "SB")
                    g = G
                    if maxi or (wd and not decoupled):
                        gg = body.name(cp.empty_like(p.data), "B")
                        if wd and not decoupled:
                            body.emit(f"_multiply({P}, {wd!r}, {gg})")
                            body.emit(f"{'_subtract' if maxi else '_add'}({gg}, {G}, {gg})")
                        else:
                            body.emit(f"_negative({G}, {gg})")
                        g = gg
                    if decoupled and wd != 0.0:
                        shrink = scalar(f"1.0 - float({grp}['lr']) * {wd!r}", dt)
                        body.emit(f"_multiply({P}, {shrink}, {P})")
                    body.emit(f"_multiply({m}, {b1!r}, {m})")
                    body.emit(f"_multiply({g}, {1.0 - b1!r}, {tmp})")
                    body.emit(f"_add({m}, {tmp}, {m})")
                    body.emit(f"_multiply({v}, {b2!r}, {v})")
                    body.emit(f"_multiply({g}, {1.0 - b2!r}, {tmp})")
                    body.emit(f"_multiply({tmp}, {g}, {tmp})")
                    body.emit(f"_add({v}, {tmp}, {v})")
                    if ams:
                        vmax = body.name(st["max_exp_avg_sq"], "SB")
                        body.emit(f"_maximum({vmax}, {v}, out={vmax})")
                        v = vmax
                    st0 = self.host.name(st, "ST")
                    ss = scalar(f"float({grp}['lr']) / (1.0 - {b1!r} ** ({st0}['step'] + 1))", dt)
                    bc = scalar(f"_math.sqrt(1.0 - {b2!r} ** ({st0}['step'] + 1))", dt)
                    body.emit(f"_sqrt({v}, {tmp})")
                    body.emit(f"_divide({tmp}, {bc}, {tmp})")
                    body.emit(f"_add({tmp}, {eps!r}, {tmp})")
                    body.emit(f"_divide({m}, {tmp}, {tmp})")
                    body.emit(f"_multiply({tmp}, {ss}, {tmp})")
                    body.emit(f"_subtract({P}, {tmp}, {P})")
        self.kind = kind
        return scalars

    def _check_once(self, line: str) -> None:
        if line not in self.opt_checks:
            self.opt_checks.append(line)

    # ------------------------------------------------------------------ host side
    def _host(self, b: Any, host: CodeGen, body_fn: Any, body_src: str, X: Any, Y: Any,
              grads: dict[int, tuple[Any, str]], scalars: list[tuple[str, Any, str]]) -> Any:
        from ..optim import SGD
        from .api import CompileWarning

        cp, tr = self.cp, self.tr
        host.ns.update(_math=math, _copyto=cp.copyto, _np=np)
        xs = tr.ops[self.mlp].ins[0].slot
        xarg, yarg = tr.slots[xs].arg, tr.slots[self.labels_src].arg
        opt = tr.ops[self.opt].optimizer
        o = host.name(opt, "O")
        host.head.append(f"if {o}.state is not {host.name(opt.state, 'OSt')} or "
                         f"{o}.param_groups is not {host.name(opt.param_groups, 'OPG')}: "
                         "raise _Retrace")
        for chk in self.opt_checks:
            host.head.append(f"if {chk}: raise _Retrace")
        for p, st in self.state_names:
            host.head.append(f"if {o}.state.get({host.name(p, 'L')}) is not "
                             f"{host.name(opt.state[p], 'ST')}: raise _Retrace")
            for key, arr in st.items():
                if hasattr(arr, "shape"):
                    host.head.append(f"if {host.name(opt.state[p], 'ST')}[{key!r}] is not "
                                     f"{host.name(arr, 'SA')}: raise _Retrace")
        # (zero_grad's p.grad = None: the gradient buffers below replace them: only the end
        # of the step is seen)
        lines = host.lines
        for static, arg in ((X, xarg), (Y, yarg)):  # the batch into the captured inputs
            src = f"a{arg}.data" if b.arg_is_tensor[arg] else f"a{arg}"
            lines.append(f"_copyto({host.name(static, 'XS')}, {src})")
        # the step's scalars, uploaded in one copy per dtype
        by_dtype: dict[Any, list[tuple[str, str]]] = {}
        for expr, dt, name in scalars:
            by_dtype.setdefault(np.dtype(dt), []).append((expr, name))
        uploads = []
        self.upload_buffers: list[Any] = []
        for dt, items in by_dtype.items():
            hbuf = np.zeros(len(items), dt)
            dbuf = cp.zeros(len(items), dt)
            hn, dn = host.name(hbuf, "HS"), host.name(dbuf, "DSB")
            for k, (expr, name) in enumerate(items):
                lines.append(f"{hn}[{k}] = {expr}")
                # the body reads the 0-d view: rebind its name to the view of the upload buffer
                uploads.append((name, dbuf[k:k + 1].reshape(())))
            lines.append(f"{dn}.set({hn})")
            self.upload_buffers.append(dbuf)
        graph_holder: dict[str, Any] = {}
        host.ns["_G"] = graph_holder
        lines.append("_launch()")
        for _pid, (p, g) in grads.items():
            lines.append(f"{host.name(p, 'L')}.grad = {host.name(body_fn.__globals__[g], 'GS')}")
        if type(opt) is not SGD:
            sts = [st for _p, st in self.state_names]
            lines.append(f"_t = {host.name(sts[0], 'ST')}['step'] + 1")
            lines.append(f"for _st in {host.name(sts, 'STS')}: _st['step'] = _t")
        vers = [p._version for _g, ps in self.groups for p in ps]
        lines.append(f"for _v in {host.name(vers, 'VER')}: _v[0] += 1")
        lines.append("_after()")
        # the body's scalar names -> the views of the upload buffers
        for name, view in uploads:
            body_fn.__globals__[name] = view
        result = b.expr(b.result)
        fn, src = host.compile(result, "cuda graph host")
        plan = GraphPlan(fn, src + "\n# --- captured body ---\n" + body_src, tr, b.info,
                         body_fn, self, opt)
        try:
            plan.capture()
        except Exception as exc:  # noqa: BLE001 - no capture: replay without a graph
            warnings.warn(f"cr.compile: the CUDA graph capture failed ({type(exc).__name__}: "
                          f"{exc}); the step replays without a graph", CompileWarning,
                          stacklevel=2)
            plan.graph = None
        return plan


class GraphPlan:
    """A plan whose device work is one CUDA graph (see the module docstring)."""

    def __init__(self, fn: Any, source: str, tr: Any, info: dict[str, Any], body: Any,
                 g: _Graph, opt: Any) -> None:
        self.fn = fn
        self.source = source
        self.info = dict(info, cuda_graph=True)
        self.body = body
        self.graph = None
        self.kept: list[Any] = []
        self.replays = 0
        self.cp = g.cp
        ns = body.__globals__
        self.flags = [ns[g.step], ns[g.first_label], ns[g.first_nonfinite]]
        self.upload_buffers = g.upload_buffers
        self.mutable = self._mutable(g, opt)  # (no reference to the trace is kept)
        fn.__globals__["_launch"] = self._launch
        fn.__globals__["_after"] = self._after

    @staticmethod
    def _mutable(g: _Graph, opt: Any) -> list[Any]:
        """The arrays a replay changes (restored after the warm-up run)."""
        arrays = []
        for _grp, params in g.groups:
            for p in params:
                arrays.append(p.data)
                for v in opt.state.get(p, {}).values():
                    if hasattr(v, "shape"):
                        arrays.append(v)
        return arrays

    def _flags(self) -> list[Any]:
        return self.flags

    def capture(self) -> None:
        cp = self.cp
        pool = cp.get_default_memory_pool()
        previous = cp.cuda.get_allocator() if hasattr(cp.cuda, "get_allocator") else None
        kept = self.kept

        def keeping(size: int) -> Any:
            mem = pool.malloc(size)
            kept.append(mem)
            return mem

        cp.cuda.set_allocator(keeping)
        try:
            saved = [(a, a.copy()) for a in self.mutable + self._flags()]
            for buf in self.upload_buffers:
                buf.fill(1)  # (harmless scalars for the warm-up: no division by zero)
            self.body()  # warm-up: every kernel compiled and loaded before the capture
            for a, copy in saved:
                a[...] = copy
            stream = cp.cuda.Stream(non_blocking=True)
            stream.wait_event(cp.cuda.get_current_stream().record())
            with stream:
                stream.begin_capture()
                try:
                    self.body()
                finally:
                    graph = stream.end_capture()
            stream.synchronize()
            for a, copy in saved:  # (nothing ran on a GPU; a stand-in that ran is undone)
                a[...] = copy
            self.graph = graph
            self._stream = stream
        finally:
            cp.cuda.set_allocator(previous if previous is not None else pool.malloc)

    def _launch(self) -> None:
        if self.graph is not None:
            self.graph.launch(stream=self.cp.cuda.get_current_stream())
        else:
            self.body()

    def _after(self) -> None:
        self.replays += 1
        if self.replays % CHECK_EVERY == 0:
            self.check()

    def check(self) -> None:
        """Read the device flags (a synchronisation) and raise for the first failed replay:
        InvalidValueError for a label out of range, FloatingPointError for a non-finite
        loss. Replays are counted from the plan's first (1)."""
        from ..errors import InvalidValueError

        step, bad_label, non_finite = (int(a.get()) for a in self._flags())
        del step
        if bad_label:
            self._reset()
            raise InvalidValueError(
                f"cross_entropy: class labels must lie in [0, C) for C classes; replay "
                f"{bad_label} of this compiled step had a label outside (checked on the GPU, "
                "read every few replays: the steps after it ran with it)")
        if non_finite:
            self._reset()
            raise FloatingPointError(f"the loss became non-finite at replay {non_finite} of "
                                     "this compiled step")

    def _reset(self) -> None:
        for a in self._flags()[1:]:
            a.fill(0)

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)


def _cupy_namespace(cp: Any) -> dict[str, Any]:
    def amax(a: Any, axis: Any, out: Any, keepdims: bool = False) -> Any:
        return cp.amax(a, axis=axis, out=out, keepdims=keepdims)

    def total(a: Any, axis: Any, dtype: Any, out: Any) -> Any:
        return cp.sum(a, axis=axis, dtype=dtype, out=out)

    return dict(_dot=cp.dot, _add=cp.add, _subtract=cp.subtract, _multiply=cp.multiply,
                _divide=cp.divide, _maximum=cp.maximum, _tanh=cp.tanh, _exp=cp.exp,
                _log=cp.log, _abs=cp.abs, _negative=cp.negative, _square=cp.square,
                _sqrt=cp.sqrt, _greater=cp.greater, _greater_equal=cp.greater_equal,
                _less=cp.less, _equal=cp.equal, _logical_not=cp.logical_not,
                _logical_and=cp.logical_and, _isfinite=cp.isfinite, _copyto=cp.copyto,
                _take=cp.take, _amax=amax, _sum=total, _u64=np.uint64)


__all__ = ["build", "GraphPlan", "CHECK_EVERY"]
