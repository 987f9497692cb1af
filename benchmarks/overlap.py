"""Does starting the gradient allreduce early (``Iallreduce``) and computing meanwhile pay on
this machine? The question behind bucketed, overlapped gradient averaging (PyTorch DDP's
buckets, Horovod's tensor fusion): it pays only if the MPI library moves the data while the
rank computes.

Under ``mpiexec -n 2`` (launched by this script), per trial, with a float32 buffer the size of
the 784-256-128-10 MLP's gradient (235,147 values, 0.9 MiB) and a compute of about the backward
pass's length (a 256x784 @ 784x256 float32 product repeated, one BLAS thread):

- ``blocking``: compute, then ``Allreduce`` (what ``GradientAverager`` does);
- ``overlapped``: ``Iallreduce``, compute, ``Wait``;
- ``overlapped+test``: ``Iallreduce``, compute in 4 slices with an ``MPI_Test`` between (the
  progress calls a bucketed backward would make between layers), ``Wait``;

each with MPICH's default progress and with ``MPICH_ASYNC_PROGRESS=1`` (a progress thread per
rank). The median over trials of the slowest rank's time is printed and saved (``--out``).

    python -m benchmarks.overlap [--trials 200] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SIZE = 235_147


def worker(trials: int) -> dict:
    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(comm.Get_rank())
    a = rng.random((256, 784), dtype=np.float32)
    b = rng.random((784, 256), dtype=np.float32)
    buf = np.ones(SIZE, np.float32)

    def compute(parts: int = 1, req: object = None) -> None:
        for _ in range(parts):
            for _ in range(4 // parts):
                a @ b
            if req is not None:
                req.Test()

    def blocking() -> None:
        compute()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    def overlapped() -> None:
        req = comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        compute()
        req.Wait()

    def overlapped_test() -> None:
        req = comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        compute(4, req)
        req.Wait()

    def comm_only() -> None:
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)

    variants = {"compute_ms": compute, "allreduce_ms": comm_only, "blocking_ms": blocking,
                "overlapped_ms": overlapped, "overlapped_test_ms": overlapped_test}
    for fn in variants.values():    # warm up
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(trials):         # interleaved: the machine's noise falls on every variant
        for name, fn in variants.items():
            comm.Barrier()
            t = MPI.Wtime()
            fn()
            times[name].append(comm.allreduce(MPI.Wtime() - t, op=MPI.MAX))
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/overlap.json")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        from mpi4py import MPI

        r = worker(args.trials)
        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(r))
        return
    mpiexec = Path(sys.executable).parent / "mpiexec"
    results = {}
    for progress in ("default", "async"):
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        if progress == "async":
            env["MPICH_ASYNC_PROGRESS"] = "1"
        proc = subprocess.run([str(mpiexec if mpiexec.exists() else "mpiexec"), "-n", "2",
                               sys.executable, "-m", "benchmarks.overlap", "--worker",
                               "--trials", str(args.trials)], capture_output=True, text=True,
                              env=env, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        results[progress] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'progress':>9} {'compute':>8} {'allreduce':>10} {'blocking':>9} "
          f"{'overlapped':>11} {'+Test':>7}   (ms, median of the slowest rank)")
    for k, r in results.items():
        print(f"{k:>9} {r['compute_ms']:>8.3f} {r['allreduce_ms']:>10.3f} "
              f"{r['blocking_ms']:>9.3f} {r['overlapped_ms']:>11.3f} "
              f"{r['overlapped_test_ms']:>7.3f}")
    out = {"when": time.strftime("%Y-%m-%dT%H:%M:%S"), "buffer_values": SIZE,
           "ranks": 2, "cpus": os.cpu_count(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
