"""Multi-tensor ("flat") optimizer steps, for a parameter group that lives in one 1-D array.

A model may allocate its parameters as consecutive views of one 1-D array, in ``parameters()``
order and with no gaps (``W1`` of shape ``(out, in)``, ``b1``, ``W2``, ...; ``nn.MLP`` does).
An optimizer can then update the whole group with one pass of its update rule over that array:
the same ufuncs, but a handful of calls in all instead of a handful per parameter. On a small
network, where a step is mostly per-call overhead, that is most of the step (PyTorch's
``foreach``/fused optimizers and apex's flat buffers do the same).

Per parameter group and step, :func:`flat_step`:

1. finds the layout: every ``p.data`` a C-contiguous, writeable NumPy view of one 1-D base array,
   of the base's dtype, the views consecutive in group order and tiling the base exactly. This is
   computed once (byte offsets from ``__array_interface__``) and cached, keyed on the identity of
   the parameters and of their ``p.data`` arrays, so a step only checks ``p.data is view``; a
   rebound ``p.data`` (``.to()``, assignment) makes it look again;
2. gathers the gradients (independent arrays that backward made) into a 1-D scratch array of
   the optimizer's, one assignment per parameter into its cached view; ``p.grad`` is only read;
3. finds the optimizer state in flat arrays too: ``optimizer.state[p][name]`` holds views of them,
   so ``state_dict()`` keeps its per-parameter layout. State that is not such views (restored by
   ``load_state_dict``, or made by the per-parameter path) is copied into new flat arrays, and its
   entries rebound to their views.

The optimizer then applies its update rule to the flat arrays with the same ufuncs in the same
order as to one parameter (Adam, AdamW, RMSprop and Adagrad call one function for both; SGD's
per-parameter loop is :func:`~chainrule.optim.sgd.sgd_update` written inline). Elementwise IEEE
arithmetic does not depend on where an element sits in an array, so the result is bit-identical
to the per-parameter path. :meth:`FlatStep.finish` then counts the step in each parameter's
state and bumps each parameter's version.

The price is memory: the gathered gradients stay allocated between steps (one array of the
group's size per group), and the update's temporaries have the group's size instead of one
parameter's; a flat group has at most :data:`FLAT_MAX_BYTES` (256 KiB).

:func:`flat_step` returns None -- the caller takes the per-parameter path -- when the group is
not flat, too large to gain (:func:`flat_limit`) or not on NumPy (CuPy arrays take the
per-parameter path), when a parameter has no gradient this step (or one of another shape or
dtype), when some parameters have state and others none, or when their step counts differ (a
parameter skipped once keeps an Adam, RMSprop or Adagrad group on the per-parameter path from
then on; SGD counts no steps and goes flat again).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..tensor import Tensor
from ._axpy import axpy, bind, fused_loop

_ndarray = np.ndarray

# When the flat path pays. For a group of k parameters it saves the dispatch of (k - 1) x
# ``calls`` ufunc calls (``calls``: those of the per-parameter update under the group's options,
# from 2 for plain SGD to 13 for Adam), at most a microsecond each, and costs a fixed overhead
# (the checks) plus the gather: one more pass over the group's memory. So a group takes it when
#
#     nbytes <= min(FLAT_MAX_BYTES, FLAT_BYTES_PER_CALL * calls * (k - 2))
#
# never for one or two parameters (one layer: 0.89x to 1.02x below), and never past
# FLAT_MAX_BYTES either, where the per-parameter path won in every case measured (0.68x to
# 0.98x), the flat arrays presumably no longer staying in the caches between passes.
#
# Measured: per-parameter time / flat time per step, with the flat path forced (interleaved
# runs, best of 15; a 2-core x86 VM under load, NumPy 2.4, float32; groups shaped like MLPs,
# W (out, in) and b per layer; default options). Below each column, the limit this rule gives:
#
#   layers          k   KiB     SGD  SGD-mom   Adam  RMSprop Adagrad
#   64-64           2    16    0.89   0.93   0.97   1.01   0.94
#   128-128         2    64    0.92   0.89   1.00   1.00   1.02
#   32-32-10        4     5    1.09   1.25   2.01   1.76   1.57
#   64-64-10        4    19    1.10   1.16   1.71   1.50   1.45
#   96-96-10        4    40    1.01   1.11   1.52   1.36   1.30
#   128-128-10      4    70    0.89   1.04   1.33   1.23   1.16
#   160-160-10      4   107    0.89   0.99   1.23   1.12   1.03
#   192-192-10      4   152    0.88   0.89   1.13   1.10   1.06
#   784-64-10       4   199    0.91   0.95   1.04   1.01   0.95
#   256-256-10      4   267    0.80   0.70   0.96   0.92   0.94
#   784-128-10      4   398    0.77   0.68   0.92   0.88   0.82
#   784-256-10      4   795    0.81   0.68   0.83   0.82   0.75
#   64-64-64-10     6    35    1.17   1.29   1.74   1.70   1.46
#   96-96-96-10     6    76    1.01   1.15   1.61   1.42   1.34
#   128-128-128-10  6   134    0.95   1.12   1.35   1.28   1.29
#   160-160-160-10  6   208    0.88   0.97   1.16   1.13   1.13
#   192-192-192-10  6   297    0.77   0.84   0.98   0.98   0.92
#   calls                         2      4     13      9      7
#   limit (KiB), k = 4           32     64    208    144    112
#   limit (KiB), k = 6           64    128    256    256    224
#
# The break-even sits at about 8 KiB per call and per saved parameter, whatever the optimizer
# (the limits are a little on the safe side); in bytes, not elements, as the gather costs its
# bytes: float64 breaks even at the same KiB (Adam, k = 4: 1.14x at 139 KiB, 0.99x at 214 KiB;
# SGD: 1.02x at 11 KiB, 0.92x at 38 KiB).
FLAT_BYTES_PER_CALL = 8192
FLAT_MAX_BYTES = 256 * 1024


def flat_limit(calls: int, n_params: int) -> int:
    """The most bytes a group of ``n_params`` flat parameters may have to take the flat path,
    for an update of ``calls`` ufunc calls per parameter (see the table above)."""
    return min(FLAT_MAX_BYTES, FLAT_BYTES_PER_CALL * calls * (n_params - 2))


class FlatLayout:
    """Where a parameter group's arrays sit in one 1-D array (or that they do not).

    Attributes:
        params: the group's parameters, as a tuple (compared by identity).
        datas: their ``data`` arrays when the layout was found (compared by identity).
        shapes: the shapes of ``datas``.
        base: the 1-D array that ``datas`` tile, shape ``(n,)`` with ``n`` the group's total
            size; None when the group is not flat.
        bounds: ``(start, stop)`` of each parameter in ``base``: ``datas[i]`` is
            ``base[start:stop].reshape(params[i].shape)``.
        state_buffers: state name -> its flat array, shape ``(n,)``.
        state_views: state name -> the views of it, one per parameter, that
            ``optimizer.state[p][name]`` should be.
        grad_buffer: the scratch array, shape ``(n,)``, that gradients are gathered into.
        grad_views: its views, one per parameter.
        updates: ``id(x)`` -> ``(x, f)``, ``f(alpha)`` doing ``base <- base + alpha x`` rounded
            once (``optim._axpy.bind``), for the arrays ``x`` above, which stay.
    """

    __slots__ = ("params", "datas", "shapes", "base", "bounds", "state_buffers", "state_views",
                 "grad_buffer", "grad_views", "updates")

    def __init__(self, params: tuple[Tensor, ...]) -> None:
        self.params = params
        self.datas = tuple(p.data for p in params)
        self.shapes = tuple(d.shape for d in self.datas)
        self.base: np.ndarray | None = None
        self.bounds: list[tuple[int, int]] = []
        self.state_buffers: dict[str, np.ndarray] = {}
        self.state_views: dict[str, tuple[np.ndarray, ...]] = {}
        self.grad_buffer: np.ndarray | None = None
        self.updates: dict[int, tuple[np.ndarray, Any]] = {}
        self.grad_views: tuple[np.ndarray, ...] | None = None

    def matches(self, params: list[Tensor]) -> bool:
        """Whether ``params`` are still the same tensors with the same ``data`` arrays."""
        if len(params) != len(self.params):
            return False
        for p, q, d in zip(params, self.params, self.datas):
            if p is not q or p.data is not d:
                return False
        return True

    def views_of(self, flat: np.ndarray) -> tuple[np.ndarray, ...]:
        """``flat`` (shape ``(n,)``) cut into one view per parameter, of its shape."""
        return tuple(flat[a:b].reshape(d.shape) for (a, b), d in zip(self.bounds, self.datas))


def find_layout(params: list[Tensor]) -> FlatLayout:
    """The layout of ``params`` (``base`` None unless they tile one 1-D NumPy array)."""
    layout = FlatLayout(tuple(params))
    if len(params) < 2:
        return layout  # one parameter: the per-parameter path is already one pass
    base = params[0].data.base
    if (type(base) is not np.ndarray or base.ndim != 1 or not base.flags.c_contiguous
            or not base.flags.writeable):
        return layout
    dtype, itemsize = base.dtype, base.dtype.itemsize
    start = base.__array_interface__["data"][0]
    offset = 0
    bounds = []
    for a in layout.datas:
        if (type(a) is not np.ndarray or a.base is not base or a.dtype != dtype
                or not a.flags.c_contiguous or not a.flags.writeable
                or a.__array_interface__["data"][0] - start != offset * itemsize):
            return layout
        bounds.append((offset, offset + a.size))
        offset += a.size
    if offset != base.size:
        return layout
    layout.base, layout.bounds = base, bounds
    return layout


class FlatCache:
    """An optimizer's flat-path bookkeeping: the layout of each group, how many group steps took
    the flat path (``steps``), and a switch (``enabled``); the last two for tests and
    benchmarks."""

    __slots__ = ("layouts", "steps", "enabled")

    def __init__(self) -> None:
        self.layouts: dict[int, FlatLayout] = {}  # id(group["params"]) -> its layout
        self.steps = 0
        self.enabled = True

    def layout(self, params: list[Tensor], groups: list[dict[str, Any]]) -> FlatLayout:
        """The cached layout of a group's ``params`` list, found again when it changed."""
        layout = self.layouts.get(id(params))
        if layout is None or not layout.matches(params):
            layout = self.layouts[id(params)] = find_layout(params)
            if len(self.layouts) > len(groups):  # a group's list was replaced: drop the old one
                live = {id(g["params"]) for g in groups}
                for key in [k for k in self.layouts if k not in live]:
                    del self.layouts[key]
        return layout


