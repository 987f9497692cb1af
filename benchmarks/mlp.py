"""MLP training throughput: chainrule next to PyTorch, scikit-learn, a NumPy MLP and the floor.

Each workload (an MLP, float32, softmax cross-entropy, plain SGD with lr 0.01) is trained by
every peer that is installed, and the harness reports samples per second (steps/s x batch):

    chainrule   nn.MLP + optim.SGD + nn.functional.cross_entropy, the public API
    chainrule-compiled  the same step under cr.compile (traced once, then replayed)
    pytorch     the same network in torch (optional: skipped, and said so, when absent)
    jax         the same step under jax.jit, buffers donated (optional, like torch)
    sklearn     MLPClassifier(solver="sgd", momentum=0, alpha=0).partial_fit over fixed batches
    numpy       a hand-written float32 NumPy MLP (np.dot, fused softmax-CE gradient, in-place SGD)
    floor       the matrix products alone (np.dot into preallocated buffers): an upper bound

Method: each (peer, workload) is measured in a fresh subprocess per repetition, the peers
interleaved (A B C D E, A B C D E, ...) so that a slow spell of the machine hits all of them.
In a worker: build the model and the fixed batches, warm up (doubling step counts until
``--warmup`` seconds have passed), size a chunk of steps to last ``--chunk`` seconds, time
``--chunks`` such chunks with ``time.perf_counter``; the repetition's value is the median chunk.
Across repetitions the report gives the median and the min-max. Each worker also measures how
much of the CPUs other processes took while it was timed; a run above ``--contention-limit`` is
measured again (``--retries``) and cells still contended are marked in the table. The JSON also
records the BLAS each worker loaded (threadpoolctl), the machine, the load average and
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (left as they are unless ``--unset-openblas-env``, which
unsets both for every peer alike). benchmarks/README.md explains every field.

Run (from the repository root):
    python -m benchmarks.mlp                       # full run: 5-15 minutes on 2 cores
    python -m benchmarks.mlp --quick               # CI smoke run, < 60 s, still writes the JSON
    python -m benchmarks.mlp --workloads mnist-b128,digits-b32 --peers chainrule,numpy --reps 5
    python -m benchmarks.mlp --profile mnist-b128  # cProfile of chainrule steps, by tottime
Output: benchmarks/results/mlp.json and mlp.md (``--out DIR/NAME.json`` writes DIR/NAME.md too).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.peers import PEERS, load
from benchmarks.peers._base import WORKLOADS, make_data

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MARKER = "@@MLP-RESULT@@ "
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
# glibc's allocator settings and a preloaded allocator: they decide whether the arrays a step
# frees go back to the kernel (and are paged in again, a minor page fault per 4 KiB, by the next
# step), which costs a large-batch step as much as a sixth of its time (see benchmarks/README.md)
ALLOCATOR_VARS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
                  "MALLOC_ARENA_MAX", "LD_PRELOAD")
SCHEMA = "chainrule.benchmarks.mlp/1"

FULL = dict(reps=3, warmup=0.3, chunk=0.5, chunks=3, retries=2)
QUICK = dict(reps=1, warmup=0.08, chunk=0.08, chunks=1, retries=0)
MIN_WARMUP_STEPS = 7   # 1 + 2 + 4: the first steps pay for thread start-up and page faults
MIN_CHUNK_STEPS = 3
CONTENDED = 0.10  # share of the CPUs taken by other processes above which a run is flagged
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


# ------------------------------------------------------------------------------- the worker

def _threadpools() -> list[dict[str, Any]] | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture",
            "threading_layer", "filepath")
    return [{k: d.get(k) for k in keep} for d in threadpool_info()]


def _cpu_busy_s() -> float | None:
    """Seconds of CPU time that all processes have used, from /proc/stat (None elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return None


def _own_cpu_s() -> float:
    """CPU seconds of this process, all its threads (getrusage: microsecond resolution)."""
    try:
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    except ImportError:
        t = os.times()
        return t.user + t.system


def _minor_faults() -> int | None:
    """Minor page faults of this process so far (getrusage); None where it is unavailable."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Measure one (peer, workload) in this process; returns the record the parent stores."""
    w = WORKLOADS[spec["workload"]]
    load_before = _loadavg()
    kept = None
    if spec.get("keep_freed_memory"):
        # every peer alike: a setting of the process (glibc), not of chainrule's code
        from chainrule.memory import keep_freed_memory

        kept = keep_freed_memory()
    t_start = time.perf_counter()
    data = make_data(w, seed=spec["seed"])
    mod = load(spec["peer"])
    trainer = mod.make_trainer(w, data, lr=spec["lr"], seed=spec["seed"])
    t_built = time.perf_counter()

    # Warm-up: 1, 2, 4, ... steps until the warm-up time has passed (and at least
    # MIN_WARMUP_STEPS); the last batch of steps gives the rate that sizes the timed chunks.
    warm_steps, n = 0, 1
    rate = 0.0
    t_warm0 = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        trainer.train(n)
        dt = time.perf_counter() - t0
        warm_steps += n
        rate = n / dt if dt > 0 else 1e9
        if warm_steps >= MIN_WARMUP_STEPS and time.perf_counter() - t_warm0 >= spec["warmup"]:
            break
        n *= 2
    loss_first = trainer.loss()
    chunk_steps = max(MIN_CHUNK_STEPS, math.ceil(rate * spec["chunk"]))

    # Contention: CPU time that other processes took while the chunks ran, as a fraction of
    # the machine (all CPUs x wall time). BLAS threads that must wait for a busy core make
    # small products many times slower, so a run with contention is flagged in the report.
    busy0, own0 = _cpu_busy_s(), _own_cpu_s()
    faults0 = _minor_faults()
    chunks = []
    for _ in range(spec["chunks"]):
        t0 = time.perf_counter()
        trainer.train(chunk_steps)
        chunks.append(time.perf_counter() - t0)
    busy1, own1 = _cpu_busy_s(), _own_cpu_s()
    faults1 = _minor_faults()
    contention = None
    if busy0 is not None and busy1 is not None:
        other = (busy1 - busy0) - (own1 - own0)  # /proc/stat counts every CPU
        contention = min(1.0, max(0.0, other) / (sum(chunks) * (os.cpu_count() or 1)))
    steps_per_s = [chunk_steps / c for c in chunks]
    median_sps = statistics.median(steps_per_s)
    return {
        "peer": spec["peer"], "workload": w.name, "rep": spec["rep"], "order": spec["order"],
        "ok": True,
        "samples_per_s": median_sps * w.batch,
        "steps_per_s": median_sps,
        "chunk_samples_per_s": [s * w.batch for s in steps_per_s],
        "chunk_steps": chunk_steps, "chunk_seconds": chunks,
        "warmup_steps": warm_steps, "setup_seconds": t_built - t_start,
        "loss_after_warmup": loss_first, "loss_last": trainer.loss(),
        "n_params": trainer.n_params, "param_dtype": trainer.dtype,
        "n_batches": data.n_batches,
        "versions": mod.versions(),
        "threadpools": _threadpools(),
        "openblas_env": {k: os.environ.get(k) for k in OPENBLAS_VARS},
        "allocator_env": {k: os.environ.get(k) for k in ALLOCATOR_VARS},
        "keep_freed_memory": kept,
        "thread_env": {k: os.environ.get(k) for k in THREAD_VARS},
        "own_cpu_per_wall": (own1 - own0) / sum(chunks),
        # memory the step's allocations had to page in again (see ALLOCATOR_VARS)
        "minor_faults_per_step": (None if faults0 is None or faults1 is None
                                  else (faults1 - faults0) / (chunk_steps * len(chunks))),
        # single-threaded, CPU time hardly depends on other processes: a steadier figure
        "samples_per_cpu_s": chunk_steps * len(chunks) * w.batch / max(own1 - own0, 1e-9),
        "contention": contention,
        "loadavg_before": load_before, "loadavg_after": _loadavg(),
    }


# ------------------------------------------------------------------------------- the parent

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _physical_cores() -> int | None:
    try:
        pairs, phys, core = set(), None, None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                phys = line.split(":", 1)[1].strip()
            elif line.startswith("core id"):
                core = line.split(":", 1)[1].strip()
                pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info() -> dict[str, Any]:
    import numpy as np

    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f" {f}" in flags]
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": _cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
        "physical_cores": _physical_cores(), "isa": isa, "memory_gib": mem,
        "platform": platform.platform(), "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "numpy": np.__version__,
        "chainrule_commit": _git("rev-parse", "--short", "HEAD"),
        "chainrule_worktree_dirty": None if dirty is None else bool(dirty),
        "loadavg_at_start": _loadavg(),
    }


