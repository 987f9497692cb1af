"""``chainrule train`` in Python: :func:`train_run` reads the data, records the exact split, fits
the preprocessing, checks that the step fits in memory, trains, and fills the run directory.

A run directory holds

``config.json``        every option, resolved, and the library version
``split.json``         the data source (name and parameters, or path and SHA-256) and the row
                       indices of the train, val and test parts
``model.safetensors``  the trained network with its preprocessing layers, and the metadata that
                       reads raw rows for it (``chainrule.runs.model_file``)
``checkpoint.safetensors``  model, optimizer, random states, epoch, metrics (for ``--resume``)
``metrics.jsonl``      one JSON line of metrics per epoch
``summary.json``       the metrics of every part (computed as ``evaluate`` computes them), time
``curves.png``, ``confusion.png``, ``boundary.png``   pictures
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..data.mapped import CHUNK_BYTES, MappedRows, rows_of
from ..data.reader import Table
from ..errors import ChainruleError, InvalidValueError
from . import directory
from .config import TrainConfig
from .metrics import compute_metrics
from .preprocess import fit_preprocessing
from .model_file import MODEL_NAME, class_name, predict_outputs, run_metadata, save_run_model
from .source import Split, load_source, make_split, read_split, replay, split_seed, write_split

DIVERGENCE_FACTOR = 100.0


class TrainingInterrupted(ChainruleError, KeyboardInterrupt):
    """Ctrl-C: the last finished epoch is checkpointed; the message says how to resume."""


@dataclass(eq=False)
class Prepared:
    """The data of a run, split and encoded, before any model is built."""

    table: Table
    record: dict[str, Any]
    split: Split
    task: str
    y: np.ndarray                 # class indices (int64) or float targets
    num_classes: int | None
    class_names: list[str] | None
    notes: list[str]


@dataclass
class Setup:
    """Data, preprocessing, network, loss and optimizer built from a config."""

    config: TrainConfig
    data: Prepared
    model: Any                    # the whole model: preprocessing layers + network
    network: Any                  # the nn.MLP that is trained
    loss_name: str
    prediction: str
    loss_fn: Any
    optimizer: Any
    n_outputs: int
    features: dict[str, np.ndarray]   # preprocessed inputs of each part (the network's dtype);
                                      # empty for memory-mapped data (preprocessed per batch)
    transform: Callable[[np.ndarray], np.ndarray]   # raw rows -> network inputs


# --------------------------------------------------------------------------- data
def prepare_data(config: TrainConfig, run_dir: Path | None = None,
                 memory_limit: int | None = None) -> Prepared:
    """Read the rows and split them (or replay the recorded split of ``run_dir``)."""
    notes: list[str] = []
    if run_dir is not None:
        record, split = read_split(run_dir)
        table = replay(record)
    else:
        table, record = load_source(config, memory_limit)
        split = None
    task, y, classes = encode_targets(table, config.task)
    names = None
    if classes is not None:
        names = ([table.class_names[int(c)] for c in classes] if table.class_names
                 else [class_name(c) for c in classes.tolist()])
    if split is None:
        split, note = make_split(len(y), y if task == "classification" else None, config,
                                 table.test_rows, split_seed(record))
        if note:
            notes.append(note)
    else:
        split.check_rows(len(y), run_dir)
    return Prepared(table, record, split, task, y, len(classes) if classes is not None else None,
                    names, notes)


def encode_targets(table: Table, task: str | None
                   ) -> tuple[str, np.ndarray, np.ndarray | None]:
    """``(task, y, classes)``: class indices into the sorted distinct labels ``classes``, or
    float targets (regression); ``task`` None infers it from the targets."""
    from ..data.split import infer_task

    y = table.y
    task = task or infer_task(y)
    if task == "regression":
        if y.dtype.kind not in "biuf":
            raise InvalidValueError("--task regression needs numeric targets; the target column "
                                    "holds text")
        return task, y.astype(np.float64), None
    classes, idx = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise InvalidValueError(f"the target has a single class ({classes.tolist()[:1]}); "
                                "classification needs at least two")
    if classes.size > 100_000:
        raise InvalidValueError(f"the target has {classes.size} distinct values; use --task "
                                "regression for a numeric target")
    return task, idx.reshape(-1).astype(np.int64), classes


# --------------------------------------------------------------------------- model
def _resolve_loss(config: TrainConfig, task: str, k: int | None) -> tuple[str, str, int]:
    """(loss, prediction kind, number of outputs)."""
    loss = config.loss
    if task == "regression":
        if loss not in ("auto", "square"):
            raise InvalidValueError(f"loss {loss!r} needs class labels, but this data set is a "
                                    "regression task: use --loss square")
        return "square", "none", 1
    k = int(k or 0)
    if loss in ("auto", "cross-entropy"):
        return "cross-entropy", "argmax", k
    if loss == "bce":
        if k != 2:
            raise InvalidValueError(f"--loss bce is for two classes, this data set has {k}")
        return "bce", "logit", 1
    # square: the lecture's sign(h(x)) with labels ±1 for two classes, one-hot targets for K
    return "square", ("sign" if k == 2 else "argmax"), (1 if k == 2 else k)


def _targets(y: np.ndarray, loss: str, k: int, dtype: Any) -> np.ndarray:
    if loss == "square" and k == 1:
        return y.astype(dtype).reshape(-1, 1)
    if loss == "square" and k == 2:
        return (2.0 * y - 1.0).astype(dtype).reshape(-1, 1)            # labels ±1
    if loss == "square":
        return np.eye(k, dtype=dtype)[y]                               # one-hot
    if loss == "bce":
        return y.astype(dtype).reshape(-1, 1)
    return y


def network_sizes(config: TrainConfig, data: Prepared) -> list[int]:
    """Layer sizes of the network (after one-hot expansion of categorical columns)."""
    schema = data.table.schema
    width = len(schema.columns) + sum(len(schema.categories[c]) - 1 for c in schema.categories)
    _, _, n_out = _resolve_loss(config, data.task, data.num_classes)
    return [width, *config.hidden, n_out]


def build(config: TrainConfig, data: Prepared | None = None) -> Setup:
    """Data, preprocessing, network, loss and optimizer for ``config`` (seeded)."""
    import chainrule as cr
    from chainrule.nn import functional as F

    config.validate()
    data = data if data is not None else prepare_data(config)
    cr.manual_seed(config.seed)
    loss, prediction, n_out = _resolve_loss(config, data.task, data.num_classes)
    pre = fit_preprocessing(config, data)
    sizes = network_sizes(config, data)
    network = cr.nn.MLP(sizes, activation=config.activation,
                        output_activation=("tanh" if prediction == "sign" else None),
                        dropout=config.dropout, dtype=config.dtype)
    model = cr.nn.Sequential(*pre, network) if pre else network
    loss_fn = {"cross-entropy": F.cross_entropy, "square": F.mse_loss,
               "bce": F.binary_cross_entropy_with_logits}[loss]
    opt_cls = {"sgd": cr.optim.SGD, "momentum": cr.optim.SGD, "adam": cr.optim.Adam,
               "adamw": cr.optim.AdamW}[config.optimizer]
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "momentum":
        kwargs["momentum"] = 0.9
    optimizer = opt_cls(network.parameters(), **kwargs)
    features: dict[str, np.ndarray] = {}
    X = data.table.X
    transform = _transform(pre, config.dtype)
    if not isinstance(X, MappedRows):    # in memory: preprocessed once; mapped: per batch
        for part in ("train", "val", "test"):
            features[part] = np.ascontiguousarray(transform(X[getattr(data.split, part)]))
    return Setup(config, data, model, network, loss, prediction, loss_fn, optimizer, n_out,
                 features, transform)


def _transform(pre: list[Any], dtype: str) -> Callable[[np.ndarray], np.ndarray]:
    """Raw float64 rows -> the network's inputs: the preprocessing layers, row by row."""
    import chainrule as cr

    if not pre:
        return lambda raw: raw.astype(dtype)
    stack = cr.nn.Sequential(*pre)

    def transform(raw: np.ndarray) -> np.ndarray:
        with cr.no_grad():
            return stack(cr.tensor(raw)).numpy()
    return transform