class FlatStep:
    """One flat step of a group: the arrays to update, and :meth:`finish` to call after.

    Attributes:
        param: the parameters' base array, shape ``(n,)``; updating it updates every ``p.data``.
        grad: the gathered gradients, shape ``(n,)`` (the optimizer's scratch array).
        state: state name -> flat array of shape ``(n,)``, or None when no parameter has state
            yet (the optimizer makes it and hands it to :meth:`attach`).
        step: the parameters' common step count before this step (0 when ``state`` is None, or
            when the optimizer counts no steps).
    """

    __slots__ = ("param", "grad", "state", "step", "_layout", "_opt_state", "_cache")

    def __init__(self, layout: FlatLayout, grad: np.ndarray, state: dict[str, np.ndarray] | None,
                 step: int, opt_state: dict[Tensor, dict[str, Any]], cache: FlatCache) -> None:
        self.param = layout.base
        self.grad = grad
        self.state = state
        self.step = step
        self._layout = layout
        self._opt_state = opt_state
        self._cache = cache

    def attach(self, flat_state: dict[str, np.ndarray], counts_steps: bool) -> None:
        """Make each parameter's state: ``{"step": 0}`` (if ``counts_steps``) then, per name in
        ``flat_state``'s order, the parameter's view of that flat array (shape ``(n,)``)."""
        layout = self._layout
        for name, flat in flat_state.items():
            layout.state_buffers[name] = flat
            layout.state_views[name] = layout.views_of(flat)
        for i, p in enumerate(layout.params):
            st: dict[str, Any] = {"step": 0} if counts_steps else {}
            for name in flat_state:
                st[name] = layout.state_views[name][i]
            self._opt_state[p] = st
        self.state = dict(flat_state)

    def add_scaled(self, alpha: float, x: np.ndarray) -> None:
        """``param <- param + alpha x``, each element rounded once (``optim._axpy``). For ``x``
        the gathered gradients or a flat state array, the update's plan (addresses, the BLAS
        prefix, its padded scratch) is made once and kept on the layout."""
        layout = self._layout
        kept = layout.updates.get(id(x))
        if kept is None or kept[0] is not x:
            if x is not layout.grad_buffer and not any(
                    x is b for b in layout.state_buffers.values()):
                axpy(alpha, x, layout.base)  # (an array of this step only)
                return
            kept = layout.updates[id(x)] = (x, bind(x, layout.base, fused_loop()))
        kept[1](alpha)

    def counted_state(self, names: tuple[str, ...], fill: float = 0.0) -> dict[str, np.ndarray]:
        """The flat state of an optimizer that counts steps, made (arrays of ``fill``, attached)
        at the group's first step."""
        if self.state is None:
            self.attach({name: np.full_like(self.param, fill) for name in names},
                        counts_steps=True)
        return self.state

    def finish(self, counts_steps: bool) -> None:
        """Set each parameter's ``state[p]["step"]`` to ``step + 1`` (if ``counts_steps``) and bump
        its version."""
        if counts_steps:
            t = self.step + 1
            for p in self._layout.params:
                self._opt_state[p]["step"] = t
        for p in self._layout.params:
            p.bump_version()
        self._cache.steps += 1