def _child_env(unset_openblas: bool, threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if unset_openblas:
        for k in OPENBLAS_VARS:
            env.pop(k, None)
    if threads:
        for k in THREAD_VARS:
            env[k] = str(threads)
    # the worker must import benchmarks.* from this checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _spawn(spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "benchmarks.mlp", "--worker", json.dumps(spec)]
    base = {"peer": spec["peer"], "workload": spec["workload"], "rep": spec["rep"],
            "order": spec["order"], "ok": False}
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
    return {**base, "error": f"exit {proc.returncode}: " + " | ".join(tail)}


def _blas_probe(env: dict[str, str]) -> list[dict[str, Any]] | None:
    """The BLAS that NumPy alone loads, in a child with the workers' environment."""
    code = ("import json, numpy; from benchmarks.mlp import _threadpools; "
            "print(json.dumps(_threadpools()))")
    try:
        out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:,.3g}"


def summarize(runs: list[dict[str, Any]], workloads: list[str], peers: list[str],
              key: str = "samples_per_s") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for wname in workloads:
        row: dict[str, Any] = {}
        for p in peers:
            vals = [r[key] for r in runs
                    if r["workload"] == wname and r["peer"] == p and r.get("ok")]
            errs = [r.get("error") for r in runs
                    if r["workload"] == wname and r["peer"] == p and not r.get("ok")]
            cont = [r["contention"] for r in runs if r["workload"] == wname
                    and r["peer"] == p and r.get("ok") and r.get("contention") is not None]
            if vals:
                row[p] = {"median": statistics.median(vals), "min": min(vals),
                          "max": max(vals), "n": len(vals), "failed": len(errs),
                          "max_contention": max(cont) if cont else None}
            elif errs:
                row[p] = {"median": None, "error": errs[0], "failed": len(errs)}
        out[wname] = row
    return out


