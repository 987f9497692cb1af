"""Peak memory and time of a training step, with and without activation checkpointing.

Workload: a 32-layer, width-1024 ReLU MLP (sizes 1024 x 32 then 10 classes; 31 hidden layers),
float32, batch 4096, softmax cross-entropy, plain SGD (lr 0.01), the step in the Trainer's order:
forward, loss, ``zero_grad()`` (gradients to None), backward, update. Three configurations:

    chainrule          nn.MLP, no checkpointing
    chainrule-ckpt     the same model run as checkpoint_sequential(list(model), k, x) with
                       k = round(sqrt(32)) = 6 segments (the first 5 checkpointed, the last
                       recorded as usual)
    pytorch            the same network in torch (nn.Sequential of Linear/ReLU, torch.optim.SGD),
                       when torch is installed

Every measurement runs in a fresh subprocess, one per configuration and kind:

- ``tracemalloc`` (chainrule only): ``chainrule.memory.measure_step`` - NumPy reports each array
  to tracemalloc, so this is the exact peak of requested bytes: the parameters plus the highest
  traced total of the second of two steps (the first creates the gradients). "steady" is what the
  step starts from (parameters, last step's gradients, batch); "activation memory" is
  peak - steady: what the step adds on top of the model, i.e. saved activations and the
  temporaries beside them. The model's prediction (``chainrule.memory.estimate``) is stored next
  to it.
- ``rss`` (both frameworks, measured the same way): the process's resident-set high-water mark
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus its resident set (VmRSS in
  /proc/self/status) after the imports, a tiny warm-up step and one pair of matrix products of
  the workload's shapes, so the number covers the model, the batch and the steps, not the
  interpreter, the framework's libraries or the BLAS library's resident buffers (the latter,
  "BLAS workspace", is stored too: OpenBLAS under NumPy keeps about 8.6 MiB, torch's about 3).
  glibc's malloc is told to serve every block above 128 KiB with mmap
  (``MALLOC_MMAP_THRESHOLD_=131072``, for both frameworks alike) so that freed arrays leave the
  resident set at once and the high-water mark is the live peak rather than an artefact of heap
  fragmentation; ``--malloc-default`` keeps glibc's adaptive threshold instead. Steps: 1
  warm-up, then ``--steps`` timed ones.
- time: the median wall time (``time.perf_counter``) of the timed steps of the ``rss`` process
  (no tracemalloc running), over all repetitions; repetitions interleave the configurations.
  The process's CPU time (``time.process_time``, all threads) is recorded beside it: on a
  machine shared with other work it is the steadier of the two. The load average is stored.

Run (from the repository root):
    python -m benchmarks.memory                 # ~5 minutes on 2 idle cores
    python -m benchmarks.memory --quick         # a small network, < 1 minute (CI smoke)
    python -m benchmarks.memory --reps 2 --steps 3
Output: benchmarks/results/memory.json and memory.md (``--out PATH`` moves both).

``--estimate-sweep`` instead checks the step model: ``chainrule.memory.estimate`` against
``measure_step`` for every optimizer on the MLPs of ``ESTIMATE_SWEEP`` (40-2048x3-10 among them,
several batch sizes, activations, dropout and checkpointing), in this process (~1 minute); it
prints each error and the range per optimizer, and writes them to
benchmarks/results/memory_estimate.json (``--out`` names another JSON file).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
MARKER = "@@MEMORY-RESULT@@ "
SCHEMA = "chainrule.benchmarks.memory/1"

FULL = dict(layers=32, width=1024, classes=10, batch=4096)
QUICK = dict(layers=8, width=256, classes=10, batch=512)


def _sizes(w: dict[str, int]) -> list[int]:
    return [w["width"]] * w["layers"] + [w["classes"]]


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r * 1024 if sys.platform != "darwin" else r


# ------------------------------------------------------------------------------- the workers

def _chainrule_setup(w: dict[str, int], seed: int) -> tuple[Any, Any, Any, Any]:
    import numpy as np

    import chainrule as cr

    cr.manual_seed(seed)
    model = cr.nn.MLP(_sizes(w), activation="relu", dtype="float32")
    opt = cr.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(seed)
    x = cr.tensor(rng.standard_normal((w["batch"], w["width"])).astype(np.float32))
    y = cr.tensor(rng.integers(0, w["classes"], w["batch"]).astype(np.int64))
    return model, opt, x, y


def _torch_setup(w: dict[str, int], seed: int) -> tuple[Any, Any, Any, Any]:
    import numpy as np
    import torch

    torch.manual_seed(seed)
    sizes = _sizes(w)
    layers: list[Any] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if k < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.standard_normal((w["batch"], w["width"])).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, w["classes"], w["batch"]).astype(np.int64))
    return model, opt, x, y


def _step_fn(framework: str, segments: int) -> Any:
    """The training step of one framework, in the Trainer's order."""
    if framework == "chainrule":
        from chainrule.memory import training_step

        def step(model: Any, opt: Any, x: Any, y: Any) -> None:
            training_step(model, opt, x, y, segments if segments > 1 else None)
        return step

    import torch

    ce = torch.nn.functional.cross_entropy

    def torch_step(model: Any, opt: Any, x: Any, y: Any) -> None:
        out = model(x)
        loss = ce(out, y)
        loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch_step


