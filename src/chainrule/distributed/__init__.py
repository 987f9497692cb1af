"""Data-parallel training over MPI: every process (rank) holds the whole model, takes its share
of every global mini-batch, and the ranks sum their gradients with one ``Allreduce`` per step, so
N ranks compute what one process computes on the same global batch.

    mpiexec -n 4 chainrule train --distributed --batch-size 128 ...

``init()`` starts MPI (through mpi4py, the ``mpi`` extra; a system MPI works too); without it,
or outside ``mpiexec``, ``rank()`` is 0 and ``world_size()`` 1 and nothing here communicates.
Where PyTorch users look for ``DistributedDataParallel`` and ``DistributedSampler``:

- ``GradientAverager(params)`` is the gradient hook (``Trainer(gradient_sync=...)`` calls it after
  ``backward()``): one weighted ``Allreduce`` of every gradient in one flat buffer.
  ``broadcast_parameters`` and ``broadcast_optimizer_state`` make every rank start (and resume)
  from rank 0's weights and moments.
- ``DataLoader(..., shard=(rank, world_size))`` is the sampler: every rank draws the same global
  batches (one shuffle seed) and takes its disjoint, contiguous share of each, so every rank takes
  the same number of steps and touches only its own rows (of a memory-mapped file too).
- A watchdog thread (:mod:`.watchdog`) ends the job, naming the rank, when a local rank is gone
  or a step's collective stalls. Only rank 0 writes files (``is_main()``).
"""

from .data_parallel import GradientAverager, broadcast_optimizer_state, broadcast_parameters
from .group import abort, allreduce_sum, barrier, broadcast, current_watchdog, init, \
    is_initialized, is_main, rank, world_size

__all__ = ["abort", "init", "is_initialized", "rank", "world_size", "is_main", "barrier",
           "allreduce_sum", "broadcast", "GradientAverager", "broadcast_parameters",
           "broadcast_optimizer_state", "current_watchdog"]
