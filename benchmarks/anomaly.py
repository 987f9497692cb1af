"""What ``cr.detect_anomaly()`` costs: nothing measurable off, and how much on.

Off, anomaly mode is one test of a module flag per operation (``autograd._anomaly_on``) and one
per backward node; on, every operation's output and inputs are scanned for NaN/inf and its
caller's frame is looked up. Three workloads, each timed as the best of several repeats:

    chain    forward + backward of 200 ``y = y * 1.0000001`` on a (4, 4) float32 tensor:
             the per-operation overhead, where a flag test would show first (us per op)
    step     one SGD step of the 64-64-10 tanh MLP at batch 32 (digits' shapes): forward,
             cross-entropy, backward, update (us per step); the MLP's fused path, 3 nodes
    unfused  the same step with ``nn.Sequential(Linear, Tanh, Linear)``: 5 nodes
    large    one SGD step of the 784-256-128-10 ReLU MLP at batch 128 (MNIST's shapes), where
             the arrays, not the Python overhead, dominate

in up to three modes: ``before`` (chainrule without anomaly mode: a source tree given with
``--baseline REV``, extracted with ``git archive``, or ``--baseline-src DIR``), ``off`` (this
checkout, anomaly mode off) and ``on`` (inside ``cr.detect_anomaly()``). Each mode runs in its
own subprocess (pinned to one CPU with ``--cpu``), the modes in turn, ``--rounds`` times. A
machine's speed drifts by more than the effect sought (on a shared VM, rounds of the same code
differed by 2x), so the comparisons are paired: the ratio of two modes measured one after the
other in the same round, and the report gives the median ratio over the rounds with its
quartiles, next to each mode's median time.

Run:  python -m benchmarks.anomaly [--quick] [--baseline REV | --baseline-src DIR] [--rounds N]
      [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import timeit
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("chain", "step", "unfused", "large")


# --------------------------------------------------------------------------- the worker
def _best(fn: Any, number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def worker(mode: str, quick: bool) -> dict[str, float]:
    """Time the workloads in this process (``mode`` "on" enters detect_anomaly)."""
    import contextlib

    import numpy as np

    import chainrule as cr

    number, repeat = (20, 3) if quick else (200, 7)
    ctx = cr.detect_anomaly() if mode == "on" else contextlib.nullcontext()
    out: dict[str, float] = {}
    with ctx:
        x = cr.tensor(np.ones((4, 4), dtype=np.float32), requires_grad=True)
        seed = np.ones((4, 4), dtype=np.float32)

        def chain() -> None:
            x.grad = None
            y = x
            for _ in range(200):
                y = y * 1.0000001
            y.backward(seed)

        out["chain"] = _best(chain, max(1, number // 10), repeat) / 200
        rng = np.random.default_rng(0)
        xb = cr.tensor(rng.random((32, 64), dtype=np.float32))
        yb = cr.tensor(rng.integers(0, 10, 32))
        big_x = cr.tensor(rng.random((128, 784), dtype=np.float32))
        big_y = cr.tensor(rng.integers(0, 10, 128))
        for name in ("step", "unfused", "large"):
            cr.manual_seed(0)
            inputs, targets, n = xb, yb, number
            if name == "step":
                model = cr.nn.MLP([64, 64, 10], activation="tanh")
            elif name == "unfused":
                model = cr.nn.Sequential(cr.nn.Linear(64, 64), cr.nn.Tanh(),
                                         cr.nn.Linear(64, 10))
            else:
                model = cr.nn.MLP([784, 256, 128, 10], activation="relu")
                inputs, targets, n = big_x, big_y, max(1, number // 20)
            opt = cr.optim.SGD(model.parameters(), lr=0.01)

            def step() -> None:
                opt.zero_grad()
                cr.nn.functional.cross_entropy(model(inputs), targets).backward()
                opt.step()

            out[name] = _best(step, n, repeat)
    return out


# --------------------------------------------------------------------------- the driver
def _extract(rev: str, into: Path) -> Path:
    """``src/`` of ``rev`` (git archive) under ``into``."""
    blob = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=ROOT, check=True,
                          capture_output=True).stdout
    tar_path = into / "src.tar"
    tar_path.write_bytes(blob)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="data") if sys.version_info >= (3, 12) else tar.extractall(into)
    return into / "src"


def _run_worker(mode: str, src: Path, quick: bool, cpu: int | None = None) -> dict[str, float]:
    """One worker's timings, after checking that it imported chainrule from ``src``."""
    env = dict(os.environ)
    # the source tree to import chainrule from: PYTHONPATH comes before an editable install;
    # CHAINRULE_SRC is read by this project's development environment
    env["PYTHONPATH"] = str(src) + os.pathsep + str(ROOT)
    env["CHAINRULE_SRC"] = str(src)
    pin = f"import os; os.sched_setaffinity(0, {{{cpu}}}); " if cpu is not None else ""
    code = (f"{pin}import json, chainrule; from benchmarks.anomaly import worker; "
            f"print(json.dumps([chainrule.__file__, worker({mode!r}, {quick!r})]))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True,
                          capture_output=True, text=True)
    where, times = json.loads(proc.stdout.strip().splitlines()[-1])
    if not Path(where).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"the {mode!r} worker imported chainrule from {where}, not {src}")
    return times


