"""Writing predictions (``chainrule predict``); the rows are read by ``chainrule.data.reader``."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np

from .errors import InvalidValueError


def format_predictions(bundle: Any, outputs: np.ndarray, proba: bool) -> str:
    """CSV text: one line per row, ``prediction`` (and ``p_<class>`` columns with ``proba``)."""
    from .reference.lecture import softmax
    from .runs.metrics import predicted_classes

    run = bundle.run
    task = run["task"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if task == "regression":
        w.writerow(["prediction"])
        for v in outputs.reshape(len(outputs), -1)[:, 0]:
            w.writerow([repr(float(v))])
        return buf.getvalue()
    names = run["class_names"]
    kind = run["prediction"]
    classes = predicted_classes(outputs, kind)
    if proba:
        if kind == "argmax":
            p = softmax(outputs.astype(np.float64))
        elif kind == "logit":
            p1 = 1 / (1 + np.exp(-outputs.astype(np.float64).reshape(-1)))
            p = np.column_stack([1 - p1, p1])
        else:
            raise InvalidValueError("--proba needs a model with probabilities (cross-entropy "
                                    "or bce); this one predicts sign(h(x)) under the square loss")
        w.writerow(["prediction", *(f"p_{n}" for n in names)])
        for c, row in zip(classes, p):
            w.writerow([names[c], *(f"{v:.6f}" for v in row)])
    else:
        w.writerow(["prediction"])
        for c in classes:
            w.writerow([names[c]])
    return buf.getvalue()