def ratios(summary: dict[str, dict[str, Any]], subject: str = "chainrule"
           ) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for wname, row in summary.items():
        s = row.get(subject, {}).get("median")
        out[wname] = {p: s / v["median"] for p, v in row.items()
                      if p != subject and s and v.get("median")}
    return out


COMPILED = "chainrule-compiled"
FRAMEWORKS = ("numpy", "pytorch", "jax")  # the peers a compiled step is held against


def vs_fastest(summary: dict[str, dict[str, Any]], subject: str
               ) -> dict[str, dict[str, Any]]:
    """Per workload: the fastest of the hand-written NumPy MLP, PyTorch and JAX (medians), and
    ``subject``'s median divided by it; plus ``subject`` / the matrix-products floor."""
    out: dict[str, dict[str, Any]] = {}
    for wname, row in summary.items():
        s = row.get(subject, {}).get("median")
        peers = {p: row[p]["median"] for p in FRAMEWORKS if row.get(p, {}).get("median")}
        entry: dict[str, Any] = {}
        if s and peers:
            best = max(peers, key=peers.get)
            entry.update(fastest=best, ratio=s / peers[best])
        floor = row.get("floor", {}).get("median")
        if s and floor:
            entry["vs_floor"] = s / floor
        out[wname] = entry
    return out


