"""Resource guards: how much memory this machine has for us (``available_bytes``), and a check
that a predicted step fits it or a budget (``check_fits``), before anything is allocated.

Linux only, from files, without psutil: ``MemAvailable`` of ``/proc/meminfo`` (the kernel's
estimate of what can be allocated without swapping, page cache that can be dropped included),
lowered to what the process's memory cgroup still allows when it sets a limit (a container, a
systemd slice, a batch scheduler): cgroup v2 ``memory.max`` less ``memory.current`` (its
reclaimable ``inactive_file`` cache counted as free) of the process's cgroup and each one above
it, or cgroup v1 ``memory.limit_in_bytes`` less ``memory.usage_in_bytes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InvalidValueError
from .units import format_bytes, parse_bytes

# cgroup v1 reports "no limit" as a huge number (PAGE_COUNTER_MAX pages): anything above this
# is no limit.
_NO_LIMIT = 1 << 60


def available_bytes() -> int | None:
    """The memory this process can still allocate, in bytes: the machine's ``MemAvailable``, or
    less when its memory cgroup's limit, or its own ``RLIMIT_DATA``/``RLIMIT_AS`` (``ulimit -d``
    / ``-v``), leaves less; None where nothing is known (not Linux, or files that cannot be
    read)."""
    found = [n for n in (_available(Path("/proc/meminfo"), Path("/sys/fs/cgroup"),
                                    Path("/proc/self/cgroup")), _rlimit_room()) if n is not None]
    return min(found) if found else None


def _rlimit_room() -> int | None:
    """What the process's resource limits still allow: ``RLIMIT_DATA`` less its data segment
    (private writable memory: the heap and NumPy's arrays; memory-mapped files do not count),
    ``RLIMIT_AS`` less its address space."""
    try:
        import resource
    except ImportError:     # not POSIX
        return None
    status = _read(Path("/proc/self/status")) or ""
    used = {}
    for line in status.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("VmData", "VmSize") and parts and parts[0].isdigit():
            used[key] = int(parts[0]) * 1024
    rooms = []
    for limit_name, key in (("RLIMIT_DATA", "VmData"), ("RLIMIT_AS", "VmSize")):
        soft = resource.getrlimit(getattr(resource, limit_name))[0]
        if soft != resource.RLIM_INFINITY and key in used:
            rooms.append(max(0, soft - used[key]))
    return min(rooms) if rooms else None


def _available(meminfo: Path, cgroup_root: Path, self_cgroup: Path) -> int | None:
    """:func:`available_bytes` from these files (tests point them elsewhere)."""
    found = [n for n in (_mem_available(meminfo), _cgroup_room(cgroup_root, self_cgroup))
             if n is not None]
    return min(found) if found else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None  # "max" (no limit), or something unexpected


def _mem_available(meminfo: Path) -> int | None:
    text = _read(meminfo)
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                scale = 1024 if len(parts) < 3 or parts[2].lower() == "kb" else 1
                return int(parts[1]) * scale
    return None


def _inactive_file(stat: str | None) -> int:
    for line in (stat or "").splitlines():
        name, _, value = line.partition(" ")
        if name in ("inactive_file", "total_inactive_file") and value.strip().isdigit():
            return int(value)
    return 0


def _lineage(root: Path, rel: str) -> list[Path]:
    """``root`` and each directory down to ``root/rel``."""
    parts = [p for p in rel.strip().split("/") if p and p != ".."]
    return [root.joinpath(*parts[:i]) for i in range(len(parts) + 1)]


def _cgroup_dirs(cgroup_root: Path, self_cgroup: Path) -> tuple[list[Path], list[Path]]:
    """The directories of the process's memory cgroup and each one above it: cgroup v2 (the
    ``0::`` line of /proc/self/cgroup) and v1 (the ``memory`` controller's line). The roots
    alone when /proc/self/cgroup says nothing usable."""
    v2, v1 = "", ""
    for line in (_read(self_cgroup) or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "" and line.startswith("0::"):
            v2 = path
        elif "memory" in controllers.split(","):
            v1 = path
    return _lineage(cgroup_root, v2), _lineage(cgroup_root / "memory", v1)


def _room(d: Path, limit_file: str, usage_file: str) -> int | None:
    """What a cgroup directory's memory limit leaves (reclaimable file cache counted as free),
    or None without a limit."""
    limit = _int(_read(d / limit_file))
    if limit is None or limit >= _NO_LIMIT:
        return None
    used = _int(_read(d / usage_file)) or 0
    return limit - max(0, used - _inactive_file(_read(d / "memory.stat")))


def _cgroup_room(cgroup_root: Path, self_cgroup: Path) -> int | None:
    """The least room left under a memory limit of the process's cgroups (v2 and v1)."""
    v2, v1 = _cgroup_dirs(cgroup_root, self_cgroup)
    rooms = [_room(d, "memory.max", "memory.current") for d in v2]
    rooms += [_room(d, "memory.limit_in_bytes", "memory.usage_in_bytes") for d in v1]
    known = [r for r in rooms if r is not None]
    return max(0, min(known)) if known else None


def check_fits(estimate_bytes: Any, budget_bytes: int | str | None = None,
               what: str = "the training step") -> None:
    """Raise unless ``estimate_bytes`` fits ``budget_bytes``, or, without a budget, the memory
    this process can still allocate (:func:`available_bytes`; nothing is checked where that is
    unknown).

    Args:
        estimate_bytes: bytes needed: a number, or a :class:`MemoryEstimate` (its ``peak``).
        budget_bytes: a byte count or a :func:`parse_bytes` string; None: the available memory.
        what: what needs the memory, for the message.

    Raises:
        InvalidValueError: it does not fit. The message is one line with both sizes, e.g.
            "the training step needs about 14.4 TiB, more than the 11.7 GiB of memory available".
    """
    need = getattr(estimate_bytes, "peak", estimate_bytes)
    if isinstance(need, bool) or not isinstance(need, (int, float)) or need < 0:
        raise InvalidValueError(f"check_fits: estimate_bytes must be a byte count, got "
                                f"{estimate_bytes!r}")
    if budget_bytes is not None:
        budget = parse_bytes(budget_bytes)
        where = f"the memory budget of {format_bytes(budget)}"
    else:
        available = available_bytes()
        if available is None:
            return
        budget = available
        where = f"the {format_bytes(budget)} of memory available"
    if need > budget:
        raise InvalidValueError(f"{what} needs about {format_bytes(need)}, more than {where}")
