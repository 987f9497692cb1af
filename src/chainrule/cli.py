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
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn chainrule's errors (and unreadable files) into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ChainruleError as exc:
            fail(str(exc))
        except (OSError, UnicodeDecodeError) as exc:
            fail(str(exc))

    return wrapper


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
    data: Path = typer.Option(None, "--data", help="NPZ file with X (N, 2) and y to draw "
                              "(required with --model)."),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Decision regions of sign(h(x)) or argmax, with the data and the first-layer hyperplanes."""
    from .viz import plot_decision_regions

    if model is None:
        net, X, y = _xor_model_and_data(seed)
        title = "XOR: 2-4-1 tanh MLP, sign(h(x)); dashed: $s_j^{(1)}=0$"
    else:
        from .io import load

        if data is None:
            fail("--data FILE.npz (with X and y) is needed to draw a saved model's regions")
        import numpy as np

        net = load(model)
        try:
            with np.load(data, allow_pickle=False) as f:
                X, y = f["X"], f["y"]
        except (OSError, ValueError, KeyError) as exc:
            fail(f"{data}: cannot read X and y ({exc})")
        title = None
    path = plot_decision_regions(net, X, y, out, title=title)
    typer.echo(f"wrote {path}")


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


@app.command()
@user_errors
def train(
    dataset: str = typer.Option(None, "--dataset", "-d", help="A built-in data set (see "
                                "`chainrule datasets`) or a .csv/.npz file. Default: digits."),
    target: str = typer.Option(None, "--target", help="The target column of a CSV file."),
    hidden: str = typer.Option(None, "--hidden", help="Hidden layer sizes, e.g. 128,64. "
                               "Default: 128."),
    activation: str = typer.Option(None, "--activation", help="Hidden activation (relu, tanh, "
                                   "sigmoid, leaky_relu, elu, gelu, silu, ...). Default: relu."),
    loss: str = typer.Option(None, "--loss", help="auto, cross-entropy, square or bce."),
    optimizer: str = typer.Option(None, "--optimizer", help="sgd, momentum, adam or adamw."),
    lr: float = typer.Option(None, "--lr", help="Learning rate. Default: 0.003."),
    batch_size: str = typer.Option(None, "--batch-size", help="Mini-batch size, or 'auto' with "
                                   "--memory-budget. Default: 32."),
    memory_budget: str = typer.Option(None, "--memory-budget", help="With --batch-size auto: "
                                      "the largest batch whose training step fits, e.g. 2GiB."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs in total. Default: 30."),
    weight_decay: float = typer.Option(None, "--weight-decay"),
    dropout: float = typer.Option(None, "--dropout", help="Dropout after each hidden layer."),
    standardize: bool = typer.Option(None, "--standardize/--no-standardize", help="Scale "
                                     "features with training statistics. Default: on."),
    early_stopping: int = typer.Option(None, "--early-stopping", help="Stop after N epochs "
                                       "without a better validation loss; keep the best weights."),
    val_size: float = typer.Option(None, "--val-size", help="Validation fraction. Default 0.1."),
    noise: float = typer.Option(None, "--noise", help="Noise of a synthetic data set."),
    seed: int = typer.Option(None, "--seed", help="Seed of initialisation and shuffling."),
    out: Path = typer.Option(None, "--out", "-o", help="Run directory. Default: runs/<time>."),
    config: Path = typer.Option(None, "--config", help="TOML file with the same options."),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this directory "
                                "from its last checkpoint."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final result."),
) -> None:
    """Train an MLP on a data set; with no options, digits in a few seconds."""
    import json

    from .runs import TrainConfig, parse_hidden, read_config_file, train_run

    given = {"dataset": dataset, "target": target, "activation": activation, "loss": loss,
             "optimizer": optimizer, "lr": lr, "epochs": epochs, "weight_decay": weight_decay,
             "dropout": dropout, "standardize": standardize,
             "early_stopping": early_stopping, "val_size": val_size, "noise": noise,
             "seed": seed}
    given = {k: v for k, v in given.items() if v is not None}
    if hidden is not None:
        given["hidden"] = parse_hidden(hidden)
    values: dict[str, Any] = {}
    run_dir = out
    if resume is not None:
        cfg_path = resume / "config.json"
        if not cfg_path.is_file():
            fail(f"{resume}: not a run directory (no config.json)")
        try:
            saved = json.loads(cfg_path.read_text())
        except ValueError:
            fail(f"{cfg_path}: not valid JSON")
        values.update({k: v for k, v in saved.items() if k in TrainConfig.fields()})
        run_dir = resume
    if config is not None:
        values.update(read_config_file(config))
    values.update(given)
    if batch_size is not None and batch_size != "auto":
        try:
            values["batch_size"] = int(batch_size)
        except ValueError:
            fail(f"--batch-size must be a positive integer or 'auto', got {batch_size!r}")
    cfg = TrainConfig(**values)
    if batch_size == "auto":
        cfg.batch_size = _auto_batch_size(cfg, memory_budget)
    elif memory_budget is not None:
        fail("--memory-budget is used with --batch-size auto")
    if run_dir is not None:
        cfg.out = str(run_dir)
    # This process is the application: keep the memory each step frees for the next one rather
    # than paging it in again (chainrule.memory.allocator; no-op without glibc).
    from .memory import keep_freed_memory

    keep_freed_memory()
    summary = train_run(cfg, run_dir, resume=resume is not None,
                        progress="none" if quiet else "auto")
    where = cfg.out or "the run directory"
    if "test_accuracy" in summary:
        typer.echo(f"{summary['dataset']}: test accuracy {summary['test_accuracy']:.4f} "
                   f"after {summary['epochs_run']} epochs ({summary['seconds']:.1f}s); "
                   f"run saved in {where}")
    else:
        typer.echo(f"{summary['dataset']}: test MSE {summary['test_mse']:.4g}, R^2 "
                   f"{summary['test_r2']:.4f} after {summary['epochs_run']} epochs; "
                   f"run saved in {where}")


def _auto_batch_size(cfg: Any, budget: str | None) -> int:
    if budget is None:
        fail("--batch-size auto needs --memory-budget (e.g. 2GiB)")
    from . import memory
    from .runs import build

    setup = build(cfg)
    size = int(memory.max_batch_size(setup.model, memory.parse_bytes(budget),
                                     optimizer=setup.optimizer))
    if size < 1:
        fail(f"not even one sample fits a training step in {budget}")
    return size


@app.command()
@user_errors
def evaluate(
    model: Path = typer.Argument(..., help="A model file or a run directory."),
    dataset: str = typer.Option(None, "--dataset", "-d", help="Data set name or file; default: "
                                "the one the model was trained on."),
    target: str = typer.Option(None, "--target", help="Target column of a CSV file."),
    part: str = typer.Option("test", "--part", help="test, train or val."),
) -> None:
    """Metrics of a trained model on a data set: a table, and the confusion matrix."""
    from rich.console import Console
    from rich.table import Table

    from .data import load_dataset
    from .runs import load_model_bundle, metrics_for

    bundle = load_model_bundle(model)
    run = bundle.run
    name = dataset or run.get("dataset")
    if not name:
        fail("the model file does not say which data set it was trained on: pass --dataset")
    options: dict[str, Any] = {}
    if target or run.get("target"):
        options["target"] = target or run.get("target")
    data = load_dataset(name, **options)
    X = getattr(data, f"X_{part}", None)
    y = getattr(data, f"y_{part}", None)
    if X is None:
        fail(f"the data set has no {part!r} part")
    if run.get("task") == "classification" and data.task == "classification" and \
            run.get("num_classes") not in (None, data.num_classes):
        fail(f"the model predicts {run.get('num_classes')} classes, the data set has "
             f"{data.num_classes}")
    out = bundle.outputs(X)
    m = metrics_for(run.get("task", data.task), run.get("prediction", "argmax"),
                    run.get("loss", ""), out, y, data.num_classes)
    console = Console()
    table = Table(title=f"{Path(model).name} on {data.name} ({part}, {len(X)} samples)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in m.items():
        if k != "confusion":
            table.add_row(k.replace("test_", ""), f"{v:.4f}")
    console.print(table)
    if "confusion" in m:
        conf = Table(title="confusion matrix (rows: true, columns: predicted)")
        names = data.class_names or tuple(range(len(m["confusion"])))
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
    input: Path = typer.Option(..., "--input", "-i", help="CSV (header, feature columns) or "
                               "NPZ (X) file."),
    proba: bool = typer.Option(False, "--proba", help="Print class probabilities."),
    output: Path = typer.Option(None, "--output", "-o", help="Write a CSV here instead of "
                                "printing."),
) -> None:
    """Predictions of a trained model for the rows of a file."""
    from .predict import format_predictions, read_features
    from .runs import load_model_bundle

    bundle = load_model_bundle(model)
    X = read_features(input, bundle.run.get("feature_names") or None,
                      bundle.run.get("n_features"))
    text = format_predictions(bundle, bundle.outputs(X), proba)
    if output is not None:
        output.write_text(text)
        typer.echo(f"wrote {len(X)} predictions to {output}")
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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
