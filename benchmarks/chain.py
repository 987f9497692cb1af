"""Backward time through long chains of elementwise ops: it must grow linearly with the length.

Builds ``y = y * 1.0000001`` n times on a (4,) float32 tensor for n = 10k, 30k, 100k, then times
the forward pass, ``backward()`` and freeing the graph, best of ``--repeat`` runs (shorter chains
are run proportionally more often). Linear scaling
shows as a constant time per op; a recursive or quadratic walk would not reach 100k at all or
would show a growing per-op cost.

Run:  python -m benchmarks.chain [--quick] [--repeat N] [--out PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr

RESULTS = Path(__file__).resolve().parent / "results"


def time_chain(n: int) -> dict[str, float]:
    """Seconds for the forward pass, backward and freeing of one chain of ``n`` ops."""
    x = cr.tensor(np.ones(4, dtype=np.float32), requires_grad=True)
    gc.collect()
    t0 = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.0000001
    t1 = time.perf_counter()
    y.backward(np.ones(4, dtype=np.float32))
    t2 = time.perf_counter()
    del y
    t3 = time.perf_counter()
    assert x.grad is not None and np.isfinite(x.grad).all()
    return {"forward_s": t1 - t0, "backward_s": t2 - t1, "free_s": t3 - t2}


def run(sizes: list[int], repeat: int) -> dict[str, Any]:
    rows = []
    for n in sizes:
        # Shorter chains are repeated more (same total work per length), so that "best of" filters
        # noise from other processes equally well at every length.
        runs = [time_chain(n) for _ in range(repeat * max(1, sizes[-1] // n))]
        best = {k: min(r[k] for r in runs) for k in runs[0]}
        rows.append({"n": n, **best,
                     "forward_us_per_op": best["forward_s"] / n * 1e6,
                     "backward_us_per_op": best["backward_s"] / n * 1e6})
    base = rows[0]
    for r in rows:  # time relative to the smallest chain, divided by the length ratio: ~1 if linear
        r["backward_linearity"] = (r["backward_s"] / base["backward_s"]) / (r["n"] / base["n"])
    return {
        "meta": {"op": "y = y * 1.0000001", "shape": [4], "dtype": "float32", "repeat": repeat,
                 "python": sys.version.split()[0], "numpy": np.__version__,
                 "machine": platform.machine(), "chainrule": cr.__version__},
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    head = (f"{'n':>8} {'forward s':>10} {'backward s':>11} {'free s':>8} "
            f"{'fwd us/op':>10} {'bwd us/op':>10} {'bwd linearity':>14}")
    lines = [f"chain `{result['meta']['op']}`, best of {result['meta']['repeat']} x (longest / n)",
             head,
             "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['n']:>8} {r['forward_s']:10.3f} {r['backward_s']:11.3f} "
                     f"{r['free_s']:8.3f} {r['forward_us_per_op']:10.2f} "
                     f"{r['backward_us_per_op']:10.2f} {r['backward_linearity']:14.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="chains of 1k, 3k, 10k (smoke run)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per length (best is kept)")
    parser.add_argument("--out", type=Path, default=RESULTS / "chain.json")
    args = parser.parse_args(argv)
    sizes = [1_000, 3_000, 10_000] if args.quick else [10_000, 30_000, 100_000]
    result = run(sizes, args.repeat)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return result


if __name__ == "__main__":
    main()
