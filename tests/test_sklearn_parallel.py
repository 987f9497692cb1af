"""GridSearchCV over chainrule's estimators in worker processes (joblib's process backend,
``n_jobs=2``) scores exactly as in one process: the estimators are picklable and seeded by
``random_state`` alone, not by any state of the parent process."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from chainrule.sklearn import MLPClassifier, MLPRegressor


def test_grid_search_gives_the_same_results_with_two_processes():
    X, y = load_digits(return_X_y=True)
    X, y = X[:500] / 16, y[:500]
    grid = {"hidden_layer_sizes": [(16,), (32,)], "alpha": [1e-4, 1e-2]}
    results = []
    for jobs in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            g = GridSearchCV(MLPClassifier(max_iter=60, random_state=0), grid, cv=3,
                             n_jobs=jobs).fit(X, y)
        results.append((g.cv_results_["mean_test_score"], g.best_params_,
                        g.predict_proba(X[:50])))
    assert np.array_equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    assert np.array_equal(results[0][2], results[1][2])


def test_regressor_grid_search_with_two_processes():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0])
    scores = []
    for jobs in (1, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            g = GridSearchCV(MLPRegressor(max_iter=40, random_state=1),
                             {"hidden_layer_sizes": [(8,), (16,)]}, cv=3, n_jobs=jobs).fit(X, y)
        scores.append(g.cv_results_["mean_test_score"])
    assert np.array_equal(scores[0], scores[1])