def loaders(setup: Setup, shard: tuple[int, int] | None = None) -> tuple[Any, Any]:
    """The training loader (this rank's ``shard`` of every global batch, data-parallel) and
    the validation loader (every rank scores the whole validation part)."""
    from ..data import DataLoader, RowsDataset, TensorDataset

    d, c, k = setup.data, setup.config, setup.n_outputs
    dtype = np.dtype(c.dtype)
    y = d.y

    def dataset(part: str) -> Any:
        rows = getattr(d.split, part)
        targets = _targets(y[rows], setup.loss_name, k, dtype)
        if part in setup.features:
            return TensorDataset(setup.features[part], targets)
        return RowsDataset(d.table.X, rows, targets, setup.transform)

    train_loader = DataLoader(dataset("train"), batch_size=c.batch_size, shuffle=True,
                              seed=c.seed, shard=shard)
    val_loader = None
    if d.split.val.size:
        val_loader = DataLoader(dataset("val"), batch_size=max(c.batch_size, 256))
    return train_loader, val_loader


def evaluate_rows(model: Any, meta: dict[str, Any], X: np.ndarray, y: np.ndarray
                  ) -> dict[str, Any]:
    """Metrics of ``model`` on raw rows: the one computation behind summary and evaluate."""
    out = predict_outputs(model, X)
    return compute_metrics(meta["task"], meta["prediction"], out, y, meta["num_classes"],
                           meta["class_names"])


