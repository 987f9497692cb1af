"""chainrule.sklearn.MLPClassifier against scikit-learn's MLPClassifier on the digits data set.

Both estimators get the same data and the same settings: ``load_digits``, split 75/25 with
``train_test_split(random_state=0)``, no preprocessing, and the defaults of scikit-learn's MLP
(one hidden layer of 100 ReLU units, Adam with lr 1e-3, alpha 1e-4, batches of 200, up to 200
epochs, tol 1e-4 with 10 epochs of patience), each with ``random_state=seed``. Each runs twice:
in float64 (the data's dtype; both estimators' default) and in float32 (scikit-learn's MLP keeps
float32 input in float32, so it gets ``X.astype(np.float32)``; chainrule gets ``dtype="float32"``
and casts the float64 data itself). The casts happen inside the timed fit. Besides the speed-up
over scikit-learn's default (float64) fit, the report gives the speed-up over scikit-learn in the
same dtype, the like-for-like comparison.

A fifth row, ``numpy-float32``, fits ``benchmarks/numpy_classifier.py``: a hand-written float32
NumPy classifier with the same initialisation, Adam, batches and stopping rule, every array
preallocated. It is the yardstick for the library's own overhead: what the same fit costs in
plain NumPy, with nothing generic in the way.

For every seed the fits are interleaved (sklearn, sklearn float32, chainrule, chainrule float32,
sklearn, ...)
``--reps`` times, so a slow spell of the machine hits all of them; a fit's time is the median
over its repetitions. Reported per estimator: test accuracy, epochs run (``n_iter_``), fit time
and time per epoch (the estimators may stop after different numbers of epochs: chainrule's Adam
is PyTorch's, whose epsilon enters after the bias correction, so the trajectories drift apart),
and the speed-up over scikit-learn. ``--blas-threads N`` caps the BLAS threads of the whole
process (both estimators) with threadpoolctl; by default they are left as the machine sets them.

Run (from the repository root):
    python -m benchmarks.sklearn_digits                   # seeds 0-4, 3 repetitions (~2 min)
    python -m benchmarks.sklearn_digits --binary          # the two-class task digit >= 5
    python -m benchmarks.sklearn_digits --blas-threads 1
    python -m benchmarks.sklearn_digits --quick           # seed 0, 1 repetition
Output: benchmarks/results/sklearn_digits.json and .md (``--out PATH`` moves both).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SCHEMA = "chainrule.benchmarks.sklearn_digits/1"


# name -> (the scikit-learn run it is compared with in the same dtype, the dtype X is cast to
# inside the timed fit, or None to pass the float64 data as it is)
SAME_DTYPE = {"sklearn": ("sklearn", None), "sklearn-float32": ("sklearn-float32", np.float32),
              "chainrule": ("sklearn", None), "chainrule-float32": ("sklearn-float32", None),
              "numpy-float32": ("sklearn-float32", None)}


def estimators() -> dict[str, Any]:
    """Name -> factory of an unfitted estimator for a seed."""
    from sklearn.neural_network import MLPClassifier as SkMLP

    from chainrule.sklearn import MLPClassifier

    from .numpy_classifier import HandwrittenMLPClassifier

    return {
        "sklearn": lambda seed: SkMLP(random_state=seed),
        "sklearn-float32": lambda seed: SkMLP(random_state=seed),
        "chainrule": lambda seed: MLPClassifier(random_state=seed),
        "chainrule-float32": lambda seed: MLPClassifier(random_state=seed, dtype="float32"),
        "numpy-float32": lambda seed: HandwrittenMLPClassifier(random_state=seed),
    }


def data() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    return tuple(train_test_split(X, y, test_size=0.25, random_state=0))


def fit_once(make: Any, seed: int, split: tuple[np.ndarray, ...], cast: Any = None
             ) -> dict[str, Any]:
    X_train, X_test, y_train, y_test = split
    est = make(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning when a seed runs to max_iter
        start = time.perf_counter()
        est.fit(X_train if cast is None else X_train.astype(cast), y_train)
        seconds = time.perf_counter() - start
    dtype = est.coefs_[0].dtype
    X_eval = X_test.astype(dtype)  # scored in the network's own dtype
    return {"seconds": seconds, "n_iter": int(est.n_iter_),
            "accuracy": float(est.score(X_eval, y_test)), "final_loss": float(est.loss_),
            "weights_dtype": str(dtype)}


def run(seeds: list[int], reps: int, split: tuple[np.ndarray, ...] | None = None,
        makers: dict[str, Any] | None = None,
        same_dtype: dict[str, tuple[str, Any]] | None = None) -> dict[str, Any]:
    """Fit every estimator of ``makers`` (default: this benchmark's) on ``split`` (default:
    digits) for each seed, interleaved ``reps`` times; ``same_dtype`` maps each name to its
    same-dtype scikit-learn peer and the dtype its X is cast to (default ``SAME_DTYPE``). The
    score is the estimator's ``score`` (accuracy, or R^2 for a regressor)."""
    split = data() if split is None else split
    makers = estimators() if makers is None else makers
    same_dtype = SAME_DTYPE if same_dtype is None else same_dtype
    for name, make in makers.items():  # warm-up: imports, first BLAS calls, page faults
        est = make(0).set_params(max_iter=2)
        cast = same_dtype[name][1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(split[0] if cast is None else split[0].astype(cast), split[2])
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}
    for seed in seeds:
        times: dict[str, list[float]] = {name: [] for name in makers}
        last: dict[str, dict[str, Any]] = {}
        for _ in range(reps):
            for name, make in makers.items():
                r = fit_once(make, seed, split, same_dtype[name][1])
                times[name].append(r["seconds"])
                last[name] = r
        for name in makers:
            r = dict(last[name], seed=seed, seconds=statistics.median(times[name]),
                     seconds_all=times[name])
            r["seconds_per_epoch"] = r["seconds"] / r["n_iter"]
            runs[name].append(r)
    summary = {}
    for name, rs in runs.items():
        summary[name] = {
            "accuracy_seed0": next((r["accuracy"] for r in rs if r["seed"] == 0), None),
            "accuracy_mean": statistics.mean(r["accuracy"] for r in rs),
            "n_iter_mean": statistics.mean(r["n_iter"] for r in rs),
            "fit_seconds_total": sum(r["seconds"] for r in rs),
            "seconds_per_epoch_median": statistics.median(r["seconds_per_epoch"] for r in rs),
            "weights_dtype": rs[-1]["weights_dtype"],
        }
    base = summary["sklearn"]
    for s in summary.values():
        s["fit_speedup_vs_sklearn"] = base["fit_seconds_total"] / s["fit_seconds_total"]
        s["epoch_speedup_vs_sklearn"] = (base["seconds_per_epoch_median"]
                                         / s["seconds_per_epoch_median"])
        s["accuracy_points_vs_sklearn_seed0"] = (
            None if s["accuracy_seed0"] is None
            else 100 * (s["accuracy_seed0"] - base["accuracy_seed0"]))
    for name, s in summary.items():
        same = summary[same_dtype[name][0]]
        s["same_dtype_peer"] = same_dtype[name][0]
        s["fit_speedup_same_dtype"] = same["fit_seconds_total"] / s["fit_seconds_total"]
        s["epoch_speedup_same_dtype"] = (same["seconds_per_epoch_median"]
                                         / s["seconds_per_epoch_median"])
    return {"runs": runs, "summary": summary}


