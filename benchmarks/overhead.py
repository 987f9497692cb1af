"""Python overhead per primitive on small arrays, next to the raw NumPy call.

On a (4, 4) float32 array the arithmetic itself costs well under a microsecond, so what this
measures is the engine: wrapping operands, recording the graph node, the backward walk. For each
primitive it reports, in microseconds per call (best of several repeats):

    numpy      the raw NumPy expression
    no_grad    chainrule forward inside ``no_grad()`` (nothing recorded)
    forward    chainrule forward with inputs that require grad (a node is recorded)
    overhead   forward - numpy
    fwd+bwd    forward plus ``backward()`` with a given seed

and the per-op forward and backward cost of a long chain ``y = y * 1.0000001``.

Then whole training steps on tiny arrays (batch 2, a few units per layer, so that the
arithmetic is negligible and what is timed is Python): microseconds per step eagerly and under
``cr.compile`` (traced once, replayed), for the fused network of ``nn.MLP`` with softmax
cross-entropy and SGD or Adam (the buffered kernels of ``chainrule.compile.kernels``), and for a
step of separate primitives (``F.linear``, ``tanh``, MSE; every op through its own eager
function, the generic lowering).

Run:  python -m benchmarks.overhead [--quick] [--out PATH] [--baseline PATH]
``--quick`` is a CI smoke run of a few seconds; ``--baseline`` prints a saved run's forward and
fwd+bwd columns next to this one's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import chainrule as cr

RESULTS = Path(__file__).resolve().parent / "results"
SHAPE = (4, 4)


def _np_softmax(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _np_logsumexp(a: np.ndarray) -> np.ndarray:
    m = a.max(axis=-1, keepdims=True)
    return (np.log(np.exp(a - m).sum(axis=-1, keepdims=True)) + m)[..., 0]


# name -> (raw NumPy call, chainrule call, number of tensor inputs, positive inputs?)
CASES: dict[str, tuple[Callable[..., Any], Callable[..., Any], int, bool]] = {
    "add": (lambda a, b: a + b, lambda a, b: a + b, 2, False),
    "add scalar": (lambda a: a + 1.5, lambda a: a + 1.5, 1, False),
    "sub": (lambda a, b: a - b, lambda a, b: a - b, 2, False),
    "mul": (lambda a, b: a * b, lambda a, b: a * b, 2, False),
    "mul scalar": (lambda a: a * 1.0000001, lambda a: a * 1.0000001, 1, False),
    "div": (lambda a, b: a / b, lambda a, b: a / b, 2, True),
    "neg": (lambda a: -a, lambda a: -a, 1, False),
    "pow scalar": (lambda a: a**3, lambda a: a**3, 1, False),
    "pow tensor": (lambda a, b: a**b, lambda a, b: a**b, 2, True),
    "exp": (np.exp, cr.exp, 1, False),
    "log": (np.log, cr.log, 1, True),
    "sqrt": (np.sqrt, cr.sqrt, 1, True),
    "abs": (np.abs, cr.abs, 1, False),
    "tanh": (np.tanh, cr.tanh, 1, False),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), cr.sigmoid, 1, False),
    "relu": (lambda a: np.maximum(a, 0), cr.relu, 1, False),
    "leaky_relu": (lambda a: np.where(a > 0, a, a * 0.01), cr.leaky_relu, 1, False),
    "maximum": (np.maximum, cr.maximum, 2, False),
    "clip": (lambda a: np.clip(a, -0.5, 0.5), lambda a: cr.clip(a, -0.5, 0.5), 1, False),
    "sum": (np.sum, cr.sum, 1, False),
    "sum axis=1": (lambda a: a.sum(axis=1), lambda a: a.sum(axis=1), 1, False),
    "mean": (np.mean, cr.mean, 1, False),
    "max axis=1": (lambda a: a.max(axis=1), lambda a: a.max(axis=1), 1, False),
    "var": (np.var, cr.var, 1, False),
    "logsumexp": (_np_logsumexp, lambda a: cr.logsumexp(a, axis=-1), 1, False),
    "softmax": (_np_softmax, cr.softmax, 1, False),
    "matmul": (lambda a, b: a @ b, lambda a, b: a @ b, 2, False),
    "reshape": (lambda a: a.reshape(16), lambda a: a.reshape(16), 1, False),
    "transpose": (lambda a: a.T, lambda a: a.T, 1, False),
    "getitem": (lambda a: a[1:3], lambda a: a[1:3], 1, False),
    "concat": (lambda a, b: np.concatenate([a, b]), lambda a, b: cr.concat([a, b]), 2, False),
}


def _best(fn: Callable[[], Any], number: int, repeat: int) -> float:
    """Best time per call in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def measure_op(name: str, number: int, repeat: int) -> dict[str, Any]:
    np_fn, cr_fn, n_in, positive = CASES[name]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(n_in)]
    if positive:
        arrays = [np.abs(a) + 0.5 for a in arrays]
    consts = [cr.tensor(a) for a in arrays]
    leaves = [cr.tensor(a, requires_grad=True) for a in arrays]
    seed = np.ones(cr_fn(*leaves).shape, dtype=np.float32)

    def no_grad() -> None:
        with cr.no_grad():
            cr_fn(*consts)

    def fwd_bwd() -> None:
        for t in leaves:
            t.grad = None
        cr_fn(*leaves).backward(seed)

    row = {
        "op": name,
        "numpy_us": _best(lambda: np_fn(*arrays), number, repeat),
        "no_grad_us": _best(no_grad, number, repeat),
        "forward_us": _best(lambda: cr_fn(*leaves), number, repeat),
        "forward_backward_us": _best(fwd_bwd, number, repeat),
    }
    row["overhead_us"] = row["forward_us"] - row["numpy_us"]
    return row