# --------------------------------------------------------------------------- the guard
def data_bytes(config: TrainConfig, data: Prepared) -> int:
    """The memory a run keeps for its data beside the step. In memory: the preprocessed copy of
    every row (the network's input width and dtype). Memory-mapped: per row, the encoded target
    and the split's and one epoch's row indices (8 bytes each), plus the chunks a streaming pass
    holds; the rows themselves stay in the file."""
    n = len(data.table.X)
    if isinstance(data.table.X, MappedRows):
        return n * 8 * 3 + 4 * CHUNK_BYTES
    return n * network_sizes(config, data)[0] * np.dtype(config.dtype).itemsize


def memory_guard(config: TrainConfig, data: Prepared, budget: int | None) -> int:
    """Refuse a run whose training step would not fit (before anything is allocated): the step
    as ``chainrule.memory`` predicts it from the layer sizes alone, plus the preprocessed data."""
    from .. import memory

    sizes = network_sizes(config, data)
    batch = min(config.batch_size, max(len(data.split.train), 1))
    est = memory.estimate_mlp(sizes, batch, activation=config.activation, dtype=config.dtype,
                              optimizer=config.optimizer, dropout=config.dropout)
    need = int(est.peak) + data_bytes(config, data)
    memory.check_fits(need, budget, what=f"training an MLP {'-'.join(map(str, sizes))} with "
                                         f"batches of {batch}")
    return need


# --------------------------------------------------------------------------- the run
def _default_run_dir() -> Path:
    return Path("runs") / time.strftime("%Y%m%d-%H%M%S")


