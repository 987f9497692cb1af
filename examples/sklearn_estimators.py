"""chainrule's scikit-learn estimators as drop-ins: a Pipeline with a grid search, the lecture's
square loss with sign(h(x)) for two classes, and a regressor; each timed next to scikit-learn's
own MLP on the same data and settings.

Run:  python examples/sklearn_estimators.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier as SkMLPClassifier
from sklearn.neural_network import MLPRegressor as SkMLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from chainrule.sklearn import MLPClassifier, MLPRegressor


def _timed(estimator, X, y):
    start = time.perf_counter()
    estimator.fit(X, y)
    return estimator, time.perf_counter() - start


def main(seed: int = 0) -> dict[str, float]:
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    results = {}

    # 1. Ten digits: a pipeline (scaling + network) and a small grid over the L2 penalty.
    X, y = load_digits(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,),
                                                         max_iter=60, random_state=seed))
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=3)
    grid, seconds = _timed(grid, X_tr, y_tr)
    results["digits_accuracy"] = grid.score(X_te, y_te)
    print(f"digits, Pipeline + GridSearchCV (6 fits + refit) in {seconds:.2f}s: best alpha "
          f"{grid.best_params_['mlpclassifier__alpha']}, test accuracy "
          f"{results['digits_accuracy']:.4f}")

    # 2. Two classes with the lecture's square loss: targets -1/+1, prediction sign(h(x)).
    binary = (y >= 5).astype(int)
    Xb_tr, Xb_te, yb_tr, yb_te = train_test_split(X / 16.0, binary, test_size=0.25,
                                                  random_state=0)
    ours, t_ours = _timed(MLPClassifier(hidden_layer_sizes=(32,), loss="squared_error",
                                        max_iter=100, random_state=seed), Xb_tr, yb_tr)
    h = ours.decision_function(Xb_te[:3])
    results["binary_accuracy"] = ours.score(Xb_te, yb_te)
    print(f"digit >= 5, square loss: h(x) of three test digits {np.round(h, 3)}, predicted "
          f"{ours.predict(Xb_te[:3])}; test accuracy {results['binary_accuracy']:.4f} "
          f"({t_ours:.2f}s)")

    # 3. Regression: diabetes progression from 10 measurements, in float32, against
    #    scikit-learn's MLPRegressor with the same settings.
    Xr, yr = load_diabetes(return_X_y=True)
    Xr_tr, Xr_te, yr_tr, yr_te = train_test_split(Xr, yr, test_size=0.25, random_state=0)
    scale = StandardScaler().fit(Xr_tr)
    mean, std = yr_tr.mean(), yr_tr.std()
    settings = {"hidden_layer_sizes": (64,), "max_iter": 300, "random_state": seed,
                "early_stopping": True, "n_iter_no_change": 20}
    ours, t_ours = _timed(MLPRegressor(dtype="float32", **settings), scale.transform(Xr_tr),
                          (yr_tr - mean) / std)
    theirs, t_theirs = _timed(SkMLPRegressor(**settings), scale.transform(Xr_tr),
                              (yr_tr - mean) / std)
    results["diabetes_r2"] = ours.score(scale.transform(Xr_te), (yr_te - mean) / std)
    theirs_r2 = theirs.score(scale.transform(Xr_te), (yr_te - mean) / std)
    linear_r2 = LinearRegression().fit(Xr_tr, yr_tr).score(Xr_te, yr_te)
    print(f"diabetes regression: test R^2 {results['diabetes_r2']:.3f} in {t_ours:.2f}s "
          f"({ours.n_iter_} epochs); scikit-learn's MLPRegressor {theirs_r2:.3f} in "
          f"{t_theirs:.2f}s ({theirs.n_iter_} epochs); a linear model {linear_r2:.3f}")

    # scikit-learn's classifier on task 2, for the time comparison
    _, t_theirs = _timed(SkMLPClassifier(hidden_layer_sizes=(32,), max_iter=100,
                                         random_state=seed), Xb_tr, yb_tr)
    print(f"(scikit-learn's MLPClassifier with log-loss on task 2: {t_theirs:.2f}s)")
    return results


if __name__ == "__main__":
    main()