def _blas_line(pools: list[dict[str, Any]] | None) -> str:
    if pools is None:
        return "unknown (threadpoolctl not installed)"
    if not pools:
        return "none found by threadpoolctl"
    return "; ".join(
        f"{d.get('internal_api')} {d.get('version') or '?'}"
        f"{' ' + d['architecture'] if d.get('architecture') else ''}"
        f" ({d.get('num_threads')} threads, {Path(d.get('filepath') or '?').name})"
        for d in pools)


def markdown(report: dict[str, Any]) -> str:
    peers = report["settings"]["peers"]
    ran = [p for p in peers if report["peers"][p]["available"]]
    m = report["machine"]
    lines = [
        "# MLP training throughput",
        "",
        f"Samples per second (SGD steps/s x batch), median of {report['settings']['reps']} "
        "repetitions (min-max), each repetition a fresh process per peer, peers interleaved. "
        "float32, softmax cross-entropy, plain SGD (lr 0.01). Higher is better.",
        "",
        "| workload | " + " | ".join(ran) + " |",
        "|---|" + "---:|" * len(ran),
    ]
    for wname, row in report["summary"].items():
        cells = []
        for p in ran:
            v = row.get(p)
            if v is None:
                cells.append("-")
            elif v.get("median") is None:
                cells.append("error")
            else:
                flag = " *" if (v.get("max_contention") or 0) > CONTENDED else ""
                cells.append(f"{_fmt(v['median'])} ({_fmt(v['min'])}-{_fmt(v['max'])}){flag}")
        lines.append(f"| {WORKLOADS[wname].label} | " + " | ".join(cells) + " |")
    skipped = [f"{p}: {report['peers'][p]['reason']}" for p in peers if p not in ran]
    if skipped:
        lines += ["", "Skipped here: " + "; ".join(skipped) + "."]
    ok_runs = [r for r in report["runs"] if r.get("ok")]
    busy = [r for r in ok_runs if (r.get("contention") or 0) > CONTENDED]
    conts = [r["contention"] for r in ok_runs if r.get("contention") is not None]
    if conts:
        lines += ["", f"Other processes used {statistics.median(conts):.0%} of the CPUs (median "
                  f"over runs; most {max(conts):.0%}) while the timed chunks ran."]
    if busy:
        lines += [f"\\* {len(busy)} of {len(ok_runs)} kept runs were timed while other processes "
                  f"used more than {CONTENDED:.0%} of the CPUs (BLAS and OpenMP threads then wait "
                  "for a busy core and small products slow down many times): those medians are "
                  "not the machine's speed. Rerun on an idle machine"
                  + (", and see samples per CPU-second below." if report["settings"].get("threads")
                     == 1 else ", or compare with `--threads 1`.")]
    if report["settings"].get("threads") == 1 and report.get("summary_per_cpu_s"):
        lines += ["", "Single-threaded, the CPU time a worker used is a steadier measure than the "
                  "wall clock when other processes share the machine. Samples per CPU-second, "
                  "median (min-max):", "",
                  "| workload | " + " | ".join(ran) + " |", "|---|" + "---:|" * len(ran)]
        for wname, row in report["summary_per_cpu_s"].items():
            cells = [f"{_fmt(v['median'])} ({_fmt(v['min'])}-{_fmt(v['max'])})"
                     if (v := row.get(p)) and v.get("median") is not None else "-" for p in ran]
            lines.append(f"| {WORKLOADS[wname].label} | " + " | ".join(cells) + " |")
    comp = [p for p in ran if p not in (COMPILED, "floor")]
    if COMPILED in ran and comp:
        fastest = report.get("compiled_vs_fastest_peer") or {}
        lines += ["", f"{COMPILED}'s median divided by each peer's (above 1: the compiled step "
                  "is faster); the last columns: against the fastest of "
                  f"{', '.join(FRAMEWORKS)} that ran, and against the matrix products alone:",
                  "", "| workload | " + " | ".join(f"vs {p}" for p in comp)
                  + " | vs fastest | vs floor |", "|---|" + "---:|" * (len(comp) + 2)]
        for wname, r in report["ratios_compiled"].items():
            f = fastest.get(wname, {})
            best = f"{f['ratio']:.2f} ({f['fastest']})" if "ratio" in f else "-"
            fl = f"{f['vs_floor']:.2f}" if "vs_floor" in f else "-"
            lines.append(f"| {WORKLOADS[wname].label} | "
                         + " | ".join(f"{r[p]:.2f}" if p in r else "-" for p in comp)
                         + f" | {best} | {fl} |")
    others = [p for p in ran if p != "chainrule"]
    if "chainrule" in ran and others:
        lines += ["", "chainrule's median divided by each peer's (above 1: chainrule is faster):",
                  "", "| workload | " + " | ".join(f"vs {p}" for p in others) + " |",
                  "|---|" + "---:|" * len(others)]
        for wname, r in report["ratios"].items():
            lines.append(f"| {WORKLOADS[wname].label} | "
                         + " | ".join(f"{r[p]:.2f}" if p in r else "-" for p in others) + " |")
        if report["settings"].get("threads") == 1 and report.get("ratios_per_cpu_s"):
            lines += ["", "The same ratios from samples per CPU-second:", "",
                      "| workload | " + " | ".join(f"vs {p}" for p in others) + " |",
                      "|---|" + "---:|" * len(others)]
            for wname, r in report["ratios_per_cpu_s"].items():
                lines.append(f"| {WORKLOADS[wname].label} | " + " | ".join(
                    f"{r[p]:.2f}" if p in r else "-" for p in others) + " |")
    faults = report.get("summary_minor_faults_per_step")
    if faults and any(row for row in faults.values()):
        lines += ["", "Minor page faults per step while timed, median over repetitions: memory "
                  "that the step's fresh arrays had to page in again because the allocator had "
                  "returned it to the kernel (about 1.5 us each on this machine; see "
                  "benchmarks/README.md, \"Page faults\"):", "",
                  "| workload | " + " | ".join(ran) + " |", "|---|" + "---:|" * len(ran)]
        for wname, row in faults.items():
            cells = [f"{v['median']:,.0f}" if (v := row.get(p)) and v.get("median") is not None
                     else "-" for p in ran]
            lines.append(f"| {WORKLOADS[wname].label} | " + " | ".join(cells) + " |")
    lines += ["", "## Peers", "", "| peer | status | versions | BLAS in the worker | timed step |",
              "|---|---|---|---|---|"]
    for p in peers:
        info = report["peers"][p]
        status = "ran" if info["available"] else f"skipped: {info['reason']}"
        vers = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())
        blas = _blas_line(info["threadpools"]) if "threadpools" in info else "-"
        lines.append(f"| {p} | {status} | {vers or '-'} | {blas} | {info['description']} |")
    errors = [r for r in report["runs"] if not r.get("ok")]
    if errors:
        lines += ["", "## Failed measurements", ""]
        lines += [f"- {r['peer']} / {r['workload']} rep {r['rep']}: {r.get('error')}"
                  for r in errors]
    env = report["openblas_env"]
    lines += [
        "", "## Machine", "",
        f"- CPU: {m['cpu_model']}; {m['logical_cpus']} logical CPUs "
        f"({m['usable_cpus']} usable, {m['physical_cores']} physical cores); "
        f"ISA: {', '.join(m['isa']) or '-'}; {m['memory_gib']} GiB",
        f"- {m['platform']}; Python {m['python']}; NumPy {m['numpy']}",
        f"- NumPy's BLAS: {_blas_line(report['blas'])}",
        "- " + ", ".join(f"{k}={env['parent'][k]!r}" for k in OPENBLAS_VARS)
        + (" (unset for every worker: --unset-openblas-env)" if env["unset_for_workers"]
           else " (passed to the workers unchanged)"),
        "- allocator: " + (", ".join(f"{k}={v!r}" for k, v in
                                     (report.get("allocator_env") or {}).items() if v)
                           or "glibc defaults (no MALLOC_* variable, no LD_PRELOAD)")
        + ("; every worker called chainrule.memory.keep_freed_memory() (--keep-freed-memory)"
           if report["settings"].get("keep_freed_memory") else ""),
        f"- chainrule commit {m['chainrule_commit']}"
        f"{' + uncommitted changes' if m['chainrule_worktree_dirty'] else ''}; "
        f"load average at start {m['loadavg_at_start']}, "
        f"highest seen by a worker {report['max_loadavg_1min']}",
        f"- {report['created']}; {report['elapsed_s']:.0f} s; command: "
        f"`{' '.join(report['command'])}`",
    ]
    return "\n".join(lines) + "\n"


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    workloads = args.workloads
    peers = args.peers
    env = _child_env(args.unset_openblas_env, args.threads)
    peer_info: dict[str, dict[str, Any]] = {}
    for p in peers:
        mod = load(p)
        reason = mod.missing()
        peer_info[p] = {"available": reason is None, "reason": reason,
                        "description": mod.DESCRIPTION}
        if reason:
            print(f"skipping {p}: {reason}", flush=True)
    active = [p for p in peers if peer_info[p]["available"]]

    started = time.perf_counter()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, "-m", "benchmarks.mlp", *args.argv],
        "settings": {"reps": args.reps, "warmup_s": args.warmup, "chunk_s": args.chunk,
                     "chunks": args.chunks, "lr": args.lr, "seed": args.seed,
                     "quick": args.quick, "workloads": workloads, "peers": peers,
                     "threads": args.threads, "retries": args.retries,
                     "keep_freed_memory": args.keep_freed_memory,
                     "contention_limit": args.contention_limit,
                     "retry_wait_s": args.retry_wait,
                     "unit": "samples/s"},
        "workloads": {w: {"sizes": list(WORKLOADS[w].sizes),
                          "activation": WORKLOADS[w].activation, "batch": WORKLOADS[w].batch,
                          "data": WORKLOADS[w].data, "label": WORKLOADS[w].label}
                      for w in workloads},
        "machine": machine_info(),
        "openblas_env": {"parent": {k: os.environ.get(k) for k in OPENBLAS_VARS},
                         "unset_for_workers": bool(args.unset_openblas_env)},
        "allocator_env": {k: os.environ.get(k) for k in ALLOCATOR_VARS},
        "blas": _blas_probe(env),
        "peers": peer_info,
    }
    runs: list[dict[str, Any]] = []
    total = args.reps * len(workloads) * len(active)
    order = 0
    for rep in range(1, args.reps + 1):
        for wname in workloads:
            for p in active:
                order += 1
                spec = {"peer": p, "workload": wname, "rep": rep, "order": order,
                        "seed": args.seed, "lr": args.lr, "warmup": args.warmup,
                        "chunk": args.chunk, "chunks": args.chunks,
                        "keep_freed_memory": args.keep_freed_memory}
                r = last = _spawn(spec, env, args.timeout)
                tries = [r]
                while (len(tries) <= args.retries and r.get("ok")
                       and (r.get("contention") or 0) > args.contention_limit):
                    print(f"      {p} {wname}: other processes used {last['contention']:.0%} "
                          f"of the CPUs; measuring again in {args.retry_wait:g} s", flush=True)
                    time.sleep(args.retry_wait)
                    last = _spawn(spec, env, args.timeout)
                    tries.append(last)
                    ok = [t for t in tries if t.get("ok")]
                    r = min(ok, key=lambda t: t.get("contention") or 0) if ok else tries[-1]
                if len(tries) > 1:
                    r = {**r, "attempts": [
                        {k: t.get(k) for k in ("samples_per_s", "contention", "error")}
                        for t in tries]}
                runs.append(r)
                msg = (f"{_fmt(r['samples_per_s'])} samples/s" if r.get("ok")
                       else f"FAILED {r.get('error')}")
                print(f"[{order:3d}/{total}] rep {rep} {wname:12s} {p:10s} {msg}", flush=True)
    for p in active:
        mine = [r for r in runs if r["peer"] == p and r.get("ok")]
        if mine:
            peer_info[p]["versions"] = mine[-1]["versions"]
            peer_info[p]["threadpools"] = mine[-1]["threadpools"]
    loads = [r["loadavg_after"][0] for r in runs if r.get("loadavg_after")]
    report["max_loadavg_1min"] = max(loads) if loads else None
    report["runs"] = runs
    report["summary"] = summarize(runs, workloads, active)
    report["ratios"] = ratios(report["summary"])
    report["ratios_compiled"] = ratios(report["summary"], COMPILED)
    report["compiled_vs_fastest_peer"] = vs_fastest(report["summary"], COMPILED)
    report["summary_per_cpu_s"] = summarize(runs, workloads, active, "samples_per_cpu_s")
    report["summary_minor_faults_per_step"] = summarize(
        [r for r in runs if r.get("minor_faults_per_step") is not None], workloads, active,
        "minor_faults_per_step")
    report["ratios_per_cpu_s"] = ratios(report["summary_per_cpu_s"])
    report["elapsed_s"] = time.perf_counter() - started
    return report