def flat_step(optimizer: Any, group: dict[str, Any], state_names: tuple[str, ...],
              counts_steps: bool, calls: int) -> FlatStep | None:
    """A :class:`FlatStep` for ``group`` of ``optimizer``, or None for the per-parameter path.

    Args:
        optimizer: the optimizer (its ``state`` and its :class:`FlatCache` ``_flat`` are used).
        group: one of its parameter groups.
        state_names: the arrays each parameter's state holds under the group's options (for
            example ``("exp_avg", "exp_avg_sq")``); state that lacks one takes the
            per-parameter path, which says what is wrong.
        counts_steps: whether the state has an int ``"step"``; all must be equal.
        calls: about how many ufunc calls the per-parameter path makes per parameter under
            the group's options (what the flat path saves, see :data:`FLAT_BYTES_PER_CALL`).
    """
    params = group["params"]
    if not params or params[0].data.base is None:
        return None  # the common case of separate arrays, at the cost of one attribute
    cache = optimizer._flat
    layout = cache.layouts.get(id(params))
    if layout is None or layout.base is None or len(params) != len(layout.params):
        layout = cache.layout(params, optimizer.param_groups)  # new, or not flat last time
    base = layout.base
    if base is None or not cache.enabled or base.nbytes > flat_limit(calls, len(params)):
        return None

    # the same tensors and data arrays as when the layout was found, and every gradient present,
    # of its parameter's shape and dtype, copied into its place in the scratch array (one loop:
    # it runs at every step; copying into cached views beats one concatenate call)
    dtype = base.dtype
    grad_views = layout.grad_views
    if grad_views is None:
        layout.grad_buffer = np.empty_like(base)
        grad_views = layout.grad_views = layout.views_of(layout.grad_buffer)
    for p, q, d, shape, gv in zip(params, layout.params, layout.datas, layout.shapes, grad_views):
        if p is not q or p.data is not d:
            del cache.layouts[id(params)]  # changed: find the layout again
            return flat_step(optimizer, group, state_names, counts_steps, calls)
        g = p.grad
        if (type(g) is not _ndarray or g.shape != shape  # (None is no ndarray)
                or (g.dtype is not dtype and g.dtype != dtype)):
            return None
        gv[...] = g

    # the state: none yet, or all present with one step count and (made) views of flat arrays
    step = 0
    flat_state: dict[str, np.ndarray] | None = None
    if state_names or counts_steps:
        opt_state = optimizer.state
        if opt_state.get(params[0]) is None:
            for p in params:
                if p in opt_state:
                    return None
        else:
            step = _state_in_flat_arrays(opt_state, layout, state_names, counts_steps)
            if step is None:
                return None
            flat_state = {name: layout.state_buffers[name] for name in state_names}

    return FlatStep(layout, layout.grad_buffer, flat_state, step, optimizer.state, cache)