def measure_chain(n: int) -> dict[str, float]:
    """Per-op forward and backward cost of ``y = y * 1.0000001`` repeated ``n`` times."""
    x = cr.tensor(np.ones(SHAPE, dtype=np.float32), requires_grad=True)
    start = time.perf_counter()
    y = x
    for _ in range(n):
        y = y * 1.0000001
    mid = time.perf_counter()
    y.sum().backward()
    end = time.perf_counter()
    return {"n": n, "forward_us_per_op": (mid - start) / n * 1e6,
            "backward_us_per_op": (end - mid) / n * 1e6}


def _step_case(name: str) -> Callable[[], Callable[[Any, Any], Any]]:
    F = cr.nn.functional

    def make() -> tuple[Any, Any]:
        cr.manual_seed(0)
        rng = np.random.default_rng(0)
        if name.startswith("mlp"):
            model = cr.nn.MLP([8, 16, 16, 4], activation="tanh")
            opt = (cr.optim.Adam if "adam" in name else cr.optim.SGD)(model.parameters(),
                                                                      lr=1e-3)
            loss_fn = F.cross_entropy
            x = cr.tensor(rng.standard_normal((2, 8)).astype(np.float32))
            y = cr.tensor(rng.integers(0, 4, 2))
        else:
            W1 = cr.nn.Parameter(cr.randn(16, 8) * 0.1)
            b1 = cr.nn.Parameter(cr.zeros(16))
            W2 = cr.nn.Parameter(cr.randn(4, 16) * 0.1)
            params = [W1, b1, W2]
            opt = cr.optim.SGD(params, lr=1e-3)

            def model(x: Any) -> Any:
                return F.linear(F.linear(x, W1, b1).tanh(), W2)

            loss_fn = F.mse_loss
            x = cr.tensor(rng.standard_normal((2, 8)).astype(np.float32))
            y = cr.tensor(rng.standard_normal((2, 4)).astype(np.float32))

        def step(xb: Any, yb: Any) -> Any:
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            return loss

        return step, (x, y)

    return make


