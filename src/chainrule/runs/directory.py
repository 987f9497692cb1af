"""Run directories as transactions.

- A new run goes into a new or empty directory; a non-empty one is refused unless the run
  resumes it or ``overwrite`` asks to replace it.
- ``overwrite`` builds the new run in a hidden sibling directory and swaps it in only when it
  succeeded: a failed retrain leaves the old run as it was.
- A start removes what a killed process left behind: temporary files of interrupted atomic
  writes (``.*.tmp``) and abandoned sibling directories of an interrupted overwrite.
- A resumed run's ``metrics.jsonl`` is cut back to the epochs its checkpoint holds, so an epoch
  run again after a crash is not listed twice (a torn last line goes too).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import InvalidValueError

METRICS_NAME = "metrics.jsonl"
_NEW, _OLD = ".new-", ".old-"


def _siblings(out: Path, tag: str) -> list[Path]:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        return []
    prefix = f".{out.name}{tag}"
    return [p for p in parent.iterdir() if p.name.startswith(prefix)]


def remove_stale(out: Path) -> list[Path]:
    """Delete leftovers of killed processes in and beside ``out``; returns what went."""
    gone: list[Path] = []
    if out.is_dir():
        for p in out.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp") and p.is_file():
                p.unlink(missing_ok=True)
                gone.append(p)
    for p in _siblings(out, _NEW) + _siblings(out, _OLD):
        shutil.rmtree(p, ignore_errors=True)
        gone.append(p)
    return gone


def check_new_run(out: Path, overwrite: bool) -> None:
    """Refuse (before anything is written) to start a new run over an existing one."""
    if out.exists() and not out.is_dir():
        raise InvalidValueError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidValueError(f"{out} is not empty: pass --resume {out} to continue that run, "
                                "--overwrite to replace it, or another --out")


def staging_dir(out: Path) -> Path:
    """A fresh hidden sibling of ``out`` where an overwriting run is built."""
    parent = out.parent if str(out.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}{_NEW}", dir=parent))


def swap_in(staged: Path, out: Path) -> None:
    """Replace ``out`` by ``staged``: two renames, then the old run is deleted."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}{_OLD}", dir=staged.parent))
        os.rmdir(old)
        os.replace(out, old)
    os.replace(staged, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def truncate_metrics(out: Path, epochs: int) -> None:
    """Keep the first ``epochs`` well-formed lines of ``metrics.jsonl`` (epoch 1..epochs)."""
    from ..io import atomic_write

    path = out / METRICS_NAME
    if not path.is_file():
        return
    keep: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            break
        if not isinstance(rec, dict) or rec.get("epoch") != len(keep) + 1 or len(keep) >= epochs:
            break
        keep.append(line)
    atomic_write(path, "".join(k + "\n" for k in keep).encode())
