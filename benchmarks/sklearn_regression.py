"""chainrule.sklearn.MLPRegressor against scikit-learn's MLPRegressor on a synthetic regression.

The data: ``make_regression(n_samples=2000, n_features=20, noise=5, random_state=0)``, X and y
standardised, split 75/25 with ``train_test_split(random_state=0)``. Both estimators get
scikit-learn's defaults (one hidden layer of 100 ReLU units, Adam with lr 1e-3, alpha 1e-4,
batches of 200, up to 200 epochs, tol 1e-4 with 10 epochs of patience) and ``random_state``
= seed, in float64 and in float32 (scikit-learn's MLP keeps float32 input in float32; chainrule
gets ``dtype="float32"``), fits interleaved as in ``benchmarks.sklearn_digits`` (whose ``run``
this script calls). The score is R^2 on the held-out quarter (in the JSON it is under the
digits benchmark's ``accuracy`` keys).

Run (from the repository root):
    python -m benchmarks.sklearn_regression                  # seeds 0-4, 3 repetitions
    python -m benchmarks.sklearn_regression --blas-threads 1
    python -m benchmarks.sklearn_regression --quick          # seed 0, 1 repetition
Output: benchmarks/results/sklearn_regression.json and .md (``--out PATH`` moves both).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .sklearn_digits import RESULTS, markdown, measure, parser, run, save

SCHEMA = "chainrule.benchmarks.sklearn_regression/1"

SAME_DTYPE = {"sklearn": ("sklearn", None), "sklearn-float32": ("sklearn-float32", np.float32),
              "chainrule": ("sklearn", None), "chainrule-float32": ("sklearn-float32", None)}


def estimators() -> dict[str, Any]:
    """Name -> factory of an unfitted estimator for a seed."""
    from sklearn.neural_network import MLPRegressor as SkMLP

    from chainrule.sklearn import MLPRegressor

    return {
        "sklearn": lambda seed: SkMLP(random_state=seed),
        "sklearn-float32": lambda seed: SkMLP(random_state=seed),
        "chainrule": lambda seed: MLPRegressor(random_state=seed),
        "chainrule-float32": lambda seed: MLPRegressor(random_state=seed, dtype="float32"),
    }


def data() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import make_regression
    from sklearn.model_selection import train_test_split

    X, y = make_regression(n_samples=2000, n_features=20, noise=5.0, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (y - y.mean()) / y.std()
    return tuple(train_test_split(X, y, test_size=0.25, random_state=0))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    result = measure(args, lambda seeds, reps: {
        "schema": SCHEMA, **run(seeds, reps, data(), estimators(), SAME_DTYPE)})
    save(result, args.out or RESULTS / "sklearn_regression.json",
         markdown(result, "chainrule.sklearn vs scikit-learn MLPRegressor (make_regression "
                  "2000 x 20)", score="test R^2", percent=False))
    return result


if __name__ == "__main__":
    main()