def profile(args: argparse.Namespace) -> None:
    """cProfile of chainrule (or the first --peers entry) training steps on one workload."""
    import cProfile
    import io
    import pstats

    wname = args.profile
    peer = args.peers[0]
    w = WORKLOADS[wname]
    trainer = load(peer).make_trainer(w, make_data(w, args.seed), lr=args.lr, seed=args.seed)
    trainer.train(20)  # warm-up
    steps = args.profile_steps
    clock = time.process_time if args.profile_clock == "cpu" else time.perf_counter
    t0 = clock()
    trainer.train(steps)
    plain = (clock() - t0) / steps
    prof = cProfile.Profile(clock)
    prof.enable()
    trainer.train(steps)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(args.profile_top)
    # per step, with shares of the profiled total: the part an engine engineer reads first
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())
    top = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    summary = ["# top by tottime, per step:  us/step   share   calls/step  function"]
    for (fname, line, func), (_cc, nc, tt, _ct, _callers) in top:
        where = func if fname == "~" else f"{Path(fname).name}:{line}({func})"
        summary.append(f"#   {tt / steps * 1e6:27.1f}  {tt / total:6.1%}  {nc / steps:10.1f}  "
                       f"{where}")
    threads = {k: os.environ[k] for k in THREAD_VARS if k in os.environ}
    head = (f"# cProfile of {steps} {peer} steps on {w.label} ({wname}), sorted by tottime; "
            f"{args.profile_clock} clock; {threads or 'default threads'}\n"
            f"# unprofiled: {plain * 1e3:.3f} ms/step = {w.batch / plain:,.0f} samples/s; "
            f"profiled: {total / steps * 1e3:.3f} ms/step\n" + "\n".join(summary) + "\n")
    text = head + buf.getvalue()
    plan = getattr(getattr(trainer, "step", None), "plan", None)
    if plan is not None:
        text += plan_profile(plan, trainer.batches, steps, clock)
    name = f"mlp-profile-{peer}-{wname}{'-cpu' if args.profile_clock == 'cpu' else ''}.txt"
    out = Path(args.out).with_name(name) if args.out else RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


