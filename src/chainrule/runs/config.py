"""The options of a training run: :class:`TrainConfig`, with every value checked for its type and
range before anything is read or allocated, and the TOML config file."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InvalidValueError

LOSSES = ("auto", "cross-entropy", "square", "bce")
OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
IMPUTE = ("mean", "median")
DTYPES = ("float32", "float64")

# Settings that reach the documented accuracy on data sets where the global defaults do not;
# they apply only to options the user did not set. ``chainrule datasets`` and the README list them.
RECOMMENDED: dict[str, dict[str, Any]] = {
    "spirals": {"hidden": [64, 64], "epochs": 100},
    "mnist1d": {"hidden": [256, 256], "lr": 0.003, "batch_size": 100, "epochs": 150,
                "dropout": 0.2},
}
DEFAULTS: dict[str, Any] = {"hidden": [128], "lr": 3e-3, "batch_size": 32, "epochs": 30,
                            "dropout": 0.0}

# The type of every option: (python types, extra check or None). bool is not an int here.
_INT, _NUM, _BOOL, _STR = (int,), (int, float), (bool,), (str,)


@dataclass
class TrainConfig:
    """Every option of a training run. ``hidden``, ``lr``, ``batch_size``, ``epochs`` and
    ``dropout`` left at None take the data set's recommended value (``RECOMMENDED``) or the global
    default (``DEFAULTS``: one hidden layer of 128, Adam at 3e-3, batches of 32, 30 epochs, no
    dropout).

    ``val_size`` and ``test_size`` are fractions of all rows (MNIST-1D has a fixed test part;
    there ``val_size`` is a fraction of its training part). ``impute`` (``"mean"``/``"median"``)
    lets missing feature values through, filled with the training part's statistic.
    ``header``, ``delimiter`` and ``encoding`` say how a CSV file is read.
    """

    dataset: str = "digits"
    target: str | None = None
    task: str | None = None
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
    test_size: float = 0.25
    standardize: bool = True
    impute: str | None = None
    stratify: bool = True
    header: bool = True
    delimiter: str | None = None
    encoding: str | None = None
    noise: float | None = None
    clip_grad_norm: float | None = None
    checkpoint_every: int = 1
    divergence_check: bool = True
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Check every option's type and range (a config file can hold anything)."""
        _check_types(self)
        self.resolve()
        _check_types(self)
        if self.loss not in LOSSES:
            raise InvalidValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidValueError(f"unknown optimizer {self.optimizer!r}; choose one of "
                                    f"{', '.join(OPTIMIZERS)}")
        if self.impute is not None and self.impute not in IMPUTE:
            raise InvalidValueError(f"unknown impute strategy {self.impute!r}; choose mean or "
                                    "median")
        if self.dtype not in DTYPES:
            raise InvalidValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.task is not None and self.task not in ("classification", "regression"):
            raise InvalidValueError(f"task must be classification or regression, got "
                                    f"{self.task!r}")
        if not (isinstance(self.hidden, list) and all(
                isinstance(h, int) and not isinstance(h, bool) and 0 < h <= 2**31
                for h in self.hidden)):
            raise InvalidValueError(f"hidden must be a list of positive layer sizes, got "
                                    f"{self.hidden!r}")
        for name in ("batch_size", "epochs", "checkpoint_every"):
            v = getattr(self, name)
            if v < (0 if name == "checkpoint_every" else 1) or v > 2**40:
                raise InvalidValueError(f"{name} must be a positive integer, got {v!r}")
        if self.early_stopping is not None and self.early_stopping < 1:
            raise InvalidValueError(f"early_stopping must be a positive number of epochs, got "
                                    f"{self.early_stopping}")
        _positive("lr", self.lr)
        if self.clip_grad_norm is not None:
            _positive("clip_grad_norm", self.clip_grad_norm)
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InvalidValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not (0 <= self.dropout < 1):
            raise InvalidValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.noise is not None and not (math.isfinite(self.noise) and self.noise >= 0):
            raise InvalidValueError(f"noise must be a number >= 0, got {self.noise}")
        if not 0 <= self.val_size < 1:
            raise InvalidValueError(f"val_size must be in [0, 1), got {self.val_size}")
        if not 0 < self.test_size < 1:
            raise InvalidValueError(f"test_size must be in (0, 1), got {self.test_size}")
        if self.val_size + self.test_size >= 1:
            raise InvalidValueError("val_size + test_size must leave rows for training")
        if self.early_stopping is not None and self.val_size == 0:
            raise InvalidValueError("early stopping needs a validation part (val_size > 0)")
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise InvalidValueError(f"delimiter must be one character, got {self.delimiter!r}")
        if not -2**63 <= self.seed < 2**63:
            raise InvalidValueError(f"seed must be a 64-bit integer, got {self.seed}")
        return self


