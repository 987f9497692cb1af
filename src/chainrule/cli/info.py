"""``chainrule datasets`` and ``chainrule memory``: what there is to train on, and what a step
costs."""

from __future__ import annotations

from pathlib import Path

import typer

from .app import app, fail, user_errors


@app.command()
@user_errors
def datasets() -> None:
    """The built-in data sets with their shapes and sources."""
    from rich.console import Console
    from rich.table import Table

    from ..data import list_datasets

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

    from ..memory import plot_report, report
    from ..runs import parse_hidden

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