def plan_profile(plan: Any, batches: list[Any], steps: int, clock: Any) -> str:
    """The compiled step statement by statement: each line of the plan's generated function
    (``plan.source``) run on its own, timed over ``steps`` replays, sorted by time. The lines
    are exec'd one at a time (a fraction of a microsecond each on top of their own cost)."""
    lines = plan.source.splitlines()
    body: list[str] = []
    for ln in lines[1:-1]:  # (the def line, the return line)
        ln = ln[4:]
        if ln.startswith((" ", "else")) and body:
            body[-1] += "\n" + ln
        else:
            body.append(ln)
    codes = [compile(b, "<plan line>", "exec") for b in body]
    ns = dict(plan.fn.__globals__)
    times = [0.0] * len(codes)
    n_args = plan.fn.__code__.co_argcount
    for k in range(steps):
        for i, a in enumerate(batches[k % len(batches)][:n_args]):
            ns[f"a{i}"] = a
        for j, c in enumerate(codes):
            t0 = clock()
            exec(c, ns)  # noqa: S102 - the plan's own generated lines
            times[j] += clock() - t0
    total = sum(times)
    out = [f"\n# the compiled step, statement by statement ({steps} replays, each statement run "
           f"alone): {total / steps * 1e6:.1f} us/step in all", "#   us/step   share  statement"]
    for t, b in sorted(zip(times, body), key=lambda p: -p[0]):
        first = b.splitlines()[0]
        out.append(f"#  {t / steps * 1e6:8.1f}  {t / total:6.1%}  {first[:90]}")
    return "\n".join(out) + "\n"