def environment(blas_threads: int | None) -> dict[str, Any]:
    import sklearn
    import threadpoolctl

    import chainrule

    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(), "numpy": np.__version__,
        "scikit-learn": sklearn.__version__, "chainrule": chainrule.__version__,
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "blas_threads_cap": blas_threads,
        "blas": [{k: info.get(k) for k in ("internal_api", "num_threads", "version")}
                 for info in threadpoolctl.threadpool_info()],
    }


def markdown(result: dict[str, Any],
             title: str = "chainrule.sklearn vs scikit-learn MLPClassifier on digits",
             score: str = "test acc.", percent: bool = True) -> str:
    env, summary = result["environment"], result["summary"]

    def fmt(v: float) -> str:
        return f"{100 * v:.2f}%" if percent else f"{v:.4f}"

    lines = [
        f"# {title}",
        "",
        f"{env['date']}, scikit-learn {env['scikit-learn']}, NumPy {env['numpy']}, "
        f"{env['cpus']} CPUs, load average {env['load_average']}, BLAS threads "
        f"{'as set by the machine' if env['blas_threads_cap'] is None else env['blas_threads_cap']}"
        f", seeds {result['seeds']}, {result['reps']} repetitions.",
        "",
        "Speed-ups are scikit-learn's time divided by the estimator's: over scikit-learn's "
        "default (float64) fit, and over scikit-learn in the same dtype.",
        "",
        f"| estimator | weights | {score} (seed 0) | mean {score} | mean epochs "
        "| fit time (s, all seeds) | s/epoch | fit speed-up | per-epoch speed-up "
        "| fit speed-up, same dtype |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        same = (f"{s['fit_speedup_same_dtype']:.2f}x vs {s['same_dtype_peer']}"
                if s["same_dtype_peer"] != name else "-")
        lines.append(
            f"| {name} | {s['weights_dtype']} | {fmt(s['accuracy_seed0'])} | "
            f"{fmt(s['accuracy_mean'])} | {s['n_iter_mean']:.1f} | "
            f"{s['fit_seconds_total']:.2f} | {1000 * s['seconds_per_epoch_median']:.2f} ms | "
            f"{s['fit_speedup_vs_sklearn']:.2f}x | {s['epoch_speedup_vs_sklearn']:.2f}x | "
            f"{same} |")
    return "\n".join(lines) + "\n"


