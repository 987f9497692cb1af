"""A watchdog for the collectives: no rank waits forever for a rank that is gone.

MPICH's ``mpiexec`` ends every rank itself when one dies (its banner names the process id), but
not every launcher does (``mpiexec -disable-auto-cleanup``, other MPI libraries, a process that
hangs or is stopped instead of dying), and then the other ranks wait in an ``Allreduce`` for
good. The watchdog is a daemon thread in every rank that checks, every ``poll`` seconds,

- that the ranks on this host are alive (their process ids, exchanged at start), and
- that the collective this rank is in (a training step's ``Allreduce``) has not lasted longer than
  ``timeout`` seconds (``CHAINRULE_COLLECTIVE_TIMEOUT``, default 45; 0 turns the check off),

and otherwise prints one line naming the rank that is gone (or the collective that stalled) and
calls ``MPI_Abort``, which ends every rank of the job. Only the lowest surviving rank on a host
prints; the run directory keeps its last checkpoint for ``--resume``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_TIMEOUT = 45.0


def collective_timeout() -> float:
    """``CHAINRULE_COLLECTIVE_TIMEOUT`` in seconds (default 45; 0 or less: no stall check)."""
    raw = os.environ.get("CHAINRULE_COLLECTIVE_TIMEOUT", "")
    try:
        return float(raw) if raw.strip() else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


def _state(pid: int) -> str:
    """``"gone"``, ``"stopped"`` (SIGSTOP, a debugger) or ``"running"``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "running"
    try:
        with open(f"/proc/{pid}/stat") as fh:
            code = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "running"
    return {"Z": "gone", "X": "gone", "T": "stopped", "t": "stopped"}.get(code, "running")


def _alive(pid: int) -> bool:
    return _state(pid) != "gone"


class Watchdog:
    """Started by :func:`chainrule.distributed.init` in a job of more than one rank.

    Args:
        comm: the communicator (its ranks exchange host names and process ids once).
        timeout: seconds a step's collective may last (None: :func:`collective_timeout`).
        poll: seconds between checks.
    """

    def __init__(self, comm: Any, timeout: float | None = None, poll: float = 0.25) -> None:
        self.comm = comm
        self.rank, self.size = int(comm.Get_rank()), int(comm.Get_size())
        self.timeout = collective_timeout() if timeout is None else float(timeout)
        self.poll = poll
        self.host = socket.gethostname()
        self.peers: list[tuple[str, int]] = [tuple(x) for x in comm.allgather(  # type: ignore
            (self.host, os.getpid()))]
        self._local = [(r, pid) for r, (h, pid) in enumerate(self.peers)
                       if h == self.host and r != self.rank]
        self._inside: tuple[float, str, bool] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="chainrule-watchdog",
                                        daemon=True)
        self._thread.start()

    def describe(self) -> str:
        """``rank 0 pid 123 on host, ...``: to match a launcher's message naming a pid."""
        return ", ".join(f"rank {r} pid {pid} on {h}" for r, (h, pid) in enumerate(self.peers))

    @contextmanager
    def collective(self, what: str, timed: bool = True) -> Iterator[None]:
        """Mark a collective in progress (``timed``: subject to the stall timeout)."""
        self._inside = (time.monotonic(), what, timed)
        try:
            yield
        finally:
            self._inside = None

    def gone(self) -> list[tuple[int, str, int]]:
        """``(rank, host, pid)`` of the ranks on this host that are no longer alive."""
        return [(r, self.host, pid) for r, pid in self._local if not _alive(pid)]

    def stop(self) -> None:
        self._stop.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            gone = [(r, pid) for r, _, pid in self.gone()]
            if gone:
                r, pid = gone[0]
                self._fail(f"rank {r} (pid {pid} on {self.host}) is gone (killed, or it "
                           "crashed without a word)", {g[0] for g in gone})
            inside = self._inside
            if inside is not None and inside[2] and self.timeout > 0 and \
                    time.monotonic() - inside[0] > self.timeout:
                stopped = [(r, pid) for r, pid in self._local if _state(pid) == "stopped"]
                self._fail(f"the {inside[1]} of this step has waited {self.timeout:g} s for the "
                           "other ranks" + (f": rank {stopped[0][0]} (pid {stopped[0][1]} on "
                                            f"{self.host}) is stopped" if stopped else
                                            " (one of them is gone or hangs)") +
                           " (CHAINRULE_COLLECTIVE_TIMEOUT sets the limit)",
                           {r for r, _ in stopped})

    def _fail(self, why: str, silent: set[int]) -> None:
        """One line from the lowest rank on this host that can still speak, then abort."""
        survivors = [r for r, _ in self._local if r not in silent] + [self.rank]
        if self.rank == min(survivors):
            print(f"error (rank {self.rank} of {self.size}): {why}; stopping every rank (the "
                  "run directory keeps its last checkpoint: continue with --resume)",
                  file=sys.stderr, flush=True)
            time.sleep(0.5)   # let the launcher forward the line before MPI_Abort ends the job
        else:
            time.sleep(2.0)       # the lowest survivor speaks and aborts for everyone
        try:
            self.comm.Abort(1)
        finally:
            os._exit(1)
