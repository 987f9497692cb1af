"""The metrics a run reports, computed by scikit-learn from a model's outputs.

Classification: accuracy, the confusion matrix, precision, recall, F1 and support of every class
with their macro and support-weighted averages, and ROC AUC for two classes (from the score the
model ranks by: the softmax probability of class 1, the logit, or h(x) under sign(h(x))).
Regression: MSE, RMSE, MAE and R^2. ``train`` writes these to ``summary.json`` and ``evaluate``
computes them again with this same function, so the two agree to the last digit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def predicted_classes(out: np.ndarray, prediction: str) -> np.ndarray:
    """Class indices from outputs: argmax of K outputs, ``h(x) >= 0`` under sign(h(x)) (labels
    -1/+1 are classes 0/1), a logit > 0."""
    from ..train import predict_classes

    classes = predict_classes(out, prediction)
    if prediction == "sign":
        classes = (classes > 0).astype(np.int64)
    return np.asarray(classes, dtype=np.int64)


def scores(out: np.ndarray, prediction: str) -> np.ndarray:
    """The score of class 1 that ROC AUC ranks by (two classes)."""
    from ..reference.lecture import softmax

    out = np.asarray(out, dtype=np.float64)
    if prediction == "argmax":
        return softmax(out)[:, 1]
    return out.reshape(len(out), -1)[:, 0]


def _num(v: Any) -> Any:
    v = float(v)
    return v if math.isfinite(v) else None


def compute_metrics(task: str, prediction: str, out: np.ndarray, y: np.ndarray,
                    num_classes: int | None, class_names: list[str] | None = None
                    ) -> dict[str, Any]:
    """Metrics of outputs ``out`` (N, k) against targets ``y`` (class indices or numbers)."""
    from sklearn import metrics as skm

    if task == "regression":
        pred = np.asarray(out, dtype=np.float64).reshape(len(out), -1)[:, 0]
        t = np.asarray(y, dtype=np.float64)
        mse = float(skm.mean_squared_error(t, pred))
        return {"samples": int(len(t)), "mse": mse, "rmse": math.sqrt(mse),
                "mae": float(skm.mean_absolute_error(t, pred)),
                "r2": _num(skm.r2_score(t, pred)) if len(t) > 1 else None}
    k = int(num_classes or 2)
    labels = list(range(k))
    names = list(class_names) if class_names else [str(c) for c in labels]
    pred = predicted_classes(out, prediction)
    t = np.asarray(y, dtype=np.int64)
    report = skm.classification_report(t, pred, labels=labels, target_names=names,
                                       output_dict=True, zero_division=0)
    per_class = {n: {m: (int(report[n][m]) if m == "support" else float(report[n][m]))
                     for m in ("precision", "recall", "f1-score", "support")} for n in names}
    avg = {a: {m: (int(report[a][m]) if m == "support" else float(report[a][m]))
               for m in ("precision", "recall", "f1-score", "support")}
           for a in ("macro avg", "weighted avg")}
    result: dict[str, Any] = {
        "samples": int(len(t)), "accuracy": float(skm.accuracy_score(t, pred)),
        "per_class": per_class, "macro_avg": avg["macro avg"],
        "weighted_avg": avg["weighted avg"],
        "confusion": skm.confusion_matrix(t, pred, labels=labels).tolist()}
    if k == 2:
        result["roc_auc"] = (float(skm.roc_auc_score(t, scores(out, prediction)))
                             if len(np.unique(t)) == 2 else None)
    return result


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The scalar metrics (what the table's first block shows)."""
    keys = ("accuracy", "roc_auc", "mse", "rmse", "mae", "r2", "samples")
    out = {k: metrics[k] for k in keys if k in metrics}
    for a in ("macro_avg", "weighted_avg"):
        if a in metrics:
            for m in ("precision", "recall", "f1-score"):
                out[f"{a.replace('_avg', '')}_{m.replace('-score', '')}"] = metrics[a][m]
    return out