def _gemm_warmup(framework: str, w: dict[str, int]) -> None:
    """x W^T and g^T x at the workload's shapes, with the framework's own matrix product."""
    n, d = w["batch"], w["width"]
    if framework == "chainrule":
        import numpy as np

        x = np.ones((n, d), np.float32)
        wt = np.ones((d, d), np.float32)
        y = x.dot(wt.T)
        y.T.dot(x)
    else:
        import torch

        x = torch.ones(n, d)
        wt = torch.ones(d, d)
        y = x @ wt.T
        y.T @ x


def run_rss(spec: dict[str, Any]) -> dict[str, Any]:
    framework, segments = spec["framework"], spec["segments"]
    w = spec["workload"]
    setup = _chainrule_setup if framework == "chainrule" else _torch_setup
    step = _step_fn(framework, segments)
    # A tiny step first: thread pools, first-call caches and the allocator's arenas start here.
    tiny = dict(layers=2, width=8, classes=2, batch=4)
    step(*setup(tiny, 0))
    gc.collect()
    rss_libs = _status_kib("VmRSS") * 1024
    # Then the workload's matrix products once, so that the BLAS library's own buffers (which
    # OpenBLAS keeps resident after a large product, MKL less so) count as library, not step.
    _gemm_warmup(framework, w)
    gc.collect()
    rss0 = _status_kib("VmRSS") * 1024
    model, opt, x, y = setup(w, spec["seed"])
    built = _status_kib("VmRSS") * 1024 - rss0
    step(model, opt, x, y)  # warm-up: creates the gradients
    steady = _status_kib("VmRSS") * 1024 - rss0
    times, cpu = [], []
    for _ in range(spec["steps"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step(model, opt, x, y)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    versions: dict[str, str] = {}
    if framework == "torch":
        import torch

        versions = {"torch": torch.__version__, "threads": str(torch.get_num_threads())}
    else:
        import numpy as np

        import chainrule

        versions = {"chainrule": chainrule.__version__, "numpy": np.__version__}
    return {"kind": "rss", "framework": framework, "segments": segments, "rep": spec["rep"],
            "rss_start": rss0, "blas_workspace": rss0 - rss_libs, "rss_built": built,
            "rss_steady": steady,
            "rss_peak": _maxrss_bytes() - rss0, "step_seconds": times, "step_cpu_seconds": cpu,
            "loadavg": list(os.getloadavg()), "versions": versions,
            "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_")}


def run_tracemalloc(spec: dict[str, Any]) -> dict[str, Any]:
    import chainrule as cr

    w = spec["workload"]
    segments = spec["segments"]
    cr.manual_seed(spec["seed"])
    model = cr.nn.MLP(_sizes(w), activation="relu", dtype="float32")
    seg = segments if segments > 1 else None
    est = cr.memory.estimate(model, w["batch"], optimizer="sgd", checkpoint_segments=seg)
    m = cr.memory.measure_step(model, w["batch"], optimizer="sgd", checkpoint_segments=seg,
                               seed=spec["seed"])
    return {"kind": "tracemalloc", "framework": "chainrule", "segments": segments,
            "rep": spec["rep"], "peak": m.peak, "steady": m.steady,
            "saved_after_forward": m.saved, "estimate": est.as_dict()}


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "rss":
        return run_rss(spec)
    return run_tracemalloc(spec)


# ------------------------------------------------------------------------------- the parent

def _launch(spec: dict[str, Any], malloc_default: bool) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if not malloc_default:
        env["MALLOC_MMAP_THRESHOLD_"] = "131072"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                      env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memory", "--worker",
                           json.dumps(spec)], cwd=ROOT, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise RuntimeError(f"worker {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def summarise(records: list[dict[str, Any]], configs: list[tuple[str, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for framework, segments in configs:
        name = framework if segments == 1 else f"{framework}-ckpt{segments}"
        rss = [r for r in records if r["kind"] == "rss" and r["framework"] == framework
               and r["segments"] == segments]
        tm = [r for r in records if r["kind"] == "tracemalloc" and r["framework"] == framework
              and r["segments"] == segments]
        times = [t for r in rss for t in r["step_seconds"]]
        cpu = [t for r in rss for t in r["step_cpu_seconds"]]
        row: dict[str, Any] = {
            "framework": framework, "segments": segments,
            "step_seconds_median": statistics.median(times) if times else None,
            "step_seconds": times,
            "step_cpu_seconds_median": statistics.median(cpu) if cpu else None,
            "rss_peak": max(r["rss_peak"] for r in rss) if rss else None,
            "blas_workspace": max(r["blas_workspace"] for r in rss) if rss else None,
            "rss_steady": statistics.median(r["rss_steady"] for r in rss) if rss else None,
        }
        if row["rss_peak"] is not None:
            row["rss_step_extra"] = row["rss_peak"] - row["rss_steady"]
        if tm:
            t = tm[0]
            row.update(tracemalloc_peak=t["peak"], tracemalloc_steady=t["steady"],
                       activation_memory=t["peak"] - t["steady"],
                       saved_after_forward=t["saved_after_forward"],
                       estimate_peak=t["estimate"]["peak"],
                       estimate_activations=t["estimate"]["activations"],
                       estimate_error=t["estimate"]["peak"] / t["peak"] - 1)
        out[name] = row
    return out


def verdicts(summary: dict[str, Any], segments: int) -> dict[str, Any]:
    plain = summary.get("chainrule", {})
    ck = summary.get(f"chainrule-ckpt{segments}", {})
    torch_row = summary.get("torch")
    v: dict[str, Any] = {}
    if plain.get("activation_memory") and ck.get("activation_memory"):
        v["activation_reduction"] = plain["activation_memory"] / ck["activation_memory"]
        v["activation_reduction_ok"] = v["activation_reduction"] >= 2.5
    if plain.get("rss_step_extra") and ck.get("rss_step_extra"):
        v["activation_reduction_rss"] = plain["rss_step_extra"] / ck["rss_step_extra"]
    if plain.get("step_seconds_median") and ck.get("step_seconds_median"):
        v["time_ratio"] = ck["step_seconds_median"] / plain["step_seconds_median"]
        v["time_ratio_ok"] = v["time_ratio"] <= 1.4
        v["cpu_time_ratio"] = ck["step_cpu_seconds_median"] / plain["step_cpu_seconds_median"]
    if torch_row and plain.get("rss_peak"):
        v["peak_vs_torch"] = plain["rss_peak"] / torch_row["rss_peak"]
        v["peak_vs_torch_ok"] = plain["rss_peak"] <= torch_row["rss_peak"]
        v["peak_vs_torch_with_blas"] = ((plain["rss_peak"] + plain["blas_workspace"])
                                        / (torch_row["rss_peak"] + torch_row["blas_workspace"]))
    return v


def markdown(result: dict[str, Any]) -> str:
    w = result["workload"]
    lines = [
        f"# Training-step memory: {w['layers']}-layer width-{w['width']} ReLU MLP, batch "
        f"{w['batch']}, float32, SGD",
        "",
        f"{result['date']}, {result['machine']['cpu']} ({result['machine']['cpus']} CPUs), "
        f"Python {result['machine']['python']}; malloc: "
        + ("glibc default" if result["malloc_default"] else "MALLOC_MMAP_THRESHOLD_=131072"),
        "",
        "| configuration | tracemalloc peak | activation memory (peak - steady) | estimate "
        "(error) | RSS peak | RSS step extra | BLAS workspace | step time (median) "
        "| CPU time (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["summary"].items():
        tm = (_mib(r["tracemalloc_peak"]) if "tracemalloc_peak" in r else "-")
        act = (_mib(r["activation_memory"]) if "activation_memory" in r else "-")
        est = (f"{_mib(r['estimate_peak'])} ({100 * r['estimate_error']:+.1f}%)"
               if "estimate_peak" in r else "-")
        rss = _mib(r["rss_peak"]) if r.get("rss_peak") is not None else "-"
        extra = _mib(r["rss_step_extra"]) if r.get("rss_step_extra") is not None else "-"
        t = (f"{r['step_seconds_median']:.2f} s" if r.get("step_seconds_median") else "-")
        c = (f"{r['step_cpu_seconds_median']:.2f} s" if r.get("step_cpu_seconds_median")
             else "-")
        blas = _mib(r["blas_workspace"]) if r.get("blas_workspace") is not None else "-"
        lines.append(f"| {name} | {tm} | {act} | {est} | {rss} | {extra} | {blas} | {t} "
                     f"| {c} |")
    v = result["verdicts"]
    lines += ["", "Acceptance:"]
    if "activation_reduction" in v:
        lines.append(f"- activation memory falls {v['activation_reduction']:.2f}x with "
                     f"{result['segments']} segments (tracemalloc; >= 2.5x wanted): "
                     f"{'yes' if v['activation_reduction_ok'] else 'NO'}"
                     + (f"; by RSS {v['activation_reduction_rss']:.2f}x"
                        if "activation_reduction_rss" in v else ""))
    if "time_ratio" in v:
        lines.append(f"- for {v['time_ratio']:.2f}x the step time (<= 1.4x wanted): "
                     f"{'yes' if v['time_ratio_ok'] else 'NO'} (CPU time "
                     f"{v['cpu_time_ratio']:.2f}x)")
    if "peak_vs_torch" in v:
        lines.append(f"- chainrule's RSS peak is {v['peak_vs_torch']:.3f}x PyTorch's "
                     f"(<= 1 wanted): {'yes' if v['peak_vs_torch_ok'] else 'NO'}; counting "
                     f"each library's BLAS workspace in: {v['peak_vs_torch_with_blas']:.3f}x")
    elif result.get("torch_missing"):
        lines.append(f"- PyTorch: {result['torch_missing']}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------- estimate vs measurement

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad")
ESTIMATE_SWEEP = [  # sizes, batch sizes, activation, dropout, checkpoint segments
    ([40] + [2048] * 3 + [10], (256, 1024, 2048, 4096), "relu", 0.0, None),
    ([40] + [2048] * 3 + [10], (1024,), "tanh", 0.0, None),
    ([40] + [2048] * 3 + [10], (1024,), "relu", 0.0, 2),
    ([784, 256, 128, 10], (32, 256, 2048, 8192), "relu", 0.0, None),
    ([784, 256, 128, 10], (256, 2048), "sigmoid", 0.0, None),
    ([784, 256, 128, 10], (256, 2048), "leaky_relu", 0.0, None),
    ([784, 256, 128, 10], (256, 2048), "relu", 0.2, None),
    ([64] * 4 + [10], (16, 128, 1024, 4096), "relu", 0.0, None),
    ([64] * 4 + [10], (128, 1024), "tanh", 0.0, 2),
    ([20, 30, 30, 10], (8, 64, 512), "relu", 0.0, None),
    ([20, 30, 30, 10], (8, 64, 512), "tanh", 0.1, None),
    ([512] * 8 + [10], (64, 512, 2048), "relu", 0.0, None),
    ([512] * 8 + [10], (512,), "relu", 0.0, 3),
    ([128] * 16 + [10], (32, 512, 2048), "relu", 0.0, None),
    ([128] * 16 + [10], (512,), "leaky_relu", 0.1, None),
    ([1024, 1024, 10], (128, 1024, 4096), "relu", 0.0, None),
    ([32] * 33 + [10], (16, 256), "tanh", 0.0, None),
    ([32] * 33 + [10], (256,), "relu", 0.0, 6),
]


def estimate_sweep(out: Path) -> int:
    """Estimated against measured peak (tracemalloc) for each case and optimizer."""
    import chainrule as cr

    rows = []
    for sizes, batches, act, dropout, segments in ESTIMATE_SWEEP:
        cr.manual_seed(0)
        model = cr.nn.MLP(sizes, activation=act, dropout=dropout)
        for batch in batches:
            for opt in OPTIMIZERS:
                est = cr.memory.estimate(model, batch, optimizer=opt,
                                         checkpoint_segments=segments)
                got = cr.memory.measure_step(model, batch, optimizer=opt,
                                             checkpoint_segments=segments)
                rows.append({"sizes": sizes, "batch": batch, "activation": act,
                             "dropout": dropout, "segments": segments, "optimizer": opt,
                             "estimate": est.peak, "measured": got.peak,
                             "error": est.peak / got.peak - 1})
                r = rows[-1]
                print(f"{'-'.join(map(str, sizes[:2]))}..x{len(sizes)} {act} p={dropout} "
                      f"seg={segments} batch {batch} {opt}: {_mib(r['estimate'])} against "
                      f"{_mib(r['measured'])} ({100 * r['error']:+.2f}%)", flush=True)
    print("\n| optimizer | smallest error | largest error | largest for steps >= 8 MiB |")
    print("|---|---|---|---|")
    for opt in OPTIMIZERS:
        errs = [r["error"] for r in rows if r["optimizer"] == opt]
        big = [abs(r["error"]) for r in rows if r["optimizer"] == opt
               and r["measured"] >= 8 * 2**20]
        print(f"| {opt} | {100 * min(errs):+.2f}% | {100 * max(errs):+.2f}% | "
              f"{100 * max(big):.2f}% |")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"schema": SCHEMA + "/estimate", "rows": rows}, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--quick", action="store_true", help="a small network (CI smoke run)")
    p.add_argument("--reps", type=int, default=1, help="repetitions of the rss/time runs")
    p.add_argument("--steps", type=int, default=3, help="timed steps per rss/time run")
    p.add_argument("--segments", type=int, default=None,
                   help="checkpoint segments (default round(sqrt(layers)))")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--malloc-default", action="store_true",
                   help="keep glibc's adaptive mmap threshold (see the module docstring)")
    p.add_argument("--estimate-sweep", action="store_true",
                   help="check the estimate against measured steps instead (see above)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.worker:
        print(MARKER + json.dumps(run_worker(json.loads(args.worker))), flush=True)
        return 0
    if args.estimate_sweep:
        return estimate_sweep(args.out or RESULTS / "memory_estimate.json")
    args.out = args.out or RESULTS / "memory.json"

    w = QUICK if args.quick else FULL
    segments = args.segments or max(1, round(math.sqrt(w["layers"])))
    torch_missing = None
    if args.no_torch:
        torch_missing = "skipped (--no-torch)"
    elif importlib.util.find_spec("torch") is None:
        torch_missing = "torch is not installed (optional: pip install torch)"
    configs = [("chainrule", 1), ("chainrule", segments)]
    if torch_missing is None:
        configs.append(("torch", 1))
    records = []
    for seg in (1, segments):
        spec = dict(kind="tracemalloc", framework="chainrule", segments=seg, rep=0,
                    workload=w, seed=0)
        print(f"tracemalloc chainrule segments={seg} ...", file=sys.stderr, flush=True)
        records.append(_launch(spec, args.malloc_default))
    for rep in range(args.reps):
        for framework, seg in configs:
            spec = dict(kind="rss", framework=framework, segments=seg, rep=rep, workload=w,
                        seed=rep, steps=args.steps)
            print(f"rss/time {framework} segments={seg} rep {rep} ...", file=sys.stderr,
                  flush=True)
            records.append(_launch(spec, args.malloc_default))
    summary = summarise(records, configs)
    import numpy as np

    result = {
        "schema": SCHEMA, "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "workload": w, "segments": segments, "malloc_default": args.malloc_default,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__},
        "torch_missing": torch_missing, "records": records, "summary": summary,
        "verdicts": verdicts(summary, segments),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    Path(str(args.out) + ".md" if args.out.suffix != ".json"
         else args.out.with_suffix(".md")).write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
