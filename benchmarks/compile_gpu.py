"""cr.compile on a GPU: one self-contained check, for a machine with an NVIDIA GPU and CuPy.

(a) Correctness: the same 784-256-128-10 ReLU MLP trained eagerly and through ``cr.compile`` on
    ``cuda`` (float32, softmax cross-entropy, over batches that change every step) ends with
    bit-identical parameters, for SGD, SGD with momentum and Adam; and whether the compiled
    step was captured as a CUDA graph.
(b) Speed: samples/s of that step at batch 128, 1024 and 16384 for chainrule compiled,
    chainrule eager and PyTorch eager (float32, TF32 off everywhere), each timed over chunks of
    steps with one synchronisation per chunk (best of three chunks).

Run from the repository root (nothing else of chainrule's is needed: NumPy, CuPy, and PyTorch
for its row):

    PYTHONPATH=src python3 benchmarks/compile_gpu.py --out compile_gpu.json

It prints a table and writes the JSON to --out; it exits 2 when CuPy or a GPU is missing (with a
message), 1 when a correctness check failed, else 0. It takes about one to two minutes on an
H200 (the first run also compiles CuPy's kernels); ``--quick`` times shorter chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("CUPY_TF32", "0")  # no TF32 in CuPy's float32 products (the default)

SIZES = (784, 256, 128, 10)
BATCHES = (128, 1024, 16384)
N_BATCHES = 8
DEADLINE_S = 200.0  # stop timing new rows past this (the whole check must stay under 4 min)


def _fail(msg: str, code: int = 2) -> None:
    print(f"compile_gpu: {msg}", file=sys.stderr)
    sys.exit(code)


def _data(cp: Any, batch: int, seed: int = 0) -> list[tuple[Any, Any]]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_BATCHES):
        x = rng.random((batch, SIZES[0]), dtype=np.float32)
        y = rng.integers(0, SIZES[-1], batch)
        out.append((cp.asarray(x), cp.asarray(y)))
    return out


def _chainrule_step(batch_data: list[tuple[Any, Any]], opt_name: str, compiled: bool,
                    seed: int = 0) -> tuple[Any, Any, Any]:
    import chainrule as cr

    cr.manual_seed(seed)
    model = cr.nn.MLP(list(SIZES), activation="relu").to(device="cuda")
    if opt_name == "sgd":
        opt = cr.optim.SGD(model.parameters(), lr=0.01)
    elif opt_name == "momentum":
        opt = cr.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = cr.optim.Adam(model.parameters(), lr=1e-3)
    ce = cr.nn.functional.cross_entropy

    def step(x: Any, y: Any) -> Any:
        opt.zero_grad()
        loss = ce(model(x), y)
        loss.backward()
        opt.step()
        return loss

    f = cr.compile(step) if compiled else step
    tensors = [(cr.Tensor(x), cr.Tensor(y)) for x, y in batch_data]
    return model, f, tensors


def check_identity(cp: Any, quick: bool) -> list[dict[str, Any]]:
    """Eager and compiled training from the same start: the same parameters, bit for bit."""
    import numpy as np

    results = []
    for opt_name in ("sgd", "momentum", "adam"):
        for batch in (128,) if quick else (128, 1024):
            data = _data(cp, batch, seed=1)
            runs = []
            caught: list[str] = []
            for compiled in (False, True):
                model, f, tensors = _chainrule_step(data, opt_name, compiled)
                with warnings.catch_warnings(record=True) as w:
                    warnings.simplefilter("always")
                    losses = [float(f(x, y).item()) for x, y in tensors[:6]]
                caught += [str(m.message) for m in w]
                runs.append((model, losses, f))
            (m1, l1, _), (m2, l2, f2) = runs
            same = True
            worst = 0.0
            for p, q in zip(m1.parameters(), m2.parameters()):
                a, b = cp.asnumpy(p.data), cp.asnumpy(q.data)
                if not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
                    same = False
                    worst = max(worst, float(np.max(np.abs(a - b))))
            plan = getattr(f2, "plan", None)
            results.append({
                "optimizer": opt_name, "batch": batch, "identical_parameters": same,
                "max_abs_difference": worst, "identical_losses": l1 == l2,
                "compiled_stats": dict(getattr(f2, "stats", {})),
                "cuda_graph": bool(plan is not None and getattr(plan, "graph", None) is not None),
                "warnings": caught,
            })
            print(f"  identity {opt_name:9s} batch {batch:5d}: parameters "
                  f"{'identical' if same else f'DIFFER (max {worst:.3g})'}, losses "
                  f"{'identical' if l1 == l2 else 'differ'}, CUDA graph "
                  f"{'yes' if results[-1]['cuda_graph'] else 'no'}", flush=True)
    return results


def _time(run_steps: Any, sync: Any, target_s: float) -> tuple[float, int]:
    """Best seconds per step over three chunks of about ``target_s`` each."""
    run_steps(3)
    sync()
    t0 = time.perf_counter()
    run_steps(5)
    sync()
    per = max((time.perf_counter() - t0) / 5, 1e-6)
    n = max(5, int(target_s / per))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        run_steps(n)
        sync()
        best = min(best, (time.perf_counter() - t0) / n)
    return best, n


def bench_chainrule(cp: Any, batch: int, compiled: bool, target_s: float) -> dict[str, Any]:
    data = _data(cp, batch)
    _model, f, tensors = _chainrule_step(data, "sgd", compiled)
    state = {"i": 0}

    def run(n: int) -> None:
        i = state["i"]
        for _ in range(n):
            x, y = tensors[i]
            i = (i + 1) % len(tensors)
            f(x, y)
        state["i"] = i

    sec, n = _time(run, cp.cuda.get_current_stream().synchronize, target_s)
    plan = getattr(f, "plan", None)
    return {"samples_per_s": batch / sec, "step_ms": sec * 1e3, "steps_per_chunk": n,
            "cuda_graph": bool(plan is not None and getattr(plan, "graph", None) is not None)
            if compiled else None}


def bench_torch(batch: int, target_s: float) -> dict[str, Any] | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    torch.manual_seed(0)
    layers: list[Any] = []
    for k, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(a, b))
        if k < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    ce = torch.nn.functional.cross_entropy
    g = torch.Generator(device="cpu").manual_seed(0)
    data = [(torch.rand(batch, SIZES[0], generator=g).cuda(),
             torch.randint(0, SIZES[-1], (batch,), generator=g).cuda())
            for _ in range(N_BATCHES)]
    state = {"i": 0}

    def run(n: int) -> None:
        i = state["i"]
        for _ in range(n):
            x, y = data[i]
            i = (i + 1) % len(data)
            opt.zero_grad()
            loss = ce(model(x), y)
            loss.backward()
            opt.step()
        state["i"] = i

    sec, n = _time(run, torch.cuda.synchronize, target_s)
    return {"samples_per_s": batch / sec, "step_ms": sec * 1e3, "steps_per_chunk": n,
            "torch": torch.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="where to write the JSON results")
    ap.add_argument("--quick", action="store_true", help="shorter timing chunks")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    try:
        import cupy as cp
    except ImportError as exc:
        _fail(f"CuPy is not installed ({exc}); install the wheel for this CUDA "
              "(pip install cupy-cuda12x or cupy-cuda13x)")
    try:
        n_gpu = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001 - any CUDA failure: no usable GPU
        _fail(f"no usable GPU ({type(exc).__name__}: {exc})")
    if n_gpu < 1:
        _fail("no GPU visible to CuPy")
    import numpy as np

    import chainrule as cr

    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    print(f"GPU: {name}; CuPy {cp.__version__}; NumPy {np.__version__}; "
          f"chainrule {cr.__version__}", flush=True)
    report: dict[str, Any] = {
        "schema": "chainrule.benchmarks.compile_gpu/1",
        "machine": {"gpu": name, "cupy": cp.__version__, "numpy": np.__version__,
                    "python": platform.python_version(), "cuda_runtime":
                    cp.cuda.runtime.runtimeGetVersion(), "cupy_tf32": os.environ.get(
                        "CUPY_TF32")},
        "workload": {"sizes": list(SIZES), "activation": "relu", "dtype": "float32",
                     "loss": "cross_entropy", "optimizer": "SGD lr 0.01 (speed)"},
    }
    print("(a) compiled vs eager on cuda:", flush=True)
    try:
        report["identity"] = identity = check_identity(cp, args.quick)
    except Exception as exc:  # noqa: BLE001 - record it, and still time what can be timed
        import traceback

        traceback.print_exc()
        report["identity"] = identity = [{"error": f"{type(exc).__name__}: {exc}",
                                          "identical_parameters": False}]
    target = 0.25 if args.quick else 0.6
    rows = []
    print("(b) samples/s (float32, TF32 off):", flush=True)
    for batch in BATCHES:
        if time.perf_counter() - started > DEADLINE_S:
            print(f"  batch {batch}: skipped (time budget)", flush=True)
            continue
        row: dict[str, Any] = {"batch": batch}
        for key, run in (("chainrule_compiled", lambda: bench_chainrule(cp, batch, True, target)),
                         ("chainrule_eager", lambda: bench_chainrule(cp, batch, False, target)),
                         ("pytorch_eager", lambda: bench_torch(batch, target))):
            try:
                row[key] = run()
            except Exception as exc:  # noqa: BLE001 - record it, go on with the next
                import traceback

                traceback.print_exc()
                row[key] = {"error": f"{type(exc).__name__}: {exc}", "samples_per_s": None,
                            "cuda_graph": None}
        t = row["pytorch_eager"] if (row.get("pytorch_eager") or {}).get("samples_per_s") \
            else None
        if t:
            for key, name in (("chainrule_compiled", "compiled_vs_pytorch"),
                              ("chainrule_eager", "eager_vs_pytorch")):
                v = row[key].get("samples_per_s")
                if v:
                    row[name] = v / t["samples_per_s"]
        rows.append(row)

        def fmt(r: Any) -> str:
            v = (r or {}).get("samples_per_s")
            return f"{v:12,.0f}" if v else f"{'error':>12}"

        ratio = (f"  compiled/pytorch {row['compiled_vs_pytorch']:.2f}x"
                 if row.get("compiled_vs_pytorch") else "")
        print(f"  batch {batch:6d}: compiled {fmt(row['chainrule_compiled'])} (graph: "
              f"{row['chainrule_compiled'].get('cuda_graph')})  eager "
              f"{fmt(row['chainrule_eager'])}  pytorch {fmt(t) if t else '(not available)'}"
              f"{ratio}", flush=True)
    report["speed"] = rows
    targets = {}
    for row in rows:
        r = row.get("compiled_vs_pytorch")
        if r is not None:
            need = 3.0 if row["batch"] <= 1024 else 1.0
            targets[str(row["batch"])] = {"ratio": r, "target": need, "met": r >= need}
    report["targets"] = targets
    report["elapsed_s"] = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out} ({report['elapsed_s']:.0f} s)")
    return 0 if identity and all(r.get("identical_parameters") for r in identity) else 1


if __name__ == "__main__":
    sys.exit(main())
