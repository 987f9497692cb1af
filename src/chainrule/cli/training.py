"""``chainrule train``: options in, a run directory out (``chainrule.runs.train_run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from .app import READ_OPTS, app, fail, user_errors


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
    no_header: bool = READ_OPTS["no_header"],
    delimiter: str = READ_OPTS["delimiter"],
    encoding: str = READ_OPTS["encoding"],
    distributed: bool = typer.Option(False, "--distributed", help="Data-parallel over MPI: "
                                     "run as `mpiexec -n N chainrule train --distributed ...`; "
                                     "--batch-size is the global batch (divisible by N)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final result."),
    detect_anomaly: bool = typer.Option(False, "--detect-anomaly", help="Check every operation "
                                        "for NaN/inf, forward and backward, and stop at the "
                                        "first one, naming it (slower; for debugging)."),
    compile: bool = typer.Option(True, "--compile/--no-compile", help="Replay the training "
                                 "step with cr.compile (the same numbers, faster); "
                                 "--no-compile runs it eagerly."),
) -> None:
    """Train an MLP on a data set; with no options, digits in a few seconds."""
    import json

    from .. import memory
    from ..runs import TrainConfig, parse_hidden, read_config_file, train_run

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
    prepared = None
    if batch_size == "auto":
        cfg.batch_size, prepared = _auto_batch_size(cfg, budget)
    if run_dir is not None:
        cfg.out = str(run_dir)
    # This process is the application: keep the memory each step frees for the next one rather
    # than paging it in again (chainrule.memory.allocator; no-op without glibc).
    from ..memory import keep_freed_memory

    keep_freed_memory()
    from .. import anomaly

    # an AnomalyError is a chainrule error: one line naming the operation, epoch and batch;
    # anomaly mode checks every operation eagerly, so it runs the step without cr.compile
    with anomaly.detect_anomaly(enabled=detect_anomaly):
        summary = train_run(cfg, run_dir, resume=resume is not None, overwrite=overwrite,
                            progress="none" if quiet else "auto", memory_budget=budget,
                            data=prepared, compile=compile and not detect_anomaly,
                            distributed=distributed,
                            echo=lambda line: typer.echo(line, err=True))
    if "rank" in summary:       # a data-parallel rank other than 0: rank 0 reports
        return
    where = summary["run_dir"]
    if "test_accuracy" in summary:
        typer.echo(f"{summary['dataset']}: test accuracy {summary['test_accuracy']:.4f} "
                   f"after {summary['epochs_run']} epochs ({summary['seconds']:.1f}s); "
                   f"run saved in {where}")
    else:
        typer.echo(f"{summary['dataset']}: test MSE {summary['test_mse']:.4g}, R^2 "
                   f"{summary['test_r2'] if summary['test_r2'] is None else round(summary['test_r2'], 4)} "
                   f"after {summary['epochs_run']} epochs; run saved in {where}")


def _auto_batch_size(cfg: Any, budget: int | None) -> tuple[int, Any]:
    """The largest batch whose step fits the budget (or the available memory), at most the
    number of training rows; and the data it read (the run goes on with it)."""
    from .. import memory
    from ..runs import prepare_data
    from ..runs.training import data_bytes, network_sizes

    cfg.batch_size = 1
    cfg.validate()
    data = prepare_data(cfg)
    limit = budget if budget is not None else memory.available_bytes()
    if limit is None:
        fail("--batch-size auto needs --memory-budget (the available memory is unknown here)")
    rows = len(data.split.train)
    sizes = network_sizes(cfg, data)
    held = data_bytes(cfg, data)        # the guard counts the rows too (memory_guard)
    if held >= limit:
        fail(f"the data alone ({memory.format_bytes(held)}) needs more than the memory "
             f"budget of {memory.format_bytes(limit)}")
    limit -= held
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
    return int(size), data