def _state_in_flat_arrays(opt_state: dict[Tensor, dict[str, Any]], layout: FlatLayout,
                          state_names: tuple[str, ...], counts_steps: bool) -> int | None:
    """Check that every parameter has state, with one step count (returned; 0 when the state
    counts no steps), and that its ``state_names`` entries are views of the layout's flat arrays,
    gathering them into new ones where they are not; None (for the per-parameter path) when a
    parameter has no state, the step counts differ, or an entry cannot be gathered."""
    params = layout.params
    states = []
    step = 0
    for p in params:
        st = opt_state.get(p)
        if st is None:
            return None
        states.append(st)
    if counts_steps:
        step = states[0].get("step")
        if type(step) is not int:
            return None
        for st in states:
            if st.get("step") != step:
                return None
    views = layout.state_views
    for name in state_names:
        vs = views.get(name)
        if vs is not None:
            for st, v in zip(states, vs):
                if st.get(name) is not v:
                    break
            else:
                continue
        if not _gather_state(layout, states, name):
            return None
    return step


def _gather_state(layout: FlatLayout, states: list[dict[str, Any]], name: str) -> bool:
    """Copy each parameter's ``states[i][name]`` into a new flat array and rebind the entries to
    views of it; False (nothing changed) when one is missing or not of its parameter's shape and
    dtype."""
    arrays = [st.get(name) for st in states]
    dtype = layout.base.dtype
    for a, d in zip(arrays, layout.datas):
        if type(a) is not np.ndarray or a.shape != d.shape or a.dtype != dtype:
            return False
    flat = np.concatenate(arrays, axis=None)
    layout.state_buffers[name] = flat
    views = layout.state_views[name] = layout.views_of(flat)
    for st, v in zip(states, views):
        st[name] = v
    return True