def train_run(config: TrainConfig, run_dir: str | Path | None = None, *, resume: bool = False,
              overwrite: bool = False, progress: str = "auto", plots: bool = True,
              memory_budget: int | None = None, distributed: bool = False,
              data: Prepared | None = None,
              echo: Callable[[str], None] | None = None,
              compile: bool = True) -> dict[str, Any]:  # noqa: A002 - Trainer's option
    """Train as ``chainrule train`` does and fill the run directory; returns the summary.

    Everything that can be checked is checked before the directory is touched: options, data,
    the split, and the memory the step needs.

    ``distributed``: data-parallel over MPI (run under ``mpiexec``): ``batch_size`` is the global
    batch, each of the N ranks computes on batch_size / N rows of it, the gradients are averaged
    with one allreduce per step, and only rank 0 writes the run directory; N ranks end with the
    parameters one process would have.

    ``compile``: replay the training step with ``cr.compile`` (``Trainer(compile=...)``; the
    same numbers as eagerly).
    """
    import chainrule as cr

    from ..train import CHECKPOINT_NAME, Trainer

    from .. import distributed as dist

    say = echo or (lambda s: None)
    out = Path(run_dir or config.out or _default_run_dir())
    config.validate()
    if distributed:
        dist.init()
    world, main = dist.world_size(), dist.is_main()
    if config.batch_size % world:
        raise InvalidValueError(f"--batch-size {config.batch_size} is the global batch; it must "
                                f"be divisible by the {world} processes")
    if not main:
        say = lambda s: None  # noqa: E731 - rank 0 speaks for the run
    failure: Exception | None = None
    try:    # every check, on every rank, before anything is written
        if resume:
            if not (out / "config.json").is_file():
                raise InvalidValueError(f"{out}: not a run directory (no config.json)")
            if not (out / CHECKPOINT_NAME).is_file():
                raise InvalidValueError(f"{out}: no {CHECKPOINT_NAME} to resume from")
        else:
            directory.check_new_run(out, overwrite)
        if data is None or resume:   # (given: already read, e.g. to size --batch-size auto)
            data = prepare_data(config, out if resume else None)
        for note in data.notes:
            say(f"note: {note}")
        cats = data.table.schema.categories
        if cats:
            say("note: text columns are categorical (one-hot encoded): " + ", ".join(
                f"{c} ({len(v)} categories)" for c, v in cats.items()))
        memory_guard(config, data, memory_budget)
        setup = build(config, data)
        train_loader, val_loader = loaders(setup, (dist.rank(), world) if world > 1 else None)
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the ranks agreed
        failure = exc
    if world > 1:   # decide together: a rank that failed alone must not leave others waiting
        failed = int(dist.allreduce_sum(np.array([failure is not None], dtype=np.float64))[0])
        if failed and failure is None:
            raise InvalidValueError(f"{failed} other process(es) failed their checks")
        if failure is not None and failed < world:
            failure.every_rank = True     # type: ignore[attr-defined] - the CLI prints it
    if failure is not None:
        raise failure
    sync = {}
    if world > 1:
        dist.broadcast_parameters(setup.network.parameters())
        sync = {"gradient_sync": dist.GradientAverager(setup.network.parameters()),
                "reduce_sums": lambda totals: dist.allreduce_sum(totals, step=True)}
        say(f"note: {world} processes: {dist.current_watchdog().describe()}")
        dist.barrier()      # every rank has checked everything before rank 0 writes
    # -- from here on the disk changes (rank 0 only)
    created = not out.exists()
    work = out
    if main:
        directory.remove_stale(out)
        work = directory.staging_dir(out) if (overwrite and not resume and out.exists()
                                              and any(out.iterdir())) else out
        work.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(setup.network, setup.loss_fn, setup.optimizer, task=data.task,
                      prediction=setup.prediction if setup.prediction != "none" else "argmax",
                      clip_grad_norm=config.clip_grad_norm,
                      early_stopping=config.early_stopping, run_dir=work if main else None,
                      checkpoint_every=config.checkpoint_every,
                      progress=progress if main else "none",
                      divergence_factor=DIVERGENCE_FACTOR if config.divergence_check else None,
                      compile=compile, **sync)
    try:
        if resume:
            trainer.load_checkpoint(work / CHECKPOINT_NAME, train_loader)
            if world > 1:     # every rank continues from rank 0's weights and moments
                dist.broadcast_parameters(setup.network.parameters())
                dist.broadcast_optimizer_state(setup.optimizer)
            if main:
                directory.truncate_metrics(work, trainer.epoch)
        elif main:
            write_split(work, data.record, data.split)
        if main:
            _write_json(work / "config.json", {**config.as_dict(), "out": str(out),
                                               "chainrule_version": cr.__version__,
                                               "processes": world})
        start = time.perf_counter()
        try:
            # overflow on the way to a divergence is reported by the health checks, in one line
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                history = trainer.fit(train_loader, val_loader, config.epochs)
        except KeyboardInterrupt:
            saved = trainer.checkpoint_last_epoch()
            if not saved and created and work == out and main:
                import shutil

                shutil.rmtree(out, ignore_errors=True)
                raise TrainingInterrupted("interrupted before the first epoch finished; nothing "
                                          "was kept") from None
            raise TrainingInterrupted(
                f"interrupted; epoch {trainer.epoch} is checkpointed in {out}: continue with "
                f"chainrule train --resume {out}") from None
        seconds = time.perf_counter() - start
        if not main:
            return {"run_dir": str(out), "rank": dist.rank()}
        meta = run_metadata(task=data.task, loss=setup.loss_name, prediction=setup.prediction,
                            num_classes=data.num_classes, class_names=data.class_names,
                            schema=data.table.schema, impute=config.impute, dtype=config.dtype,
                            dataset=_dataset_label(data.record))
        parts = {}
        for part in ("train", "val", "test"):
            rows = getattr(data.split, part)
            if rows.size:
                parts[part] = evaluate_rows(setup.model, meta, rows_of(data.table.X, rows),
                                            data.y[rows])
        save_run_model(setup.model, work / MODEL_NAME, meta)
        summary = _summary(setup, trainer, history, seconds, parts)
        _write_json(work / "summary.json", summary)
        if plots:
            _plots(setup, history, work, parts["test"])
    except TrainingInterrupted:
        if main and work != out:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        raise
    except BaseException as exc:
        if world > 1 and isinstance(exc, Exception) and not isinstance(exc, ChainruleError):
            dist.abort(exc)     # a failure of this rank alone: no rank may wait in a collective
        # a run that failed leaves nothing behind: the staged overwrite, or the directory this
        # run created (a resumed run keeps its last checkpoint)
        if main and (work != out or (created and not resume)):
            import shutil

            shutil.rmtree(work, ignore_errors=True)
        raise
    if work != out:
        directory.swap_in(work, out)
    summary["run_dir"] = str(out)
    return summary