def _csv(choices: dict[str, Any], what: str):
    def parse(text: str) -> list[str]:
        names = [t.strip() for t in text.split(",") if t.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {', '.join(bad) or '(none)'}; choose from {', '.join(choices)}")
        return [n for n in choices if n in names]  # canonical order
    return parse


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.mlp",
                                 description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, help="repetitions per (peer, workload); default 3, "
                    "quick 1")
    ap.add_argument("--quick", action="store_true",
                    help="CI smoke run: 1 rep, tiny warm-up and timing (< 60 s)")
    ap.add_argument("--workloads", type=_csv(WORKLOADS, "workload"), default=list(WORKLOADS),
                    help=f"comma-separated subset of: {', '.join(WORKLOADS)}")
    ap.add_argument("--peers", type=_csv(PEERS, "peer"), default=list(PEERS),
                    help=f"comma-separated subset of: {', '.join(PEERS)}")
    ap.add_argument("--out", help="JSON path (the markdown goes next to it, .md); "
                    "default benchmarks/results/mlp.json")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per worker (default 0.3)")
    ap.add_argument("--chunk", type=float, help="seconds per timed chunk (default 0.5)")
    ap.add_argument("--chunks", type=int, help="timed chunks per worker (default 3)")
    ap.add_argument("--retries", type=int,
                    help="measure a run again, up to N times, while other processes took more "
                    "than --contention-limit of the CPUs; the least contended attempt is kept "
                    "(default 2, quick 0)")
    ap.add_argument("--contention-limit", type=float, default=0.25,
                    help="fraction of the CPUs (default 0.25)")
    ap.add_argument("--retry-wait", type=float, default=2.0,
                    help="seconds to wait before measuring a contended run again (default 2)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per worker")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="call chainrule.memory.keep_freed_memory() in every worker (glibc keeps "
                    "freed memory instead of trimming its heap; see benchmarks/README.md)")
    ap.add_argument("--unset-openblas-env", action="store_true",
                    help="unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for every worker")
    ap.add_argument("--threads", type=int,
                    help="set OMP/OPENBLAS/MKL_NUM_THREADS to N for every worker (default: "
                    "leave the environment as it is)")
    ap.add_argument("--profile", choices=list(WORKLOADS), metavar="WORKLOAD",
                    help="instead of the benchmark, cProfile the first --peers entry "
                    "(chainrule by default) on this workload, in this process")
    ap.add_argument("--profile-steps", type=int, default=200)
    ap.add_argument("--profile-top", type=int, default=30)
    ap.add_argument("--profile-clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: time.process_time, steadier on a shared machine when run "
                    "single-threaded (OPENBLAS_NUM_THREADS=1)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)

    if args.worker:
        print(MARKER + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return 0
    if args.profile:
        profile(args)
        return 0
    base = QUICK if args.quick else FULL
    for k in ("reps", "warmup", "chunk", "chunks", "retries"):
        if getattr(args, k) is None:
            setattr(args, k, base[k])

    report = run_all(args)
    out = Path(args.out) if args.out else RESULTS / "mlp.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    md = markdown(report)
    out.with_suffix(".md").write_text(md)
    print()
    print(md)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    ok = [r for r in report["runs"] if r.get("ok")]
    return 0 if ok or not report["runs"] else 1


if __name__ == "__main__":
    sys.exit(main())
