"""Training runs: the configuration, the run directory, and everything ``chainrule train`` does.

A run directory holds

``config.json``        every option, resolved, and the library version
``model.safetensors``  the trained network, with its preprocessing and labels in the metadata
``checkpoint.safetensors``  model, optimizer, random states, epoch, metrics (for ``--resume``)
``metrics.jsonl``      one JSON line of metrics per epoch
``summary.json``       final metrics, time, samples/s
``curves.png``         loss (and accuracy) per epoch, train and validation
``confusion.png``      the test confusion matrix (classification)
``boundary.png``       decision regions (2-D inputs)

:func:`train_run` is the Python entry point behind the command; :func:`load_model_bundle`
reads back a model file with what is needed to evaluate or predict with it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FileFormatError, InvalidValueError

LOSSES = ("auto", "cross-entropy", "square", "bce")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
META_KEY = "run"


# Settings that reach the documented accuracy on data sets where the global defaults do not;
# they apply only to options the user did not set. ``chainrule datasets`` and the README list them.
RECOMMENDED: dict[str, dict[str, Any]] = {
    "spirals": {"hidden": [64, 64], "epochs": 100},
    "mnist1d": {"hidden": [256, 256], "lr": 0.003, "batch_size": 100, "epochs": 150,
                "dropout": 0.2},
}
DEFAULTS: dict[str, Any] = {"hidden": [128], "lr": 3e-3, "batch_size": 32, "epochs": 30,
                            "dropout": 0.0}


@dataclass
class TrainConfig:
    """Every option of a training run. ``hidden``, ``lr``, ``batch_size``, ``epochs`` and
    ``dropout`` left at None take the data set's recommended value (``RECOMMENDED``) or the global
    default (``DEFAULTS``: one hidden layer of 128, Adam at 3e-3, batches of 32, 30 epochs, no
    dropout)."""

    dataset: str = "digits"
    target: str | None = None
    hidden: list[int] | None = None
    activation: str = "relu"
    loss: str = "auto"
    optimizer: str = "adam"
    lr: float | None = None
    batch_size: int | None = None
    epochs: int | None = None
    weight_decay: float = 0.0
    dropout: float | None = None
    early_stopping: int | None = None
    val_size: float = 0.1
    standardize: bool = True
    noise: float | None = None
    clip_grad_norm: float | None = None
    checkpoint_every: int = 1
    seed: int = 0
    out: str | None = None
    dtype: str = "float32"

    def resolve(self) -> TrainConfig:
        """Fill options left at None from the data set's recommendations, then the defaults."""
        key = str(self.dataset).lower().replace("-", "_")
        for name, value in {**DEFAULTS, **RECOMMENDED.get(key, {})}.items():
            if getattr(self, name) is None:
                setattr(self, name, list(value) if isinstance(value, list) else value)
        return self

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def validate(self) -> TrainConfig:
        self.resolve()
        if self.loss not in LOSSES:
            raise InvalidValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidValueError(f"unknown optimizer {self.optimizer!r}; choose one of "
                                    f"{', '.join(OPTIMIZERS)}")
        if not (isinstance(self.hidden, list) and all(isinstance(h, int) and h > 0
                                                      for h in self.hidden)):
            raise InvalidValueError(f"hidden must be a list of positive layer sizes, got "
                                    f"{self.hidden!r}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise InvalidValueError(f"{name} must be a positive integer, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidValueError(f"lr must be a positive number, got {self.lr!r}")
        if not 0 <= self.val_size < 1:
            raise InvalidValueError(f"val_size must be in [0, 1), got {self.val_size}")
        if self.early_stopping is not None and self.val_size == 0:
            raise InvalidValueError("early stopping needs a validation part (val_size > 0)")
        return self


def parse_hidden(text: str) -> list[int]:
    """``"128,64"`` -> ``[128, 64]``; ``""`` -> ``[]`` (a linear model)."""
    try:
        sizes = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise InvalidValueError(f"--hidden must be comma-separated layer sizes, got {text!r}") \
            from None
    if any(s <= 0 for s in sizes):
        raise InvalidValueError(f"--hidden sizes must be positive, got {text!r}")
    return sizes


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a TOML file (the same names as the command's options, ``-`` or ``_``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InvalidValueError(f"{p}: no such config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidValueError(f"{p}: not valid TOML ({exc})") from None
    out = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(out) - set(TrainConfig.fields()))
    if unknown:
        raise InvalidValueError(f"{p}: unknown option(s) {unknown}")
    if isinstance(out.get("hidden"), str):
        out["hidden"] = parse_hidden(out["hidden"])
    return out


# --------------------------------------------------------------------------- the pieces
@dataclass
class Setup:
    """Data, model, loss and optimizer built from a config."""

    config: TrainConfig
    data: Any
    model: Any
    loss_name: str
    prediction: str
    loss_fn: Any
    optimizer: Any
    n_outputs: int


def load_data(config: TrainConfig) -> Any:
    from .data import load_dataset

    # The data set's own seed is left alone: its documented split (random_state 0) and, for
    # mnist1d, the standard generation seed; config.seed drives initialisation and shuffling.
    options: dict[str, Any] = {"standardize": config.standardize}
    if config.val_size:
        options["val_size"] = config.val_size
    if config.noise is not None:
        options["noise"] = config.noise
    if config.target is not None:
        options["target"] = config.target
    if config.dtype != "float32":
        options["dtype"] = config.dtype
    return load_dataset(config.dataset, **options)


def _resolve_loss(config: TrainConfig, task: str, num_classes: int | None) -> tuple[str, str, int]:
    """(loss, prediction kind, number of outputs)."""
    loss = config.loss
    if task == "regression":
        if loss not in ("auto", "square"):
            raise InvalidValueError(f"loss {loss!r} needs class labels, but this data set is a "
                                    "regression task: use --loss square")
        return "square", "none", 1
    k = int(num_classes or 0)
    if k < 2:
        raise InvalidValueError("classification needs at least two classes")
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


def build(config: TrainConfig, data: Any = None) -> Setup:
    """Data, model, loss and optimizer for ``config`` (seeded)."""
    import chainrule as cr
    from chainrule.nn import functional as F

    config.validate()
    cr.manual_seed(config.seed)
    data = data if data is not None else load_data(config)
    loss, prediction, n_out = _resolve_loss(config, data.task, data.num_classes)
    sizes = [data.n_features, *config.hidden, n_out]
    model = cr.nn.MLP(sizes, activation=config.activation,
                      output_activation=("tanh" if prediction == "sign" else None),
                      dropout=config.dropout, dtype=config.dtype)
    loss_fn = {"cross-entropy": F.cross_entropy, "square": F.mse_loss,
               "bce": F.binary_cross_entropy_with_logits}[loss]
    opt_cls = {"sgd": cr.optim.SGD, "momentum": cr.optim.SGD, "adam": cr.optim.Adam,
               "adamw": cr.optim.AdamW}[config.optimizer]
    kwargs: dict[str, Any] = {"lr": config.lr, "weight_decay": config.weight_decay}
    if config.optimizer == "momentum":
        kwargs["momentum"] = 0.9
    optimizer = opt_cls(model.parameters(), **kwargs)
    return Setup(config, data, model, loss, prediction, loss_fn, optimizer, n_out)


def loaders(setup: Setup) -> tuple[Any, Any]:
    from .data import DataLoader, TensorDataset

    d, c = setup.data, setup.config
    k = setup.n_outputs
    train = TensorDataset(d.X_train, _targets(d.y_train, setup.loss_name, k, d.X_train.dtype))
    train_loader = DataLoader(train, batch_size=c.batch_size, shuffle=True, seed=c.seed)
    val_loader = None
    if d.X_val is not None:
        val = TensorDataset(d.X_val, _targets(d.y_val, setup.loss_name, k, d.X_val.dtype))
        val_loader = DataLoader(val, batch_size=max(c.batch_size, 256))
    return train_loader, val_loader


# --------------------------------------------------------------------------- the run
def train_run(config: TrainConfig, run_dir: str | Path | None = None, *, resume: bool = False,
              progress: str = "auto", plots: bool = True) -> dict[str, Any]:
    """Train as ``chainrule train`` does and fill the run directory; returns the summary."""
    import chainrule as cr

    from .train import CHECKPOINT_NAME, Trainer

    out = Path(run_dir or config.out or _default_run_dir())
    setup = build(config)
    train_loader, val_loader = loaders(setup)
    trainer = Trainer(setup.model, setup.loss_fn, setup.optimizer,
                      task=setup.data.task,
                      prediction=setup.prediction if setup.prediction != "none" else "argmax",
                      clip_grad_norm=config.clip_grad_norm,
                      early_stopping=config.early_stopping, run_dir=out,
                      checkpoint_every=config.checkpoint_every, progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        ckpt = out / CHECKPOINT_NAME
        if not ckpt.is_file():
            raise InvalidValueError(f"{out}: no {CHECKPOINT_NAME} to resume from")
        trainer.load_checkpoint(ckpt, train_loader)
    else:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    (out / "config.json").write_text(json.dumps(
        {**dataclasses.asdict(config), "chainrule_version": cr.__version__}, indent=2) + "\n")
    start = time.perf_counter()
    history = trainer.fit(train_loader, val_loader, config.epochs)
    seconds = time.perf_counter() - start
    test = _test_metrics(setup)
    save_model(setup, out / "model.safetensors")
    trained = sum(e.get("samples_per_second", 0) * e.get("seconds", 0) for e in history.epochs)
    summary = {"dataset": setup.data.name, "task": setup.data.task, "loss": setup.loss_name,
               "epochs_run": trainer.epoch, "stopped_early": history.stopped_early,
               "best_epoch": history.best_epoch, "seconds": seconds,
               "samples_per_second": trained / max(sum(e.get("seconds", 0)
                                                       for e in history.epochs), 1e-12),
               "final": history.last, **test}
    (out / "summary.json").write_text(json.dumps(_finite(summary), indent=2) + "\n")
    if plots:
        _plots(setup, history, out, test)
    return summary


def _default_run_dir() -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / stamp


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def predict_outputs(model: Any, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    import chainrule as cr

    model.eval()
    dtype = next(iter(model.parameters())).dtype
    outs = []
    with cr.no_grad():
        for i in range(0, len(X), batch):
            outs.append(model(cr.tensor(np.asarray(X[i:i + batch], dtype=dtype))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 1))


def metrics_for(task: str, prediction: str, loss: str, out: np.ndarray, y: np.ndarray,
                num_classes: int | None) -> dict[str, Any]:
    """Test metrics: accuracy and the confusion matrix, or MSE and R^2."""
    from .train import predict_classes

    if task == "regression":
        pred = out.reshape(-1)
        mse = float(np.mean((pred - y) ** 2))
        var = float(np.var(y))
        return {"test_mse": mse, "test_r2": 1 - mse / var if var > 0 else float("nan")}
    classes = predict_classes(out, prediction)
    if prediction == "sign":
        classes = (classes > 0).astype(np.int64)
    k = int(num_classes or 2)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y.astype(np.int64), classes), 1)
    return {"test_accuracy": float((classes == y).mean()), "confusion": confusion.tolist()}


def _test_metrics(setup: Setup) -> dict[str, Any]:
    d = setup.data
    out = predict_outputs(setup.model, d.X_test)
    return metrics_for(d.task, setup.prediction, setup.loss_name, out, d.y_test, d.num_classes)


# --------------------------------------------------------------------------- model files
def save_model(setup: Setup, path: Path) -> Path:
    """The model with what evaluate/predict need: preprocessing, labels, loss, feature names."""
    import chainrule as cr

    d = setup.data
    run = {"task": d.task, "loss": setup.loss_name, "prediction": setup.prediction,
           "num_classes": d.num_classes, "n_features": d.n_features,
           "feature_names": list(d.feature_names),
           "class_names": [str(c) for c in d.class_names] if d.class_names is not None else None,
           "dataset": d.name, "target": setup.config.target}
    if d.standardizer is not None:
        st = d.standardizer.state_dict()
        run["standardizer"] = {"mean": np.asarray(st["mean"]).tolist(),
                               "scale": np.asarray(st["scale"]).tolist()}
    return cr.save(setup.model, path, metadata={META_KEY: json.dumps(run)})


@dataclass
class ModelBundle:
    model: Any
    run: dict[str, Any]

    def preprocess(self, X: np.ndarray) -> np.ndarray:
        n = self.run.get("n_features")
        if X.ndim != 2 or (n is not None and X.shape[1] != n):
            raise InvalidValueError(f"the model expects {n} feature columns, the input has "
                                    f"{X.shape[1] if X.ndim == 2 else X.shape}")
        st = self.run.get("standardizer")
        if st:
            X = (X - np.asarray(st["mean"])) / np.asarray(st["scale"])
        return X

    def outputs(self, X: np.ndarray) -> np.ndarray:
        return predict_outputs(self.model, self.preprocess(np.asarray(X, dtype=np.float64)))


def load_model_bundle(path: str | Path) -> ModelBundle:
    """A model file (or a run directory holding ``model.safetensors``) with its run metadata."""
    from .io import load, read

    p = Path(path)
    if p.is_dir():
        p = p / "model.safetensors"
    if not p.is_file():
        raise InvalidValueError(f"{path}: no model file (give a .safetensors file or a run "
                                "directory)")
    model = load(p)
    _, meta = read(p)
    try:
        run = json.loads(meta.get("user." + META_KEY, "{}"))
    except ValueError:
        raise FileFormatError(f"{p}: the run metadata is not valid JSON") from None
    if not isinstance(run, dict):
        raise FileFormatError(f"{p}: the run metadata is not a JSON object")
    return ModelBundle(model, run)


# --------------------------------------------------------------------------- pictures
def _plots(setup: Setup, history: Any, out: Path, test: dict[str, Any]) -> None:
    from .viz import _pyplot, plot_decision_regions

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
    fig.suptitle(f"{setup.data.name}: {setup.loss_name}, {setup.config.optimizer}")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    d = setup.data
    if d.task == "classification":
        plot_confusion(np.array(test["confusion"]), out / "confusion.png",
                       d.class_names)
        if d.n_features == 2:
            y = d.y_test if setup.prediction != "sign" else 2 * d.y_test - 1
            plot_decision_regions(setup.model, d.X_test, y, out / "boundary.png")


def plot_confusion(confusion: np.ndarray, path: Path, class_names: Any = None) -> Path:
    """The confusion matrix (rows: true class, columns: predicted) as a heat map."""
    from .viz import _pyplot

    plt = _pyplot()
    k = confusion.shape[0]
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * k, 1 + 0.45 * k))
    ax.imshow(confusion, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if confusion[i, j] > confusion.max() / 2 else "black")
    names = [str(c) for c in class_names] if class_names is not None else [str(i)
                                                                           for i in range(k)]
    ax.set_xticks(range(k), names, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