def _dataset_label(record: dict[str, Any]) -> str:
    return record["name"] if record["kind"] == "builtin" else Path(record["path"]).stem


def _write_json(path: Path, obj: Any) -> None:
    from ..io import atomic_write

    atomic_write(path, (json.dumps(_finite(obj), indent=2, sort_keys=True) + "\n").encode())


def _finite(obj: Any) -> Any:
    import math

    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _summary(setup: Setup, trainer: Any, history: Any, seconds: float,
             parts: dict[str, Any]) -> dict[str, Any]:
    trained = sum(e.get("samples_per_second", 0) * e.get("seconds", 0) for e in history.epochs)
    busy = sum(e.get("seconds", 0) for e in history.epochs)
    d = setup.data
    test = parts["test"]
    summary: dict[str, Any] = {
        "dataset": _dataset_label(d.record), "task": d.task, "loss": setup.loss_name,
        "epochs_run": trainer.epoch, "stopped_early": history.stopped_early,
        "best_epoch": history.best_epoch, "seconds": seconds,
        "samples_per_second": trained / max(busy, 1e-12), "final": history.last,
        "metrics": parts}
    if d.task == "classification":
        summary["test_accuracy"] = test["accuracy"]
    else:
        summary["test_mse"], summary["test_r2"] = test["mse"], test["r2"]
    categorical = list(d.table.schema.categories)
    if categorical:
        summary["categorical_columns"] = categorical
    if d.notes:
        summary["notes"] = d.notes
    return summary


# --------------------------------------------------------------------------- pictures
def _plots(setup: Setup, history: Any, out: Path, test: dict[str, Any]) -> None:
    from ..viz import _pyplot, plot_confusion, plot_decision_regions

    plt = _pyplot()
    epochs = [e["epoch"] for e in history.epochs]
    metric = "accuracy" if setup.data.task == "classification" else "mse"
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, name in zip(axes, ("loss", metric)):
        for part in ("train", "val"):
            values = [e.get(f"{part}_{name}") for e in history.epochs]
            if any(v is not None for v in values):
                ax.plot(epochs, values, marker=".", label=part)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"{_dataset_label(setup.data.record)}: {setup.loss_name}, "
                 f"{setup.config.optimizer}")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    d = setup.data
    if d.task == "classification":
        plot_confusion(np.array(test["confusion"]), out / "confusion.png", d.class_names)
        if len(d.table.schema.columns) == 2 and not d.table.schema.categories:
            rows = d.split.test
            y = d.y[rows] if setup.prediction != "sign" else 2 * d.y[rows] - 1
            plot_decision_regions(setup.model, d.table.X[rows], y, out / "boundary.png")