_TYPES: dict[str, tuple[tuple[type, ...], bool]] = {
    "dataset": (_STR, False), "target": (_STR + _INT, True), "task": (_STR, True),
    "hidden": ((list,), True), "activation": (_STR, False), "loss": (_STR, False),
    "optimizer": (_STR, False), "lr": (_NUM, True), "batch_size": (_INT, True),
    "epochs": (_INT, True), "weight_decay": (_NUM, False), "dropout": (_NUM, True),
    "early_stopping": (_INT, True), "val_size": (_NUM, False), "test_size": (_NUM, False),
    "standardize": (_BOOL, False), "impute": (_STR, True), "stratify": (_BOOL, False),
    "header": (_BOOL, False), "delimiter": (_STR, True), "encoding": (_STR, True),
    "noise": (_NUM, True), "clip_grad_norm": (_NUM, True), "checkpoint_every": (_INT, False),
    "divergence_check": (_BOOL, False), "seed": (_INT, False), "out": (_STR, True),
    "dtype": (_STR, False),
}
_NAMES = {_INT: "an integer", _NUM: "a number", _BOOL: "true or false", _STR: "a string",
          (list,): "a list of layer sizes", _STR + _INT: "a column name or index"}


def _check_types(cfg: TrainConfig) -> None:
    for name, (types, optional) in _TYPES.items():
        v = getattr(cfg, name)
        if v is None and optional:
            continue
        ok = isinstance(v, types) and not (isinstance(v, bool) and bool not in types)
        if ok and isinstance(v, float) and not math.isfinite(v):
            ok = False
        if not ok:
            raise InvalidValueError(f"option {name.replace('_', '-')} must be "
                                    f"{_NAMES.get(types, 'valid')}, got {v!r}")
        if isinstance(v, int) and not isinstance(v, bool) and float in types:
            setattr(cfg, name, float(v))


def _positive(name: str, v: float) -> None:
    if not (math.isfinite(v) and v > 0):
        raise InvalidValueError(f"{name} must be a positive number, got {v!r}")


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
    except IsADirectoryError:
        raise InvalidValueError(f"{p}: a directory, not a config file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidValueError(f"{p}: not valid TOML ({exc})") from None
    out = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(out) - set(TrainConfig.fields()))
    if unknown:
        raise InvalidValueError(f"{p}: unknown option(s) {unknown}")
    if isinstance(out.get("hidden"), str):
        out["hidden"] = parse_hidden(out["hidden"])
    hidden = out.get("hidden")
    if hidden is not None and not (isinstance(hidden, list) and all(
            isinstance(h, int) and not isinstance(h, bool) and 0 < h <= 2**31 for h in hidden)):
        raise InvalidValueError(f"{p}: hidden must be a list of positive layer sizes, got "
                                f"{hidden!r}")
    probe = TrainConfig(**out)
    try:
        _check_types(probe)
    except InvalidValueError as exc:
        raise InvalidValueError(f"{p}: {exc}") from None
    return out