def run(quick: bool, baseline: str | None, rounds: int,
        baseline_src: Path | None = None, cpu: int | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        sources = {"off": ROOT / "src", "on": ROOT / "src"}
        if baseline:
            sources = {"before": _extract(baseline, Path(tmp)), **sources}
        elif baseline_src is not None:
            sources = {"before": baseline_src.resolve(), **sources}
        samples: dict[str, list[dict[str, float]]] = {m: [] for m in sources}
        for r in range(rounds):   # the order alternates, so that no mode always runs first
            for mode, src in (list(sources.items()) if r % 2 == 0 else
                              list(sources.items())[::-1]):
                samples[mode].append(_run_worker(mode, src, quick, cpu))
    medians = {m: {w: statistics.median(s[w] for s in runs) for w in WORKLOADS}
               for m, runs in samples.items()}
    pairs = [("on", "off")] + ([("off", "before")] if "before" in samples else [])
    ratios = {f"{a}/{b}": {w: _quartiles([x[w] / y[w] for x, y in zip(samples[a], samples[b])])
                           for w in WORKLOADS} for a, b in pairs}
    import numpy as np

    import chainrule as cr

    return {"meta": {"quick": quick, "rounds": rounds, "baseline": baseline,
                     "python": sys.version.split()[0], "numpy": np.__version__,
                     "machine": platform.machine(), "cpus": os.cpu_count(), "pinned_cpu": cpu,
                     "chainrule": cr.__version__,
                     "units": {"chain": "us per op (forward + backward)",
                               "step": "us per training step", "unfused": "us per step",
                               "large": "us per step"}},
            "median": medians, "paired_ratio": ratios, "flag_test_ns": _flag_test_ns(),
            "samples": samples}


def _flag_test_ns() -> float:
    """What anomaly mode adds per operation when off: the test of a module-level flag, as
    ``apply`` does it (best of several million, minus an empty statement's time)."""
    g = {"_anomaly_on": False}
    flag = min(timeit.repeat("if _anomaly_on: pass", globals=g, number=2_000_000, repeat=5))
    empty = min(timeit.repeat("pass", globals=g, number=2_000_000, repeat=5))
    return max(0.0, (flag - empty) / 2_000_000 * 1e9)


def _quartiles(values: list[float]) -> dict[str, float]:
    """Median and quartiles (the quartiles are the median itself for fewer than 4 values)."""
    if len(values) < 4:
        m = statistics.median(values)
        return {"median": m, "q1": m, "q3": m}
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return {"median": q2, "q1": q1, "q3": q3}


def table(result: dict[str, Any]) -> str:
    med = result["median"]
    ratios = result["paired_ratio"]
    modes = list(med)
    units = result["meta"]["units"]

    def ratio(key: str, w: str) -> str:
        if key not in ratios:
            return "-"
        r = ratios[key][w]
        return f"x{r['median']:.3f} ({r['q1']:.3f}-{r['q3']:.3f})"

    lines = ["| workload | " + " | ".join(f"{m} (median)" for m in modes) +
             " | off / before, paired (quartiles) | on / off, paired (quartiles) |",
             "|---|" + "---:|" * (len(modes) + 2)]
    for w in WORKLOADS:
        row = [f"{med[m][w]:.2f}" for m in modes]
        lines.append(f"| {w} ({units[w]}) | " + " | ".join(row) +
                     f" | {ratio('off/before', w)} | {ratio('on/off', w)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI smoke run)")
    parser.add_argument("--baseline", help="a git revision without anomaly mode to compare "
                        "'off' with (e.g. the commit before it)")
    parser.add_argument("--baseline-src", type=Path, help="or the src/ folder of such a "
                        "checkout (where there is no git)")
    parser.add_argument("--label", default=None, help="what --baseline-src is, for the report")
    parser.add_argument("--cpu", type=int, default=None, help="pin every worker to this CPU")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of every mode "
                        "(default 7, 1 with --quick)")
    parser.add_argument("--out", type=Path, default=RESULTS / "anomaly.json",
                        help="the JSON (and a .md beside it); default benchmarks/results/")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 7)
    result = run(args.quick, args.baseline, rounds, args.baseline_src, args.cpu)
    if args.baseline_src is not None:
        result["meta"]["baseline"] = args.label or str(args.baseline_src)
    text = table(result) + (f"\n\nThe flag test that ``apply`` and ``backward`` do per operation "
                            f"when anomaly mode is off: {result['flag_test_ns']:.1f} ns.")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(
        f"# detect_anomaly cost\n\n`python -m benchmarks.anomaly "
        f"{'--quick ' if args.quick else ''}"
        f"{'--baseline ' + args.baseline + ' ' if args.baseline else ''}--rounds {rounds}`"
        f"{' (before: ' + result['meta']['baseline'] + ')' if result['meta']['baseline'] else ''}"
        f"{'; workers pinned to CPU ' + str(args.cpu) if args.cpu is not None else ''}. Times: "
        f"medians over the rounds of each mode's best time; ratios: medians over the rounds "
        f"of the two modes' times in the same round.\n\n{text}\n")
    print(f"saved {args.out}")
    return result


if __name__ == "__main__":
    main()
