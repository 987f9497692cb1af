"""Data-parallel training over MPI: what one step costs on N ranks, what the allreduce costs on
this machine, and what an alpha-beta model of the ring allreduce projects for N = 2 to 64 nodes.

The script launches itself under ``mpiexec -n N`` (one fresh MPI job per N and kind) and
collects rank 0's JSON. Every rank runs with one BLAS thread (``--threads``, default 1), so N
ranks use N cores, N = 1 is one core, and N = 3 on a 2-core machine is *oversubscribed* (three
busy-polling MPI processes share two cores: its numbers are a stress case, not a scaling point).

1. **Training steps** (``--worker`` kind ``train``). Workloads: the 784-256-128-10 ReLU MLP at
   global batch 256 and 1024, and the 784-4096x4-10 ReLU MLP at global batch 256; float32,
   softmax cross-entropy, plain SGD (lr 0.01), synthetic data (uniform [0, 1) features, uniform
   labels), ``cr.nn.MLP`` built from the same seed on every rank, ``broadcast_parameters`` as
   training does. Rank r takes rows [r B/N, (r+1) B/N) of each global batch. One step is the
   Trainer's order: ``zero_grad``; forward and loss (``loss.item()``); ``backward``;
   ``GradientAverager(n_local)`` (the one ``Allreduce`` over the flat gradient buffer, plus its
   pack and unpack copies); ``opt.step()``. Timed with ``MPI.Wtime``:

   - compute = zero_grad + forward + backward + optimizer step (everything but the averager),
     with forward, backward and step also stored apart;
   - sync = the ``GradientAverager`` call. Two phases of ``--steps`` steps each:
     *as trained* (no barrier: sync also holds the wait for the slowest rank) and *after a
     barrier* (a ``Barrier`` before the averager, not counted: sync is the pack, the
     ``Allreduce`` and the unpack alone). In the second phase a bare ``Allreduce`` of a buffer of
     the same size is timed after each step as well ("of which MPI"). At N = 1 there is no
     ``Allreduce`` (``allreduce_sum`` returns at once): sync is the pack/unpack copies alone.
   - per step, each quantity is averaged over the ranks, then the median over the steps is
     taken; the step's wall time is the slowest rank's.

   At N = 1 the worker also times the compute at every per-rank batch the projection needs
   (``ceil(B / N)`` for the projected N), the compute the projection's second variant uses.

2. **Allreduce sweep** (kind ``sweep``, N = 2 and 3): ``Allreduce(IN_PLACE, SUM)`` of float32
   buffers from 8 B to 64 MiB (every power of two), each call after a ``Barrier``, 3 warm-up
   calls, then 100 to 8 timed calls per size; per call the slowest rank's time, median over
   calls. Fitted to the ring allreduce's alpha-beta model

       T(bytes, N) = 2 (N - 1) alpha + 2 (N - 1) / N * bytes / beta

   by least squares on the *relative* residuals (T_model / T_measured - 1, so 8 B and 64 MiB
   weigh alike), per N and for N = 2 and 3 together; reported: alpha in microseconds, beta in
   GB/s (1e9 bytes per second), the RMS and largest relative error. MPICH picks other
   algorithms for small messages (recursive doubling) and uses shared memory here, so the fit
   describes this machine's loopback, not a network.

3. **Projection** (a model, not a measurement) to N = 2 ... 64 nodes, one rank per node, at a
   fixed global batch B, for networks of 10, 25 and 100 Gb/s (beta = 1.25, 3.125, 12.5 GB/s)
   with a latency of alpha = 5 us (10 and 25 Gb/s Ethernet) and 2 us (100 Gb/s):

       T_N = compute(ceil(B / N)) + copies + 2 (N - 1) alpha + 2 (N - 1) / N * bytes / beta
       T_1 = compute(B)   (one process trains without a GradientAverager)
       efficiency(N) = T_1 / (N T_N)

   where bytes is the averager's buffer (parameters + 1 float32) and copies is its pack/unpack
   time measured at N = 1. Two variants of compute(b): ``linear`` (the brief's: N = 1's
   compute per sample at batch B times b: perfect compute scaling, so only communication costs
   efficiency) and ``measured`` (N = 1's compute measured at batch b, with the per-step costs
   that do not shrink with b: Python overhead, the optimizer's pass over the weights). Each
   node computes at the speed of one core of this machine; faster nodes make the allreduce's
   share larger and the efficiency lower. ``overlap_bound`` is the efficiency if the allreduce
   were perfectly hidden behind backward (bucketed ``Iallreduce``): T_N minus
   min(allreduce, backward(b)), an upper bound.

Outputs: ``results/distributed.json`` (measured and projected under separate keys, with the
machine), ``results/distributed.md`` (the tables), ``docs/distributed_scaling.png`` (projected
efficiency against N).

Run (from the repository root, with mpi4py and an MPI):
    python -m benchmarks.distributed                 # ~3-4 minutes on 2 cores
    python -m benchmarks.distributed --quick         # smoke run, < 30 s; numbers not for quoting
    python -m benchmarks.distributed --quick --out /tmp/d.json   # and /tmp/d.md, /tmp/d.png
Options: ``--ranks 1,2,3``, ``--threads 1``, ``--mpiexec PATH``, ``--no-plot``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PLOT = ROOT / "docs" / "distributed_scaling.png"
MARKER = "@@DISTRIBUTED-RESULT@@ "
SCHEMA = "chainrule.benchmarks.distributed/1"

SMALL = [784, 256, 128, 10]
LARGE = [784, 4096, 4096, 4096, 4096, 10]
# name -> sizes, global batch, (warm-up, steps per phase), (quick warm-up, quick steps)
WORKLOADS: dict[str, dict[str, Any]] = {
    "mlp-b256": dict(sizes=SMALL, batch=256, full=(20, 100), quick=(3, 8)),
    "mlp-b1024": dict(sizes=SMALL, batch=1024, full=(10, 50), quick=(2, 5)),
    "large-b256": dict(sizes=LARGE, batch=256, full=(2, 9), quick=(1, 2)),
}
PROJ_N = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
NETWORKS = {  # name -> (beta bytes/s, alpha s)
    "10 Gb/s": (10e9 / 8, 5e-6),
    "25 Gb/s": (25e9 / 8, 5e-6),
    "100 Gb/s": (100e9 / 8, 2e-6),
}
SWEEP_BYTES = [8 * 2**k for k in range(24)]        # 8 B .. 64 MiB


def _label(sizes: list[int]) -> str:
    if sizes == LARGE:
        return "784-4096x4-10"
    return "-".join(map(str, sizes))


def _n_params(sizes: list[int]) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


# ------------------------------------------------------------------------------- the workers

def _train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import chainrule as cr
    from chainrule import distributed as dist
    from mpi4py import MPI

    comm = dist.init()
    rank, world = dist.rank(), dist.world_size()
    ce = cr.nn.functional.cross_entropy
    out: dict[str, Any] = {"ranks": world, "workloads": {}}
    for name in spec["workloads"]:
        w = WORKLOADS[name]
        warmup, steps = w["quick" if spec["quick"] else "full"]
        B = w["batch"]
        lo, hi = rank * B // world, (rank + 1) * B // world
        rng = np.random.default_rng(0)
        nb = 4
        X = rng.random((nb, B, w["sizes"][0]), dtype=np.float32)
        Y = rng.integers(0, w["sizes"][-1], size=(nb, B))
        batches = [(cr.tensor(np.ascontiguousarray(X[i, lo:hi])), cr.tensor(Y[i, lo:hi]))
                   for i in range(nb)]
        del X, Y
        cr.manual_seed(0)
        model = cr.nn.MLP(list(w["sizes"]), activation="relu")
        opt = cr.optim.SGD(model.parameters(), lr=0.01)
        dist.broadcast_parameters(model.parameters())
        averager = dist.GradientAverager(model.parameters())
        bare = np.zeros_like(averager._buf)
        n_local = hi - lo

        def step(i: int, barrier: bool) -> list[float]:
            xb, yb = batches[i % nb]
            t0 = MPI.Wtime()
            opt.zero_grad()
            loss = ce(model(xb), yb)
            loss.item()
            t1 = MPI.Wtime()
            loss.backward()
            t2 = MPI.Wtime()
            if barrier:
                comm.Barrier()
            t3 = MPI.Wtime()
            averager(n_local)
            t4 = MPI.Wtime()
            opt.step()
            t5 = MPI.Wtime()
            mpi = math.nan
            if barrier and world > 1:
                comm.Barrier()
                ta = MPI.Wtime()
                comm.Allreduce(MPI.IN_PLACE, bare, op=MPI.SUM)
                mpi = MPI.Wtime() - ta
            # forward, backward, optimizer step, sync, MPI alone, step wall (incl. barrier)
            return [t1 - t0, t2 - t1, t5 - t4, t4 - t3, mpi, t5 - t0]

        for i in range(warmup):
            step(i, False)
        comm.Barrier()
        phases = {}
        for phase, barrier in (("as_trained", False), ("after_barrier", True)):
            local = np.array([step(i, barrier) for i in range(steps)])       # steps x 6
            allr = comm.gather(local, root=0)
            comm.Barrier()
            if rank == 0:
                a = np.stack(allr)                                             # ranks x steps x 6
                mean = a.mean(axis=0)
                comp = a[:, :, 0] + a[:, :, 1] + a[:, :, 2]
                phases[phase] = {
                    "forward_ms": float(np.median(mean[:, 0])) * 1e3,
                    "backward_ms": float(np.median(mean[:, 1])) * 1e3,
                    "optimizer_ms": float(np.median(mean[:, 2])) * 1e3,
                    "compute_ms": float(np.median(comp.mean(axis=0))) * 1e3,
                    "compute_slowest_rank_ms": float(np.median(comp.max(axis=0))) * 1e3,
                    "sync_ms": float(np.median(mean[:, 3])) * 1e3,
                    "mpi_allreduce_ms": (float(np.median(a[:, :, 4].max(axis=0))) * 1e3
                                         if barrier and world > 1 else None),
                    "step_ms": float(np.median(a[:, :, 5].max(axis=0))) * 1e3,
                    "per_rank_median_ms": {
                        "compute": [float(np.median(c)) * 1e3 for c in comp],
                        "sync": [float(np.median(s)) * 1e3 for s in a[:, :, 3]],
                    },
                    "steps": steps,
                }
        rec: dict[str, Any] = {"sizes": w["sizes"], "global_batch": B, "warmup": warmup,
                               "per_rank_batch": [(r + 1) * B // world - r * B // world
                                                  for r in range(world)],
                               "n_params": int(averager._buf.size - 1),
                               "buffer_bytes": int(averager._buf.nbytes),
                               "loss_last": float(np.asarray(ce(model(batches[0][0]),
                                                                batches[0][1]).data)),
                               **phases}
        if world == 1 and spec.get("grid"):
            rec["compute_grid"] = _compute_grid(model, opt, ce, w, spec["quick"])
        if rank == 0:
            out["workloads"][name] = rec
    return out


def _compute_grid(model: Any, opt: Any, ce: Any, w: dict[str, Any], quick: bool
                  ) -> dict[str, Any]:
    """Compute time (no sync) at each per-rank batch ceil(B / N) the projection uses."""
    import chainrule as cr
    from mpi4py import MPI

    B = w["batch"]
    bs = sorted({math.ceil(B / n) for n in PROJ_N} | {B}, reverse=True)
    rng = np.random.default_rng(1)
    grid = {}
    big = w["sizes"] == LARGE
    for b in bs:
        xb = cr.tensor(rng.random((b, w["sizes"][0]), dtype=np.float32))
        yb = cr.tensor(rng.integers(0, w["sizes"][-1], size=b))
        n = (2 if quick else 6) if big else (4 if quick else 40)
        rows = []
        for i in range(n + 1):
            t0 = MPI.Wtime()
            opt.zero_grad()
            loss = ce(model(xb), yb)
            loss.item()
            t1 = MPI.Wtime()
            loss.backward()
            t2 = MPI.Wtime()
            opt.step()
            t3 = MPI.Wtime()
            if i:
                rows.append([t3 - t0, t2 - t1])
        r = np.median(np.array(rows), axis=0)
        grid[str(b)] = {"compute_ms": float(r[0]) * 1e3, "backward_ms": float(r[1]) * 1e3,
                        "steps": n}
    return grid


def _sweep_worker(spec: dict[str, Any]) -> dict[str, Any]:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rows = []
    for nbytes in SWEEP_BYTES:
        buf = np.ones(nbytes // 4, dtype=np.float32)
        if spec["quick"]:
            reps = 20 if nbytes <= 2**20 else 3
        else:
            reps = 100 if nbytes <= 2**20 else 20 if nbytes <= 2**23 else 8
        ts = np.empty(reps)
        for i in range(3 + reps):
            comm.Barrier()
            t = MPI.Wtime()
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            if i >= 3:
                ts[i - 3] = MPI.Wtime() - t
        comm.Allreduce(MPI.IN_PLACE, ts, op=MPI.MAX)      # the slowest rank, per call
        rows.append({"bytes": nbytes, "median_us": float(np.median(ts)) * 1e6,
                     "min_us": float(ts.min()) * 1e6, "reps": reps})
    return {"ranks": comm.Get_size(), "rows": rows}


def run_worker(spec: dict[str, Any]) -> dict[str, Any] | None:
    from mpi4py import MPI

    res = _train_worker(spec) if spec["kind"] == "train" else _sweep_worker(spec)
    return res if MPI.COMM_WORLD.Get_rank() == 0 else None


# ------------------------------------------------------------------------------- the parent

def _launch(mpiexec: str, n: int, spec: dict[str, Any], threads: int) -> dict[str, Any]:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                      env.get("PYTHONPATH")]))
    cmd = [mpiexec, "-n", str(n), sys.executable, "-m", "benchmarks.distributed", "--worker",
           json.dumps(spec)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            res = json.loads(line[len(MARKER):])
            res["wall_s"] = time.perf_counter() - t
            return res
    raise RuntimeError(f"mpiexec -n {n} {spec['kind']} failed (exit {proc.returncode}):\n"
                       f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def fit_alpha_beta(points: list[tuple[int, int, float]]) -> dict[str, Any]:
    """Least squares on relative residuals of T = 2(N-1) a + 2(N-1)/N bytes / beta.

    points: (N, bytes, seconds)."""
    A = np.array([[2 * (n - 1), 2 * (n - 1) / n * b] for n, b, _ in points], dtype=float)
    T = np.array([t for *_, t in points], dtype=float)
    Aw = A / T[:, None]
    sol, *_ = np.linalg.lstsq(Aw, np.ones_like(T), rcond=None)
    note = None
    if sol[0] < 0 or sol[1] <= 0:        # keep both terms physical
        note = "unconstrained fit had a non-positive term; refitted with it at zero"
        if sol[1] <= 0:
            sol = np.array([float(np.linalg.lstsq(Aw[:, :1], np.ones_like(T), rcond=None)[0][0]),
                            0.0])
        else:
            sol = np.array([0.0, float(np.linalg.lstsq(Aw[:, 1:], np.ones_like(T),
                                                       rcond=None)[0][0])])
    rel = A @ sol / T - 1
    return {"alpha_us": float(sol[0]) * 1e6,
            "beta_GBps": (1 / float(sol[1]) / 1e9) if sol[1] > 0 else None,
            "rms_rel_error": float(np.sqrt(np.mean(rel**2))),
            "max_abs_rel_error": float(np.max(np.abs(rel))),
            "points": len(points), "note": note}


def ring_time(nbytes: float, n: int, alpha: float, beta: float) -> float:
    return 2 * (n - 1) * alpha + 2 * (n - 1) / n * nbytes / beta


def project(measured: dict[str, Any]) -> dict[str, Any]:
    one = measured["train"]["1"]["workloads"]
    out: dict[str, Any] = {
        "assumptions": {
            "formula": "T_N = compute(ceil(B/N)) + copies + 2(N-1) alpha + 2(N-1)/N bytes/beta;"
                       " T_1 = compute(B); efficiency = T_1 / (N T_N)",
            "networks": {k: {"beta_GBps": b / 1e9, "alpha_us": a * 1e6}
                         for k, (b, a) in NETWORKS.items()},
            "compute": "N=1 on this machine, one core, 1 BLAS thread: 'linear' = compute per "
                       "sample at batch B times ceil(B/N); 'measured' = compute measured at "
                       "batch ceil(B/N)",
            "copies": "the GradientAverager's pack/unpack time measured at N=1 (its sync time)",
            "overlap_bound": "T_N - min(allreduce, backward(ceil(B/N))): the allreduce "
                             "perfectly hidden behind backward",
            "one_rank_per_node": True,
        },
        "N": PROJ_N, "workloads": {},
    }
    for name, rec in one.items():
        ph = rec["after_barrier"]
        B = rec["global_batch"]
        t1 = ph["compute_ms"] / 1e3
        copies = ph["sync_ms"] / 1e3
        grid = rec.get("compute_grid", {})
        bwd1 = ph["backward_ms"] / 1e3
        wl: dict[str, Any] = {"label": _label(rec["sizes"]), "global_batch": B,
                              "buffer_bytes": rec["buffer_bytes"], "T1_ms": t1 * 1e3,
                              "copies_ms": copies * 1e3, "variants": {}}
        for variant in ("linear", "measured"):
            nets = {}
            for net, (beta, alpha) in NETWORKS.items():
                rows = []
                base = t1
                if variant == "measured" and str(B) in grid:   # T_1 from the same grid run
                    base = grid[str(B)]["compute_ms"] / 1e3
                for n in PROJ_N:
                    b = math.ceil(B / n)
                    if variant == "linear" or str(b) not in grid:
                        comp, bwd = t1 * b / B, bwd1 * b / B
                    else:
                        comp = grid[str(b)]["compute_ms"] / 1e3
                        bwd = grid[str(b)]["backward_ms"] / 1e3
                    ar = ring_time(rec["buffer_bytes"], n, alpha, beta)
                    tn = comp + copies + ar
                    rows.append({"N": n, "per_rank_batch": b, "compute_ms": comp * 1e3,
                                 "allreduce_ms": ar * 1e3, "step_ms": tn * 1e3,
                                 "allreduce_share": ar / tn,
                                 "efficiency": base / (n * tn),
                                 "overlap_bound": base / (n * (tn - min(ar, bwd))),
                                 "samples_per_s": B / tn})
                nets[net] = rows
            wl["variants"][variant] = nets
            wl[f"T1_{variant}_ms"] = base * 1e3
        out["workloads"][name] = wl
    return out


# ------------------------------------------------------------------------------- reporting

def _eff(proj: dict[str, Any], name: str, variant: str, net: str, n: int, key: str = "efficiency"
         ) -> float:
    return next(r[key] for r in proj["workloads"][name]["variants"][variant][net] if r["N"] == n)


def markdown(res: dict[str, Any]) -> str:
    m, p = res["measured"], res["projected"]
    mach = res["machine"]
    L = ["# Data-parallel training: measured and projected", "",
         f"`python -m benchmarks.distributed{' --quick' if res['quick'] else ''}`, "
         f"{res['date']}, chainrule {res['versions']['chainrule']}, "
         f"{mach['mpi_library']}, mpi4py {res['versions']['mpi4py']}.", ""]
    if res["quick"]:
        L += ["**Quick run: few steps, numbers not for quoting.**", ""]
    L += ["## Measured on this machine", "",
          f"{mach['cpus']} cores ({mach['cpu']}), one host: the ranks talk through shared "
          f"memory (loopback), not a network. Each rank runs one BLAS thread, so N = 1 uses one "
          f"core and N = 2 both. **N = 3 is oversubscribed**: three busy-polling MPI processes "
          f"share {mach['cpus']} cores, so its times measure contention, not scaling.", "",
          "Per step, milliseconds (median over steps of the mean over ranks). compute = "
          "zero_grad + forward + backward + optimizer step; sync = the `GradientAverager` call "
          "(pack, one `Allreduce`, unpack) as training runs it, so it includes waiting for the "
          "slowest rank; \"sync after barrier\" is the same call after a `Barrier`: the "
          "communication and copies alone, of which \"MPI\" is a bare `Allreduce` of the same "
          "buffer. At N = 1 there is no `Allreduce`: sync is the copies alone. share = sync / "
          "step; speedup = step(N=1) / step(N).", "",
          "| model | global batch | N | per-rank batch | compute | sync | sync after barrier "
          "(MPI) | step | sync share | samples/s | speedup |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ranks = sorted(m["train"], key=int)
    for name in WORKLOADS:
        if name not in m["train"][ranks[0]]["workloads"]:
            continue
        base = m["train"][ranks[0]]["workloads"][name]["as_trained"]["step_ms"]
        for n in ranks:
            rec = m["train"][n]["workloads"][name]
            a, b = rec["as_trained"], rec["after_barrier"]
            mpi = f" ({b['mpi_allreduce_ms']:.2f})" if b["mpi_allreduce_ms"] is not None else ""
            tag = " *" if int(n) > mach["cpus"] else ""
            L.append(f"| {_label(rec['sizes'])} | {rec['global_batch']} | {n}{tag} | "
                     f"{max(rec['per_rank_batch'])} | {a['compute_ms']:.2f} | {a['sync_ms']:.2f} |"
                     f" {b['sync_ms']:.2f}{mpi} | {a['step_ms']:.2f} | "
                     f"{a['sync_ms'] / a['step_ms']:.0%} | "
                     f"{rec['global_batch'] / a['step_ms'] * 1e3:,.0f} | "
                     f"{base / a['step_ms']:.2f} |")
    L += ["", "\\* oversubscribed (more ranks than cores).", "",
          "Allreduce buffer: " + ", ".join(
              f"{_label(r['sizes'])} {r['n_params']:,} parameters + 1 = "
              f"{r['buffer_bytes'] / 2**20:.2f} MiB" for k, r in
              m["train"][ranks[0]]["workloads"].items() if k != "mlp-b1024") + ".", ""]
    L += ["### Allreduce latency and bandwidth (this machine, shared memory)", "",
          "`Allreduce(IN_PLACE, SUM)` of float32 buffers, 8 B to 64 MiB, after a barrier; the "
          "slowest rank's time per call, median over calls; fitted to the ring model "
          "T = 2(N-1) alpha + 2(N-1)/N bytes/beta by least squares on relative errors.", "",
          "| ranks | alpha (us) | beta (GB/s) | RMS rel. error | max rel. error |",
          "|---|---:|---:|---:|---:|"]
    for key, f in m["allreduce_fit"].items():
        beta = f"{f['beta_GBps']:.2f}" if f["beta_GBps"] else "-"
        L.append(f"| {key} | {f['alpha_us']:.1f} | {beta} | {f['rms_rel_error']:.0%} | "
                 f"{f['max_abs_rel_error']:.0%} |")
    sw = {n: {r["bytes"]: r["median_us"] for r in m["allreduce_sweep"][n]["rows"]}
          for n in m["allreduce_sweep"]}
    picks = [8, 1024, 2**16, 2**20, 2**23, 2**26]
    L += ["", "| bytes | " + " | ".join(f"N={n} (us)" for n in sw) + " |",
          "|---:|" + "---:|" * len(sw)]
    for b in picks:
        L.append(f"| {_fmt_bytes(b)} | " + " | ".join(f"{sw[n].get(b, math.nan):,.1f}"
                                                      for n in sw) + " |")
    L += ["", "The fit describes this host's shared-memory transport (MPICH also switches "
          "algorithms with the message size); the N = 3 run is oversubscribed, so its small "
          "messages wait for a core. The projection below does not use these numbers: it "
          "assumes a network.", ""]
    a = p["assumptions"]
    L += ["## Projected (alpha-beta model)", "",
          "**A model, not a measurement.** One rank per node, fixed global batch B, "
          "T_N = compute(ceil(B/N)) + copies + 2(N-1) alpha + 2(N-1)/N bytes/beta, "
          "T_1 = compute(B), efficiency = T_1 / (N T_N). Networks: " + "; ".join(
              f"{k}: beta = {v['beta_GBps']:g} GB/s, alpha = {v['alpha_us']:g} us"
              for k, v in a["networks"].items()) +
          " (alpha assumed: typical Ethernet and 100 Gb/s RDMA-class latencies). "
          "compute is one core of this machine (1 BLAS thread) at N = 1; copies is the "
          "averager's pack/unpack time at N = 1 (" + ", ".join(
              f"{w['label']} {w['copies_ms']:.2f} ms" for k, w in p["workloads"].items()
              if k != "mlp-b1024") + "). Nodes faster than one core here "
          "shrink compute and lower the efficiency.", ""]
    Ns = [2, 4, 8, 16, 32, 64]
    for variant, title in (("linear", "compute(b) = compute per sample at batch B x b "
                                       "(perfect compute scaling; only communication costs)"),
                           ("measured", "compute(b) measured at batch b on N = 1 (keeps the "
                                        "per-step costs that do not shrink with b)")):
        L += [f"Efficiency, {title}:", "",
              "| model | B | network | " + " | ".join(f"N={n}" for n in Ns) + " |",
              "|---|---:|---|" + "---:|" * len(Ns)]
        for name, w in p["workloads"].items():
            for net in NETWORKS:
                L.append(f"| {w['label']} | {w['global_batch']} | {net} | " + " | ".join(
                    f"{_eff(p, name, variant, net, n):.0%}" for n in Ns) + " |")
        L.append("")
    L += ["Allreduce share of the projected step and the efficiency with the allreduce "
          "perfectly hidden behind backward (bucketed `Iallreduce`, an upper bound), "
          "`measured` compute, N = 8 / 32 / 64:", "",
          "| model | B | network | allreduce share | efficiency | with ideal overlap |",
          "|---|---:|---|---|---|---|"]
    for name, w in p["workloads"].items():
        for net in NETWORKS:
            sh = " / ".join(f"{_eff(p, name, 'measured', net, n, 'allreduce_share'):.0%}"
                            for n in (8, 32, 64))
            ef = " / ".join(f"{_eff(p, name, 'measured', net, n):.0%}" for n in (8, 32, 64))
            ov = " / ".join(f"{_eff(p, name, 'measured', net, n, 'overlap_bound'):.0%}"
                            for n in (8, 32, 64))
            L.append(f"| {w['label']} | {w['global_batch']} | {net} | {sh} | {ef} | {ov} |")
    L += ["", "Plot: `docs/distributed_scaling.png`.", ""]
    return "\n".join(L)


def _fmt_bytes(b: int) -> str:
    for unit, k in (("MiB", 2**20), ("KiB", 2**10)):
        if b >= k:
            return f"{b // k} {unit}"
    return f"{b} B"


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = res["projected"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    colors = {"10 Gb/s": "tab:red", "25 Gb/s": "tab:orange", "100 Gb/s": "tab:green"}
    styles = {"mlp-b256": ("-", "o"), "mlp-b1024": (":", "^"), "large-b256": ("--", "s")}
    for ax, variant, title in zip(axes, ("linear", "measured"),
                                  ("compute per sample x B/N (perfect compute scaling)",
                                   "compute measured at batch B/N (fixed costs kept)")):
        for name, w in p["workloads"].items():
            ls, mk = styles.get(name, ("-", "x"))
            for net in NETWORKS:
                rows = w["variants"][variant][net]
                ax.plot([r["N"] for r in rows], [r["efficiency"] for r in rows], ls=ls,
                        marker=mk, ms=4, color=colors[net],
                        label=f"{w['label']} B={w['global_batch']}, {net}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(Ns := [2, 4, 8, 16, 32, 64], [str(n) for n in Ns])
        ax.set_ylim(0, 1.05)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_xlabel("nodes N (one rank each), fixed global batch")
        ax.set_title(title, fontsize=10)
    axes[0].set_ylabel("scaling efficiency T1 / (N TN)")
    axes[1].legend(fontsize=7, loc="upper right", ncol=1)
    fig.suptitle("chainrule data-parallel SGD: projected efficiency (alpha-beta ring allreduce "
                 "model, not a measurement)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine(mpiexec: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from mpi4py import MPI

        lib = " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    except Exception as exc:  # noqa: BLE001 - recorded, not fatal
        lib = f"unknown ({exc})"
    return {"cpu": cpu, "cpus": os.cpu_count(), "python": platform.python_version(),
            "mpi_library": lib, "mpiexec": mpiexec,
            "transport": "one host: MPI over shared memory (loopback), no network",
            "oversubscribed_at": [n for n in (1, 2, 3) if n > (os.cpu_count() or 1)],
            "loadavg_before": list(os.getloadavg())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="few steps (smoke run, < 1 minute)")
    p.add_argument("--ranks", default="1,2,3", help="the N to measure (default 1,2,3)")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads per rank (default 1)")
    p.add_argument("--mpiexec", default=None, help="mpiexec to use (default: next to python, "
                                                    "else on PATH)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON path (default results/distributed.json); the .md and, unless it "
                        "is the default, the .png go beside it")
    args = p.parse_args(argv)
    if args.worker:
        res = run_worker(json.loads(args.worker))
        if res is not None:
            print(MARKER + json.dumps(res), flush=True)
        return 0
    default_out = args.out is None
    args.out = args.out or RESULTS / "distributed.json"
    mpiexec = args.mpiexec or str(Path(sys.executable).with_name("mpiexec"))
    if not Path(mpiexec).exists():
        mpiexec = shutil.which("mpiexec") or "mpiexec"
    ranks = [int(n) for n in args.ranks.split(",")]
    if 1 not in ranks:
        raise SystemExit("--ranks must include 1 (the projection and the speedups need it)")
    import chainrule as cr
    import mpi4py

    start = time.perf_counter()
    machine = _machine(mpiexec)
    measured: dict[str, Any] = {"train": {}, "allreduce_sweep": {}, "allreduce_fit": {}}
    for n in ranks:
        print(f"train, mpiexec -n {n} ...", file=sys.stderr, flush=True)
        spec = dict(kind="train", workloads=list(WORKLOADS), quick=args.quick, grid=n == 1)
        measured["train"][str(n)] = _launch(mpiexec, n, spec, args.threads)
    for n in [r for r in ranks if r > 1]:
        print(f"allreduce sweep, mpiexec -n {n} ...", file=sys.stderr, flush=True)
        measured["allreduce_sweep"][str(n)] = _launch(mpiexec, n, dict(kind="sweep",
                                                                       quick=args.quick),
                                                      args.threads)
    pts = {n: [(int(n), r["bytes"], r["median_us"] * 1e-6) for r in s["rows"]]
           for n, s in measured["allreduce_sweep"].items()}
    for n, pt in pts.items():
        measured["allreduce_fit"][f"N={n}"] = fit_alpha_beta(pt)
    if len(pts) > 1:
        measured["allreduce_fit"]["N=" + "+".join(pts)] = fit_alpha_beta(
            [x for pt in pts.values() for x in pt])
    res: dict[str, Any] = {
        "schema": SCHEMA, "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "quick": args.quick, "threads_per_rank": args.threads, "machine": machine,
        "versions": {"chainrule": cr.__version__, "numpy": np.__version__,
                     "mpi4py": mpi4py.__version__},
        "workloads": WORKLOADS,
        "measured": measured,
    }
    res["projected"] = project(measured)
    res["machine"]["loadavg_after"] = list(os.getloadavg())
    res["wall_s"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    args.out.with_suffix(".md").write_text(md)
    if not args.no_plot:
        plot(res, PLOT if default_out else args.out.with_suffix(".png"))
    print(md)
    print(f"({res['wall_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
