"""``report`` (training-step memory over a range of batch sizes, with and without checkpointing)
and ``plot_report``: the data and the picture of the ``chainrule memory`` command."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidValueError
from .guard import available_bytes
from .plan import _mlp_plan, _optimizer
from .step_model import _CATEGORIES, MemoryEstimate, _check_batch, _check_segments, _check_sizes, \
    _floating, _from_plan, _largest_batch
from .units import format_bytes, parse_bytes


@dataclass(frozen=True)
class ReportRow:
    """One batch size of a :class:`MemoryReport`: the step without and with checkpointing."""

    batch_size: int
    plain: MemoryEstimate
    checkpointed: MemoryEstimate


@dataclass(frozen=True)
class MemoryReport:
    """Training-step memory of one network over a range of batch sizes (see :func:`report`).

    Attributes:
        sizes: the layer widths, input first.
        activation, dtype, optimizer: as given.
        segments: checkpoint segments of the ``checkpointed`` column.
        rows: one :class:`ReportRow` per batch size, in the order given.
        budget: the budget in bytes, or None.
        max_batch, max_batch_checkpointed: the largest batch within ``budget`` without and with
            checkpointing (None without a budget; 0 when not even one sample fits).
    """

    sizes: tuple[int, ...]
    activation: str
    dtype: str
    optimizer: str
    segments: int
    rows: tuple[ReportRow, ...]
    budget: int | None
    max_batch: int | None
    max_batch_checkpointed: int | None

    def table(self) -> str:
        """The report as a plain-text table (what ``chainrule memory`` prints)."""
        k = self.segments
        head = ["batch", "parameters", "gradients", "optimizer", "activations", "peak",
                f"activations ckpt{k}", f"peak ckpt{k}"]
        body = []
        for r in self.rows:
            p, c = r.plain, r.checkpointed
            body.append([str(r.batch_size), format_bytes(p.parameters),
                         format_bytes(p.gradients), format_bytes(p.optimizer_state),
                         format_bytes(p.activations), format_bytes(p.peak),
                         format_bytes(c.activations), format_bytes(c.peak)])
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
        lines = [f"MLP {_sizes_label(self.sizes)} ({self.activation}, {self.dtype}), "
                 f"optimizer {self.optimizer}: training-step memory (tracemalloc bytes)",
                 "  ".join(h.rjust(w) for h, w in zip(head, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in body]
        lines.append("peak: the highest total during the step (the parts are never all alive "
                     "at once); activations: the most saved for backward at one moment")
        if self.budget is not None:
            lines.append(f"largest batch within {format_bytes(self.budget)}: {self.max_batch} "
                         f"without checkpointing, {self.max_batch_checkpointed} with {k} "
                         "checkpoint segments")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the whole report."""
        return {"sizes": list(self.sizes), "activation": self.activation, "dtype": self.dtype,
                "optimizer": self.optimizer, "segments": self.segments, "budget": self.budget,
                "max_batch": self.max_batch,
                "max_batch_checkpointed": self.max_batch_checkpointed,
                "rows": [{"batch_size": r.batch_size, "plain": r.plain.as_dict(),
                          "checkpointed": r.checkpointed.as_dict()} for r in self.rows]}


DEFAULT_BATCH_SIZES = (32, 128, 512, 2048, 8192)
"""The batch sizes :func:`report` (and ``chainrule memory``) sweeps when given none."""


def _sizes_label(sizes: Sequence[int]) -> str:
    """Layer widths with runs folded: [1024]*32 + [10] gives "1024x32-10"."""
    parts: list[str] = []
    i = 0
    while i < len(sizes):
        j = i
        while j < len(sizes) and sizes[j] == sizes[i]:
            j += 1
        parts.append(f"{sizes[i]}x{j - i}" if j - i > 2 else "-".join([str(sizes[i])] * (j - i)))
        i = j
    return "-".join(parts)


