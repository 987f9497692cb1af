"""``chainrule evaluate`` and ``chainrule predict``: a trained model on its exact split or on new
rows, read by the strict reader."""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path

import typer

from .app import READ_OPTS, app, fail, user_errors


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
    no_header: bool = READ_OPTS["no_header"],
    delimiter: str = READ_OPTS["delimiter"],
    encoding: str = READ_OPTS["encoding"],
) -> None:
    """Metrics of a trained model: accuracy, per-class precision/recall/F1, ROC AUC and the
    confusion matrix, or MSE/RMSE/MAE/R^2; equal to the run's summary.json for its test part."""
    import json

    from ..runs import evaluate_run, headline

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
    no_header: bool = READ_OPTS["no_header"],
    delimiter: str = READ_OPTS["delimiter"],
    encoding: str = READ_OPTS["encoding"],
) -> None:
    """Predictions of a trained model for the raw rows of a file (read by the strict reader)."""
    from ..io import atomic_write
    from ..predict import format_predictions
    from ..runs import load_run_model

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
