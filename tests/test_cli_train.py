"""``chainrule train / evaluate / predict / datasets``: in-process (CliRunner) and as subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import chainrule as cr
from chainrule.cli import app
from chainrule.runs import load_model_bundle

runner = CliRunner()


def _run(*args: str):
    result = runner.invoke(app, list(args))
    return result


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    result = _run("train", "--epochs", "3", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_the_run_directory(digits_run):
    names = {p.name for p in digits_run.iterdir()}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl",
            "summary.json", "curves.png", "confusion.png"} <= names
    config = json.loads((digits_run / "config.json").read_text())
    assert config["dataset"] == "digits" and config["epochs"] == 3
    assert config["chainrule_version"] == cr.__version__
    lines = (digits_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]
    summary = json.loads((digits_run / "summary.json").read_text())
    assert 0.8 < summary["test_accuracy"] <= 1.0
    assert summary["samples_per_second"] > 0
    confusion = np.array(summary["metrics"]["test"]["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 450


def test_evaluate_prints_metrics_and_confusion(digits_run):
    result = _run("evaluate", str(digits_run))
    assert result.exit_code == 0, result.output
    summary = json.loads((digits_run / "summary.json").read_text())
    assert repr(summary["test_accuracy"]) in result.output
    assert "confusion matrix" in result.output


def test_predict_from_csv_matches_the_model(digits_run, tmp_path):
    from sklearn.datasets import load_digits

    X = load_digits().data[:5]
    path = tmp_path / "in.csv"
    model_meta = load_model_bundle(digits_run).run
    header = ",".join(model_meta["columns"]["columns"])
    path.write_text(header + "\n" + "\n".join(",".join(str(v) for v in row) for row in X) + "\n")
    result = _run("predict", str(digits_run), "--input", str(path), "--proba")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("prediction,p_")
    assert len(lines) == 6
    probs = np.array([[float(v) for v in line.split(",")[1:]] for line in lines[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    out = tmp_path / "pred.csv"
    result = _run("predict", str(digits_run), "--input", str(path), "--output", str(out))
    assert result.exit_code == 0 and out.read_text().startswith("prediction\n")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a,b,c\nx,2,3\n", "missing column(s)"),           # wrong columns
        ("", "empty"),                                        # empty file
    ],
)
def test_predict_bad_csv_exit_code_2(digits_run, tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = _run("predict", str(digits_run), "--input", str(path))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_predict_text_in_a_numeric_column_exit_code_2(digits_run, tmp_path):
    names = load_model_bundle(digits_run).run["columns"]["columns"]
    row = ["0"] * 64
    row[5] = "seven"
    path = tmp_path / "text.csv"
    path.write_text(",".join(names) + "\n" + ",".join(row) + "\n")
    result = _run("predict", str(digits_run), "--input", str(path))
    assert result.exit_code == 2
    assert "'seven' is not a number" in result.output


def test_datasets_lists_shapes():
    result = _run("datasets")
    assert result.exit_code == 0
    for name in ("digits", "mnist1d", "spirals", "breast_cancer"):
        assert name in result.output
    assert "1347" in result.output  # digits' training part


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--dataset", "no-such-set"], "unknown data set"),
        (["train", "--dataset", "missing.csv"], "missing.csv"),
        (["train", "--hidden", "12,x"], "--hidden"),
        (["train", "--optimizer", "lbfgs"], "unknown optimizer"),
        (["train", "--loss", "bce"], "two classes"),
        (["train", "--batch-size", "auto", "--memory-budget", "1KiB"], "more than the memory budget"),
        (["train", "--epochs", "0"], "epochs must be a positive integer"),
        (["evaluate", "nowhere"], "no model file"),
    ],
)
def test_user_errors_exit_code_2_with_one_line(args, message, tmp_path):
    result = _run(*args, "--out", str(tmp_path / "r")) if args[0] == "train" else _run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1


def test_incompatible_model_and_data_exit_code_2(digits_run, tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("a,b,c,d,target\n1,2,3,4,0\n")
    result = _run("evaluate", str(digits_run), "--data", str(path))
    assert result.exit_code == 2
    assert "missing column(s)" in result.output


def test_csv_training_with_target_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    path = tmp_path / "data.csv"
    path.write_text("a,b,c,label\n" + "\n".join(
        f"{r[0]},{r[1]},{r[2]},{t}" for r, t in zip(X, y)) + "\n")
    result = _run("train", "--dataset", str(path), "--target", "label", "--epochs", "20",
                  "--out", str(tmp_path / "csvrun"), "-q")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "csvrun" / "summary.json").read_text())["test_accuracy"] > 0.8
    result = _run("train", "--dataset", str(path), "--target", "nope", "--out",
                  str(tmp_path / "r2"))
    assert result.exit_code == 2 and "nope" in result.output
    bad = tmp_path / "nan.csv"
    bad.write_text("a,label\n1,0\n,1\n2,0\n")
    result = _run("train", "--dataset", str(bad), "--target", "label", "--out",
                  str(tmp_path / "r3"))
    assert result.exit_code == 2


def test_config_file(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('dataset = "iris"\nhidden = "16"\nepochs = 5\nbatch-size = 16\n')
    result = _run("train", "--config", str(cfg), "--out", str(tmp_path / "run"), "-q")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["dataset"] == "iris" and config["hidden"] == [16] and config["batch_size"] == 16
    cfg.write_text('datasett = "iris"\n')
    result = _run("train", "--config", str(cfg), "--out", str(tmp_path / "run2"))
    assert result.exit_code == 2 and "datasett" in result.output


def test_resume_after_interruption_is_bit_identical(tmp_path):
    """Run A: 6 epochs straight. Run B: stopped after epoch 3, resumed to 6. Same weights."""
    common = ["--dataset", "moons", "--epochs", "6", "--hidden", "16", "-q", "--seed", "3"]
    a = tmp_path / "a"
    assert _run("train", *common, "--out", str(a)).exit_code == 0
    b = tmp_path / "b"
    first = _run("train", *common[:2], "--epochs", "3", *common[4:], "--out", str(b))
    assert first.exit_code == 0
    resumed = _run("train", "--resume", str(b), "--epochs", "6", "-q")
    assert resumed.exit_code == 0, resumed.output
    wa, _ = cr.io.read(a / "model.safetensors")
    wb, _ = cr.io.read(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k])
    la = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (b / "metrics.jsonl").read_text().splitlines()]
    assert [e["train_loss"] for e in la] == [e["train_loss"] for e in lb]


_SAVER = """
import sys, numpy as np
import chainrule as cr
from chainrule.io import atomic_write
path = sys.argv[1]
rng = np.random.default_rng(0)
i = 0
while True:
    i += 1
    state = {"w": np.full((1500, 1000), float(i), np.float32), "step": np.array([i])}
    cr.save(state, path)
    print(i, flush=True)