def parser(description: str) -> argparse.ArgumentParser:
    """The options these benchmarks share: --seeds, --reps, --blas-threads, --quick, --out."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seeds", type=int, default=5, help="seeds 0 .. N-1 (default 5)")
    p.add_argument("--reps", type=int, default=3, help="timed fits per seed (default 3)")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="cap the BLAS threads of both estimators (threadpoolctl)")
    p.add_argument("--quick", action="store_true", help="seed 0, one repetition")
    p.add_argument("--out", type=Path, default=None, help="JSON path (the .md goes next to it)")
    return p


def measure(args: argparse.Namespace, body: Any) -> dict[str, Any]:
    """``body(seeds, reps)`` (a dict of results) under the BLAS thread cap of ``args``, with
    the seeds, repetitions and environment added."""
    seeds = [0] if args.quick else list(range(args.seeds))
    reps = 1 if args.quick else args.reps
    limit: Any = contextlib.nullcontext()
    if args.blas_threads is not None:
        import threadpoolctl

        limit = threadpoolctl.threadpool_limits(limits=args.blas_threads, user_api="blas")
    with limit:
        env = environment(args.blas_threads)
        result = {"seeds": seeds, "reps": reps, **body(seeds, reps)}
    result["environment"] = env
    return result


def save(result: dict[str, Any], out: Path, text: str) -> None:
    """Write ``result`` as JSON to ``out``, ``text`` next to it as .md, and print the text."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--binary", action="store_true",
                   help="the binary task digit >= 5 (one logistic output) instead of the "
                        "10 classes; without the hand-written NumPy row, which is softmax")
    args = p.parse_args(argv)
    out = args.out or RESULTS / ("sklearn_digits_binary.json" if args.binary
                                 else "sklearn_digits.json")

    def body(seeds: list[int], reps: int) -> dict[str, Any]:
        if not args.binary:
            return {"schema": SCHEMA, "task": "10 classes", **run(seeds, reps)}
        X_train, X_test, y_train, y_test = data()
        split = (X_train, X_test, (y_train >= 5).astype(int), (y_test >= 5).astype(int))
        makers = {k: v for k, v in estimators().items() if not k.startswith("numpy")}
        return {"schema": SCHEMA, "task": "binary: digit >= 5", **run(seeds, reps, split, makers)}

    result = measure(args, body)
    save(result, out, markdown(result, "chainrule.sklearn vs scikit-learn MLPClassifier on "
                               "digits" + (", binary (digit >= 5)" if args.binary else "")))
    return result


if __name__ == "__main__":
    main()
