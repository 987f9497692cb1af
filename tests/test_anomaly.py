"""``cr.detect_anomaly()``: the first operation that makes NaN/inf from finite values, forward or
backward, is named with the file and line of the code that called it."""

from __future__ import annotations

import sys
import threading
import warnings

import numpy as np
import pytest

import chainrule as cr
from chainrule import autograd

HERE = "test_anomaly.py"


def _next_line() -> int:
    """The line after the caller's."""
    return sys._getframe(1).f_lineno + 1


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # NumPy's "invalid value in log"
        yield


def _raises(fn):
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            fn()
    return str(info.value)


def test_log_of_a_negative_number():
    x = cr.tensor([1.0, -2.0, 3.0], requires_grad=True)
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            line = _next_line()
            cr.log(x)
    msg = str(info.value)
    assert msg.startswith("log produced NaN/inf from finite inputs ((3,) float32)")
    assert "1 NaN among 3 values" in msg
    assert f"{HERE}:{line} (in test_log_of_a_negative_number)" in msg
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, cr.ChainruleError)


def test_zero_over_zero():
    x = cr.zeros(2, 3)
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            line = _next_line()
            x / x
    msg = str(info.value)
    assert msg.startswith("div produced NaN/inf from finite inputs ((2, 3) float32, (2, 3) "
                          "float32): 6 NaN among 6 values")
    assert f"{HERE}:{line}" in msg


def test_exp_overflow_in_float32():
    x = cr.tensor([1.0, 100.0], dtype="float32")
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            y = x * 2.0          # fine
            line = _next_line()
            y.exp()              # e^200 overflows float32
    msg = str(info.value)
    assert msg.startswith("exp produced NaN/inf") and "1 inf among 2 values" in msg
    assert f"{HERE}:{line}" in msg
    with cr.detect_anomaly():    # float64 holds e^200: no anomaly
        assert np.isfinite(cr.exp(x.double() * 2.0).numpy()).all()


def test_nan_made_only_in_backward_names_the_forward_line():
    x = cr.tensor([0.0, 4.0], requires_grad=True)
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            line = _next_line()
            y = cr.sqrt(x)       # sqrt(0) = 0 is fine; its derivative 1/(2 sqrt(0)) is not
            z = (y * 3.0).sum()
            z.backward()
    msg = str(info.value)
    assert msg.startswith("backward of sqrt produced NaN/inf in the gradient of its input 0 "
                          "(shape (2,), float32) from a finite gradient: 1 inf among 2 values")
    assert "its forward was called at" in msg and f"{HERE}:{line}" in msg
    assert x.grad is None        # nothing was accumulated


def test_non_finite_inputs_are_not_blamed_on_the_next_operation():
    x = cr.tensor([np.nan, 1.0])
    with cr.detect_anomaly():
        y = (x * 2.0).exp()      # NaN in, NaN out: not an anomaly of mul or exp
    assert np.isnan(y.numpy()[0])


def test_a_non_finite_seed_is_reported_in_backward():
    x = cr.tensor([1.0, 2.0], requires_grad=True)
    with cr.detect_anomaly():
        y = x * 2.0
        with pytest.raises(cr.AnomalyError, match="the gradient arriving at mul"):
            y.backward(np.array([np.inf, 1.0], dtype=np.float32))


def test_off_it_checks_nothing_and_records_no_site():
    x = cr.tensor([-1.0], requires_grad=True)
    assert not cr.is_anomaly_enabled() and not autograd._anomaly_on
    y = cr.log(x)                                   # no error outside the block
    assert np.isnan(y.numpy()).all()
    assert getattr(y.grad_fn, "site", None) is None
    with cr.detect_anomaly():
        assert cr.is_anomaly_enabled() and autograd._anomaly_on
        z = x * 2.0
        assert z.grad_fn.site.user[0].endswith(HERE)
        with cr.detect_anomaly(enabled=False):      # a block that turns it off
            assert not cr.is_anomaly_enabled()
            cr.log(x)
    assert not cr.is_anomaly_enabled() and not autograd._anomaly_on


def test_decorator_and_other_threads():
    @cr.detect_anomaly()
    def f(x):
        return cr.log(x)

    with pytest.raises(cr.AnomalyError, match="log produced"):
        f(cr.tensor([-1.0]))
    seen = []
    with cr.detect_anomaly():   # the mode is this thread's, as no_grad is
        t = threading.Thread(target=lambda: seen.append(cr.log(cr.tensor([-1.0])).numpy()))
        t.start()
        t.join()
    assert np.isnan(seen[0]).all()


def test_a_layer_inside_chainrule_is_named_with_the_users_line():
    cr.manual_seed(0)
    model = cr.nn.MLP([3, 4, 2], activation="tanh")    # fused outside anomaly mode
    x = cr.tensor([[3e38, 3e38, 3e38]])
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            line = _next_line()
            model(x)
    msg = str(info.value)
    assert msg.startswith("linear produced NaN/inf from finite inputs ((1, 3) float32, (4, 3) "
                          "float32, (4,) float32)")
    assert f"{HERE}:{line}" in msg and "via chainrule/nn/linear.py" in msg


def test_anomaly_mode_changes_no_numbers():
    cr.manual_seed(1)
    model = cr.nn.MLP([5, 7, 3], activation="relu")
    x = cr.randn(8, 5)
    y = cr.tensor(np.arange(8) % 3)
    grads = []
    for on in (False, True):
        model.zero_grad()
        with cr.detect_anomaly(enabled=on):
            cr.nn.functional.cross_entropy(model(x), y).backward()
        grads.append([p.grad.copy() for p in model.parameters()])
    for a, b in zip(*grads):
        np.testing.assert_array_equal(a, b)


def test_the_trainer_adds_epoch_and_batch():
    from chainrule.data import DataLoader, TensorDataset
    from chainrule.train import Trainer

    X = np.ones((40, 2), dtype=np.float32)
    X[25] = 3e38                                   # the 4th batch of 8 overflows
    y = np.zeros(40, dtype=np.int64)
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 4, 2], activation="relu")
    loader = DataLoader(TensorDataset(cr.tensor(X), cr.tensor(y)), batch_size=8)
    trainer = Trainer(model, cr.nn.CrossEntropyLoss(), cr.optim.SGD(model.parameters(), lr=0.0),
                      progress="none")
    with pytest.raises(cr.AnomalyError) as info:
        with cr.detect_anomaly():
            trainer.fit(loader, epochs=1)
    msg = str(info.value)
    assert msg.startswith("linear produced NaN/inf") and msg.endswith("(training: epoch 1, "
                                                                       "batch 4)")
    assert "chainrule/nn/linear.py" in msg


def test_cli_train_detect_anomaly_is_one_line(tmp_path):
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from chainrule.cli import app

    args = ["train", "--epochs", "1", "--hidden", "16", "--optimizer", "sgd", "--lr", "1000",
            "--no-divergence-check", "-q", "--out", str(tmp_path / "run")]
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 2 and "the loss became nan" in plain.output
    result = CliRunner().invoke(app, args + ["--detect-anomaly"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "produced NaN/inf from finite inputs" in lines[0]
    assert "(training: epoch 1, batch " in lines[0]
    assert not (tmp_path / "run").exists()          # a failed run leaves nothing behind
