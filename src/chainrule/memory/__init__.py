"""The memory cost of autodiff: what the graph keeps alive for backward, and what a training step
needs in all, measured and predicted.

Reverse mode stores, for every recorded node, what its VJP needs (each primitive documents this in
its ``saves``), for every sample of the batch: that memory grows with the batch and the depth and
caps the batch size. This module gives

- accounting on a real graph: :func:`saved` / :func:`saved_bytes` (the saved arrays behind a
  tensor, each buffer counted once however many nodes or views share it);
- measurement: :func:`track`, a context manager reporting the peak of the memory allocated inside
  it, and :func:`measure_step`, the measured peak of a real training step;
- prediction: :func:`estimate` (parameters, gradients, optimizer state, saved activations and the
  peak of a training step, for a model and a batch size, with or without checkpointing),
  :func:`estimate_mlp` (the same for an ``nn.MLP`` from its sizes alone, nothing allocated),
  :func:`max_batch_size` under a budget, and :func:`report` / :func:`plot_report` for a sweep of
  batch sizes (the ``chainrule memory`` command);
- guards: :func:`available_bytes` (what this process can still allocate: MemAvailable, lowered
  by a cgroup limit) and :func:`check_fits` (an InvalidValueError when a prediction exceeds it
  or a budget), to refuse a step before allocating it;
- the allocator: :func:`keep_freed_memory`, an application's opt-in to keep the memory a step
  frees for the next step instead of paging it in again (``allocator``).

Layout: ``accounting`` (saved state, ``track``), ``units`` (byte counts), ``plan`` (what each
layer saves and allocates), ``step_model`` (the simulated step: ``estimate``, ``estimate_mlp``,
``max_batch_size``), ``measure`` (a real step under tracemalloc), ``reporting`` (table and plot),
``guard`` (available memory, ``check_fits``).

What "memory" means here: bytes of arrays and Python objects as counted by :mod:`tracemalloc`
(NumPy reports every array allocation to it), i.e. requested bytes, not the resident set size of
the process. The estimate models exactly that quantity.
"""

from .accounting import SavedMemory, Tracked, saved, saved_bytes, track
from .allocator import keep_freed_memory
from .guard import available_bytes, check_fits
from .measure import MeasuredStep, measure_step, training_step
from .reporting import DEFAULT_BATCH_SIZES, MemoryReport, ReportRow, plot_report, report
from .step_model import MemoryEstimate, estimate, estimate_mlp, max_batch_size
from .units import format_bytes, parse_bytes

__all__ = [
    "SavedMemory", "saved", "saved_bytes", "Tracked", "track", "parse_bytes", "format_bytes",
    "MemoryEstimate", "estimate", "estimate_mlp", "max_batch_size", "MeasuredStep",
    "training_step", "measure_step", "ReportRow", "MemoryReport", "report", "plot_report",
    "DEFAULT_BATCH_SIZES", "keep_freed_memory", "available_bytes", "check_fits",
]
