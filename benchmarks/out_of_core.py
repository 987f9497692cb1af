"""Training on memory-mapped data: a process's own memory as the data file grows.

For data files of 1/4, 1/2, 1, 2 and 4 times ``--budget`` (default 384 MiB; a plain float32
``.npy`` of 511 features and a 0/1 target, 2 KiB a row, labels from a fixed linear rule), runs
``chainrule train --dataset FILE --target x511 --epochs 1 --batch-size 1024 --hidden 32`` in a
child process and samples its ``/proc/PID/status`` every 20 ms:

- ``VmData``: private writable memory (heap, NumPy arrays, thread stacks): what ``RLIMIT_DATA``
  limits, and what grows with the data for an in-memory reader;
- ``RssAnon``: resident anonymous memory (the part of VmData actually touched);
- ``VmHWM``: the peak resident set *including* the file's pages mapped in (page cache, which the
  kernel drops under pressure), shown to make the difference visible.

With ``--limit`` the children also run under ``RLIMIT_DATA = budget`` (the out-of-core test of
``tests/test_out_of_core.py`` at every size). Prints a table and writes JSON (``--out``).

    python -m benchmarks.out_of_core [--budget-mib 384] [--limit] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FEATURES = 511


def write(path: Path, rows: int) -> None:
    import numpy as np

    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                    shape=(rows, FEATURES + 1))
    rng = np.random.default_rng(0)
    w = rng.normal(size=FEATURES).astype(np.float32)
    for lo in range(0, rows, 20_000):
        hi = min(lo + 20_000, rows)
        X = rng.standard_normal((hi - lo, FEATURES), dtype=np.float32)
        out[lo:hi, :FEATURES] = X
        out[lo:hi, FEATURES] = X @ w > 0
    out.flush()
    del out


def run(data: Path, run_dir: Path, limit: int | None) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")

    def pre() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainrule", "train", "--dataset", str(data), "--target",
         f"x{FEATURES}", "--epochs", "1", "--batch-size", "1024", "--hidden", "32", "--out",
         str(run_dir), "--overwrite", "--quiet"], preexec_fn=pre, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = {"VmData": 0, "RssAnon": 0, "VmHWM": 0}
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as fh:
                for line in fh:
                    key, _, value = line.partition(":")
                    if key in peak:
                        peak[key] = max(peak[key], int(value.split()[0]) * 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    result = {"rc": proc.returncode, "seconds": seconds, **{f"peak_{k}": v
                                                            for k, v in peak.items()}}
    if proc.returncode == 0:
        summary = json.loads((run_dir / "summary.json").read_text())
        result["test_accuracy"] = summary["test_accuracy"]
        result["train_seconds"] = summary["seconds"]
    else:
        result["output"] = out[-500:]
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-mib", type=int, default=384)
    ap.add_argument("--limit", action="store_true", help="run each child under RLIMIT_DATA")
    ap.add_argument("--factors", default="0.25,0.5,1,2,4")
    ap.add_argument("--dir", default=None, help="where the data files go (default: a temp dir)")
    ap.add_argument("--out", default="benchmarks/results/out_of_core.json")
    args = ap.parse_args()
    budget = args.budget_mib << 20
    work = Path(args.dir or tempfile.mkdtemp(prefix="chainrule-ooc-"))
    work.mkdir(parents=True, exist_ok=True)
    rows_out = []
    mib = 1 << 20
    print(f"{'file':>10} {'rows':>10} {'VmData peak':>12} {'RssAnon peak':>13} "
          f"{'VmHWM (with file pages)':>24} {'time':>7} {'acc':>6}")
    for f in (float(x) for x in args.factors.split(",")):
        rows = int(f * budget) // ((FEATURES + 1) * 4)
        data = work / f"data-{f:g}.npy"
        write(data, rows)
        r = run(data, work / f"run-{f:g}", budget if args.limit else None)
        r.update(factor=f, rows=rows, file_bytes=data.stat().st_size)
        rows_out.append(r)
        print(f"{r['file_bytes'] / mib:>8.0f}Mi {rows:>10,} {r['peak_VmData'] / mib:>10.0f}Mi "
              f"{r['peak_RssAnon'] / mib:>11.0f}Mi {r['peak_VmHWM'] / mib:>22.0f}Mi "
              f"{r['seconds']:>6.1f}s {r.get('test_accuracy', float('nan')):>6.3f}"
              + ("" if r["rc"] == 0 else f"  FAILED rc={r['rc']}: {r.get('output', '')[-200:]}"))
        data.unlink()
    result = {"budget_bytes": budget, "limit": args.limit, "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(), "runs": rows_out}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
