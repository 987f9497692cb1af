"""A run's numbers come from the artifacts a user would load: ``evaluate`` replays the recorded
split and prints exactly ``summary.json``'s metrics; ``cr.load`` of the model file, ``predict``,
``plot regions`` and ``explain --weights`` give the same predictions for the same raw rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import chainrule as cr
from chainrule.cli import app
from chainrule.runs.metrics import predicted_classes
from chainrule.runs.source import read_split, replay

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _csv(tmp: Path) -> Path:
    """Numeric and categorical features, a few missing cells (trained with --impute mean)."""
    rng = np.random.default_rng(0)
    n = 300
    a, b = rng.standard_normal(n) * 3 + 10, rng.standard_normal(n)
    color = rng.choice(["red", "green", "blue"], n)
    y = np.where(a - 10 + (color == "red") * 2 + b > 0.5, "yes", "no")
    rows = [f"{'' if i % 37 == 5 else f'{a[i]:.6f}'},{b[i]:.6f},{color[i]},{y[i]}"
            for i in range(n)]
    path = tmp / "people.csv"
    path.write_text("a,b,color,label\n" + "\n".join(rows) + "\n")
    return path


def _npz(tmp: Path) -> Path:
    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 5)) * np.array([1, 10, 100, 0.1, 5]) + 50
    y = ((X[:, 0] - 50) + (X[:, 1] - 50) / 10 > 0).astype(np.int64)
    path = tmp / "points.npz"
    np.savez(path, X=X, y=y)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replay")
    specs = {
        "digits": ["--epochs", "3"],
        "breast_cancer": ["--dataset", "breast_cancer", "--epochs", "5"],
        "moons": ["--dataset", "moons", "--noise", "0.2", "--epochs", "5", "--hidden", "16"],
        "spirals": ["--dataset", "spirals", "--epochs", "5", "--hidden", "16,16"],
        "csv": ["--dataset", str(_csv(tmp)), "--target", "label", "--impute", "mean",
                "--epochs", "10", "--hidden", "16"],
        "npz": ["--dataset", str(_npz(tmp)), "--epochs", "5", "--hidden", "16",
                "--loss", "square"],
    }
    out = {}
    for name, args in specs.items():
        _ok("train", *args, "-q", "--out", str(tmp / name))
        out[name] = tmp / name
    return out


NAMES = ["digits", "breast_cancer", "moons", "spirals", "csv", "npz"]


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_prints_the_summary_metrics_exactly(runs, name):
    run = runs[name]
    summary = json.loads((run / "summary.json").read_text())
    printed = json.loads(_ok("evaluate", str(run), "--format", "json"))
    assert printed["metrics"] == summary["metrics"]["test"]
    table = _ok("evaluate", str(run))
    assert repr(summary["test_accuracy"]) in table
    for part in ("val", "train"):
        again = json.loads(_ok("evaluate", str(run), "--part", part, "--format", "json"))
        assert again["metrics"] == summary["metrics"][part]
        split = read_split(run)[1]
        assert again["metrics"]["samples"] == len(getattr(split, part))


@pytest.mark.parametrize("name", NAMES)
def test_the_parts_are_disjoint_and_recorded(runs, name):
    record, split = read_split(runs[name])
    parts = [set(split.train.tolist()), set(split.val.tolist()), set(split.test.tolist())]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert len(record["sha256"]) == 64


def _raw_test_rows(run: Path):
    record, split = read_split(run)
    table = replay(record)
    return table, split.test


@pytest.mark.parametrize("name", NAMES)
def test_loaded_model_predict_and_evaluation_agree(runs, name, tmp_path):
    run = runs[name]
    meta = cr.runs.load_run_model(run).run
    table, rows = _raw_test_rows(run)
    model = cr.load(run / "model.safetensors")
    model.eval()
    with cr.no_grad():
        out = model(cr.tensor(table.X[rows], dtype="float64")).numpy()
    classes = predicted_classes(out, meta["prediction"])
    names = np.array(meta["class_names"])
    # predict on the same raw rows, written as a user would write them
    if table.schema.categories:
        import pandas as pd

        cols = {}
        for j, c in enumerate(table.schema.columns):
            v = table.X[rows, j]
            if c in table.schema.categories:
                cats = np.array(table.schema.categories[c])
                cols[c] = np.where(np.isnan(v), "", cats[np.nan_to_num(v).astype(int)])
            else:
                cols[c] = [("" if np.isnan(x) else repr(float(x))) for x in v]
        path = tmp_path / "rows.csv"
        pd.DataFrame(cols).to_csv(path, index=False)
    else:
        path = tmp_path / "rows.npz"
        np.savez(path, X=table.X[rows])
    printed = _ok("predict", str(run), "--input", str(path)).strip().splitlines()
    assert printed[0] == "prediction"
    assert printed[1:] == names[classes].tolist()
    # the run's own test evaluation counted exactly these predictions
    summary = json.loads((run / "summary.json").read_text())
    conf = np.array(summary["metrics"]["test"]["confusion"])
    assert conf.sum(axis=0).tolist() == np.bincount(classes, minlength=len(names)).tolist()


@pytest.mark.parametrize("name", ["moons", "spirals"])
def test_plot_regions_draws_the_models_predictions(runs, name, tmp_path):
    from chainrule.viz import predict_points

    run = runs[name]
    table, rows = _raw_test_rows(run)
    model = cr.load(run / "model.safetensors")
    with cr.no_grad():
        expected = model(cr.tensor(table.X[rows], dtype="float64")).numpy().argmax(axis=1)
    assert predict_points(model, table.X[rows]).tolist() == expected.tolist()
    out = tmp_path / "regions.png"
    _ok("plot", "regions", str(out), "--model", str(run))
    assert out.stat().st_size > 5_000


def test_explain_weights_of_a_run_applies_its_preprocessing(runs):
    run = runs["breast_cancer"]
    table, rows = _raw_test_rows(run)
    model = cr.load(run / "model.safetensors")
    with cr.no_grad():
        expected = model(cr.tensor(table.X[rows[:8]], dtype="float64")).numpy().argmax(axis=1)
    for i, row in enumerate(table.X[rows[:8]]):
        text = _ok("explain", "--weights", str(run / "model.safetensors"), "--format", "json",
                   "--loss", "cross-entropy", "--input", ",".join(repr(float(v)) for v in row))
        assert json.loads(text)["prediction"] == expected[i]


def test_a_changed_data_file_is_refused_unless_data_is_given(runs, tmp_path):
    import shutil

    run = runs["npz"]
    record, _ = read_split(run)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    data = Path(record["path"])
    original = data.read_bytes()
    try:
        with np.load(data) as f:
            X, y = f["X"].copy(), f["y"].copy()
        X[0, 0] += 1.0
        np.savez(data, X=X, y=y)
        result = runner.invoke(app, ["evaluate", str(copy)])
        assert result.exit_code == 2 and "changed since training" in result.output
        printed = json.loads(_ok("evaluate", str(copy), "--data", str(data), "--format", "json"))
        assert printed["metrics"]["samples"] == len(X)
    finally:
        data.write_bytes(original)


def test_a_first_stage_model_file_still_predicts_with_its_standardiser(tmp_path):
    """Version-1 files kept the standardiser in the metadata; loading makes it a layer."""
    cr.manual_seed(0)
    mlp = cr.nn.MLP([2, 4, 2])
    mean, scale = [10.0, -3.0], [2.0, 0.5]
    old = {"task": "classification", "loss": "cross-entropy", "prediction": "argmax",
           "num_classes": 2, "n_features": 2, "feature_names": ["u", "v"],
           "class_names": ["0.0", "1.0"], "dataset": "old", "target": "label",
           "standardizer": {"mean": mean, "scale": scale}}
    path = tmp_path / "v1.safetensors"
    cr.save(mlp, path, metadata={"run": json.dumps(old)})
    rows = np.array([[11.0, -3.5], [7.0, -2.0], [10.0, -3.0]])
    with cr.no_grad():
        expected = mlp(cr.tensor(((rows - mean) / scale).astype(np.float32))).numpy()
    rm = cr.runs.load_run_model(path)
    np.testing.assert_allclose(rm.outputs(rows), expected, rtol=1e-6, atol=1e-6)
    assert rm.class_names == ["0", "1"]
    csv = tmp_path / "rows.csv"
    csv.write_text("v,u\n" + "".join(f"{float(b)!r},{float(a)!r}\n" for a, b in rows))  # reordered
    printed = _ok("predict", str(path), "--input", str(csv)).split()
    assert printed[1:] == [["0", "1"][k] for k in expected.argmax(axis=1)]
    old["standardizer"]["scale"] = [1.0, 0.0]
    cr.save(mlp, path, metadata={"run": json.dumps(old)})
    result = runner.invoke(app, ["predict", str(path), "--input", str(csv)])
    assert result.exit_code == 2 and "standardizer" in result.output
