"""The process group: MPI's world communicator, started on demand (mpi4py imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidValueError

_COMM: Any = None
_WATCHDOG: Any = None


def init() -> Any:
    """Start MPI (idempotent) and return the world communicator.

    Raises:
        InvalidValueError: mpi4py is not installed (``pip install 'chainrule[mpi]'``).
    """
    global _COMM
    if _COMM is None:
        try:
            from mpi4py import MPI  # noqa: PLC0415 - optional dependency
        except ImportError as exc:
            raise InvalidValueError("distributed training needs mpi4py and an MPI library: "
                                    "pip install 'chainrule[mpi]'") from exc
        _COMM = MPI.COMM_WORLD
        if _COMM.Get_size() > 1:
            global _WATCHDOG
            from .watchdog import Watchdog

            _WATCHDOG = Watchdog(_COMM)
    return _COMM


def current_watchdog() -> Any:
    """The running :class:`~chainrule.distributed.watchdog.Watchdog` (None outside a job of
    several ranks)."""
    return _WATCHDOG


def _watched(what: str, timed: bool) -> Any:
    from contextlib import nullcontext

    return _WATCHDOG.collective(what, timed) if _WATCHDOG is not None else nullcontext()


def is_initialized() -> bool:
    """True when :func:`init` started MPI in this process."""
    return _COMM is not None


def rank() -> int:
    """This process's rank (0 when MPI was not started)."""
    return int(_COMM.Get_rank()) if _COMM is not None else 0


def world_size() -> int:
    """The number of processes (1 when MPI was not started)."""
    return int(_COMM.Get_size()) if _COMM is not None else 1


def is_main() -> bool:
    """Rank 0: the process that writes files and prints results."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank reaches this point (nothing happens without MPI)."""
    if _COMM is not None:
        with _watched("barrier", False):
            _COMM.Barrier()


def allreduce_sum(buf: np.ndarray, step: bool = False) -> np.ndarray:
    """Sum ``buf`` (a contiguous NumPy array) over every rank, in place; returns it.

    ``step``: a training step's collective, which the watchdog's stall timeout covers (setup
    collectives wait for every rank's reading and checks, however long they take)."""
    if _COMM is not None and _COMM.Get_size() > 1:
        from mpi4py import MPI

        with _watched("allreduce", step):
            _COMM.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf


def broadcast(buf: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``buf`` on every rank with root's values, in place; returns it."""
    if _COMM is not None and _COMM.Get_size() > 1:
        with _watched("broadcast", False):
            _COMM.Bcast(buf, root=root)
    return buf


def abort(exc: BaseException, code: int = 1) -> None:
    """End every rank now (``MPI_Abort``) after one line naming this rank and the failure:
    a rank that failed alone must not leave the others waiting in a collective. When the
    failure is a collective that broke because another rank on this host is gone, the line
    names that rank instead of MPI's error stack."""
    import os
    import sys

    why = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    gone = _WATCHDOG.gone() if _WATCHDOG is not None else []
    if gone:
        r, host, pid = gone[0]
        why = (f"rank {r} (pid {pid} on {host}) is gone (killed, or it crashed without a "
               "word); stopping every rank (the run directory keeps its last checkpoint: "
               "continue with --resume)")
    print(f"error (rank {rank()} of {world_size()}): {why}", file=sys.stderr, flush=True)
    import time

    time.sleep(0.5)     # let the launcher forward the line before MPI_Abort ends the job
    try:
        if _COMM is not None:
            _COMM.Abort(code)
    finally:
        os._exit(code)
