"""``backward`` while tracing: ``chainrule.autograd.backward``'s walk, step for step, recording
each VJP and each piece of gradient bookkeeping as an op of the trace.

The walk must be the eager one exactly -- the same node order, the same sums in the same order --
or the replayed gradients would round differently; so this is that function with recording added
(``tests/test_compile.py`` checks the two against each other on graphs with shared nodes,
broadcasting, dtype casts and leaves used twice).
"""

from __future__ import annotations

from typing import Any

from .. import autograd
from ..autograd import Node, _array, _conform, _count_consumers, _has_repeats, _repeated, _seed
from ..errors import GraphError
from .trace import Op, Ref, Tracer


def traced_backward(tr: Tracer, root: Any, grad: Any, retain_graph: bool) -> None:
    if not root._requires_grad:
        autograd.backward(root, grad, retain_graph)  # raises its error
        return
    seed = _seed(root, grad)
    if grad is None:
        idx = tr.add_op(Op("seed", grad=None, shape=seed.shape, dtype=seed.dtype))
    else:
        g_enc = tr.encode(grad.data if hasattr(grad, "_node") else grad)
        idx = tr.add_op(Op("seed", grad=g_enc, shape=seed.shape, dtype=seed.dtype))
    tr.ops[idx].outs = [tr.produce(seed, idx)]
    seed_ref = Ref(tr.ops[idx].outs[0])
    refs: dict[int, Ref] = {id(seed): seed_ref}  # id(array) -> its Ref, for this walk
    keep: list[Any] = [seed]

    def ref_of(a: Any) -> Ref:
        r = refs.get(id(a))
        if r is None:
            r = Ref(tr.slot_of(a))
            refs[id(a)] = r
            keep.append(a)
        return r

    start = root._node
    if start is None:  # a leaf: its gradient is the seed itself (copied)
        _leaf_grad(tr, root, seed, seed_ref, copy=True)
        return
    if start not in tr.node_op:
        tr.fail("backward through a graph that was recorded before the step began")
        autograd.backward(root, grad, retain_graph)
        return
    pending = _count_consumers(start)
    for node in pending:
        if node not in tr.node_op:
            tr.fail("backward reaches a graph node recorded before the step began")
            autograd.backward(root, grad, retain_graph)
            return

    grads: dict[Node, Any] = {start: seed}
    ready = [start]
    while ready:
        node = ready.pop()
        g = grads.pop(node, None)
        parents = node.parents
        repeats = None
        if g is None:
            in_grads: tuple[Any, ...] = (None,) * len(parents)
        else:
            if node.retained is not None:
                tr.fail("retain_grad() inside the step")
                owner = node.retained()
                if owner is not None:
                    autograd._accumulate(owner, g, copy=True)
            node.final = not retain_graph
            in_grads = node.prim.vjp(node, g)
            if len(in_grads) != len(parents):
                raise GraphError(f"{node.prim.name}: the VJP returned {len(in_grads)} "
                                 f"gradients for {len(parents)} inputs")
            op_idx = tr.add_op(Op("vjp", fwd=tr.node_op[node], g=ref_of(g),
                                  final=not retain_graph, n=len(in_grads)))
            outs: list[int | None] = []
            seen: dict[int, int] = {}
            for gi in in_grads:
                if gi is None:
                    outs.append(None)
                elif id(gi) in seen:
                    outs.append(seen[id(gi)])
                else:
                    s = tr.produce(gi, op_idx)
                    seen[id(gi)] = s
                    refs[id(gi)] = Ref(s)
                    keep.append(gi)
                    outs.append(s)
            tr.ops[op_idx].outs = outs
        if not retain_graph:
            node.saved = autograd._RELEASED
        for parent, gi in zip(parents, in_grads):
            if parent is None:
                continue
            if type(parent) is Node:
                if gi is not None:
                    if gi.shape != parent.shape or gi.dtype != parent.dtype:
                        gi = _conformed(tr, ref_of, keep, refs, gi, parent.shape, parent.dtype)
                    have = grads.get(parent)
                    if have is None:
                        grads[parent] = gi
                    else:
                        total = have + gi
                        i = tr.add_op(Op("add", a=ref_of(have), b=ref_of(gi)))
                        s = tr.produce(total, i)
                        tr.ops[i].outs = [s]
                        refs[id(total)] = Ref(s)
                        keep.append(total)
                        grads[parent] = total
                left = pending[parent] - 1
                pending[parent] = left
                if left == 0:
                    ready.append(parent)
            elif gi is not None:
                data = parent.data
                if gi.shape != data.shape or gi.dtype != data.dtype:
                    gi = _conformed(tr, ref_of, keep, refs, gi, data.shape, data.dtype)
                if parent.grad is None:
                    gi = _array(gi)
                    shared = gi is g or gi.base is not None
                    if not shared and len(in_grads) > 1:
                        if repeats is None:
                            repeats = _has_repeats(in_grads)
                        shared = repeats and _repeated(gi, in_grads)
                    _leaf_grad(tr, parent, gi, ref_of(gi), copy=shared)
                else:
                    have_ref = tr.grad_ref(parent)
                    if have_ref is None:  # a .grad that the walk did not see being set
                        tr.fail("a gradient was set outside chainrule's operations")
                        have_ref = ref_of(parent.grad)
                    total = _array(parent.grad + gi)
                    i = tr.add_op(Op("grad_acc", leaf=tr.leaf_ref(parent), a=have_ref,
                                     b=ref_of(gi)))
                    s = tr.produce(total, i)
                    tr.ops[i].outs = [s]
                    refs[id(total)] = Ref(s)
                    keep.append(total)
                    parent.grad = total
                    tr.grad_state[id(parent)] = Ref(s)
    tr.keep.extend(keep)


def _conformed(tr: Tracer, ref_of: Any, keep: list[Any], refs: dict[int, Ref], gi: Any,
               shape: tuple[int, ...], dtype: Any) -> Any:
    out = _conform(gi, shape, dtype)
    if out is gi:
        return gi
    i = tr.add_op(Op("conform", a=ref_of(gi), shape=shape, dtype=dtype))
    s = tr.produce(out, i)
    tr.ops[i].outs = [s]
    refs[id(out)] = Ref(s)
    keep.append(out)
    return out


def _leaf_grad(tr: Tracer, leaf: Any, gi: Any, ref: Ref, copy: bool) -> None:
    """``leaf.grad`` from None to ``gi`` (a copy when ``copy``), or accumulated (a leaf root)."""
    state = tr.grad_ref(leaf)
    if leaf.grad is not None:  # (only a leaf root with a gradient already: _accumulate)
        total = _array(leaf.grad + gi)
        i = tr.add_op(Op("grad_acc", leaf=tr.leaf_ref(leaf), a=state, b=ref))
        s = tr.produce(total, i)
        tr.ops[i].outs = [s]
        leaf.grad = total
        tr.grad_state[id(leaf)] = Ref(s)
        return
    value = gi.copy() if copy else gi
    i = tr.add_op(Op("grad_set", leaf=tr.leaf_ref(leaf), a=ref, copy=copy))
    if copy:
        s = tr.produce(value, i)
    else:
        s = ref.slot
    tr.ops[i].outs = [s]
    leaf.grad = value
    tr.grad_state[id(leaf)] = Ref(s)
