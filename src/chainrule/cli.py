"""The ``chainrule`` command line (typer).

Every user error (a bad file, an unknown option value, shapes that do not fit) ends with a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from .errors import ChainruleError

app = typer.Typer(
    name="chainrule",
    help="Feed-forward neural networks and backpropagation, from the command line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plot_app = typer.Typer(help="Pictures of the hypothesis (PNG or SVG).", no_args_is_help=True)
app.add_typer(plot_app, name="plot")


def fail(message: str) -> None:
    """Print a one-line user error and exit with code 2."""
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(2)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _crash_report(exc: BaseException) -> str:
    """Save the traceback of an unexpected exception; returns where it went."""
    import os
    import tempfile
    import time
    import traceback

    base = os.environ.get("CHAINRULE_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "chainrule")
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (os.path.join(base, "crashes"), tempfile.gettempdir()):
        try:
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, name)
            with open(path, "w") as fh:
                fh.write(f"chainrule {__import__('chainrule').__version__}\n{' '.join(sys.argv)}\n")
                fh.write(text)
            return path
        except OSError:
            continue
    return "(could not be saved)"


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors (chainrule's errors, unreadable files, too little memory) end with one line
    and exit code 2; Ctrl-C with one line and 130; anything else is a bug: one line
    ``internal error: ...`` with exit code 1 and the traceback saved to a file."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from .runs import TrainingInterrupted

        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except TrainingInterrupted as exc:
            typer.echo(_one_line(str(exc)), err=True)
            raise typer.Exit(130) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except ChainruleError as exc:
            fail(str(exc))
        except (OSError, UnicodeDecodeError) as exc:
            fail(str(exc))
        except MemoryError:
            fail("not enough memory for this command (lower --batch-size or the layer sizes, "
                 "or set --memory-budget)")
        except Exception as exc:  # a bug: say so, keep the traceback for the report
            where = _crash_report(exc)
            typer.echo(f"internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]} "
                       f"(traceback saved to {where}; please report it)", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"chainrule {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Feed-forward neural networks and backpropagation, from the command line."""


class Format(str, Enum):
    text = "text"
    markdown = "markdown"
    latex = "latex"
    json = "json"


class Loss(str, Enum):
    square = "square"
    cross_entropy = "cross-entropy"


def _numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        fail(f"{what} must be comma-separated numbers, got {text!r}")
    return []


@app.command()
@user_errors
def explain(
    target: str = typer.Option(None, "--target", "-y", help="y: a number, a comma-separated "
                               "vector, or a class index for cross-entropy. Adds the loss, every "
                               "delta, every gradient and the SGD update."),
    activation: str = typer.Option(None, "--activation", "-a",
                                   help="theta: identity, sign, sigmoid, tanh or relu "
                                   "(default relu, or the saved model's)."),
    loss: Loss = typer.Option(Loss.square, "--loss", help="square or cross-entropy."),
    weights: Path = typer.Option(None, "--weights", "-w", help="JSON file with \"W\" (list of "
                                 "matrices) and optionally \"b\", \"x\", \"activation\"; or a "
                                 "saved chainrule MLP (.safetensors)."),
    input: str = typer.Option(None, "--input", "-x", help="x: comma-separated input values."),
    eta: float = typer.Option(0.1, "--eta", help="SGD learning rate for the update."),
    format: Format = typer.Option(Format.text, "--format", "-f", help="Output format."),
) -> None:
    """Forward pass (and backpropagation) in the lecture's symbols; the worked example by
    default."""
    from .explain import explain as run, load_weights

    spec: dict[str, Any] = load_weights(weights) if weights is not None else {}
    x = _numbers(input, "--input") if input is not None else spec.get("x")
    if "preprocess" in spec:   # a trained model: --input is a raw row, x^(0) its preprocessing
        if x is None:
            fail(f"--input: give one raw row of {spec['preprocess'].raw_width} values for "
                 "this model")
        raw = x
        x = spec["preprocess"](raw).tolist()
        if format is Format.text:
            typer.echo(f"raw input {raw} -> the model's preprocessing -> x^(0)")
    y = _numbers(target, "--target") if target is not None else None
    result = run(W=spec.get("W"), b=spec.get("b"), x=x,
                 activation=activation or spec.get("activation"), target=y,
                 loss=loss.value, eta=eta, output_activation=spec.get("output_activation"))
    sys.stdout.write(result.render(format.value))


