"""The Trainer: metrics, early stopping with best weights, schedulers, clipping, divergence,
progress output, checkpoints."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import chainrule as cr
from chainrule.cli import app
from chainrule.data import DataLoader, TensorDataset
from chainrule.nn import functional as F
from chainrule.train import Trainer, TrainingDivergedError, fit


def _blobs(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(-1, 0.7, (n // 2, 2)), rng.normal(1, 0.7, (n // 2, 2))])
    y = np.repeat([0, 1], n // 2)
    return X.astype(np.float32), y


def _loaders(seed=0):
    X, y = _blobs(seed=seed)
    train = DataLoader(TensorDataset(X[:160], y[:160]), batch_size=16, shuffle=True, seed=seed)
    val = DataLoader(TensorDataset(X[160:], y[160:]), batch_size=64)
    return train, val


def test_metrics_per_epoch_and_accuracy_by_hand():
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 8, 2], activation="tanh")
    train, val = _loaders()
    history = fit(model, F.cross_entropy, cr.optim.SGD(model.parameters(), lr=0.1), train, val,
                  epochs=5, progress="none")
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3, 4, 5]
    last = history.last
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
            "samples_per_second"} <= set(last)
    X, y = _blobs()
    with cr.no_grad():
        model.eval()
        pred = model(cr.tensor(X[160:])).numpy().argmax(axis=1)
    assert last["val_accuracy"] == pytest.approx((pred == y[160:]).mean())
    assert last["val_accuracy"] > 0.8


def test_regression_metrics_mse_and_r2():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((128, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5], np.float32))[:, None]
    cr.manual_seed(0)
    model = cr.nn.Linear(3, 1)
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True, seed=0)
    trainer = Trainer(model, F.mse_loss, cr.optim.SGD(model.parameters(), lr=0.1),
                      task="regression", progress="none")
    history = trainer.fit(loader, loader, epochs=30)
    assert history.last["val_r2"] > 0.99
    assert history.last["val_mse"] == pytest.approx(history.last["val_loss"], rel=1e-5)


def test_early_stopping_restores_the_best_weights():
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 32, 2], activation="relu")
    train, val = _loaders()
    snapshots = {}

    def remember(trainer, epoch, metrics):
        snapshots[epoch] = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}

    # a large learning rate makes the validation loss wander, so the best epoch is not the last
    trainer = Trainer(model, F.cross_entropy, cr.optim.SGD(model.parameters(), lr=2.0),
                      early_stopping=3, progress="none", callbacks=[remember])
    history = trainer.fit(train, val, epochs=60)
    assert history.stopped_early
    best = history.best_epoch
    assert best < history.last["epoch"]
    assert history.best_value == min(e["val_loss"] for e in history.epochs)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), snapshots[best][k])


def test_nan_loss_stops_with_epoch_and_batch_named():
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 4, 2])
    train, _ = _loaders()
    with cr.no_grad():
        model[0].weight.data[0, 0] = np.nan
    with pytest.raises(TrainingDivergedError, match=r"epoch 1, batch 1"):
        fit(model, F.cross_entropy, cr.optim.SGD(model.parameters(), lr=0.1), train,
            epochs=2, progress="none")


def test_scheduler_is_stepped_each_epoch_and_plateau_gets_the_metric():
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 4, 2])
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    sched = cr.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    train, val = _loaders()
    history = fit(model, F.cross_entropy, opt, train, val, epochs=5, scheduler=sched,
                  progress="none")
    # each epoch records the rate it trained with; StepLR halves it every 2 epochs
    assert [e["lr"] for e in history.epochs] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    plateau = cr.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    fit(model, F.cross_entropy, opt, train, val, epochs=4, scheduler=plateau, progress="none",
        monitor="val_accuracy")
    assert plateau.best is not None  # it saw the monitored value


def test_gradient_clipping_bounds_every_step():
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 8, 2])
    train, _ = _loaders()
    norms = []
    real_step = cr.optim.SGD.step

    class Recording(cr.optim.SGD):
        def step(self, closure=None):
            total = sum(float((p.grad.astype(np.float64) ** 2).sum())
                        for g in self.param_groups for p in g["params"] if p.grad is not None)
            norms.append(total ** 0.5)
            return real_step(self, closure)

    fit(model, F.cross_entropy, Recording(model.parameters(), lr=0.5), train, epochs=1,
        clip_grad_norm=0.01, progress="none")
    assert len(norms) == len(train)
    assert max(norms) <= 0.01 * (1 + 1e-5)


def test_progress_lines_and_quiet(capsys):
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 4, 2])
    train, val = _loaders()
    fit(model, F.cross_entropy, cr.optim.SGD(model.parameters(), lr=0.1), train, val,
        epochs=2, progress="lines")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("epoch 1 ") and "val_accuracy" in err[0] and "samples/s" in err[0]
    fit(model, F.cross_entropy, cr.optim.SGD(model.parameters(), lr=0.1), train, val,
        epochs=1, progress="none")
    assert capsys.readouterr().err == ""


def test_progress_bar_draws_on_a_terminal(monkeypatch):
    import rich.progress

    buf = io.StringIO()
    real = rich.progress.Progress

    def to_buffer(*columns, **kwargs):
        from rich.console import Console

        kwargs["console"] = Console(file=buf, force_terminal=True, width=100)
        return real(*columns, **kwargs)

    monkeypatch.setattr(rich.progress, "Progress", to_buffer)
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 4, 2])
    train, _ = _loaders()
    fit(model, F.cross_entropy, cr.optim.SGD(model.parameters(), lr=0.1), train, epochs=1,
        progress="bar")
    assert "epoch 1/1" in buf.getvalue() and "samples/s" in buf.getvalue()


def test_bad_options_are_clear_errors():
    model = cr.nn.MLP([2, 2])
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    for kwargs, message in (({"task": "ranking"}, "task"), ({"progress": "loud"}, "progress"),
                            ({"early_stopping": 0}, "early_stopping"),
                            ({"clip_grad_norm": -1.0}, "clip_grad_norm")):
        with pytest.raises(cr.InvalidValueError, match=message):
            Trainer(model, F.cross_entropy, opt, **kwargs)
    train, _ = _loaders()
    with pytest.raises(cr.InvalidValueError, match="validation data"):
        Trainer(model, F.cross_entropy, opt, monitor="val_loss", progress="none").fit(train)


def test_checkpoint_round_trip_restores_everything(tmp_path):
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 8, 2], dropout=0.1)
    opt = cr.optim.Adam(model.parameters(), lr=0.01)
    train, val = _loaders()
    t = Trainer(model, F.cross_entropy, opt, progress="none", early_stopping=5)
    t.fit(train, val, epochs=2)
    path = t.save_checkpoint(tmp_path / "c.safetensors")
    state_after = cr.default_generator.get_state()

    cr.manual_seed(123)
    model2 = cr.nn.MLP([2, 8, 2], dropout=0.1)
    opt2 = cr.optim.Adam(model2.parameters(), lr=0.01)
    train2, val2 = _loaders()
    t2 = Trainer(model2, F.cross_entropy, opt2, progress="none", early_stopping=5)
    t2.load_checkpoint(path, train2)
    untimed = [{k: v for k, v in e.items() if k not in ("seconds", "samples_per_second")}
               for e in t.history.epochs]       # timings live in metrics.jsonl only
    assert t2.epoch == 2 and t2.history.epochs == untimed
    assert cr.default_generator.get_state() == state_after
    for (k, a), (_, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for i, s in opt.state_dict()["state"].items():
        np.testing.assert_array_equal(s["exp_avg"], opt2.state_dict()["state"][i]["exp_avg"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(cr.FileFormatError):
        t2.load_checkpoint(tmp_path / "bad.safetensors")


runner = CliRunner()


def test_batch_size_auto_under_a_memory_budget(tmp_path):
    result = runner.invoke(app, ["train", "--dataset", "iris", "--epochs", "1", "--batch-size",
                                 "auto", "--memory-budget", "40KiB", "--out", str(tmp_path / "r"),
                                 "-q"])
    assert result.exit_code == 0, result.output
    batch = json.loads((tmp_path / "r" / "config.json").read_text())["batch_size"]
    from chainrule import memory
    from chainrule.runs import TrainConfig, build

    setup = build(TrainConfig(dataset="iris"))
    fits = memory.estimate(setup.network, batch, optimizer=setup.optimizer).peak
    too_big = memory.estimate(setup.network, batch + 1, optimizer=setup.optimizer).peak
    data = setup.data.table.X.shape[0] * setup.network.sizes[0] * 4   # float32 copy of the rows
    assert fits + data <= 40 * 1024 < too_big + data
    assert batch <= len(setup.data.split.train)


def test_evaluate_and_predict_as_subprocesses(tmp_path):
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "--dataset", "iris", "--epochs", "5", "--out", str(run),
                               "-q"]).exit_code == 0
    proc = subprocess.run([sys.executable, "-m", "chainrule", "evaluate", str(run)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "confusion matrix" in proc.stdout
    data = tmp_path / "x.npz"
    np.savez(data, X=np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
    proc = subprocess.run([sys.executable, "-m", "chainrule", "predict", str(run), "--input",
                           str(data)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "prediction" and len(proc.stdout.splitlines()) == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    proc = subprocess.run([sys.executable, "-m", "chainrule", "predict", str(run), "--input",
                           str(bad)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "missing column(s)" in proc.stderr and proc.stderr.count("\n") == 1


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam", "adamw"])
def test_divergence_stops_the_run_under_every_optimizer(optimizer, tmp_path):
    """A learning rate far too large stops the run in one line naming the epoch (and leaves no
    run directory behind); --no-divergence-check lets it go on."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--dataset", "moons", "--hidden", "16", "--epochs",
                                 "5", "--optimizer", optimizer, "--lr", "1e6", "--out",
                                 str(out), "-q"])
    assert result.exit_code == 2, result.output
    assert ("diverged at epoch" in result.output or "non-finite" in result.output or
            "the loss became" in result.output), result.output
    assert "epoch" in result.output and not out.exists()


def test_non_finite_weights_are_named_with_epoch_and_batch():
    cr.manual_seed(0)
    model = cr.nn.MLP([2, 4, 2])
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    train, _ = _loaders()
    poisoned = {"n": 0}

    def step(original=opt.step):
        original()
        poisoned["n"] += 1
        if poisoned["n"] == 3:                       # the update of batch 3 breaks the weights
            model.linears[0].weight.data[0, 0] = np.inf

    opt.step = step
    with pytest.raises(TrainingDivergedError, match=r"non-finite at epoch 1, batch 3"):
        Trainer(model, F.cross_entropy, opt, progress="none").fit(train, epochs=1)
