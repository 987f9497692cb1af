"""The process group: MPI's world communicator, started on demand (mpi4py imported lazily)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InvalidValueError

_COMM: Any = None


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
    return _COMM


def is_initialized() -> bool:
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
    if _COMM is not None:
        _COMM.Barrier()


def allreduce_sum(buf: np.ndarray) -> np.ndarray:
    """Sum ``buf`` (a contiguous NumPy array) over every rank, in place; returns it."""
    if _COMM is not None and _COMM.Get_size() > 1:
        from mpi4py import MPI

        _COMM.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return buf


def broadcast(buf: np.ndarray, root: int = 0) -> np.ndarray:
    """Overwrite ``buf`` on every rank with root's values, in place; returns it."""
    if _COMM is not None and _COMM.Get_size() > 1:
        _COMM.Bcast(buf, root=root)
    return buf


def abort(exc: BaseException, code: int = 1) -> None:
    """End every rank now (``MPI_Abort``) after one line naming this rank and the failure:
    a rank that failed alone must not leave the others waiting in a collective."""
    import sys

    print(f"error (rank {rank()} of {world_size()}): {type(exc).__name__}: "
          f"{' '.join(str(exc).split())[:300]}", file=sys.stderr, flush=True)
    if _COMM is not None:
        _COMM.Abort(code)