def _xor_model_and_data(seed: int) -> tuple[Any, Any, Any]:
    """A 2-4-1 tanh MLP trained on XOR with SGD and square loss (labels ±1)."""
    import numpy as np

    import chainrule as cr

    X = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]], dtype=np.float32)
    y = np.array([-1, 1, 1, -1], dtype=np.float32)
    cr.manual_seed(seed)
    model = cr.nn.MLP([2, 4, 1], activation="tanh", output_activation="tanh")
    opt = cr.optim.SGD(model.parameters(), lr=0.1)
    xt, yt = cr.tensor(X), cr.tensor(y[:, None])
    for _ in range(1000):
        loss = cr.nn.functional.mse_loss(model(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, X, y


@plot_app.command("regions")
@user_errors
def plot_regions(
    out: Path = typer.Argument(..., help="Output file (.png or .svg)."),
    model: Path = typer.Option(None, "--model", "-m", help="A saved chainrule model with 2 "
                               "inputs; without it a 2-4-1 tanh MLP is trained on XOR."),
    data: Path = typer.Option(None, "--data", help="Labelled raw rows to draw (CSV/NPZ with "
                              "the model's columns); default with a run directory: its test "
                              "part."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Decision regions of sign(h(x)) or argmax, with the data and the first-layer hyperplanes."""
    from .viz import plot_decision_regions

    if model is None:
        net, X, y = _xor_model_and_data(seed)
        title = "XOR: 2-4-1 tanh MLP, sign(h(x)); dashed: $s_j^{(1)}=0$"
    else:
        net, X, y = _model_and_points(model, data)
        title = None
    path = plot_decision_regions(net, X, y, out, title=title)
    typer.echo(f"wrote {path}")


def _model_and_points(model: Path, data: Path | None) -> tuple[Any, Any, Any]:
    """A trained model (with its preprocessing) and raw labelled rows to draw over it."""
    from .runs import load_run_model

    rm = load_run_model(model)
    if len(rm.schema.columns) != 2 or rm.schema.categories:
        fail(f"{model}: decision regions are drawn for models with 2 numeric inputs; this one "
             f"has {len(rm.schema.columns)}")
    if rm.task != "classification":
        fail(f"{model}: decision regions need a classifier")
    if data is not None:
        table = rm.read(data, need_target=True)
        X, y = table.X, rm.targets(table.y, str(data))
    elif Path(model).is_dir():
        from .runs.source import read_split, replay
        from .runs.training import TrainConfig, _encode_targets

        record, split = read_split(Path(model))
        table = replay(record)
        _, y_all, _ = _encode_targets(table, TrainConfig(task="classification"))
        X, y = table.X[split.test], y_all[split.test]
    else:
        fail("--data FILE (labelled rows) is needed to draw a model file's regions")
    if rm.run["prediction"] == "sign":
        y = 2 * y - 1
    return rm.model, X, y


@plot_app.command("activations")
@user_errors
def plot_activations_cmd(out: Path = typer.Argument(..., help="Output file (.png or .svg).")
                         ) -> None:
    """The activation functions theta(s) with their derivatives theta'(s)."""
    from .viz import plot_activations

    typer.echo(f"wrote {plot_activations(out)}")


@plot_app.command("network")
@user_errors
def plot_network_cmd(
    out: Path = typer.Argument(..., help="Output file (.png or .svg)."),
    model: Path = typer.Option(None, "--model", "-m", help="A saved chainrule model; without "
                               "it the XOR network is trained and drawn."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """A layer diagram of a small network with its weights."""
    from .viz import plot_network

    if model is None:
        net = _xor_model_and_data(seed)[0]
    else:
        from .io import load

        net = load(model)
    typer.echo(f"wrote {plot_network(net, out)}")


_READ_OPTS = {
    "no_header": typer.Option(False, "--no-header", help="The CSV file has no header row: "
                              "columns are taken by position."),
    "delimiter": typer.Option(None, "--delimiter", help="The CSV separator (default: sniffed "
                              "from , ; tab |)."),
    "encoding": typer.Option(None, "--encoding", help="The CSV text encoding (default UTF-8; "
                             "UTF-16 with a byte-order mark)."),
}


@app.command()
@user_errors
def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help="A built-in data set (see "
                                "`chainrule datasets`) or a .csv/.npz/.parquet file. Default: "
                                "digits."),
    target: str = typer.Option(None, "--target", help="The target column of a CSV file (a "
                               "name, or a 0-based index with --no-header)."),
    task: str = typer.Option(None, "--task", help="classification or regression (default: "
                             "inferred from the target)."),
    hidden: str = typer.Option(None, "--hidden", help="Hidden layer sizes, e.g. 128,64. "
                               "Default: 128."),
    activation: str = typer.Option(None, "--activation", help="Hidden activation (relu, tanh, "
                                   "sigmoid, leaky_relu, elu, gelu, silu, ...). Default: relu."),
    loss: str = typer.Option(None, "--loss", help="auto, cross-entropy, square or bce."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd, momentum, adam or adamw."),
    lr: float = typer.Option(None, "--lr", help="Learning rate. Default: 0.003."),
    batch_size: str = typer.Option(None, "--batch-size", help="Mini-batch size, or 'auto': the "
                                   "largest that fits --memory-budget (or the available "
                                   "memory), at most the training rows. Default: 32."),
    memory_budget: str = typer.Option(None, "--memory-budget", help="Refuse a run whose "
                                      "training step needs more than this (e.g. 2GiB); with "
                                      "--batch-size auto, the budget the batch is sized for."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs in total. Default: 30."),
    weight_decay: float = typer.Option(None, "--weight-decay"),
    dropout: float = typer.Option(None, "--dropout", help="Dropout after each hidden layer."),
    standardize: bool = typer.Option(None, "--standardize/--no-standardize", help="Scale "
                                     "features with training statistics (a layer of the saved "
                                     "model). Default: on."),
    impute: str = typer.Option(None, "--impute", help="mean or median: fill missing feature "
                               "values (a layer of the saved model). Default: missing values "
                               "are an error."),
    stratify: bool = typer.Option(None, "--stratify/--no-stratify", help="Keep the class "
                                  "proportions in every part (default on; off automatically "
                                  "when a class is too small)."),
    early_stopping: int = typer.Option(None, "--early-stopping", help="Stop after N epochs "
                                       "without a better validation loss; keep the best weights."),
    val_size: float = typer.Option(None, "--val-size", help="Validation fraction of all rows. "
                                   "Default 0.1."),
    test_size: float = typer.Option(None, "--test-size", help="Test fraction of all rows. "
                                    "Default 0.25."),
    noise: float = typer.Option(None, "--noise", help="Noise of a synthetic data set."),
    dtype: str = typer.Option(None, "--dtype", help="float32 (default) or float64."),
    seed: int = typer.Option(None, "--seed", help="Seed of initialisation and shuffling."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory. Default: runs/<time>."),
    config: Path = typer.Option(None, "--config", help="TOML file with the same options."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory "
                                "from its last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the run in --out; the old "
                                   "one stays until the new one has succeeded."),
    divergence_check: bool = typer.Option(True, "--divergence-check/--no-divergence-check",
                                          help="Stop when the loss grows past 100x its initial "
                                          "value."),
    no_header: bool = _READ_OPTS["no_header"],
    delimiter: str = _READ_OPTS["delimiter"],
    encoding: str = _READ_OPTS["encoding"],
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final result."),
) -> None:
    """Train an MLP on a data set; with no options, digits in a few seconds."""
    import json

    from . import memory
    from .runs import TrainConfig, parse_hidden, read_config_file, train_run

    given = {"dataset": dataset, "target": target, "task": task, "activation": activation,
             "loss": loss, "optimizer": optimizer, "lr": lr, "epochs": epochs,
             "weight_decay": weight_decay, "dropout": dropout, "standardize": standardize,
             "impute": impute, "stratify": stratify, "early_stopping": early_stopping,
             "val_size": val_size, "test_size": test_size, "noise": noise, "seed": seed,
             "dtype": dtype, "delimiter": delimiter, "encoding": encoding}
    given = {k: v for k, v in given.items() if v is not None}
    if no_header:
        given["header"] = False
    if not divergence_check:
        given["divergence_check"] = False
    if hidden is not None:
        given["hidden"] = parse_hidden(hidden)
    values: dict[str, Any] = {}
    run_dir = out
    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            fail("--resume continues a run in its own directory; drop --out")
        if overwrite:
            fail("--resume and --overwrite exclude each other")
        cfg_path = resume / "config.json"
        if not cfg_path.is_file():
            fail(f"{resume}: not a run directory (no config.json)")
        try:
            saved = json.loads(cfg_path.read_text())
        except (ValueError, RecursionError):
            fail(f"{cfg_path}: not valid JSON")
        if not isinstance(saved, dict):
            fail(f"{cfg_path}: not a JSON object of options")
        values.update({k: v for k, v in saved.items() if k in TrainConfig.fields()})
        changed = sorted(k for k in given if k not in ("epochs", "early_stopping")
                         and values.get(k) != given[k])
        if changed:
            fail(f"--resume continues the recorded run; only --epochs and --early-stopping can "
                 f"change, not {', '.join(changed)}")
        run_dir = resume
    if config is not None:
        values.update(read_config_file(config))
    values.update(given)
    budget = memory.parse_bytes(memory_budget) if memory_budget is not None else None
    if batch_size is not None and batch_size != "auto":
        try:
            values["batch_size"] = int(batch_size)
        except ValueError:
            fail(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}")
    cfg = TrainConfig(**values)
    if batch_size == "auto":
        cfg.batch_size = _auto_batch_size(cfg, budget, quiet)
    if run_dir is not None:
        cfg.out = str(run_dir)
    # This process is the application: keep the memory each step frees for the next one rather
    # than paging it in again (chainrule.memory.allocator; no-op without glibc).
    from .memory import keep_freed_memory

    keep_freed_memory()
    summary = train_run(cfg, run_dir, resume=resume is not None, overwrite=overwrite,
                        progress="none" if quiet else "auto", memory_budget=budget,
                        echo=lambda line: typer.echo(line, err=True))
    where = summary["run_dir"]
    if "test_accuracy" in summary:
        typer.echo(f"{summary['dataset']}: test accuracy {summary['test_accuracy']:.4f} "
                   f"after {summary['epochs_run']} epochs ({summary['seconds']:.1f}s); "
                   f"run saved in {where}")
    else:
        typer.echo(f"{summary['dataset']}: test MSE {summary['test_mse']:.4g}, R^2 "
                   f"{summary['test_r2'] if summary['test_r2'] is None else round(summary['test_r2'], 4)} "
                   f"after {summary['epochs_run']} epochs; run saved in {where}")


def _auto_batch_size(cfg: Any, budget: int | None, quiet: bool) -> int:
    """The largest batch whose step fits the budget (or the available memory), at most the
    number of training rows."""
    import numpy as np

    from . import memory
    from .runs import prepare_data
    from .runs.training import network_sizes

    cfg.batch_size = 1
    cfg.validate()
    data = prepare_data(cfg)
    limit = budget if budget is not None else memory.available_bytes()
    if limit is None:
        fail("--batch-size auto needs --memory-budget (the available memory is unknown here)")
    rows = len(data.split.train)
    sizes = network_sizes(cfg, data)
    # the guard counts the preprocessed data too (chainrule.runs.training.memory_guard)
    data_bytes = len(data.table.X) * sizes[0] * np.dtype(cfg.dtype).itemsize
    if data_bytes >= limit:
        fail(f"the data alone ({memory.format_bytes(data_bytes)}) needs more than the memory "
             f"budget of {memory.format_bytes(limit)}")
    limit -= data_bytes
    memory.check_fits(memory.estimate_mlp(sizes, 1, activation=cfg.activation, dtype=cfg.dtype,
                                          optimizer=cfg.optimizer, dropout=cfg.dropout),
                      limit, what="even a batch of one")
    import chainrule as cr

    net = cr.nn.MLP(sizes, activation=cfg.activation, dropout=cfg.dropout, dtype=cfg.dtype)
    size = int(memory.max_batch_size(net, limit, optimizer=cfg.optimizer, limit=rows))
    if size < 1:
        fail(f"not even one sample fits a training step in {memory.format_bytes(limit)}")
    typer.echo(f"--batch-size auto: {size} (of {rows} training rows; budget "
               f"{memory.format_bytes(limit)})", err=True)
    return int(size)


class TableFormat(str, Enum):
    table = "table"
    json = "json"


@app.command()
@user_errors
def evaluate(
    model: Path = typer.Argument(..., help="A run directory (or a model file with --data)."),
    part: str = typer.Option("test", "--part", help="test, train or val: a part of the run's "
                             "recorded split, read again from the recorded data."),
    data: Path = typer.Option(None, "--data", help="Evaluate on every row of this labelled "
                              "file instead (CSV/NPZ/Parquet with the target column)."),
    format: TableFormat = typer.Option(TableFormat.table, "--format", "-f",
                                       help="table or json."),
    no_header: bool = _READ_OPTS["no_header"],
    delimiter: str = _READ_OPTS["delimiter"],
    encoding: str = _READ_OPTS["encoding"],
) -> None:
    """Metrics of a trained model: accuracy, per-class precision/recall/F1, ROC AUC and the
    confusion matrix, or MSE/RMSE/MAE/R^2; equal to the run's summary.json for its test part."""
    import json

    from .runs import evaluate_run, headline

    ev = evaluate_run(model, part, data, header=not no_header, delimiter=delimiter,
                      encoding=encoding)
    m = ev.metrics
    if format is TableFormat.json:
        typer.echo(json.dumps({"part": part if data is None else None, "data": ev.what,
                               "metrics": m}, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    table = Table(title=f"{model} on the {ev.what}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in headline(m).items():
        table.add_row(k, "-" if v is None else repr(v))
    console.print(table)
    if "per_class" in m:
        rep = Table(title="per class")
        for col in ("class", "precision", "recall", "f1", "support"):
            rep.add_column(col, justify="right" if col != "class" else "left")
        rows = list(m["per_class"].items()) + [("macro avg", m["macro_avg"]),
                                               ("weighted avg", m["weighted_avg"])]
        for name, r in rows:
            rep.add_row(str(name), f"{r['precision']:.4f}", f"{r['recall']:.4f}",
                        f"{r['f1-score']:.4f}", str(r["support"]))
        console.print(rep)
        conf = Table(title="confusion matrix (rows: true, columns: predicted)")
        names = list(m["per_class"])
        conf.add_column("")
        for n in names:
            conf.add_column(str(n), justify="right")
        for n, row in zip(names, m["confusion"]):
            conf.add_row(str(n), *(str(v) for v in row))
        console.print(conf)


@app.command()
@user_errors
def predict(
    model: Path = typer.Argument(..., help="A model file or a run directory."),
    input: Path = typer.Option(..., "--input", "-i", help="CSV or Parquet (columns named as "
                               "in training), NPZ (X) or NPY file of raw rows."),
    proba: bool = typer.Option(False, "--proba", help="Print class probabilities."),
    output: Path = typer.Option(None, "--output", "-o", help="Write a CSV here instead of "
                                "printing."),
    no_header: bool = _READ_OPTS["no_header"],
    delimiter: str = _READ_OPTS["delimiter"],
    encoding: str = _READ_OPTS["encoding"],
) -> None:
    """Predictions of a trained model for the raw rows of a file (read by the strict reader)."""
    from .io import atomic_write
    from .predict import format_predictions
    from .runs import load_run_model

    rm = load_run_model(model)
    table = rm.read(input, header=not no_header, delimiter=delimiter, encoding=encoding)
    text = format_predictions(rm, rm.outputs(table.X), proba)
    if output is not None:
        if output.resolve() == input.resolve():
            fail("--output would overwrite the --input file")
        atomic_write(output, text.encode())
        typer.echo(f"wrote {len(table.X)} predictions to {output}")
    else:
        sys.stdout.write(text)


@app.command()
@user_errors
def datasets() -> None:
    """The built-in data sets with their shapes and sources."""
    from rich.console import Console
    from rich.table import Table

    from .data import list_datasets

    table = Table(title="built-in data sets (chainrule train --dataset NAME)")
    for col in ("name", "task", "features", "classes", "train", "test", "source"):
        table.add_column(col)
    for info in list_datasets():
        table.add_row(info.name, info.task, str(info.n_features), str(info.num_classes),
                      str(info.n_train), str(info.n_test), info.source)
    Console(width=160).print(table)


@app.command("memory")
@user_errors
def memory_cmd(
    hidden: str = typer.Option("1024,1024", "--hidden", help="Hidden layer sizes."),
    input_dim: int = typer.Option(784, "--input-dim", help="Input features."),
    classes: int = typer.Option(10, "--classes", help="Output classes."),
    batch_sizes: str = typer.Option("32,128,512,2048,8192", "--batch-sizes",
                                    help="Batch sizes to tabulate."),
    budget: str = typer.Option(None, "--budget", help="Memory budget, e.g. 2GiB: report the "
                               "largest batch that fits."),
    activation: str = typer.Option("relu", "--activation"),
    dtype: str = typer.Option("float32", "--dtype"),
    optimizer: str = typer.Option("sgd", "--optimizer", help="sgd, momentum, adam, adamw, "
                                  "rmsprop or adagrad (their state costs memory)."),
    segments: int = typer.Option(None, "--segments", help="Checkpoint segments (default "
                                 "about sqrt(L))."),
    plot: Path = typer.Option(None, "--plot", help="Write the stacked-bar plot here (.png/.svg)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Training-step memory of an MLP by batch size: parameters, gradients, optimizer state and
    saved activations, with and without activation checkpointing."""
    import json

    from .memory import plot_report, report
    from .runs import parse_hidden

    sizes = _positive_ints(batch_sizes, "--batch-sizes")
    if plot is not None and plot.suffix.lower() not in (".png", ".svg"):
        fail(f"{plot}: the plot is written as .png or .svg")
    rep = report(parse_hidden(hidden), input_dim, classes, sizes, activation=activation,
                 dtype=dtype, optimizer=optimizer, checkpoint_segments=segments, budget=budget)
    if as_json:
        typer.echo(json.dumps(rep.as_dict(), indent=2))
    else:
        typer.echo(rep.table())
    if plot is not None:
        typer.echo(f"wrote {plot_report(rep, plot)}")


def _positive_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        fail(f"{what} must be comma-separated positive integers, got {text!r}")
    if not values or any(v < 1 for v in values):
        fail(f"{what} must be comma-separated positive integers, got {text!r}")
    return values


def _given(exc: Exception) -> str:
    """The value the user gave for the option a usage error is about, if any."""
    param = getattr(exc, "param", None)
    args = sys.argv[1:]
    for opt in getattr(param, "opts", None) or []:
        for i, a in enumerate(args):
            if a == opt and i + 1 < len(args):
                return f" (got {args[i + 1]!r})"
            if a.startswith(opt + "="):
                return f" (got {a[len(opt) + 1:]!r})"
    return ""


def main() -> None:
    """Console-script entry point: usage errors (unknown option, bad value) are one line too."""
    try:
        import click
    except ImportError:  # typer >= 0.2x vendors click
        from typer import _click as click  # type: ignore[no-redef]

    try:
        code = app(standalone_mode=False)   # an Exit raised by a command comes back as its code
    except click.exceptions.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError" and exc.ctx is not None:
            typer.echo(exc.ctx.get_help())
            sys.exit(2)
        sub = exc.ctx.info_name if exc.ctx is not None and exc.ctx.parent is not None else ""
        hint = f" (see chainrule {sub + ' ' if sub else ''}--help)"
        typer.echo(f"error: {_one_line(exc.format_message())}{_given(exc)}{hint}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