def report(hidden: Sequence[int], input_dim: int, classes: int,
           batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, *, activation: str = "relu",
           dtype: Any = "float32", optimizer: str = "sgd",
           checkpoint_segments: int | None = None, budget: int | str | None = None,
           dropout: float = 0.0) -> MemoryReport:
    """Estimated training-step memory of ``nn.MLP([input_dim, *hidden, classes])`` for each
    batch size, without and with activation checkpointing, and the largest batch within a budget.

    Nothing is allocated for the network: the estimate works from its sizes (see
    :func:`estimate_mlp`), so the report is arithmetic and answers at once for any sizes. It
    refuses a network whose parameters alone exceed both the memory this process can still
    allocate (:func:`available_bytes`, where known) and ``budget``: no batch of it could be
    trained here or within the budget. This is the data of the ``chainrule memory`` command.

    Args:
        hidden: hidden layer widths (may be empty: a linear model).
        input_dim: features per sample.
        classes: output classes (softmax cross-entropy).
        batch_sizes: the batch sizes of the rows.
        activation: the hidden activation's name. Default: "relu".
        dtype: the floating dtype. Default: "float32".
        optimizer: a name, as for :func:`estimate`. Default: "sgd".
        checkpoint_segments: segments of the checkpointed column; None: round(sqrt(L)) for L
            layers (at least 2, capped at the number of modules).
        budget: a byte count or a :func:`parse_bytes` string, or None.
        dropout: dropout probability after each hidden activation. Default: 0.

    Returns:
        A :class:`MemoryReport` (``.table()`` for text, ``.as_dict()`` for JSON).

    Raises:
        InvalidValueError: widths or batch sizes that are not positive integers, an unknown
            activation or optimizer, a dtype that is not floating, a bad budget, or parameters
            that fit neither the available memory nor the budget.
    """
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise InvalidValueError(f"memory report: hidden must be a list of layer widths, got "
                                f"{hidden!r}")
    sizes = _check_sizes([input_dim, *hidden, classes], "memory report")
    bs = [_check_batch(b) for b in batch_sizes]
    if not bs:
        raise InvalidValueError("memory report: give at least one batch size")
    opt = _optimizer(optimizer)
    dt = _floating(dtype, "memory report")
    limit = parse_bytes(budget) if budget is not None else None
    plan = _mlp_plan(sizes, activation, dt, dropout)
    _check_parameters_fit(sizes, sum(sum(layer.params) for layer in plan.layers), limit)
    if checkpoint_segments is None:
        checkpoint_segments = max(2, round(math.sqrt(len(sizes) - 1)))
    segments = min(_check_segments(checkpoint_segments), len(plan.layers))
    plan_ck = _mlp_plan(sizes, activation, dt, dropout, checkpointed=True) if segments > 1 \
        else plan
    rows = tuple(ReportRow(b, _from_plan(plan, b, 1, opt, False),
                           _from_plan(plan_ck, b, segments, opt, False)) for b in bs)
    best = best_ck = None
    if limit is not None:
        best = _largest_batch(plan, limit, 1, opt, False)
        best_ck = _largest_batch(plan_ck, limit, segments, opt, False)
    name = activation if isinstance(activation, str) else type(activation).__name__
    return MemoryReport(tuple(sizes), name, str(dt), str(optimizer), segments, rows, limit, best,
                        best_ck)


def _check_parameters_fit(sizes: Sequence[int], param_bytes: int, budget: int | None) -> None:
    """Refuse a network whose parameters alone exceed the available memory and the budget."""
    available = available_bytes()
    room = max(r for r in (available, budget, -1) if r is not None)
    if room >= 0 and param_bytes > room:
        where = [f"the {format_bytes(available)} of memory available"] \
            if available is not None else []
        where += [f"the budget of {format_bytes(budget)}"] if budget is not None else []
        raise InvalidValueError(f"memory report: the parameters of MLP {_sizes_label(sizes)} "
                                f"alone need {format_bytes(param_bytes)}, more than "
                                f"{' and '.join(where)}")


_COLORS = {"parameters": "#4c72b0", "gradients": "#dd8452", "optimizer_state": "#8172b3",
           "activations": "#c44e52", "other": "#b0b0b0"}


def plot_report(rep: MemoryReport, path: str | Path) -> Path:
    """Draw a :class:`MemoryReport` as stacked bars and write it to ``path`` (.png or .svg).

    For each batch size, two bars (without and with checkpointing) show what the step's peak is
    made of: parameters, gradients, optimizer state, saved activations and the rest (batch,
    gradients in flight, temporaries); a dashed line marks the budget. Uses matplotlib's
    Agg renderer through a ``Figure`` (no pyplot state is touched).

    Returns:
        The path written.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InvalidValueError("the plot needs matplotlib: pip install 'chainrule[plot]'") \
            from exc
    p = Path(path)
    if p.suffix.lower() not in (".png", ".svg"):
        raise InvalidValueError(f"{p}: the plot is written as .png or .svg")
    if not p.parent.exists():
        raise InvalidValueError(f"{p}: folder {p.parent} does not exist")
    peaks = [max(r.plain.peak, r.checkpointed.peak) for r in rep.rows]
    top = max(peaks + ([rep.budget] if rep.budget else []))
    unit, scale = next(((u, s) for u, s in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
                        if top >= s), ("B", 1))
    fig = Figure(figsize=(max(6.0, 1.3 * len(rep.rows) + 2), 4.5), dpi=110)
    ax = fig.subplots()
    width = 0.38
    for i, row in enumerate(rep.rows):
        for j, (est, hatch) in enumerate(((row.plain, None), (row.checkpointed, "//"))):
            x = i + (j - 0.5) * (width + 0.03)
            bottom = 0.0
            for cat in _CATEGORIES:
                h = est.at_peak.get(cat, 0) / scale
                ax.bar(x, h, width, bottom=bottom, color=_COLORS[cat], hatch=hatch,
                       edgecolor="white", linewidth=0.5,
                       label=cat.replace("_", " ") if i == 0 and j == 0 else None)
                bottom += h
    if rep.budget is not None:
        ax.axhline(rep.budget / scale, color="black", linestyle="--", linewidth=1,
                   label=f"budget {format_bytes(rep.budget)}")
    ax.set_xticks(range(len(rep.rows)))
    ax.set_xticklabels([str(r.batch_size) for r in rep.rows])
    ax.set_xlabel(f"batch size (left bar: plain; right, hatched: {rep.segments} checkpoint "
                  "segments)")
    ax.set_ylabel(f"peak of a training step ({unit})")
    title = f"MLP {_sizes_label(rep.sizes)}, {rep.activation}, {rep.dtype}, {rep.optimizer}"
    if rep.budget is not None:
        title += (f"\nlargest batch within budget: {rep.max_batch} plain, "
                  f"{rep.max_batch_checkpointed} checkpointed")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(p)
    return p