"""


def test_checkpoint_killed_mid_save_leaves_previous_loadable(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    rng = np.random.default_rng(1)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip()  # at least one complete save
        time.sleep(float(rng.uniform(0.01, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tensors = cr.load_state(path)  # never a half-written file
        step = int(tensors["step"][0])
        assert step >= 1
        assert np.all(tensors["w"] == float(step))
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    # a killed writer may leave its temporary file behind, but never in place of the checkpoint
    assert all(p.name != path.name for p in leftovers)


def test_train_as_a_subprocess(tmp_path):
    env = {**os.environ, "CHAINRULE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "chainrule", "train", "--dataset", "xor",
                           "--epochs", "3", "--out", str(tmp_path / "x")], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "xor: test accuracy" in proc.stdout
    assert (tmp_path / "x" / "boundary.png").stat().st_size > 5_000
    proc = subprocess.run([sys.executable, "-m", "chainrule", "train", "--dataset", "nope"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "unknown data set" in proc.stderr
    assert Path(tmp_path / "x" / "model.safetensors").exists()


def test_identical_runs_write_identical_bytes(tmp_path):
    """Model and checkpoint files are byte-identical across processes (hash seeds differ)."""
    digests = []
    for i, seed in enumerate(("1", "2")):
        env = {**os.environ, "PYTHONHASHSEED": seed, "CHAINRULE_CACHE": str(tmp_path / "c")}
        out = tmp_path / f"r{i}"
        proc = subprocess.run([sys.executable, "-m", "chainrule", "train", "--dataset", "moons",
                               "--epochs", "3", "--hidden", "8", "-q", "--out", str(out)],
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr
        digests.append({name: (out / name).read_bytes() for name in
                        ("model.safetensors", "checkpoint.safetensors", "split.json")})
        modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()}
        assert len(set(modes.values())) == 1, modes     # model files as the rest of the run
    assert digests[0] == digests[1]


def test_the_command_list_gives_each_command_one_unbroken_paragraph():
    # each command's docstring is wrapped in the source; the list shows its first paragraph
    # as one text (Typer's Rich table otherwise keeps the source's line breaks)
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "250"}, terminal_width=250)
    assert out.exit_code == 0
    rows = [line for line in out.output.splitlines() if line.startswith("│ ")]
    explain = next(line for line in rows if line.startswith("│ explain"))
    assert "the worked example by default." in explain
    names = [line.split()[1] for line in rows if len(line.split()) > 1]
    for name in ("train", "evaluate", "predict", "export", "convert", "playground", "plot"):
        assert name in names
    out = CliRunner().invoke(app, ["plot", "--help"], env={"COLUMNS": "250"},
                             terminal_width=250)
    regions = next(line for line in out.output.splitlines() if line.startswith("│ regions"))
    assert regions.rstrip(" │").endswith("first-layer hyperplanes.")
