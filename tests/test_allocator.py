"""chainrule.memory.keep_freed_memory: glibc keeps freed memory in the heap instead of handing it
back to the kernel, so a loop that allocates and frees the same arrays stops page-faulting."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap

import pytest

import chainrule as cr
from chainrule.errors import InvalidValueError
from chainrule.memory import allocator

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Run in a child process: the setting is the whole process's. Like a training step, each
# iteration allocates six arrays of 1 MB (written, so that their pages are touched) and frees them
# all; with glibc's defaults the 6 MB then free at the top of the heap exceed its trim threshold
# (twice the largest recent allocation) and go back to the kernel. The child prints the minor
# page faults of the last 20 of 40 iterations.
_CHILD = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import chainrule as cr
    applied = cr.memory.keep_freed_memory() if sys.argv[1] == "keep" else None
    def step():
        arrays = [np.ones(262_144, np.float32) for _ in range(6)]
        return sum(float(a[0]) for a in arrays)
    for _ in range(20):
        step()
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
""")


def _child(mode: str) -> tuple[str, int]:
    # glibc's defaults: no MALLOC_* setting from the environment, no preloaded allocator
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], capture_output=True, text=True,
                         check=True, env=env).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere the function returns False "
                    "(test_without_glibc_nothing_is_changed)")
def test_freed_memory_is_reused_without_page_faults():
    applied, faults = _child("keep")
    assert applied == "True"
    # 20 iterations write 120 MB of arrays: 30,000 pages if each were paged in again (the
    # default settings: about that many, see test_default_settings_page_in_every_step)
    assert faults < 300, f"{faults} minor page faults in 20 iterations"


@pytest.mark.skipif(not GLIBC, reason="the behaviour of glibc's default trimming")
def test_default_settings_page_in_every_step():
    """What the function is for: without it the same loop pages its memory in again every
    iteration (this documents glibc's default; a change there would show up here)."""
    applied, faults = _child("default")
    assert applied == "None"
    assert faults > 10_000


def test_without_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(allocator.platform, "libc_ver", lambda: ("", ""))
    assert cr.memory.keep_freed_memory() is False


@pytest.mark.parametrize("limit", [0, -5, "lots", "0MiB"])
def test_bad_limits_are_refused(limit):
    with pytest.raises(InvalidValueError, match="byte count"):
        cr.memory.keep_freed_memory(limit)
