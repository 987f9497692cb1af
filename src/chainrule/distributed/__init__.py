"""Data-parallel training over MPI: every process (rank) holds the whole model, takes its share
of every global mini-batch, and the ranks sum their gradients with one ``Allreduce`` per step, so
N ranks compute what one process computes on the same global batch.

    mpiexec -n 4 chainrule train --distributed --batch-size 128 ...

``init()`` starts MPI (through mpi4py, the ``mpi`` extra; a system MPI works too); without it,
or outside ``mpiexec``, ``rank()`` is 0 and ``world_size()`` 1 and nothing here communicates.
``GradientAverager`` does the step's allreduce; ``DataLoader(..., shard=(rank, world_size))`` is
the sampler that gives each rank a disjoint, contiguous share of every global batch (one shuffle
seed, the same number of steps on every rank). Only rank 0 writes files (``is_main()``).
"""

from .group import abort, allreduce_sum, barrier, broadcast, init, is_initialized, is_main, rank, \
    current_watchdog, world_size
from .data_parallel import GradientAverager, broadcast_parameters

__all__ = ["abort", "init", "is_initialized", "rank", "world_size", "is_main", "barrier", "allreduce_sum",
           "broadcast", "GradientAverager", "broadcast_parameters", "current_watchdog"]
