"""The lecture's networks learn: XOR from hyperplanes with sign(h(x)), digits with softmax."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.nn import functional as F

XOR_X = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=np.float32)
XOR_Y = np.array([[-1.0], [1.0], [1.0], [-1.0]], dtype=np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_xor_learned_by_2_4_1_tanh_mlp_with_sgd_and_square_loss(seed):
    cr.manual_seed(seed)
    model = nn.MLP([2, 4, 1], activation="tanh", output_activation="tanh")
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    x, y = cr.tensor(XOR_X), cr.tensor(XOR_Y)
    for _ in range(1000):
        loss = F.mse_loss(model(x), y)          # e = (h(x) - y)^2, averaged over the 4 points
        opt.zero_grad()
        loss.backward()
        opt.step()                               # w <- w - eta de/dw
    with cr.no_grad():
        prediction = model(x).sign().numpy()     # the lecture's classifier sign(h(x))
    np.testing.assert_array_equal(prediction, XOR_Y)
    assert loss.item() < 0.05


def _example(name):
    """The module examples/<name>.py, imported."""
    import importlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def test_digits_softmax_cross_entropy_reaches_97_percent():
    accuracy = _example("quickstart").main()
    assert accuracy >= 0.97


def test_the_scikit_learn_example_runs_and_learns():
    results = _example("sklearn_estimators").main()
    assert results["digits_accuracy"] > 0.95 and results["binary_accuracy"] > 0.93
    assert results["diabetes_r2"] > 0.25  # (a linear model: about 0.36 on this split)
