"""The resource guard of ``chainrule train``: before anything is allocated, the training step's
memory is estimated from the layer sizes alone and a run that would not fit the available memory
(or ``--memory-budget``) is refused with both numbers in the message.

The estimate here is an upper bound from arithmetic only (it must answer instantly for absurd
sizes): parameters, gradients and optimizer state, plus what the forward pass keeps for backward
(about three arrays of every layer's width per sample) and the data set's preprocessed copy.
``chainrule.memory.estimate`` models a step to the allocation; this guard only has to be safe.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InvalidValueError

_STATE = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def available_bytes() -> int | None:
    """Memory available to this process: Linux's MemAvailable, capped by a cgroup limit."""
    found = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        return None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
            if text.isdigit():
                cap = int(text)
                if cap < (1 << 60) and (found is None or cap < found):
                    found = cap
        except OSError:
            continue
    return found


def step_bytes(sizes: Sequence[int], batch: int, itemsize: int, optimizer: str) -> int:
    """An upper bound of a training step's memory for an MLP with these layer sizes."""
    params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
    per_sample = sum(sizes) * 3
    return int(params * itemsize * (2 + _STATE.get(optimizer, 2))
               + batch * per_sample * itemsize)


def check_fits(need: int, budget: int | None, what: str) -> None:
    """Refuse when ``need`` bytes exceed the budget or the available memory."""
    from ..memory import format_bytes

    limit, source = budget, "--memory-budget"
    if limit is None:
        limit, source = available_bytes(), "the available memory"
    if limit is not None and need > limit:
        raise InvalidValueError(f"{what} needs about {format_bytes(need)}, more than "
                                f"{source} ({format_bytes(limit)}); use smaller layers or "
                                "batches")