STEP_CASES = {
    "mlp + cross_entropy + SGD": _step_case("mlp-sgd"),
    "mlp + cross_entropy + Adam": _step_case("mlp-adam"),
    "linear/tanh/mse + SGD": _step_case("primitives"),
}


def measure_steps(number: int, repeat: int) -> list[dict[str, Any]]:
    """Microseconds per training step on tiny arrays (Python time): eager and compiled."""
    rows = []
    for name, make in STEP_CASES.items():
        row: dict[str, Any] = {"step": name}
        for mode in ("eager", "compiled"):
            step, args = make()
            f = cr.compile(step, strict=True) if mode == "compiled" else step
            for _ in range(3):
                f(*args)
            row[f"{mode}_us"] = _best(lambda: f(*args), number, repeat)
        row["speedup"] = row["eager_us"] / row["compiled_us"]
        rows.append(row)
    return rows


def run(quick: bool) -> dict[str, Any]:
    number, repeat = (100, 3) if quick else (2000, 7)
    rows = [measure_op(name, number, repeat) for name in CASES]
    chain = measure_chain(10_000 if quick else 100_000)
    steps = measure_steps(*((50, 3) if quick else (1000, 7)))
    return {
        "meta": {
            "shape": list(SHAPE), "dtype": "float32", "quick": quick, "number": number,
            "repeat": repeat, "python": sys.version.split()[0], "numpy": np.__version__,
            "machine": platform.machine(), "processor": platform.processor(),
            "chainrule": cr.__version__,
        },
        "rows": rows,
        "chain_mul_scalar": chain,
        "steps": steps,
    }


def table(result: dict[str, Any], baseline: dict[str, Any] | None = None) -> str:
    old = {r["op"]: r for r in baseline["rows"]} if baseline else {}
    head = f"{'op':<12} {'numpy':>7} {'no_grad':>8} {'forward':>8} {'overhead':>9} {'fwd+bwd':>8}"
    if old:
        head += f" | {'fwd before':>10} {'fwd+bwd before':>14}"
    lines = [f"microseconds per call, shape {tuple(result['meta']['shape'])} "
             f"{result['meta']['dtype']}", head, "-" * len(head)]
    for r in result["rows"]:
        line = (f"{r['op']:<12} {r['numpy_us']:7.2f} {r['no_grad_us']:8.2f} {r['forward_us']:8.2f}"
                f" {r['overhead_us']:9.2f} {r['forward_backward_us']:8.2f}")
        if r["op"] in old:
            o = old[r["op"]]
            line += f" | {o['forward_us']:10.2f} {o['forward_backward_us']:14.2f}"
        lines.append(line)
    c = result["chain_mul_scalar"]
    lines.append(f"chain of {c['n']} `y = y * 1.0000001`: forward {c['forward_us_per_op']:.2f} "
                 f"us/op, backward {c['backward_us_per_op']:.2f} us/op")
    if baseline:
        b = baseline["chain_mul_scalar"]
        lines.append(f"  before (chain of {b['n']}): forward {b['forward_us_per_op']:.2f} us/op, "
                     f"backward {b['backward_us_per_op']:.2f} us/op")
    if result.get("steps"):
        lines += ["", "microseconds per training step on tiny arrays (batch 2): Python time",
                  f"{'step':<30} {'eager':>8} {'compiled':>9} {'speedup':>8}"]
        for r in result["steps"]:
            lines.append(f"{r['step']:<30} {r['eager_us']:8.1f} {r['compiled_us']:9.1f} "
                         f"{r['speedup']:7.1f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (CI smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS / "overhead.json",
                        help="where to save the JSON (default benchmarks/results/overhead.json)")
    parser.add_argument("--baseline", type=Path, help="a saved run to print alongside")
    args = parser.parse_args(argv)
    result = run(args.quick)
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    print(table(result, baseline))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")
    return result


if __name__ == "__main__":
    main()
