"""Whether memory that a training step frees goes back to the kernel: the C allocator's trimming.

Every step of a training loop allocates its activations, deltas and gradients afresh and frees
them again. glibc's ``malloc`` (the allocator NumPy's arrays come from on Linux) returns the free
memory at the top of its heap to the kernel once it exceeds a threshold (about twice the largest
recent allocation, by its dynamic rule), so the next step touches fresh pages and the kernel
zero-fills each on its first write: a minor page fault per 4 KiB. At batch 1024 of the
784-256-128-10 MLP that is 736 faults and about a sixth of each step
(``benchmarks/README.md``, "Page faults"; the hand-written NumPy MLP has the same problem).

:func:`keep_freed_memory` asks glibc (``mallopt``) to keep up to ``limit`` bytes of free heap
instead, and to serve requests below 32 MiB from the heap. This is a setting of the whole process,
like ``torch.set_num_threads``, so the library never makes it on its own: an application that
trains in a loop chooses it (or sets ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_``
in the environment, which is the same thing, or preloads jemalloc/tcmalloc). The cost is that
the process's resident memory does not shrink after a peak, up to ``limit``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

from ..errors import InvalidValueError
from .units import parse_bytes

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit systems
_MMAP_THRESHOLD_MAX = 32 * 2**20


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(limit: int | str = "256MiB") -> bool:
    """Keep up to ``limit`` bytes of freed memory in this process's heap for the next
    allocations, instead of returning it to the kernel (glibc only; see the module docstring).

    Args:
        limit: bytes (an int, or a string such as ``"256MiB"``) of free memory the heap may keep
            at its top before it is trimmed; also the cap of the requests served from the heap
            rather than by a fresh ``mmap`` (at most 32 MiB, glibc's maximum).

    Returns:
        True when glibc accepted the settings; False where there is no glibc (macOS, Windows,
        musl), which keeps its own allocator's behaviour.

    Raises:
        InvalidValueError: ``limit`` is not a positive byte count.
    """
    nbytes = parse_bytes(limit)
    if nbytes <= 0:
        raise InvalidValueError(f"keep_freed_memory: limit must be a positive byte count, got "
                                f"{limit!r}")
    libc = _glibc()
    if libc is None:
        return False
    trim = min(nbytes, 2**31 - 1)  # mallopt takes an int
    mmap = min(nbytes, _MMAP_THRESHOLD_MAX)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, trim))


__all__ = ["keep_freed_memory"]
